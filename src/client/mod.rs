//! [`SovendusClient`]: the HTTP client that talks to Sovendus, one attempt and the retry loop
//! around it, and [`Receipt`], Sovendus' answer to an accepted conversion.

mod answer;

use std::{fmt, sync::Arc, time::Duration};

use reqwest::{
    StatusCode, Url,
    header::{CONTENT_TYPE, HeaderValue},
};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    config::{ApiKey, Products, RetryPolicy, SovendusConfig},
    error::SovendusError,
    ids::{ProductId, SovReqToken},
    mask::Masked,
    metrics,
};

/// The most bytes of an answer read; Sovendus' answers are a few dozen.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Sends conversions to Sovendus: `POST {endpoint}/ext/{PRODUCT_ID}/{TOKEN}/api` with the JSON
/// body `{"apiKey": "..."}`.
///
/// One pooled client serves the whole app; clones share it. The layer builds one (see
/// [`SovendusLayer::client`](crate::SovendusLayer::client)); build one yourself to send a
/// token stored with an order later, e.g. from a job queue.
///
/// ```
/// use std::time::Duration;
/// use http::StatusCode;
/// use tower_sovendus::{RetryPolicy, SovendusClient, sandbox::{Fault, Sandbox}};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sandbox = Sandbox::start().await?;
/// let retry = RetryPolicy::default().initial_backoff(Duration::from_millis(10));
/// let config = sandbox.config().retry(retry).build()?;
/// let client = SovendusClient::new(&config);
/// let token = Sandbox::TEST_TOKEN.parse()?;
///
/// // One attempt:
/// sandbox.fault_next(1, Fault::Status(StatusCode::BAD_GATEWAY));
/// assert!(client.send(&token).await.unwrap_err().is_retryable());
/// // With the configured retries:
/// sandbox.fault_next(2, Fault::Status(StatusCode::BAD_GATEWAY));
/// let receipt = client.send_with_retries(&config.product_ids()[0], &token).await?;
/// assert_eq!(receipt.external_product_id(), Some(Sandbox::PRODUCT_ID));
/// assert_eq!((sandbox.conversions().len(), sandbox.accepted().len()), (4, 1));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SovendusClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    api_key: ApiKey,
    /// The JSON body, the same for every call: serialised once.
    body: SecretSlice<u8>,
    products: Products,
    /// `{endpoint}/ext/{product}` for each configured product, in the same order.
    product_urls: Box<[Url]>,
    timeout: Duration,
    retry: RetryPolicy,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "apiKey")]
    api_key: &'a str,
}

impl SovendusClient {
    /// Builds the client and its connection pool.
    ///
    /// # Panics
    ///
    /// Like `reqwest::Client::new`, if the TLS backend cannot be initialised.
    pub fn new(config: &SovendusConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(config.request_timeout())
            .user_agent(concat!("tower-sovendus/", env!("CARGO_PKG_VERSION")));
        // Under `rustls-ring` alone, reqwest has no crypto provider of its own: give it ring's,
        // for this client only (no process-wide default is installed).
        #[cfg(all(feature = "rustls-ring", not(feature = "rustls")))]
        let http =
            http.tls_backend_preconfigured(ring_tls().expect("the TLS backend could not be initialised"));
        Self::with_http_client(config, http.build().expect("the TLS backend could not be initialised"))
    }

    /// Uses an existing `reqwest::Client` (and its pool, proxies, TLS settings). The
    /// configured request timeout still applies to each call.
    pub fn with_http_client(config: &SovendusConfig, http: reqwest::Client) -> Self {
        let endpoint = config.endpoint().clone();
        let api_key = config.api_key().clone();
        let body =
            serde_json::to_vec(&Body { api_key: api_key.expose() }).expect("a string always serialises");
        let products = config.products.clone();
        let product_urls = products.all().iter().map(|product| product_url(&endpoint, product)).collect();
        Self {
            inner: Arc::new(Inner {
                http,
                endpoint,
                api_key,
                body: body.into(),
                products,
                product_urls,
                timeout: config.request_timeout(),
                retry: *config.retry_policy(),
            }),
        }
    }

    /// Sends a conversion for the first configured product, in one attempt.
    pub async fn send(&self, token: &SovReqToken) -> Result<Receipt, SovendusError> {
        self.send_for_product(self.inner.products.primary(), token).await
    }

    /// Sends a conversion for `product`, in one attempt. Any valid product ID is sent as it
    /// is, configured or not.
    pub async fn send_for_product(
        &self,
        product: &ProductId,
        token: &SovReqToken,
    ) -> Result<Receipt, SovendusError> {
        self.send_under(&RetryPolicy::never(), product, token, None, always).await.result
    }

