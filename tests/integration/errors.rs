//! Every failure answer gives its typed error, and leaves the conversion in the state it calls
//! for: a wrong configuration (403, 404, 405, an unknown product) parks it, an unknown token
//! (422) kills it, a failing or silent API leaves it owed. None gives the token back to the
//! visitor: their next order sends nothing more.

use crate::common;

use std::time::Duration;

use common::{TestShop, quick_retries};
use http::StatusCode;
use tower_sovendus::{
    RetryPolicy, SovReqToken, SovendusClient, SovendusConfig, SovendusError,
    sandbox::{Fault, Sandbox},
    store::ConversionState,
};

const TOKEN: &str = "12345-test-123-12345";

async fn landed(shop: &TestShop) {
    shop.get(&format!("/landing?sovReqToken={TOKEN}")).await;
    assert_eq!(shop.pending_token().await, TOKEN);
}

/// After an answer no quick retry repeats: sent once, the conversion is in `state`, and the
/// visitor's second order sends nothing more.
async fn assert_left_in(shop: &TestShop, token: &str, state: ConversionState) {
    assert_eq!(shop.pending_token().await, "", "the order took the token");
    assert_eq!(shop.order().await, "already_converted");
    let calls = shop.sandbox.conversions();
    assert_eq!(calls.len(), 1, "no quick retry: {calls:?}");
    assert!(calls[0].path().ends_with(&format!("/{token}/api")), "{calls:?}");
    let listed = shop.delivery.list(&tower_sovendus::store::ListQuery::new(state).limit(10)).await.unwrap();
    assert_eq!(listed.len(), 1, "{state}: {:?}", shop.delivery.counts().await);
    assert_eq!(listed[0].token.as_str(), token);
}

#[tokio::test]
async fn wrong_api_key_is_403_and_parks_it() {
    let sandbox = Sandbox::start().await.unwrap();
    let endpoint = sandbox.endpoint();
    let shop = TestShop::with(sandbox, |_| {
        SovendusConfig::builder(Sandbox::PRODUCT_ID, "a-wrong-api-key-0000")
            .endpoint(endpoint)
            .retry(quick_retries())
    })
    .await;
    landed(&shop).await;
    assert_eq!(shop.order().await, "parked: invalid_api_key");
    assert_eq!(shop.sandbox.conversions()[0].status(), Some(StatusCode::FORBIDDEN));
    assert_left_in(&shop, TOKEN, ConversionState::Parked).await;
}

#[tokio::test]
async fn wrong_url_is_404_and_parks_it() {
    let sandbox = Sandbox::start().await.unwrap();
    let endpoint = format!("{}/wrong-base", sandbox.endpoint());
    let shop = TestShop::with(sandbox, |config| config.endpoint(endpoint).retry(quick_retries())).await;
    landed(&shop).await;
    assert_eq!(shop.order().await, "parked: wrong_url 404: Invalid API call.");
    assert_left_in(&shop, TOKEN, ConversionState::Parked).await;
}

#[tokio::test]
async fn method_not_allowed_is_405_and_parks_it() {
    let shop = TestShop::with(Sandbox::start().await.unwrap(), |config| config.retry(quick_retries())).await;
    landed(&shop).await;
    shop.sandbox.fault_next(1, Fault::Status(StatusCode::METHOD_NOT_ALLOWED));
    assert_eq!(shop.order().await, "parked: wrong_url 405: Invalid API call.");
    assert_left_in(&shop, TOKEN, ConversionState::Parked).await;
}

#[tokio::test]
async fn unknown_token_is_422_with_sovendus_message_and_dead() {
    let sandbox = Sandbox::builder().known_tokens(["another-token"]).start().await.unwrap();
    let shop = TestShop::with(sandbox, |config| config.retry(quick_retries())).await;
    shop.get("/landing?sovReqToken=unknown-token").await;
    assert_eq!(shop.order().await, "dead: invalid_product_or_token: Token not found.");
    assert_left_in(&shop, "unknown-token", ConversionState::Dead).await;
}

#[tokio::test]
async fn unknown_product_is_422_with_sovendus_message_and_parks_it() {
    let sandbox = Sandbox::start().await.unwrap();
    // The shop knows a product the sandbox does not.
    let shop =
        TestShop::with(sandbox, |config| config.extra_product_id("retired-product").retry(quick_retries()))
            .await;
    shop.get(&format!("/landing?sovReqToken={TOKEN}&sovReqProductId=retired-product")).await;
    assert_eq!(shop.order().await, "parked: invalid_product_or_token: External product id not found.");
    assert_left_in(&shop, TOKEN, ConversionState::Parked).await;
}

#[tokio::test]
async fn server_error_leaves_it_owed() {
    let shop =
        TestShop::with(Sandbox::start().await.unwrap(), |config| config.retry(RetryPolicy::never())).await;
    landed(&shop).await;
    shop.sandbox.fault_next(1, Fault::Status(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(shop.order().await, "owed: unavailable 500");
    assert_left_in(&shop, TOKEN, ConversionState::Owed).await;
}

#[tokio::test]
async fn timeout_leaves_it_owed() {
    let sandbox = Sandbox::start().await.unwrap();
    let shop = TestShop::with(sandbox, |config| {
        config.request_timeout(Duration::from_millis(200)).retry(RetryPolicy::never())
    })
    .await;
    landed(&shop).await;
    shop.sandbox.fault_next(1, Fault::Delay(Duration::from_secs(2)));
    assert_eq!(shop.order().await, "owed: timeout");
    assert_left_in(&shop, TOKEN, ConversionState::Owed).await;
}

#[tokio::test]
async fn refused_connection_leaves_it_owed() {
    let shop =
        TestShop::with(Sandbox::start().await.unwrap(), |config| config.retry(RetryPolicy::never())).await;
    landed(&shop).await;
    shop.sandbox.fault_next(1, Fault::Refuse);
    assert_eq!(shop.order().await, "owed: connection");
    assert_left_in(&shop, TOKEN, ConversionState::Owed).await;
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
