//! [`ProductId`]: a Sovendus product ID, checked like a token.

use std::{fmt, str::FromStr, sync::Arc};

use super::token::is_unreserved;

/// The most characters of a product ID.
const MAX_LEN: usize = 128;

/// A Sovendus product ID, validated for a URL path like a token: 1 to 128 URL-unreserved
/// characters, not only dots. Clones share one allocation.
///
/// ```
/// use tower_sovendus::{InvalidProductId, ProductId};
///
/// let id = ProductId::new(" 9bc72425-902c-3abf-9db8-8b186d7cb160 ")?;
/// assert_eq!(id.as_str(), "9bc72425-902c-3abf-9db8-8b186d7cb160");
/// assert_eq!(ProductId::new("a/b"), Err(InvalidProductId::Characters));
/// # Ok::<(), InvalidProductId>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProductId(Arc<str>);

impl ProductId {
    /// Validates a product ID (surrounding whitespace is trimmed).
    pub fn new(value: impl AsRef<str>) -> Result<Self, InvalidProductId> {
        let value = value.as_ref().trim();
        if value.is_empty() || value.len() > MAX_LEN {
            return Err(InvalidProductId::Length(value.len()));
        }
        if !value.bytes().all(is_unreserved) || value.bytes().all(|b| b == b'.') {
            return Err(InvalidProductId::Characters);
        }
        Ok(Self(value.into()))
    }

    /// The product ID.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ProductId {
    type Err = InvalidProductId;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::new(value)
    }
}

super::serde_as_str!(ProductId);

/// Why a value is not a valid [`ProductId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidProductId {
    /// Empty, or longer than 128 bytes (surrounding whitespace trimmed).
    #[error("a product ID must be 1 to 128 characters long, not {0}")]
    Length(usize),
    /// A byte outside `A-Z a-z 0-9 - . _ ~`, or only dots.
    #[error("a product ID must be made of A-Z a-z 0-9 - . _ ~ and not only dots")]
    Characters,
}
