//! [`ApiKey`]: the Sovendus API key, kept secret.

use std::{fmt, sync::Arc};

use secrecy::{ExposeSecret, SecretString};

use super::error::ConfigError;

/// The Sovendus API key. Its `Debug` and `Display` show `****` and, for keys of 12 characters
/// or more, their last 4; it is zeroed when dropped.
///
/// ```
/// use tower_sovendus::SovendusConfig;
///
/// let config = SovendusConfig::new("product-a", "XXXX-XXXXX-XXXXXX-1234")?;
/// assert_eq!(config.api_key().to_string(), "****1234");
/// assert_eq!(format!("{:?}", config.api_key()), "ApiKey(****1234)");
/// assert_eq!(SovendusConfig::new("product-a", "XXXX-XXXXX")?.api_key().to_string(), "****");
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ApiKey(Arc<SecretString>);

impl ApiKey {
    pub(crate) fn new(key: &str) -> Result<Self, ConfigError> {
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
pub(crate) struct MaskedKey<'a>(pub(crate) &'a str);

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_show_nothing_of_themselves() {
        assert_eq!(MaskedKey("short").to_string(), "****");
        assert_eq!(MaskedKey("XXXX-XXXXX-SECRET").to_string(), "****CRET");
        assert!(ApiKey::new(" ").is_err());
        assert!(ApiKey::new("a\nb").is_err());
    }
}
