//! Headless Chromium walks the staff's console: the overview, a list and its next page, a
//! conversion's page, a retry, a void, and the invoice. The pages are saved as screenshots with
//! the test's output (`CARGO_TARGET_TMPDIR/browser/console-*.png`).

use std::{path::PathBuf, sync::Arc};

use axum::{extract::Request, middleware::Next};
use http::StatusCode;
use tower_sessions::MemoryStore;
use tower_sovendus::{
    Delivery, RetryPolicy, SovendusLayer,
    console::{self, Staff},
    sandbox::{Fault, Sandbox},
    store::{ConversionState, MokaTokenStore},
};

use crate::{common, harness::Browser};

/// Delivered conversions: more than a list page holds (50).
const DELIVERED: usize = 55;

fn screenshot(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("browser/console-{name}.png"))
}

/// A shop on `sandbox` with the console at `/console`, every request an admin's (the console's
/// refusals are tested in `tests/integration/console.rs`), on `localhost`: its port, and its
/// delivery.
async fn shop(sandbox: &Sandbox) -> (u16, Delivery) {
    // One call per order: the 503 leaves its conversion owed.
    let config = sandbox.config().retry(RetryPolicy::never()).build().unwrap();
    let layer = SovendusLayer::with_store(config, Arc::new(MokaTokenStore::new(1_000)));
    let delivery = layer.delivery();
    let staff = console::router(delivery.clone()).layer(axum::middleware::from_fn(
        |mut request: Request, next: Next| async move {
            request.extensions_mut().insert(Staff::admin("ada@shop.example"));
            next.run(request).await
        },
    ));
    let app = common::shop_routes()
        .layer(layer)
        .layer(common::session_layer(MemoryStore::default()))
        .nest("/console", staff);
    (common::serve(app).await.port(), delivery)
}

/// A visitor lands with `token` and orders `order`; the order sends its conversion at once.
async fn convert(port: u16, token: &str, order: &str) {
    let visitor = common::Visitor::new(([127, 0, 0, 1], port).into());
    assert_eq!(visitor.get(&format!("/landing?sovReqToken={token}")).await.0, 200);
    let response = visitor.client.post(visitor.url(&format!("/order-for/{order}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn staff_walk_the_console() {
    let Some(browser) = Browser::start_or_skip().await else { return };
    let sandbox = Sandbox::start().await.unwrap();
    let (port, delivery) = shop(&sandbox).await;
    for n in 0..DELIVERED {
        convert(port, &format!("walk-token-{n:02}"), &format!("W-{n:02}")).await;
    }
    sandbox.fault_next(1, Fault::Status(StatusCode::FORBIDDEN));
    convert(port, "walk-parked", "W-PARKED").await;
    sandbox.fault_next(1, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    convert(port, "walk-owed", "W-OWED").await;
    let console = |path: &str| format!("http://localhost:{port}/console{path}");

    // The overview: counts, the parked cause, the chart.
    browser.goto(&console("")).await;
    assert_eq!(browser.text("a.count.delivered strong").await, DELIVERED.to_string());
    assert_eq!(browser.text("a.count.parked strong").await, "1");
    assert!(browser.text("main").await.contains("Sovendus refused the API key (403)"));
    assert!(browser.has("svg.chart rect.delivered").await, "today's bar");
    browser.screenshot(&screenshot("overview")).await;

    // The delivered list, newest first, and its next page.
    browser.click_to("a.count.delivered", "/console/conversions/delivered").await;
    assert!(
        browser
            .text("table.conversions tbody tr:first-child")
            .await
            .contains(&format!("W-{:02}", DELIVERED - 1))
    );
    browser.screenshot(&screenshot("list")).await;
    browser.find("a[rel=next]").await.click().await.unwrap();
    browser
        .wait_until("the next page", |path| path.starts_with("/console/conversions/delivered?after="))
        .await;
    let second = browser.text("table.conversions tbody").await;
    assert!(second.contains("W-00") && !second.contains(&format!("W-{:02}", DELIVERED - 1)), "{second}");
    assert_eq!(second.lines().count(), DELIVERED - 50, "the rest: {second}");

    // A conversion's page: the whole token, the last answer.
    browser.find("table.conversions tbody tr:first-child td a").await.click().await.unwrap();
    browser.wait_until("a conversion's page", |path| path.starts_with("/console/conversion/")).await;
    assert!(browser.text("dd.token").await.starts_with("walk-token-0"), "the whole token");
    assert_eq!(browser.text("dd.answer").await, "200: accepted");
    browser.screenshot(&screenshot("conversion")).await;

    // Retry the parked one: found by its order, then its button.
    let parked = delivery.find_token(&"walk-parked".parse().unwrap()).await.unwrap().unwrap();
    browser.goto(&console("/search?q=W-PARKED")).await;
    browser.click_to("table.conversions a", &format!("/console/conversion/{}", parked.id)).await;
    browser
        .click_to("form[action$='/retry'] button", &format!("/console/conversion/{}?done=retried", parked.id))
        .await;
    assert!(browser.text("p.done").await.starts_with("Due now"));
    browser.screenshot(&screenshot("retried")).await;

    // Void the owed one.
    let owed = delivery.find_token(&"walk-owed".parse().unwrap()).await.unwrap().unwrap();
    browser.goto(&console(&format!("/conversion/{}", owed.id))).await;
    browser
        .click_to("form[action$='/void'] button", &format!("/console/conversion/{}?done=voided", owed.id))
        .await;
    assert!(browser.text("p.done").await.starts_with("Voided"));
    let voided = delivery.get(owed.id).await.unwrap().unwrap();
    assert_eq!(voided.state, ConversionState::Voided);
    browser.screenshot(&screenshot("voided")).await;

    // The invoice page, then the export its form asks for.
    browser.click_to("header nav a[href$='/invoice']", "/console/invoice").await;
    assert!(browser.has("form[action$='/invoice.csv'] input[name=from]").await);
    browser.screenshot(&screenshot("invoice")).await;
    // The retried one was delivered meanwhile: Sovendus answers 200 again.
    for _ in 0..200 {
        if delivery.get(parked.id).await.unwrap().unwrap().state == ConversionState::Delivered {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let csv = reqwest::get(console(&format!("/invoice.csv?from={today}&until={today}"))).await.unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    assert_eq!(csv::Reader::from_reader(csv.as_bytes()).records().count(), DELIVERED + 1, "{csv}");
    eprintln!("console screenshots saved to {}", screenshot("*").display());
    browser.close().await;
}
