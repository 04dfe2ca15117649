//! The crate's errors: [`SovendusError`] (a conversion not accepted), [`ConfigError`] (an
//! unusable option) and [`StoreError`] (a token store failing).

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode, header::RETRY_AFTER};
use serde::Deserialize;

/// Why a conversion was not accepted.
///
/// [Retryable](Self::is_retryable) errors keep the token for a later attempt; terminal
/// answers (403, 404, 405, 422) cannot succeed by retrying. No variant carries the API key or
/// a whole token.
///
/// ```
/// use http::StatusCode;
/// use tower_sovendus::SovendusError;
///
/// let error = SovendusError::from_response(StatusCode::UNPROCESSABLE_ENTITY, br#"{"message":"Token not found."}"#);
/// assert!(matches!(&error, SovendusError::InvalidProductOrToken { message } if message == "Token not found."));
/// assert!(!error.is_retryable());
/// assert!(SovendusError::from_response(StatusCode::BAD_GATEWAY, b"").is_retryable());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SovendusError {
    /// 403: Sovendus refused the API key.
    #[error("Sovendus refused the API key (403)")]
    InvalidApiKey,
    /// 422: Sovendus does not know the product ID or the token.
    #[error("Sovendus refused the product ID or token (422): {message}")]
    InvalidProductOrToken {
        /// Sovendus' own explanation, e.g. "Token not found.".
        message: String,
    },
    /// 404 or 405: the endpoint is wrong.
    #[error("Sovendus answered {status}: wrong URL, check the endpoint: {message}")]
    WrongUrl {
        /// 404 or 405.
        status: StatusCode,
        /// Sovendus' own explanation, e.g. "Invalid API call.".
        message: String,
    },
    /// 5xx: Sovendus is down or failing; try again later.
    #[error("Sovendus is unavailable ({status})")]
    Unavailable {
        /// The 5xx status.
        status: StatusCode,
        /// How long Sovendus asked to wait (`Retry-After`), if it said.
        retry_after: Option<Duration>,
    },
    /// 429: too many calls; try again after `retry_after`.
    #[error("Sovendus asked to slow down (429)")]
    RateLimited {
        /// How long Sovendus asked to wait (`Retry-After`), if it said.
        retry_after: Option<Duration>,
    },
    /// Any other status.
    #[error("Sovendus answered an unexpected {status}: {message}")]
    UnexpectedStatus {
        /// The status.
        status: StatusCode,
        /// The start of the body.
        message: String,
    },
    /// No answer within the configured request timeout.
    #[error("Sovendus did not answer in time")]
    Timeout,
    /// The connection failed or broke before a whole answer arrived.
    #[error("could not reach Sovendus: {0}")]
    Connection(#[source] reqwest::Error),
    /// The call was cut off by a shutdown (of the runtime, or of the background
    /// [`Delivery`](crate::Delivery) at its deadline); the token is kept.
    #[error("the Sovendus call was cancelled by a shutdown")]
    Cancelled,
    /// The store holds as many owed conversions as it may (the embedded store's
    /// `queue_capacity`); nothing changed, and the token stays with the visitor.
    #[error("the Sovendus owed conversions are full")]
    QueueFull,
    /// The background [`Delivery`](crate::Delivery) is shutting down and takes no more
    /// conversions; the token is kept.
    #[error("the Sovendus background delivery is shutting down")]
    ShuttingDown,
    /// The [token store](crate::store::TokenStore) failed before anything was sent (Redis
    /// down, say); the token, if any, stays stored for a later attempt.
    #[error("the Sovendus conversion was not sent: {0}")]
    Store(#[source] StoreError),
}

/// The most characters of a body kept in an error message.
const MAX_MESSAGE_CHARS: usize = 200;

impl SovendusError {
    /// Maps a non-200 answer to its error, keeping Sovendus' message.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower_sovendus::SovendusError;
    ///
    /// let error = SovendusError::from_response(StatusCode::FORBIDDEN, b"Unauthorized.");
    /// assert!(matches!(error, SovendusError::InvalidApiKey));
    /// let error = SovendusError::from_response(StatusCode::NOT_FOUND, br#"{"message":"Invalid API call."}"#);
    /// assert!(matches!(error, SovendusError::WrongUrl { message, .. } if message == "Invalid API call."));
    /// ```
    pub fn from_response(status: StatusCode, body: &[u8]) -> Self {
        Self::from_answer(status, &HeaderMap::new(), body)
    }

    /// Like [`from_response`](Self::from_response), reading `Retry-After` (seconds or an HTTP
    /// date) from the headers of a 429 or 5xx.
    ///
    /// ```
    /// use std::time::Duration;
    /// use http::{HeaderMap, StatusCode, header::RETRY_AFTER};
    /// use tower_sovendus::SovendusError;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert(RETRY_AFTER, "7".parse()?);
    /// let error = SovendusError::from_answer(StatusCode::TOO_MANY_REQUESTS, &headers, b"");
    /// assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_answer(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let message = || message_of(body);
        let retry_after = || retry_after(headers);
        match status.as_u16() {
            403 => Self::InvalidApiKey,
            422 => Self::InvalidProductOrToken { message: message() },
            404 | 405 => Self::WrongUrl { status, message: message() },
            429 => Self::RateLimited { retry_after: retry_after() },
            500..=599 => Self::Unavailable { status, retry_after: retry_after() },
            _ => Self::UnexpectedStatus { status, message: message() },
        }
    }

    /// Whether the same call may succeed later: 429, 5xx, timeouts, connection failures,
    /// cancellations, a full or closed queue and a token store that failed (but not one that
    /// holds an unreadable record). 403, 404, 405 and 422 do not change by retrying, nor does
    /// an unexpected status.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unavailable { .. }
            | Self::RateLimited { .. }
            | Self::Timeout
            | Self::Connection(_)
            | Self::Cancelled
            | Self::QueueFull
            | Self::ShuttingDown => true,
            Self::Store(error) => error.is_retryable(),
            Self::InvalidApiKey
            | Self::InvalidProductOrToken { .. }
            | Self::WrongUrl { .. }
            | Self::UnexpectedStatus { .. } => false,
        }
    }

    /// How long Sovendus asked to wait before the next call (`Retry-After` on a 429 or 5xx).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } | Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn from_transport(error: reqwest::Error) -> Self {
        // The URL holds the whole token: never let it into an error message.
        let error = error.without_url();
        if error.is_timeout() { Self::Timeout } else { Self::Connection(error) }
    }
}

