//! Where captured tokens live: a moka TTL cache keyed by the visitor's session.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use moka::{
    Expiry,
    future::Cache,
    ops::compute::{CompResult, Op},
};

use crate::{SovReqToken, config::Attribution};

/// The cache key: a random value kept in the visitor's (server-side) session data.
///
/// It is made when the session first captures a token and travels with the session's data, so
/// it survives `Session::cycle_id` (login), and it is only ever read from a session the store
/// has loaded, never from a cookie.
pub(crate) type TokenKey = i128;

/// A captured token, waiting for its order.
#[derive(Debug, Clone)]
pub(crate) struct StoredToken {
    pub(crate) token: SovReqToken,
    /// Index into the configured product IDs.
    pub(crate) product: u8,
    /// When the token stops counting, fixed at capture: a failed send does not extend its
    /// life.
    pub(crate) expires_at: Instant,
    /// The delivery sending it now, if any.
    pub(crate) lease: Option<Lease>,
}

impl StoredToken {
    pub(crate) fn new(token: SovReqToken, product: u8, ttl: Duration) -> Self {
        Self { token, product, expires_at: Instant::now() + ttl, lease: None }
    }

    fn is_live(&self, now: Instant) -> bool {
        self.expires_at > now
    }

    fn is_leased(&self, now: Instant) -> bool {
        self.lease.is_some_and(|lease| lease.until > now)
    }
}

/// A delivery's hold on a stored token: while it lasts, no other delivery takes the token.
/// It runs out on its own, so a delivery that died cannot hold a token forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    id: u64,
    until: Instant,
}

/// A token leased for sending; hand it back with [`TokenStore::settle`].
#[derive(Debug)]
pub(crate) struct Leased {
    pub(crate) key: TokenKey,
    pub(crate) token: SovReqToken,
    pub(crate) product: u8,
    lease: Lease,
}

/// How a leased token's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// Sovendus accepted it, or refused it for good: the token goes.
    Done,
    /// It may still succeed later: the token stays, free for the next delivery.
    Keep,
}

/// The embedded token store.
#[derive(Debug, Clone)]
pub(crate) struct TokenStore {
    cache: Cache<TokenKey, StoredToken>,
    attribution: Attribution,
    next_lease: Arc<AtomicU64>,
}

impl TokenStore {
    pub(crate) fn new(max_tokens: u64, attribution: Attribution) -> Self {
        let cache = Cache::builder().max_capacity(max_tokens).expire_after(UntilDeadline).build();
        Self { cache, attribution, next_lease: Arc::new(AtomicU64::new(1)) }
    }

    /// Stores a freshly captured token; returns whether it was kept (under first-click, an
    /// existing token wins).
    pub(crate) async fn insert(&self, key: TokenKey, token: StoredToken) -> bool {
        self.put(key, token, self.attribution == Attribution::LastClick).await
    }

    /// The token stored for `key`, left in place.
    pub(crate) async fn get(&self, key: TokenKey) -> Option<StoredToken> {
        self.cache.get(&key).await.filter(|stored| stored.is_live(Instant::now()))
    }

    /// Leases the token for `key` for `duration`, unless another delivery holds it. Atomic:
    /// of concurrent callers, one gets it. The token stays stored meanwhile.
    pub(crate) async fn lease(&self, key: TokenKey, duration: Duration) -> Option<Leased> {
        let lease =
            Lease { id: self.next_lease.fetch_add(1, Ordering::Relaxed), until: Instant::now() + duration };
        let result = self
            .cache
            .entry(key)
            .and_compute_with(|entry| async move {
                let now = Instant::now();
                match entry.map(moka::Entry::into_value) {
                    Some(stored) if stored.is_live(now) && !stored.is_leased(now) => {
                        Op::Put(StoredToken { lease: Some(lease), ..stored })
                    }
                    _ => Op::Nop,
                }
            })
            .await;
        let stored = result.into_entry()?.into_value();
        (stored.lease == Some(lease)).then_some(Leased {
            key,
            token: stored.token,
            product: stored.product,
            lease,
        })
    }

    /// Ends a lease: the token goes ([`Settlement::Done`]) or is freed for the next delivery
    /// ([`Settlement::Keep`]). A token captured since (last-click) is left alone.
    pub(crate) async fn settle(&self, leased: Leased, settlement: Settlement) {
        self.cache
            .entry(leased.key)
            .and_compute_with(|entry| async move {
                match entry.map(moka::Entry::into_value) {
                    Some(stored) if stored.lease == Some(leased.lease) => match settlement {
                        Settlement::Done => Op::Remove,
                        Settlement::Keep => Op::Put(StoredToken { lease: None, ..stored }),
                    },
                    _ => Op::Nop,
                }
            })
            .await;
    }

