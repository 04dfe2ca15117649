//! Owed conversions in one process, on the embedded store: the states the answers lead to, the
//! schedule, the inspection through `Delivery`, and a start after a restart on the same store.

use crate::common;

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use common::{TestShop, eventually, quick_retries, quick_schedule};
use http::StatusCode;
use tower_sessions::MemoryStore;
use tower_sovendus::{
    OrderRef, RetryPolicy, SovendusConfig, SovendusConfigBuilder,
    sandbox::{Fault, Sandbox},
    store::{ConversionState, MokaTokenStore},
};

/// A shop on `tokens` and `sessions` (another on the same two is the same shop restarted),
/// sending to `sandbox` on the quick schedule, options set by `configure`.
async fn shop_on(
    sandbox: Sandbox,
    tokens: &Arc<MokaTokenStore>,
    sessions: &MemoryStore,
    configure: fn(SovendusConfigBuilder) -> SovendusConfigBuilder,
) -> TestShop {
    let configure = move |config: SovendusConfigBuilder| configure(config.schedule(quick_schedule()));
    TestShop::on_stores(sandbox, configure, tokens.clone(), sessions.clone()).await
}

fn stores() -> (Arc<MokaTokenStore>, MemoryStore) {
    (Arc::new(MokaTokenStore::new(1_000)), MemoryStore::default())
}

#[tokio::test]
async fn the_order_reference_finds_the_conversion_and_its_token() {
    let (tokens, sessions) = stores();
    let shop = shop_on(Sandbox::start().await.unwrap(), &tokens, &sessions, |config| config).await;
    shop.get("/landing?sovReqToken=1095752fb409-457a-af14").await;
    let response = shop.client.post(shop.url("/order-for/A-10427")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "sent");

    let found = shop.delivery.find(&"A-10427".parse::<OrderRef>().unwrap()).await.unwrap().expect("found");
    assert_eq!((found.token.as_str(), found.state), ("1095752fb409-457a-af14", ConversionState::Delivered));
    assert!(found.settled_at.is_some());
    assert_eq!(shop.delivery.find(&"A-1".parse::<OrderRef>().unwrap()).await.unwrap(), None);
    // Debug and Display show the token masked.
    let shown = format!("{found} {found:?}");
    assert!(!shown.contains("1095752fb409-457a-af14") && shown.contains("1095752f…"), "{shown}");
}

#[tokio::test]
async fn a_bookmarked_landing_does_not_convert_its_token_twice() {
    let (tokens, sessions) = stores();
    let shop = shop_on(Sandbox::start().await.unwrap(), &tokens, &sessions, |config| config).await;
    for visitor in [shop.new_visitor(), shop.new_visitor()] {
        // The same link, clicked again days later, by the same person or another.
        visitor.get("/landing?sovReqToken=12345-test-123-12345").await;
        let said = visitor.order().await;
        assert!(said == "sent" || said == "no_token", "{said}");
    }
    assert_eq!(shop.sandbox.accepted().len(), 1, "one 200 per token");
}

#[tokio::test]
async fn parked_conversions_go_through_once_the_configuration_is_fixed_and_at_a_restart() {
    let (tokens, sessions) = stores();
    let sandbox = Sandbox::start().await.unwrap();
    // The shop's key is wrong: every call answers 403. Its schedule would not retry soon.
    let endpoint = sandbox.endpoint();
    let configure = move |_: SovendusConfigBuilder| {
        SovendusConfig::builder(Sandbox::PRODUCT_ID, "a-wrong-key-000000")
            .endpoint(endpoint.clone())
            .schedule(
                quick_schedule().first_wait(Duration::from_secs(3600)).max_wait(Duration::from_secs(3600)),
            )
    };
    let shop = TestShop::on_stores(sandbox, configure, tokens.clone(), sessions.clone()).await;
    for (index, visitor) in [shop.new_visitor(), shop.new_visitor()].iter().enumerate() {
        visitor.get(&format!("/landing?sovReqToken=visitor-{index}")).await;
        assert_eq!(visitor.order().await, "parked: invalid_api_key");
    }
    let parked = shop
        .delivery
        .list(&tower_sovendus::store::ListQuery::new(ConversionState::Parked).limit(10))
        .await
        .unwrap();
    assert_eq!(parked.len(), 2, "parked, not lost");
    assert!(
        parked
            .iter()
            .all(|conversion| conversion.last_error.as_deref() == Some("Sovendus refused the API key (403)"))
    );

    // A restart with the right key: the parked ones are due at once.
    drop(shop.delivery.shutdown(Duration::from_secs(1)).await);
    let right_key = |config: SovendusConfigBuilder| {
        config.schedule(
            quick_schedule().first_wait(Duration::from_secs(3600)).max_wait(Duration::from_secs(3600)),
        )
    };
    let restarted = shop_on(shop.sandbox, &tokens, &sessions, right_key).await;
    let delivered = async || restarted.delivery.counts().await.unwrap().delivered == 2;
    assert!(eventually(Duration::from_secs(10), delivered).await, "{:?}", restarted.delivery.counts().await);
    assert_eq!(restarted.sandbox.accepted().len(), 2);
}

