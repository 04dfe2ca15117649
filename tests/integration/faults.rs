//! Fault injection over loopback: whatever the API does, each token is booked once (one 200),
//! or stays owed until it is, never lost and never booked twice.

use crate::common;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use common::{TestShop, Visitor, eventually, quick_retries, quick_schedule};
use http::StatusCode;
use tower_sessions::MemoryStore;
use tower_sovendus::{
    SovendusConfigBuilder,
    sandbox::{Conversion, Fault, Sandbox},
    store::{ConversionState, MokaTokenStore},
};

const TOKEN: &str = "12345-test-123-12345";

async fn shop(configure: impl FnOnce(SovendusConfigBuilder) -> SovendusConfigBuilder) -> TestShop {
    TestShop::with(Sandbox::start().await.unwrap(), |config| configure(config.retry(quick_retries()))).await
}

async fn landed(shop: &TestShop) {
    shop.get(&format!("/landing?sovReqToken={TOKEN}")).await;
    assert_eq!(shop.pending_token().await, TOKEN);
}

fn statuses(calls: &[Conversion]) -> Vec<Option<u16>> {
    calls.iter().map(|call| call.status().map(|status| status.as_u16())).collect()
}

/// After a conversion was booked: the token is gone, and another order sends nothing.
async fn assert_booked_once(shop: &TestShop) {
    assert_eq!(shop.pending_token().await, "");
    let calls = shop.sandbox.conversions().len();
    assert_eq!(shop.order().await, "already_converted");
    assert_eq!(shop.sandbox.conversions().len(), calls, "nothing is sent after the 200");
    assert_eq!(shop.sandbox.accepted().len(), 1, "{:?}", shop.sandbox.conversions());
}

