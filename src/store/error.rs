//! [`StoreError`]: a token store failing.

use std::time::Duration;

/// A token store failed: unreachable, too slow, cut off, or it holds a record it cannot read.
///
/// It carries the store's own error as its source; never a token or a secret. A store that
/// timed out, or was cut off once the request had left, may have done what it was asked
/// ([`is_outcome_unknown`](Self::is_outcome_unknown)). The crate's stores report an order's
/// [`take`](super::ConversionStore::take) so whenever its write may have gone through: any other
/// error of a take means it did nothing.
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
/// assert!(!error.is_outcome_unknown(), "refused: nothing done");
/// assert!(StoreError::TimedOut(Duration::from_secs(5)).is_outcome_unknown());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer within its timeout: what was asked may have been done.
    #[error("the token store did not answer within {0:?}")]
    TimedOut(Duration),
    /// The store answered with an error, or could not be reached.
    #[error("the token store failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The connection broke after the request had left, before the answer came (a commit cut
    /// off, say): what was asked may have been done.
    #[error("the token store was cut off before it answered: {0}")]
    Interrupted(#[source] Box<dyn std::error::Error + Send + Sync>),
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

    /// Wraps a store's own error, raised once the request had left: the store may have done
    /// what it was asked.
    pub fn interrupted(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Interrupted(Box::new(error))
    }

    /// Whether the store may have done what it was asked, though it answered no: it
    /// [timed out](Self::TimedOut) or was [cut off](Self::Interrupted). Asking again is safe
    /// for every operation of a [`TokenStore`](super::TokenStore): each either finds its work
    /// done or does it.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Self::TimedOut(_) | Self::Interrupted(_))
    }

    /// Whether asking again may succeed: a timeout or a failing backend may pass, an
    /// unreadable record stays unreadable.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Unreadable(_))
    }
}
