//! An order whose take fails in the store: the handler learns whether the conversion is
//! recorded. A store that refused changed nothing, and the visitor's next order sends the
//! token; a store that timed out after its write went through left the conversion owed, and
//! the workers deliver it once, whatever the handler was told.

use std::{sync::Arc, time::Duration};

use tower_sessions::MemoryStore;
use tower_sovendus::{DeliverySchedule, sandbox::Sandbox, store::MokaTokenStore};

use crate::common::{
    TestShop, eventually,
    faulty::{FaultyStore, Takes},
};

const TOKEN: &str = "1095752fb409-457a-af14-17a09e6be522";

/// A shop on `store`, its workers looking for due conversions every 200 ms, its leases 3 s long,
/// with a visitor who landed with [`TOKEN`].
async fn shop(store: &Arc<FaultyStore<MokaTokenStore>>) -> TestShop {
    let schedule =
        DeliverySchedule::default().poll_interval(Duration::from_millis(200)).lease(Duration::from_secs(3));
    let shop = TestShop::on_stores(
        Sandbox::start().await.unwrap(),
        |config| config.schedule(schedule),
        Arc::clone(store),
        MemoryStore::default(),
    )
    .await;
    shop.get(&format!("/landing?sovReqToken={TOKEN}")).await;
    shop
}

#[tokio::test]
async fn a_take_the_store_refused_changed_nothing_and_the_next_order_sends_the_token() {
    let store = Arc::new(FaultyStore::new(MokaTokenStore::new(1_000)));
    let shop = shop(&store).await;
    store.takes(Takes::FailBeforeWriting);
    assert_eq!(shop.order().await, "token_store", "recorded: no");
    assert_eq!(shop.order_in_background().await, "token_store", "recorded: no");
    assert_eq!(shop.pending_token().await, TOKEN, "the token stays with the visitor");
    assert_eq!(shop.sandbox.calls_received(), 0);

    store.takes(Takes::Work);
    assert_eq!(shop.order().await, "sent");
    assert_eq!(shop.sandbox.calls_received(), 1);
}

#[tokio::test]
async fn a_take_that_timed_out_after_its_write_is_unknown_and_delivered_once() {
    for background in [false, true] {
        let store = Arc::new(FaultyStore::new(MokaTokenStore::new(1_000)));
        let shop = shop(&store).await;
        store.takes(Takes::TimeOutAfterWriting);
        let said = if background { shop.order_in_background().await } else { shop.order().await };
        assert_eq!(said, "unknown", "background: {background}");
        store.takes(Takes::Work);
        assert_eq!(shop.pending_token().await, "", "the write went through: the token is spent");
        assert_eq!(shop.order().await, "already_converted", "the next order sends nothing");

        // The workers find it owed and deliver it, once.
        let delivered = async || shop.delivery.counts().await.unwrap().delivered == 1;
        assert!(eventually(Duration::from_secs(20), delivered).await, "background: {background}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(shop.sandbox.calls_received(), 1, "background: {background}");
    }
}
