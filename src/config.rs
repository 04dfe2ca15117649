//! [`SovendusConfig`], its builder and the secret API key.

use std::{fmt, sync::Arc, time::Duration};

use http::request::Parts;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

use crate::{RetryPolicy, token::is_unreserved};

/// Sovendus' production endpoint.
///
/// ```
/// use tower_sovendus::{DEFAULT_ENDPOINT, SovendusConfig};
///
/// let config = SovendusConfig::new("product-a", "XXXX-XXXXX")?;
/// assert_eq!(config.endpoint().as_str(), format!("{DEFAULT_ENDPOINT}/"));
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
pub const DEFAULT_ENDPOINT: &str = "https://press-order-api.sovendus.com";
/// How long a captured token is kept: 30 days.
///
/// ```
/// use std::time::Duration;
/// use tower_sovendus::{DEFAULT_TOKEN_TTL, SovendusConfig};
///
/// assert_eq!(DEFAULT_TOKEN_TTL, Duration::from_secs(30 * 24 * 60 * 60));
/// assert_eq!(SovendusConfig::new("product-a", "XXXX-XXXXX")?.token_ttl(), DEFAULT_TOKEN_TTL);
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// How long one call to Sovendus may take: 30 seconds.
///
/// ```
/// use std::time::Duration;
/// use tower_sovendus::{DEFAULT_REQUEST_TIMEOUT, SovendusConfig};
///
/// assert_eq!(DEFAULT_REQUEST_TIMEOUT, Duration::from_secs(30));
/// assert_eq!(SovendusConfig::new("product-a", "XXXX-XXXXX")?.request_timeout(), DEFAULT_REQUEST_TIMEOUT);
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The query parameter carrying the token.
///
/// ```
/// use tower_sovendus::{DEFAULT_TOKEN_PARAMETER, SovendusConfig};
///
/// assert_eq!(DEFAULT_TOKEN_PARAMETER, "sovReqToken");
/// assert_eq!(SovendusConfig::new("product-a", "XXXX-XXXXX")?.token_parameter(), DEFAULT_TOKEN_PARAMETER);
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
pub const DEFAULT_TOKEN_PARAMETER: &str = "sovReqToken";
/// The query parameter that picks one of the configured products.
///
/// ```
/// use tower_sovendus::{DEFAULT_PRODUCT_PARAMETER, SovendusConfig};
///
/// assert_eq!(DEFAULT_PRODUCT_PARAMETER, "sovReqProductId");
/// let config = SovendusConfig::new("product-a", "XXXX-XXXXX")?;
/// assert_eq!(config.product_parameter(), DEFAULT_PRODUCT_PARAMETER);
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
pub const DEFAULT_PRODUCT_PARAMETER: &str = "sovReqProductId";
/// How many tokens the embedded cache holds at most.
///
/// ```
/// use tower_sovendus::{DEFAULT_MAX_TOKENS, SovendusConfig};
///
/// assert_eq!(DEFAULT_MAX_TOKENS, 1_000_000);
/// assert_eq!(SovendusConfig::new("product-a", "XXXX-XXXXX")?.max_tokens(), DEFAULT_MAX_TOKENS);
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
pub const DEFAULT_MAX_TOKENS: u64 = 1_000_000;
/// The most product IDs one configuration may hold (the primary one included).
///
/// ```
/// use tower_sovendus::{MAX_PRODUCTS, SovendusConfig};
///
/// let with = |count: usize| {
///     let builder = SovendusConfig::builder("p-0", "XXXX-XXXXX");
///     (1..count).fold(builder, |builder, i| builder.extra_product_id(format!("p-{i}")))
/// };
/// assert_eq!(with(MAX_PRODUCTS).build()?.product_ids().len(), MAX_PRODUCTS);
/// assert_eq!(with(MAX_PRODUCTS + 1).build().unwrap_err().field(), "extra_product_id");
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
pub const MAX_PRODUCTS: usize = 256;

/// How many conversions the background queue holds at most: 1,024.
///
/// ```
/// use tower_sovendus::{DEFAULT_QUEUE_CAPACITY, SovendusConfig};
///
/// assert_eq!(SovendusConfig::new("product-a", "XXXX-XXXXX")?.queue_capacity(), DEFAULT_QUEUE_CAPACITY);
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// How many background workers send conversions at once: 4.
///
/// ```
/// use tower_sovendus::{DEFAULT_WORKERS, SovendusConfig};
///
/// assert_eq!(SovendusConfig::new("product-a", "XXXX-XXXXX")?.workers(), DEFAULT_WORKERS);
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
pub const DEFAULT_WORKERS: usize = 4;