#[tokio::test]
async fn three_server_errors_then_success_book_one_conversion() {
    let shop = shop(|config| config).await;
    landed(&shop).await;
    shop.sandbox.fault_next(3, Fault::Status(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(shop.order().await, "sent");
    assert_eq!(statuses(&shop.sandbox.conversions()), [Some(500), Some(500), Some(500), Some(200)]);
    assert_booked_once(&shop).await;
}

#[tokio::test]
async fn server_errors_beyond_the_attempts_leave_it_owed_and_the_schedule_delivers_it() {
    let shop = shop(|config| config.retry(quick_retries().max_attempts(3)).schedule(quick_schedule())).await;
    landed(&shop).await;
    shop.sandbox.fault_next(3, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(shop.order().await, "owed: unavailable 503");
    assert_eq!(shop.sandbox.conversions().len(), 3, "bounded quick attempts");
    assert_eq!(shop.pending_token().await, "", "owed now, no longer the visitor's");
    // No visitor comes back: the workers deliver it on the schedule.
    let calls = shop.sandbox.wait_for_conversions(4, Duration::from_secs(10)).await;
    assert_eq!(statuses(&calls), [Some(503), Some(503), Some(503), Some(200)]);
    assert!(
        eventually(Duration::from_secs(5), async || shop.delivery.counts().await.unwrap().delivered == 1)
            .await
    );
    assert_booked_once(&shop).await;
}

#[tokio::test]
async fn the_time_budget_bounds_the_quick_attempts_and_leaves_it_owed() {
    let wait = Duration::from_millis(50);
    let policy = quick_retries()
        .max_attempts(1000)
        .initial_backoff(wait)
        .max_backoff(wait)
        .jitter(false)
        .max_elapsed(Duration::from_millis(500));
    let shop = shop(|config| config.retry(policy)).await;
    landed(&shop).await;
    shop.sandbox.fail_every(1, [Fault::Status(StatusCode::SERVICE_UNAVAILABLE)]);
    assert_eq!(shop.order().await, "owed: unavailable 503");
    // 50 ms waits within 500 ms: at most 11 attempts, however fast the machine.
    let calls = shop.sandbox.conversions().len();
    assert!((2..=11).contains(&calls), "{calls} attempts");
    let owed = shop
        .delivery
        .list(&tower_sovendus::store::ListQuery::new(ConversionState::Owed).limit(10))
        .await
        .unwrap();
    assert_eq!(owed.len(), 1, "still owed");
    assert_eq!(owed[0].attempts as usize, calls);
}

#[tokio::test]
async fn connection_refused_then_the_api_comes_back() {
    let shop = shop(|config| config.retry(quick_retries().max_attempts(100))).await;
    landed(&shop).await;
    shop.sandbox.take_down().await;
    let order = tokio::spawn({
        let request = shop.client.post(shop.url("/order"));
        async move { request.send().await.unwrap().text().await.unwrap() }
    });
    // Let a few attempts be refused, then bring the API back on the same port.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!order.is_finished(), "still retrying while the API is down");
    shop.sandbox.bring_up().await.unwrap();
    assert_eq!(order.await.unwrap(), "sent");
    // Refused connections never reached the API: the one call it saw was booked.
    assert_eq!(statuses(&shop.sandbox.conversions()), [Some(200)]);
    assert_booked_once(&shop).await;
}

#[tokio::test]
async fn a_response_slower_than_the_timeout_is_repeated_and_booked_once() {
    let shop = shop(|config| config.request_timeout(Duration::from_millis(200))).await;
    landed(&shop).await;
    shop.sandbox.fault_next(1, Fault::Delay(Duration::from_secs(1)));
    assert_eq!(shop.order().await, "sent");
    let calls = shop.sandbox.wait_for_conversions(2, Duration::from_secs(5)).await;
    // The client hung up on the slow call, so the sandbox never answered (nor booked) it.
    assert_eq!(statuses(&calls), [None, Some(200)]);
    assert_booked_once(&shop).await;
}

#[tokio::test]
async fn a_connection_reset_mid_response_is_repeated() {
    let shop = shop(|config| config).await;
    landed(&shop).await;
    shop.sandbox.fault_next(1, Fault::CutOff(StatusCode::BAD_GATEWAY));
    assert_eq!(shop.order().await, "sent");
    assert_eq!(statuses(&shop.sandbox.conversions()), [Some(502), Some(200)]);
    assert_booked_once(&shop).await;
}

#[tokio::test]
async fn a_200_cut_off_mid_body_counts_as_sent_and_is_not_repeated() {
    let shop = shop(|config| config).await;
    landed(&shop).await;
    shop.sandbox.fault_next(1, Fault::CutOff(StatusCode::OK));
    assert_eq!(shop.order().await, "sent");
    assert_eq!(statuses(&shop.sandbox.conversions()), [Some(200)], "booked once, never repeated");
    assert_booked_once(&shop).await;
}

#[tokio::test]
async fn too_many_requests_waits_as_long_as_retry_after_says() {
    let shop = shop(|config| config).await;
    landed(&shop).await;
    shop.sandbox.fault_next(1, Fault::RateLimited(Duration::from_secs(1)));
    assert_eq!(shop.order().await, "sent");
    let calls = shop.sandbox.conversions();
    assert_eq!(statuses(&calls), [Some(429), Some(200)]);
    // Only a lower bound: waiting longer on a busy machine is fine, sooner is not.
    let waited = calls[1].received_at().duration_since(calls[0].received_at()).unwrap();
    assert!(waited >= Duration::from_millis(950), "the retry came after {waited:?}, not 1 s");
    assert_booked_once(&shop).await;
}

#[tokio::test]
async fn a_retry_after_beyond_the_time_budget_ends_the_quick_attempts_and_the_schedule_honours_it() {
    let shop = shop(|config| config.retry(quick_retries().max_elapsed(Duration::from_secs(2)))).await;
    landed(&shop).await;
    shop.sandbox.fault_next(1, Fault::RateLimited(Duration::from_secs(3600)));
    let ordered = SystemTime::now();
    assert_eq!(shop.order().await, "owed: rate_limited");
    assert_eq!(shop.sandbox.conversions().len(), 1);
    let owed = shop
        .delivery
        .list(&tower_sovendus::store::ListQuery::new(ConversionState::Owed).limit(10))
        .await
        .unwrap();
    let next = owed[0].next_attempt_at.expect("owed conversions are due some time");
    assert!(next >= ordered + Duration::from_secs(3599), "the next attempt waits for the hour asked");
}

#[tokio::test]
async fn answers_of_a_wrong_configuration_park_the_conversion_until_it_goes_through() {
    for status in [403, 404, 405] {
        let shop = shop(|config| config.schedule(quick_schedule())).await;
        landed(&shop).await;
        shop.sandbox.fault_next(1, Fault::Status(StatusCode::from_u16(status).unwrap()));
        assert_ne!(shop.order().await, "sent");
        assert_eq!(statuses(&shop.sandbox.conversions()), [Some(status)], "{status}: no quick retry");
        assert_eq!(shop.pending_token().await, "", "{status}: no longer the visitor's");
        assert_eq!(shop.delivery.counts().await.unwrap().parked, 1, "{status} parks it");
        // The configuration is right again (the fault is gone): the schedule delivers it.
        let calls = shop.sandbox.wait_for_conversions(2, Duration::from_secs(10)).await;
        assert_eq!(statuses(&calls), [Some(status), Some(200)], "{status}");
        assert_booked_once(&shop).await;
    }
}

#[tokio::test]
async fn an_unknown_token_is_dead_after_one_call() {
    let shop = shop(|config| config.schedule(quick_schedule())).await;
    landed(&shop).await;
    shop.sandbox.fault_next(1, Fault::Status(StatusCode::UNPROCESSABLE_ENTITY));
    assert_eq!(shop.order().await, "dead: invalid_product_or_token: Invalid API parameters.");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(statuses(&shop.sandbox.conversions()), [Some(422)], "never retried");
    let dead = shop
        .delivery
        .list(&tower_sovendus::store::ListQuery::new(ConversionState::Dead).limit(10))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("Sovendus refused the product ID or token (422): Invalid API parameters.")
    );
}

#[tokio::test]
async fn background_delivery_returns_at_once_and_delivers_promptly() {
    let shop = shop(|config| config).await;
    landed(&shop).await;
    // The API is slow, the order page is not.
    shop.sandbox.fault_next(1, Fault::Delay(Duration::from_secs(2)));
    let started = SystemTime::now();
    assert_eq!(shop.order_in_background().await, "owed");
    let calls = shop.sandbox.wait_for_conversions(1, Duration::from_secs(10)).await;
    assert_eq!(statuses(&calls), [Some(200)]);
    assert!(calls[0].received_at().duration_since(started).unwrap() < Duration::from_secs(2));
    let report = shop.delivery.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.sent(), report.failed(), report.dropped()), (1, 0, 0));
    assert!(report.is_complete());
    assert_booked_once(&shop).await;
}

