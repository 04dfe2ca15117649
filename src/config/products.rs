//! [`Products`]: the configured product IDs, the primary one first.

use std::sync::Arc;

use super::{MAX_PRODUCTS, error::ConfigError};
use crate::ids::ProductId;

/// The configured products: the primary one first, then those a landing may choose.
#[derive(Debug, Clone)]
pub(crate) struct Products(Arc<[ProductId]>);

impl Products {
    /// The products, checked: at most [`MAX_PRODUCTS`], none twice.
    pub(crate) fn new(products: Vec<ProductId>) -> Result<Self, ConfigError> {
        if products.len() > MAX_PRODUCTS {
            let reason = format!("at most {} product IDs are supported", MAX_PRODUCTS);
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