/// Which click wins when a visitor arrives from Sovendus more than once before ordering.
///
/// ```
/// use tower_sovendus::{Attribution, SovendusConfig};
///
/// assert_eq!(Attribution::default(), Attribution::LastClick);
/// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX")
///     .attribution(Attribution::FirstClick)
///     .build()?;
/// assert_eq!(config.attribution(), Attribution::FirstClick);
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Attribution {
    /// The newest token replaces the stored one (the default).
    #[default]
    LastClick,
    /// The first token is kept until it converts or expires; later ones are ignored.
    FirstClick,
}

/// A predicate deciding whether a request's token may be captured, e.g. on a consent cookie.
///
/// ```
/// use std::sync::Arc;
/// use http::{Request, request::Parts};
/// use tower_sovendus::{CaptureFilter, SovendusConfig};
///
/// let consented: CaptureFilter = Arc::new(|request: &Parts| request.headers.contains_key("x-consent"));
/// let (landing, ()) = Request::get("/?sovReqToken=12345-test-123-12345").body(())?.into_parts();
/// assert!(!consented(&landing));
/// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX")
///     .capture_if(move |request| consented(request))
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type CaptureFilter = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

/// Everything the layer, the extractor and the client need to know.
///
/// ```
/// use std::time::Duration;
/// use tower_sovendus::{Attribution, SovendusConfig};
///
/// let config = SovendusConfig::builder("9bc72425-902c-3abf-9db8-8b186d7cb160", "my-api-key-1234")
///     .endpoint("http://127.0.0.1:8080")
///     .token_ttl(Duration::from_secs(7 * 24 * 60 * 60))
///     .attribution(Attribution::FirstClick)
///     .build()?;
/// assert_eq!(config.endpoint().as_str(), "http://127.0.0.1:8080/");
/// // The key never shows up in Debug output.
/// assert!(!format!("{config:?}").contains("my-api-key"));
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct SovendusConfig {
    pub(crate) products: Arc<[ProductId]>,
    pub(crate) api_key: ApiKey,
    pub(crate) endpoint: Url,
    pub(crate) token_ttl: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) token_parameter: Box<str>,
    pub(crate) product_parameter: Box<str>,
    pub(crate) max_tokens: u64,
    pub(crate) attribution: Attribution,
    pub(crate) extend_session_expiry: bool,
    pub(crate) capture_filter: Option<CaptureFilter>,
    pub(crate) retry: RetryPolicy,
    pub(crate) queue_capacity: usize,
    pub(crate) workers: usize,
}

impl SovendusConfig {
    /// A configuration with every option at its default.
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let config = SovendusConfig::new("9bc72425-902c-3abf-9db8-8b186d7cb160", "XXXX-XXXXX")?;
    /// assert_eq!(config.endpoint().as_str(), "https://press-order-api.sovendus.com/");
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn new(product_id: impl Into<String>, api_key: impl Into<String>) -> Result<Self, ConfigError> {
        Self::builder(product_id, api_key).build()
    }

    /// Starts a configuration for a product ID and API key; the other options default.
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX")
    ///     .extra_product_id("product-b")
    ///     .build()?;
    /// assert_eq!(config.product_ids().len(), 2);
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn builder(product_id: impl Into<String>, api_key: impl Into<String>) -> SovendusConfigBuilder {
        SovendusConfigBuilder {
            product_ids: vec![product_id.into()],
            api_key: api_key.into(),
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            token_ttl: DEFAULT_TOKEN_TTL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            token_parameter: DEFAULT_TOKEN_PARAMETER.to_owned(),
            product_parameter: DEFAULT_PRODUCT_PARAMETER.to_owned(),
            max_tokens: DEFAULT_MAX_TOKENS,
            attribution: Attribution::default(),
            extend_session_expiry: true,
            capture_filter: None,
            retry: RetryPolicy::default(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            workers: DEFAULT_WORKERS,
        }
    }

    /// Reads `SOVENDUS_PRODUCT_ID`, `SOVENDUS_API_KEY` and, if set, `SOVENDUS_ENDPOINT`.
    ///
    /// ```no_run
    /// let config = tower_sovendus::SovendusConfig::from_env()?;
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::builder_from_env()?.build()
    }

