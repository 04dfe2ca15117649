//! Hostile `sovReqToken` values: none may reach an outgoing request, and every page answers.

use crate::common;

use common::TestShop;

/// Raw query strings, as an attacker would type them into a link.
const HOSTILE: &[(&str, &str)] = &[
    ("empty", "sovReqToken="),
    ("no value", "sovReqToken"),
    ("overlong", "OVERLONG"),
    ("slash", "sovReqToken=abc/def"),
    ("encoded slash", "sovReqToken=abc%2Fdef"),
    ("lower-case encoded slash", "sovReqToken=abc%2fdef"),
    ("dot dot", "sovReqToken=.."),
    ("single dot", "sovReqToken=."),
    ("encoded dot dot", "sovReqToken=%2e%2e"),
    ("encoded dot dot slash", "sovReqToken=%2e%2e%2Fadmin"),
    ("double-encoded slash", "sovReqToken=abc%252Fdef"),
    ("backslash", "sovReqToken=abc%5Cdef"),
    ("unicode", "sovReqToken=t%C3%B6ken"),
    ("unicode lookalike", "sovReqToken=abc%E2%80%8Bdef"),
    ("NUL", "sovReqToken=abc%00def"),
    ("newline", "sovReqToken=abc%0D%0AX-Injected:%201"),
    ("tab", "sovReqToken=abc%09def"),
    ("question mark", "sovReqToken=abc%3Fx=1"),
    ("hash", "sovReqToken=abc%23frag"),
    ("space as plus", "sovReqToken=abc+def"),
    ("encoded space", "sovReqToken=abc%20def"),
    ("at sign", "sovReqToken=user%40evil.example"),
    ("colon", "sovReqToken=http:evil"),
    ("ampersand inside", "sovReqToken=abc%26apiKey=x"),
    ("invalid UTF-8", "sovReqToken=%FF%FE"),
    ("broken percent", "sovReqToken=abc%2"),
    ("repeated, same value", "sovReqToken=abc&sovReqToken=abc"),
    ("repeated, different values", "sovReqToken=abc&sovReqToken=def"),
    ("repeated, one encoded name", "sovReqToken=abc&sov%52eqToken=def"),
    ("html", "sovReqToken=%3Cscript%3Ealert(1)%3C/script%3E"),
];

#[tokio::test]
async fn hostile_tokens_never_reach_sovendus() {
    assert!(HOSTILE.len() >= 20);
    let overlong = format!("sovReqToken={}", "a".repeat(257));
    for (name, query) in HOSTILE {
        let query = if *query == "OVERLONG" { overlong.as_str() } else { query };
        // A fresh visitor per case, so one case cannot mask another.
        let shop = TestShop::start().await;
        let (status, body) = shop.get(&format!("/landing?{query}")).await;
        assert_eq!((status, body.as_str()), (200, "landing"), "{name}: the page still answers");
        assert_eq!(shop.pending_token().await, "", "{name}: nothing was stored");
        assert_eq!(shop.order().await, "no_token", "{name}");
        assert!(shop.sandbox.conversions().is_empty(), "{name}: nothing was sent");
    }
}

#[tokio::test]
async fn hostile_token_does_not_replace_a_good_one() {
    let shop = TestShop::start().await;
    shop.get("/landing?sovReqToken=good-token-123").await;
    shop.get("/landing?sovReqToken=..%2F..%2Fadmin").await;
    shop.get("/landing?sovReqToken=a&sovReqToken=b").await;
    assert_eq!(shop.order().await, "sent");
    let calls = shop.sandbox.conversions();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].token(), Some("good-token-123"));
}

#[tokio::test]
async fn longest_valid_token_and_encoded_name_are_accepted() {
    let shop = TestShop::start().await;
    let longest = "a".repeat(256);
    shop.get(&format!("/landing?sov%52eqToken={longest}")).await;
    assert_eq!(shop.order().await, "sent");
    assert_eq!(shop.sandbox.accepted()[0].token(), Some(longest.as_str()));
}
