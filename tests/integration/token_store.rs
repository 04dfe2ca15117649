//! The rules every `TokenStore` keeps, checked on the embedded store and on a real Redis; and
//! what only the Redis store has to keep: corrupt records, prefixes,
//! restarts and outages, lists longer than a window of IDs.

use crate::common;

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use common::{
    counters::{Counters, count, counters},
    redis::{RedisServer, keys},
};
use metrics_util::debugging::DebuggingRecorder;
use tower_sovendus::{
    OrderRef,
    config::Attribution,
    metrics::UNREADABLE,
    store::{
        Capture, CaptureStore, Conversion, ConversionCounts, ConversionId, ConversionState, ConversionStore,
        Cursor, Inspection, Lease, LeaseId, ListQuery, MokaTokenStore, NewCapture, NewConversion, Outbox,
        RedisTokenStore, Settlement, StoreError, Taken, TimeAxis, TokenStore, conformance,
        fred::{
            cmd,
            prelude::{ClientLike, Pool},
        },
    },
};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const MINUTE: Duration = Duration::from_secs(60);

/// Now, to the millisecond, as stores keep times.
fn now() -> SystemTime {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    UNIX_EPOCH + Duration::from_millis(u64::try_from(since.as_millis()).unwrap())
}

fn landing(token: &str, at: SystemTime) -> NewCapture {
    let capture = Capture::new(token.parse().unwrap(), "product-a".parse().unwrap());
    NewCapture::new(capture, Attribution::LastClick, at, DAY)
}

fn order(at: SystemTime, order: Option<&str>) -> NewConversion {
    NewConversion::new(ConversionId::random(), order.map(|order| order.parse().unwrap()), at, None)
}

fn lease(until: SystemTime) -> Lease {
    Lease::new(LeaseId::random(), until)
}

/// Captures `token` under `key` and takes it: the owed conversion.
async fn owed(store: &impl TokenStore, key: i128, token: &str, at: SystemTime) -> Conversion {
    store.capture(key, landing(token, at)).await.unwrap();
    match store.take(key, order(at, None)).await.unwrap() {
        Taken::Owed(owed) => owed,
        other => panic!("a fresh capture is taken, not {other:?}"),
    }
}

async fn claimed(store: &impl TokenStore, now: SystemTime) -> Vec<ConversionId> {
    let claimed = store.claim(now, 100, lease(now + MINUTE)).await.unwrap();
    claimed.into_iter().map(|conversion| conversion.id).collect()
}

/// Sends one command to Redis as it is.
async fn command(pool: &Pool, name: &'static str, args: Vec<String>) {
    let _: tower_sovendus::store::fred::types::Value = pool.custom(cmd!(name), args).await.unwrap();
}

