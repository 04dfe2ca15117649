//! [`MokaTokenStore`]: the embedded store, in the process: a moka cache for the captures, and a
//! map that never evicts for the owed conversions.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Mutex, RwLock,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use moka::{
    future::Cache,
    ops::compute::{CompResult, Op},
    policy::EvictionPolicy,
};

use super::{
    Capture, CaptureStore, Cause, Conversion, ConversionCounts, ConversionId, ConversionState,
    ConversionStore, DailyCounts, Inspection, Lease, LeaseId, ListOrder, ListQuery, NewCapture,
    NewConversion, Outbox, Settlement, StoreError, Taken, TokenKey, VoidOutcome, async_trait, listing,
    records::to_millis,
};
use crate::{
    config::{Attribution, DEFAULT_QUEUE_CAPACITY},
    ids::SovReqToken,
    ids::{OrderRef, ProductId},
    sync::lock,
};

/// How often expired captures are swept out of the cache, at the most.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// The embedded store: everything in this process, lost on a restart. For tests, and for
/// single-instance shops that accept losing their captures and owed conversions on a restart;
/// others use a durable store (SQL or Redis). The default of
/// [`SovendusLayer::new`](crate::SovendusLayer::new).
///
/// **Captures** live in a moka cache bounded by `max_tokens`, beyond which the least recently
/// used go first, each expiring at its own deadline (gone the instant it passes, its memory
/// swept out every few minutes). A capture takes less than 400 bytes, the token included
/// (`benches/memory.rs`): the cache's bookkeeping, the key, the token, its deadline, and its
/// product as a position in the store's own list of the product IDs it has seen (a list that
/// never reorders).
///
/// **Owed conversions** live in a map that never evicts: at most
/// [`with_max_owed`](Self::with_max_owed) owed or parked at once, beyond which an order is
/// refused with [`StoreError::Full`] and its token stays with the visitor. Delivered, dead and
/// voided ones are kept for the retention (`keep_settled_for`, at least the token TTL), however many:
/// a shop's order rate over the retention, a few hundred bytes each.
///
/// ```
/// use tower_sovendus::{SovendusConfig, SovendusLayer, store::MokaTokenStore};
///
/// let config = SovendusConfig::new("product-a", "XXXX-XXXXX")?;
/// let layer = SovendusLayer::with_store(config, MokaTokenStore::new(10_000).with_max_owed(1_000));
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
pub struct MokaTokenStore {
    captures: Cache<TokenKey, Captured>,
    /// Every product ID captured so far, in the order first seen: [`Captured::product`] points
    /// into it.
    products: RwLock<Vec<ProductId>>,
    /// When the last sweep started, in milliseconds since the Unix epoch.
    last_sweep: AtomicI64,
    conversions: Mutex<Conversions>,
    max_owed: usize,
    /// The store's clock: the wall clock at its creation, then the monotonic clock, so that a
    /// wall-clock step moves no lease.
    started: (SystemTime, Instant),
}

impl std::fmt::Debug for MokaTokenStore {
    /// Sizes only: never the captures or conversions it holds.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MokaTokenStore")
            .field("captures", &self.captures.entry_count())
            .field("conversions", &lock(&self.conversions).by_id.len())
            .field("max_owed", &self.max_owed)
            .finish_non_exhaustive()
    }
}

/// A captured token, waiting for its order.
#[derive(Debug, Clone)]
struct Captured {
    token: SovReqToken,
    /// When it stops counting, in milliseconds since the Unix epoch.
    expires_at: i64,
    /// Where its product ID stands in the store's list.
    product: u16,
}

/// The owed conversions and their indexes.
#[derive(Debug, Default)]
struct Conversions {
    by_id: HashMap<ConversionId, Entry>,
    /// Owed and parked conversions by when they are due: their next attempt, or the end of
    /// their lease if that is later.
    due: BTreeSet<(i64, ConversionId)>,
    /// Delivered, dead and voided conversions by when they were settled.
    settled: BTreeSet<(i64, ConversionId)>,
    by_token: HashMap<SovReqToken, ConversionId>,
    by_order: HashMap<OrderRef, ConversionId>,
}

#[derive(Debug)]
struct Entry {
    conversion: Conversion,
    lease: Option<Lease>,
}

impl Entry {
    /// When the conversion is due, if it is owed or parked.
    fn due(&self) -> Option<i64> {
        let next = to_millis(self.conversion.next_attempt_at?);
        Some(self.lease.map_or(next, |lease| next.max(to_millis(lease.until))))
    }
}

