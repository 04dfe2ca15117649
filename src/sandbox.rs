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

use std::{
    collections::{HashSet, VecDeque},
    fmt, io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Channel, Full, Limited, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::Notify, task::JoinHandle};

use crate::{SovReqToken, SovendusConfig, SovendusConfigBuilder, sync::lock};

/// A scripted misbehaviour for the next calls.
///
/// ```
/// use std::time::Duration;
/// use tower_sovendus::{SovReqToken, SovendusClient, SovendusError, sandbox::{Fault, Sandbox}};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sandbox = Sandbox::start().await?;
/// let client = SovendusClient::new(&sandbox.config().request_timeout(Duration::from_millis(100)).build()?);
/// let token: SovReqToken = Sandbox::TEST_TOKEN.parse()?;
/// sandbox.fault_next(1, Fault::Delay(Duration::from_secs(1)));
/// assert!(matches!(client.send(&token).await, Err(SovendusError::Timeout)));
/// sandbox.fault_next(1, Fault::Refuse);
/// assert!(matches!(client.send(&token).await, Err(SovendusError::Connection(_))));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer this status with the real API's body for it.
    Status(StatusCode),
    /// Answer 429 with `Retry-After` in whole seconds (rounded up).
    RateLimited(Duration),
    /// Wait this long, then answer normally. A client that hangs up meanwhile gets nothing,
    /// and nothing is booked: the call stays without a status.
    Delay(Duration),
    /// Close the connection without answering.
    Refuse,
    /// Process the call, send this status and half its body, then reset the connection. A
    /// 200 cut off this way is booked.
    CutOff(StatusCode),
}

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

struct Shared {
    api_key: String,
    products: Vec<String>,
    tokens: Option<HashSet<String>>,
    faults: Mutex<Faults>,
    calls: Mutex<Recorded>,
    finished: Notify,
}

/// The calls received: the latest `kept` in full, and how many came before them.
struct Recorded {
    latest: VecDeque<Conversion>,
    kept: usize,
    /// Calls let go to keep the record within `kept`.
    forgotten: usize,
    /// Calls finished, whether still kept or not.
    finished: usize,
}

impl Recorded {
    fn new(kept: usize) -> Self {
        Self { latest: VecDeque::new(), kept, forgotten: 0, finished: 0 }
    }

    /// Records a call and returns its number (counting every call received).
    fn push(&mut self, conversion: Conversion) -> usize {
        if self.latest.len() == self.kept {
            self.latest.pop_front();
            self.forgotten += 1;
        }
        self.latest.push_back(conversion);
        self.received() - 1
    }

    /// How many calls were received, including those let go.
    fn received(&self) -> usize {
        self.forgotten + self.latest.len()
    }

    /// Call `number`, unless it has been let go.
    fn get_mut(&mut self, number: usize) -> Option<&mut Conversion> {
        let index = number.checked_sub(self.forgotten)?;
        self.latest.get_mut(index)
    }
}

/// The scripted faults, then the periodic ones.
#[derive(Default)]
struct Faults {
    next: VecDeque<Fault>,
    /// Every `period`-th call gets the next of `cycle`, in turn.
    period: usize,
    cycle: Vec<Fault>,
    calls: usize,
}

impl Faults {
    fn for_next_call(&mut self) -> Option<Fault> {
        self.calls += 1;
        if let Some(fault) = self.next.pop_front() {
            return Some(fault);
        }
        if self.period == 0 || self.cycle.is_empty() || self.calls % self.period != 0 {
            return None;
        }
        let turn = (self.calls / self.period - 1) % self.cycle.len();
        Some(self.cycle[turn].clone())
    }
}

