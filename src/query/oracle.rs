//! The test oracle for [`find`](super::find): what `application/x-www-form-urlencoded` parsing
//! (the `form_urlencoded` crate) says a query holds. Shared by the proptest properties in
//! `query.rs` and the fuzz target `fuzz/fuzz_targets/query.rs`, which includes this file; so it
//! names only `super::Param`.

use super::Param;

/// Decodes `+` and `%XX` to raw bytes, written independently of `find` and of
/// `form_urlencoded` (checked against the latter in the oracle).
pub fn raw_form_bytes(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |index: usize| bytes.get(index).and_then(|&b| char::from(b).to_digit(16));
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(high), Some(low)) => {
                    out.push(u8::try_from(high * 16 + low).expect("two hex digits"));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    out
}

/// What `find` must answer, from `form_urlencoded`.
///
/// Conventions encoded here: `form_urlencoded` skips empty segments (`&&`) while `find`
/// reads them as the key `""`; no parameter name is empty, so both ignore them. Keys are
/// decoded lossily by `form_urlencoded`, but names are ASCII, so a key that is not UTF-8
/// once decoded can match neither way. Values are decoded lossily too, so the exact
/// bytes come from `raw_form_bytes`, itself checked against `form_urlencoded`.
pub fn oracle<'q>(query: &'q str, name: &str) -> Param<'q> {
    let matches: Vec<_> = form_urlencoded::parse(query.as_bytes()).filter(|(key, _)| key == name).collect();
    match matches.as_slice() {
        [] => Param::Absent,
        [(_, lossy)] => {
            let pair = query
                .split('&')
                .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
                .find(|(key, _)| String::from_utf8_lossy(&raw_form_bytes(key)) == name)
                .expect("form_urlencoded found the name, so a segment has it");
            let bytes = raw_form_bytes(pair.1);
            assert_eq!(String::from_utf8_lossy(&bytes), *lossy, "oracle's own decoder disagrees");
            match String::from_utf8(bytes) {
                Ok(value) => Param::Once(value.into()),
                Err(_) => Param::NotUtf8,
            }
        }
        _ => Param::Repeated,
    }
}
