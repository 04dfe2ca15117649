//! `Delivery::owe`: a shop whose store cannot join its order's transaction (memory, Redis)
//! keeps the token with the order and sends after the commit; an order a crash left between
//! the two is owed from what it kept, and booked once however often that runs.

use crate::common;

use std::time::Duration;

use common::{TestShop, quick_schedule, redis::RedisServer};
use tower_sessions::MemoryStore;
use tower_sovendus::{
    OrderRef, Outcome, SovReqToken, SovendusConfigBuilder, sandbox::Sandbox, store::TokenStore,
};

fn quick(config: SovendusConfigBuilder) -> SovendusConfigBuilder {
    config.schedule(quick_schedule())
}

fn order(reference: &str) -> OrderRef {
    reference.parse().unwrap()
}

/// What the shop kept with its order: the visitor's token and its product.
async fn kept(shop: &TestShop, token: &str) -> (SovReqToken, tower_sovendus::ProductId) {
    shop.get(&format!("/landing?sovReqToken={token}")).await;
    let shown = shop.pending_token().await;
    assert_eq!(shown, token, "the visitor's token, as the order keeps it");
    let product = shop.sandbox.config().build().unwrap().product_ids()[0].clone();
    (shown.parse().unwrap(), product)
}

/// The kept token of an order that crashed before sending is owed and booked once, and the
/// visitor's next order, the owe run again, and a race of both book nothing more.
async fn a_crash_between_commit_and_send_is_recovered_once(tokens: impl TokenStore) {
    let sandbox = Sandbox::start().await.unwrap();
    let shop = TestShop::on_stores(sandbox, quick, tokens, MemoryStore::default()).await;
    let (token, product) = kept(&shop, "kept-1").await;
    // The order committed, and the process died before it sent: what it kept is owed.
    let owed = shop.delivery.owe(order("K-1"), token.clone(), product.clone()).await.unwrap();
    assert!(matches!(owed, Outcome::Owed { error: None, .. }), "{owed:?}");
    assert_eq!(shop.sandbox.wait_for_conversions(1, Duration::from_secs(10)).await.len(), 1);
    let again = shop.delivery.owe(order("K-1"), token, product).await.unwrap();
    assert!(matches!(again, Outcome::AlreadyConverted(id) if Some(id) == owed.conversion()), "{again:?}");
    // The capture the crash left behind converts nothing.
    assert_eq!(shop.pending_token().await, "", "shown as spent");
    assert_eq!(shop.order().await, "already_converted");

    // An order that did send, and whose owe runs anyway (it recorded no outcome), at once.
    let (token, product) = kept(&shop, "kept-2").await;
    let (sent, owed) = tokio::join!(shop.order(), shop.delivery.owe(order("K-2"), token, product));
    let mut said = [sent, common::describe(owed)];
    said.sort();
    assert!(said == ["already_converted", "owed"] || said == ["already_converted", "sent"], "{said:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(shop.sandbox.accepted().len(), 2, "each token booked once");
}

#[tokio::test]
async fn on_the_memory_store() {
    let tokens = std::sync::Arc::new(tower_sovendus::MokaTokenStore::new(100));
    a_crash_between_commit_and_send_is_recovered_once(tokens).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis() {
    let Some(redis) = RedisServer::start("kept_tokens::on_redis") else { return };
    let tokens = tower_sovendus::RedisTokenStore::new(redis.pool().await);
    a_crash_between_commit_and_send_is_recovered_once(tokens).await;
}