impl Sandbox {
    /// The API key the sandbox accepts by default.
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, SovendusConfig, SovendusError, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// let with_key = |key| SovendusConfig::builder(Sandbox::PRODUCT_ID, key).endpoint(sandbox.endpoint());
    /// let token = Sandbox::TEST_TOKEN.parse()?;
    /// assert!(SovendusClient::new(&with_key(Sandbox::API_KEY).build()?).send(&token).await.is_ok());
    /// let error = SovendusClient::new(&with_key("XXXX-XXXXX").build()?).send(&token).await.unwrap_err();
    /// assert!(matches!(error, SovendusError::InvalidApiKey));
    /// # Ok(()) }
    /// ```
    pub const API_KEY: &'static str = "sandbox-api-key-0000";
    /// The product ID the sandbox knows by default.
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, SovendusError, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// let config = sandbox.config().extra_product_id("product-b").build()?;
    /// assert_eq!(config.product_ids()[0].as_str(), Sandbox::PRODUCT_ID);
    /// let client = SovendusClient::new(&config);
    /// let token = Sandbox::TEST_TOKEN.parse()?;
    /// let error = client.send_for_product(&config.product_ids()[1], &token).await.unwrap_err();
    /// assert!(error.to_string().ends_with("(422): External product id not found."));
    /// # Ok(()) }
    /// ```
    pub const PRODUCT_ID: &'static str = "9bc72425-902c-3abf-9db8-8b186d7cb160";
    /// The test token from Sovendus' integration guide; always known.
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::builder().known_tokens(["1095752fb409-457a"]).start().await?;
    /// let client = SovendusClient::new(&sandbox.config().build()?);
    /// assert!(client.send(&Sandbox::TEST_TOKEN.parse()?).await.is_ok());
    /// # Ok(()) }
    /// ```
    pub const TEST_TOKEN: &'static str = "12345-test-123-12345";

    /// Starts a sandbox with the default key and product that accepts any well-formed token.
    ///
    /// ```
    /// use tower_sovendus::sandbox::Sandbox;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// assert!(sandbox.endpoint().starts_with("http://127.0.0.1:"));
    /// assert!(sandbox.conversions().is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn start() -> io::Result<Self> {
        Self::builder().start().await
    }

    /// Configures a sandbox before starting it.
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::builder().api_key("my-api-key-1234").product("product-b").start().await?;
    /// let config = sandbox.config().extra_product_id("product-b").build()?;
    /// let client = SovendusClient::new(&config);
    /// let receipt = client.send_for_product(&config.product_ids()[1], &Sandbox::TEST_TOKEN.parse()?).await?;
    /// assert_eq!(receipt.external_product_id(), Some("product-b"));
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```
    /// use tower_sovendus::sandbox::Sandbox;
    ///
    /// assert_eq!(Sandbox::CALLS_KEPT, 10_000);
    /// ```
    pub const CALLS_KEPT: usize = 10_000;

    /// The address it listens on.
    ///
    /// ```
    /// use tower_sovendus::sandbox::Sandbox;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// assert!(sandbox.addr().ip().is_loopback());
    /// assert_ne!(sandbox.addr().port(), 0);
    /// # Ok(()) }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint to configure, e.g. `http://127.0.0.1:40123`.
    ///
    /// ```
    /// use tower_sovendus::sandbox::Sandbox;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// assert_eq!(sandbox.endpoint(), format!("http://{}", sandbox.addr()));
    /// # Ok(()) }
    /// ```
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A config builder pointing at this sandbox, with its first product and its key.
    ///
    /// ```
    /// use tower_sovendus::sandbox::Sandbox;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// let config = sandbox.config().build()?;
    /// assert_eq!(config.endpoint().port(), Some(sandbox.addr().port()));
    /// assert_eq!(config.product_ids()[0].as_str(), Sandbox::PRODUCT_ID);
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```
    /// use tower_sovendus::sandbox::{Fault, Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// sandbox.fail_every(2, [Fault::Refuse]);
    /// sandbox.stop_faults();
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// let client = SovendusClient::new(&sandbox.config().build()?);
    /// client.send(&Sandbox::TEST_TOKEN.parse()?).await?;
    /// let calls = sandbox.conversions();
    /// assert_eq!(calls.len(), 1);
    /// assert_eq!(calls[0].token(), Some(Sandbox::TEST_TOKEN));
    /// # Ok(()) }
    /// ```
    pub fn conversions(&self) -> Vec<Conversion> {
        lock(&self.shared.calls).latest.iter().cloned().collect()
    }

    /// How many calls the sandbox has received, including those no longer kept.
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::builder().keep_calls(2).start().await?;
    /// let client = SovendusClient::new(&sandbox.config().build()?);
    /// for _ in 0..3 {
    ///     client.send(&Sandbox::TEST_TOKEN.parse()?).await?;
    /// }
    /// assert_eq!((sandbox.calls_received(), sandbox.conversions().len()), (3, 2));
    /// # Ok(()) }
    /// ```
    pub fn calls_received(&self) -> usize {
        lock(&self.shared.calls).received()
    }

    /// The calls answered with 200.
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
    /// sandbox.fault_next(1, Fault::Status(StatusCode::BAD_GATEWAY));
    /// assert!(client.send(&token).await.is_err() && client.send(&token).await.is_ok());
    /// assert_eq!((sandbox.conversions().len(), sandbox.accepted().len()), (2, 1));
    /// # Ok(()) }
    /// ```
    pub fn accepted(&self) -> Vec<Conversion> {
        self.conversions().into_iter().filter(|c| c.status == Some(StatusCode::OK)).collect()
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
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::builder().api_key("my-api-key-1234").start().await?;
    /// let config = sandbox.config().build()?;
    /// assert_eq!(config.api_key().to_string(), "****1234");
    /// assert!(SovendusClient::new(&config).send(&Sandbox::TEST_TOKEN.parse()?).await.is_ok());
    /// # Ok(()) }
    /// ```
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = key.into();
        self
    }

    /// Adds a known product ID ([`Sandbox::PRODUCT_ID`] is always known).
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::builder().product("product-b").start().await?;
    /// let config = sandbox.config().extra_product_id("product-b").build()?;
    /// let client = SovendusClient::new(&config);
    /// let receipt = client.send_for_product(&config.product_ids()[1], &Sandbox::TEST_TOKEN.parse()?).await?;
    /// assert_eq!(receipt.external_product_id(), Some("product-b"));
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```
    /// use tower_sovendus::sandbox::Sandbox;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::builder().api_key("my-api-key-1234").start().await?;
    /// assert!(sandbox.addr().ip().is_loopback());
    /// assert_eq!(sandbox.config().build()?.api_key().to_string(), "****1234");
    /// # Ok(()) }
    /// ```
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