#[tokio::test]
async fn a_full_store_of_owed_conversions_is_a_clear_error_and_keeps_the_token() {
    let shop = shop(|config| config.queue_capacity(2).workers(1)).await;
    // The API is down: A's and B's conversions stay owed, and fill the embedded store.
    let visitors = [shop.new_visitor(), shop.new_visitor(), shop.new_visitor()];
    for (visitor, token) in visitors.iter().zip(["visitor-a", "visitor-b", "visitor-c"]) {
        visitor.get(&format!("/landing?sovReqToken={token}")).await;
    }
    shop.sandbox.take_down().await;
    assert_eq!(visitors[0].order_in_background().await, "owed");
    assert_eq!(visitors[1].order_in_background().await, "owed");
    assert_eq!(visitors[2].order_in_background().await, "queue_full");
    assert_eq!(visitors[2].pending_token().await, "visitor-c", "kept with the visitor");

    shop.sandbox.bring_up().await.unwrap();
    assert_eq!(visitors[2].order().await, "queue_full", "still full until the owed ones go");
    let delivered = async || shop.delivery.counts().await.unwrap().owed == 0;
    assert!(eventually(Duration::from_secs(60), delivered).await, "the owed ones are delivered");
    assert_eq!(visitors[2].order().await, "sent", "then a later order sends it");
}

#[tokio::test]
async fn a_shutdown_while_the_api_hangs_leaves_every_conversion_owed_for_the_next_start() {
    let retries = quick_retries().max_attempts(1000).max_elapsed(Duration::from_secs(60));
    let (tokens, sessions) = (Arc::new(MokaTokenStore::new(100)), MemoryStore::default());
    // A call under way is never cut: the shutdown waits for it up to the request timeout.
    let configure = move |config: SovendusConfigBuilder| {
        config.retry(retries).schedule(quick_schedule()).request_timeout(Duration::from_secs(2))
    };
    let shop =
        TestShop::on_stores(Sandbox::start().await.unwrap(), configure, tokens.clone(), sessions.clone())
            .await;
    let visitors: Vec<Visitor> = (0..5).map(|_| shop.new_visitor()).collect();
    for (index, visitor) in visitors.iter().enumerate() {
        visitor.get(&format!("/landing?sovReqToken=visitor-{index}")).await;
    }
    // Every call hangs: the workers hold all five when the shutdown comes.
    shop.sandbox.fail_every(1, [Fault::Delay(Duration::from_secs(60))]);
    for visitor in &visitors {
        assert_eq!(visitor.order_in_background().await, "owed");
    }
    assert!(eventually(Duration::from_secs(10), async || shop.sandbox.calls_received() == 5).await);

    let report = shop.delivery.shutdown(Duration::from_millis(500)).await;
    assert_eq!((report.sent(), report.failed()), (0, 0));
    let mut left: Vec<&str> = report.left().iter().map(|pending| pending.token().as_str()).collect();
    left.sort_unstable();
    assert_eq!(left, ["visitor-0", "visitor-1", "visitor-2", "visitor-3", "visitor-4"]);
    assert!(report.left().iter().all(|pending| pending.product_id().as_str() == Sandbox::PRODUCT_ID));
    assert_eq!(shop.delivery.counts().await.unwrap().owed, 5, "every one still owed");
    // Shut down: no more background conversions; the token stays with the visitor.
    let late = shop.new_visitor();
    late.get("/landing?sovReqToken=visitor-late").await;
    assert_eq!(late.order_in_background().await, "shutting_down");
    assert_eq!(late.pending_token().await, "visitor-late");

    // The next start, on the same stores, delivers them at once: no visitor comes back.
    shop.sandbox.stop_faults();
    let restarted = TestShop::on_stores(shop.sandbox, configure, tokens, sessions).await;
    let delivered = async || restarted.delivery.counts().await.unwrap().delivered == 5;
    assert!(eventually(Duration::from_secs(10), delivered).await);
    assert_eq!(bookings(&restarted.sandbox).len(), 5, "each booked");
    assert!(bookings(&restarted.sandbox).values().all(|count| *count == 1), "once");
}

