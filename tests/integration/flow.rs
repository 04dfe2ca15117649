//! The whole landing → order flow, over loopback HTTP against the sandbox.

use crate::common;

use std::time::Duration;

use common::{SESSION_COOKIE, TestShop};
use tower_sovendus::{config::Attribution, sandbox::Sandbox};

const TOKEN: &str = "1095752fb409-457a-af14-17a09e6be522";

#[tokio::test]
async fn landing_then_order_sends_exactly_what_sovendus_expects() {
    let shop = TestShop::start().await;
    assert_eq!(shop.get(&format!("/landing?utm=x&sovReqToken={TOKEN}")).await, (200, "landing".into()));
    assert_eq!(shop.pending_token().await, TOKEN);
    assert!(shop.sandbox.conversions().is_empty(), "nothing is sent before the order");

    assert_eq!(shop.order().await, "sent");

    let calls = shop.sandbox.conversions();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.method(), "POST");
    assert_eq!(call.path(), format!("/ext/{}/{TOKEN}/api", Sandbox::PRODUCT_ID));
    assert_eq!(call.content_type(), Some("application/json"));
    assert_eq!(call.body(), format!(r#"{{"apiKey":"{}"}}"#, Sandbox::API_KEY).as_bytes());
    assert_eq!(call.status(), Some(http::StatusCode::OK));

    // Sent once: the token is gone, a second order sends nothing.
    assert_eq!(shop.pending_token().await, "");
    assert_eq!(shop.order().await, "already_converted");
    assert_eq!(shop.sandbox.conversions().len(), 1);
}

#[tokio::test]
async fn token_on_any_url_is_captured() {
    let shop = TestShop::start().await;
    assert_eq!(shop.get(&format!("/products/42?sovReqToken={TOKEN}&ref=mail")).await.0, 200);
    assert_eq!(shop.pending_token().await, TOKEN);
}

#[tokio::test]
async fn new_visitor_gets_a_session_at_once() {
    let shop = TestShop::start().await;
    assert_eq!(shop.session_id(), None);
    let response = shop.client.get(shop.url(&format!("/?sovReqToken={TOKEN}"))).send().await.unwrap();
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|value| value.to_str().ok().filter(|v| v.starts_with(SESSION_COOKIE)))
        .expect("the landing sets a session cookie")
        .to_owned();
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    // The session lives at least as long as the token (30 days), not just the browser session.
    let max_age: u64 = cookie
        .split("; ")
        .find_map(|part| part.strip_prefix("Max-Age="))
        .expect("the session cookie outlives the browser")
        .parse()
        .unwrap();
    assert!(max_age >= 30 * 24 * 60 * 60 - 5, "{cookie}");
    assert_eq!(shop.order().await, "sent");
}

#[tokio::test]
async fn landing_handler_already_sees_the_new_session_id() {
    let shop = TestShop::start().await;
    assert_eq!(shop.get("/session-id").await.1, "", "no token, no session");
    let (_, during) = shop.get(&format!("/session-id?sovReqToken={TOKEN}")).await;
    assert!(!during.is_empty(), "the layer saved the new session before the handler ran");
    assert_eq!(shop.session_id(), Some(during));
}

#[tokio::test]
async fn existing_session_keeps_its_cart_and_id() {
    let shop = TestShop::start().await;
    shop.get("/cart/add?item=shoe").await;
    let before = shop.session_id().expect("the cart made a session");

    shop.get(&format!("/landing?sovReqToken={TOKEN}")).await;

    assert_eq!(shop.session_id().as_deref(), Some(before.as_str()), "same session");
    assert_eq!(shop.get("/cart").await.1, "shoe");
    shop.get("/cart/add?item=sock").await;
    assert_eq!(shop.get("/cart").await.1, "shoe,sock");
    assert_eq!(shop.order().await, "sent");
}

