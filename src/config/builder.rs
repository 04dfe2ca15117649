//! [`SovendusConfigBuilder`]: every option of a [`SovendusConfig`], checked at
//! [`build`](SovendusConfigBuilder::build).

use super::*;

/// Builds a [`SovendusConfig`]; every value is checked in [`build`](Self::build). The methods
/// come in three groups: capture, client, delivery.
#[must_use]
pub struct SovendusConfigBuilder {
    product_ids: Vec<String>,
    api_key: String,
    token_parameter: String,
    product_parameter: String,
    token_ttl: Duration,
    attribution: Attribution,
    extend_session_expiry: bool,
    capture_filter: Option<CaptureFilter>,
    max_tokens: u64,
    endpoint: String,
    request_timeout: Duration,
    retry: RetryPolicy,
    queue_capacity: usize,
    workers: usize,
    schedule: DeliverySchedule,
}

/// Capture: how a landing's token is found and kept.
impl SovendusConfigBuilder {
    /// A builder for `product_id` and `api_key`, every other option at its default.
    pub(super) fn new(product_id: String, api_key: String) -> Self {
        Self {
            product_ids: vec![product_id],
            api_key,
            token_parameter: DEFAULT_TOKEN_PARAMETER.to_owned(),
            product_parameter: DEFAULT_PRODUCT_PARAMETER.to_owned(),
            token_ttl: DEFAULT_TOKEN_TTL,
            attribution: Attribution::default(),
            extend_session_expiry: true,
            capture_filter: None,
            max_tokens: DEFAULT_MAX_TOKENS,
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retry: RetryPolicy::default(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            workers: DEFAULT_WORKERS,
            schedule: DeliverySchedule::default(),
        }
    }
}

impl SovendusConfigBuilder {
    /// The query parameter carrying the token (default [`DEFAULT_TOKEN_PARAMETER`]); Sovendus
    /// renames it for some partners.
    pub fn token_parameter(mut self, name: impl Into<String>) -> Self {
        self.token_parameter = name.into();
        self
    }

    /// Adds a product that a landing URL may choose with the product parameter. A landing
    /// without it, or with a value that is not configured, uses the first product ID.
    pub fn extra_product_id(mut self, product_id: impl Into<String>) -> Self {
        self.product_ids.push(product_id.into());
        self
    }

    /// The query parameter choosing the product (default [`DEFAULT_PRODUCT_PARAMETER`]).
    pub fn product_parameter(mut self, name: impl Into<String>) -> Self {
        self.product_parameter = name.into();
        self
    }

    /// How long a captured token waits for its order (default [`DEFAULT_TOKEN_TTL`]).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// Whether a later click replaces the stored token (default [`Attribution::LastClick`]).
    pub fn attribution(mut self, attribution: Attribution) -> Self {
        self.attribution = attribution;
        self
    }

    /// Whether capturing a token makes the visitor's session live at least as long as the
    /// token (default `true`).
    pub fn extend_session_expiry(mut self, extend: bool) -> Self {
        self.extend_session_expiry = extend;
        self
    }

    /// Captures a token only from requests for which `filter` returns `true`, e.g. those
    /// carrying a consent cookie. Refused requests are passed on untouched.
    ///
    /// ```
    /// use http::request::Parts;
    /// use tower_sovendus::SovendusConfig;
    ///
    /// fn consented(request: &Parts) -> bool {
    ///     let cookies = request.headers.get("cookie").and_then(|value| value.to_str().ok());
    ///     cookies.is_some_and(|cookies| cookies.split(';').any(|c| c.trim() == "consent=yes"))
    /// }
    /// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX").capture_if(consented).build()?;
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn capture_if(mut self, filter: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        self.capture_filter = Some(Arc::new(filter));
        self
    }