    /// Like [`from_env`](Self::from_env), but returns the builder so more options can be set.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let config = tower_sovendus::SovendusConfig::builder_from_env()?
    ///     .request_timeout(Duration::from_secs(10))
    ///     .build()?;
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
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

    /// The configured product IDs; the first is the default one.
    ///
    /// ```
    /// use tower_sovendus::{ProductId, SovendusConfig};
    ///
    /// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX")
    ///     .extra_product_id("product-b")
    ///     .build()?;
    /// let ids: Vec<&str> = config.product_ids().iter().map(ProductId::as_str).collect();
    /// assert_eq!(ids, ["product-a", "product-b"]);
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn product_ids(&self) -> &[ProductId] {
        &self.products
    }

    /// The API endpoint, without the `/ext/...` path.
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX")
    ///     .endpoint("http://127.0.0.1:8080/base")
    ///     .build()?;
    /// assert_eq!(config.endpoint().as_str(), "http://127.0.0.1:8080/base");
    /// assert_eq!(config.endpoint().port(), Some(8080));
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// How long a captured token is kept.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let config = SovendusConfig::new("product-a", "XXXX-XXXXX")?;
    /// assert_eq!(config.token_ttl(), Duration::from_secs(30 * 24 * 60 * 60));
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn token_ttl(&self) -> Duration {
        self.token_ttl
    }

    /// How long one call to Sovendus may take.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let config = SovendusConfig::new("product-a", "XXXX-XXXXX")?;
    /// assert_eq!(config.request_timeout(), Duration::from_secs(30));
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The query parameter carrying the token.
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let config = SovendusConfig::new("product-a", "XXXX-XXXXX")?;
    /// assert_eq!(config.token_parameter(), "sovReqToken");
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn token_parameter(&self) -> &str {
        &self.token_parameter
    }

    /// The query parameter choosing among the configured products.
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let config = SovendusConfig::new("product-a", "XXXX-XXXXX")?;
    /// assert_eq!(config.product_parameter(), "sovReqProductId");
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn product_parameter(&self) -> &str {
        &self.product_parameter
    }

    /// The most tokens the embedded cache holds.
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let config = SovendusConfig::new("product-a", "XXXX-XXXXX")?;
    /// assert_eq!(config.max_tokens(), 1_000_000);
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn max_tokens(&self) -> u64 {
        self.max_tokens
    }

    /// First-click or last-click attribution.
    ///
    /// ```
    /// use tower_sovendus::{Attribution, SovendusConfig};
    ///
    /// let config = SovendusConfig::new("product-a", "XXXX-XXXXX")?;
    /// assert_eq!(config.attribution(), Attribution::LastClick);
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn attribution(&self) -> Attribution {
        self.attribution
    }

    /// Whether capturing a token makes the session live at least as long as the token.
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// assert!(SovendusConfig::new("product-a", "XXXX-XXXXX")?.extends_session_expiry());
    /// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX").extend_session_expiry(false).build()?;
    /// assert!(!config.extends_session_expiry());
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn extends_session_expiry(&self) -> bool {
        self.extend_session_expiry
    }

    /// How failed calls are repeated.
    ///
    /// ```
    /// use tower_sovendus::{RetryPolicy, SovendusConfig};
    ///
    /// let config = SovendusConfig::new("product-a", "XXXX-XXXXX")?;
    /// assert_eq!(*config.retry_policy(), RetryPolicy::default());
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// How many conversions the background queue holds at most.
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// assert_eq!(SovendusConfig::new("product-a", "XXXX-XXXXX")?.queue_capacity(), 1024);
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }

    /// How many background workers send conversions at once.
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// assert_eq!(SovendusConfig::new("product-a", "XXXX-XXXXX")?.workers(), 4);
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The API key, masked for display (`****` and at most the last 4 characters).
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let config = SovendusConfig::new("product-a", "XXXX-XXXXX-XXXXXX-1234")?;
    /// assert_eq!(config.api_key().to_string(), "****1234");
    /// // Keys shorter than 12 characters show nothing of themselves.
    /// assert_eq!(SovendusConfig::new("product-a", "XXXX-XXXXX")?.api_key().to_string(), "****");
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn api_key(&self) -> &ApiKey {
        &self.api_key
    }
}

