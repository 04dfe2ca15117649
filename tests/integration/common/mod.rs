//! A small test shop served over loopback, the sandbox, and a cookie-keeping client.
#![allow(dead_code)]

pub mod clock;
pub mod counters;
pub mod database;
pub mod faulty;
pub mod postgres;
pub mod redis;
pub mod shop;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{Path, Query},
    routing::{get, post},
};
use reqwest::{Url, cookie::CookieStore, cookie::Jar};
use serde::Deserialize;
use tokio::{net::TcpListener, task::JoinHandle};
use tower_sessions::{MemoryStore, Session, SessionManagerLayer, SessionStore, cookie::SameSite};
use tower_sovendus::{
    Delivery, DeliverySchedule, Outcome, RetryPolicy, SovendusConfig, SovendusConfigBuilder,
    SovendusConversion, SovendusError, SovendusLayer, sandbox::Sandbox, store::TokenStore,
};

/// The session cookie's name (tower-sessions' default).
pub const SESSION_COOKIE: &str = "id";

/// A running test shop with its sandbox, and a first visitor (the shop derefs to it).
pub struct TestShop {
    pub sandbox: Sandbox,
    pub delivery: Delivery,
    pub visitor: Visitor,
}

/// A browser: a cookie-keeping client for one shop.
pub struct Visitor {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
}

impl std::ops::Deref for TestShop {
    type Target = Visitor;

    fn deref(&self) -> &Visitor {
        &self.visitor
    }
}

impl TestShop {
    /// A shop talking to a default sandbox with default options.
    pub async fn start() -> Self {
        Self::with(Sandbox::start().await.unwrap(), |config| config).await
    }

    /// A shop talking to `sandbox`, with options set by `configure`.
    pub async fn with(
        sandbox: Sandbox,
        configure: impl FnOnce(SovendusConfigBuilder) -> SovendusConfigBuilder,
    ) -> Self {
        Self::with_store(sandbox, configure, MemoryStore::default()).await
    }

    /// The same, with sessions kept in `store`.
    pub async fn with_store(
        sandbox: Sandbox,
        configure: impl FnOnce(SovendusConfigBuilder) -> SovendusConfigBuilder,
        store: impl SessionStore + Clone,
    ) -> Self {
        let config = configure(sandbox.config()).build().unwrap();
        Self::serving(sandbox, SovendusLayer::new(config), store).await
    }

    /// A shop talking to `sandbox`, with options set by `configure`, keeping captures and
    /// conversions in `tokens`: another shop on the same `tokens` is the same shop restarted
    /// (with sessions in `sessions`, shared likewise).
    pub async fn on_stores(
        sandbox: Sandbox,
        configure: impl FnOnce(SovendusConfigBuilder) -> SovendusConfigBuilder,
        tokens: impl TokenStore,
        sessions: MemoryStore,
    ) -> Self {
        let config = configure(sandbox.config()).build().unwrap();
        Self::serving(sandbox, SovendusLayer::with_store(config, tokens), sessions).await
    }

    async fn serving(sandbox: Sandbox, layer: SovendusLayer, sessions: impl SessionStore + Clone) -> Self {
        let delivery = layer.delivery();
        let app = shop_routes().layer(layer).layer(session_layer(sessions));
        let addr = serve(app).await;
        Self { sandbox, delivery, visitor: Visitor::new(addr) }
    }

    /// Another visitor, with cookies of their own.
    pub fn new_visitor(&self) -> Visitor {
        Visitor::new(self.addr)
    }
}