impl Conversions {
    /// Puts `entry` in, indexed; returns its conversion as the store shows it.
    fn insert(&mut self, mut entry: Entry) -> Conversion {
        entry.conversion.held_until = entry.lease.map(|lease| lease.until);
        let (id, shown) = (entry.conversion.id, entry.conversion.clone());
        if let Some(due) = entry.due() {
            self.due.insert((due, id));
        }
        if let Some(settled_at) = entry.conversion.settled_at {
            self.settled.insert((to_millis(settled_at), id));
        }
        self.by_token.insert(entry.conversion.token.clone(), id);
        if let Some(order) = &entry.conversion.order {
            self.by_order.insert(order.clone(), id);
        }
        self.by_id.insert(id, entry);
        shown
    }

    /// Takes the entry for `id` out of the time indexes (not the token and order ones), to
    /// change it and put it back with [`insert`](Self::insert).
    fn take(&mut self, id: ConversionId) -> Option<Entry> {
        let entry = self.by_id.remove(&id)?;
        if let Some(due) = entry.due() {
            self.due.remove(&(due, id));
        }
        if let Some(settled_at) = entry.conversion.settled_at {
            self.settled.remove(&(to_millis(settled_at), id));
        }
        Some(entry)
    }

    /// Removes the entry for `id` altogether.
    fn remove(&mut self, id: ConversionId) {
        if let Some(entry) = self.take(id) {
            let conversion = entry.conversion;
            self.by_token.remove(&conversion.token);
            if let Some(order) = &conversion.order {
                if self.by_order.get(order) == Some(&id) {
                    self.by_order.remove(order);
                }
            }
        }
    }

    fn unsettled(&self) -> usize {
        self.by_id.len() - self.settled.len()
    }
}

impl MokaTokenStore {
    /// A store holding at most `max_tokens` captures, and the default number of owed
    /// conversions ([`DEFAULT_QUEUE_CAPACITY`]).
    pub fn new(max_tokens: u64) -> Self {
        let captures =
            Cache::builder().max_capacity(max_tokens).eviction_policy(EvictionPolicy::lru()).build();
        Self {
            captures,
            products: RwLock::default(),
            last_sweep: AtomicI64::new(0),
            conversions: Mutex::default(),
            max_owed: DEFAULT_QUEUE_CAPACITY,
            started: (SystemTime::now(), Instant::now()),
        }
    }

    /// The most conversions owed or parked at once (at least 1).
    pub fn with_max_owed(mut self, max: usize) -> Self {
        self.max_owed = max.max(1);
        self
    }

    /// The capture for `key` with its product, if it is live at `now` (milliseconds).
    async fn live(&self, key: TokenKey, now: i64) -> Option<Capture> {
        let captured = self.captures.get(&key).await?;
        self.capture_of(captured, now)
    }

    fn capture_of(&self, captured: Captured, now: i64) -> Option<Capture> {
        if captured.expires_at <= now {
            return None;
        }
        let products = self.products.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let product = products.get(usize::from(captured.product))?.clone();
        Some(Capture { token: captured.token, product })
    }

    /// Where `product` stands in the store's list, adding it if it is new.
    /// Whether `token` has a conversion.
    fn converted(&self, token: &SovReqToken) -> bool {
        lock(&self.conversions).by_token.contains_key(token)
    }

    /// Makes `capture` an owed conversion unless its token has one, or the store is full.
    fn owe_now(&self, capture: Capture, conversion: NewConversion) -> Result<Taken, StoreError> {
        let mut conversions = lock(&self.conversions);
        if let Some(id) = conversions.by_token.get(&capture.token) {
            return Ok(Taken::AlreadyConverted(*id));
        }
        if conversions.unsettled() >= self.max_owed {
            return Err(StoreError::Full(format!("{} owed conversions", self.max_owed)));
        }
        let lease = conversion.lease;
        let owed = Conversion::new(capture, conversion);
        conversions.insert(Entry { conversion: owed.clone(), lease });
        Ok(Taken::Owed(owed))
    }

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
        u16::try_from(index).map_err(|_| StoreError::Full("distinct product IDs".to_owned()))
    }

    /// Sweeps the captures expired at `now` out, on a task of its own, if the last sweep is
    /// long enough ago.
    fn sweep_now_and_then(&self, now: i64) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        let interval = i64::try_from(SWEEP_INTERVAL.as_millis()).unwrap_or(i64::MAX);
        if now.saturating_sub(last) < interval
            || self.last_sweep.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        tokio::spawn(sweep(self.captures.clone(), now));
    }
}