impl fmt::Debug for SovendusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SovendusConfig")
            .field("products", &self.products)
            .field("api_key", &self.api_key)
            .field("endpoint", &self.endpoint.as_str())
            .field("token_ttl", &self.token_ttl)
            .field("request_timeout", &self.request_timeout)
            .field("token_parameter", &self.token_parameter)
            .field("product_parameter", &self.product_parameter)
            .field("max_tokens", &self.max_tokens)
            .field("attribution", &self.attribution)
            .field("extend_session_expiry", &self.extend_session_expiry)
            .field("capture_filter", &self.capture_filter.as_ref().map(|_| "Fn(&Parts) -> bool"))
            .field("retry", &self.retry)
            .field("queue_capacity", &self.queue_capacity)
            .field("workers", &self.workers)
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

/// Builds a [`SovendusConfig`]; every value is checked in [`build`](Self::build).
///
/// ```
/// use std::time::Duration;
/// use tower_sovendus::SovendusConfig;
///
/// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX")
///     .request_timeout(Duration::from_secs(5))
///     .token_parameter("partnerToken")
///     .max_tokens(10_000)
///     // Only visitors who accepted marketing cookies.
///     .capture_if(|request| {
///         request.headers.get_all("cookie").iter().any(|value| {
///             value.to_str().is_ok_and(|cookies| cookies.split(';').any(|c| c.trim() == "consent=yes"))
///         })
///     })
///     .build()?;
/// assert_eq!(config.token_parameter(), "partnerToken");
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
#[must_use]
pub struct SovendusConfigBuilder {
    product_ids: Vec<String>,
    api_key: String,
    endpoint: String,
    token_ttl: Duration,
    request_timeout: Duration,
    token_parameter: String,
    product_parameter: String,
    max_tokens: u64,
    attribution: Attribution,
    extend_session_expiry: bool,
    capture_filter: Option<CaptureFilter>,
    retry: RetryPolicy,
    queue_capacity: usize,
    workers: usize,
}

impl SovendusConfigBuilder {
    /// The API endpoint (default `https://press-order-api.sovendus.com`).
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let builder = || SovendusConfig::builder("product-a", "XXXX-XXXXX");
    /// let config = builder().endpoint("http://127.0.0.1:8080").build()?;
    /// assert_eq!(config.endpoint().as_str(), "http://127.0.0.1:8080/");
    /// let error = builder().endpoint("ftp://127.0.0.1").build().unwrap_err();
    /// assert_eq!(error.field(), "endpoint");
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// How long a captured token is kept (default 30 days).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let week = Duration::from_secs(7 * 24 * 60 * 60);
    /// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX").token_ttl(week).build()?;
    /// assert_eq!(config.token_ttl(), week);
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// How long one call to Sovendus may take (default 30 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX")
    ///     .request_timeout(Duration::from_secs(5))
    ///     .build()?;
    /// assert_eq!(config.request_timeout(), Duration::from_secs(5));
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The query parameter carrying the token (default `sovReqToken`).
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let builder = || SovendusConfig::builder("product-a", "XXXX-XXXXX");
    /// let config = builder().token_parameter("partnerToken").build()?;
    /// assert_eq!(config.token_parameter(), "partnerToken");
    /// let error = builder().token_parameter("a&b").build().unwrap_err();
    /// assert_eq!(error.field(), "token_parameter");
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn token_parameter(mut self, name: impl Into<String>) -> Self {
        self.token_parameter = name.into();
        self
    }

    /// The query parameter choosing the product (default `sovReqProductId`).
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX")
    ///     .product_parameter("partnerProduct")
    ///     .build()?;
    /// assert_eq!(config.product_parameter(), "partnerProduct");
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn product_parameter(mut self, name: impl Into<String>) -> Self {
        self.product_parameter = name.into();
        self
    }

    /// The most tokens the embedded cache holds (default 1,000,000); the least recently used
    /// are evicted beyond it.
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let builder = || SovendusConfig::builder("product-a", "XXXX-XXXXX");
    /// let config = builder().max_tokens(10_000).build()?;
    /// assert_eq!(config.max_tokens(), 10_000);
    /// let error = builder().max_tokens(0).build().unwrap_err();
    /// assert_eq!(error.field(), "max_tokens");
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn max_tokens(mut self, max: u64) -> Self {
        self.max_tokens = max;
        self
    }