    /// Sends a conversion for `product`, retrying under the configured [`RetryPolicy`]: for a
    /// token stored with an order, or left by a [shutdown](crate::Delivery::shutdown), sent
    /// later.
    ///
    /// The client cannot know whether another process sends the same token meanwhile: the
    /// exactly-once guarantee of [`SovendusConversion`](crate::SovendusConversion) holds for
    /// tokens in the layer's store, not for tokens sent here.
    pub async fn send_with_retries(
        &self,
        product: &ProductId,
        token: &SovReqToken,
    ) -> Result<Receipt, SovendusError> {
        self.send_under(&self.inner.retry, product, token, None, always).await.result
    }

    /// The configured retry policy.
    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// How long one call may take, at the most.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Sends under `policy`, in the `sovendus.send` span, until a 200, a terminal answer, the
    /// end of the policy, or `cancel` (which cuts a wait between calls, never a call under
    /// way: it ends within the request timeout); says how many calls it made. `held` is asked before each
    /// wait and each attempt after the first (a delivery's lease, renewed): once it says no, no
    /// further wait or attempt starts, and the last attempt's error is the result.
    pub(crate) async fn send_under<Held, Holds>(
        &self,
        policy: &RetryPolicy,
        product: &ProductId,
        token: &SovReqToken,
        cancel: Option<&CancellationToken>,
        held: Held,
    ) -> Attempted
    where
        Held: Fn() -> Holds,
        Holds: Future<Output = bool>,
    {
        let may_go_on = async |error: &SovendusError, calls: u32| {
            let go_on = held().await;
            if !go_on {
                tracing::warn!(%error, attempt = calls, "Sovendus conversion failed; no further attempt: its lease is no longer held");
            }
            go_on
        };
        let span = tracing::info_span!("sovendus.send", product = %product, token = %token);
        async move {
            let started = Instant::now();
            let mut waits = policy.waits();
            let mut calls = 0_u32;
            let result = loop {
                // A call under way is never cut: Sovendus may have booked it already.
                let answer = self.attempt(product, token).await;
                calls += 1;
                let error = match answer {
                    Ok(receipt) => {
                        tracing::info!(attempt = calls, "Sovendus accepted the conversion");
                        break Ok(receipt);
                    }
                    Err(error) => error,
                };
                if !error.is_retryable() {
                    tracing::warn!(%error, attempt = calls, "Sovendus refused the conversion; not retrying");
                    break Err(error);
                }
                let Some(backoff) = waits.next() else {
                    tracing::warn!(%error, attempt = calls, "Sovendus conversion failed; no quick attempts left");
                    break Err(error);
                };
                let wait = error.retry_after().map_or(backoff, |asked| asked.max(backoff));
                if started.elapsed().saturating_add(wait) > policy.max_elapsed {
                    tracing::warn!(%error, attempt = calls, ?wait, "Sovendus conversion failed; out of quick retry time");
                    break Err(error);
                }
                if !may_go_on(&error, calls).await {
                    break Err(error);
                }
                tracing::warn!(%error, attempt = calls, ?wait, "Sovendus conversion failed; retrying");
                ::metrics::counter!(metrics::RETRIED).increment(1);
                if until_cancelled(cancel, tokio::time::sleep(wait)).await.is_none() {
                    break Err(SovendusError::Cancelled);
                }
                if !may_go_on(&error, calls).await {
                    break Err(error);
                }
            };
            Attempted { result, calls }
        }
        .instrument(span)
        .await
    }

    /// `{endpoint}/ext/{product}/{token}/api`, from validated parts only. A configured
    /// product's prefix was built once; only the token and `api` are added per call.
    fn url(&self, product: &ProductId, token: &SovReqToken) -> Url {
        let configured = self.inner.products.all().iter().position(|known| known == product);
        let mut url = match configured {
            Some(index) => self.inner.product_urls[index].clone(),
            None => product_url(&self.inner.endpoint, product),
        };
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend([token.as_str(), "api"]);
        }
        url
    }

    /// One call, unlogged: the callers log it in their own terms.
    async fn attempt(&self, product: &ProductId, token: &SovReqToken) -> Result<Receipt, SovendusError> {
        let mut response = self
            .inner
            .http
            .post(self.url(product, token))
            .timeout(self.inner.timeout)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(self.inner.body.expose_secret().to_vec())
            .send()
            .await
            .map_err(SovendusError::from_transport)?;
        let status = response.status();
        let mut body = Vec::new();
        // The status decides. A body cut off after it changes nothing: above all, a 200 whose
        // body broke was booked by Sovendus, and sending it again would book it twice.
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_BODY_BYTES.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::debug!(error = %error.without_url(), %status, "Sovendus answer cut off");
                    break;
                }
            }
        }
        if status == StatusCode::OK {
            Ok(Receipt::from_body(&body))
        } else {
            Err(SovendusError::from_answer(status, response.headers(), &body))
        }
    }
}

