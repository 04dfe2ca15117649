//! Finding the token parameter in a query string, without allocating when it is absent.

use std::borrow::Cow;

use percent_encoding::percent_decode;

/// What a query string says about one parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param<'q> {
    /// The parameter does not appear.
    Absent,
    /// The parameter appears once, with this (decoded) value.
    Once(Cow<'q, str>),
    /// The parameter appears once, but its value is not UTF-8 once decoded.
    NotUtf8,
    /// The parameter appears more than once: ambiguous, so refused.
    Repeated,
}

/// Whether `query` may hold `name` at all. This is the whole cost for a request without a
/// token: a substring search, plus a second one when the query percent-encodes something (a
/// parameter name could be encoded).
pub(crate) fn may_contain(query: Option<&str>, name: &str) -> bool {
    query.is_some_and(|query| query.contains(name) || query.contains('%'))
}

/// Finds `name` in `query` with `application/x-www-form-urlencoded` rules: keys are compared
/// decoded, and only the matching value is decoded.
pub(crate) fn find<'q>(query: &'q str, name: &str) -> Param<'q> {
    let mut found = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !key_matches(key, name) {
            continue;
        }
        if found.is_some() {
            return Param::Repeated;
        }
        found = Some(value);
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
    if !raw.contains('%') {
        return raw == name;
    }
    percent_decode(raw.as_bytes()).eq(name.bytes())
}

/// Decodes a form value: `+` is a space, `%XX` a byte. Borrows when nothing is encoded.
fn decode(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains(['%', '+']) {
        return Some(Cow::Borrowed(raw));
    }
    let spaced = raw.replace('+', " ");
    let decoded = percent_decode(spaced.as_bytes()).collect::<Vec<u8>>();
    String::from_utf8(decoded).ok().map(Cow::Owned)
}

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
    }
}
