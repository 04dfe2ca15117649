//! Sovendus' answers read as a [`SovendusError`]: the status, `Retry-After` and the message.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode, header::RETRY_AFTER};
use serde::Deserialize;

use crate::error::SovendusError;

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

    /// A call that got no whole answer: a timeout, or a connection that failed or broke.
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
}
