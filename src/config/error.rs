//! [`ConfigError`]: an option the configuration refuses.

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
