//! What the crate logs: never the API key, tokens only masked, setup mistakes said once.
//!
//! Every event of every crate, at TRACE, goes to one buffer of the process: each test runs in a
//! process of its own.

use crate::common;

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use axum::{Router, routing::get};
use common::{TestShop, quick_retries};
use http::StatusCode;
use tower_sovendus::{
    SovReqToken, SovendusClient, SovendusConfig, SovendusLayer,
    sandbox::{Fault, Sandbox},
};

const API_KEY: &str = "SECRET-KEY-abcdef-123456";
const TOKEN: &str = "1095752fb409-457a-af14-17a09e6be522";

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged so far.
fn logs() -> String {
    static BUFFER: OnceLock<Buffer> = OnceLock::new();
    let buffer = BUFFER.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        buffer
    });
    String::from_utf8_lossy(&buffer.0.lock().unwrap()).into_owned()
}

#[tokio::test]
async fn api_key_and_whole_token_never_appear() {
    if common::ran_in_own_process("logs::api_key_and_whole_token_never_appear") {
        return;
    }
    logs();
    let sandbox = Sandbox::builder().api_key(API_KEY).start().await.unwrap();
    let endpoint = sandbox.endpoint();
    let shop = TestShop::with(sandbox, |config| {
        config.request_timeout(Duration::from_millis(200)).retry(quick_retries().max_attempts(10))
    })
    .await;

    // Every retryable failure, each retried, then success.
    shop.get(&format!("/landing?sovReqToken={TOKEN}")).await;
    for fault in [
        Fault::Status(StatusCode::INTERNAL_SERVER_ERROR),
        Fault::Delay(Duration::from_secs(1)),
        Fault::Refuse,
        Fault::RateLimited(Duration::ZERO),
        Fault::CutOff(StatusCode::BAD_GATEWAY),
    ] {
        shop.sandbox.fault_next(1, fault);
    }
    assert_eq!(shop.order().await, "sent");
    // Every refusal, each parking or killing its conversion; a token converts once, so each
    // landing brings one of its own, all starting with TOKEN (a leak of one shows TOKEN).
    for (status, suffix) in
        [(StatusCode::FORBIDDEN, 1), (StatusCode::UNPROCESSABLE_ENTITY, 2), (StatusCode::NOT_FOUND, 3)]
    {
        shop.get(&format!("/landing?sovReqToken={TOKEN}-{suffix}")).await;
        shop.sandbox.fault_next(1, Fault::Status(status));
        assert_ne!(shop.order().await, "sent");
    }
    // A background conversion cut off by the shutdown deadline while the API is down.
    shop.get(&format!("/landing?sovReqToken={TOKEN}-4")).await;
    shop.sandbox.take_down().await;
    assert_eq!(shop.order_in_background().await, "owed");
    assert_eq!(shop.delivery.shutdown(Duration::from_millis(300)).await.left().len(), 1);
    shop.sandbox.bring_up().await.unwrap();
    // A hostile value that embeds the key.
    shop.get(&format!("/landing?sovReqToken={API_KEY}%2F")).await;

    // Debug output of everything that holds the key or a token.
    let config = SovendusConfig::builder(Sandbox::PRODUCT_ID, API_KEY).endpoint(endpoint).build().unwrap();
    let token: SovReqToken = TOKEN.parse().unwrap();
    let error = SovendusClient::new(&config).send(&"unknown".parse().unwrap()).await;
    let debug = format!(
        "{config:?} {:?} {:?} {:?} {token:?} {token} {error:?} {:?}",
        SovendusConfig::builder(Sandbox::PRODUCT_ID, API_KEY),
        SovendusLayer::new(config.clone()),
        SovendusClient::new(&config),
        error.as_ref().map_err(ToString::to_string),
    );

    let logs = logs();
    for (what, text) in [("logs", &logs), ("Debug output", &debug)] {
        assert!(!text.contains(API_KEY), "the API key is in the {what}");
        assert!(!text.contains(&API_KEY[..API_KEY.len() - 4]), "part of the API key is in the {what}");
        assert!(!text.contains(TOKEN), "a whole token is in the {what}");
    }
    assert!(logs.contains("1095752f…"), "the masked token is logged: {logs}");
    assert!(logs.contains("captured Sovendus token"));
    assert!(logs.contains("Sovendus accepted the conversion"));
    assert!(logs.contains("Sovendus conversion failed; retrying"));
    assert!(logs.contains("Sovendus refused the conversion; not retrying"));
    let left =
        logs.lines().find(|line| line.contains("cut off by the shutdown")).expect("the left token is logged");
    assert!(left.contains("WARN") && left.contains("1095752f…"), "{left}");
}