/// What sending under a policy ended in, and how many calls it took.
pub(crate) struct Attempted {
    pub(crate) result: Result<Receipt, SovendusError>,
    pub(crate) calls: u32,
}

/// Runs `work` to its end, or until `cancel` fires (`None`). Without a token, `work` runs with
/// nothing around it.
async fn until_cancelled<T>(cancel: Option<&CancellationToken>, work: impl Future<Output = T>) -> Option<T> {
    match cancel {
        Some(cancel) => cancel.run_until_cancelled(work).await,
        None => Some(work.await),
    }
}

/// A TLS configuration on ring, checking certificates as the platform does.
#[cfg(all(feature = "rustls-ring", not(feature = "rustls")))]
fn ring_tls() -> Result<rustls::ClientConfig, rustls::Error> {
    use rustls_platform_verifier::BuilderVerifierExt;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth())
}

/// `{endpoint}/ext/{product}`.
fn product_url(endpoint: &Url, product: &ProductId) -> Url {
    let mut url = endpoint.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().extend(["ext", product.as_str()]);
    }
    url
}

impl fmt::Debug for SovendusClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SovendusClient")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("api_key", &self.inner.api_key)
            .field("products", &self.inner.products.all())
            .finish()
    }
}

/// Sovendus' answer to an accepted conversion, parsed leniently: a field the body lacks is
/// `None`, and a body that is not JSON at all still counts as a success.
///
/// ```
/// use tower_sovendus::Receipt;
///
/// let receipt = Receipt::from_body(br#"{"externalProductId":"p","sovReqToken":"12345-test-123-12345"}"#);
/// assert_eq!(receipt.external_product_id(), Some("p"));
/// assert_eq!(receipt.sov_req_token(), Some("12345-test-123-12345"));
/// // The token is masked in Debug.
/// assert_eq!(format!("{receipt:?}"), r#"Receipt { external_product_id: Some("p"), sov_req_token: Some("12345-te…") }"#);
/// assert_eq!(Receipt::from_body(b"<html>OK</html>"), Receipt::default());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    #[serde(default)]
    external_product_id: Option<String>,
    #[serde(default)]
    sov_req_token: Option<String>,
}

impl Receipt {
    /// Parses a 200 body; never fails.
    pub fn from_body(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// The product Sovendus booked the conversion for, if the body said.
    pub fn external_product_id(&self) -> Option<&str> {
        self.external_product_id.as_deref()
    }

    /// The token Sovendus confirmed, if the body said.
    pub fn sov_req_token(&self) -> Option<&str> {
        self.sov_req_token.as_deref()
    }
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field("external_product_id", &self.external_product_id)
            .field("sov_req_token", &self.sov_req_token.as_deref().map(Masked))
            .finish()
    }
}

/// A gate that always lets the next attempt start: for sends that hold no lease.
async fn always() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_from_parts() {
        let token: SovReqToken = "12345-test-123-12345".parse().unwrap();
        for (endpoint, expected) in [
            (
                "https://press-order-api.sovendus.com",
                "https://press-order-api.sovendus.com/ext/p-1/12345-test-123-12345/api",
            ),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/ext/p-1/12345-test-123-12345/api"),
            ("http://127.0.0.1:8080/base/", "http://127.0.0.1:8080/base/ext/p-1/12345-test-123-12345/api"),
        ] {
            let config = SovendusConfig::builder("p-1", "key").endpoint(endpoint).build().unwrap();
            let client = SovendusClient::new(&config);
            assert_eq!(client.url(&config.product_ids()[0], &token).as_str(), expected);
        }
    }

    #[test]
    fn a_product_no_longer_configured_is_sent_as_it_is() {
        let token: SovReqToken = "12345-test-123-12345".parse().unwrap();
        let config = SovendusConfig::builder("p-1", "key").endpoint("http://127.0.0.1:8080").build().unwrap();
        let client = SovendusClient::new(&config);
        let retired = ProductId::new("p-retired").unwrap();
        assert_eq!(
            client.url(&retired, &token).as_str(),
            "http://127.0.0.1:8080/ext/p-retired/12345-test-123-12345/api"
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let config = SovendusConfig::new("p", "XXXX-XXXXX-XXXXXX-SECRET").unwrap();
        let debug = format!("{:?}", SovendusClient::new(&config));
        assert!(!debug.contains("XXXX-XXXXX"), "{debug}");
        assert!(debug.contains("****CRET"), "{debug}");
    }
}
