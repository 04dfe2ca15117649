//! `query::find` and `query::may_contain` on arbitrary input.
//!
//! Input: the first byte picks the parameter name: `n % 65 == 0` means `sovReqToken`, else the
//! next `n % 65` bytes are the name, each byte outside the URL-unreserved alphabet mapped into
//! it (the config accepts only such names). The rest, read as UTF-8 (lossily), is the query;
//! it is checked as is and, when it holds the markers of `expand`, with the name spliced in.
//!
//! Checked: no panic; the answer agrees with `form_urlencoded`; the pre-check never says no
//! when `find` finds the parameter; a found value either fails `SovReqToken::new` or becomes a
//! token equal to it, made of unreserved characters only.
#![no_main]

use libfuzzer_sys::fuzz_target;
// The same oracle as the proptest properties.
#[path = "../../src/query/oracle.rs"]
mod oracle;
use oracle::oracle;
use tower_sovendus::{
    SovReqToken,
    __fuzz::{Param, find, may_contain},
};

const UNRESERVED: &[u8; 66] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let length = usize::from(first % 65).min(rest.len());
    let (name_bytes, query) = rest.split_at(length);
    let name = if length == 0 {
        "sovReqToken".to_owned()
    } else {
        name_bytes.iter().map(|&byte| char::from(to_unreserved(byte))).collect()
    };
    let query = String::from_utf8_lossy(query);
    check(&query, &name);
    if query.contains(['\u{1}', '\u{2}']) {
        check(&expand(&query, &name), &name);
    }
});

/// Replaces `\u{1}` with the name, and `\u{2}` plus the next character with the name with some
/// bytes percent-encoded: byte `i` when bit `i % 7` of that character is set, in lower-case hex
/// when bit 7 is. Random mutation rarely spells `%XX` for the right byte on its own.
fn expand(query: &str, name: &str) -> String {
    let mut out = String::with_capacity(query.len() + name.len());
    let mut chars = query.chars();
    while let Some(c) = chars.next() {
        match c {
            '\u{1}' => out.push_str(name),
            '\u{2}' => {
                let mask = chars.next().map_or(u32::MAX, u32::from);
                for (i, byte) in name.bytes().enumerate() {
                    match (mask >> (i % 7) & 1 == 1, mask & 0x80 != 0) {
                        (false, _) => out.push(char::from(byte)),
                        (true, false) => out.push_str(&format!("%{byte:02X}")),
                        (true, true) => out.push_str(&format!("%{byte:02x}")),
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Keeps an unreserved byte, maps any other onto the alphabet.
fn to_unreserved(byte: u8) -> u8 {
    if UNRESERVED.contains(&byte) { byte } else { UNRESERVED[usize::from(byte) % UNRESERVED.len()] }
}

fn check(query: &str, name: &str) {
    let found = find(query, name);
    assert_eq!(found, oracle(query, name), "find disagrees with form_urlencoded on {query:?} for {name:?}");
    if found != Param::Absent {
        assert!(may_contain(Some(query), name), "pre-check misses {name:?} in {query:?}");
    }
    if let Param::Once(value) = &found
        && let Ok(token) = SovReqToken::new(value.as_ref())
    {
        assert_eq!(token.as_str(), value.as_ref());
        assert!((1..=SovReqToken::MAX_LEN).contains(&value.len()));
        assert!(value.bytes().all(|byte| UNRESERVED.contains(&byte)), "token {value:?} not unreserved");
        assert!(value.bytes().any(|byte| byte != b'.'), "token {value:?} only dots");
    }
}