#[tokio::test]
async fn refused_token_is_logged_masked_at_warn() {
    if common::ran_in_own_process("logs::refused_token_is_logged_masked_at_warn") {
        return;
    }
    logs();
    let shop = TestShop::start().await;
    shop.get("/landing?sovReqToken=refusedA/../../very-secret-path").await;
    let logs = logs();
    let line = logs
        .lines()
        .find(|line| line.contains("refused Sovendus token") && line.contains("refusedA"))
        .expect("the refusal is logged");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("refusedA…"), "{line}");
    assert!(!logs.contains("very-secret-path"));
}

#[tokio::test]
async fn missing_session_layer_never_fails_the_page_and_is_logged_once() {
    if common::ran_in_own_process("logs::missing_session_layer_never_fails_the_page_and_is_logged_once") {
        return;
    }
    logs();
    let sandbox = Sandbox::start().await.unwrap();
    let app = Router::new()
        .route("/", get(|| async { "home" }))
        .layer(SovendusLayer::new(sandbox.config().build().unwrap()));
    let addr = common::serve(app).await;
    for _ in 0..3 {
        let response = reqwest::get(format!("http://{addr}/?sovReqToken={TOKEN}")).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "home");
    }
    let logs = logs();
    let said = logs.lines().filter(|line| line.contains("tower-sovendus cannot capture tokens")).count();
    assert_eq!(said, 1, "{logs}");
    let line = logs.lines().find(|line| line.contains("tower-sovendus cannot capture tokens")).unwrap();
    assert!(line.contains("ERROR") && line.contains("SessionManagerLayer"), "{line}");
}

#[tokio::test]
async fn console_actions_are_logged_with_their_actor_and_pages_never_show_the_key() {
    if common::ran_in_own_process(
        "logs::console_actions_are_logged_with_their_actor_and_pages_never_show_the_key",
    ) {
        return;
    }
    logs();
    let sandbox = Sandbox::builder().api_key(API_KEY).start().await.unwrap();
    let config = sandbox.config().retry(tower_sovendus::RetryPolicy::never()).build().unwrap();
    let shop = crate::console::ConsoleShop::start(config, tower_sovendus::MokaTokenStore::new(100)).await;
    sandbox.fault_next(1, Fault::Status(StatusCode::FORBIDDEN));
    shop.convert(TOKEN, "L-1").await;
    let id = shop.id_of(TOKEN).await;
    let same_origin = [("sec-fetch-site", "same-origin")];
    let mut pages = String::new();
    for path in
        ["", "/conversions/parked", &format!("/conversion/{id}"), "/api/overview", "/api/conversions/parked"]
    {
        pages.push_str(&shop.get(Some("admin"), path).await.1);
    }
    let masked = format!("****{}", &API_KEY[API_KEY.len() - 4..]);
    assert!(!pages.contains(API_KEY) && !pages.contains(&masked), "the API key is shown");
    assert_eq!(
        shop.post("admin", &format!("/conversion/{id}/void"), &same_origin, &[]).await.0,
        StatusCode::SEE_OTHER
    );
    assert_eq!(shop.post("reader", "/parked/retry", &same_origin, &[]).await.0, StatusCode::FORBIDDEN);

    let logs = logs();
    let line = |what: &str| logs.lines().find(|line| line.contains(what)).map(str::to_owned);
    let void = line("Sovendus console: void").expect("the void is logged");
    assert!(void.contains("INFO") && void.contains("ada@shop.example") && void.contains(&id), "{void}");
    let refused = line("Sovendus console refused a request").expect("the refusal is logged");
    assert!(refused.contains("WARN") && refused.contains("rita@shop.example"), "{refused}");
    assert!(!logs.contains(API_KEY), "the API key is in the logs");
}
