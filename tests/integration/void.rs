//! `Delivery::void`: an order taken back before delivery is never booked; one booked says so,
//! with what to tell Sovendus; one being sent right now is left alone.

use crate::common;

use std::time::Duration;

use common::{TestShop, quick_schedule};
use http::StatusCode;
use tower_sovendus::{
    OrderRef, VoidOutcome,
    sandbox::{Fault, Sandbox},
    store::ConversionState,
};

fn order(reference: &str) -> OrderRef {
    reference.parse().unwrap()
}

async fn shop() -> TestShop {
    TestShop::with(Sandbox::start().await.unwrap(), |config| config.schedule(quick_schedule())).await
}

/// Orders `reference` with the visitor's token `token`; what sending said.
async fn ordered(shop: &TestShop, token: &str, reference: &str) -> String {
    let visitor = shop.new_visitor();
    visitor.get(&format!("/landing?sovReqToken={token}")).await;
    let response = visitor.client.post(visitor.url(&format!("/order-for/{reference}"))).send().await.unwrap();
    response.text().await.unwrap()
}

#[tokio::test]
async fn an_order_voided_before_delivery_is_never_booked() {
    let shop = shop().await;
    // Sovendus failing: the conversion stays owed, retried every 200 ms to 1 s.
    shop.sandbox.fail_every(1, [Fault::Status(StatusCode::SERVICE_UNAVAILABLE)]);
    assert_eq!(ordered(&shop, "voided-1", "V-1").await, "owed: unavailable 503");
    let voided = shop.delivery.void(&order("V-1")).await.unwrap();
    let VoidOutcome::Voided(conversion) = voided else { panic!("voided, not {voided:?}") };
    assert_eq!((conversion.state, conversion.token.as_str()), (ConversionState::Voided, "voided-1"));
    let again = shop.delivery.void(&order("V-1")).await.unwrap();
    assert!(matches!(again, VoidOutcome::AlreadyVoided(_)), "{again:?}");

    // Sovendus answers again; several retry periods later, nothing was booked.
    let calls = shop.sandbox.conversions().len();
    shop.sandbox.stop_faults();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(shop.sandbox.conversions().len(), calls, "never sent after the void");
    assert!(shop.sandbox.accepted().is_empty(), "never booked");
    let counts = shop.delivery.counts().await.unwrap();
    assert_eq!((counts.voided, counts.owed, counts.delivered), (1, 0, 0), "{counts:?}");
    assert_eq!(
        shop.delivery
            .list(&tower_sovendus::store::ListQuery::new(ConversionState::Voided).limit(10))
            .await
            .unwrap()
            .len(),
        1,
        "listed"
    );
}

#[tokio::test]
async fn a_delivered_order_says_what_to_tell_sovendus() {
    let shop = shop().await;
    assert_eq!(ordered(&shop, "delivered-1", "W-1").await, "sent");
    let voided = shop.delivery.void(&order("W-1")).await.unwrap();
    let VoidOutcome::Delivered(conversion) = voided else { panic!("delivered, not {voided:?}") };
    assert_eq!(conversion.token.as_str(), "delivered-1", "the token to give Sovendus");
    assert!(conversion.settled_at.is_some(), "and when it was booked");
    assert_eq!(shop.delivery.counts().await.unwrap().delivered, 1, "still delivered");
    assert_eq!(shop.delivery.void(&order("W-2")).await.unwrap(), VoidOutcome::NotFound);
}

#[tokio::test]
async fn a_void_during_a_call_waits_for_it_and_says_what_sovendus_answered() {
    let shop = shop().await;
    shop.sandbox.fault_next(1, Fault::Delay(Duration::from_millis(1_500)));
    let sending = {
        let visitor = shop.new_visitor();
        visitor.get("/landing?sovReqToken=in-flight-1").await;
        tokio::spawn(async move {
            let response = visitor.client.post(visitor.url("/order-for/X-1")).send().await.unwrap();
            response.text().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A call is out: the void waits for it, and Sovendus booked it.
    let voided = shop.delivery.void(&order("X-1")).await.unwrap();
    assert!(matches!(voided, VoidOutcome::Delivered(_)), "the call was booked: {voided:?}");
    assert_eq!(sending.await.unwrap(), "sent");
    assert!(matches!(shop.delivery.void(&order("X-1")).await.unwrap(), VoidOutcome::Delivered(_)));
    assert_eq!(shop.sandbox.accepted().len(), 1);
}
