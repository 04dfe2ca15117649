//! The two sites a visitor from Sovendus sees: the demo shop on `localhost`, and a partner page
//! on `127.0.0.1` that links to it. To the browser these are different sites, so following the
//! link is a real cross-site navigation.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::Request,
    http::Method,
    middleware::{self, Next},
    response::{Html, Response},
    routing::get,
};
use tower_sessions::{MemoryStore, cookie::SameSite};
use tower_sovendus::{
    Delivery, SovendusLayer,
    sandbox::{Conversion, Sandbox},
};

use crate::{app, common};

/// The demo shop with its sandbox, and the partner page linking to it.
pub struct Sites {
    /// The sandbox the shop sends its conversions to.
    pub sandbox: Arc<Sandbox>,
    delivery: Delivery,
    shop_port: u16,
    partner: String,
    orders_posted: Arc<AtomicUsize>,
}

impl Sites {
    /// Serves the demo shop, its session cookie set to `same_site`, and a partner page whose
    /// links lead to the shop's `landings` (paths with their query, written as in a link).
    pub async fn start(same_site: SameSite, landings: &[&str]) -> Self {
        Self::with_order_page_delay(same_site, landings, Duration::ZERO).await
    }

    /// The same, with a shop whose order page answers `order_page_delay` late, as one that
    /// takes a payment does: the time in which an impatient visitor clicks again.
    pub async fn with_order_page_delay(
        same_site: SameSite,
        landings: &[&str],
        order_page_delay: Duration,
    ) -> Self {
        let sandbox = Arc::new(Sandbox::start().await.unwrap());
        let sovendus = SovendusLayer::new(common::config_for(&sandbox));
        let delivery = sovendus.delivery();
        let orders_posted = Arc::new(AtomicUsize::new(0));
        let counter = orders_posted.clone();
        // Plain HTTP on loopback, so the cookie cannot be `Secure`.
        let sessions = app::sessions(MemoryStore::default(), same_site, false);
        let shop = app::router(sovendus, sessions, Some(sandbox.clone())).layer(middleware::from_fn(
            move |request: Request, next: Next| {
                let counter = counter.clone();
                async move { count_orders(&counter, order_page_delay, request, next).await }
            },
        ));
        let shop_port = common::serve(shop).await.port();

        let links: String = landings
            .iter()
            .enumerate()
            .map(|(index, landing)| {
                let href = html_attribute(&format!("http://localhost:{shop_port}{landing}"));
                format!("<li><a id=offer-{index} href=\"{href}\">Your voucher at Trail Shop</a></li>")
            })
            .collect();
        let page = format!(
            "<!doctype html><html lang=en><head><meta charset=utf-8><title>Partner</title></head>\
             <body><h1>Thanks for your order at the partner shop</h1><ul>{links}</ul></body></html>"
        );
        let partner = Router::new().route("/", get(move || async move { Html(page) }));
        let partner = format!("http://{}/", common::serve(partner).await);
        Self { sandbox, delivery, shop_port, partner, orders_posted }
    }

    /// The shop's URL for `path` (with its query), on `localhost`.
    pub fn shop(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.shop_port)
    }

    /// The partner page, on `127.0.0.1`.
    pub fn partner(&self) -> &str {
        &self.partner
    }

    /// How many order requests reached the shop.
    pub fn orders_posted(&self) -> usize {
        self.orders_posted.load(Ordering::SeqCst)
    }

    /// Lets the background workers deliver everything queued, then lists the conversions the
    /// sandbox booked (answered 200). Nothing can arrive after this.
    pub async fn booked(&self) -> Vec<Conversion> {
        let report = self.delivery.shutdown(Duration::from_secs(10)).await;
        assert!(report.left().is_empty(), "conversions left undelivered: {:?}", report.left());
        assert_eq!(report.failed(), 0, "failed conversions");
        self.sandbox.accepted()
    }
}

/// Counts the order requests on their way into the shop, and answers each `delay` late.
async fn count_orders(counter: &AtomicUsize, delay: Duration, request: Request, next: Next) -> Response {
    let order = request.method() == Method::POST && request.uri().path() == "/order";
    if order {
        counter.fetch_add(1, Ordering::SeqCst);
    }
    let response = next.run(request).await;
    if order && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    response
}

/// `value` escaped for a double-quoted HTML attribute.
fn html_attribute(value: &str) -> String {
    value.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}