    /// The most tokens the embedded store holds (default [`DEFAULT_MAX_TOKENS`]); beyond it,
    /// the least recently used go first. Shared stores ignore it.
    pub fn max_tokens(mut self, max: u64) -> Self {
        self.max_tokens = max;
        self
    }
}

/// Client: how Sovendus is called.
impl SovendusConfigBuilder {
    /// The API endpoint, http or https, with no query (default [`DEFAULT_ENDPOINT`]).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// How long one call to Sovendus may take, connecting included (default
    /// [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How failed calls are repeated (default [`RetryPolicy::default`]);
    /// [`RetryPolicy::never`] sends once.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }
}

/// Delivery: how conversions are delivered until Sovendus answers.
impl SovendusConfigBuilder {
    /// How many conversions the embedded store holds owed or parked at once (default
    /// [`DEFAULT_QUEUE_CAPACITY`]); beyond it, an order's token stays with the visitor and
    /// the order is answered [`SovendusError::QueueFull`](crate::SovendusError::QueueFull).
    /// Durable stores ignore it.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// How many delivery workers of an instance send conversions at once, 1 to 1,024
    /// (default [`DEFAULT_WORKERS`]).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// When owed conversions are attempted again, how long settled ones are kept, and how the
    /// workers hold what they send (default [`DeliverySchedule::default`]).
    pub fn schedule(mut self, schedule: DeliverySchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Checks every value and builds the configuration.
    pub fn build(self) -> Result<SovendusConfig, ConfigError> {
        let products = self.product_ids.iter().map(ProductId::new).collect::<Result<Vec<_>, _>>();
        let products = products.map_err(|invalid| ConfigError::new("product_id", invalid.to_string()))?;
        let capture = CaptureOptions {
            token_parameter: parameter_name("token_parameter", self.token_parameter)?,
            product_parameter: parameter_name("product_parameter", self.product_parameter)?,
            token_ttl: positive("token_ttl", self.token_ttl)?,
            attribution: self.attribution,
            extend_session_expiry: self.extend_session_expiry,
            filter: self.capture_filter,
            max_tokens: at_least_one("max_tokens", self.max_tokens)?,
        };
        let client = ClientOptions {
            api_key: ApiKey::new(&self.api_key)?,
            endpoint: parse_endpoint(&self.endpoint)?,
            request_timeout: positive("request_timeout", self.request_timeout)?,
            retry: self.retry.validate().map_err(|reason| ConfigError::new("retry", reason))?,
        };
        let delivery = DeliveryOptions {
            queue_capacity: at_least_one("queue_capacity", self.queue_capacity)?,
            workers: match self.workers {
                1..=1024 => self.workers,
                _ => return Err(ConfigError::new("workers", "must be 1 to 1024")),
            },
            schedule: self.schedule.validate().map_err(|reason| ConfigError::new("schedule", reason))?,
        };
        // A token converts once, ever, as long as its conversion is kept: it must be kept as long
        // as a bookmarked landing can bring the token back.
        if delivery.schedule.keep_settled_for < capture.token_ttl {
            return Err(ConfigError::new(
                "schedule",
                "keep_settled_for must be at least token_ttl: a converted token is remembered as long as it can land again",
            ));
        }
        // An attempt starts under a fresh lease and ends within the request timeout: inside the
        // quarantine, so no other delivery sends the conversion while the call may be out.
        if delivery.schedule.quarantine < client.request_timeout {
            return Err(ConfigError::new(
                "schedule",
                "quarantine must be at least request_timeout: a call under way ends before another delivery may send its conversion",
            ));
        }
        Ok(SovendusConfig { products: Products::new(products)?, capture, client, delivery })
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

fn at_least_one<N: PartialEq + From<u8>>(field: &'static str, value: N) -> Result<N, ConfigError> {
    if value == N::from(0) { Err(ConfigError::new(field, "must be at least 1")) } else { Ok(value) }
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
    if url.scheme() == "https"
        && !cfg!(any(feature = "rustls", feature = "rustls-ring", feature = "native-tls"))
    {
        return Err(invalid(
            "is https, and this build has no TLS: enable the feature `rustls` (the default), `rustls-ring` or `native-tls`"
                .to_owned(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry credentials".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or fragment".to_owned()));
    }
    Ok(url)
}