/// Runs `test` on a runtime of its own on this thread, with a recorder of this thread's own:
/// the counters returned are this test's alone, whatever the tests beside it count.
fn counting(test: impl Future<Output = ()>) -> Counters {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(test);
    });
    counters(&snapshotter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_moka_store_keeps_every_rule() {
    conformance::check(|| async { MokaTokenStore::new(1_000) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_keeps_every_rule() {
    let Some(redis) = RedisServer::start("the_redis_store_keeps_every_rule") else { return };
    let pool = redis.pool().await;
    let stores = AtomicUsize::new(0);
    // One Redis, a key prefix per store.
    conformance::check(|| {
        let index = stores.fetch_add(1, Ordering::Relaxed);
        let store = RedisTokenStore::new(pool.clone()).with_prefix(format!("rule-{index}"));
        async move { store }
    })
    .await;
}

#[test]
fn a_corrupt_conversion_is_refused_counted_and_not_claimed_again() {
    let Some(redis) = RedisServer::start("a_corrupt_conversion_is_refused_counted_and_not_claimed_again")
    else {
        return;
    };
    let counters = counting(async {
        let pool = redis.pool().await;
        let store = RedisTokenStore::new(pool.clone()).with_prefix("corrupt");
        let now = now();
        let corrupt = owed(&store, 1, "corrupt-token", now).await;
        let sound = owed(&store, 2, "sound-token", now).await;
        let record = format!("{{corrupt}}:conversion:{}", corrupt.id);
        command(&pool, "HSET", vec![record, "token".to_owned(), "not a token!".to_owned()]).await;
        // And an ID in the due index whose key holds no hash.
        let stray = ConversionId::random();
        command(&pool, "ZADD", vec!["{corrupt}:due".to_owned(), "0".to_owned(), stray.to_string()]).await;
        command(&pool, "SET", vec![format!("{{corrupt}}:conversion:{stray}"), "x".to_owned()]).await;

        assert_eq!(claimed(&store, now).await, [sound.id], "the corrupt ones are left out");
        let counts =
            ConversionCounts::default().with(ConversionState::Owed, 1).with(ConversionState::Dead, 1);
        assert_eq!(store.counts().await.unwrap(), counts, "the corrupt one is dead");
        // The sound one's lease has run out: it alone is claimed again.
        assert_eq!(claimed(&store, now + DAY).await, [sound.id], "not claimed again");
        assert!(
            store
                .list(&tower_sovendus::store::ListQuery::new(ConversionState::Dead).limit(10))
                .await
                .unwrap()
                .is_empty(),
            "skipped"
        );
        assert_eq!(
            store
                .list(&tower_sovendus::store::ListQuery::new(ConversionState::Owed).limit(10))
                .await
                .unwrap()
                .len(),
            1
        );
    });
    // The claim's two, the listing's one, and the stray again at the second claim: a key that is
    // not a hash here stays due, looked at again once a lease would have run out (in a cluster
    // it may be moving between nodes).
    assert_eq!(count(&counters, UNREADABLE, None), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_with_different_prefixes_do_not_see_each_other() {
    let Some(redis) = RedisServer::start("stores_with_different_prefixes_do_not_see_each_other") else {
        return;
    };
    let pool = redis.pool().await;
    let shop_a = RedisTokenStore::new(pool.clone()).with_prefix("shop-a");
    let shop_b = RedisTokenStore::new(pool.clone()).with_prefix("shop-b");
    let now = now();
    shop_a.capture(1, landing("token-a", now)).await.unwrap();
    shop_b.capture(1, landing("token-b", now)).await.unwrap();
    let Taken::Owed(in_a) = shop_a.take(1, order(now, Some("A-1"))).await.unwrap() else {
        panic!("taken in A")
    };

    let in_b = shop_b.captured(1, now).await.unwrap().expect("B's own capture");
    assert_eq!(in_b.token.as_str(), "token-b");
    assert_eq!(shop_b.find(&OrderRef::new("A-1").unwrap()).await.unwrap(), None);
    assert_eq!(shop_b.counts().await.unwrap(), ConversionCounts::default());
    assert!(claimed(&shop_b, now).await.is_empty());
    assert!(
        shop_b
            .list(&tower_sovendus::store::ListQuery::new(ConversionState::Owed).limit(10))
            .await
            .unwrap()
            .is_empty()
    );
    // The same token in B is B's to convert.
    shop_b.capture(2, landing("token-a", now)).await.unwrap();
    assert!(matches!(shop_b.take(2, order(now, None)).await.unwrap(), Taken::Owed(_)));
    assert_eq!(claimed(&shop_a, now).await, [in_a.id]);

    let keys = keys(&pool, "*").await;
    assert!(keys.iter().all(|key| key.starts_with("{shop-a}:") || key.starts_with("{shop-b}:")), "{keys:?}");
    assert!(keys.iter().any(|key| key.starts_with("{shop-a}:")), "{keys:?}");
}

/// `operation` again and again until it succeeds, for up to 10 s (the pool reconnecting).
async fn eventually<T>(mut operation: impl AsyncFnMut() -> Result<T, StoreError>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match operation().await {
            Ok(value) => return value,
            Err(error) if Instant::now() < deadline && error.is_retryable() => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("Redis did not come back: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_survives_a_redis_restart() {
    let Some(mut redis) = RedisServer::start("the_data_survives_a_redis_restart") else { return };
    let pool = redis.pool().await;
    let store = RedisTokenStore::new(pool.clone());
    let now = now();
    store.capture(1, landing("waiting-token", now)).await.unwrap();
    store.capture(2, landing("owed-token", now)).await.unwrap();
    let Taken::Owed(owed) = store.take(2, order(now, Some("A-2"))).await.unwrap() else { panic!("taken") };

    // Saved as a Redis with persistence would, then killed and started again.
    redis.kill(true);
    redis.restart();

    let order_ref = OrderRef::new("A-2").unwrap();
    let found = eventually(async || store.find(&order_ref).await).await;
    assert_eq!(found, Some(owed.clone()));
    let waiting = store.captured(1, now).await.unwrap().expect("the capture is kept");
    assert_eq!(waiting.token.as_str(), "waiting-token");
    assert_eq!(claimed(&store, now).await, [owed.id]);
    assert_eq!(
        store.take(2, order(now, None)).await.unwrap(),
        Taken::AlreadyConverted(owed.id),
        "still converted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_every_operation_fails_retryably_within_the_timeout() {
    let Some(mut redis) =
        RedisServer::start("while_redis_is_down_every_operation_fails_retryably_within_the_timeout")
    else {
        return;
    };
    let pool = redis.pool().await;
    let timeout = Duration::from_millis(300);
    let store = RedisTokenStore::new(pool.clone()).with_timeout(timeout);
    let now = now();
    let id = owed(&store, 1, "token", now).await.id;
    redis.kill(false);

    let settlement = Settlement::new(ConversionState::Delivered, 1, None, None, now);
    let order_ref = OrderRef::new("A-1").unwrap();
    macro_rules! fails_within_the_timeout {
        ($($operation:expr),+ $(,)?) => {$(
            let started = Instant::now();
            let error = $operation.await.map(drop).expect_err(stringify!($operation));
            let took = started.elapsed();
            assert!(error.is_retryable(), "{}: {error}", stringify!($operation));
            // Some slack for a loaded machine, far below the pool's own 1 s.
            assert!(took < timeout + Duration::from_millis(400), "{}: {took:?}", stringify!($operation));
        )+};
    }
    fails_within_the_timeout!(
        store.capture(2, landing("during", now)),
        store.captured(1, now),
        store.take(1, order(now, None)),
        store.claim(now, 10, lease(now + MINUTE)),
        store.renew(id, lease(now + MINUTE)),
        store.settle(id, LeaseId::random(), settlement.clone()),
        store.list(&tower_sovendus::store::ListQuery::new(ConversionState::Owed).limit(10)),
        store.counts(),
        store.find(&order_ref),
        store.retry_parked(now),
        store.purge(now, now),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_may_evict_owed_conversions_is_refused_unless_allowed() {
    let Some(redis) = RedisServer::start("a_redis_that_may_evict_owed_conversions_is_refused_unless_allowed")
    else {
        return;
    };
    let pool = redis.pool().await;
    let policy = |policy: &str| vec!["SET".to_owned(), "maxmemory-policy".to_owned(), policy.to_owned()];
    let now = now();

    // Under allkeys-lru Redis may drop keys without an expiry: the owed conversions.
    command(&pool, "CONFIG", policy("allkeys-lru")).await;
    let refused = RedisTokenStore::new(pool.clone()).with_prefix("refused");
    for _ in 0..2 {
        let error = refused.capture(1, landing("token-a", now)).await.unwrap_err();
        assert!(error.to_string().contains("maxmemory-policy allkeys-lru"), "{error}");
    }
    assert!(refused.counts().await.is_err(), "every operation refused");
    let allowed = RedisTokenStore::new(pool.clone()).with_prefix("allowed").allow_evicting_policy();
    assert!(allowed.capture(1, landing("token-a", now)).await.unwrap(), "allowed, and logged");

    // volatile-* evicts only keys with an expiry (the captures): safe.
    command(&pool, "CONFIG", policy("volatile-lru")).await;
    let safe = RedisTokenStore::new(pool.clone()).with_prefix("safe");
    assert!(safe.capture(1, landing("token-a", now)).await.unwrap());
}

/// Every page of `query`, `page` at a time, each after the last one's last conversion.
async fn every_page(store: &impl TokenStore, query: ListQuery, page: usize) -> Vec<Vec<ConversionId>> {
    let (mut pages, mut query) = (Vec::new(), query.limit(page));
    loop {
        // A walk of the store's windows that never ends fails here, not by hanging the test.
        let listed = tokio::time::timeout(Duration::from_secs(10), store.list(&query)).await;
        let listed = listed.expect("a page within 10 s").unwrap();
        assert!(pages.len() <= 1_000, "more pages than conversions: the cursor does not advance");
        let Some(last) = listed.last() else { return pages };
        query = query.after(Cursor::after(last, TimeAxis::Ordered).unwrap());
        pages.push(listed.iter().map(|conversion| conversion.id).collect());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lists_page_across_windows_and_many_conversions_of_one_millisecond() {
    let Some(redis) =
        RedisServer::start("redis_lists_page_across_windows_and_many_conversions_of_one_millisecond")
    else {
        return;
    };
    let store = RedisTokenStore::new(redis.pool().await);
    let t = now();
    // 160 conversions in one millisecond, then 100 in the next: more than a window (100 to
    // 500 IDs) shares a score; one in 40 is product-b's.
    let mut made = Vec::new();
    for key in 0..260 {
        let at = if key < 160 { t } else { t + Duration::from_millis(1) };
        let product = if key % 40 == 0 { "product-b" } else { "product-a" };
        let capture = Capture::new(format!("token-{key}").parse().unwrap(), product.parse().unwrap());
        store.capture(key, NewCapture::new(capture, Attribution::LastClick, at, DAY)).await.unwrap();
        let Taken::Owed(owed) = store.take(key, order(at, None)).await.unwrap() else { panic!("taken") };
        made.push((owed.ordered_at, owed.id, owed.product.as_str() == "product-b"));
    }
    made.sort();
    let oldest: Vec<ConversionId> = made.iter().map(|(_, id, _)| *id).collect();
    let owed = ListQuery::new(ConversionState::Owed);
    for page in [7, 100, 101, 1_000] {
        let pages = every_page(&store, owed.clone(), page).await;
        assert!(pages.iter().rev().skip(1).all(|listed| listed.len() == page), "full pages of {page}");
        assert_eq!(pages.concat(), oldest, "oldest first, {page} a page");
        let newest = every_page(&store, owed.clone().newest_first(), page).await.concat();
        assert_eq!(newest, oldest.iter().rev().copied().collect::<Vec<_>>(), "newest first, {page} a page");
    }
    let product_b: Vec<ConversionId> = made.iter().filter(|(.., b)| *b).map(|(_, id, _)| *id).collect();
    let query = owed.clone().product("product-b".parse().unwrap());
    let pages = every_page(&store, query.clone(), 2).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2, 1], "a filter still fills pages");
    assert_eq!(pages.concat(), product_b);
    let newest = every_page(&store, query.newest_first(), 3).await.concat();
    assert_eq!(newest, product_b.iter().rev().copied().collect::<Vec<_>>());
    let later = owed.between(t + Duration::from_millis(1), t + MINUTE);
    assert_eq!(every_page(&store, later, 30).await.concat(), oldest[160..], "from the second millisecond");
}