/// One call the sandbox received.
///
/// ```
/// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sandbox = Sandbox::start().await?;
/// SovendusClient::new(&sandbox.config().build()?).send(&Sandbox::TEST_TOKEN.parse()?).await?;
/// let call = &sandbox.conversions()[0];
/// assert_eq!(call.token(), Some(Sandbox::TEST_TOKEN));
/// // Debug leaves out the body, which holds the API key.
/// assert!(!format!("{call:?}").contains(Sandbox::API_KEY));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Conversion {
    method: Method,
    path: String,
    content_type: Option<String>,
    body: Bytes,
    status: Option<StatusCode>,
    received_at: SystemTime,
    finished: bool,
}

impl Conversion {
    /// The request method.
    ///
    /// ```
    /// use http::{Method, StatusCode};
    /// use tower_sovendus::sandbox::Sandbox;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// let url = format!("{}/ext/{}/{}/api", sandbox.endpoint(), Sandbox::PRODUCT_ID, Sandbox::TEST_TOKEN);
    /// reqwest::get(url).await?;
    /// let call = &sandbox.conversions()[0];
    /// assert_eq!((call.method(), call.status()), (&Method::GET, Some(StatusCode::METHOD_NOT_ALLOWED)));
    /// # Ok(()) }
    /// ```
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request path, e.g. `/ext/{product}/{token}/api`.
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, SovendusError, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// let config = sandbox.config().endpoint(format!("{}/v1", sandbox.endpoint())).build()?;
    /// let error = SovendusClient::new(&config).send(&Sandbox::TEST_TOKEN.parse()?).await.unwrap_err();
    /// assert!(matches!(error, SovendusError::WrongUrl { .. }));
    /// let expected = format!("/v1/ext/{}/{}/api", Sandbox::PRODUCT_ID, Sandbox::TEST_TOKEN);
    /// assert_eq!(sandbox.conversions()[0].path(), expected);
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `Content-Type` header, if any.
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// SovendusClient::new(&sandbox.config().build()?).send(&Sandbox::TEST_TOKEN.parse()?).await?;
    /// assert_eq!(sandbox.conversions()[0].content_type(), Some("application/json"));
    /// # Ok(()) }
    /// ```
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The raw request body (it holds the API key).
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// SovendusClient::new(&sandbox.config().build()?).send(&Sandbox::TEST_TOKEN.parse()?).await?;
    /// let expected = format!(r#"{{"apiKey":"{}"}}"#, Sandbox::API_KEY);
    /// assert_eq!(sandbox.conversions()[0].body(), expected.as_bytes());
    /// # Ok(()) }
    /// ```
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The product ID and token from the path, if it had the API's shape.
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// SovendusClient::new(&sandbox.config().build()?).send(&Sandbox::TEST_TOKEN.parse()?).await?;
    /// reqwest::get(format!("{}/health", sandbox.endpoint())).await?;
    /// let calls = sandbox.conversions();
    /// assert_eq!(calls[0].product_and_token(), Some((Sandbox::PRODUCT_ID, Sandbox::TEST_TOKEN)));
    /// assert_eq!(calls[1].product_and_token(), None);
    /// # Ok(()) }
    /// ```
    pub fn product_and_token(&self) -> Option<(&str, &str)> {
        parse_path(&self.path)
    }

