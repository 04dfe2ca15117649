//! A fake Sovendus API on 127.0.0.1, for the demo shop and for tests (feature `sandbox`).
//!
//! It answers like the real API: 200 with a receipt, 403 for a wrong key, 404 or 405 for a
//! wrong URL or method, 422 for a malformed body, an unknown product or an unknown token. It
//! records the calls it receives (the latest 10,000 by default), and it can be scripted to
//! fail the next calls.
//!
//! ```
//! use tower_sovendus::{SovReqToken, SovendusClient, sandbox::{Fault, Sandbox}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = Sandbox::start().await?;
//! let client = SovendusClient::new(&sandbox.config().build()?);
//! let token: SovReqToken = Sandbox::TEST_TOKEN.parse()?;
//!
//! sandbox.fault_next(1, Fault::Status(http::StatusCode::SERVICE_UNAVAILABLE));
//! assert!(client.send(&token).await.is_err());
//! assert!(client.send(&token).await.is_ok());
//!
//! let calls = sandbox.conversions();
//! assert_eq!(calls.len(), 2);
//! assert_eq!(calls[1].status(), Some(http::StatusCode::OK));
//! assert_eq!(calls[1].path(), format!("/ext/{}/{}/api", Sandbox::PRODUCT_ID, Sandbox::TEST_TOKEN));
//! # Ok(()) }
//! ```
//!
//! # Testing a shop
//!
//! Point the layer at the sandbox with [`Sandbox::config`] (its endpoint, product and key), and
//! drive the shop as a visitor would: a landing with the token, then an order with the
//! session's cookie. [`fault_next`](Sandbox::fault_next) and
//! [`fail_every`](Sandbox::fail_every) script Sovendus' failures ([`Fault`]: a status, a 429
//! with `Retry-After`, a slow answer, a dropped connection, a cut-off answer),
//! [`take_down`](Sandbox::take_down) and [`bring_up`](Sandbox::bring_up) an outage on the same
//! port, and [`accepted`](Sandbox::accepted) lists what was booked.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, body::Body, routing::{get, post}};
//! use http::{Request, StatusCode, header};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_sessions::{MemoryStore, SessionManagerLayer, cookie::SameSite};
//! use tower_sovendus::{Outcome, RetryPolicy, SovendusConversion, SovendusLayer, sandbox::{Fault, Sandbox}};
//!
//! async fn order(conversion: SovendusConversion) -> &'static str {
//!     match conversion.send().await {
//!         Ok(Outcome::Sent { .. }) => "booked",
//!         _ => "not booked",
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = Sandbox::start().await?;
//! let quick = RetryPolicy::default().initial_backoff(Duration::from_millis(10));
//! let layer = SovendusLayer::new(sandbox.config().retry(quick).build()?);
//! let app = Router::new().route("/", get(|| async { "welcome" })).route("/order", post(order)).layer(
//!     ServiceBuilder::new()
//!         .layer(SessionManagerLayer::new(MemoryStore::default()).with_same_site(SameSite::Lax))
//!         .layer(layer),
//! );
//!
//! // A visitor lands from Sovendus...
//! let landing = Request::get(format!("/?sovReqToken={}", Sandbox::TEST_TOKEN)).body(Body::empty())?;
//! let response = app.clone().oneshot(landing).await?;
//! let cookie = response.headers()[header::SET_COOKIE].to_str()?.split(';').next().unwrap_or_default();
//! // ...and orders while Sovendus fails twice: the quick retries deliver it.
//! sandbox.fault_next(2, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
//! let order = Request::post("/order").header(header::COOKIE, cookie).body(Body::empty())?;
//! assert_eq!(app.oneshot(order).await?.status(), StatusCode::OK);
//! assert_eq!(sandbox.accepted().len(), 1);
//! assert_eq!(sandbox.conversions().len(), 3);
//! # Ok(()) }
//! ```

mod faults;
mod record;
mod server;

