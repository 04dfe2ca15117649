//! [`SovReqToken`]: the validated Sovendus request token.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest token accepted, in bytes.
///
/// ```
/// use tower_sovendus::{InvalidToken, MAX_TOKEN_LEN, SovReqToken};
///
/// assert!(SovReqToken::new("x".repeat(MAX_TOKEN_LEN)).is_ok());
/// let too_long = SovReqToken::new("x".repeat(MAX_TOKEN_LEN + 1));
/// assert_eq!(too_long, Err(InvalidToken::TooLong { len: MAX_TOKEN_LEN + 1 }));
/// ```
pub const MAX_TOKEN_LEN: usize = 256;

/// How many leading characters of a token may appear in logs, `Debug` and `Display`.
const VISIBLE_PREFIX: usize = 8;

/// A Sovendus request token (`sovReqToken`), validated so it is safe to put in a URL path.
///
/// A token is 1 to 256 bytes of URL-unreserved characters (`A-Z a-z 0-9 - . _ ~`) and never
/// only dots, so it can neither leave its path segment nor climb out of it (`..`). Real tokens
/// such as `1095752fb409-457a-af14-17a09e6be522` and `12345-test-123-12345` pass.
///
/// `Debug` and `Display` show the first 8 characters only; [`as_str`](Self::as_str) gives the
/// whole token, for example to store it with an order.
///
/// ```
/// use tower_sovendus::SovReqToken;
///
/// let token: SovReqToken = "12345-test-123-12345".parse()?;
/// assert_eq!(token.as_str(), "12345-test-123-12345");
/// assert_eq!(token.to_string(), "12345-te…");
/// assert!("../admin".parse::<SovReqToken>().is_err());
/// # Ok::<(), tower_sovendus::InvalidToken>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SovReqToken(Box<str>);

impl SovReqToken {
    /// Validates `value` as a token.
    ///
    /// ```
    /// use tower_sovendus::{InvalidToken, SovReqToken};
    ///
    /// let token = SovReqToken::new("1095752fb409-457a-af14-17a09e6be522")?;
    /// assert_eq!(token.as_str(), "1095752fb409-457a-af14-17a09e6be522");
    /// assert_eq!(SovReqToken::new("a b"), Err(InvalidToken::ForbiddenCharacter { position: 1 }));
    /// # Ok::<(), InvalidToken>(())
    /// ```
    pub fn new(value: impl AsRef<str>) -> Result<Self, InvalidToken> {
        let value = value.as_ref();
        validate(value)?;
        Ok(Self(value.into()))
    }

    /// The whole token, unmasked.
    ///
    /// ```
    /// use tower_sovendus::SovReqToken;
    ///
    /// let token: SovReqToken = "1095752fb409-457a-af14-17a09e6be522".parse()?;
    /// assert_eq!(token.as_str(), "1095752fb409-457a-af14-17a09e6be522");
    /// assert_ne!(token.as_str(), token.to_string());
    /// # Ok::<(), tower_sovendus::InvalidToken>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The token with everything after its first 8 characters hidden, for logs.
    ///
    /// ```
    /// use tower_sovendus::SovReqToken;
    ///
    /// let token: SovReqToken = "1095752fb409-457a-af14-17a09e6be522".parse()?;
    /// assert_eq!(token.masked().to_string(), "1095752f…");
    /// assert_eq!(format!("{:?}", token.masked()), "\"1095752f…\"");
    /// # Ok::<(), tower_sovendus::InvalidToken>(())
    /// ```
    pub fn masked(&self) -> Masked<'_> {
        Masked(&self.0)
    }
}

/// Checks `value` against the token rules.
fn validate(value: &str) -> Result<(), InvalidToken> {
    if value.is_empty() {
        return Err(InvalidToken::Empty);
    }
    if value.len() > MAX_TOKEN_LEN {
        return Err(InvalidToken::TooLong { len: value.len() });
    }
    if let Some(position) = value.bytes().position(|byte| !is_unreserved(byte)) {
        return Err(InvalidToken::ForbiddenCharacter { position });
    }
    if value.bytes().all(|byte| byte == b'.') {
        return Err(InvalidToken::OnlyDots);
    }
    Ok(())
}

/// URL-unreserved characters (RFC 3986, section 2.3): safe in any path segment unescaped.
pub(crate) fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

impl FromStr for SovReqToken {
    type Err = InvalidToken;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::new(value)
    }
}

