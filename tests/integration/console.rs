//! The staff's console over loopback HTTP: it refuses what it must (no staff, a read-only
//! account's action, a cross-site POST), shows what Sovendus and the shop wrote as text, and its
//! invoice, parsed back, matches the store's delivered conversions on every store.

use std::{collections::HashSet, net::SocketAddr, time::Duration};

use axum::{
    Router,
    extract::Request,
    middleware::{self, Next},
    response::Response,
    routing::post,
};
use http::StatusCode;
use tower_sovendus::{
    SovendusLayer,
    console::{self, Staff},
    sandbox::Sandbox,
    store::{ConversionState, MokaTokenStore, RedisTokenStore, SqlTokenStore, TokenStore, sqlx},
};

use crate::common::{self, Visitor, postgres::PostgresServer, redis::RedisServer};

/// The demo shop's console, behind its HTTP Basic auth.
#[path = "../../examples/shop/console.rs"]
#[allow(dead_code, reason = "the shop's start reads the password; the test gives one")]
mod demo;

/// The shop's stand-in for its own auth: `x-staff: admin` or `x-staff: reader`, and nothing
/// without the header.
async fn staff_from_header(mut request: Request, next: Next) -> Response {
    let staff = match request.headers().get("x-staff").and_then(|value| value.to_str().ok()) {
        Some("admin") => Some(Staff::admin("ada@shop.example")),
        Some("reader") => Some(Staff::read_only("rita@shop.example")),
        _ => None,
    };
    if let Some(staff) = staff {
        request.extensions_mut().insert(staff);
    }
    next.run(request).await
}

/// The test shop with the console nested at `/console`, keeping tokens in `store`, delivering to
/// `endpoint` (a sandbox's configuration, or another's).
pub struct ConsoleShop {
    pub addr: SocketAddr,
    pub delivery: tower_sovendus::Delivery,
    client: reqwest::Client,
}

impl ConsoleShop {
    pub async fn start(config: tower_sovendus::SovendusConfig, store: impl TokenStore) -> Self {
        let layer = SovendusLayer::with_store(config, store);
        let delivery = layer.delivery();
        let staff = console::router(delivery.clone()).layer(middleware::from_fn(staff_from_header));
        let app = common::shop_routes()
            .layer(layer)
            .layer(common::session_layer(tower_sessions::MemoryStore::default()))
            .nest("/console", staff);
        let addr = common::serve(app).await;
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { addr, delivery, client }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/console{path}", self.addr)
    }

