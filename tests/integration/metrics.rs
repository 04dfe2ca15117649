//! Every counter, read back from a recorder after a scripted day of a shop.
//!
//! The recorder is global: the test runs in a process of its own.

use crate::common;

use std::time::Duration;

use common::{
    TestShop,
    counters::{Readings, count},
    quick_retries, quick_schedule,
};
use http::StatusCode;
use metrics_util::debugging::DebuggingRecorder;
use tower_sovendus::{
    metrics,
    sandbox::{Fault, Sandbox},
};

#[tokio::test]
async fn every_counter_counts_what_happened() {
    if common::ran_in_own_process("metrics::every_counter_counts_what_happened") {
        return;
    }
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    metrics::describe();

    let shop = TestShop::with(Sandbox::start().await.unwrap(), |config| {
        // Retried quickly once, then on the schedule not before the test ends.
        config.retry(quick_retries().max_attempts(2)).schedule(
            quick_schedule().first_wait(Duration::from_secs(3600)).max_wait(Duration::from_secs(3600)),
        )
    })
    .await;
    let [sent, parked, owed, dead, late] = [(); 5].map(|()| shop.new_visitor());

    // Captured; then refused for three reasons.
    sent.get("/landing?sovReqToken=visitor-sent").await;
    shop.get("/landing?sovReqToken=bad/token").await;
    shop.get("/landing?sovReqToken=a&sovReqToken=b").await;
    shop.get("/landing?sovReqToken=%FF").await;

    // Owed, left to the workers, retried once, sent.
    shop.sandbox.fault_next(1, Fault::Status(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(sent.order_in_background().await, "owed");
    shop.sandbox.wait_for_conversions(2, Duration::from_secs(10)).await;

    // A wrong configuration: parked.
    parked.get("/landing?sovReqToken=visitor-parked").await;
    shop.sandbox.fault_next(1, Fault::Status(StatusCode::FORBIDDEN));
    assert_eq!(parked.order().await, "parked: invalid_api_key");

    // Retried once, then still owed.
    owed.get("/landing?sovReqToken=visitor-owed").await;
    shop.sandbox.fault_next(2, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(owed.order().await, "owed: unavailable 503");

    // Refused for good: dead.
    dead.get("/landing?sovReqToken=visitor-dead").await;
    shop.sandbox.fault_next(1, Fault::Status(StatusCode::UNPROCESSABLE_ENTITY));
    assert_eq!(dead.order().await, "dead: invalid_product_or_token: Invalid API parameters.");

    // The gauges catch up within six poll intervals.
    let mut readings = Readings::new(&snapshotter);
    let expected = [("dead", 1.0), ("delivered", 1.0), ("owed", 1.0), ("parked", 1.0), ("voided", 0.0)];
    let every_state_counted = async || readings.read().gauges(metrics::CONVERSIONS) == expected;
    assert!(
        common::eventually(Duration::from_secs(10), every_state_counted).await,
        "gauges: {:?}",
        readings.gauges(metrics::CONVERSIONS)
    );

    // Shut down, then one more background order: dropped, token kept.
    let report = shop.delivery.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.sent(), 1);
    late.get("/landing?sovReqToken=visitor-late").await;
    assert_eq!(late.order_in_background().await, "shutting_down");

    let counters = &readings.read().counters;
    let count = |name, reason| count(counters, name, reason);
    assert!(counters.iter().all(|(.., description)| description.is_some()), "every counter is described");
    assert_eq!(count(metrics::CAPTURED, None), 5);
    assert_eq!(count(metrics::REFUSED, Some("invalid")), 1);
    assert_eq!(count(metrics::REFUSED, Some("repeated")), 1);
    assert_eq!(count(metrics::REFUSED, Some("not_utf8")), 1);
    assert_eq!(count(metrics::OWED, None), 4);
    assert_eq!(count(metrics::QUEUED, None), 1);
    assert_eq!(count(metrics::RETRIED, None), 2);
    assert_eq!(count(metrics::SENT, None), 1);
    assert_eq!(count(metrics::FAILED, Some("invalid_api_key")), 1);
    assert_eq!(count(metrics::FAILED, Some("owed")), 1);
    assert_eq!(count(metrics::FAILED, Some("invalid_parameters")), 1);
    assert_eq!(count(metrics::DROPPED, Some("shutting_down")), 1);
    assert_eq!(count(metrics::DROPPED, Some("token_store")), 0);
}
