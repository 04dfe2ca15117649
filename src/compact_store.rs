//! [`CompactTokenStore`]: the embedded token store, sharded hash maps built for a small
//! footprint per token.

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use foldhash::HashMap;

use crate::{
    SovReqToken,
    config::Attribution,
    sync::lock,
    token_store::{LeaseId, Leased, PendingToken, Settlement, StoreFuture, TokenKey, TokenStore},
};

/// Stores holding fewer tokens than this per shard use fewer shards, so that the bound is
/// spread over shards large enough to evict fairly.
const TOKENS_PER_SHARD: u64 = 4096;
/// The most shards a store splits into: plenty to keep two cores or twenty from queueing on
/// one lock.
const MAX_SHARDS: u64 = 64;
/// Expired tokens reclaimed at most per insert, so that no capture pays for a long backlog.
const SWEEP_PER_INSERT: usize = 4;
/// A shard's queue of captures is cleared of stale entries once it holds twice as many as the
/// shard has tokens, or as this many: each clean-up, O(queue), follows as many captures.
const MIN_CAPTURES_BEFORE_CLEANUP: usize = 32;
/// A shard gives memory back once it holds fewer than half the tokens it has held since it was
/// last sized, and only if it held at least this many: smaller tables are not worth a rehash.
const MIN_PEAK_TO_SHRINK: usize = 256;

/// The embedded token store: tokens in sharded hash maps inside the process, each token
/// expiring exactly at its own deadline. The default of
/// [`SovendusLayer::new`](crate::SovendusLayer::new); it does not survive a restart and is not
/// shared between instances.
///
/// It holds a token in about 185 bytes, the token included (see `BENCHMARKS.md`): the key, the
/// token, a deadline in nanoseconds and the product, plus one entry in a queue of captures.
/// Every capture reclaims a few expired tokens from the front of that queue, and a shard left
/// with less than half the tokens of its peak sizes its tables down, so memory follows the
/// live tokens, after a spike too; beyond `max_tokens` the oldest captures go first. A token
/// is expired the instant its deadline passes, whether or not it has been reclaimed yet.
/// Leases, held only while a conversion is being sent, live in a small map of their own.
///
/// [`MokaTokenStore`](crate::MokaTokenStore) is the alternative built on moka.
///
/// ```
/// use tower_sovendus::{CompactTokenStore, SovendusConfig, SovendusLayer};
///
/// let config = SovendusConfig::new("product-a", "XXXX-XXXXX")?;
/// let layer = SovendusLayer::with_store(config, CompactTokenStore::new(10_000));
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct CompactTokenStore {
    shards: Box<[Mutex<Shard>]>,
    /// The most tokens one shard holds.
    shard_capacity: usize,
    /// Deadlines count nanoseconds from here.
    epoch: Instant,
    next_lease: AtomicU64,
}

/// A point in time as nanoseconds since the store's epoch: 8 bytes where an `Instant` takes 16.
type Nanos = u64;