    /// The token from the path, if it had the API's shape.
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// SovendusClient::new(&sandbox.config().build()?).send(&"1095752fb409-457a".parse()?).await?;
    /// assert_eq!(sandbox.conversions()[0].token(), Some("1095752fb409-457a"));
    /// # Ok(()) }
    /// ```
    pub fn token(&self) -> Option<&str> {
        self.product_and_token().map(|(_, token)| token)
    }

    /// The status answered, or `None` if the call was refused, or its client hung up before
    /// the answer (or it is still being answered).
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
    /// sandbox.fault_next(1, Fault::Refuse);
    /// assert!(client.send(&token).await.is_err() && client.send(&token).await.is_ok());
    /// let statuses: Vec<_> = sandbox.conversions().iter().map(|call| call.status()).collect();
    /// assert_eq!(statuses, [None, Some(StatusCode::OK)]);
    /// # Ok(()) }
    /// ```
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// When the call arrived.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// let before = SystemTime::now();
    /// SovendusClient::new(&sandbox.config().build()?).send(&Sandbox::TEST_TOKEN.parse()?).await?;
    /// assert!(sandbox.conversions()[0].received_at() >= before);
    /// # Ok(()) }
    /// ```
    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }
}

impl fmt::Debug for Conversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conversion")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("status", &self.status)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping the set (when the server task is aborted) aborts every connection.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| handle(shared.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

type Answer = Result<Response<BoxBody<Bytes, io::Error>>, io::Error>;

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Answer {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let body = Limited::new(request.into_body(), 64 * 1024)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let fault = lock(&shared.faults).for_next_call();
    let call = Call::arrived(
        &shared,
        Conversion {
            method: method.clone(),
            path: path.clone(),
            content_type,
            body: body.clone(),
            status: None,
            received_at: SystemTime::now(),
            finished: false,
        },
    );
    let (status, body, headers, cut) = match fault {
        Some(Fault::Refuse) => {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "scripted refusal"));
        }
        Some(Fault::Status(status)) => with_no_headers(canned(status)),
        Some(Fault::RateLimited(wait)) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let (status, body) = canned(StatusCode::TOO_MANY_REQUESTS);
            (status, body, vec![(header::RETRY_AFTER, seconds.to_string())], false)
        }
        Some(Fault::Delay(delay)) => {
            // Dropped here if the client hangs up: nothing is booked, the call has no status.
            tokio::time::sleep(delay).await;
            with_no_headers(shared.answer(&method, &path, &body))
        }
        Some(Fault::CutOff(status)) => {
            let (status, body) =
                if status == StatusCode::OK { shared.answer(&method, &path, &body) } else { canned(status) };
            (status, body, Vec::new(), true)
        }
        None => with_no_headers(shared.answer(&method, &path, &body)),
    };
    call.answered(status);
    let mut response = Response::builder().status(status).header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        response = response.header(name, value);
    }
    let body = if cut {
        // Promise the whole body, send half, then fail it: hyper resets the connection.
        response = response.header(header::CONTENT_LENGTH, body.len().to_string());
        let (mut sender, cut_body) = Channel::new(1);
        let half = Bytes::copy_from_slice(&body.as_bytes()[..body.len() / 2]);
        sender.try_send(Frame::data(half)).map_err(|_| io::Error::other("channel closed"))?;
        // Fail the body only once hyper has flushed the status, headers and half the body.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            sender.abort(io::Error::new(io::ErrorKind::ConnectionReset, "scripted cut-off"));
        });
        cut_body.boxed()
    } else {
        Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed()
    };
    response.body(body).map_err(io::Error::other)
}

