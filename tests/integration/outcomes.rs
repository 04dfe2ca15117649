//! What an order handler learns, through the extractor: `token()` agrees with what sending
//! books, a token converted by another order is `AlreadyConverted`, and `recorded()` answers
//! for each outcome.

use crate::common;

use axum::{Router, routing::post};
use common::{TestShop, Visitor};
use http::StatusCode;
use tower_sessions::MemoryStore;
use tower_sovendus::{
    SovendusConversion, SovendusLayer,
    sandbox::{Fault, Sandbox},
};

/// Sends, and answers what `recorded()` says of the outcome, or `nothing` for an error.
async fn recorded(conversion: SovendusConversion) -> String {
    match conversion.send().await {
        Ok(outcome) => format!("{:?}", outcome.recorded()),
        Err(_) => "nothing".to_owned(),
    }
}

async fn shop() -> TestShop {
    let sandbox = Sandbox::start().await.unwrap();
    let layer = SovendusLayer::new(sandbox.config().build().unwrap());
    let delivery = layer.delivery();
    let app = common::shop_routes()
        .merge(Router::new().route("/order-recorded", post(recorded)))
        .layer(layer)
        .layer(common::session_layer(MemoryStore::default()));
    TestShop { sandbox, delivery, visitor: Visitor::new(common::serve(app).await) }
}

impl Visitor {
    async fn order_recorded(&self) -> String {
        self.client.post(self.url("/order-recorded")).send().await.unwrap().text().await.unwrap()
    }
}

#[tokio::test]
async fn a_token_another_order_converted_is_already_converted_and_no_longer_shown() {
    let shop = shop().await;
    let (first, second) = (shop.new_visitor(), shop.new_visitor());
    // One link, opened in two browsers.
    for visitor in [&first, &second] {
        visitor.get("/landing?sovReqToken=shared-link-1").await;
        assert_eq!(visitor.pending_token().await, "shared-link-1");
    }
    assert_eq!(first.order().await, "sent");
    assert_eq!(second.pending_token().await, "", "token() shows what an order would book: nothing");
    assert_eq!(second.order().await, "already_converted");
    assert_eq!(shop.sandbox.accepted().len(), 1);
}

#[tokio::test]
async fn a_landing_again_with_a_converted_token_shows_and_books_nothing() {
    let shop = shop().await;
    shop.get("/landing?sovReqToken=converted-1").await;
    assert_eq!(shop.order().await, "sent");
    // The same link again, from the browser's history.
    shop.get("/landing?sovReqToken=converted-1").await;
    assert_eq!(shop.pending_token().await, "", "not captured again");
    assert_eq!(shop.order().await, "already_converted");
    // Nor does it push out a fresh token under last click (the default).
    shop.get("/landing?sovReqToken=fresh-1").await;
    shop.get("/landing?sovReqToken=converted-1").await;
    assert_eq!(shop.pending_token().await, "fresh-1");
    assert_eq!(shop.order().await, "sent");
    assert_eq!(shop.sandbox.accepted().len(), 2);
}

#[tokio::test]
async fn recorded_answers_for_every_outcome() {
    let shop = shop().await;
    let order = async |token: Option<&str>| {
        let visitor = shop.new_visitor();
        if let Some(token) = token {
            visitor.get(&format!("/landing?sovReqToken={token}")).await;
        }
        visitor.order_recorded().await
    };
    assert_eq!(order(Some("recorded-sent")).await, "Yes", "sent");
    shop.sandbox.fault_next(5, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(order(Some("recorded-owed")).await, "Yes", "owed");
    shop.sandbox.fault_next(1, Fault::Status(StatusCode::FORBIDDEN));
    assert_eq!(order(Some("recorded-parked")).await, "Yes", "parked");
    shop.sandbox.fault_next(1, Fault::Status(StatusCode::UNPROCESSABLE_ENTITY));
    assert_eq!(order(Some("recorded-dead")).await, "Yes", "dead");
    assert_eq!(order(None).await, "No", "no token");
    let (first, second) = (shop.new_visitor(), shop.new_visitor());
    first.get("/landing?sovReqToken=recorded-twice").await;
    second.get("/landing?sovReqToken=recorded-twice").await;
    assert_eq!(first.order_recorded().await, "Yes");
    assert_eq!(second.order_recorded().await, "No", "already converted");
}
