//! Every failure answer gives its typed error. Terminal answers (403, 404, 405, 422) are not
//! retried and end the token; retryable ones keep it for a later attempt.

mod common;

use std::time::Duration;

use common::{TestShop, quick_retries};
use http::StatusCode;
use tower_sovendus::{
    RetryPolicy, SovReqToken, SovendusClient, SovendusConfig, SovendusError,
    sandbox::{Fault, Sandbox},
};

const TOKEN: &str = "12345-test-123-12345";

async fn landed(shop: &TestShop) {
    shop.get(&format!("/landing?sovReqToken={TOKEN}")).await;
    assert_eq!(shop.pending_token().await, TOKEN);
}

/// A terminal answer is sent once, never retried, and ends the token: a second order sends
/// nothing.
async fn assert_terminal(shop: &TestShop, token: &str) {
    assert_eq!(shop.pending_token().await, "", "a terminal answer ends the token");
    assert_eq!(shop.order().await, "no_token");
    let calls = shop.sandbox.conversions();
    assert_eq!(calls.len(), 1, "never retried: {calls:?}");
    assert!(calls[0].path().ends_with(&format!("/{token}/api")), "{calls:?}");
}

#[tokio::test]
async fn wrong_api_key_is_403_and_terminal() {
    let sandbox = Sandbox::start().await.unwrap();
    let endpoint = sandbox.endpoint();
    let shop = TestShop::with(sandbox, |_| {
        SovendusConfig::builder(Sandbox::PRODUCT_ID, "a-wrong-api-key-0000")
            .endpoint(endpoint)
            .retry(quick_retries())
    })
    .await;
    landed(&shop).await;
    assert_eq!(shop.order().await, "invalid_api_key");
    assert_eq!(shop.sandbox.conversions()[0].status(), Some(StatusCode::FORBIDDEN));
    assert_terminal(&shop, TOKEN).await;
}

#[tokio::test]
async fn wrong_url_is_404_and_terminal() {
    let sandbox = Sandbox::start().await.unwrap();
    let endpoint = format!("{}/wrong-base", sandbox.endpoint());
    let shop = TestShop::with(sandbox, |config| config.endpoint(endpoint).retry(quick_retries())).await;
    landed(&shop).await;
    assert_eq!(shop.order().await, "wrong_url 404: Invalid API call.");
    assert_terminal(&shop, TOKEN).await;
}

#[tokio::test]
async fn method_not_allowed_is_405_and_terminal() {
    let shop = TestShop::with(Sandbox::start().await.unwrap(), |config| config.retry(quick_retries())).await;
    landed(&shop).await;
    shop.sandbox.fault_next(1, Fault::Status(StatusCode::METHOD_NOT_ALLOWED));
    assert_eq!(shop.order().await, "wrong_url 405: Invalid API call.");
    assert_terminal(&shop, TOKEN).await;
}

#[tokio::test]
async fn unknown_token_is_422_with_sovendus_message_and_terminal() {
    let sandbox = Sandbox::builder().known_tokens(["another-token"]).start().await.unwrap();
    let shop = TestShop::with(sandbox, |config| config.retry(quick_retries())).await;
    shop.get("/landing?sovReqToken=unknown-token").await;
    assert_eq!(shop.order().await, "invalid_product_or_token: Token not found.");
    assert_terminal(&shop, "unknown-token").await;
}

#[tokio::test]
async fn unknown_product_is_422_with_sovendus_message_and_terminal() {
    let sandbox = Sandbox::start().await.unwrap();
    // The shop knows a product the sandbox does not.
    let shop =
        TestShop::with(sandbox, |config| config.extra_product_id("retired-product").retry(quick_retries()))
            .await;
    shop.get(&format!("/landing?sovReqToken={TOKEN}&sovReqProductId=retired-product")).await;
    assert_eq!(shop.order().await, "invalid_product_or_token: External product id not found.");
    assert_terminal(&shop, TOKEN).await;
}

#[tokio::test]
async fn server_error_keeps_the_token_and_a_later_order_converts() {
    let shop =
        TestShop::with(Sandbox::start().await.unwrap(), |config| config.retry(RetryPolicy::never())).await;
    landed(&shop).await;
    shop.sandbox.fault_next(1, Fault::Status(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(shop.order().await, "unavailable 500");
    assert_eq!(shop.pending_token().await, TOKEN);

    assert_eq!(shop.order().await, "sent");
    assert_eq!(shop.sandbox.conversions().len(), 2);
    assert_eq!(shop.sandbox.accepted().len(), 1);
}

#[tokio::test]
async fn timeout_keeps_the_token() {
    let sandbox = Sandbox::start().await.unwrap();
    let shop = TestShop::with(sandbox, |config| {
        config.request_timeout(Duration::from_millis(200)).retry(RetryPolicy::never())
    })
    .await;
    landed(&shop).await;
    shop.sandbox.fault_next(1, Fault::Delay(Duration::from_secs(2)));
    assert_eq!(shop.order().await, "timeout");
    assert_eq!(shop.pending_token().await, TOKEN);
    assert_eq!(shop.order().await, "sent");
}

#[tokio::test]
async fn refused_connection_keeps_the_token() {
    let shop =
        TestShop::with(Sandbox::start().await.unwrap(), |config| config.retry(RetryPolicy::never())).await;
    landed(&shop).await;
    shop.sandbox.fault_next(1, Fault::Refuse);
    assert_eq!(shop.order().await, "connection");
    assert_eq!(shop.pending_token().await, TOKEN);
    assert_eq!(shop.order().await, "sent");
}

#[tokio::test]
async fn nothing_listening_is_a_connection_error() {
    let sandbox = Sandbox::start().await.unwrap();
    let endpoint = sandbox.endpoint();
    drop(sandbox);
    let config = Sandbox::start().await.unwrap().config().endpoint(endpoint).build().unwrap();
    let token: SovReqToken = TOKEN.parse().unwrap();
    let error = SovendusClient::new(&config).send(&token).await.unwrap_err();
    assert!(matches!(error, SovendusError::Connection(_)), "{error:?}");
    assert!(error.is_retryable());
    assert!(!error.to_string().contains(TOKEN), "no whole token in errors: {error}");
}

#[tokio::test]
async fn method_not_allowed_maps_to_wrong_url() {
    let sandbox = Sandbox::start().await.unwrap();
    let response = reqwest::Client::new()
        .get(format!("{}/ext/{}/{TOKEN}/api", sandbox.endpoint(), Sandbox::PRODUCT_ID))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let error = SovendusError::from_response(status, &body);
    assert!(matches!(error, SovendusError::WrongUrl { message, .. } if message == "Invalid API call."));
}
