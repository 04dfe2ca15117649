//! Where captured tokens wait for their order: the [`TokenStore`] trait, the records it trades
//! in, and its implementations.
//!
//! - [`MokaTokenStore`]: in the process, a moka cache; the default of
//!   [`SovendusLayer::new`](crate::SovendusLayer::new). It does not survive a restart and is
//!   not shared between instances.
//! - `RedisTokenStore` (feature `redis`): in Redis, shared by every instance of the shop.
//!
//! # Writing a store
//!
//! A store keeps, for each [`TokenKey`], at most one [`PendingToken`], and hands it to one
//! delivery at a time. Every implementation keeps the same rules, on which exactly-once
//! delivery rests:
//!
//! - [`insert`](TokenStore::insert) stores a token for its TTL; under
//!   [`Attribution::FirstClick`] a live token already stored wins, under
//!   [`Attribution::LastClick`] the new one replaces it, and is free even if the old one was
//!   leased.
//! - [`lease`](TokenStore::lease) is atomic across everything sharing the store: of
//!   concurrent callers, one gets the token. The token stays stored while leased.
//! - [`settle`](TokenStore::settle) ends a lease: [`Settlement::Done`] removes the token,
//!   [`Settlement::Keep`] frees it. It does nothing if the lease ran out and another delivery
//!   took the token, or if a newer click replaced it.
//!
//! A store for a map in the process, checked the way the crate checks its own stores:
//!
//! ```
//! use std::{collections::HashMap, sync::Mutex, time::{Duration, Instant}};
//! use tower_sovendus::{
//!     config::Attribution,
//!     store::{LeaseId, Leased, PendingToken, Settlement, StoreError, TokenKey, TokenStore, async_trait},
//! };
//!
//! #[derive(Debug, Default)]
//! struct MapStore(Mutex<HashMap<TokenKey, Entry>>);
//!
//! #[derive(Debug)]
//! struct Entry {
//!     pending: PendingToken,
//!     expires: Instant,
//!     lease: Option<(LeaseId, Instant)>,
//! }
//!
//! impl MapStore {
//!     /// The live entry for `key`, dropping it if it expired.
//!     fn live(map: &mut HashMap<TokenKey, Entry>, key: TokenKey) -> Option<&mut Entry> {
//!         if map.get(&key).is_some_and(|entry| entry.expires <= Instant::now()) {
//!             map.remove(&key);
//!         }
//!         map.get_mut(&key)
//!     }
//! }
//!
//! #[async_trait]
//! impl TokenStore for MapStore {
//!     async fn insert(&self, key: TokenKey, pending: PendingToken, ttl: Duration, attribution: Attribution)
//!         -> Result<bool, StoreError> {
//!         let mut map = self.0.lock().unwrap();
//!         if attribution == Attribution::FirstClick && Self::live(&mut map, key).is_some() {
//!             return Ok(false);
//!         }
//!         map.insert(key, Entry { pending, expires: Instant::now() + ttl, lease: None });
//!         Ok(true)
//!     }
//!
//!     async fn get(&self, key: TokenKey) -> Result<Option<PendingToken>, StoreError> {
//!         Ok(Self::live(&mut self.0.lock().unwrap(), key).map(|entry| entry.pending.clone()))
//!     }
//!
//!     async fn lease(&self, key: TokenKey, duration: Duration) -> Result<Option<Leased>, StoreError> {
//!         let mut map = self.0.lock().unwrap();
//!         let Some(entry) = Self::live(&mut map, key) else { return Ok(None) };
//!         let now = Instant::now();
//!         if entry.lease.is_some_and(|(_, until)| until > now) {
//!             return Ok(None); // another delivery holds it
//!         }
//!         let lease = LeaseId::random();
//!         entry.lease = Some((lease, now + duration));
//!         Ok(Some(Leased { key, pending: entry.pending.clone(), lease }))
//!     }
//!
//!     async fn settle(&self, leased: &Leased, settlement: Settlement) -> Result<(), StoreError> {
//!         let mut map = self.0.lock().unwrap();
//!         let Some(entry) = map.get_mut(&leased.key) else { return Ok(()) };
//!         if entry.lease.is_some_and(|(lease, _)| lease == leased.lease) {
//!             match settlement {
//!                 Settlement::Done => drop(map.remove(&leased.key)),
//!                 Settlement::Keep => entry.lease = None,
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MapStore::default();
//! let pending = PendingToken { token: "12345-test-123-12345".parse()?, product: "product-a".parse()? };
//! let minute = Duration::from_secs(60);
//! assert!(store.insert(7, pending.clone(), minute, Attribution::LastClick).await?);
//! let leased = store.lease(7, minute).await?.expect("stored and free");
//! assert!(store.lease(7, minute).await?.is_none(), "one delivery at a time");
//! store.settle(&leased, Settlement::Done).await?;
//! assert_eq!(store.get(7).await?, None);
//! # Ok(()) }
//! ```
//!
//! Hand it to [`SovendusLayer::with_store`](crate::SovendusLayer::with_store).

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::{fmt, time::Duration};

