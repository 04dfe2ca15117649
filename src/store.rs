//! [`MokaTokenStore`]: an embedded token store built on a moka TTL cache inside the process.

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

use crate::{
    SovReqToken,
    config::Attribution,
    token_store::{LeaseId, Leased, PendingToken, Settlement, StoreFuture, TokenKey, TokenStore},
};

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
    id: LeaseId,
    until: Instant,
}

/// An embedded token store built on moka: a cache in this process, each token expiring at its
/// own deadline. It does not survive a restart and is not shared between instances.
///
/// [`CompactTokenStore`](crate::CompactTokenStore), the default of
/// [`SovendusLayer::new`](crate::SovendusLayer::new), holds a token in less than half the
/// memory and stores it faster (see `BENCHMARKS.md`); this one evicts by moka's policy (the
/// least used go first) instead of the oldest capture.
///
/// ```
/// use tower_sovendus::{MokaTokenStore, SovendusConfig, SovendusLayer};
///
/// let config = SovendusConfig::new("product-a", "XXXX-XXXXX")?;
/// let layer = SovendusLayer::with_store(config, MokaTokenStore::new(10_000));
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MokaTokenStore {
    cache: Cache<TokenKey, StoredToken>,
    next_lease: Arc<AtomicU64>,
}

impl MokaTokenStore {
    /// A store holding at most `max_tokens` tokens (the least used go first beyond it).
    ///
    /// See [`MokaTokenStore`] for an example.
    pub fn new(max_tokens: u64) -> Self {
        let cache = Cache::builder().max_capacity(max_tokens).expire_after(UntilDeadline).build();
        Self { cache, next_lease: Arc::new(AtomicU64::new(1)) }
    }

    /// Stores a freshly captured token; returns whether it was kept (under first-click, an
    /// existing token wins).
    async fn insert(&self, key: TokenKey, token: StoredToken, attribution: Attribution) -> bool {
        self.put(key, token, attribution == Attribution::LastClick).await
    }

    /// The token stored for `key`, left in place.
    async fn get(&self, key: TokenKey) -> Option<StoredToken> {
        self.cache.get(&key).await.filter(|stored| stored.is_live(Instant::now()))
    }

    /// Leases the token for `key` for `duration`, unless another delivery holds it. Atomic:
    /// of concurrent callers, one gets it. The token stays stored meanwhile.
    async fn lease(&self, key: TokenKey, duration: Duration) -> Option<Leased> {
        let id = LeaseId::from(u128::from(self.next_lease.fetch_add(1, Ordering::Relaxed)));
        let lease = Lease { id, until: Instant::now() + duration };
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
            pending: PendingToken { token: stored.token, product: stored.product },
            lease: id,
        })
    }

    /// Ends a lease: the token goes ([`Settlement::Done`]) or is freed for the next delivery
    /// ([`Settlement::Keep`]). A token captured since (last-click) is left alone.
    async fn settle(&self, leased: &Leased, settlement: Settlement) {
        self.cache
            .entry(leased.key)
            .and_compute_with(|entry| async move {
                match entry.map(moka::Entry::into_value) {
                    Some(stored) if stored.lease.is_some_and(|lease| lease.id == leased.lease) => {
                        match settlement {
                            Settlement::Done => Op::Remove,
                            Settlement::Keep => Op::Put(StoredToken { lease: None, ..stored }),
                        }
                    }
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

impl TokenStore for MokaTokenStore {
    fn insert(
        &self,
        key: TokenKey,
        pending: PendingToken,
        ttl: Duration,
        attribution: Attribution,
    ) -> StoreFuture<'_, bool> {
        let token = StoredToken::new(pending.token, pending.product, ttl);
        Box::pin(async move { Ok(self.insert(key, token, attribution).await) })
    }

    fn get(&self, key: TokenKey) -> StoreFuture<'_, Option<PendingToken>> {
        Box::pin(async move {
            let stored = self.get(key).await;
            Ok(stored.map(|stored| PendingToken { token: stored.token, product: stored.product }))
        })
    }

    fn lease(&self, key: TokenKey, duration: Duration) -> StoreFuture<'_, Option<Leased>> {
        Box::pin(async move { Ok(self.lease(key, duration).await) })
    }

    fn settle<'a>(&'a self, leased: &'a Leased, settlement: Settlement) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.settle(leased, settlement).await;
            Ok(())
        })
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
