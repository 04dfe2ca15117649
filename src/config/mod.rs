//! [`SovendusConfig`] and its builder: the product and key, how tokens are captured, how
//! Sovendus is called, and how conversions are delivered.
//!
//! Every option has a default but the product ID and the API key. A bad value fails
//! [`build`](SovendusConfigBuilder::build) with a [`ConfigError`] naming the option:
//!
//! ```
//! use std::time::Duration;
//! use tower_sovendus::{RetryPolicy, SovendusConfig, config::Attribution};
//!
//! let config = SovendusConfig::builder("9bc72425-902c-3abf-9db8-8b186d7cb160", "my-api-key-1234")
//!     // Capture: which parameter, how long a token waits for its order, which click wins.
//!     .token_parameter("sovReqToken")
//!     .token_ttl(Duration::from_secs(7 * 24 * 60 * 60))
//!     .attribution(Attribution::FirstClick)
//!     // Client: where conversions go, how long one call may take, how failures are retried.
//!     .endpoint("http://127.0.0.1:8080")
//!     .request_timeout(Duration::from_secs(10))
//!     .retry(RetryPolicy::default().max_attempts(8))
//!     // Delivery: how many background workers send at once.
//!     .workers(8)
//!     .build()?;
//! assert_eq!(config.endpoint().as_str(), "http://127.0.0.1:8080/");
//! // The key never shows in Debug output.
//! assert!(!format!("{config:?}").contains("my-api-key"));
//!
//! let error = SovendusConfig::builder("product-a", "key").workers(0).build().unwrap_err();
//! assert_eq!(error.to_string(), "invalid Sovendus option `workers`: must be 1 to 1024");
//! # Ok::<(), tower_sovendus::ConfigError>(())
//! ```
//!
//! # Options
//!
//! [`SovendusConfig::from_env`] reads `SOVENDUS_PRODUCT_ID`, `SOVENDUS_API_KEY` and, if set,
//! `SOVENDUS_ENDPOINT`; [`builder_from_env`](SovendusConfig::builder_from_env) does the same and
//! leaves the other options to set in code.
//!
//! | Builder method | Default | What it does |
//! |---|---|---|
//! | [`builder(product_id, api_key)`](SovendusConfig::builder) | required | Your product ID and API key from Sovendus. |
//! | [`token_parameter`](SovendusConfigBuilder::token_parameter) | `sovReqToken` | The query parameter to watch; Sovendus renames it for some partners. |
//! | [`extra_product_id`](SovendusConfigBuilder::extra_product_id) | none | A product a landing may choose with the product parameter; once per product, [`MAX_PRODUCTS`] in all. |
//! | [`product_parameter`](SovendusConfigBuilder::product_parameter) | `sovReqProductId` | The parameter choosing among the configured products; any other value means the first. |
//! | [`token_ttl`](SovendusConfigBuilder::token_ttl) | 30 days | How long a captured token waits for its order. |
//! | [`attribution`](SovendusConfigBuilder::attribution) | [`LastClick`](Attribution::LastClick) | Whether a later click replaces the stored token. |
//! | [`extend_session_expiry`](SovendusConfigBuilder::extend_session_expiry) | `true` | On capture, makes the session live at least as long as the token ([sessions](crate::layer#sessions)). |
//! | [`capture_if`](SovendusConfigBuilder::capture_if) | capture all | Captures only when the predicate accepts the request, e.g. a consent cookie. |
//! | [`max_tokens`](SovendusConfigBuilder::max_tokens) | 1,000,000 | Bounds the embedded store's captures; the least recently used go beyond it. |
//! | [`endpoint`](SovendusConfigBuilder::endpoint) | `https://press-order-api.sovendus.com` | The API base URL, http or https, with no query; https needs a TLS feature ([features](crate#features)). |
//! | [`request_timeout`](SovendusConfigBuilder::request_timeout) | 30 s | The limit for one call to Sovendus, connecting included. |
//! | [`retry`](SovendusConfigBuilder::retry) | 5 attempts, 500 ms to 30 s, within 2 min | How a delivery repeats failed calls at once ([`RetryPolicy`]); [`RetryPolicy::never`] sends once. |
//! | [`workers`](SovendusConfigBuilder::workers) | 16 | How many conversions an instance delivers at once, 1 to 1,024. |
//! | [`schedule`](SovendusConfigBuilder::schedule) | 1 min doubling to 1 h, for 7 days | When owed conversions are tried again ([`DeliverySchedule`]); also `keep_settled_for` (90 days, at least `token_ttl`: last month's invoice can always be checked), `lease` (15 s), `quarantine` (5 min, at least `request_timeout`), `poll_interval` (5 s). |
//! | [`queue_capacity`](SovendusConfigBuilder::queue_capacity) | 100,000 | Bounds the embedded store's conversions owed or parked at once. |