use std::{
    collections::HashSet,
    fmt, io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{net::TcpListener, sync::Notify, task::JoinHandle};

pub use self::{faults::Fault, record::Conversion};
use self::{
    faults::Faults,
    record::Recorded,
    server::{Shared, serve},
};
use crate::{
    config::{SovendusConfig, SovendusConfigBuilder},
    sync::lock,
};

/// A running fake Sovendus API; it stops when dropped.
///
/// ```
/// use tower_sovendus::sandbox::Sandbox;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sandbox = Sandbox::start().await?;
/// let config = sandbox.config().build()?;
/// assert_eq!(config.endpoint().as_str(), format!("{}/", sandbox.endpoint()));
/// assert_eq!(config.product_ids()[0].as_str(), Sandbox::PRODUCT_ID);
/// # Ok(()) }
/// ```
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Sandbox {
    /// The API key the sandbox accepts by default.
    pub const API_KEY: &'static str = "sandbox-api-key-0000";
    /// The product ID the sandbox knows by default.
    pub const PRODUCT_ID: &'static str = "9bc72425-902c-3abf-9db8-8b186d7cb160";
    /// The test token from Sovendus' integration guide; always known.
    pub const TEST_TOKEN: &'static str = "12345-test-123-12345";

    /// Starts a sandbox with the default key and product that accepts any well-formed token.
    pub async fn start() -> io::Result<Self> {
        Self::builder().start().await
    }

    /// Configures a sandbox before starting it.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder {
            api_key: Self::API_KEY.to_owned(),
            products: vec![Self::PRODUCT_ID.to_owned()],
            tokens: None,
            keep_calls: Self::CALLS_KEPT,
        }
    }

    /// How many of the latest calls a sandbox keeps by default (see
    /// [`SandboxBuilder::keep_calls`]): a long-running demo shop does not grow without bound.
    pub const CALLS_KEPT: usize = 10_000;

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint to configure, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A config builder pointing at this sandbox, with its first product and its key.
    pub fn config(&self) -> SovendusConfigBuilder {
        SovendusConfig::builder(&self.shared.products[0], &self.shared.api_key).endpoint(self.endpoint())
    }

    /// Answers the next `count` calls with `fault` (after any faults already scripted).
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower_sovendus::{SovReqToken, SovendusClient, sandbox::{Fault, Sandbox}};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// let client = SovendusClient::new(&sandbox.config().build()?);
    /// let token: SovReqToken = Sandbox::TEST_TOKEN.parse()?;
    /// sandbox.fault_next(2, Fault::Status(StatusCode::TOO_MANY_REQUESTS));
    /// assert!(client.send(&token).await.unwrap_err().is_retryable());
    /// assert!(client.send(&token).await.unwrap_err().is_retryable());
    /// assert!(client.send(&token).await.is_ok());
    /// # Ok(()) }
    /// ```
    pub fn fault_next(&self, count: usize, fault: Fault) {
        lock(&self.shared.faults).next.extend(std::iter::repeat_n(fault, count));
    }

    /// Makes every `period`-th call fail with the next of `faults`, in turn, until
    /// [`stop_faults`](Self::stop_faults): a flaky API. Scripted
    /// [`fault_next`](Self::fault_next) faults come first.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower_sovendus::{SovReqToken, SovendusClient, sandbox::{Fault, Sandbox}};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// let client = SovendusClient::new(&sandbox.config().build()?);
    /// let token: SovReqToken = Sandbox::TEST_TOKEN.parse()?;
    /// sandbox.fail_every(3, [Fault::Status(StatusCode::INTERNAL_SERVER_ERROR), Fault::Refuse]);
    /// for _ in 0..6 {
    ///     let _ = client.send(&token).await;
    /// }
    /// let statuses: Vec<_> = sandbox.conversions().iter().map(|call| call.status()).collect();
    /// let ok = Some(StatusCode::OK);
    /// assert_eq!(statuses, [ok, ok, Some(StatusCode::INTERNAL_SERVER_ERROR), ok, ok, None]);
    /// # Ok(()) }
    /// ```
    pub fn fail_every(&self, period: usize, faults: impl IntoIterator<Item = Fault>) {
        let mut state = lock(&self.shared.faults);
        state.period = period;
        state.cycle = faults.into_iter().collect();
        state.calls = 0;
    }

    /// Drops every scripted and periodic fault.
    pub fn stop_faults(&self) {
        *lock(&self.shared.faults) = Faults::default();
    }

    /// Stops listening and drops every open connection: calls are refused at connect time,
    /// as when the API is down, until [`bring_up`](Self::bring_up).
    ///
    /// ```
    /// use tower_sovendus::{SovReqToken, SovendusClient, SovendusError, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// let client = SovendusClient::new(&sandbox.config().build()?);
    /// let token: SovReqToken = Sandbox::TEST_TOKEN.parse()?;
    /// sandbox.take_down().await;
    /// assert!(matches!(client.send(&token).await, Err(SovendusError::Connection(_))));
    /// sandbox.bring_up().await?;
    /// assert!(client.send(&token).await.is_ok());
    /// # Ok(()) }
    /// ```
    pub async fn take_down(&self) {
        let server = lock(&self.server).take();
        if let Some(server) = server {
            server.abort();
            // Wait until the listener is really closed.
            let _ = server.await;
        }
    }

    /// Listens again on the same address after [`take_down`](Self::take_down).
    ///
    /// See [`take_down`](Self::take_down) for an example.
    pub async fn bring_up(&self) -> io::Result<()> {
        if lock(&self.server).is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr).await?;
        *lock(&self.server) = Some(tokio::spawn(serve(listener, self.shared.clone())));
        Ok(())
    }

    /// The calls received so far, in order, whatever they were answered: every call, or the
    /// latest [`keep_calls`](SandboxBuilder::keep_calls) of them
    /// ([`calls_received`](Self::calls_received) counts them all).
    pub fn conversions(&self) -> Vec<Conversion> {
        lock(&self.shared.calls).latest.iter().cloned().collect()
    }

    /// How many calls the sandbox has received, including those no longer kept.
    pub fn calls_received(&self) -> usize {
        lock(&self.shared.calls).received()
    }

    /// The calls answered with 200.
    pub fn accepted(&self) -> Vec<Conversion> {
        self.conversions().into_iter().filter(|c| c.status == Some(http::StatusCode::OK)).collect()
    }

    /// Waits until at least `count` calls were answered (or refused, or abandoned by their
    /// client), or `timeout` passed; returns the calls kept, as [`conversions`](Self::conversions).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_sovendus::{SovReqToken, SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// let client = SovendusClient::new(&sandbox.config().build()?);
    /// let token: SovReqToken = Sandbox::TEST_TOKEN.parse()?;
    /// tokio::spawn(async move { client.send(&token).await });
    /// let calls = sandbox.wait_for_conversions(1, Duration::from_secs(5)).await;
    /// assert_eq!(calls.len(), 1);
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_conversions(&self, count: usize, timeout: Duration) -> Vec<Conversion> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let finished = self.shared.finished.notified();
            if lock(&self.shared.calls).finished >= count {
                return self.conversions();
            }
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                return self.conversions();
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(server) = lock(&self.server).take() {
            server.abort();
        }
    }
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// Configures a [`Sandbox`].
///
/// ```
/// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sandbox = Sandbox::builder().known_tokens(["1095752fb409-457a"]).start().await?;
/// let client = SovendusClient::new(&sandbox.config().build()?);
/// assert!(client.send(&"1095752fb409-457a".parse()?).await.is_ok());
/// assert!(client.send(&"6f0e7c3a-unknown".parse()?).await.is_err());
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use]
pub struct SandboxBuilder {
    api_key: String,
    products: Vec<String>,
    tokens: Option<HashSet<String>>,
    keep_calls: usize,
}