impl Visitor {
    pub fn new(addr: SocketAddr) -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder().cookie_provider(jar.clone()).build().unwrap();
        Self { addr, client, jar }
    }

    /// The same browser (client and cookies) at another instance of the shop on loopback.
    pub fn at(&self, addr: SocketAddr) -> Visitor {
        Self { addr, client: self.client.clone(), jar: self.jar.clone() }
    }

    pub fn url(&self, path_and_query: &str) -> Url {
        format!("http://{}{}", self.addr, path_and_query).parse().unwrap()
    }

    /// GETs a page and returns its status and body.
    pub async fn get(&self, path_and_query: &str) -> (u16, String) {
        let response = self.client.get(self.url(path_and_query)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Posts an order and returns what the handler said of the conversion.
    pub async fn order(&self) -> String {
        let response = self.client.post(self.url("/order")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// Posts an order that sends its conversion in the background; returns what the handler
    /// said.
    pub async fn order_in_background(&self) -> String {
        let response = self.client.post(self.url("/order-in-background")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// Posts `count` orders at once and returns what each said of the conversion.
    pub async fn concurrent_orders(&self, count: usize) -> Vec<String> {
        let orders: Vec<_> = (0..count)
            .map(|_| {
                let request = self.client.post(self.url("/order"));
                tokio::spawn(async move { request.send().await.unwrap().text().await.unwrap() })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(count);
        for order in orders {
            outcomes.push(order.await.unwrap());
        }
        outcomes
    }

    /// The token the shop holds for this visitor ("" for none).
    pub async fn pending_token(&self) -> String {
        self.get("/token").await.1
    }

    /// The visitor's session cookie value, if any.
    pub fn session_id(&self) -> Option<String> {
        let header = self.jar.cookies(&self.url("/"))?;
        header.to_str().unwrap().split("; ").find_map(|pair| {
            pair.strip_prefix(SESSION_COOKIE).and_then(|rest| rest.strip_prefix('=')).map(str::to_owned)
        })
    }
}

/// Many visitors at once, each with their own token (`visitor-{index}`) and session cookie,
/// on one cookie-less client.
pub struct Visitors {
    client: reqwest::Client,
    cookies: Vec<String>,
}

impl Visitors {
    /// At most this many requests in flight, to stay within the file descriptor limit.
    const IN_FLIGHT: usize = 50;

    /// `count` visitors land with their tokens.
    pub async fn land(shop: &TestShop, count: usize) -> Self {
        let client = reqwest::Client::new();
        let requests =
            (0..count).map(|index| client.get(shop.url(&format!("/landing?sovReqToken=visitor-{index}"))));
        let cookies = Self::all(requests, |response| {
            let cookie = response.headers().get(http::header::SET_COOKIE).expect("a session cookie");
            cookie.to_str().unwrap().split(';').next().unwrap().to_owned()
        })
        .await;
        Self { client, cookies }
    }

    /// Every visitor posts an order handled by `path`; returns what each handler said.
    async fn post(&self, shop: &TestShop, path: &str) -> Vec<String> {
        let requests = self
            .cookies
            .iter()
            .map(|cookie| self.client.post(shop.url(path)).header(http::header::COOKIE, cookie.clone()));
        let responses = Self::all(requests, |response| response).await;
        let mut said = Vec::with_capacity(responses.len());
        for response in responses {
            said.push(response.text().await.unwrap());
        }
        said
    }

    pub async fn order(&self, shop: &TestShop) -> Vec<String> {
        self.post(shop, "/order").await
    }

    pub async fn order_in_background(&self, shop: &TestShop) -> Vec<String> {
        self.post(shop, "/order-in-background").await
    }

    /// Sends every request, a bounded number at a time, and maps each response in order.
    async fn all<T: Send + 'static>(
        requests: impl Iterator<Item = reqwest::RequestBuilder>,
        map: fn(reqwest::Response) -> T,
    ) -> Vec<T> {
        let permits = Arc::new(tokio::sync::Semaphore::new(Self::IN_FLIGHT));
        let tasks: Vec<_> = requests
            .map(|request| {
                let permits = permits.clone();
                tokio::spawn(async move {
                    let _permit = permits.acquire_owned().await.unwrap();
                    let response = request.send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    map(response)
                })
            })
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    }
}

/// The session layer a shop should use: Lax, and not `Secure` because the tests speak plain
/// HTTP on loopback.
/// Sends `signal` (`-STOP`, `-CONT`, `-TERM`) to the process `child`, with `kill`.
pub fn signal(child: &std::process::Child, signal: &str) {
    let sent = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status();
    assert!(sent.is_ok_and(|status| status.success()), "kill {signal} sent to process {}", child.id());
}

pub fn session_layer<S: SessionStore + Clone>(store: S) -> SessionManagerLayer<S> {
    SessionManagerLayer::new(store).with_same_site(SameSite::Lax).with_secure(false)
}

/// Serves `app` on a free loopback port.
pub async fn serve(app: Router) -> SocketAddr {
    spawn_server(app).await.0
}

/// Serves `app` on a free loopback port until the returned task is aborted.
pub async fn spawn_server(app: Router) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }))
}

/// The shop's routes, without any layer.
pub fn shop_routes() -> Router {
    Router::new()
        .route("/", get(|| async { "home" }))
        .route("/landing", get(|| async { "landing" }))
        .route("/products/{id}", get(|| async { "product" }))
        .route("/cart/add", get(add_to_cart))
        .route("/cart", get(cart))
        .route("/login", post(login))
        .route("/order", post(order))
        .route("/order-for/{order}", post(order_for))
        .route("/order-in-background", post(order_in_background))
        .route("/order-in-background-for/{order}", post(order_in_background_for))
        .route("/token", get(token))
        .route(
            "/session-id",
            get(|session: Session| async move { session.id().map(|id| id.to_string()).unwrap_or_default() }),
        )
}

#[derive(Deserialize)]
struct Item {
    item: String,
}

async fn add_to_cart(session: Session, Query(Item { item }): Query<Item>) -> &'static str {
    let mut cart: Vec<String> = session.get("cart").await.unwrap().unwrap_or_default();
    cart.push(item);
    session.insert("cart", cart).await.unwrap();
    "added"
}

async fn cart(session: Session) -> String {
    let cart: Vec<String> = session.get("cart").await.unwrap().unwrap_or_default();
    cart.join(",")
}

async fn login(session: Session) -> &'static str {
    session.cycle_id().await.unwrap();
    session.insert("user", "alice").await.unwrap();
    "logged in"
}

