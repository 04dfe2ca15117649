//! [`MokaTokenStore`]: the embedded token store, a moka TTL cache inside the process.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use moka::{
    Expiry,
    future::Cache,
    ops::compute::{CompResult, Op},
};

use super::{LeaseId, Leased, PendingToken, Settlement, StoreError, TokenKey, TokenStore, async_trait};
use crate::{config::Attribution, sync::lock};

/// Leases held at once beyond which the run-out ones are dropped: deliveries settle their own,
/// so only those that died leave one behind.
const LEASES_BEFORE_CLEANUP: usize = 1024;

/// The embedded token store: a moka cache in this process, each token expiring at its own
/// deadline; beyond `max_tokens`, the least recently used tokens go first. The default of
/// [`SovendusLayer::new`](crate::SovendusLayer::new). It does not survive a restart and is
/// not shared between instances: use a shared store for those.
///
/// A stored token is immutable: its product, its token and its deadline, fixed at capture (a
/// failed send does not extend its life). Leases, held only while a conversion is being sent,
/// live in a small map of their own.
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
    leases: Mutex<HashMap<TokenKey, Lease>>,
    next_lease: AtomicU64,
}

/// A captured token, waiting for its order.
#[derive(Debug, Clone)]
struct Captured {
    pending: PendingToken,
    expires_at: Instant,
}

/// A delivery's hold on a stored token: while it lasts, no other delivery takes the token. It
/// runs out on its own, so a delivery that died cannot hold a token forever.
#[derive(Debug, Clone)]
struct Lease {
    id: LeaseId,
    until: Instant,
    /// The token leased: a newer click on the same key is not the one being sent.
    pending: PendingToken,
}

impl MokaTokenStore {
    /// A store holding at most `max_tokens` tokens.
    pub fn new(max_tokens: u64) -> Self {
        let captures = Cache::builder().max_capacity(max_tokens).expire_after(UntilDeadline).build();
        Self { captures, leases: Mutex::default(), next_lease: AtomicU64::new(1) }
    }
}

#[async_trait]
impl TokenStore for MokaTokenStore {
    async fn insert(
        &self,
        key: TokenKey,
        pending: PendingToken,
        ttl: Duration,
        attribution: Attribution,
    ) -> Result<bool, StoreError> {
        let captured = Captured { pending, expires_at: Instant::now() + ttl };
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
                    Some(_) => Op::Nop,
                    None => Op::Put(captured),
                }
            })
            .await;
        Ok(matches!(result, CompResult::Inserted(_)))
    }

    async fn get(&self, key: TokenKey) -> Result<Option<PendingToken>, StoreError> {
        Ok(self.captures.get(&key).await.map(|captured| captured.pending))
    }

    async fn lease(&self, key: TokenKey, duration: Duration) -> Result<Option<Leased>, StoreError> {
        let Some(captured) = self.captures.get(&key).await else { return Ok(None) };
        let now = Instant::now();
        let mut leases = lock(&self.leases);
        if leases.get(&key).is_some_and(|lease| lease.until > now && lease.pending == captured.pending) {
            return Ok(None);
        }
        if leases.len() >= LEASES_BEFORE_CLEANUP {
            // Deliveries that died without settling leave their lease behind.
            leases.retain(|_, lease| lease.until > now);
        }
        let id = LeaseId::from(u128::from(self.next_lease.fetch_add(1, Ordering::Relaxed)));
        let pending = captured.pending;
        leases.insert(key, Lease { id, until: now + duration, pending: pending.clone() });
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
                        Some(entry) if entry.value().pending == lease.pending => Op::Remove,
                        _ => Op::Nop,
                    }
                })
                .await;
        }
        Ok(())
    }
}

/// Expires each token at its own deadline.
struct UntilDeadline;

impl Expiry<TokenKey, Captured> for UntilDeadline {
    fn expire_after_create(&self, _: &TokenKey, captured: &Captured, now: Instant) -> Option<Duration> {
        Some(captured.expires_at.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        key: &TokenKey,
        captured: &Captured,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, captured, now)
    }
}
