//! [`ProductId`] and the table of configured products.

use std::{fmt, str::FromStr, sync::Arc};

use crate::{error::ConfigError, token::is_unreserved};

/// The most characters of a product ID.
const MAX_LEN: usize = 128;

/// A Sovendus product ID, validated for a URL path like a token: 1 to 128 URL-unreserved
/// characters, not only dots. Clones share one allocation.
///
/// ```
/// use tower_sovendus::config::ProductId;
///
/// let id = ProductId::new(" 9bc72425-902c-3abf-9db8-8b186d7cb160 ")?;
/// assert_eq!(id.as_str(), "9bc72425-902c-3abf-9db8-8b186d7cb160");
/// assert_eq!(ProductId::new("a/b").unwrap_err().field(), "product_id");
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProductId(Arc<str>);

impl ProductId {
    /// Validates a product ID (surrounding whitespace is trimmed).
    pub fn new(value: impl AsRef<str>) -> Result<Self, ConfigError> {
        let value = value.as_ref().trim();
        if value.is_empty() || value.len() > MAX_LEN {
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
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::new(value)
    }
}

/// The configured products: the primary one first, then those a landing may choose.
#[derive(Debug, Clone)]
pub(crate) struct Products(Arc<[ProductId]>);

impl Products {
    /// The products, checked: at most [`MAX_PRODUCTS`](super::MAX_PRODUCTS), none twice.
    pub(crate) fn new(products: Vec<ProductId>) -> Result<Self, ConfigError> {
        if products.len() > super::MAX_PRODUCTS {
            let reason = format!("at most {} product IDs are supported", super::MAX_PRODUCTS);
            return Err(ConfigError::new("extra_product_id", reason));
        }
        if let Some(twice) = products.iter().enumerate().find(|(at, id)| products[..*at].contains(id)) {
            return Err(ConfigError::new(
                "extra_product_id",
                format!("product ID {} is configured twice", twice.1),
            ));
        }
        Ok(Self(products.into()))
    }

    pub(crate) fn all(&self) -> &[ProductId] {
        &self.0
    }

    /// The product used when a landing chooses none.
    pub(crate) fn primary(&self) -> &ProductId {
        &self.0[0]
    }

    /// The configured product whose ID is `value`, if any.
    pub(crate) fn get(&self, value: &str) -> Option<&ProductId> {
        self.0.iter().find(|product| product.as_str() == value)
    }
}
