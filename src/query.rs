//! Finding the token parameter in a query string, without allocating when it is absent.

use std::borrow::Cow;

use memchr::{memchr, memchr2};
use percent_encoding::percent_decode;

// `Param`, `may_contain` and `find` are `pub` in this private module, so still crate-only, because
// `pub(crate)` items cannot be re-exported by `lib.rs`'s `__fuzz` module (built under `--cfg
// fuzzing` for `fuzz/`).

/// What a query string says about one parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param<'q> {
    /// The parameter does not appear.
    Absent,
    /// The parameter appears once, with this (decoded) value.
    Once(Cow<'q, str>),
    /// The parameter appears once, but its value is not UTF-8 once decoded.
    NotUtf8,
    /// The parameter appears more than once: ambiguous, so refused.
    Repeated,
}

/// Whether `query` may hold `name` at all: a key starts with it, or a `%` may encode it. This
/// is the whole cost for a request without a token.
pub fn may_contain(query: Option<&str>, name: &str) -> bool {
    let Some(query) = query else { return false };
    memchr(b'%', query.as_bytes()).is_some() || starts_a_key(query.as_bytes(), name.as_bytes())
}

/// Whether a key of `query` (the text after the start or a `&`) starts with `name`.
fn starts_a_key(query: &[u8], name: &[u8]) -> bool {
    query.split(|&byte| byte == b'&').any(|key| key.starts_with(name))
}

/// Finds `name` in `query` with `application/x-www-form-urlencoded` rules: keys are compared
/// decoded, and only the matching value is decoded.
///
/// It runs on every request with a token, so it finds separators with `memchr`: `str::split`
/// and `str::contains` with a `char` pattern cost a landing about 1,000 instructions more.
pub fn find<'q>(query: &'q str, name: &str) -> Param<'q> {
    let bytes = query.as_bytes();
    let mut found = None;
    let mut start = 0;
    // Like `query.split('&')`: the empty query is one empty pair, and so is a trailing `&`.
    while start <= bytes.len() {
        let end = memchr(b'&', &bytes[start..]).map_or(bytes.len(), |at| start + at);
        // Splitting at ASCII bytes keeps both sides valid UTF-8.
        let pair = &query[start..end];
        let (key, value) = match memchr(b'=', pair.as_bytes()) {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, ""),
        };
        if key_matches(key, name) {
            if found.is_some() {
                return Param::Repeated;
            }
            found = Some(value);
        }
        start = end + 1;
    }
    match found {
        None => Param::Absent,
        Some(value) => match decode(value) {
            Some(value) => Param::Once(value),
            None => Param::NotUtf8,
        },
    }
}

/// Compares a raw key with `name`, decoding `%XX` on the fly. A `+` decodes to a space, which
/// no valid parameter name contains, so it never matches.
fn key_matches(raw: &str, name: &str) -> bool {
    if raw == name {
        return true;
    }
    // Decoding only shortens a key: a shorter one, or one without a `%`, cannot match.
    if raw.len() < name.len() || memchr(b'%', raw.as_bytes()).is_none() {
        return false;
    }
    percent_decode(raw.as_bytes()).eq(name.bytes())
}

/// Decodes a form value: `+` is a space, `%XX` a byte. Borrows when nothing is encoded.
fn decode(raw: &str) -> Option<Cow<'_, str>> {
    if memchr2(b'%', b'+', raw.as_bytes()).is_none() {
        return Some(Cow::Borrowed(raw));
    }
    let spaced = raw.replace('+', " ");
    let decoded = percent_decode(spaced.as_bytes()).collect::<Vec<u8>>();
    String::from_utf8(decoded).ok().map(Cow::Owned)
}

