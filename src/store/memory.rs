//! [`MokaTokenStore`]: the embedded token store, a moka cache inside the process.

use std::{
    collections::HashMap,
    sync::{
        Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use moka::{
    future::Cache,
    ops::compute::{CompResult, Op},
    policy::EvictionPolicy,
};

use super::{LeaseId, Leased, PendingToken, Settlement, StoreError, TokenKey, TokenStore, async_trait};
use crate::{
    config::{Attribution, ProductId},
    sync::lock,
    token::SovReqToken,
};

/// How often expired tokens are swept out of the cache, at the most.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Leases held at once beyond which the run-out ones are dropped: deliveries settle their own,
/// so only those that died leave one behind.
const LEASES_BEFORE_CLEANUP: usize = 1024;

/// The embedded token store: a moka cache in this process, bounded by `max_tokens` (beyond it
/// the least recently used tokens go first), each token expiring at its own deadline. The
/// default of [`SovendusLayer::new`](crate::SovendusLayer::new). It does not survive a restart
/// and is not shared between instances: use a shared store for those.
///
/// A stored token is immutable: its token, its product and its deadline, fixed at capture (a
/// failed send does not extend its life). An expired token is gone the instant its deadline
/// passes; its memory is reclaimed by a sweep every few minutes, or by eviction. Leases, held
/// only while a conversion is being sent, live in a small map of their own.
///
/// It holds a token in less than 400 bytes, the token included (`benches/memory.rs`): the
/// cache's own bookkeeping, the key, the token, its deadline as nanoseconds, and its product as
/// a position in the store's own list of the product IDs it has seen (which never reorders).
///
/// ```
/// use tower_sovendus::{SovendusConfig, SovendusLayer, store::MokaTokenStore};
///
/// let config = SovendusConfig::new("product-a", "XXXX-XXXXX")?;
/// let layer = SovendusLayer::with_store(config, MokaTokenStore::new(10_000));
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct MokaTokenStore {
    captures: Cache<TokenKey, Captured>,
    /// Every product ID stored so far, in the order first seen: [`Captured::product`] points
    /// into it.
    products: RwLock<Vec<ProductId>>,
    /// Deadlines count nanoseconds from here.
    epoch: Instant,
    /// When the last sweep started, in nanoseconds from `epoch`.
    last_sweep: AtomicU64,
    leases: Mutex<HashMap<TokenKey, Lease>>,
    next_lease: AtomicU64,
}

/// A captured token, waiting for its order.
#[derive(Debug, Clone)]
struct Captured {
    token: SovReqToken,
    /// When the token stops counting, in nanoseconds from the store's epoch.
    expires_at: u64,
    /// Where its product ID stands in the store's list.
    product: u16,
}

/// A delivery's hold on a stored token: while it lasts, no other delivery takes the token. It
/// runs out on its own, so a delivery that died cannot hold a token forever.
#[derive(Debug, Clone)]
struct Lease {
    id: LeaseId,
    until: Instant,
    /// The token leased: a newer click on the same key is not the one being sent.
    token: SovReqToken,
}

impl MokaTokenStore {
    /// A store holding at most `max_tokens` tokens.
    pub fn new(max_tokens: u64) -> Self {
        let captures =
            Cache::builder().max_capacity(max_tokens).eviction_policy(EvictionPolicy::lru()).build();
        Self {
            captures,
            products: RwLock::default(),
            epoch: Instant::now(),
            last_sweep: AtomicU64::new(0),
            leases: Mutex::default(),
            next_lease: AtomicU64::new(1),
        }
    }

    /// Nanoseconds from the epoch to `instant`, saturating.
    fn nanos(&self, instant: Instant) -> u64 {
        u64::try_from(instant.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The live token stored for `key`, with its product.
    async fn live(&self, key: TokenKey) -> Option<PendingToken> {
        let captured = self.captures.get(&key).await?;
        if captured.expires_at <= self.nanos(Instant::now()) {
            return None;
        }
        let products = self.products.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let product = products.get(usize::from(captured.product))?.clone();
        Some(PendingToken { token: captured.token, product })
    }

    /// Where `product` stands in the store's list, adding it if it is new.
    fn product_index(&self, product: &ProductId) -> Result<u16, StoreError> {
        let position = |products: &[ProductId]| products.iter().position(|known| known == product);
        let known = position(&self.products.read().unwrap_or_else(|poisoned| poisoned.into_inner()));
        let index = match known {
            Some(index) => index,
            None => {
                let mut products = self.products.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                position(&products).unwrap_or_else(|| {
                    products.push(product.clone());
                    products.len() - 1
                })
            }
        };
        u16::try_from(index).map_err(|_| StoreError::backend(TooManyProducts))
    }

    /// Sweeps the expired tokens out, on a task of its own, if the last sweep is long enough
    /// ago.
    fn sweep_now_and_then(&self) {
        let now = self.nanos(Instant::now());
        let last = self.last_sweep.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= u64::try_from(SWEEP_INTERVAL.as_nanos()).unwrap_or(u64::MAX);
        if !due || self.last_sweep.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        tokio::spawn(sweep(self.captures.clone(), now));
    }
}

/// Removes the tokens expired at `now` (nanoseconds from the store's epoch).
async fn sweep(captures: Cache<TokenKey, Captured>, now: u64) {
    let expired: Vec<TokenKey> =
        captures.iter().filter(|(_, captured)| captured.expires_at <= now).map(|(key, _)| *key).collect();
    for key in &expired {
        captures.invalidate(key).await;
    }
    tracing::debug!(swept = expired.len(), "swept expired Sovendus tokens");
}

/// More distinct product IDs than a store can tell apart.
#[derive(Debug, thiserror::Error)]
#[error("the token store holds the most distinct product IDs it can")]
struct TooManyProducts;

#[async_trait]
impl TokenStore for MokaTokenStore {
    async fn insert(
        &self,
        key: TokenKey,
        pending: PendingToken,
        ttl: Duration,
        attribution: Attribution,
    ) -> Result<bool, StoreError> {
        self.sweep_now_and_then();
        let now = self.nanos(Instant::now());
        let expires_at = now.saturating_add(u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX));
        let captured =
            Captured { token: pending.token, expires_at, product: self.product_index(&pending.product)? };
        if attribution == Attribution::LastClick {
            self.captures.insert(key, captured).await;
            // The new click is free, whoever was sending the old one.
            lock(&self.leases).remove(&key);
            return Ok(true);
        }
        let result = self
            .captures
            .entry(key)
            .and_compute_with(|entry| async move {
                match entry {
                    Some(entry) if entry.value().expires_at > now => Op::Nop,
                    _ => Op::Put(captured),
                }
            })
            .await;
        Ok(matches!(result, CompResult::Inserted(_) | CompResult::ReplacedWith(_)))
    }

    async fn get(&self, key: TokenKey) -> Result<Option<PendingToken>, StoreError> {
        Ok(self.live(key).await)
    }

    async fn lease(&self, key: TokenKey, duration: Duration) -> Result<Option<Leased>, StoreError> {
        let Some(pending) = self.live(key).await else { return Ok(None) };
        let now = Instant::now();
        let mut leases = lock(&self.leases);
        if leases.get(&key).is_some_and(|lease| lease.until > now && lease.token == pending.token) {
            return Ok(None);
        }
        if leases.len() >= LEASES_BEFORE_CLEANUP {
            leases.retain(|_, lease| lease.until > now);
        }
        let id = LeaseId::from(u128::from(self.next_lease.fetch_add(1, Ordering::Relaxed)));
        leases.insert(key, Lease { id, until: now + duration, token: pending.token.clone() });
        Ok(Some(Leased { key, pending, lease: id }))
    }

    async fn settle(&self, leased: &Leased, settlement: Settlement) -> Result<(), StoreError> {
        let lease = {
            let mut leases = lock(&self.leases);
            let held = leases.get(&leased.key).is_some_and(|lease| lease.id == leased.lease);
            if held { leases.remove(&leased.key) } else { None }
        };
        let Some(lease) = lease else { return Ok(()) };
        if settlement == Settlement::Done {
            // Only the token that was leased: a newer click stays.
            self.captures
                .entry(leased.key)
                .and_compute_with(|entry| async move {
                    match entry {
                        Some(entry) if entry.value().token == lease.token => Op::Remove,
                        _ => Op::Nop,
                    }
                })
                .await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sweep_removes_expired_tokens_only() {
        let store = MokaTokenStore::new(10);
        let product = ProductId::new("product-a").unwrap();
        for (key, ttl) in
            [(1, Duration::from_millis(10)), (2, Duration::from_millis(10)), (3, Duration::from_secs(60))]
        {
            let pending =
                PendingToken { token: format!("token-{key}").parse().unwrap(), product: product.clone() };
            store.insert(key, pending, ttl, Attribution::LastClick).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(store.get(1).await.unwrap(), None, "expired, swept or not");
        sweep(store.captures.clone(), store.nanos(Instant::now())).await;
        store.captures.run_pending_tasks().await;
        assert_eq!(store.captures.entry_count(), 1);
        assert!(store.get(3).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn products_keep_their_ids_in_the_order_first_seen() {
        let store = MokaTokenStore::new(10);
        let (a, b) = (ProductId::new("product-a").unwrap(), ProductId::new("product-b").unwrap());
        assert_eq!(store.product_index(&b).unwrap(), 0);
        assert_eq!(store.product_index(&a).unwrap(), 1);
        assert_eq!(store.product_index(&b).unwrap(), 0);
    }
}