mod api_key;
mod builder;
mod error;
mod products;
mod retry;
mod schedule;

use std::{fmt, sync::Arc, time::Duration};

use http::request::Parts;
use reqwest::Url;

pub use self::{
    api_key::ApiKey, builder::SovendusConfigBuilder, error::ConfigError, retry::RetryPolicy,
    schedule::DeliverySchedule,
};
pub(crate) use self::{api_key::MaskedKey, products::Products};
use crate::ids::{ProductId, is_unreserved};

/// Sovendus' production endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://press-order-api.sovendus.com";
/// How long a captured token waits for its order: 30 days.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// How long one call to Sovendus may take, connecting included: 30 seconds.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The query parameter carrying the token.
pub const DEFAULT_TOKEN_PARAMETER: &str = "sovReqToken";
/// The query parameter that picks one of the configured products.
pub const DEFAULT_PRODUCT_PARAMETER: &str = "sovReqProductId";
/// How many tokens the embedded store holds at most.
pub const DEFAULT_MAX_TOKENS: u64 = 1_000_000;
/// The most product IDs one configuration may hold, the primary one included.
pub const MAX_PRODUCTS: usize = 256;
/// How many conversions the embedded store holds owed or parked at once, at most.
pub const DEFAULT_QUEUE_CAPACITY: usize = 100_000;
/// How many delivery workers of an instance send conversions at once.
pub const DEFAULT_WORKERS: usize = 16;

/// Which click wins when a visitor arrives from Sovendus more than once before ordering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attribution {
    /// The newest token replaces the stored one (the default).
    #[default]
    LastClick,
    /// The first token is kept until it converts or expires; later ones are ignored.
    FirstClick,
}

/// A predicate deciding whether a request's token may be captured, e.g. on a consent cookie.
pub type CaptureFilter = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

/// Everything the layer, the extractor and the client need to know. Built by
/// [`SovendusConfig::builder`]; see the [module](self) for an example.
#[derive(Clone)]
pub struct SovendusConfig {
    pub(crate) products: Products,
    pub(crate) capture: CaptureOptions,
    pub(crate) client: ClientOptions,
    pub(crate) delivery: DeliveryOptions,
}

/// How tokens are found on a landing and kept.
#[derive(Clone)]
pub(crate) struct CaptureOptions {
    pub(crate) token_parameter: Box<str>,
    pub(crate) product_parameter: Box<str>,
    pub(crate) token_ttl: Duration,
    pub(crate) attribution: Attribution,
    pub(crate) extend_session_expiry: bool,
    pub(crate) filter: Option<CaptureFilter>,
    pub(crate) max_tokens: u64,
}

/// How Sovendus is called.
#[derive(Clone)]
pub(crate) struct ClientOptions {
    pub(crate) api_key: ApiKey,
    pub(crate) endpoint: Url,
    pub(crate) request_timeout: Duration,
    pub(crate) retry: RetryPolicy,
}

/// How conversions are delivered until Sovendus answers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeliveryOptions {
    pub(crate) queue_capacity: usize,
    pub(crate) workers: usize,
    pub(crate) schedule: DeliverySchedule,
}

impl SovendusConfig {
    /// A configuration with every option at its default.
    pub fn new(product_id: impl Into<String>, api_key: impl Into<String>) -> Result<Self, ConfigError> {
        Self::builder(product_id, api_key).build()
    }