/// Removes the captures expired at `now` (milliseconds since the Unix epoch).
async fn sweep(captures: Cache<TokenKey, Captured>, now: i64) {
    let expired: Vec<TokenKey> =
        captures.iter().filter(|(_, captured)| captured.expires_at <= now).map(|(key, _)| *key).collect();
    for key in &expired {
        captures.invalidate(key).await;
    }
    tracing::debug!(swept = expired.len(), "swept expired Sovendus tokens");
}

#[async_trait]
impl CaptureStore for MokaTokenStore {
    async fn capture(&self, key: TokenKey, new: NewCapture) -> Result<bool, StoreError> {
        let now = to_millis(new.at);
        self.sweep_now_and_then(now);
        if self.converted(&new.capture.token) {
            return Ok(false);
        }
        let expires_at = to_millis(new.expires_at());
        let captured = Captured {
            product: self.product_index(&new.capture.product)?,
            token: new.capture.token,
            expires_at,
        };
        if new.attribution == Attribution::LastClick {
            self.captures.insert(key, captured).await;
            return Ok(true);
        }
        let result = self
            .captures
            .entry(key)
            .and_compute_with(|entry| async move {
                match entry {
                    // A live capture wins, unless its token was converted since.
                    Some(entry)
                        if entry.value().expires_at > now && !self.converted(&entry.value().token) =>
                    {
                        Op::Nop
                    }
                    _ => Op::Put(captured),
                }
            })
            .await;
        Ok(matches!(result, CompResult::Inserted(_) | CompResult::ReplacedWith(_)))
    }

    async fn captured(&self, key: TokenKey, now: SystemTime) -> Result<Option<Capture>, StoreError> {
        Ok(self.live(key, to_millis(now)).await.filter(|capture| !self.converted(&capture.token)))
    }
}

#[async_trait]
impl ConversionStore for MokaTokenStore {
    async fn take(&self, key: TokenKey, conversion: NewConversion) -> Result<Taken, StoreError> {
        // The capture stays: once its token is converted it tells the visitor's next order so,
        // until it expires. Of concurrent takes, one converts the token (under the lock).
        let Some(captured) = self.captures.get(&key).await else { return Ok(Taken::NoCapture) };
        let Some(capture) = self.capture_of(captured, to_millis(conversion.ordered_at)) else {
            return Ok(Taken::NoCapture);
        };
        self.owe_now(capture, conversion)
    }

    async fn owe(&self, capture: Capture, conversion: NewConversion) -> Result<Taken, StoreError> {
        self.owe_now(capture, conversion)
    }

    async fn void(&self, id: ConversionId, now: SystemTime) -> Result<VoidOutcome, StoreError> {
        let mut conversions = lock(&self.conversions);
        let Some(entry) = conversions.by_id.get(&id) else { return Ok(VoidOutcome::NotFound) };
        let state = entry.conversion.state;
        match state {
            ConversionState::Delivered => return Ok(VoidOutcome::Delivered(entry.conversion.clone())),
            ConversionState::Voided if entry.lease.is_none() => {
                return Ok(VoidOutcome::AlreadyVoided(entry.conversion.clone()));
            }
            _ => {}
        }
        let Some(mut entry) = conversions.take(id) else { return Ok(VoidOutcome::NotFound) };
        if state != ConversionState::Voided {
            let conversion = &mut entry.conversion;
            (conversion.state, conversion.next_attempt_at, conversion.settled_at) =
                (ConversionState::Voided, None, Some(now));
        }
        // A delivery holds it: its call may be out, or its 200 unrecorded. The void waits for its
        // settlement, or for its lease (quarantine included) to run out.
        let sending = entry.lease.is_some_and(|lease| to_millis(lease.until) > to_millis(now));
        if !sending {
            entry.lease = None;
        }
        let conversion = conversions.insert(entry);
        Ok(if sending { VoidOutcome::Sending(conversion) } else { VoidOutcome::Voided(conversion) })
    }

