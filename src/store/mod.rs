//! Where captured tokens wait for their order, and where an order's conversion stays owed until
//! Sovendus answers: the store's roles (a trait each), the records they trade in, and the
//! stores.
//!
//! - [`MokaTokenStore`]: in the process; the default of
//!   [`SovendusLayer::new`](crate::SovendusLayer::new). It loses everything on a restart: for
//!   tests, and for single-instance shops that accept that.
//! - `SqlTokenStore` (features `sqlite`, `postgres`): in SQLite or Postgres, on the same sqlx
//!   pool as tower-sessions-sqlx-store; durable, and shared by every instance on Postgres.
//! - `RedisTokenStore` (feature `redis`): in Redis, shared by every instance; durable when
//!   Redis persists its data.
//!
//! # The records
//!
//! A landing leaves a [`Capture`] (the token and the product its landing chose) under the
//! visitor's [`TokenKey`], for the token's TTL. An order [takes](ConversionStore::take) it: in one
//! atomic step a [`Conversion`] of its token comes, and no crash between two writes can
//! lose or double it. The capture stays, spent: the visitor's next order finds its token
//! converted ([`Taken::AlreadyConverted`]) until the capture expires. A conversion moves
//! through these [states](ConversionState):
//!
//! | state | what it means | next |
//! |---|---|---|
//! | owed | not delivered yet | claimed by a delivery when due |
//! | parked | Sovendus refused the shop's configuration (403, 404, 405, unknown product) | claimed when due, and at every start; never dies of age |
//! | dead | Sovendus does not know the token; or no answer for the whole schedule | sent again only if [retried](Inspection::retry_dead); purged after the retention |
//! | delivered | Sovendus answered 200 | never sent again; purged after the retention |
//! | voided | the shop took the order back before delivery ([`void`](ConversionStore::void)) | never sent; purged after the retention |
//!
//! # The roles
//!
//! A store serves four roles, a small trait each, with rules of its own (checked by
//! `store::conformance`, feature `conformance`, which the crate runs on its own stores):
//!
//! | trait | for | methods |
//! |---|---|---|
//! | [`CaptureStore`] | the layer, on every landing | `capture`, `captured` |
//! | [`ConversionStore`] | the order handlers, and the shop's cancellations | `take` (`take_in`), `owe`, `void`, `find`, `purge` |
//! | [`Outbox`] | the delivery workers | `now`, `timeout`, `claim`, `renew`, `settle` |
//! | [`Inspection`] | the shop's staff | `list`, `counts`, `daily`, `causes`, `get`, `find_token`, `retry_parked`, `retry_parked_one`, `retry_dead` |
//!
//! [`TokenStore`] is the four at once: what [`SovendusLayer::with_store`](crate::SovendusLayer::with_store)
//! takes. Every type that serves the four is one; an `Arc` of one is one too.
//!
//! # Writing a store
//!
//! Implement each role, with [`async_trait`](macro@async_trait), and run
//! `conformance::check` on it in your tests. Times are always the caller's: every method that
//! judges time is given it, read from the store's [clock](Outbox::now), and keeps it to the
//! millisecond. This store keeps an audit trail of the landings, and leaves the rest to the
//! memory store:
//!
//! ```
//! use std::{sync::Mutex, time::SystemTime};
//! use tower_sovendus::{OrderRef, SovReqToken, store::*};
//!
//! #[derive(Debug)]
//! struct Audited { inner: MokaTokenStore, landings: Mutex<Vec<String>> }
//!
//! #[async_trait]
//! impl CaptureStore for Audited {
//!     async fn capture(&self, key: TokenKey, capture: NewCapture) -> Result<bool, StoreError> {
//!         self.landings.lock().unwrap().push(capture.capture.token.to_string()); // masked
//!         self.inner.capture(key, capture).await
//!     }
//!     async fn captured(&self, key: TokenKey, now: SystemTime) -> Result<Option<Capture>, StoreError> {
//!         self.inner.captured(key, now).await
//!     }
//! }
//!
//! #[async_trait]
//! impl ConversionStore for Audited {
//!     async fn take(&self, key: TokenKey, new: NewConversion) -> Result<Taken, StoreError> {
//!         self.inner.take(key, new).await
//!     }
//!     async fn owe(&self, capture: Capture, new: NewConversion) -> Result<Taken, StoreError> {
//!         self.inner.owe(capture, new).await
//!     }
//!     async fn void(&self, id: ConversionId, now: SystemTime) -> Result<VoidOutcome, StoreError> {
//!         self.inner.void(id, now).await
//!     }
//!     async fn find(&self, order: &OrderRef) -> Result<Option<Conversion>, StoreError> {
//!         self.inner.find(order).await
//!     }
//!     async fn purge(&self, before: SystemTime, now: SystemTime) -> Result<u64, StoreError> {
//!         self.inner.purge(before, now).await
//!     }
//! }
//!
//! #[async_trait]
//! impl Outbox for Audited {
//!     async fn now(&self) -> Result<SystemTime, StoreError> {
//!         self.inner.now().await
//!     }
//!     async fn claim(&self, now: SystemTime, limit: usize, lease: Lease) -> Result<Vec<Conversion>, StoreError> {
//!         self.inner.claim(now, limit, lease).await
//!     }
//!     async fn renew(&self, id: ConversionId, lease: Lease) -> Result<bool, StoreError> {
//!         self.inner.renew(id, lease).await
//!     }
//!     async fn settle(&self, id: ConversionId, lease: LeaseId, settled: Settlement) -> Result<bool, StoreError> {
//!         self.inner.settle(id, lease, settled).await
//!     }
//! }
//!
//! #[async_trait]
//! impl Inspection for Audited {
//!     async fn list(&self, query: &ListQuery) -> Result<Vec<Conversion>, StoreError> {
//!         self.inner.list(query).await
//!     }
//!     async fn counts(&self) -> Result<ConversionCounts, StoreError> {
//!         self.inner.counts().await
//!     }
//!     async fn daily(&self, from: SystemTime, until: SystemTime) -> Result<Vec<DailyCounts>, StoreError> {
//!         self.inner.daily(from, until).await
//!     }
//!     async fn causes(&self, state: ConversionState, limit: usize) -> Result<Vec<Cause>, StoreError> {
//!         self.inner.causes(state, limit).await
//!     }
//!     async fn get(&self, id: ConversionId) -> Result<Option<Conversion>, StoreError> {
//!         self.inner.get(id).await
//!     }
//!     async fn find_token(&self, token: &SovReqToken) -> Result<Option<Conversion>, StoreError> {
//!         self.inner.find_token(token).await
//!     }
//!     async fn retry_parked(&self, now: SystemTime) -> Result<u64, StoreError> {
//!         self.inner.retry_parked(now).await
//!     }
//!     async fn retry_parked_one(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
//!         self.inner.retry_parked_one(id, now).await
//!     }
//!     async fn retry_dead(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
//!         self.inner.retry_dead(id, now).await
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_sovendus::ConfigError> {
//! let audited = Audited { inner: MokaTokenStore::new(10_000), landings: Mutex::default() };
//! let config = tower_sovendus::SovendusConfig::new("product-a", "XXXX-XXXXX")?;
//! let layer = tower_sovendus::SovendusLayer::with_store(config, audited);
//! # drop(layer); Ok(()) }
//! ```

mod captures;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod conversions;
mod error;
mod inspection;
mod listing;
mod memory;
mod outbox;
mod records;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

/// The attribute the store traits are declared with, for implementing them.
pub use async_trait::async_trait;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use fred;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use sqlx;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT, RedisTokenStore};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use self::sql::{DEFAULT_SQL_TIMEOUT, SqlConnection, SqlTokenStore, TakeInError};
pub use self::{
    captures::CaptureStore,
    conversions::ConversionStore,
    error::StoreError,
    inspection::Inspection,
    listing::{Cause, Cursor, DailyCounts, ListOrder, ListQuery, TimeAxis},
    memory::MokaTokenStore,
    outbox::Outbox,
    records::{
        CALLS_KEPT, Capture, Conversion, ConversionCounts, ConversionId, ConversionState, Lease, LeaseId,
        NewCapture, NewConversion, Settlement, Taken, TokenKey, VoidOutcome,
    },
};
/// Days as stores count them, for the console's counts per day.
#[cfg(feature = "console")]
pub(crate) use self::{
    listing::{DAY_MS, day_of},
    records::{from_millis, to_millis},
};

/// A store of the four roles at once (see the [module](self)): what a layer takes. Implemented
/// for every type that serves them.
pub trait TokenStore: CaptureStore + ConversionStore + Outbox + Inspection {}

impl<S: CaptureStore + ConversionStore + Outbox + Inspection + ?Sized> TokenStore for S {}