    /// Starts a configuration for a product ID and API key; the other options default.
    pub fn builder(product_id: impl Into<String>, api_key: impl Into<String>) -> SovendusConfigBuilder {
        SovendusConfigBuilder::new(product_id.into(), api_key.into())
    }

    /// Reads `SOVENDUS_PRODUCT_ID`, `SOVENDUS_API_KEY` and, if set, `SOVENDUS_ENDPOINT`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::builder_from_env()?.build()
    }

    /// Like [`from_env`](Self::from_env), but returns the builder so more options can be set.
    pub fn builder_from_env() -> Result<SovendusConfigBuilder, ConfigError> {
        let required = |name, field| {
            env_var(name, field)?.ok_or_else(|| ConfigError::new(field, format!("{name} is not set")))
        };
        let product_id = required("SOVENDUS_PRODUCT_ID", "product_id")?;
        let api_key = required("SOVENDUS_API_KEY", "api_key")?;
        let mut builder = Self::builder(product_id, api_key);
        if let Some(endpoint) = env_var("SOVENDUS_ENDPOINT", "endpoint")? {
            builder = builder.endpoint(endpoint);
        }
        Ok(builder)
    }

    /// The configured product IDs; the first is the one used when a landing chooses none.
    pub fn product_ids(&self) -> &[ProductId] {
        self.products.all()
    }

    /// The query parameter carrying the token.
    pub fn token_parameter(&self) -> &str {
        &self.capture.token_parameter
    }

    /// The query parameter choosing among the configured products.
    pub fn product_parameter(&self) -> &str {
        &self.capture.product_parameter
    }

    /// How long a captured token waits for its order.
    pub fn token_ttl(&self) -> Duration {
        self.capture.token_ttl
    }

    /// First-click or last-click attribution.
    pub fn attribution(&self) -> Attribution {
        self.capture.attribution
    }

    /// Whether capturing a token makes the session live at least as long as the token.
    pub fn extends_session_expiry(&self) -> bool {
        self.capture.extend_session_expiry
    }

    /// The most tokens the embedded store holds.
    pub fn max_tokens(&self) -> u64 {
        self.capture.max_tokens
    }

    /// The API key, masked in `Debug` and `Display`.
    pub fn api_key(&self) -> &ApiKey {
        &self.client.api_key
    }

    /// The API endpoint, without the `/ext/...` path.
    pub fn endpoint(&self) -> &Url {
        &self.client.endpoint
    }

    /// How long one call to Sovendus may take.
    pub fn request_timeout(&self) -> Duration {
        self.client.request_timeout
    }

    /// How failed calls are repeated.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.client.retry
    }

    /// How many conversions the embedded store holds owed or parked at once, at most.
    pub fn queue_capacity(&self) -> usize {
        self.delivery.queue_capacity
    }

    /// How many delivery workers of an instance send conversions at once.
    pub fn workers(&self) -> usize {
        self.delivery.workers
    }

    /// When owed conversions are attempted again, and how the workers hold them.
    pub fn schedule(&self) -> &DeliverySchedule {
        &self.delivery.schedule
    }
}

impl fmt::Debug for SovendusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let capture = &self.capture;
        f.debug_struct("SovendusConfig")
            .field("products", &self.products.all())
            .field("token_parameter", &capture.token_parameter)
            .field("product_parameter", &capture.product_parameter)
            .field("token_ttl", &capture.token_ttl)
            .field("attribution", &capture.attribution)
            .field("extend_session_expiry", &capture.extend_session_expiry)
            .field("capture_filter", &capture.filter.as_ref().map(|_| "Fn(&Parts) -> bool"))
            .field("max_tokens", &capture.max_tokens)
            .field("api_key", &self.client.api_key)
            .field("endpoint", &self.client.endpoint.as_str())
            .field("request_timeout", &self.client.request_timeout)
            .field("retry", &self.client.retry)
            .field("delivery", &self.delivery)
            .finish()
    }
}

