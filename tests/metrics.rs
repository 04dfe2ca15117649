//! Every counter, read back from a recorder after a scripted day of a shop.
//!
//! One test in this binary: the recorder is global.

mod common;

use std::time::Duration;

use common::{
    TestShop,
    counters::{count, counters},
    quick_retries,
};
use http::StatusCode;
use metrics_util::debugging::DebuggingRecorder;
use tower_sovendus::{
    metrics,
    sandbox::{Fault, Sandbox},
};

#[tokio::test]
async fn every_counter_counts_what_happened() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    metrics::describe();

    let shop = TestShop::with(Sandbox::start().await.unwrap(), |config| {
        config.retry(quick_retries().max_attempts(2))
    })
    .await;
    let [sent, refused, gave_up, late] = [(); 4].map(|()| shop.new_visitor());

    // Captured; then refused for three reasons.
    sent.get("/landing?sovReqToken=visitor-sent").await;
    shop.get("/landing?sovReqToken=bad/token").await;
    shop.get("/landing?sovReqToken=a&sovReqToken=b").await;
    shop.get("/landing?sovReqToken=%FF").await;

    // Queued, retried once, sent.
    shop.sandbox.fault_next(1, Fault::Status(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(sent.order_in_background().await, "queued");
    shop.sandbox.wait_for_conversions(2, Duration::from_secs(10)).await;

    // Refused for good: a terminal failure.
    refused.get("/landing?sovReqToken=visitor-refused").await;
    shop.sandbox.fault_next(1, Fault::Status(StatusCode::FORBIDDEN));
    assert_eq!(refused.order().await, "invalid_api_key");

    // Retried once, then given up: a failure that keeps the token.
    gave_up.get("/landing?sovReqToken=visitor-gave-up").await;
    shop.sandbox.fault_next(2, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(gave_up.order().await, "unavailable 503");

    // Shut down, then one more background order: dropped, token kept.
    let report = shop.delivery.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.sent(), 1);
    late.get("/landing?sovReqToken=visitor-late").await;
    assert_eq!(late.order_in_background().await, "shutting_down");

    let counters = counters(&snapshotter);
    let count = |name, reason| count(&counters, name, reason);
    assert!(counters.iter().all(|(.., description)| description.is_some()), "every counter is described");
    assert_eq!(count(metrics::CAPTURED, None), 4);
    assert_eq!(count(metrics::REFUSED, Some("invalid")), 1);
    assert_eq!(count(metrics::REFUSED, Some("repeated")), 1);
    assert_eq!(count(metrics::REFUSED, Some("not_utf8")), 1);
    assert_eq!(count(metrics::QUEUED, None), 1);
    assert_eq!(count(metrics::RETRIED, None), 2);
    assert_eq!(count(metrics::SENT, None), 1);
    assert_eq!(count(metrics::FAILED, Some("terminal")), 1);
    assert_eq!(count(metrics::FAILED, Some("gave_up")), 1);
    assert_eq!(count(metrics::DROPPED, Some("shutting_down")), 1);
    assert_eq!(count(metrics::DROPPED, Some("queue_full")), 0);
}