/// `duration` in nanoseconds, saturating (at about 584 years).
fn nanos(duration: Duration) -> Nanos {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// One shard: its tokens, their leases, and the order they were captured in.
///
/// The maps hash with foldhash rather than the standard SipHash, at a tenth of the cost on a
/// 128-bit key: keys are random numbers the server draws, never chosen by a visitor, so there
/// is no flooding to defend against.
#[derive(Debug, Default)]
struct Shard {
    tokens: HashMap<TokenKey, Record>,
    leases: HashMap<TokenKey, Lease>,
    /// Captures, oldest first: the key and the deadline it was stored with. An entry whose
    /// deadline no longer matches the stored token's is stale (the key was captured again
    /// since, or removed) and is dropped when it comes up.
    captures: VecDeque<(TokenKey, Nanos)>,
    /// The most tokens held since the tables were last sized. Tracked here because the map's
    /// own `capacity()` shrinks with its tombstones, and so never tells that a spike is over.
    peak: usize,
}

/// A captured token, waiting for its order.
#[derive(Debug)]
struct Record {
    token: SovReqToken,
    /// When the token stops counting, fixed at capture: a failed send does not extend its
    /// life.
    expires_at: Nanos,
    /// Index into the configured product IDs.
    product: u8,
}

/// A delivery's hold on a stored token: while it lasts, no other delivery takes the token.
/// It runs out on its own, so a delivery that died cannot hold a token forever.
#[derive(Debug, Clone, Copy)]
struct Lease {
    id: u64,
    until: Nanos,
}

impl CompactTokenStore {
    /// A store holding at most `max_tokens` tokens (the oldest captures go first beyond it).
    ///
    /// See [`CompactTokenStore`] for an example.
    pub fn new(max_tokens: u64) -> Self {
        let max_tokens = max_tokens.max(1);
        let shards = (max_tokens / TOKENS_PER_SHARD).next_power_of_two().min(MAX_SHARDS);
        let shard_capacity = usize::try_from(max_tokens.div_ceil(shards)).unwrap_or(usize::MAX);
        Self {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            shard_capacity,
            epoch: Instant::now(),
            next_lease: AtomicU64::new(1),
        }
    }

    fn now(&self) -> Nanos {
        nanos(self.epoch.elapsed())
    }

    fn shard(&self, key: TokenKey) -> &Mutex<Shard> {
        // Keys are 128 random bits: their low bits spread keys evenly. The count is a power
        // of two, so the mask picks a shard.
        let mask = self.shards.len() - 1;
        &self.shards[(key as usize) & mask]
    }

    fn insert(&self, key: TokenKey, pending: PendingToken, ttl: Duration, attribution: Attribution) -> bool {
        // One clock read: the deadline counts from the same moment as the sweep.
        let now = self.now();
        let expires_at = now.saturating_add(nanos(ttl));
        let mut shard = lock(self.shard(key));
        shard.reclaim_expired(now, SWEEP_PER_INSERT);
        let stored = shard.tokens.get(&key);
        if attribution == Attribution::FirstClick && stored.is_some_and(|stored| stored.is_live(now)) {
            return false;
        }
        if stored.is_none() {
            shard.make_room(self.shard_capacity);
        }
        // The new token is free, even if the one it replaces was leased.
        shard.leases.remove(&key);
        shard.tokens.insert(key, Record { token: pending.token, expires_at, product: pending.product });
        shard.captures.push_back((key, expires_at));
        shard.peak = shard.peak.max(shard.tokens.len());
        shard.drop_stale_captures();
        true
    }

    fn get(&self, key: TokenKey) -> Option<PendingToken> {
        let now = self.now();
        lock(self.shard(key)).live(key, now).map(Record::pending)
    }

    fn lease(&self, key: TokenKey, duration: Duration) -> Option<Leased> {
        let now = self.now();
        let id = self.next_lease.fetch_add(1, Ordering::Relaxed);
        let lease = Lease { id, until: now.saturating_add(nanos(duration)) };
        let mut shard = lock(self.shard(key));
        let pending = shard.live(key, now)?.pending();
        if shard.leases.get(&key).is_some_and(|held| held.until > now) {
            return None;
        }
        shard.leases.insert(key, lease);
        Some(Leased { key, pending, lease: LeaseId::from(u128::from(id)) })
    }

    fn settle(&self, leased: &Leased, settlement: Settlement) {
        let mut shard = lock(self.shard(leased.key));
        let holds =
            shard.leases.get(&leased.key).is_some_and(|held| u128::from(held.id) == leased.lease.get());
        if !holds {
            return;
        }
        shard.leases.remove(&leased.key);
        if settlement == Settlement::Done {
            shard.tokens.remove(&leased.key);
            shard.release_after_spike();
        }
    }
}

impl Shard {
    /// The token stored for `key`, unless it has expired.
    fn live(&self, key: TokenKey, now: Nanos) -> Option<&Record> {
        self.tokens.get(&key).filter(|stored| stored.is_live(now))
    }

    /// Removes the expired tokens among the `limit` oldest captures.
    fn reclaim_expired(&mut self, now: Nanos, limit: usize) {
        for _ in 0..limit {
            match self.captures.front() {
                Some(&(_, expires_at)) if expires_at <= now => self.pop_oldest(),
                _ => break,
            }
        }
        self.release_after_spike();
    }

    /// Once the shard holds fewer than half the tokens it held at its peak, sizes its tables
    /// to what it holds now, so that the memory a spike of captures took comes back as its
    /// tokens expire or are sent. Each shrink follows at least half a peak's removals, so its
    /// rehash costs O(1) per removal over time.
    ///
    /// Reclaiming alone, four expired tokens per capture, ends a spike with a quarter of it
    /// live (the captures that reclaimed it): the threshold is a half so that this case shrinks.
    fn release_after_spike(&mut self) {
        let held = self.tokens.len();
        if self.peak < MIN_PEAK_TO_SHRINK || held >= self.peak / 2 {
            return;
        }
        self.tokens.shrink_to(held);
        self.captures.shrink_to(self.captures.len());
        self.leases.shrink_to(self.leases.len());
        self.peak = held;
    }

    /// Before a new key is stored: drops the oldest captures while the shard is full (the
    /// expired ones come first, having been captured first under one TTL).
    fn make_room(&mut self, capacity: usize) {
        while self.tokens.len() >= capacity && !self.captures.is_empty() {
            self.pop_oldest();
        }
    }

    /// Drops the oldest capture, and its token and lease unless the key was captured again
    /// since.
    fn pop_oldest(&mut self) {
        let Some((key, expires_at)) = self.captures.pop_front() else { return };
        if self.tokens.get(&key).is_some_and(|stored| stored.expires_at == expires_at) {
            self.tokens.remove(&key);
            self.leases.remove(&key);
        }
    }

    /// Keeps the queue of captures near the number of tokens: captures of the same key again
    /// (last-click) and settled tokens leave stale entries behind.
    fn drop_stale_captures(&mut self) {
        if self.captures.len() <= MIN_CAPTURES_BEFORE_CLEANUP.max(self.tokens.len().saturating_mul(2)) {
            return;
        }
        let tokens = &self.tokens;
        self.captures.retain(|(key, expires_at)| {
            tokens.get(key).is_some_and(|stored| stored.expires_at == *expires_at)
        });
        if self.captures.len() < self.captures.capacity() / 4 {
            self.captures.shrink_to_fit();
        }
    }
}

impl Record {
    /// Whether the token still counts at `now`: it is expired the instant its deadline passes,
    /// reclaimed or not.
    fn is_live(&self, now: Nanos) -> bool {
        self.expires_at > now
    }

    fn pending(&self) -> PendingToken {
        PendingToken { token: self.token.clone(), product: self.product }
    }
}

impl TokenStore for CompactTokenStore {
    fn insert(
        &self,
        key: TokenKey,
        pending: PendingToken,
        ttl: Duration,
        attribution: Attribution,
    ) -> StoreFuture<'_, bool> {
        Box::pin(async move { Ok(self.insert(key, pending, ttl, attribution)) })
    }

    fn get(&self, key: TokenKey) -> StoreFuture<'_, Option<PendingToken>> {
        Box::pin(async move { Ok(self.get(key)) })
    }

    fn lease(&self, key: TokenKey, duration: Duration) -> StoreFuture<'_, Option<Leased>> {
        Box::pin(async move { Ok(self.lease(key, duration)) })
    }

    fn settle<'a>(&'a self, leased: &'a Leased, settlement: Settlement) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.settle(leased, settlement);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(n: u32) -> PendingToken {
        PendingToken { token: SovReqToken::new(format!("token-{n}")).expect("a valid token"), product: 0 }
    }

    fn stored_tokens(store: &CompactTokenStore) -> usize {
        store.shards.iter().map(|shard| lock(shard).tokens.len()).sum()
    }

    #[test]
    fn a_stored_token_takes_a_48_byte_slot_and_a_32_byte_capture() {
        // The memory target (BENCHMARKS.md) rests on these sizes; the token's text is on the heap.
        assert_eq!(std::mem::size_of::<(TokenKey, Record)>(), 48);
        assert_eq!(std::mem::size_of::<(TokenKey, Nanos)>(), 32);
    }

    #[test]
    fn holds_at_most_max_tokens_and_drops_the_oldest_first() {
        let store = CompactTokenStore::new(5);
        for key in 0..12 {
            assert!(store.insert(key, pending(12), Duration::from_secs(60), Attribution::LastClick));
        }
        assert_eq!(stored_tokens(&store), 5);
        assert!((0..7).all(|key| store.get(key).is_none()), "the oldest went first");
        assert!((7..12).all(|key| store.get(key).is_some()));
    }

    #[test]
    fn a_large_store_spreads_its_bound_over_shards() {
        let store = CompactTokenStore::new(1_000_000);
        assert_eq!(store.shards.len(), 64);
        assert!(store.shard_capacity * store.shards.len() >= 1_000_000);
        for key in 0..100_000 {
            store.insert(key * 7919, pending(1), Duration::from_secs(60), Attribution::LastClick);
        }
        assert_eq!(stored_tokens(&store), 100_000, "far below the bound, nothing is evicted");
    }

    #[test]
    fn captures_reclaim_expired_tokens() {
        let store = CompactTokenStore::new(1_000);
        for key in 0..100 {
            store.insert(key, pending(1), Duration::from_millis(10), Attribution::LastClick);
        }
        std::thread::sleep(Duration::from_millis(30));
        for key in 100..200 {
            store.insert(key, pending(1), Duration::from_secs(60), Attribution::LastClick);
        }
        assert_eq!(stored_tokens(&store), 100, "only the live tokens are held");
    }

    #[test]
    fn memory_taken_by_a_spike_comes_back_as_its_tokens_expire() {
        // One shard (fewer than 4,096 tokens), so that its tables can be read directly.
        let store = CompactTokenStore::new(4_000);
        assert_eq!(store.shards.len(), 1);
        let table = || {
            let shard = lock(&store.shards[0]);
            (shard.tokens.len(), shard.tokens.capacity(), shard.captures.capacity())
        };
        for key in 0..3_000 {
            store.insert(key, pending(1), Duration::from_millis(20), Attribution::LastClick);
        }
        let (_, spike_room, spike_queue) = table();
        assert!(spike_room >= 3_000 && spike_queue >= 3_000, "{spike_room} {spike_queue}");
        std::thread::sleep(Duration::from_millis(50));

        // Everyday traffic after the spike: each capture reclaims four expired tokens, so the
        // spike is gone after 750 captures, with 750 tokens live.
        for key in 10_000..11_000 {
            store.insert(key, pending(2), Duration::from_secs(60), Attribution::LastClick);
        }
        let (held, room, queue) = table();
        assert_eq!(held, 1_000);
        // Without giving memory back, the map keeps the spike's 4,096 buckets (room for about
        // 2,700 tokens once its tombstones are counted out) and the queue its 3,000 places.
        assert!(room < 2_000, "the map still has room for {room} tokens, holding {held}");
        assert!(queue < 2_000, "the queue still has room for {queue} captures");
        assert!((10_000..11_000).all(|key| store.get(key).is_some()), "no live token is lost");
        assert!((0..3_000).all(|key| store.get(key).is_none()));
    }

    #[test]
    fn settled_tokens_give_their_memory_back() {
        let store = CompactTokenStore::new(4_000);
        for key in 0..1_000 {
            store.insert(key, pending(1), Duration::from_secs(60), Attribution::LastClick);
        }
        for key in 0..900 {
            let leased = store.lease(key, Duration::from_secs(5)).expect("a live token");
            store.settle(&leased, Settlement::Done);
        }
        let shard = lock(&store.shards[0]);
        assert_eq!(shard.tokens.len(), 100);
        assert!(shard.tokens.capacity() < 500, "room for {} tokens", shard.tokens.capacity());
    }

    #[test]
    fn captures_of_the_same_key_keep_the_queue_bounded() {
        let store = CompactTokenStore::new(10);
        for _ in 0..1_000 {
            store.insert(3, pending(1), Duration::from_secs(60), Attribution::LastClick);
        }
        let captures: usize = store.shards.iter().map(|shard| lock(shard).captures.len()).sum();
        assert!(captures <= MIN_CAPTURES_BEFORE_CLEANUP, "{captures} captures queued for one token");
        assert_eq!(stored_tokens(&store), 1);
    }
}