/// Reads `name` for the option `field`; unset and blank are both `None`.
fn env_var(name: &str, field: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value.trim().to_owned())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(ConfigError::new(field, format!("{name} is not valid UTF-8")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config = SovendusConfig::new("p", "key").unwrap();
        assert_eq!(config.endpoint().as_str(), "https://press-order-api.sovendus.com/");
        assert_eq!(config.token_ttl(), DEFAULT_TOKEN_TTL);
        assert_eq!(config.request_timeout(), DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(config.token_parameter(), "sovReqToken");
        assert_eq!(config.product_parameter(), "sovReqProductId");
        assert_eq!(config.max_tokens(), 1_000_000);
        assert_eq!(config.attribution(), Attribution::LastClick);
        assert_eq!(*config.retry_policy(), RetryPolicy::default());
        assert_eq!((config.queue_capacity(), config.workers()), (100_000, 16));
        assert_eq!(*config.schedule(), DeliverySchedule::default());
        assert!(config.extends_session_expiry());
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases: Vec<(SovendusConfigBuilder, &str)> = vec![
            (SovendusConfig::builder("", "k"), "product_id"),
            (SovendusConfig::builder("a/b", "k"), "product_id"),
            (SovendusConfig::builder("..", "k"), "product_id"),
            (SovendusConfig::builder("p", " "), "api_key"),
            (SovendusConfig::builder("p", "k").endpoint("ftp://x"), "endpoint"),
            (SovendusConfig::builder("p", "k").endpoint("not a url"), "endpoint"),
            (SovendusConfig::builder("p", "k").endpoint("http://x/?q=1"), "endpoint"),
            (SovendusConfig::builder("p", "k").endpoint("http://u:pw@x/"), "endpoint"),
            (SovendusConfig::builder("p", "k").request_timeout(Duration::ZERO), "request_timeout"),
            (SovendusConfig::builder("p", "k").token_ttl(Duration::MAX), "token_ttl"),
            (SovendusConfig::builder("p", "k").token_parameter("a&b"), "token_parameter"),
            (SovendusConfig::builder("p", "k").product_parameter(""), "product_parameter"),
            (SovendusConfig::builder("p", "k").max_tokens(0), "max_tokens"),
            (SovendusConfig::builder("p", "k").extra_product_id("p"), "extra_product_id"),
            (SovendusConfig::builder("p", "k").retry(RetryPolicy::default().max_attempts(0)), "retry"),
            (SovendusConfig::builder("p", "k").queue_capacity(0), "queue_capacity"),
            (SovendusConfig::builder("p", "k").workers(1025), "workers"),
            (
                SovendusConfig::builder("p", "k").schedule(
                    DeliverySchedule::default().keep_settled_for(Duration::from_secs(24 * 60 * 60)),
                ),
                "schedule",
            ),
            (
                SovendusConfig::builder("p", "k").schedule(DeliverySchedule::default().lease(Duration::ZERO)),
                "schedule",
            ),
        ];
        for (builder, field) in cases {
            assert_eq!(builder.build().unwrap_err().field(), field);
        }
    }

    #[test]
    fn at_most_max_products() {
        let with = |count: usize| {
            let builder = SovendusConfig::builder("p-0", "XXXX-XXXXX");
            (1..count).fold(builder, |builder, i| builder.extra_product_id(format!("p-{i}")))
        };
        assert_eq!(with(MAX_PRODUCTS).build().unwrap().product_ids().len(), MAX_PRODUCTS);
        assert_eq!(with(MAX_PRODUCTS + 1).build().unwrap_err().field(), "extra_product_id");
    }

    #[test]
    fn key_is_masked_everywhere() {
        let key = "XXXX-XXXXX-XXXXXX-SECRET";
        let config = SovendusConfig::new("p", key).unwrap();
        assert!(!format!("{config:?}").contains("SECRET"));
        assert!(format!("{config:?}").contains("****CRET"));
        let builder = SovendusConfig::builder("p", key);
        assert!(!format!("{builder:?}").contains("XXXX-XXXXX"));
        let error = SovendusConfig::builder("a/b", key).build().unwrap_err();
        assert!(!error.to_string().contains("SECRET"));
    }
}
