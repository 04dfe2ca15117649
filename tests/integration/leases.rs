//! A delivery and its lease: renewals run beside the call, never in its way, and a delivery that
//! lost its lease, or could not renew it for most of its length, starts no further attempt. The
//! sandbox counts every call that arrives, answered or not: the honest count of bookings.

use std::{sync::Arc, time::Duration};

use http::StatusCode;
use tower_sessions::MemoryStore;
use tower_sovendus::{
    DeliverySchedule, RetryPolicy,
    sandbox::{Fault, Sandbox},
    store::MokaTokenStore,
};

use crate::common::{
    TestShop, eventually,
    faulty::{FaultyStore, Renewals},
};

const TOKEN: &str = "1095752fb409-457a-af14-17a09e6be522";

/// A shop whose renewals go through `store`, its leases `lease` long, its workers idle (they
/// look for due conversions once an hour), calls failing after `retry`.
async fn shop(store: &Arc<FaultyStore<MokaTokenStore>>, lease: Duration, retry: RetryPolicy) -> TestShop {
    let schedule = DeliverySchedule::default().lease(lease).poll_interval(Duration::from_secs(3600));
    shop_on(store, schedule, retry).await
}

/// The same, on `schedule`.
async fn shop_on(
    store: &Arc<FaultyStore<MokaTokenStore>>,
    schedule: DeliverySchedule,
    retry: RetryPolicy,
) -> TestShop {
    let configure = |config: tower_sovendus::SovendusConfigBuilder| {
        config.retry(retry).schedule(schedule).request_timeout(Duration::from_secs(2))
    };
    let shop = TestShop::on_stores(
        Sandbox::start().await.unwrap(),
        configure,
        Arc::clone(store),
        MemoryStore::default(),
    )
    .await;
    shop.get(&format!("/landing?sovReqToken={TOKEN}")).await;
    shop
}

fn faulty() -> Arc<FaultyStore<MokaTokenStore>> {
    Arc::new(FaultyStore::new(MokaTokenStore::new(1_000)))
}

/// Waits of 500 ms between attempts, up to 5 attempts.
fn slow_retries() -> RetryPolicy {
    RetryPolicy::default()
        .initial_backoff(Duration::from_millis(500))
        .max_backoff(Duration::from_millis(500))
        .max_elapsed(Duration::from_secs(30))
}

#[tokio::test]
async fn a_slow_renewal_never_keeps_a_200_waiting_past_the_timeout() {
    let store = faulty();
    // Renewed every 500 ms; the first renewal stalls 3 s, past the 2 s request timeout.
    let shop = shop(&store, Duration::from_millis(1500), slow_retries()).await;
    store.renewals(Renewals::Stall(Duration::from_secs(3)));
    // Sovendus books the call as it arrives and answers 200 a second later.
    shop.sandbox.fault_next(1, Fault::Delay(Duration::from_secs(1)));
    assert_eq!(shop.order().await, "sent");
    assert_eq!(shop.sandbox.calls_received(), 1, "one call, so one booking");
    assert_eq!(shop.delivery.counts().await.unwrap().delivered, 1);
}

#[tokio::test]
async fn a_delivery_that_lost_its_lease_starts_no_further_attempt() {
    let store = faulty();
    // Renewed every 100 ms; the first renewal finds the lease in another delivery's hands, while
    // the delivery waits 500 ms after a 503.
    let shop = shop(&store, Duration::from_millis(300), slow_retries()).await;
    store.renewals(Renewals::Lost);
    shop.sandbox.fail_every(1, [Fault::Status(StatusCode::SERVICE_UNAVAILABLE)]);
    assert_eq!(shop.order().await, "owed: unavailable 503");
    assert_eq!(shop.sandbox.calls_received(), 1, "no attempt after the lease was lost");
}

#[tokio::test]
async fn a_delivery_that_cannot_renew_for_most_of_its_lease_starts_no_further_attempt() {
    let store = faulty();
    // Every renewal fails (the store is away): after five sixths of the 300 ms lease the
    // delivery no longer trusts it, and the next attempt, due 500 ms after a 503, never starts.
    let shop = shop(&store, Duration::from_millis(300), slow_retries()).await;
    store.renewals(Renewals::Fail);
    shop.sandbox.fail_every(1, [Fault::Status(StatusCode::SERVICE_UNAVAILABLE)]);
    assert_eq!(shop.order().await, "owed: unavailable 503");
    assert_eq!(shop.sandbox.calls_received(), 1, "no attempt on a lease that may have run out");

    // Renewals that work keep the quick retries going: all five attempts.
    let store = faulty();
    let shop = self::shop(&store, Duration::from_millis(300), slow_retries()).await;
    shop.sandbox.fail_every(1, [Fault::Status(StatusCode::SERVICE_UNAVAILABLE)]);
    assert_eq!(shop.order().await, "owed: unavailable 503");
    assert_eq!(shop.sandbox.calls_received(), 5, "every quick retry, under a lease renewed");
}

#[tokio::test]
async fn a_200_the_store_cannot_record_within_the_lease_is_not_sent_again() {
    let store = faulty();
    // Leases of 300 ms; the workers look for due conversions every 50 ms.
    let schedule = DeliverySchedule::default()
        .lease(Duration::from_millis(300))
        .poll_interval(Duration::from_millis(50));
    let shop = shop_on(&store, schedule, slow_retries()).await;
    // Sovendus accepts; the store cannot record it for 2 s, long past the lease.
    store.fail_settles_for(Duration::from_secs(2));
    assert_eq!(shop.order().await, "sent");
    let delivered = async || shop.delivery.counts().await.unwrap().delivered == 1;
    assert!(eventually(Duration::from_secs(20), delivered).await, "{:?}", shop.delivery.counts().await);
    // The workers kept claiming it once its lease ran out, and sent it no more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(shop.sandbox.calls_received(), 1, "one call, so one booking");
}

#[tokio::test]
async fn a_shutdown_waits_for_an_unrecorded_200_and_reports_it_if_the_store_stays_away() {
    let store = faulty();
    let shop = shop(&store, Duration::from_millis(300), slow_retries()).await;
    store.fail_settles_for(Duration::from_secs(60));
    assert_eq!(shop.order().await, "sent");
    let report = shop.delivery.shutdown(Duration::from_secs(1)).await;
    assert!(!report.is_complete());
    let unrecorded: Vec<&str> = report.unrecorded().iter().map(|pending| pending.token().as_str()).collect();
    assert_eq!(unrecorded, [TOKEN]);
}