    /// First-click or last-click attribution (default last-click).
    ///
    /// ```
    /// use tower_sovendus::{Attribution, SovendusConfig};
    ///
    /// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX")
    ///     .attribution(Attribution::FirstClick)
    ///     .build()?;
    /// assert_eq!(config.attribution(), Attribution::FirstClick);
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn attribution(mut self, attribution: Attribution) -> Self {
        self.attribution = attribution;
        self
    }

    /// Adds a product that a landing URL may choose with `sovReqProductId`.
    ///
    /// A landing without the parameter, or with a value that is not configured, uses the
    /// first product ID.
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let builder = || SovendusConfig::builder("product-a", "XXXX-XXXXX");
    /// let config = builder().extra_product_id("product-b").build()?;
    /// assert_eq!(config.product_ids()[1].as_str(), "product-b");
    /// let twice = builder().extra_product_id("product-a").build();
    /// assert_eq!(twice.unwrap_err().field(), "extra_product_id");
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn extra_product_id(mut self, product_id: impl Into<String>) -> Self {
        self.product_ids.push(product_id.into());
        self
    }

    /// Whether capturing a token makes the visitor's session live at least as long as the
    /// token (default `true`).
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX").extend_session_expiry(false).build()?;
    /// assert!(!config.extends_session_expiry());
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn extend_session_expiry(mut self, extend: bool) -> Self {
        self.extend_session_expiry = extend;
        self
    }

    /// Captures a token only from requests for which `filter` returns `true`, e.g. requests
    /// carrying a consent cookie. Refused requests are passed on untouched.
    ///
    /// ```
    /// use http::{Request, request::Parts};
    /// use tower_sovendus::SovendusConfig;
    ///
    /// fn consented(request: &Parts) -> bool {
    ///     let cookies = request.headers.get("cookie").and_then(|value| value.to_str().ok());
    ///     cookies.is_some_and(|cookies| cookies.split(';').any(|c| c.trim() == "consent=yes"))
    /// }
    /// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX").capture_if(consented).build()?;
    /// let (landing, ()) = Request::get("/?sovReqToken=12345-test-123-12345").body(())?.into_parts();
    /// assert!(!consented(&landing)); // no consent cookie: the token is not captured
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn capture_if(mut self, filter: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        self.capture_filter = Some(Arc::new(filter));
        self
    }

    /// How failed calls are repeated (default [`RetryPolicy::default`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_sovendus::{RetryPolicy, SovendusConfig};
    ///
    /// let builder = || SovendusConfig::builder("product-a", "XXXX-XXXXX");
    /// let config = builder().retry(RetryPolicy::never()).build()?;
    /// assert_eq!(config.retry_policy().max_attempts, 1);
    /// let error = builder().retry(RetryPolicy::default().max_attempts(0)).build().unwrap_err();
    /// assert_eq!(error.to_string(), "invalid Sovendus option `retry`: max_attempts must be at least 1");
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How many conversions the background queue holds at most (default 1,024); beyond it,
    /// [`send_in_background`](crate::SovendusConversion::send_in_background) answers
    /// [`QueueFull`](crate::SovendusError::QueueFull) and the token stays stored.
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let builder = || SovendusConfig::builder("product-a", "XXXX-XXXXX");
    /// assert_eq!(builder().queue_capacity(10_000).build()?.queue_capacity(), 10_000);
    /// assert_eq!(builder().queue_capacity(0).build().unwrap_err().field(), "queue_capacity");
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// How many background workers send conversions at once (default 4, at most 1,024).
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let builder = || SovendusConfig::builder("product-a", "XXXX-XXXXX");
    /// assert_eq!(builder().workers(16).build()?.workers(), 16);
    /// assert_eq!(builder().workers(0).build().unwrap_err().field(), "workers");
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Checks every value and builds the configuration.
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX").build()?;
    /// assert_eq!(config.product_ids()[0].as_str(), "product-a");
    /// let error = SovendusConfig::builder("product-a", " ").build().unwrap_err();
    /// assert_eq!((error.field(), error.reason()), ("api_key", "is empty"));
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn build(self) -> Result<SovendusConfig, ConfigError> {
        let products = self.product_ids.into_iter().map(ProductId::new).collect::<Result<Vec<_>, _>>()?;
        if products.len() > MAX_PRODUCTS {
            return Err(ConfigError::new(
                "extra_product_id",
                format!("at most {MAX_PRODUCTS} product IDs are supported"),
            ));
        }
        for (index, product) in products.iter().enumerate() {
            if products[..index].contains(product) {
                return Err(ConfigError::new(
                    "extra_product_id",
                    format!("product ID {product} is configured twice"),
                ));
            }
        }
        Ok(SovendusConfig {
            products: products.into(),
            api_key: ApiKey::new(self.api_key)?,
            endpoint: parse_endpoint(&self.endpoint)?,
            token_ttl: positive("token_ttl", self.token_ttl)?,
            request_timeout: positive("request_timeout", self.request_timeout)?,
            token_parameter: parameter_name("token_parameter", self.token_parameter)?,
            product_parameter: parameter_name("product_parameter", self.product_parameter)?,
            max_tokens: match self.max_tokens {
                0 => return Err(ConfigError::new("max_tokens", "must be at least 1")),
                max => max,
            },
            attribution: self.attribution,
            extend_session_expiry: self.extend_session_expiry,
            capture_filter: self.capture_filter,
            retry: match self.retry.validate() {
                Ok(()) => self.retry,
                Err(reason) => return Err(ConfigError::new("retry", reason)),
            },
            queue_capacity: match self.queue_capacity {
                0 => return Err(ConfigError::new("queue_capacity", "must be at least 1")),
                capacity => capacity,
            },
            workers: match self.workers {
                1..=1024 => self.workers,
                _ => return Err(ConfigError::new("workers", "must be 1 to 1024")),
            },
        })
    }
}