/// How many 200s each token got.
fn bookings(sandbox: &Sandbox) -> HashMap<String, usize> {
    let mut bookings = HashMap::new();
    for call in sandbox.accepted() {
        *bookings.entry(call.token().unwrap().to_owned()).or_insert(0) += 1;
    }
    bookings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_background_conversions_through_a_flaky_api_are_each_booked_once() {
    const VISITORS: usize = 1000;
    let shop = shop(|config| config.retry(quick_retries().max_attempts(20))).await;
    // A third of the calls fail, in every way a call can fail.
    shop.sandbox.fail_every(
        3,
        [
            Fault::Status(StatusCode::INTERNAL_SERVER_ERROR),
            Fault::Refuse,
            Fault::CutOff(StatusCode::BAD_GATEWAY),
            Fault::RateLimited(Duration::ZERO),
            Fault::Status(StatusCode::SERVICE_UNAVAILABLE),
        ],
    );
    let visitors = common::Visitors::land(&shop, VISITORS).await;
    let queued = visitors.order_in_background(&shop).await;
    assert!(queued.iter().all(|said| said == "owed"), "{queued:?}");

    let delivered = async || shop.delivery.counts().await.unwrap().delivered == VISITORS as u64;
    assert!(eventually(Duration::from_secs(120), delivered).await, "{:?}", shop.delivery.counts().await);
    let report = shop.delivery.shutdown(Duration::from_secs(10)).await;
    assert_eq!((report.sent(), report.failed(), report.dropped()), (VISITORS as u64, 0, 0));
    assert!(report.is_complete(), "{:?}", report.left());
    let bookings = bookings(&shop.sandbox);
    assert_eq!(bookings.len(), VISITORS, "every token booked");
    assert!(bookings.values().all(|count| *count == 1), "none booked twice");
    let failed =
        shop.sandbox.conversions().iter().filter(|call| call.status() != Some(StatusCode::OK)).count();
    assert!(failed >= VISITORS / 3, "the API really was flaky: {failed} failed calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn background_workers_and_the_shops_own_retries_race_and_book_each_token_once() {
    const VISITORS: usize = 100;
    let shop = shop(|config| config.retry(quick_retries().max_attempts(20))).await;
    shop.sandbox.fail_every(3, [Fault::Status(StatusCode::BAD_GATEWAY), Fault::CutOff(StatusCode::OK)]);
    let visitors = common::Visitors::land(&shop, VISITORS).await;
    // Each visitor's order goes to the queue, and the shop also sends it itself, twice.
    let (queued, first, second) =
        tokio::join!(visitors.order_in_background(&shop), visitors.order(&shop), visitors.order(&shop),);
    assert!(queued.iter().all(|said| said == "owed" || said == "already_converted"), "{queued:?}");
    let ends = ["sent", "already_converted", "owed: unavailable 502"];
    assert!(first.iter().chain(&second).all(|said| ends.contains(&said.as_str())), "{first:?} {second:?}");
    // A failed first delivery leaves its conversion owed; the workers deliver it.
    let delivered = async || shop.delivery.counts().await.unwrap().delivered == VISITORS as u64;
    assert!(
        eventually(Duration::from_secs(60), delivered).await,
        "{:?} {first:?}",
        shop.delivery.counts().await
    );
    shop.delivery.shutdown(Duration::from_secs(10)).await;

    let bookings = bookings(&shop.sandbox);
    assert_eq!(bookings.len(), VISITORS, "every token booked");
    assert!(bookings.values().all(|count| *count == 1), "none booked twice: {bookings:?}");
}
