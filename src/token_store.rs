//! [`TokenStore`]: where captured tokens wait for their order, and the values it trades in.
//!
//! The embedded default is [`CompactTokenStore`](crate::CompactTokenStore), inside the
//! process; [`MokaTokenStore`](crate::MokaTokenStore) is the moka-based alternative. Shops running
//! several instances use a shared store, such as `RedisTokenStore` (feature `redis`), so that
//! a visitor who lands on one instance and orders on another still converts, exactly once.

use std::{fmt, future::Future, pin::Pin, time::Duration};

use crate::{SovReqToken, config::Attribution};

/// The key a token is stored under: 128 random bits kept in the visitor's (server-side)
/// session data.
///
/// It is made when the session first captures a token and travels with the session's data, so
/// it survives `Session::cycle_id` (login), and it is only ever read from a session the store
/// has loaded, never from a cookie.
pub type TokenKey = i128;

/// What a [`TokenStore`] operation returns: a boxed future, so the trait stays object-safe.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A captured token waiting for its order, and the product it is for.
///
/// ```
/// use tower_sovendus::PendingToken;
///
/// let pending = PendingToken { token: "12345-test-123-12345".parse()?, product: 0 };
/// assert_eq!(pending.token.to_string(), "12345-te…");
/// # Ok::<(), tower_sovendus::InvalidToken>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingToken {
    /// The token.
    pub token: SovReqToken,
    /// Index into the configured product IDs (0 is the primary one).
    pub product: u8,
}

/// Names one lease, so that only the delivery holding it can settle the token.
///
/// Stores make them unique among all deliveries that may share the store: a counter within
/// one process, 128 random bits across processes.
///
/// ```
/// use tower_sovendus::LeaseId;
///
/// assert_ne!(LeaseId::random(), LeaseId::random());
/// assert_eq!(LeaseId::from(7).get(), 7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(u128);

impl LeaseId {
    /// A random lease ID (128 bits from the same source as tower-sessions' session IDs).
    ///
    /// See [`LeaseId`] for an example.
    pub fn random() -> Self {
        // Reinterpreting the bits keeps all 128 of them random.
        Self(tower_sessions::session::Id::default().0 as u128)
    }

    /// The ID as a number.
    ///
    /// See [`LeaseId`] for an example.
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
///
/// ```
/// use tower_sovendus::{LeaseId, Leased, PendingToken};
///
/// let leased = Leased {
///     key: 42,
///     pending: PendingToken { token: "12345-test-123-12345".parse()?, product: 0 },
///     lease: LeaseId::from(1),
/// };
/// assert!(!format!("{leased:?}").contains("12345-test-123-12345"));
/// # Ok::<(), tower_sovendus::InvalidToken>(())
/// ```
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
///
/// ```
/// use tower_sovendus::Settlement;
///
/// let after_a_200 = Settlement::Done;
/// assert_ne!(after_a_200, Settlement::Keep);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Sovendus accepted it, or refused it for good: the token goes.
    Done,
    /// It may still succeed later: the token stays, free for the next delivery.
    Keep,
}

/// A token store failed: unreachable, too slow, or it answered something unexpected.
///
/// It carries the store's own error as its source; never a token or a secret.
///
/// ```
/// use std::time::Duration;
/// use tower_sovendus::StoreError;
///
/// let error = StoreError::TimedOut(Duration::from_millis(500));
/// assert_eq!(error.to_string(), "the token store did not answer within 500ms");
/// let error = StoreError::backend(std::io::Error::other("connection refused"));
/// assert_eq!(error.to_string(), "the token store failed: connection refused");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer within its timeout.
    #[error("the token store did not answer within {0:?}")]
    TimedOut(Duration),
    /// The store answered with an error, or could not be reached.
    #[error("the token store failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps a store's own error.
    ///
    /// See [`StoreError`] for an example.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(error))
    }
}

/// Where captured tokens wait for their order.
///
/// Every implementation keeps the same rules, on which exactly-once delivery rests:
///
/// - [`insert`](Self::insert) stores a token for [`TokenStore`]'s TTL; under
///   [`Attribution::FirstClick`] a live token already stored wins, under
///   [`Attribution::LastClick`] the new one replaces it (and is free, even if the old one was
///   leased).
/// - [`lease`](Self::lease) is atomic across everything sharing the store: of concurrent
///   callers, one gets the token. The token stays stored while leased.
/// - [`settle`](Self::settle) ends a lease: [`Settlement::Done`] removes the token,
///   [`Settlement::Keep`] frees it. It does nothing if the lease ran out and another delivery
///   took the token, or if a newer click replaced it.
///
/// Object-safe: the layer holds an `Arc<dyn TokenStore>`. Pass a store to
/// [`SovendusLayer::with_store`](crate::SovendusLayer::with_store).
///
/// ```
/// use std::time::Duration;
/// use tower_sovendus::{Attribution, MokaTokenStore, PendingToken, Settlement, TokenStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store: Box<dyn TokenStore> = Box::new(MokaTokenStore::new(1_000));
/// let pending = PendingToken { token: "12345-test-123-12345".parse()?, product: 0 };
/// let minute = Duration::from_secs(60);
/// assert!(store.insert(7, pending.clone(), minute, Attribution::LastClick).await?);
///
/// let leased = store.lease(7, minute).await?.expect("stored and free");
/// assert!(store.lease(7, minute).await?.is_none(), "one delivery at a time");
/// store.settle(&leased, Settlement::Done).await?;
/// assert_eq!(store.get(7).await?, None);
/// # Ok(()) }
/// ```
pub trait TokenStore: fmt::Debug + Send + Sync + 'static {
    /// Stores a freshly captured token for `ttl`; returns whether it was kept (under
    /// first-click, a live stored token wins).
    fn insert(
        &self,
        key: TokenKey,
        pending: PendingToken,
        ttl: Duration,
        attribution: Attribution,
    ) -> StoreFuture<'_, bool>;

    /// The live token stored for `key`, leased or not, left in place.
    fn get(&self, key: TokenKey) -> StoreFuture<'_, Option<PendingToken>>;

    /// Leases the token for `key` for `duration`, unless another delivery holds it. Atomic:
    /// of concurrent callers, one gets it. The token stays stored meanwhile.
    fn lease(&self, key: TokenKey, duration: Duration) -> StoreFuture<'_, Option<Leased>>;

    /// Ends a lease: the token goes ([`Settlement::Done`]) or is freed for the next delivery
    /// ([`Settlement::Keep`]). A token captured since (last-click) is left alone.
    fn settle<'a>(&'a self, leased: &'a Leased, settlement: Settlement) -> StoreFuture<'a, ()>;
}