impl SandboxBuilder {
    /// The API key to accept (default [`Sandbox::API_KEY`]).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = key.into();
        self
    }

    /// Adds a known product ID ([`Sandbox::PRODUCT_ID`] is always known).
    pub fn product(mut self, product_id: impl Into<String>) -> Self {
        self.products.push(product_id.into());
        self
    }

    /// Knows only these tokens (and [`Sandbox::TEST_TOKEN`]); others get 422 "Token not found.".
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::builder().known_tokens(["1095752fb409-457a"]).start().await?;
    /// let client = SovendusClient::new(&sandbox.config().build()?);
    /// assert!(client.send(&"1095752fb409-457a".parse()?).await.is_ok());
    /// let error = client.send(&"6f0e7c3a-unknown".parse()?).await.unwrap_err();
    /// assert_eq!(error.to_string(), "Sovendus refused the product ID or token (422): Token not found.");
    /// # Ok(()) }
    /// ```
    pub fn known_tokens<I: IntoIterator<Item = T>, T: Into<String>>(mut self, tokens: I) -> Self {
        let mut known: HashSet<String> = tokens.into_iter().map(Into::into).collect();
        known.insert(Sandbox::TEST_TOKEN.to_owned());
        self.tokens = Some(known);
        self
    }

    /// Keeps the latest `calls` calls for [`Sandbox::conversions`] (default
    /// [`Sandbox::CALLS_KEPT`], at least 1); older ones are let go, and only counted.
    ///
    /// ```
    /// use tower_sovendus::{SovReqToken, SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::builder().keep_calls(1).start().await?;
    /// let client = SovendusClient::new(&sandbox.config().build()?);
    /// client.send(&Sandbox::TEST_TOKEN.parse()?).await?;
    /// client.send(&"1095752fb409-457a".parse()?).await?;
    /// let calls = sandbox.conversions();
    /// assert_eq!(calls.len(), 1);
    /// assert_eq!(calls[0].token(), Some("1095752fb409-457a"));
    /// # Ok(()) }
    /// ```
    pub fn keep_calls(mut self, calls: usize) -> Self {
        self.keep_calls = calls.max(1);
        self
    }

    /// Binds 127.0.0.1 on a free port and starts serving.
    pub async fn start(self) -> io::Result<Sandbox> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            api_key: self.api_key,
            products: self.products,
            tokens: self.tokens,
            faults: Mutex::default(),
            calls: Mutex::new(Recorded::new(self.keep_calls)),
            finished: Notify::new(),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        tracing::debug!(%addr, "Sovendus sandbox listening");
        Ok(Sandbox { addr, shared, server: Mutex::new(Some(server)) })
    }
}
