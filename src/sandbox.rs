//! A fake Sovendus API on 127.0.0.1, for the demo shop and for tests (feature `sandbox`).
//!
//! It answers like the real API: 200 with a receipt, 403 for a wrong key, 404 or 405 for a
//! wrong URL or method, 422 for a malformed body, an unknown product or an unknown token. It
//! records every call it receives, and it can be scripted to fail the next calls.
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
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::Notify, task::JoinHandle};

use crate::{SovReqToken, SovendusConfig, SovendusConfigBuilder};

/// A scripted misbehaviour for the next calls.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer this status with the real API's body for it.
    Status(StatusCode),
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Close the connection without answering.
    Refuse,
}

/// A running fake Sovendus API; it stops when dropped.
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

struct Shared {
    api_key: String,
    products: Vec<String>,
    tokens: Option<HashSet<String>>,
    faults: Mutex<VecDeque<Fault>>,
    conversions: Mutex<Vec<Conversion>>,
    received: Notify,
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
        }
    }

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
    pub fn fault_next(&self, count: usize, fault: Fault) {
        lock(&self.shared.faults).extend(std::iter::repeat_n(fault, count));
    }

    /// Every call received so far, in order, whatever it was answered.
    pub fn conversions(&self) -> Vec<Conversion> {
        lock(&self.shared.conversions).clone()
    }

    /// The calls answered with 200.
    pub fn accepted(&self) -> Vec<Conversion> {
        self.conversions().into_iter().filter(|c| c.status == Some(StatusCode::OK)).collect()
    }

    /// Waits until at least `count` calls were received, or `timeout` passed; returns them.
    pub async fn wait_for_conversions(&self, count: usize, timeout: Duration) -> Vec<Conversion> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let received = self.shared.received.notified();
            let conversions = self.conversions();
            if conversions.len() >= count {
                return conversions;
            }
            if tokio::time::timeout_at(deadline, received).await.is_err() {
                return self.conversions();
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// Configures a [`Sandbox`].
#[derive(Debug)]
#[must_use]
pub struct SandboxBuilder {
    api_key: String,
    products: Vec<String>,
    tokens: Option<HashSet<String>>,
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
    pub fn known_tokens<I: IntoIterator<Item = T>, T: Into<String>>(mut self, tokens: I) -> Self {
        let mut known: HashSet<String> = tokens.into_iter().map(Into::into).collect();
        known.insert(Sandbox::TEST_TOKEN.to_owned());
        self.tokens = Some(known);
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
            conversions: Mutex::default(),
            received: Notify::new(),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        tracing::debug!(%addr, "Sovendus sandbox listening");
        Ok(Sandbox { addr, shared, server })
    }
}

/// One call the sandbox received.
#[derive(Clone)]
pub struct Conversion {
    method: Method,
    path: String,
    content_type: Option<String>,
    body: Bytes,
    status: Option<StatusCode>,
    received_at: SystemTime,
}

impl Conversion {
    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request path, e.g. `/ext/{product}/{token}/api`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `Content-Type` header, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The raw request body (it holds the API key).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The product ID and token from the path, if it had the API's shape.
    pub fn product_and_token(&self) -> Option<(&str, &str)> {
        parse_path(&self.path)
    }

    /// The token from the path, if it had the API's shape.
    pub fn token(&self) -> Option<&str> {
        self.product_and_token().map(|(_, token)| token)
    }

    /// The status answered, or `None` if the call was refused.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// When the call arrived.
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping the set (when the server task is aborted) aborts every connection.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
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

type Answer = Result<Response<Full<Bytes>>, io::Error>;

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
    let fault = lock(&shared.faults).pop_front();
    let status = match fault {
        Some(Fault::Refuse) => None,
        Some(Fault::Status(status)) => Some((status, message_for(status))),
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            Some(shared.answer(&method, &path, &body))
        }
        None => Some(shared.answer(&method, &path, &body)),
    };
    lock(&shared.conversions).push(Conversion {
        method,
        path,
        content_type,
        body,
        status: status.as_ref().map(|(status, _)| *status),
        received_at: SystemTime::now(),
    });
    shared.received.notify_waiters();
    let Some((status, body)) = status else {
        return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "scripted refusal"));
    };
    let response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(io::Error::other)?;
    Ok(response)
}

impl Shared {
    /// The real API's answer to a call: status and JSON body.
    fn answer(&self, method: &Method, path: &str, body: &[u8]) -> (StatusCode, String) {
        let refuse = |status: StatusCode, message: &str| (status, error_body(message));
        let Some((product, token)) = parse_path(path) else {
            return refuse(StatusCode::NOT_FOUND, "Invalid API call.");
        };
        if method != Method::POST {
            return refuse(StatusCode::METHOD_NOT_ALLOWED, "Invalid API call.");
        }
        let Some(api_key) = api_key_of(body) else {
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, "Invalid API parameters.");
        };
        if api_key != self.api_key {
            return refuse(StatusCode::FORBIDDEN, "Unauthorized.");
        }
        if !self.products.iter().any(|known| known == product) {
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, "External product id not found.");
        }
        let token_known =
            SovReqToken::new(token).is_ok() && self.tokens.as_ref().is_none_or(|known| known.contains(token));
        if !token_known {
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, "Token not found.");
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

fn message_for(status: StatusCode) -> String {
    error_body(match status.as_u16() {
        403 => "Unauthorized.",
        404 | 405 => "Invalid API call.",
        422 => "Invalid API parameters.",
        429 => "Too many requests.",
        500..=599 => "Internal server error.",
        _ => status.canonical_reason().unwrap_or("Error."),
    })
}