    /// GETs a console page as `who`: its status and body.
    pub async fn get(&self, who: Option<&str>, path: &str) -> (StatusCode, String) {
        let mut request = self.client.get(self.url(path));
        if let Some(who) = who {
            request = request.header("x-staff", who);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// POSTs a console form as `who`, with `headers` as the browser would send them.
    pub async fn post(
        &self,
        who: &str,
        path: &str,
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let mut request = self.client.post(self.url(path)).header("x-staff", who).form(form);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let location = response.headers().get("location").map(|to| to.to_str().unwrap().to_owned());
        (response.status(), location.unwrap_or(response.text().await.unwrap()))
    }

    /// A visitor lands with `token` and orders with the reference `order`.
    pub async fn convert(&self, token: &str, order: &str) -> String {
        let visitor = Visitor::new(self.addr);
        let (status, _) = visitor.get(&format!("/landing?sovReqToken={token}")).await;
        assert_eq!(status, 200);
        let path = format!("/order-for/{}", urlencoding(order));
        let response = visitor.client.post(visitor.url(&path)).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// The conversion of `token`'s ID.
    pub async fn id_of(&self, token: &str) -> String {
        let conversion = self.delivery.find_token(&token.parse().unwrap()).await.unwrap();
        conversion.expect("the token converted").id.to_string()
    }
}

/// `text` as one path segment.
fn urlencoding(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>().replace('+', "%20")
}

/// A sandbox and its configuration, with quick retries.
async fn sandbox() -> (Sandbox, tower_sovendus::SovendusConfig) {
    let sandbox = Sandbox::start().await.unwrap();
    let config = sandbox.config().retry(tower_sovendus::RetryPolicy::never()).build().unwrap();
    (sandbox, config)
}

#[tokio::test]
async fn a_console_mounted_without_the_shops_auth_shows_nothing() {
    let (_sandbox, config) = sandbox().await;
    let shop = ConsoleShop::start(config, MokaTokenStore::new(100)).await;
    for path in ["", "/conversions/owed", "/invoice.csv?from=2026-01-01&until=2026-01-31", "/api/overview"] {
        let (status, body) = shop.get(None, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(body.contains("without the shop's auth"), "{path}: {body}");
    }
}

#[tokio::test]
async fn the_demo_shops_console_asks_for_the_staff_password() {
    let (_sandbox, config) = sandbox().await;
    let delivery = SovendusLayer::new(config).delivery();
    let app = Router::new().nest("/console", demo::staff(delivery, "s3cret-pass".to_owned()));
    let addr = common::serve(app).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/console");
    let asked = client.get(&url).send().await.unwrap();
    assert_eq!(asked.status(), StatusCode::UNAUTHORIZED);
    assert!(asked.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic realm="));
    for (user, password) in [("staff", "wrong"), ("admin", "s3cret-pass"), ("staff", "s3cret-pas")] {
        let refused = client.get(&url).basic_auth(user, Some(password)).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{user}:{password}");
    }
    let page = client.get(&url).basic_auth(demo::USER, Some("s3cret-pass")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("staff · admin"));
}

#[tokio::test]
async fn a_read_only_account_looks_and_cannot_act() {
    let (sandbox, config) = sandbox().await;
    let shop = ConsoleShop::start(config, MokaTokenStore::new(100)).await;
    // A parked conversion (Sovendus refuses the key) and an owed one (Sovendus is down).
    sandbox.fault_next(1, tower_sovendus::sandbox::Fault::Status(StatusCode::FORBIDDEN));
    shop.convert("parked-token-1", "A-1").await;
    sandbox.fault_next(1, tower_sovendus::sandbox::Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    shop.convert("owed-token-2", "A-2").await;
    let counts = shop.delivery.counts().await.unwrap();
    assert_eq!((counts.parked, counts.owed), (1, 1), "{counts:?}");
    let (parked, owed) = (shop.id_of("parked-token-1").await, shop.id_of("owed-token-2").await);

    for path in
        ["", "/conversions/parked", &format!("/conversion/{parked}"), "/invoice", "/api/conversions/owed"]
    {
        let (status, body) = shop.get(Some("reader"), path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(!body.contains("method=\"post\""), "{path}: a read-only page offers no action");
    }
    let same_origin = [("sec-fetch-site", "same-origin")];
    for path in [
        format!("/conversion/{parked}/retry"),
        format!("/conversion/{owed}/void"),
        format!("/conversion/{parked}/void"),
        "/parked/retry".to_owned(),
        "/not-a-route".to_owned(),
    ] {
        let (status, body) = shop.post("reader", &path, &same_origin, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(body.contains("may look, not act"), "{path}: {body}");
    }
    assert_eq!(shop.delivery.counts().await.unwrap(), counts, "nothing changed");
    let parked = shop.delivery.find_token(&"parked-token-1".parse().unwrap()).await.unwrap().unwrap();
    assert!(parked.next_attempt_at > Some(std::time::SystemTime::now()), "not made due");
}

#[tokio::test]
async fn a_cross_site_post_changes_nothing() {
    let (sandbox, config) = sandbox().await;
    let shop = ConsoleShop::start(config, MokaTokenStore::new(100)).await;
    sandbox.fault_next(1, tower_sovendus::sandbox::Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    shop.convert("owed-token-1", "A-1").await;
    let owed = shop.id_of("owed-token-1").await;
    let void = format!("/conversion/{owed}/void");
    let host = shop.addr.to_string();
    let elsewhere: [&[(&str, &str)]; 5] = [
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("sec-fetch-site", "none")],
        &[("origin", "http://evil.example")],
        &[],
    ];
    for headers in elsewhere {
        let (status, body) = shop.post("admin", &void, headers, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(body.contains("another site"), "{headers:?}: {body}");
        assert_eq!(shop.delivery.counts().await.unwrap().voided, 0, "{headers:?}");
    }
    // The console's own form, from a browser with fetch metadata, or one with an Origin only.
    let origin = format!("http://{host}");
    let (status, location) = shop.post("admin", &void, &[("origin", &origin)], &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("/console/conversion/{owed}?done=voided"));
    assert_eq!(shop.delivery.counts().await.unwrap().voided, 1);
}

/// A fake Sovendus that answers every call 418 with a script as its body.
async fn hostile_sovendus() -> SocketAddr {
    let answer = || async { (StatusCode::IM_A_TEAPOT, "<script>alert(\"answer\")</script>") };
    common::serve(Router::new().route("/ext/{product}/{token}/api", post(answer))).await
}

#[tokio::test]
async fn scripts_in_an_order_reference_and_an_answer_show_as_text() {
    let endpoint = hostile_sovendus().await;
    let config = tower_sovendus::SovendusConfig::builder("product-a", "XXXX-XXXXX")
        .endpoint(format!("http://{endpoint}"))
        .retry(tower_sovendus::RetryPolicy::never())
        .build()
        .unwrap();
    let shop = ConsoleShop::start(config, MokaTokenStore::new(100)).await;
    let order = "<script>alert(\"order\")</script>";
    shop.convert("hostile-token-1", order).await;
    let id = shop.id_of("hostile-token-1").await;
    let conversion = shop.delivery.find_token(&"hostile-token-1".parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(conversion.state, ConversionState::Parked, "an unexpected answer parks it");
    assert!(conversion.last_error.as_deref().unwrap_or_default().contains("<script>"), "{conversion:?}");
    for path in ["", "/conversions/parked", &format!("/conversion/{id}"), "/search?q=hostile-token-1"] {
        let (status, body) = shop.get(Some("admin"), path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!body.contains("<script"), "{path}: a script in the page: {body}");
        assert!(body.contains("&lt;script&gt;alert("), "{path}: the script shown as text");
    }
    let response = shop.client.get(shop.url("")).header("x-staff", "admin").send().await.unwrap();
    let policy = response.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'") && !policy.contains("script-src"), "{policy}");
}

/// Delivers `count` conversions through the shop, then checks the invoice of today against the
/// store, and that of the day before is empty.
async fn invoice_round_trips(store: impl TokenStore, count: usize) {
    let (_sandbox, config) = sandbox().await;
    let shop = ConsoleShop::start(config, store).await;
    let mut tokens = HashSet::new();
    for n in 0..count {
        let token = format!("invoice-token-{n}");
        assert!(shop.convert(&token, &format!("I-{n}")).await.starts_with("sent"));
        tokens.insert(token);
    }
    let today = day(std::time::SystemTime::now());
    let yesterday = day(std::time::SystemTime::now() - Duration::from_secs(86_400));
    let (status, csv) =
        shop.get(Some("reader"), &format!("/invoice.csv?from={yesterday}&until={today}")).await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, ["order_reference", "product_id", "token", "ordered_at", "delivered_at"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let exported: HashSet<String> = rows.iter().map(|row| row[2].to_owned()).collect();
    assert_eq!(exported, tokens, "every delivered token, whole");
    assert_eq!(u64::try_from(rows.len()).unwrap(), shop.delivery.counts().await.unwrap().delivered);
    for row in &rows {
        let n = row[2].strip_prefix("invoice-token-").unwrap();
        assert_eq!(&row[0], format!("I-{n}"), "its order");
        assert!(row[4].starts_with(&today) && row[4].ends_with('Z'), "delivered today, RFC 3339: {row:?}");
    }
    let (_, before) =
        shop.get(Some("reader"), &format!("/invoice.csv?from={yesterday}&until={yesterday}")).await;
    assert_eq!(csv::Reader::from_reader(before.as_bytes()).records().count(), 0, "none delivered yesterday");
}

/// `at`'s day, `YYYY-MM-DD`, in UTC.
fn day(at: std::time::SystemTime) -> String {
    time::OffsetDateTime::from(at).date().to_string()
}

#[tokio::test]
async fn the_invoice_round_trips_in_memory() {
    invoice_round_trips(MokaTokenStore::new(1_000), 7).await;
}

#[tokio::test]
async fn the_invoice_round_trips_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("shop.db").display());
    let store = SqlTokenStore::sqlite(sqlx::SqlitePool::connect(&url).await.unwrap());
    store.migrate().await.unwrap();
    invoice_round_trips(store, 7).await;
}

#[tokio::test]
async fn the_invoice_round_trips_on_postgres() {
    let Some(server) = PostgresServer::start("the_invoice_round_trips_on_postgres") else { return };
    let pool = sqlx::PgPool::connect(&server.database("invoice").await).await.unwrap();
    let store = SqlTokenStore::postgres(pool);
    store.migrate().await.unwrap();
    invoice_round_trips(store, 7).await;
}

#[tokio::test]
async fn the_invoice_round_trips_on_redis() {
    let Some(redis) = RedisServer::start("the_invoice_round_trips_on_redis") else { return };
    invoice_round_trips(RedisTokenStore::new(redis.pool().await), 7).await;
}

#[tokio::test]
async fn a_store_that_is_away_gets_a_page_saying_so_and_nothing_changes() {
    let (sandbox, config) = sandbox().await;
    let faults = std::sync::Arc::new(common::faulty::StoreFaults::default());
    let store = common::faulty::FaultyStore::sharing(MokaTokenStore::new(100), faults.clone());
    let shop = ConsoleShop::start(config, store).await;
    sandbox.fault_next(1, tower_sovendus::sandbox::Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    shop.convert("owed-token-1", "A-1").await;
    let owed = shop.id_of("owed-token-1").await;

    faults.away(true);
    let conversion = format!("/conversion/{owed}");
    for path in [
        "",
        "/conversions/owed",
        &conversion,
        "/api/overview",
        "/invoice.csv?from=2026-01-01&until=2026-01-31",
    ] {
        let (status, body) = shop.get(Some("admin"), path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(body.contains("the store did not answer"), "{path}: {body}");
    }
    let same_origin = [("sec-fetch-site", "same-origin")];
    let (status, body) = shop.post("admin", &format!("{conversion}/void"), &same_origin, &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("Nothing was changed"), "{body}");

    faults.away(false);
    assert_eq!(shop.delivery.counts().await.unwrap().voided, 0, "not voided");
    assert_eq!(shop.get(Some("admin"), &conversion).await.0, StatusCode::OK, "back with the store");
}