    async fn find(&self, order: &OrderRef) -> Result<Option<Conversion>, StoreError> {
        let conversions = lock(&self.conversions);
        let entry = conversions.by_order.get(order).and_then(|id| conversions.by_id.get(id));
        Ok(entry.map(|entry| entry.conversion.clone()))
    }

    async fn purge(&self, settled_before: SystemTime, now: SystemTime) -> Result<u64, StoreError> {
        sweep(self.captures.clone(), to_millis(now)).await;
        let before = to_millis(settled_before);
        let mut conversions = lock(&self.conversions);
        let old: Vec<ConversionId> =
            conversions.settled.iter().take_while(|(at, _)| *at < before).map(|(_, id)| *id).collect();
        for id in &old {
            conversions.remove(*id);
        }
        Ok(u64::try_from(old.len()).unwrap_or(u64::MAX))
    }
}

#[async_trait]
impl Outbox for MokaTokenStore {
    async fn now(&self) -> Result<SystemTime, StoreError> {
        let (wall, monotonic) = self.started;
        Ok(wall + monotonic.elapsed())
    }

    async fn claim(
        &self,
        now: SystemTime,
        limit: usize,
        lease: Lease,
    ) -> Result<Vec<Conversion>, StoreError> {
        let now = to_millis(now);
        let mut conversions = lock(&self.conversions);
        let due: Vec<ConversionId> = conversions
            .due
            .iter()
            .take_while(|(due, _)| *due <= now)
            .take(limit)
            .map(|(_, id)| *id)
            .collect();
        let mut claimed = Vec::with_capacity(due.len());
        for id in due {
            if let Some(mut entry) = conversions.take(id) {
                entry.lease = Some(lease);
                claimed.push(conversions.insert(entry));
            }
        }
        Ok(claimed)
    }

    async fn renew(&self, id: ConversionId, lease: Lease) -> Result<bool, StoreError> {
        let mut conversions = lock(&self.conversions);
        let held = conversions.by_id.get(&id).is_some_and(|entry| {
            entry.conversion.state != ConversionState::Voided
                && entry.lease.is_some_and(|held| held.id == lease.id)
        });
        if let Some(mut entry) = held.then(|| conversions.take(id)).flatten() {
            // A renewal that lands after a later one keeps the later end.
            let until = entry.lease.map_or(lease.until, |held| held.until.max(lease.until));
            entry.lease = Some(Lease { until, ..lease });
            conversions.insert(entry);
        }
        Ok(held)
    }

    async fn settle(
        &self,
        id: ConversionId,
        lease: LeaseId,
        settlement: Settlement,
    ) -> Result<bool, StoreError> {
        let mut conversions = lock(&self.conversions);
        let holds = |entry: &Entry| entry.lease.is_some_and(|held| held.id == lease);
        let late_200 = |entry: &Entry| {
            let voided = entry.conversion.state == ConversionState::Voided && entry.lease.is_none();
            settlement.state == ConversionState::Delivered
                && entry.conversion.state != ConversionState::Delivered
                && !voided
        };
        let settles = conversions.by_id.get(&id).is_some_and(|entry| holds(entry) || late_200(entry));
        let Some(entry) = settles.then(|| conversions.take(id)).flatten() else { return Ok(false) };
        let conversion = match entry.conversion.state {
            // The void waited for this delivery, which did not deliver: it stays voided.
            ConversionState::Voided if settlement.state != ConversionState::Delivered => Conversion {
                attempts: settlement.attempts,
                last_error: settlement.last_error,
                ..entry.conversion
            }
            .called(settlement.attempted_at),
            _ => entry.conversion.settled(settlement),
        };
        // Settled ones stay until the purge: a converted token must be known as long as it can
        // land again, however many others convert meanwhile.
        conversions.insert(Entry { conversion, lease: None });
        Ok(true)
    }
}

#[async_trait]
impl Inspection for MokaTokenStore {
    async fn list(&self, query: &ListQuery) -> Result<Vec<Conversion>, StoreError> {
        let conversions = lock(&self.conversions);
        let mut listed: Vec<(i64, Conversion)> = conversions
            .by_id
            .values()
            .filter(|entry| query.admits(&entry.conversion))
            .filter_map(|entry| Some((query.time_of(&entry.conversion)?, entry.conversion.clone())))
            .collect();
        listed.sort_by_key(|(at, conversion)| (*at, conversion.id));
        if query.order == ListOrder::NewestFirst {
            listed.reverse();
        }
        Ok(listed.into_iter().take(query.limit).map(|(_, conversion)| conversion).collect())
    }