/// The `async_trait` attribute [`TokenStore`] is declared with, for implementing it.
pub use async_trait::async_trait;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use fred;

pub use self::memory::MokaTokenStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT, RedisTokenStore};
pub use crate::error::StoreError;
use crate::{
    config::{Attribution, ProductId},
    token::SovReqToken,
};

/// The key a token is stored under: 128 random bits kept in the visitor's (server-side)
/// session data.
///
/// It is made when the session first captures a token and travels with the session's data, so
/// it survives `Session::cycle_id` (login), and it is only ever read from a session the store
/// has loaded, never from a cookie.
pub type TokenKey = i128;

/// A captured token waiting for its order, and the product it is for.
///
/// The product is kept by its ID, so that a deploy that reorders or removes configured
/// products still books each stored token for the product its landing chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingToken {
    /// The token.
    pub token: SovReqToken,
    /// The product the landing chose.
    pub product: ProductId,
}

/// Names one lease, so that only the delivery holding it can settle the token.
///
/// Stores make them unique among all deliveries that may share the store: a counter within
/// one process, 128 random bits across processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(u128);

impl LeaseId {
    /// A random lease ID (128 bits from the same source as tower-sessions' session IDs).
    pub fn random() -> Self {
        // Reinterpreting the bits keeps all 128 of them random.
        Self(tower_sessions::session::Id::default().0 as u128)
    }

    /// The ID as a number.
    pub fn get(self) -> u128 {
        self.0
    }
}

impl From<u128> for LeaseId {
    fn from(id: u128) -> Self {
        Self(id)
    }
}

/// A token leased for sending: no other delivery gets it until the lease is settled with
/// [`TokenStore::settle`] or runs out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    /// The key the token is stored under.
    pub key: TokenKey,
    /// The token and its product.
    pub pending: PendingToken,
    /// This delivery's lease.
    pub lease: LeaseId,
}

/// How a leased token's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Sovendus accepted it, or refused it for good: the token goes.
    Done,
    /// It may still succeed later: the token stays, free for the next delivery.
    Keep,
}

/// Where captured tokens wait for their order; see the [module](self) for the rules every
/// store keeps and a worked example.
///
/// Object-safe: the layer holds an `Arc<dyn TokenStore>`.
#[async_trait]
pub trait TokenStore: fmt::Debug + Send + Sync + 'static {
    /// Stores a freshly captured token for `ttl`; returns whether it was kept (under
    /// first-click, a live stored token wins).
    async fn insert(
        &self,
        key: TokenKey,
        pending: PendingToken,
        ttl: Duration,
        attribution: Attribution,
    ) -> Result<bool, StoreError>;

    /// The live token stored for `key`, leased or not, left in place.
    async fn get(&self, key: TokenKey) -> Result<Option<PendingToken>, StoreError>;

    /// Leases the token for `key` for `duration`, unless another delivery holds it. Atomic:
    /// of concurrent callers, one gets it. The token stays stored meanwhile.
    async fn lease(&self, key: TokenKey, duration: Duration) -> Result<Option<Leased>, StoreError>;

    /// Ends a lease: the token goes ([`Settlement::Done`]) or is freed for the next delivery
    /// ([`Settlement::Keep`]). A token captured since (last-click) is left alone.
    async fn settle(&self, leased: &Leased, settlement: Settlement) -> Result<(), StoreError>;
}