impl fmt::Debug for SovendusConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SovendusConfigBuilder")
            .field("product_ids", &self.product_ids)
            .field("api_key", &MaskedKey(&self.api_key))
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn positive(field: &'static str, value: Duration) -> Result<Duration, ConfigError> {
    // moka cannot expire entries further out than this, and no real option needs more.
    const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    if value.is_zero() {
        Err(ConfigError::new(field, "must be longer than zero"))
    } else if value > MAX {
        Err(ConfigError::new(field, "must be at most 100 years"))
    } else {
        Ok(value)
    }
}

fn parameter_name(field: &'static str, name: String) -> Result<Box<str>, ConfigError> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(is_unreserved) {
        return Err(ConfigError::new(field, "must be 1 to 64 characters of A-Z a-z 0-9 - . _ ~"));
    }
    Ok(name.into())
}

fn parse_endpoint(endpoint: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: String| ConfigError::new("endpoint", reason);
    let url = Url::parse(endpoint.trim()).map_err(|error| invalid(format!("not a URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("scheme must be http or https, not {}", url.scheme())));
    }
    if url.host().is_none() {
        return Err(invalid("has no host".to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry credentials".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or fragment".to_owned()));
    }
    Ok(url)
}

/// A Sovendus product ID, validated for a URL path like a token (1 to 128 URL-unreserved
/// characters, not only dots).
///
/// ```
/// use tower_sovendus::ProductId;
///
/// let id = ProductId::new("9bc72425-902c-3abf-9db8-8b186d7cb160")?;
/// assert_eq!(id.as_str(), "9bc72425-902c-3abf-9db8-8b186d7cb160");
/// assert!(ProductId::new("a/b").is_err());
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProductId(Box<str>);

impl ProductId {
    /// Validates a product ID.
    ///
    /// ```
    /// use tower_sovendus::ProductId;
    ///
    /// assert_eq!(ProductId::new(" product-a ")?.as_str(), "product-a");
    /// assert_eq!(ProductId::new("..").unwrap_err().field(), "product_id");
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn new(value: impl Into<String>) -> Result<Self, ConfigError> {
        let value = value.into();
        let value = value.trim();
        if value.is_empty() || value.len() > 128 {
            return Err(ConfigError::new("product_id", "must be 1 to 128 characters long"));
        }
        if !value.bytes().all(is_unreserved) || value.bytes().all(|b| b == b'.') {
            return Err(ConfigError::new(
                "product_id",
                "must be made of A-Z a-z 0-9 - . _ ~ and not only dots",
            ));
        }
        Ok(Self(value.into()))
    }

    /// The product ID.
    ///
    /// ```
    /// use tower_sovendus::ProductId;
    ///
    /// let id = ProductId::new("9bc72425-902c-3abf-9db8-8b186d7cb160")?;
    /// assert_eq!(id.as_str(), "9bc72425-902c-3abf-9db8-8b186d7cb160");
    /// assert_eq!(id.as_str(), id.to_string());
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Sovendus API key. Its `Debug` and `Display` show `****` and at most its last 4
/// characters; it is zeroed when dropped.
///
/// ```
/// use tower_sovendus::SovendusConfig;
///
/// let config = SovendusConfig::new("product-a", "XXXX-XXXXX-XXXXXX-1234")?;
/// assert_eq!(config.api_key().to_string(), "****1234");
/// assert_eq!(format!("{:?}", config.api_key()), "ApiKey(****1234)");
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ApiKey(Arc<SecretString>);

impl ApiKey {
    fn new(key: String) -> Result<Self, ConfigError> {
        let trimmed = key.trim();
        if trimmed.is_empty() {
            return Err(ConfigError::new("api_key", "is empty"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ConfigError::new("api_key", "contains control characters"));
        }
        Ok(Self(Arc::new(SecretString::from(trimmed))))
    }

    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", MaskedKey(self.expose()))
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&MaskedKey(self.expose()), f)
    }
}

/// `****` and the last 4 characters, only when the key is long enough for those to give
/// little away (12 characters or more).
struct MaskedKey<'a>(&'a str);

impl fmt::Display for MaskedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.chars().count();
        f.write_str("****")?;
        if count >= 12 {
            self.0.chars().skip(count - 4).try_for_each(|c| write!(f, "{c}"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for MaskedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A configuration value that is not usable: names the option and the reason. Never contains
/// the API key.
///
/// ```
/// use std::time::Duration;
/// use tower_sovendus::SovendusConfig;
///
/// let error = SovendusConfig::builder("product-a", "key")
///     .token_ttl(Duration::ZERO)
///     .build()
///     .unwrap_err();
/// assert_eq!(error.field(), "token_ttl");
/// assert_eq!(error.to_string(), "invalid Sovendus option `token_ttl`: must be longer than zero");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Sovendus option `{field}`: {reason}")]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }

    /// The option at fault, named as its builder method.
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let error = SovendusConfig::builder("product-a", "XXXX-XXXXX").max_tokens(0).build().unwrap_err();
    /// assert_eq!(error.field(), "max_tokens");
    /// ```
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why the value was refused.
    ///
    /// ```
    /// use tower_sovendus::SovendusConfig;
    ///
    /// let error = SovendusConfig::builder("product-a", "XXXX-XXXXX").max_tokens(0).build().unwrap_err();
    /// assert_eq!(error.reason(), "must be at least 1");
    /// ```
    pub fn reason(&self) -> &str {
        &self.reason
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
        assert_eq!(config.max_tokens(), 1_000_000);
        assert_eq!(config.attribution(), Attribution::LastClick);
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
            (SovendusConfig::builder("p", "k").token_parameter("a&b"), "token_parameter"),
            (SovendusConfig::builder("p", "k").product_parameter(""), "product_parameter"),
            (SovendusConfig::builder("p", "k").max_tokens(0), "max_tokens"),
            (SovendusConfig::builder("p", "k").extra_product_id("p"), "extra_product_id"),
            (SovendusConfig::builder("p", "k").retry(RetryPolicy::default().max_attempts(0)), "retry"),
            (SovendusConfig::builder("p", "k").queue_capacity(0), "queue_capacity"),
            (SovendusConfig::builder("p", "k").workers(1025), "workers"),
        ];
        for (builder, field) in cases {
            assert_eq!(builder.build().unwrap_err().field(), field);
        }
    }

    #[test]
    fn key_is_masked_everywhere() {
        let key = "XXXX-XXXXX-XXXXXX-SECRET";
        let config = SovendusConfig::new("p", key).unwrap();
        assert!(!format!("{config:?}").contains("SECRET"));
        assert!(format!("{config:?}").contains("****CRET"));
        let builder = SovendusConfig::builder("p", key);
        assert!(!format!("{builder:?}").contains("XXXX-XXXXX"));
        assert_eq!(MaskedKey("short").to_string(), "****");
        let error = SovendusConfig::builder("a/b", key).build().unwrap_err();
        assert!(!error.to_string().contains("SECRET"));
    }
}