async fn token(conversion: SovendusConversion) -> String {
    conversion.token().await.map(|token| token.as_str().to_owned()).unwrap_or_default()
}

/// Says what became of the conversion, one word and details.
async fn order(conversion: SovendusConversion) -> String {
    describe(conversion.send().await)
}

/// The same, with the shop's reference of the order.
async fn order_for(Path(order): Path<String>, conversion: SovendusConversion) -> String {
    match order.parse() {
        Ok(order) => describe(conversion.for_order(order).send().await),
        Err(error) => format!("invalid order reference: {error}"),
    }
}

async fn order_in_background(conversion: SovendusConversion) -> String {
    describe(conversion.send_in_background().await)
}

/// The same, with the shop's reference of the order.
async fn order_in_background_for(Path(order): Path<String>, conversion: SovendusConversion) -> String {
    match order.parse() {
        Ok(order) => describe(conversion.for_order(order).send_in_background().await),
        Err(error) => format!("invalid order reference: {error}"),
    }
}

/// What an order's conversion ended in, as tests compare it: the state, then what Sovendus
/// answered (`owed: unavailable 503`), or the error that recorded nothing.
pub fn describe(result: Result<Outcome, SovendusError>) -> String {
    match result {
        Ok(Outcome::Sent { .. }) => "sent".to_owned(),
        Ok(Outcome::Owed { error: None, .. }) => "owed".to_owned(),
        Ok(Outcome::Owed { error: Some(error), .. }) => format!("owed: {}", describe_error(error)),
        Ok(Outcome::Parked { error, .. }) => format!("parked: {}", describe_error(error)),
        Ok(Outcome::Dead { error, .. }) => format!("dead: {}", describe_error(error)),
        Ok(Outcome::AlreadyConverted(_)) => "already_converted".to_owned(),
        Ok(Outcome::NoToken) => "no_token".to_owned(),
        Ok(Outcome::Unknown(_)) => "unknown".to_owned(),
        Ok(other) => format!("{other:?}"),
        Err(error) => describe_error(error),
    }
}

fn describe_error(error: SovendusError) -> String {
    match error {
        SovendusError::InvalidApiKey => "invalid_api_key".to_owned(),
        SovendusError::InvalidProductOrToken { message } => format!("invalid_product_or_token: {message}"),
        SovendusError::WrongUrl { status, message } => format!("wrong_url {}: {message}", status.as_u16()),
        SovendusError::Unavailable { status, .. } => format!("unavailable {}", status.as_u16()),
        SovendusError::RateLimited { .. } => "rate_limited".to_owned(),
        SovendusError::UnexpectedStatus { status, .. } => format!("unexpected_status {}", status.as_u16()),
        SovendusError::Timeout => "timeout".to_owned(),
        SovendusError::Connection(_) => "connection".to_owned(),
        SovendusError::Cancelled => "cancelled".to_owned(),
        SovendusError::QueueFull => "queue_full".to_owned(),
        SovendusError::ShuttingDown => "shutting_down".to_owned(),
        SovendusError::Store(_) => "token_store".to_owned(),
        SovendusError::Unjoinable(why) => format!("unjoinable: {why}"),
        error => format!("error {error}"),
    }
}

/// Retries quick enough for tests: waits from 10 ms to 100 ms, 5 attempts within 10 s.
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy::default()
        .initial_backoff(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(100))
        .max_elapsed(Duration::from_secs(10))
}

/// A delivery schedule quick enough for tests: the next attempt 200 ms after a failure, up to
/// 1 s apart; leases of 1 s, then a quarantine as long as the default request timeout (a test
/// whose instances take over each other's conversions shortens both); the workers look for due
/// conversions every 50 ms.
pub fn quick_schedule() -> DeliverySchedule {
    DeliverySchedule::default()
        .first_wait(Duration::from_millis(200))
        .max_wait(Duration::from_secs(1))
        .lease(Duration::from_secs(1))
        .quarantine(Duration::from_secs(30))
        .poll_interval(Duration::from_millis(50))
}

/// Polls `condition` every 20 ms for up to `within`; false if it never held.
pub async fn eventually(within: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A config for `sandbox` with every default.
pub fn config_for(sandbox: &Sandbox) -> SovendusConfig {
    sandbox.config().build().unwrap()
}

/// Runs the test named `test` (its path in this binary) again, alone, in a process of its own,
/// for a test that sets process-wide state: the environment, a global metrics recorder or
/// tracing subscriber. Returns `true` in the calling process once that run passed (the test
/// then has nothing left to do), `false` in the process of its own, where the test goes on.
pub fn ran_in_own_process(test: &str) -> bool {
    const ALONE: &str = "TOWER_SOVENDUS_TEST_ALONE";
    if std::env::var_os(ALONE).is_some() {
        return false;
    }
    let binary = std::env::current_exe().expect("the test binary's path");
    let run = std::process::Command::new(binary)
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(ALONE, "1")
        .output()
        .expect("the test binary runs again");
    let output = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{test} failed in a process of its own:\n{output}");
    assert!(output.contains("1 passed"), "{test} did not run in a process of its own:\n{output}");
    true
}
