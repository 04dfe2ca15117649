//! The rules every `TokenStore` keeps, checked on the embedded store and on a real Redis.

mod common;

use std::{sync::Arc, time::Duration};

use common::redis::RedisServer;
use tower_sovendus::{
    config::Attribution::{self, FirstClick, LastClick},
    store::{MokaTokenStore, PendingToken, RedisTokenStore, Settlement, TokenStore},
};

const MINUTE: Duration = Duration::from_secs(60);

type Store = Arc<dyn TokenStore>;

fn pending(token: &str) -> PendingToken {
    PendingToken { token: token.parse().unwrap(), product: "product-a".parse().unwrap() }
}

async fn insert(store: &Store, token: &str, ttl: Duration, attribution: Attribution) -> bool {
    store.insert(7, pending(token), ttl, attribution).await.unwrap()
}

async fn stored(store: &Store) -> Option<String> {
    store.get(7).await.unwrap().map(|pending| pending.token.as_str().to_owned())
}

/// Runs every rule, each on a fresh store from `new_store`.
async fn keeps_every_rule(new_store: impl Fn() -> Store) {
    last_click_replaces_first_click_keeps(new_store(), new_store()).await;
    a_lease_is_exclusive_and_keeps_the_token_stored(new_store()).await;
    concurrent_leases_give_the_token_once(new_store()).await;
    an_expired_lease_frees_the_token(new_store()).await;
    a_newer_click_survives_the_older_tokens_settlement(new_store(), new_store()).await;
    first_click_keeps_a_leased_token(new_store()).await;
    expired_tokens_vanish_and_cannot_be_leased(new_store()).await;
    products_travel_with_the_token(new_store()).await;
}

async fn last_click_replaces_first_click_keeps(last: Store, first: Store) {
    assert!(insert(&last, "first", MINUTE, LastClick).await);
    assert!(insert(&last, "second", MINUTE, LastClick).await);
    assert_eq!(stored(&last).await.as_deref(), Some("second"));

    assert!(insert(&first, "first", MINUTE, FirstClick).await);
    assert!(!insert(&first, "second", MINUTE, FirstClick).await);
    assert_eq!(stored(&first).await.as_deref(), Some("first"));
}

async fn a_lease_is_exclusive_and_keeps_the_token_stored(store: Store) {
    insert(&store, "abc", MINUTE, LastClick).await;
    let leased = store.lease(7, MINUTE).await.unwrap().unwrap();
    assert_eq!(leased.pending.token.as_str(), "abc");
    assert!(store.lease(7, MINUTE).await.unwrap().is_none(), "a second delivery must not get it");
    assert_eq!(stored(&store).await.as_deref(), Some("abc"), "still stored while leased");
    store.settle(&leased, Settlement::Keep).await.unwrap();
    let again = store.lease(7, MINUTE).await.unwrap().unwrap();
    store.settle(&again, Settlement::Done).await.unwrap();
    assert_eq!(stored(&store).await, None);
    assert!(store.lease(7, MINUTE).await.unwrap().is_none());
}

async fn concurrent_leases_give_the_token_once(store: Store) {
    insert(&store, "abc", MINUTE, LastClick).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let store = store.clone();
        tasks.spawn(async move { store.lease(7, MINUTE).await.unwrap().is_some() });
    }
    let leases = tasks.join_all().await.into_iter().filter(|leased| *leased).count();
    assert_eq!(leases, 1);
}

async fn an_expired_lease_frees_the_token(store: Store) {
    insert(&store, "abc", MINUTE, LastClick).await;
    let stale = store.lease(7, Duration::from_millis(20)).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let fresh = store.lease(7, MINUTE).await.unwrap().expect("the dead delivery's lease ran out");
    // The stale delivery settling late changes nothing.
    store.settle(&stale, Settlement::Done).await.unwrap();
    assert!(stored(&store).await.is_some());
    store.settle(&fresh, Settlement::Done).await.unwrap();
    assert_eq!(stored(&store).await, None);
}

async fn a_newer_click_survives_the_older_tokens_settlement(done: Store, keep: Store) {
    for (store, settlement) in [(done, Settlement::Done), (keep, Settlement::Keep)] {
        insert(&store, "old", MINUTE, LastClick).await;
        let leased = store.lease(7, MINUTE).await.unwrap().unwrap();
        insert(&store, "new", MINUTE, LastClick).await;
        store.settle(&leased, settlement).await.unwrap();
        assert_eq!(stored(&store).await.as_deref(), Some("new"), "{settlement:?}");
        assert!(store.lease(7, MINUTE).await.unwrap().is_some(), "the new click is free ({settlement:?})");
    }
}

async fn first_click_keeps_a_leased_token(store: Store) {
    insert(&store, "old", MINUTE, FirstClick).await;
    let leased = store.lease(7, MINUTE).await.unwrap().unwrap();
    assert!(!insert(&store, "new", MINUTE, FirstClick).await);
    store.settle(&leased, Settlement::Keep).await.unwrap();
    assert_eq!(stored(&store).await.as_deref(), Some("old"));
}

async fn expired_tokens_vanish_and_cannot_be_leased(store: Store) {
    insert(&store, "abc", Duration::from_millis(30), FirstClick).await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(stored(&store).await, None);
    assert!(store.lease(7, MINUTE).await.unwrap().is_none());
    assert!(insert(&store, "new", MINUTE, FirstClick).await, "an expired first click does not block");
}

async fn products_travel_with_the_token(store: Store) {
    let chosen = PendingToken {
        token: "12345-test-123-12345".parse().unwrap(),
        product: "9bc72425-902c-3abf-9db8-8b186d7cb160".parse().unwrap(),
    };
    store.insert(-1, chosen.clone(), MINUTE, LastClick).await.unwrap();
    assert_eq!(store.get(-1).await.unwrap(), Some(chosen.clone()));
    assert_eq!(store.lease(-1, MINUTE).await.unwrap().unwrap().pending, chosen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_moka_store_keeps_every_rule() {
    keeps_every_rule(|| Arc::new(MokaTokenStore::new(10))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_keeps_every_rule() {
    let Some(redis) = RedisServer::start("the_redis_store_keeps_every_rule") else { return };
    let pool = redis.pool().await;
    let stores = std::sync::atomic::AtomicUsize::new(0);
    // One Redis, a key prefix per store.
    keeps_every_rule(|| {
        let index = stores.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Arc::new(RedisTokenStore::new(pool.clone()).with_prefix(format!("rule-{index}:")))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_refuses_an_entry_with_the_product_as_an_index() {
    use tower_sovendus::store::fred::prelude::KeysInterface;
    let Some(redis) = RedisServer::start("the_redis_store_refuses_an_entry_with_the_product_as_an_index")
    else {
        return;
    };
    let pool = redis.pool().await;
    let _: () = pool.set("sovendus:{7}", "0:12345-test-123-12345", None, None, false).await.unwrap();
    let store = RedisTokenStore::new(pool);
    for error in [store.get(7).await.unwrap_err(), store.lease(7, MINUTE).await.unwrap_err()] {
        assert!(!error.is_retryable(), "{error}");
        let message = error.to_string();
        assert!(message.contains("product as its position in the configuration"), "{message}");
        assert!(!message.contains("12345-test"), "{message}");
    }
}
