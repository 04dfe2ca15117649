//! [`SovendusError`]: why a conversion was not accepted.

use std::time::Duration;

use http::StatusCode;

use crate::store::StoreError;

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
    /// A shutdown stopped the delivery between two calls (the background
    /// [`Delivery`](crate::Delivery)'s at its deadline, or the runtime's): the conversion stays
    /// owed, due at once.
    #[error("the Sovendus delivery was stopped by a shutdown")]
    Cancelled,
    /// The store holds as many owed conversions as it may (the embedded store's
    /// `queue_capacity`); nothing changed, and the token stays with the visitor.
    #[error("the Sovendus owed conversions are full")]
    QueueFull,
    /// The background [`Delivery`](crate::Delivery) is shutting down and takes no more
    /// conversions; the token is kept.
    #[error("the Sovendus background delivery is shutting down")]
    ShuttingDown,
    /// The [token store](crate::store::TokenStore) refused as the order took the token:
    /// nothing changed, and the token stays with the visitor. (A store that may have written
    /// answers [`Outcome::Unknown`](crate::Outcome::Unknown) instead.)
    #[error("the Sovendus conversion was not recorded: {0}")]
    Store(#[source] StoreError),
    /// The order's transaction cannot take the conversion (`owe_in`): the layer's store is not
    /// a `SqlTokenStore`, the connection is not in a transaction, or the transaction is on
    /// another database than the store's. A setup mistake; nothing of the crate's was written.
    /// On Postgres, a statement that failed (a missing table) aborted the transaction: roll it
    /// back.
    #[error("the order's transaction cannot take the Sovendus conversion: {0}")]
    Unjoinable(String),
}

impl SovendusError {
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
            | Self::UnexpectedStatus { .. }
            | Self::Unjoinable(_) => false,
        }
    }

    /// How long Sovendus asked to wait before the next call (`Retry-After` on a 429 or 5xx).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } | Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_unreadable_record_is_not_retryable() {
        let error = SovendusError::Store(StoreError::Unreadable("an old format".to_owned()));
        assert!(!error.is_retryable());
        assert!(SovendusError::Store(StoreError::TimedOut(Duration::from_secs(1))).is_retryable());
    }
}
