//! [`SovReqToken`]: the validated Sovendus request token.

use std::{fmt, str::FromStr};

use crate::mask::Masked;

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
    /// The longest token accepted, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Validates `value` as a token.
    pub fn new(value: impl AsRef<str>) -> Result<Self, InvalidToken> {
        let value = value.as_ref();
        validate(value)?;
        Ok(Self(value.into()))
    }

    /// The whole token, unmasked.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The token with everything after its first 8 characters hidden, for logs.
    pub(crate) fn masked(&self) -> Masked<'_> {
        Masked(&self.0)
    }
}

/// Checks `value` against the token rules.
fn validate(value: &str) -> Result<(), InvalidToken> {
    if value.is_empty() {
        return Err(InvalidToken::Empty);
    }
    if value.len() > SovReqToken::MAX_LEN {
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

super::serde_as_str!(SovReqToken);

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
            &"x".repeat(SovReqToken::MAX_LEN),
        ] {
            assert_eq!(SovReqToken::new(value).unwrap().as_str(), value);
        }
    }

    #[test]
    fn refuses_unsafe_values() {
        let too_long = "x".repeat(SovReqToken::MAX_LEN + 1);
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

    mod properties {
        use proptest::prelude::*;

        use super::super::*;
        use crate::mask::VISIBLE_PREFIX;

        /// Strings near the token rules: valid shapes, lengths around the limit, dots only,
        /// valid shapes with one forbidden character spliced in, and anything at all.
        fn candidate() -> impl Strategy<Value = String> {
            prop_oneof![
                "[A-Za-z0-9._~-]{0,20}",
                "[A-Za-z0-9._~-]{250,260}",
                "\\.{0,300}",
                ("[A-Za-z0-9._~-]{0,10}", forbidden_character(), "[A-Za-z0-9._~-]{0,10}")
                    .prop_map(|(a, bad, b)| format!("{a}{bad}{b}")),
                any::<String>(),
            ]
        }

        /// One character outside the token alphabet, ASCII ones (`%`, `/`, `?`, `#`...) often.
        fn forbidden_character() -> impl Strategy<Value = String> {
            prop_oneof![r"[\x00-\x2C/:-@\[-\^`{-}\x7F]", "[^A-Za-z0-9._~-]"]
        }

        /// Valid tokens only.
        fn token() -> impl Strategy<Value = SovReqToken> {
            "[A-Za-z0-9._~-]{1,256}"
                .prop_filter("not only dots", |value| !value.bytes().all(|byte| byte == b'.'))
                .prop_map(|value| SovReqToken::new(value).expect("valid by construction"))
        }

        /// Whether some 9-character window of `token` appears in `output`.
        fn leaks_more_than_the_prefix(token: &str, output: &str) -> bool {
            // Tokens are ASCII, so byte windows are character windows.
            token
                .as_bytes()
                .windows(VISIBLE_PREFIX + 1)
                .any(|window| output.contains(std::str::from_utf8(window).expect("ASCII")))
        }

        /// The rules, restated independently of `validate`.
        fn follows_the_rules(value: &str) -> bool {
            (1..=SovReqToken::MAX_LEN).contains(&value.len())
                && value.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
                && value.bytes().any(|byte| byte != b'.')
        }

        /// Exhaustive over ASCII, where random generation may miss the one character that
        /// matters (`%`, `/`, `#`...).
        #[test]
        fn new_classifies_every_ascii_character_as_the_rules_say() {
            for byte in 0..=0x7F_u8 {
                let value = format!("a{}b", char::from(byte));
                assert_eq!(SovReqToken::new(&value).is_ok(), follows_the_rules(&value), "{value:?}");
            }
        }

        proptest! {
            #[test]
            fn new_accepts_exactly_the_rules(value in candidate()) {
                prop_assert_eq!(SovReqToken::new(&value).is_ok(), follows_the_rules(&value), "value {:?}", value);
            }

            #[test]
            fn as_str_round_trips(value in candidate()) {
                if let Ok(token) = SovReqToken::new(&value) {
                    prop_assert_eq!(token.as_str(), value.as_str());
                    prop_assert_eq!(value.parse::<SovReqToken>(), Ok(token));
                }
            }

            #[test]
            fn display_and_debug_show_at_most_the_first_eight_characters(token in token()) {
                let value = token.as_str();
                let prefix = &value[..value.len().min(VISIBLE_PREFIX)];
                let ellipsis = if value.len() > VISIBLE_PREFIX { "…" } else { "" };
                let display = token.to_string();
                let debug = format!("{token:?}");
                prop_assert_eq!(&display, &format!("{prefix}{ellipsis}"));
                prop_assert_eq!(&debug, &format!("SovReqToken(\"{prefix}{ellipsis}\")"));
                // The property itself: only the part inside the fixed wrapper comes from the token.
                let inside = debug.strip_prefix("SovReqToken(\"").and_then(|rest| rest.strip_suffix("\")"));
                prop_assert!(!leaks_more_than_the_prefix(value, &display), "display {:?}", display);
                prop_assert!(!leaks_more_than_the_prefix(value, inside.expect("wrapper")), "debug {:?}", debug);
            }

            #[test]
            fn token_is_exactly_one_url_path_segment(token in token()) {
                let value = token.as_str();
                let raw = format!("https://api.example/ext/product/{value}/api");
                let url = reqwest::Url::parse(&raw).expect("a token needs no escaping in a path");
                let segments: Vec<_> = url.path_segments().expect("https has a path").collect();
                prop_assert_eq!(segments, ["ext", "product", value, "api"]);
                prop_assert_eq!(url.as_str(), raw.as_str());

                let uri: http::Uri = raw.parse().expect("a token is a valid URI path segment");
                let segments: Vec<_> = uri.path().split('/').collect();
                prop_assert_eq!(segments, ["", "ext", "product", value, "api"]);
                prop_assert_eq!(uri.query(), None);
            }
        }
    }
}