#[tokio::test]
async fn retry_parked_sends_them_now() {
    let (tokens, sessions) = stores();
    let shop = shop_on(Sandbox::start().await.unwrap(), &tokens, &sessions, |config| {
        config.schedule(
            quick_schedule().first_wait(Duration::from_secs(3600)).max_wait(Duration::from_secs(3600)),
        )
    })
    .await;
    shop.get("/landing?sovReqToken=12345-test-123-12345").await;
    shop.sandbox.fault_next(1, Fault::Status(StatusCode::NOT_FOUND));
    assert_eq!(shop.order().await, "parked: wrong_url 404: Invalid API call.");
    assert_eq!(shop.delivery.counts().await.unwrap().parked, 1);

    assert_eq!(shop.delivery.retry_parked().await.unwrap(), 1);
    let delivered = async || shop.delivery.counts().await.unwrap().delivered == 1;
    assert!(eventually(Duration::from_secs(10), delivered).await);
}

/// A shop sending once a delivery, on a schedule that ends a second after the order (waits of
/// 100 ms doubling), and a visitor landed on it.
async fn landed_on_a_one_second_schedule() -> TestShop {
    let (tokens, sessions) = stores();
    let shop = shop_on(Sandbox::start().await.unwrap(), &tokens, &sessions, |config| {
        config.retry(RetryPolicy::never()).schedule(
            quick_schedule().first_wait(Duration::from_millis(100)).give_up_after(Duration::from_secs(1)),
        )
    })
    .await;
    shop.get("/landing?sovReqToken=12345-test-123-12345").await;
    shop
}