    async fn counts(&self) -> Result<ConversionCounts, StoreError> {
        let mut counts = ConversionCounts::default();
        for entry in lock(&self.conversions).by_id.values() {
            *counts.of_mut(entry.conversion.state) += 1;
        }
        Ok(counts)
    }

    async fn daily(&self, from: SystemTime, until: SystemTime) -> Result<Vec<DailyCounts>, StoreError> {
        let mut by_day: HashMap<i64, ConversionCounts> = HashMap::new();
        for entry in lock(&self.conversions).by_id.values() {
            let day = listing::day_of(to_millis(entry.conversion.ordered_at));
            *by_day.entry(day).or_default().of_mut(entry.conversion.state) += 1;
        }
        Ok(listing::every_day(from, until, |day| by_day.get(&day).copied().unwrap_or_default()))
    }

    async fn causes(&self, state: ConversionState, limit: usize) -> Result<Vec<Cause>, StoreError> {
        let mut counted: HashMap<String, u64> = HashMap::new();
        for entry in lock(&self.conversions).by_id.values().filter(|entry| entry.conversion.state == state) {
            if let Some(error) = &entry.conversion.last_error {
                *counted.entry(error.clone()).or_default() += 1;
            }
        }
        Ok(listing::most_frequent(counted, limit))
    }

    async fn get(&self, id: ConversionId) -> Result<Option<Conversion>, StoreError> {
        Ok(lock(&self.conversions).by_id.get(&id).map(|entry| entry.conversion.clone()))
    }

    async fn find_token(&self, token: &SovReqToken) -> Result<Option<Conversion>, StoreError> {
        let conversions = lock(&self.conversions);
        let entry = conversions.by_token.get(token).and_then(|id| conversions.by_id.get(id));
        Ok(entry.map(|entry| entry.conversion.clone()))
    }

    async fn retry_parked_one(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
        let mut conversions = lock(&self.conversions);
        let parked =
            conversions.by_id.get(&id).is_some_and(|entry| entry.conversion.state == ConversionState::Parked);
        if let Some(mut entry) = parked.then(|| conversions.take(id)).flatten() {
            entry.conversion.next_attempt_at = Some(now);
            conversions.insert(entry);
        }
        Ok(parked)
    }

    async fn retry_parked(&self, now: SystemTime) -> Result<u64, StoreError> {
        let mut conversions = lock(&self.conversions);
        let parked: Vec<ConversionId> = conversions
            .by_id
            .values()
            .filter(|entry| entry.conversion.state == ConversionState::Parked)
            .map(|entry| entry.conversion.id)
            .collect();
        for id in &parked {
            if let Some(mut entry) = conversions.take(*id) {
                entry.conversion.next_attempt_at = Some(now);
                conversions.insert(entry);
            }
        }
        Ok(u64::try_from(parked.len()).unwrap_or(u64::MAX))
    }

    async fn retry_dead(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
        let mut conversions = lock(&self.conversions);
        let dead =
            conversions.by_id.get(&id).is_some_and(|entry| entry.conversion.state == ConversionState::Dead);
        if !dead {
            return Ok(false);
        }
        if conversions.unsettled() >= self.max_owed {
            return Err(StoreError::Full("owed conversions".to_owned()));
        }
        if let Some(mut entry) = conversions.take(id) {
            let conversion = &mut entry.conversion;
            (conversion.state, conversion.next_attempt_at, conversion.settled_at) =
                (ConversionState::Owed, Some(now), None);
            entry.lease = None;
            conversions.insert(entry);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sweep_removes_expired_captures_only() {
        let store = MokaTokenStore::new(10);
        let product = ProductId::new("product-a").unwrap();
        let at = SystemTime::now();
        for (key, ttl) in
            [(1, Duration::from_millis(10)), (2, Duration::from_millis(10)), (3, Duration::from_secs(60))]
        {
            let capture =
                Capture { token: format!("token-{key}").parse().unwrap(), product: product.clone() };
            let new = NewCapture { capture, attribution: Attribution::LastClick, at, ttl };
            store.capture(key, new).await.unwrap();
        }
        sweep(store.captures.clone(), to_millis(at + Duration::from_secs(1))).await;
        store.captures.run_pending_tasks().await;
        assert_eq!(store.captures.entry_count(), 1);
        assert!(store.captured(3, at).await.unwrap().is_some());
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