    /// Stores `token`, replacing a stored one only if `overwrite`; returns whether it was kept.
    async fn put(&self, key: TokenKey, token: StoredToken, overwrite: bool) -> bool {
        if overwrite {
            self.cache.insert(key, token).await;
            true
        } else {
            let now = Instant::now();
            let result = self
                .cache
                .entry(key)
                .and_compute_with(|entry| async move {
                    match entry {
                        Some(entry) if entry.value().is_live(now) => Op::Nop,
                        _ => Op::Put(token),
                    }
                })
                .await;
            matches!(result, CompResult::Inserted(_) | CompResult::ReplacedWith(_))
        }
    }
}

/// Expires each token at its own deadline.
struct UntilDeadline;

impl Expiry<TokenKey, StoredToken> for UntilDeadline {
    fn expire_after_create(&self, _: &TokenKey, token: &StoredToken, now: Instant) -> Option<Duration> {
        Some(token.expires_at.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        key: &TokenKey,
        token: &StoredToken,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, token, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn stored(token: &str, ttl: Duration) -> StoredToken {
        StoredToken::new(token.parse().unwrap(), 0, ttl)
    }

    #[tokio::test]
    async fn last_click_replaces_first_click_keeps() {
        let last = TokenStore::new(10, Attribution::LastClick);
        assert!(last.insert(1, stored("first", MINUTE)).await);
        assert!(last.insert(1, stored("second", MINUTE)).await);
        assert_eq!(last.get(1).await.unwrap().token.as_str(), "second");

        let first = TokenStore::new(10, Attribution::FirstClick);
        assert!(first.insert(1, stored("first", MINUTE)).await);
        assert!(!first.insert(1, stored("second", MINUTE)).await);
        assert_eq!(first.get(1).await.unwrap().token.as_str(), "first");
    }

    #[tokio::test]
    async fn a_lease_is_exclusive_and_keeps_the_token_stored() {
        let store = TokenStore::new(10, Attribution::LastClick);
        store.insert(7, stored("abc", MINUTE)).await;
        let leased = store.lease(7, MINUTE).await.unwrap();
        assert_eq!(leased.token.as_str(), "abc");
        assert!(store.lease(7, MINUTE).await.is_none(), "a second delivery must not get it");
        assert_eq!(store.get(7).await.unwrap().token.as_str(), "abc", "still stored while leased");
        store.settle(leased, Settlement::Keep).await;
        let again = store.lease(7, MINUTE).await.unwrap();
        store.settle(again, Settlement::Done).await;
        assert!(store.get(7).await.is_none());
        assert!(store.lease(7, MINUTE).await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_leases_give_the_token_once() {
        let store = TokenStore::new(10, Attribution::LastClick);
        store.insert(7, stored("abc", MINUTE)).await;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let store = store.clone();
            tasks.spawn(async move { store.lease(7, MINUTE).await.is_some() });
        }
        let leases = tasks.join_all().await.into_iter().filter(|leased| *leased).count();
        assert_eq!(leases, 1);
    }

    #[tokio::test]
    async fn an_expired_lease_frees_the_token() {
        let store = TokenStore::new(10, Attribution::LastClick);
        store.insert(7, stored("abc", MINUTE)).await;
        let stale = store.lease(7, Duration::from_millis(20)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        let fresh = store.lease(7, MINUTE).await.expect("the dead delivery's lease ran out");
        // The stale delivery settling late changes nothing.
        store.settle(stale, Settlement::Done).await;
        assert!(store.get(7).await.is_some());
        store.settle(fresh, Settlement::Done).await;
        assert!(store.get(7).await.is_none());
    }

    #[tokio::test]
    async fn a_newer_click_survives_the_older_tokens_settlement() {
        for settlement in [Settlement::Done, Settlement::Keep] {
            let store = TokenStore::new(10, Attribution::LastClick);
            store.insert(7, stored("old", MINUTE)).await;
            let leased = store.lease(7, MINUTE).await.unwrap();
            store.insert(7, stored("new", MINUTE)).await;
            store.settle(leased, settlement).await;
            assert_eq!(store.get(7).await.unwrap().token.as_str(), "new");
        }
    }

    #[tokio::test]
    async fn first_click_keeps_a_leased_token() {
        let store = TokenStore::new(10, Attribution::FirstClick);
        store.insert(7, stored("old", MINUTE)).await;
        let leased = store.lease(7, MINUTE).await.unwrap();
        assert!(!store.insert(7, stored("new", MINUTE)).await);
        store.settle(leased, Settlement::Keep).await;
        assert_eq!(store.get(7).await.unwrap().token.as_str(), "old");
    }

    #[tokio::test]
    async fn expired_tokens_vanish_and_cannot_be_leased() {
        let store = TokenStore::new(10, Attribution::FirstClick);
        store.insert(1, stored("abc", Duration::from_millis(30))).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(store.get(1).await.is_none());
        assert!(store.lease(1, MINUTE).await.is_none());
        assert!(store.insert(1, stored("new", MINUTE)).await, "an expired first click does not block");
    }
}