fn with_no_headers(
    (status, body): (StatusCode, String),
) -> (StatusCode, String, Vec<(header::HeaderName, String)>, bool) {
    (status, body, Vec::new(), false)
}

/// A call being answered; when it ends (answered, refused, or dropped because its client hung
/// up) it is marked finished and waiters are woken.
struct Call<'a> {
    shared: &'a Shared,
    number: usize,
}

impl<'a> Call<'a> {
    fn arrived(shared: &'a Shared, conversion: Conversion) -> Self {
        Self { shared, number: lock(&shared.calls).push(conversion) }
    }

    fn answered(&self, status: StatusCode) {
        if let Some(call) = lock(&self.shared.calls).get_mut(self.number) {
            call.status = Some(status);
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        let mut calls = lock(&self.shared.calls);
        calls.finished += 1;
        if let Some(call) = calls.get_mut(self.number) {
            call.finished = true;
        }
        drop(calls);
        self.shared.finished.notify_waiters();
    }
}

impl Shared {
    /// The real API's answer to a call: status and JSON body.
    fn answer(&self, method: &Method, path: &str, body: &[u8]) -> (StatusCode, String) {
        let unprocessable = |message: &str| (StatusCode::UNPROCESSABLE_ENTITY, error_body(message));
        let Some((product, token)) = parse_path(path) else {
            return canned(StatusCode::NOT_FOUND);
        };
        if method != Method::POST {
            return canned(StatusCode::METHOD_NOT_ALLOWED);
        }
        let Some(api_key) = api_key_of(body) else {
            return canned(StatusCode::UNPROCESSABLE_ENTITY);
        };
        if api_key != self.api_key {
            return canned(StatusCode::FORBIDDEN);
        }
        if !self.products.iter().any(|known| known == product) {
            return unprocessable("External product id not found.");
        }
        let token_known =
            SovReqToken::new(token).is_ok() && self.tokens.as_ref().is_none_or(|known| known.contains(token));
        if !token_known {
            return unprocessable("Token not found.");
        }
        let receipt = serde_json::json!({ "externalProductId": product, "sovReqToken": token });
        (StatusCode::OK, receipt.to_string())
    }
}

fn parse_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/ext/")?.strip_suffix("/api")?;
    let (product, token) = rest.split_once('/')?;
    (!product.is_empty() && !token.is_empty() && !token.contains('/')).then_some((product, token))
}

fn api_key_of(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("apiKey")?.as_str().map(str::to_owned)
}

fn error_body(message: &str) -> String {
    serde_json::json!({ "message": message }).to_string()
}

/// The real API's answer for a status, with its usual message.
fn canned(status: StatusCode) -> (StatusCode, String) {
    let message = match status.as_u16() {
        403 => "Unauthorized.",
        404 | 405 => "Invalid API call.",
        422 => "Invalid API parameters.",
        429 => "Too many requests.",
        500..=599 => "Internal server error.",
        _ => status.canonical_reason().unwrap_or("Error."),
    };
    (status, error_body(message))
}