/// `Retry-After` as a wait: delay-seconds, or an HTTP date from now (a past date is no wait).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(SystemTime::now()).unwrap_or_default())
}

/// Sovendus' explanation in a body: a JSON `message` or `error` field, else the text itself,
/// shortened and stripped of control characters.
fn message_of(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Explained {
        message: Option<String>,
        error: Option<String>,
    }
    let text = match serde_json::from_slice::<Explained>(body) {
        Ok(Explained { message: Some(text), .. } | Explained { error: Some(text), .. }) => text,
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    text.trim().chars().filter(|c| !c.is_control()).take(MAX_MESSAGE_CHARS).collect()
}

/// A configuration value that is not usable: names the option and the reason. Never contains
/// the API key.
///
/// ```
/// use std::time::Duration;
/// use tower_sovendus::SovendusConfig;
///
/// let error = SovendusConfig::builder("product-a", "key").token_ttl(Duration::ZERO).build().unwrap_err();
/// assert_eq!((error.field(), error.reason()), ("token_ttl", "must be longer than zero"));
/// assert_eq!(error.to_string(), "invalid Sovendus option `token_ttl`: must be longer than zero");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Sovendus option `{field}`: {reason}")]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }

    /// The option at fault, named as its builder method.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why the value was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A token store failed: unreachable, too slow, or it holds a record it cannot read.
///
/// It carries the store's own error as its source; never a token or a secret.
///
/// ```
/// use std::time::Duration;
/// use tower_sovendus::store::StoreError;
///
/// let error = StoreError::TimedOut(Duration::from_millis(500));
/// assert_eq!(error.to_string(), "the token store did not answer within 500ms");
/// let error = StoreError::backend(std::io::Error::other("connection refused"));
/// assert_eq!(error.to_string(), "the token store failed: connection refused");
/// assert!(error.is_retryable());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer within its timeout.
    #[error("the token store did not answer within {0:?}")]
    TimedOut(Duration),
    /// The store answered with an error, or could not be reached.
    #[error("the token store failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored record cannot be read: corrupt, or written in a format this version refuses.
    /// It is never sent; what it holds stays out of the message.
    #[error("the token store holds an unreadable record: {0}")]
    Unreadable(String),
    /// The store holds as many records of a kind as it may, and takes no more until some go.
    #[error("the token store is full: it holds the most {0} it may")]
    Full(String),
}

impl StoreError {
    /// Wraps a store's own error.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(error))
    }

    /// Whether asking again may succeed: a timeout or a failing backend may pass, an
    /// unreadable record stays unreadable.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Unreadable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_statuses() {
        let map =
            |code: u16, body: &[u8]| SovendusError::from_response(StatusCode::from_u16(code).unwrap(), body);
        assert!(matches!(map(403, b"unauthorized"), SovendusError::InvalidApiKey));
        assert!(
            matches!(map(404, b"Invalid API call."), SovendusError::WrongUrl { message, .. } if message == "Invalid API call.")
        );
        assert!(matches!(map(405, b""), SovendusError::WrongUrl { status, .. } if status == 405));
        assert!(matches!(map(422, br#"{"error":"External product id not found."}"#),
            SovendusError::InvalidProductOrToken { message } if message == "External product id not found."));
        assert!(matches!(map(503, b""), SovendusError::Unavailable { status, .. } if status == 503));
        assert!(matches!(map(429, b""), SovendusError::RateLimited { retry_after: None }));
        assert!(
            matches!(map(418, b"teapot\n"), SovendusError::UnexpectedStatus { message, .. } if message == "teapot")
        );
        assert!(map(429, b"").is_retryable());
    }

    #[test]
    fn reads_retry_after_as_seconds_or_date() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, value.parse().unwrap());
            SovendusError::from_answer(StatusCode::SERVICE_UNAVAILABLE, &headers, b"").retry_after()
        };
        assert_eq!(with("120"), Some(Duration::from_secs(120)));
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(61));
        let wait = with(&in_a_minute).unwrap();
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(61), "{wait:?}");
        assert_eq!(with("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(with("soon"), None);
        assert_eq!(with("-5"), None);
    }

    #[test]
    fn long_messages_are_cut() {
        let body = "x".repeat(10_000);
        let SovendusError::InvalidProductOrToken { message } =
            SovendusError::from_response(StatusCode::UNPROCESSABLE_ENTITY, body.as_bytes())
        else {
            panic!("422 maps to InvalidProductOrToken");
        };
        assert_eq!(message.len(), MAX_MESSAGE_CHARS);
    }

    #[test]
    fn an_unreadable_record_is_not_retryable() {
        let error = SovendusError::Store(StoreError::Unreadable("an old format".to_owned()));
        assert!(!error.is_retryable());
        assert!(SovendusError::Store(StoreError::TimedOut(Duration::from_secs(1))).is_retryable());
    }
}
