//! [`SovendusClient`]: the one HTTP client that talks to Sovendus.

use std::sync::Arc;

use reqwest::{
    StatusCode, Url,
    header::{CONTENT_TYPE, HeaderValue},
};
use secrecy::{ExposeSecret, SecretSlice};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{ApiKey, ProductId, Receipt, RetryPolicy, SovReqToken, SovendusConfig, SovendusError, retry};

/// The most bytes of an answer read; Sovendus' answers are a few dozen.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Sends conversions to Sovendus: `POST {endpoint}/ext/{PRODUCT_ID}/{TOKEN}/api` with the JSON
/// body `{"apiKey": "..."}`.
///
/// One pooled client serves the whole app; clones share it. The layer builds one (see
/// [`SovendusLayer::client`](crate::SovendusLayer::client)); build one yourself to send a
/// token stored with an order later, e.g. from a job queue.
///
/// ```no_run
/// use tower_sovendus::{SovReqToken, SovendusClient, SovendusConfig};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = SovendusClient::new(&SovendusConfig::from_env()?);
/// let token: SovReqToken = "12345-test-123-12345".parse()?;
/// let receipt = client.send(&token).await?;
/// tracing::info!(product = ?receipt.external_product_id(), "conversion booked");
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
    products: Arc<[ProductId]>,
    /// `{endpoint}/ext/{product}` for each configured product, in the same order.
    product_urls: Box<[Url]>,
    timeout: std::time::Duration,
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
    /// ```
    /// use tower_sovendus::{SovendusClient, SovendusConfig};
    ///
    /// let client = SovendusClient::new(&SovendusConfig::new("product-a", "XXXX-XXXXX-XXXXXX-1234")?);
    /// let debug = format!("{client:?}");
    /// assert!(debug.contains("https://press-order-api.sovendus.com/"));
    /// assert!(debug.contains("****1234") && !debug.contains("XXXX-XXXXX"));
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    ///
    /// # Panics
    ///
    /// Like `reqwest::Client::new`, if the TLS backend cannot be initialised.
    pub fn new(config: &SovendusConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(config.request_timeout())
            .user_agent(concat!("tower-sovendus/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the TLS backend could not be initialised");
        Self::with_http_client(config, http)
    }

    /// Uses an existing `reqwest::Client` (and its pool, proxies, TLS settings).
    /// The configured request timeout still applies to each call.
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// let http = reqwest::Client::builder().user_agent("my-shop/1.0").build()?;
    /// let client = SovendusClient::with_http_client(&sandbox.config().build()?, http);
    /// client.send(&Sandbox::TEST_TOKEN.parse()?).await?;
    /// assert_eq!(sandbox.accepted().len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn with_http_client(config: &SovendusConfig, http: reqwest::Client) -> Self {
        let endpoint = config.endpoint().clone();
        let api_key = config.api_key().clone();
        let body =
            serde_json::to_vec(&Body { api_key: api_key.expose() }).expect("a string always serialises");
        let product_urls = config.products.iter().map(|product| product_url(&endpoint, product)).collect();
        Self {
            inner: Arc::new(Inner {
                http,
                endpoint,
                api_key,
                body: body.into(),
                products: config.products.clone(),
                product_urls,
                timeout: config.request_timeout(),
                retry: *config.retry_policy(),
            }),
        }
    }

    /// Sends a conversion for the default (first configured) product, in one attempt.
    ///
    /// ```
    /// use tower_sovendus::{SovendusClient, sandbox::Sandbox};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sandbox = Sandbox::start().await?;
    /// let client = SovendusClient::new(&sandbox.config().build()?);
    /// let receipt = client.send(&Sandbox::TEST_TOKEN.parse()?).await?;
    /// assert_eq!(receipt.external_product_id(), Some(Sandbox::PRODUCT_ID));
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, token: &SovReqToken) -> Result<Receipt, SovendusError> {
        self.send_for_product(&self.inner.products[0], token).await
    }

    /// Sends a conversion for a given product, in one attempt.
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
    pub async fn send_for_product(
        &self,
        product: &ProductId,
        token: &SovReqToken,
    ) -> Result<Receipt, SovendusError> {
        self.send_under(&RetryPolicy::never(), product, token, None).await
    }

    /// Sends a conversion for a given product, retrying under the configured
    /// [`RetryPolicy`]: for a token stored with an order, or left by a
    /// [shutdown](crate::Delivery::shutdown), sent later.
    ///
    /// The client cannot know whether another process sends the same token meanwhile: the
    /// exactly-once guarantee of [`SovendusConversion`](crate::SovendusConversion) holds for
    /// tokens in the layer's store, not for tokens sent here.
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
    /// sandbox.fault_next(2, Fault::Status(StatusCode::BAD_GATEWAY));
    /// client.send_with_retries(&config.product_ids()[0], &Sandbox::TEST_TOKEN.parse()?).await?;
    /// assert_eq!((sandbox.conversions().len(), sandbox.accepted().len()), (3, 1));
    /// # Ok(()) }
    /// ```
    pub async fn send_with_retries(
        &self,
        product: &ProductId,
        token: &SovReqToken,
    ) -> Result<Receipt, SovendusError> {
        self.send_under(&self.inner.retry, product, token, None).await
    }

    /// Sends under `policy` until it ends or `cancel` fires, in the `sovendus.send` span.
    pub(crate) async fn send_under(
        &self,
        policy: &RetryPolicy,
        product: &ProductId,
        token: &SovReqToken,
        cancel: Option<&CancellationToken>,
    ) -> Result<Receipt, SovendusError> {
        let span = tracing::info_span!("sovendus.send", product = %product, token = %token);
        retry::send(self, policy, product, token, cancel).instrument(span).await
    }

    pub(crate) fn product(&self, index: u8) -> &ProductId {
        // Indexes come from the same configuration; fall back to the default product.
        self.inner.products.get(usize::from(index)).unwrap_or(&self.inner.products[0])
    }

    /// The product index a landing's `sovReqProductId` value chooses, if it is configured.
    pub(crate) fn product_index(&self, value: &str) -> Option<u8> {
        let index = self.inner.products.iter().position(|product| product.as_str() == value)?;
        u8::try_from(index).ok()
    }

    /// `{endpoint}/ext/{product}/{token}/api`, from validated parts only. A configured
    /// product's prefix was built once; only the token and `api` are added per call.
    fn url(&self, product: &ProductId, token: &SovReqToken) -> Url {
        let configured = self.product_index(product.as_str());
        let mut url = match configured.and_then(|index| self.inner.product_urls.get(usize::from(index))) {
            Some(prefix) => prefix.clone(),
            None => product_url(&self.inner.endpoint, product),
        };
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend([token.as_str(), "api"]);
        }
        url
    }

    /// One call, unlogged: the callers log it in their own terms.
    pub(crate) async fn attempt(
        &self,
        product: &ProductId,
        token: &SovReqToken,
    ) -> Result<Receipt, SovendusError> {
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

/// `{endpoint}/ext/{product}`.
fn product_url(endpoint: &Url, product: &ProductId) -> Url {
    let mut url = endpoint.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().extend(["ext", product.as_str()]);
    }
    url
}

impl std::fmt::Debug for SovendusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SovendusClient")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("api_key", &self.inner.api_key)
            .field("products", &self.inner.products)
            .finish()
    }
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
            assert_eq!(client.url(client.product(0), &token).as_str(), expected);
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let config = SovendusConfig::new("p", "XXXX-XXXXX-XXXXXX-SECRET").unwrap();
        let debug = format!("{:?}", SovendusClient::new(&config));
        assert!(!debug.contains("XXXX-XXXXX"), "{debug}");
    }
}