impl AsRef<str> for SovReqToken {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for SovReqToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SovReqToken").field(&self.masked()).finish()
    }
}

impl fmt::Display for SovReqToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.masked(), f)
    }
}

impl Serialize for SovReqToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SovReqToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::new(value).map_err(serde::de::Error::custom)
    }
}

/// Any string shown masked: at most its first 8 characters (escaped), then `…` if anything was
/// hidden.
///
/// Used for tokens, valid or not, wherever they are logged.
///
/// ```
/// use tower_sovendus::Masked;
///
/// assert_eq!(Masked("1095752fb409-457a").to_string(), "1095752f…");
/// assert_eq!(Masked("short").to_string(), "short");
/// assert_eq!(Masked("a\nb").to_string(), "a\\nb");
/// ```
#[derive(Clone, Copy)]
pub struct Masked<'a>(pub &'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(VISIBLE_PREFIX) {
            write!(f, "{}", c.escape_debug())?;
        }
        if chars.next().is_some() {
            f.write_str("…")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Why a value is not a valid [`SovReqToken`]. Never contains the value itself.
///
/// ```
/// use tower_sovendus::{InvalidToken, SovReqToken};
///
/// assert_eq!("".parse::<SovReqToken>(), Err(InvalidToken::Empty));
/// assert_eq!("..".parse::<SovReqToken>(), Err(InvalidToken::OnlyDots));
/// let error = SovReqToken::new("my token").unwrap_err();
/// assert_eq!(error, InvalidToken::ForbiddenCharacter { position: 2 });
/// assert!(!error.to_string().contains("my token"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToken {
    /// The value is empty.
    #[error("token is empty")]
    Empty,
    /// The value is longer than 256 bytes.
    #[error("token is {len} bytes long, more than the 256 allowed")]
    TooLong {
        /// The value's length in bytes.
        len: usize,
    },
    /// The value contains a byte outside `A-Z a-z 0-9 - . _ ~`.
    #[error("token has a forbidden character at byte {position} (allowed: A-Z a-z 0-9 - . _ ~)")]
    ForbiddenCharacter {
        /// The byte offset of the first forbidden character.
        position: usize,
    },
    /// The value is made of dots only (`.`, `..`), a path traversal.
    #[error("token is made of dots only")]
    OnlyDots,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_shapes() {
        for value in [
            "1095752fb409-457a-af14-17a09e6be522",
            "12345-test-123-12345",
            "a",
            "a.b",
            "~_-.x",
            &"x".repeat(MAX_TOKEN_LEN),
        ] {
            assert_eq!(SovReqToken::new(value).unwrap().as_str(), value);
        }
    }

    #[test]
    fn refuses_unsafe_values() {
        let too_long = "x".repeat(MAX_TOKEN_LEN + 1);
        let cases: &[(&str, InvalidToken)] = &[
            ("", InvalidToken::Empty),
            (&too_long, InvalidToken::TooLong { len: 257 }),
            (".", InvalidToken::OnlyDots),
            ("..", InvalidToken::OnlyDots),
            ("a/b", InvalidToken::ForbiddenCharacter { position: 1 }),
            ("%2F", InvalidToken::ForbiddenCharacter { position: 0 }),
            ("ab?c", InvalidToken::ForbiddenCharacter { position: 2 }),
            ("ab#", InvalidToken::ForbiddenCharacter { position: 2 }),
            ("a b", InvalidToken::ForbiddenCharacter { position: 1 }),
            ("é", InvalidToken::ForbiddenCharacter { position: 0 }),
            ("a\0", InvalidToken::ForbiddenCharacter { position: 1 }),
        ];
        for (value, expected) in cases {
            assert_eq!(SovReqToken::new(value).unwrap_err(), *expected, "{value:?}");
        }
    }

    #[test]
    fn debug_and_display_mask() {
        let token = SovReqToken::new("1095752fb409-457a-af14-17a09e6be522").unwrap();
        assert_eq!(format!("{token}"), "1095752f…");
        assert_eq!(format!("{token:?}"), "SovReqToken(\"1095752f…\")");
    }

    #[test]
    fn serde_round_trip_validates() {
        let token: SovReqToken = serde_json::from_str("\"12345-test-123-12345\"").unwrap();
        assert_eq!(serde_json::to_string(&token).unwrap(), "\"12345-test-123-12345\"");
        assert!(serde_json::from_str::<SovReqToken>("\"a/b\"").is_err());
    }
}