#[tokio::test]
async fn a_conversion_no_attempt_gets_through_is_given_up_at_the_end_of_the_schedule() {
    let shop = landed_on_a_one_second_schedule().await;
    shop.sandbox.fail_every(1, [Fault::Status(StatusCode::SERVICE_UNAVAILABLE)]);
    assert_eq!(shop.order().await, "owed: unavailable 503");
    let dead = async || shop.delivery.counts().await.unwrap().dead == 1;
    assert!(eventually(Duration::from_secs(10), dead).await, "{:?}", shop.delivery.counts().await);
    let calls = shop.sandbox.conversions().len();
    assert!(calls >= 3, "retried on the schedule, then a last time at its end: {calls} calls");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(shop.sandbox.conversions().len(), calls, "never again");

    // Once Sovendus answers again, the shop retries it on demand: one call, one booking.
    shop.sandbox.stop_faults();
    let dead = shop
        .delivery
        .list(&tower_sovendus::store::ListQuery::new(ConversionState::Dead).limit(10))
        .await
        .unwrap();
    assert!(shop.delivery.retry_dead(dead[0].id).await.unwrap(), "it was dead");
    assert!(!shop.delivery.retry_dead(dead[0].id).await.unwrap(), "not twice");
    let delivered = async || shop.delivery.counts().await.unwrap().delivered == 1;
    assert!(eventually(Duration::from_secs(10), delivered).await, "{:?}", shop.delivery.counts().await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(shop.sandbox.calls_received(), calls + 1, "one more call");
}

#[tokio::test]
async fn a_parked_conversion_never_dies_of_age() {
    let shop = landed_on_a_one_second_schedule().await;
    // A rotated API key: every call refused, for longer than the whole schedule.
    shop.sandbox.fail_every(1, [Fault::Status(StatusCode::FORBIDDEN)]);
    assert_eq!(shop.order().await, "parked: invalid_api_key");
    // Six calls reach the end of the schedule (at 0, 0.1, 0.2, 0.4, 0.8 and 1 s); the eighth
    // comes two waits past it.
    let past_the_end = async || shop.sandbox.conversions().len() >= 8;
    assert!(
        eventually(Duration::from_secs(20), past_the_end).await,
        "{} calls",
        shop.sandbox.conversions().len()
    );
    let counts = shop.delivery.counts().await.unwrap();
    assert_eq!((counts.parked, counts.dead), (1, 0), "still parked, not dead");

    // The key is fixed: the parked conversion goes through, once.
    shop.sandbox.stop_faults();
    shop.delivery.retry_parked().await.unwrap();
    let delivered = async || shop.delivery.counts().await.unwrap().delivered == 1;
    assert!(eventually(Duration::from_secs(10), delivered).await, "{:?}", shop.delivery.counts().await);
    assert_eq!(shop.sandbox.accepted().len(), 1);
}

#[tokio::test]
async fn a_converted_token_is_known_however_many_convert_after_it() {
    // The embedded store holds two owed conversions at once; three convert, then the first
    // token lands again (a bookmark).
    let shop = TestShop::with(Sandbox::start().await.unwrap(), |config| config.queue_capacity(2)).await;
    for n in 0..3 {
        let visitor = shop.new_visitor();
        visitor.get(&format!("/landing?sovReqToken=12345-test-123-0000{n}")).await;
        assert_eq!(visitor.order().await, "sent");
    }
    let again = shop.new_visitor();
    again.get("/landing?sovReqToken=12345-test-123-00000").await;
    assert_eq!(again.order().await, "no_token", "converted before");
    assert_eq!(shop.sandbox.accepted().len(), 3, "each token booked once");
}

#[tokio::test]
async fn the_waits_between_attempts_grow() {
    let (tokens, sessions) = stores();
    let shop = shop_on(Sandbox::start().await.unwrap(), &tokens, &sessions, |config| {
        config.retry(RetryPolicy::never()).schedule(
            quick_schedule()
                .first_wait(Duration::from_millis(200))
                .max_wait(Duration::from_secs(10))
                .jitter(false),
        )
    })
    .await;
    shop.get("/landing?sovReqToken=12345-test-123-12345").await;
    shop.sandbox.fault_next(4, Fault::Status(StatusCode::BAD_GATEWAY));
    let ordered = SystemTime::now();
    assert_eq!(shop.order().await, "owed: unavailable 502");
    let calls = shop.sandbox.wait_for_conversions(5, Duration::from_secs(30)).await;
    let at: Vec<Duration> =
        calls.iter().map(|call| call.received_at().duration_since(ordered).unwrap()).collect();
    // The conversion's age doubles: due at about 0.2, 0.4, 0.8 and 1.6 s after the order.
    for (call, earliest) in at.iter().skip(1).zip([200, 400, 800, 1600]) {
        assert!(*call >= Duration::from_millis(earliest), "{at:?}");
    }
    assert_eq!(calls.last().unwrap().status(), Some(StatusCode::OK));
}

#[tokio::test]
async fn counts_and_lists_show_every_state() {
    let (tokens, sessions) = stores();
    let shop = shop_on(
        Sandbox::builder().known_tokens(["known-1", "known-2", "known-3"]).start().await.unwrap(),
        &tokens,
        &sessions,
        |config| {
            config.retry(quick_retries().max_attempts(1)).schedule(
                quick_schedule().first_wait(Duration::from_secs(3600)).max_wait(Duration::from_secs(3600)),
            )
        },
    )
    .await;
    let script = [
        ("known-1", None, "sent"),
        ("known-2", Some(Fault::Status(StatusCode::SERVICE_UNAVAILABLE)), "owed: unavailable 503"),
        ("known-3", Some(Fault::Status(StatusCode::FORBIDDEN)), "parked: invalid_api_key"),
        ("unknown", None, "dead: invalid_product_or_token: Token not found."),
    ];
    for (token, fault, said) in script {
        let visitor = shop.new_visitor();
        visitor.get(&format!("/landing?sovReqToken={token}")).await;
        if let Some(fault) = fault {
            shop.sandbox.fault_next(1, fault);
        }
        assert_eq!(visitor.order().await, said, "{token}");
    }
    let counts = shop.delivery.counts().await.unwrap();
    assert_eq!((counts.owed, counts.parked, counts.dead, counts.delivered), (1, 1, 1, 1));
    for (state, token) in [
        (ConversionState::Owed, "known-2"),
        (ConversionState::Parked, "known-3"),
        (ConversionState::Dead, "unknown"),
        (ConversionState::Delivered, "known-1"),
    ] {
        let listed =
            shop.delivery.list(&tower_sovendus::store::ListQuery::new(state).limit(10)).await.unwrap();
        assert_eq!(
            listed.iter().map(|conversion| conversion.token.as_str()).collect::<Vec<_>>(),
            [token],
            "{state}"
        );
    }
}
