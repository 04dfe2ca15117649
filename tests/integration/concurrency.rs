//! Concurrent orders of one session send one POST.

use crate::common;

use std::time::Duration;

use common::TestShop;
use tower_sovendus::{
    RetryPolicy,
    sandbox::{Fault, Sandbox},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_orders_send_one_post() {
    let shop = TestShop::start().await;
    shop.get("/landing?sovReqToken=12345-test-123-12345").await;
    // Slow the answer so that every order overlaps the one in flight.
    shop.sandbox.fault_next(1, Fault::Delay(Duration::from_millis(200)));

    let outcomes = shop.concurrent_orders(50).await;

    assert_eq!(outcomes.iter().filter(|o| *o == "sent").count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "already_converted").count(), 49, "{outcomes:?}");
    assert_eq!(shop.sandbox.conversions().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_after_a_failure_send_nothing_more_and_the_owed_one_goes_once() {
    let shop = TestShop::with(Sandbox::start().await.unwrap(), |config| {
        config.retry(RetryPolicy::never()).schedule(common::quick_schedule())
    })
    .await;
    shop.get("/landing?sovReqToken=12345-test-123-12345").await;
    shop.sandbox.fault_next(1, Fault::Status(http::StatusCode::BAD_GATEWAY));
    assert_eq!(shop.order().await, "owed: unavailable 502");

    let outcomes = shop.concurrent_orders(20).await;
    assert!(outcomes.iter().all(|o| o == "already_converted"), "the first order converted it: {outcomes:?}");
    let delivered = async || shop.delivery.counts().await.unwrap().delivered == 1;
    assert!(common::eventually(Duration::from_secs(10), delivered).await);
    assert_eq!(shop.sandbox.accepted().len(), 1);
}