#[tokio::test]
async fn login_cycling_the_session_id_keeps_the_token() {
    let shop = TestShop::start().await;
    shop.get(&format!("/landing?sovReqToken={TOKEN}")).await;
    let before = shop.session_id().unwrap();

    let response = shop.client.post(shop.url("/login")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_ne!(shop.session_id().unwrap(), before, "login cycled the ID");

    assert_eq!(shop.order().await, "sent");
    assert_eq!(shop.sandbox.accepted()[0].token(), Some(TOKEN));
}

#[tokio::test]
async fn token_expires_after_its_ttl() {
    let sandbox = Sandbox::start().await.unwrap();
    let shop = TestShop::with(sandbox, |config| config.token_ttl(Duration::from_millis(300))).await;
    shop.get(&format!("/landing?sovReqToken={TOKEN}")).await;
    assert_eq!(shop.pending_token().await, TOKEN);

    tokio::time::sleep(Duration::from_millis(700)).await;

    assert_eq!(shop.pending_token().await, "");
    assert_eq!(shop.order().await, "no_token");
    assert!(shop.sandbox.conversions().is_empty());
}

#[tokio::test]
async fn visitor_without_token_sends_nothing() {
    let shop = TestShop::start().await;
    shop.get("/").await;
    shop.get("/products/1?page=2&q=red%20shoes").await;
    shop.get("/cart/add?item=shoe").await;
    assert_eq!(shop.order().await, "no_token");
    assert_eq!(shop.order().await, "no_token");
    assert!(shop.sandbox.conversions().is_empty());
}

#[tokio::test]
async fn forged_session_cookie_does_not_receive_the_token() {
    let shop = TestShop::start().await;
    let forged = tower_sessions::session::Id::default().to_string();
    let url = shop.url(&format!("/landing?sovReqToken={TOKEN}"));
    let plain = reqwest::Client::new();
    let response =
        plain.get(url).header("cookie", format!("{SESSION_COOKIE}={forged}")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let issued = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| value.strip_prefix(&format!("{SESSION_COOKIE}=")))
        .and_then(|value| value.split(';').next())
        .expect("an unknown cookie gets a fresh session")
        .to_owned();
    assert_ne!(issued, forged);

    // The forged ID holds nothing.
    let order = |id: String| {
        let plain = plain.clone();
        let url = shop.url("/order");
        async move {
            plain
                .post(url)
                .header("cookie", format!("{SESSION_COOKIE}={id}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert_eq!(order(forged).await, "no_token");
    assert!(shop.sandbox.conversions().is_empty());
    // The session the server issued holds it.
    assert_eq!(order(issued).await, "sent");
}

#[tokio::test]
async fn last_click_wins_by_default() {
    let shop = TestShop::start().await;
    shop.get("/landing?sovReqToken=first-click-token").await;
    shop.get("/landing?sovReqToken=last-click-token").await;
    assert_eq!(shop.order().await, "sent");
    assert_eq!(shop.sandbox.accepted()[0].token(), Some("last-click-token"));
}

#[tokio::test]
async fn first_click_keeps_the_first_token() {
    let sandbox = Sandbox::start().await.unwrap();
    let shop = TestShop::with(sandbox, |config| config.attribution(Attribution::FirstClick)).await;
    shop.get("/landing?sovReqToken=first-click-token").await;
    shop.get("/landing?sovReqToken=last-click-token").await;
    assert_eq!(shop.order().await, "sent");
    let accepted = shop.sandbox.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].token(), Some("first-click-token"));
}

#[tokio::test]
async fn product_parameter_chooses_among_configured_products_only() {
    let sandbox = Sandbox::builder().product("product-b").start().await.unwrap();
    let shop = TestShop::with(sandbox, |config| config.extra_product_id("product-b")).await;

    shop.get("/landing?sovReqToken=token-b&sovReqProductId=product-b").await;
    assert_eq!(shop.order().await, "sent");

    shop.get("/landing?sovReqToken=token-evil&sovReqProductId=..%2Fadmin").await;
    assert_eq!(shop.order().await, "sent");
    shop.get("/landing?sovReqToken=token-unknown&sovReqProductId=product-z").await;
    assert_eq!(shop.order().await, "sent");

    let paths: Vec<String> = shop.sandbox.accepted().iter().map(|c| c.path().to_owned()).collect();
    assert_eq!(
        paths,
        [
            "/ext/product-b/token-b/api".to_owned(),
            format!("/ext/{}/token-evil/api", Sandbox::PRODUCT_ID),
            format!("/ext/{}/token-unknown/api", Sandbox::PRODUCT_ID),
        ]
    );
}

#[tokio::test]
async fn renamed_token_parameter() {
    let sandbox = Sandbox::start().await.unwrap();
    let shop = TestShop::with(sandbox, |config| config.token_parameter("partnerToken")).await;
    shop.get(&format!("/landing?sovReqToken={TOKEN}")).await;
    assert_eq!(shop.pending_token().await, "", "the default name is not watched any more");
    shop.get(&format!("/landing?partnerToken={TOKEN}")).await;
    assert_eq!(shop.order().await, "sent");
}

#[tokio::test]
async fn capture_filter_requires_consent() {
    let sandbox = Sandbox::start().await.unwrap();
    let shop = TestShop::with(sandbox, |config| {
        config.capture_if(|request| {
            request.headers.get_all("cookie").iter().any(|value| {
                value.to_str().is_ok_and(|cookies| cookies.split("; ").any(|cookie| cookie == "consent=yes"))
            })
        })
    })
    .await;

    assert_eq!(shop.get(&format!("/landing?sovReqToken={TOKEN}")).await.0, 200);
    assert_eq!(shop.order().await, "no_token");

    shop.jar.add_cookie_str("consent=yes", &shop.url("/"));
    shop.get(&format!("/landing?sovReqToken={TOKEN}")).await;
    assert_eq!(shop.order().await, "sent");
    assert_eq!(shop.sandbox.conversions().len(), 1);
}

#[tokio::test]
async fn session_expiry_extension_can_be_turned_off() {
    let sandbox = Sandbox::start().await.unwrap();
    let shop = TestShop::with(sandbox, |config| config.extend_session_expiry(false)).await;
    let response = shop.client.get(shop.url(&format!("/?sovReqToken={TOKEN}"))).send().await.unwrap();
    let cookie = response.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(!cookie.contains("Max-Age"), "the shop's own (browser-session) expiry is kept: {cookie}");
    assert_eq!(shop.order().await, "sent");
}
