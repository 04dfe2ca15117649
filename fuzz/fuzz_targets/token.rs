//! `SovReqToken::new` on arbitrary input (read as UTF-8, lossily).
//!
//! Checked: no panic; accepted exactly when the value is 1 to 256 unreserved bytes, not only
//! dots; `as_str` gives the value back; `Display`/`Debug` show at most its first 8 characters;
//! in a URL it is exactly one path segment, unescaped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_sovendus::{SovReqToken, __fuzz::Masked};

fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data);
    let value = value.as_ref();
    let follows_rules = (1..=SovReqToken::MAX_LEN).contains(&value.len())
        && value.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
        && value.bytes().any(|byte| byte != b'.');
    // Masked takes any string, valid or not: it must not panic.
    let _ = Masked(value).to_string();
    let token = match SovReqToken::new(value) {
        Ok(token) => token,
        Err(error) => {
            assert!(!follows_rules, "refused {value:?}: {error}");
            return;
        }
    };
    assert!(follows_rules, "accepted {value:?}");
    assert_eq!(token.as_str(), value);

    let shown = &value[..value.len().min(8)];
    let ellipsis = if value.len() > 8 { "…" } else { "" };
    assert_eq!(token.to_string(), format!("{shown}{ellipsis}"));
    assert_eq!(format!("{token:?}"), format!("SovReqToken(\"{shown}{ellipsis}\")"));

    let raw = format!("https://api.example/ext/product/{value}/api");
    let uri: http::Uri = raw.parse().expect("a token is a valid path segment");
    assert_eq!(uri.path().split('/').collect::<Vec<_>>(), ["", "ext", "product", value, "api"]);
    assert_eq!(uri.query(), None);
});