#[cfg(test)]
mod oracle;

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "sovReqToken";

    #[test]
    fn finds_plain_and_encoded_names() {
        assert_eq!(find("sovReqToken=abc", NAME), Param::Once("abc".into()));
        assert_eq!(find("a=1&sovReqToken=abc&b=2", NAME), Param::Once("abc".into()));
        assert_eq!(find("sov%52eqToken=abc", NAME), Param::Once("abc".into()));
        assert_eq!(find("sovReqToken", NAME), Param::Once("".into()));
        assert_eq!(find("sovReqTokenX=abc&xsovReqToken=1", NAME), Param::Absent);
        assert_eq!(find("sovReqToken+=abc", NAME), Param::Absent);
    }

    #[test]
    fn decodes_the_value() {
        assert_eq!(find("sovReqToken=a%2Fb", NAME), Param::Once("a/b".into()));
        assert_eq!(find("sovReqToken=a+b", NAME), Param::Once("a b".into()));
        assert_eq!(find("sovReqToken=%2e%2e", NAME), Param::Once("..".into()));
        assert_eq!(find("sovReqToken=%FF", NAME), Param::NotUtf8);
    }

    #[test]
    fn refuses_repeats() {
        assert_eq!(find("sovReqToken=a&sovReqToken=a", NAME), Param::Repeated);
        assert_eq!(find("sovReqToken=a&sov%52eqToken=b", NAME), Param::Repeated);
    }

    #[test]
    fn precheck_never_misses() {
        assert!(!may_contain(None, NAME));
        assert!(!may_contain(Some("page=2&q=shoes"), NAME));
        assert!(may_contain(Some("sovReqToken=a"), NAME));
        assert!(may_contain(Some("sov%52eqToken=a"), NAME));
        assert!(may_contain(Some("a=1&sovReqToken=a"), NAME));
        assert!(may_contain(Some("a=1&&sovReqToken"), NAME));
        assert!(!may_contain(Some("q=sovReqToken&xsovReqToken=1&sovReq"), NAME));
        assert!(!may_contain(Some(""), NAME));
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;
        use crate::query::oracle::oracle;

        /// Parameter names as the config accepts them: 1 to 64 URL-unreserved bytes.
        fn parameter_name() -> impl Strategy<Value = String> {
            prop_oneof![Just("sovReqToken".to_owned()), "[A-Za-z0-9._~-]{1,64}"]
        }

        /// `name` with any subset of its bytes percent-encoded, in upper or lower case hex.
        fn encoded(name: &str) -> impl Strategy<Value = String> + use<> {
            let bytes = name.as_bytes().to_vec();
            proptest::collection::vec((any::<bool>(), any::<bool>()), bytes.len()).prop_map(move |choices| {
                let mut key = String::new();
                for (byte, (encode, lower)) in bytes.iter().zip(choices) {
                    match (encode, lower) {
                        (false, _) => key.push(char::from(*byte)),
                        (true, false) => key.push_str(&format!("%{byte:02X}")),
                        (true, true) => key.push_str(&format!("%{byte:02x}")),
                    }
                }
                key
            })
        }

        /// Text rich in what a form parser trips on: separators, `+`, `%` followed by hex or
        /// junk, non-ASCII, and raw bytes encoded as `%XX` (not always UTF-8).
        fn tricky_text() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                "[a-zA-Z0-9._~-]{0,6}",
                Just("+".to_owned()),
                Just("%".to_owned()),
                "%[0-9a-fA-F]{0,2}",
                "%[g-zG-Z%&=+]{0,2}",
                any::<u8>().prop_map(|byte| format!("%{byte:02X}")),
                Just("%EF%BF%BD".to_owned()),
                Just("\u{FFFD}".to_owned()),
                "[éß€😀 #?/]",
                any::<char>().prop_map(String::from),
            ];
            proptest::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
        }

        /// One `&`-separated segment: the name (plain, encoded, or almost) with or without a
        /// value, or noise.
        fn segment(name: String) -> impl Strategy<Value = String> {
            let key = prop_oneof![
                3 => Just(name.clone()),
                3 => encoded(&name),
                1 => Just(format!("{name}+")),
                1 => Just(format!("x{name}")),
                1 => Just(format!("{name}%")),
                3 => tricky_text(),
            ];
            let value = prop_oneof![Just(None), tricky_text().prop_map(Some)];
            (key, value).prop_map(|(key, value)| match value {
                Some(value) => format!("{key}={value}"),
                None => key,
            })
        }

        /// A name and a query of segments built from it, joined by `&` (sometimes `&&`).
        fn named_query() -> impl Strategy<Value = (String, String)> {
            parameter_name().prop_flat_map(|name| {
                let segments = proptest::collection::vec(segment(name.clone()), 0..6);
                let separator = prop_oneof![4 => Just("&"), 1 => Just("&&")];
                (Just(name), segments, separator)
                    .prop_map(|(name, segments, separator)| (name, segments.join(separator)))
            })
        }

        proptest! {
            #[test]
            fn find_never_panics_on_any_string(query in any::<String>(), name in parameter_name()) {
                let _ = find(&query, &name);
            }

            #[test]
            fn find_never_panics_on_form_like_text(query in tricky_text(), name in parameter_name()) {
                let _ = find(&query, &name);
            }

            #[test]
            fn find_agrees_with_form_urlencoded((name, query) in named_query()) {
                prop_assert_eq!(find(&query, &name), oracle(&query, &name), "query {:?}", query);
            }

            #[test]
            fn find_agrees_with_form_urlencoded_on_any_string(query in any::<String>(), name in parameter_name()) {
                prop_assert_eq!(find(&query, &name), oracle(&query, &name), "query {:?}", query);
            }

            #[test]
            fn precheck_has_no_false_negatives((name, query) in named_query()) {
                if find(&query, &name) != Param::Absent {
                    prop_assert!(may_contain(Some(&query), &name), "query {:?}", query);
                }
            }

            #[test]
            fn precheck_has_no_false_negatives_on_any_string(query in any::<String>(), name in parameter_name()) {
                if find(&query, &name) != Param::Absent {
                    prop_assert!(may_contain(Some(&query), &name), "query {:?}", query);
                }
            }

            /// The block scan is exact: a `%` anywhere, or a key starting with the name.
            #[test]
            fn precheck_is_exactly_its_definition((name, query) in named_query(), noise in tricky_text()) {
                for query in [query.clone(), format!("{noise}{query}"), format!("{query}&{noise}")] {
                    let expected = query.contains('%') || query.split('&').any(|key| key.starts_with(name.as_str()));
                    prop_assert_eq!(may_contain(Some(&query), &name), expected, "query {:?}", query);
                }
            }

            /// Every position of a block counts, however the query falls into blocks.
            #[test]
            fn precheck_sees_the_name_or_a_percent_at_any_position(
                name in parameter_name(),
                filler in 0..80usize,
                percent in any::<bool>(),
            ) {
                let found = if percent { "%20".to_owned() } else { format!("&{name}=v") };
                let query = format!("{}{found}", "-".repeat(filler));
                prop_assert!(may_contain(Some(&query), &name), "query {:?}", query);
                prop_assert!(!may_contain(Some(&"-".repeat(filler)), &name) || name.starts_with('-'));
            }

            #[test]
            fn precheck_sees_every_encoding_of_the_name(
                (name, key) in parameter_name().prop_flat_map(|name| (Just(name.clone()), encoded(&name))),
                before in tricky_text(),
                after in tricky_text(),
            ) {
                let query = format!("{before}&{key}=v&{after}");
                prop_assert_ne!(find(&query, &name), Param::Absent, "query {:?}", query);
                prop_assert!(may_contain(Some(&query), &name), "query {:?}", query);
            }
        }
    }
}
