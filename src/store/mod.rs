//! Where captured tokens wait for their order, and where an order's conversion stays owed until
//! Sovendus answers: the [`TokenStore`] trait, the records it keeps, and its implementations.
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
//! visitor's [`TokenKey`], for the token's TTL. An order [takes](TokenStore::take) it: in one
//! atomic step an [`OwedConversion`] of its token comes, and no crash between two writes can
//! lose or double it. The capture stays, spent: the visitor's next order finds its token
//! converted ([`Taken::AlreadyConverted`]) until the capture expires. An owed
//! conversion moves through these [states](ConversionState):
//!
//! | state | what it means | next |
//! |---|---|---|
//! | owed | not delivered yet | claimed by a delivery when due |
//! | parked | Sovendus refused the shop's configuration (403, 404, 405, unknown product) | claimed when due, and at every start; never dies of age |
//! | dead | Sovendus does not know the token; or no answer for the whole schedule | sent again only if [revived](TokenStore::revive); purged after the retention |
//! | delivered | Sovendus answered 200 | never sent again; purged after the retention |
//! | voided | the shop took the order back before delivery ([`void`](TokenStore::void)) | never sent; purged after the retention |
//!
//! A delivery [claims](TokenStore::claim) due conversions under a [`Lease`], renews it while it
//! sends, and [settles](TokenStore::settle) each with its outcome. The lease it writes covers
//! its renewals and a quarantine after them
//! ([`DeliverySchedule::quarantine`](crate::DeliverySchedule::quarantine)): a lease that runs
//! out (its instance crashed, or was cut off for longer than the quarantine) makes the
//! conversion due again, for any instance.
//!
//! # Writing a store
//!
//! Every store keeps the same rules, checked by the conformance suite that the crate runs on
//! its own stores (`store::conformance`, feature `conformance`), so a store of yours can run
//! it too:
//!
//! - Times are the caller's: every method that judges time is given `now` (or the time of its
//!   write) and judges by it, not by a clock of its own. They are kept to the millisecond.
//! - The caller reads those times from the store's [clock](TokenStore::now), so that instances
//!   whose wall clocks disagree judge due times and leases alike: Postgres' `clock_timestamp()`,
//!   Redis' `TIME`, the process's monotonic clock for the memory store, the host's wall clock
//!   for SQLite (whose instances share a host). Between two readings an instance counts on its
//!   monotonic clock, so neither a wall-clock step nor a paused process moves a lease. Captures'
//!   expiry and the purge's cut-off, days long, stay on the instances' wall clocks.
//! - [`capture`](TokenStore::capture) keeps one capture per key; under
//!   [`Attribution::FirstClick`](crate::config::Attribution::FirstClick) a live capture wins, under [`Attribution::LastClick`](crate::config::Attribution::LastClick) the new
//!   one replaces it.
//! - [`take`](TokenStore::take) and [`owe`](TokenStore::owe) are atomic, and make at most one
//!   conversion per token, ever (while the conversion is kept): a token taken before is
//!   [`Taken::AlreadyConverted`]. A converted token is not captured again, and no longer
//!   [`captured`](TokenStore::captured): what the shop sees is what an order would take.
//! - [`void`](TokenStore::void) voids what is owed, parked or dead; one a delivery holds (a live
//!   lease) it marks voided and answers [`VoidOutcome::Sending`], keeping the lease: that
//!   delivery's renewals then fail (it starts no further attempt), and its settlement leaves
//!   it voided, unless it heard a 200. A void asked again once the lease ran out ends it.
//! - [`claim`](TokenStore::claim) is atomic across everything sharing the store: of concurrent
//!   claims, each conversion goes to one.
//! - [`renew`](TokenStore::renew) and [`settle`](TokenStore::settle) do nothing unless the
//!   lease named is the conversion's current one (and a renewal nothing once it is voided); but
//!   a settlement that says delivered (a 200) is recorded whatever the lease, unless the
//!   conversion is delivered already, or voided with no lease left: a late 200 ends every
//!   later delivery of it, and a void that answered [`VoidOutcome::Voided`] stays true.
//!
//! The trait is object-safe and declared with [`async_trait`](macro@async_trait); hand a store to
//! [`SovendusLayer::with_store`](crate::SovendusLayer::with_store). `MokaTokenStore`'s source is
//! the shortest worked example.

#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod error;
mod memory;
mod records;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

use std::{fmt, time::SystemTime};

/// The attribute [`TokenStore`] is declared with, for implementing it.
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
pub(crate) use self::sql::Refusal;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use self::sql::{DEFAULT_SQL_TIMEOUT, SqlConnection, SqlTokenStore};
use crate::ids::OrderRef;

pub use self::{
    error::StoreError,
    memory::MokaTokenStore,
    records::{
        Capture, ConversionCounts, ConversionId, ConversionState, Lease, LeaseId, NewCapture, NewConversion,
        OwedConversion, Settlement, Taken, TokenKey, VoidOutcome,
    },
};

/// The layer's store, if the shop's own transactions can join it: a `SqlTokenStore`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Joinable(
    #[cfg(any(feature = "sqlite", feature = "postgres"))] pub(crate) Option<SqlTokenStore>,
);

impl Joinable {
    /// `store`, if it is a `SqlTokenStore` (or one in an `Arc`).
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(unused_variables))]
    pub(crate) fn of<S: TokenStore>(store: &S) -> Self {
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        {
            let store: &dyn std::any::Any = store;
            let sql = store
                .downcast_ref::<SqlTokenStore>()
                .or_else(|| store.downcast_ref::<std::sync::Arc<SqlTokenStore>>().map(|store| &**store));
            Self(sql.cloned())
        }
        #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
        Self()
    }
}

/// Where captures wait for their order and owed conversions for Sovendus; see the
/// [module](self) for the records and the rules every store keeps.
#[async_trait]
pub trait TokenStore: fmt::Debug + Send + Sync + 'static {
    /// The store's clock: what every instance sharing the store judges due times and leases
    /// by (see the [module](self)). A store shared over the network answers its server's; one
    /// whose instances share a host may answer `SystemTime::now()`. A store that wraps another
    /// answers the inner one's.
    async fn now(&self) -> Result<SystemTime, StoreError>;

    /// How long the store waits on one operation before giving up, if it gives up: a lease
    /// must leave a renewal that long to land (see
    /// [`DeliverySchedule::lease`](crate::DeliverySchedule::lease)). `None` by default.
    fn timeout(&self) -> Option<std::time::Duration> {
        None
    }

    /// Stores a landing's capture for `key`; returns whether it was kept: not when its token was
    /// converted before, nor under first-click when a live capture is there.
    async fn capture(&self, key: TokenKey, capture: NewCapture) -> Result<bool, StoreError>;

    /// The capture for `key`, if it is live at `now` and its token was not converted since
    /// (by another visitor's order, or a re-landing); left in place.
    async fn captured(&self, key: TokenKey, now: SystemTime) -> Result<Option<Capture>, StoreError>;

    /// In one atomic step: makes the capture for `key`, if it is live at the conversion's
    /// `ordered_at`, an owed conversion, due at once (or once the conversion's lease runs out,
    /// if it comes with one); or answers the conversion its token has. The capture stays (a
    /// store may remove one it cannot read).
    async fn take(&self, key: TokenKey, conversion: NewConversion) -> Result<Taken, StoreError>;

    /// In one atomic step: makes `capture` an owed conversion, due at once, unless its token
    /// has one ([`Taken::AlreadyConverted`]). For the capture a shop kept with its order, when
    /// a crash came between the order's commit and its take; any capture of the token is left
    /// in place (no take converts it again). Never [`Taken::NoCapture`].
    async fn owe(&self, capture: Capture, conversion: NewConversion) -> Result<Taken, StoreError>;

    /// In one atomic step: voids the conversion `id` at `now` if it is owed, parked or dead.
    /// One a delivery holds at `now` (a live lease: its call may be out, or its 200
    /// unrecorded) is marked voided and keeps its lease ([`VoidOutcome::Sending`]); one voided
    /// so whose lease ran out at `now` has it ended ([`VoidOutcome::Voided`]). Says what it
    /// found (see [`VoidOutcome`]).
    async fn void(&self, id: ConversionId, now: SystemTime) -> Result<VoidOutcome, StoreError>;

    /// Leases up to `limit` owed or parked conversions due at `now` (their next attempt
    /// reached, and no live lease on them), the earliest due first.
    async fn claim(
        &self,
        now: SystemTime,
        limit: usize,
        lease: Lease,
    ) -> Result<Vec<OwedConversion>, StoreError>;

    /// Extends the lease on `id` to `lease.until`, if `lease.id` still holds it and the
    /// conversion is not voided; returns whether it did.
    async fn renew(&self, id: ConversionId, lease: Lease) -> Result<bool, StoreError>;

    /// Ends the lease `lease` on `id` with the delivery's outcome, if the lease still holds (a
    /// conversion voided meanwhile stays voided unless the outcome is delivered), or whatever
    /// the lease for a delivered outcome on a conversion neither delivered nor voided with no
    /// lease; returns whether it did.
    async fn settle(
        &self,
        id: ConversionId,
        lease: LeaseId,
        settlement: Settlement,
    ) -> Result<bool, StoreError>;

    /// Settles each of `settlements` (conversion, lease, outcome) as [`settle`](Self::settle)
    /// does, in order; returns whether each lease held. Deliveries that end together are
    /// settled together: a store that can write them in one go (one transaction, one round
    /// trip) does so; the default settles them all at once, each on its own.
    async fn settle_all(
        &self,
        settlements: Vec<(ConversionId, LeaseId, Settlement)>,
    ) -> Result<Vec<bool>, StoreError> {
        let settled =
            settlements.into_iter().map(|(id, lease, settlement)| self.settle(id, lease, settlement));
        futures_util::future::join_all(settled).await.into_iter().collect()
    }

    /// The conversions in `state`, the earliest ordered first, at most `limit`.
    async fn list(&self, state: ConversionState, limit: usize) -> Result<Vec<OwedConversion>, StoreError>;

    /// How many conversions are in each state.
    async fn counts(&self) -> Result<ConversionCounts, StoreError>;

    /// The conversion of the shop's order `order`, if one was taken with it.
    async fn find(&self, order: &OrderRef) -> Result<Option<OwedConversion>, StoreError>;

    /// Makes every parked conversion due at `now`; returns how many there were.
    async fn wake_parked(&self, now: SystemTime) -> Result<u64, StoreError>;

    /// Makes the dead conversion `id` owed again, due at `now`, its attempts kept; returns
    /// whether it was dead.
    async fn revive(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError>;

    /// Removes the conversions delivered or dead before `settled_before`, and the captures
    /// expired at `now`; returns how many conversions went.
    async fn purge(&self, settled_before: SystemTime, now: SystemTime) -> Result<u64, StoreError>;
}

/// A shared store is a store: several layers, or a layer and the shop's own code, may hold one.
#[async_trait]
impl<S: TokenStore + ?Sized> TokenStore for std::sync::Arc<S> {
    fn timeout(&self) -> Option<std::time::Duration> {
        (**self).timeout()
    }

    async fn now(&self) -> Result<SystemTime, StoreError> {
        (**self).now().await
    }

    async fn capture(&self, key: TokenKey, capture: NewCapture) -> Result<bool, StoreError> {
        (**self).capture(key, capture).await
    }

    async fn captured(&self, key: TokenKey, now: SystemTime) -> Result<Option<Capture>, StoreError> {
        (**self).captured(key, now).await
    }

    async fn take(&self, key: TokenKey, conversion: NewConversion) -> Result<Taken, StoreError> {
        (**self).take(key, conversion).await
    }

    async fn owe(&self, capture: Capture, conversion: NewConversion) -> Result<Taken, StoreError> {
        (**self).owe(capture, conversion).await
    }

    async fn void(&self, id: ConversionId, now: SystemTime) -> Result<VoidOutcome, StoreError> {
        (**self).void(id, now).await
    }

    async fn claim(
        &self,
        now: SystemTime,
        limit: usize,
        lease: Lease,
    ) -> Result<Vec<OwedConversion>, StoreError> {
        (**self).claim(now, limit, lease).await
    }

    async fn renew(&self, id: ConversionId, lease: Lease) -> Result<bool, StoreError> {
        (**self).renew(id, lease).await
    }

    async fn settle(
        &self,
        id: ConversionId,
        lease: LeaseId,
        settlement: Settlement,
    ) -> Result<bool, StoreError> {
        (**self).settle(id, lease, settlement).await
    }

    async fn settle_all(
        &self,
        settlements: Vec<(ConversionId, LeaseId, Settlement)>,
    ) -> Result<Vec<bool>, StoreError> {
        (**self).settle_all(settlements).await
    }

    async fn list(&self, state: ConversionState, limit: usize) -> Result<Vec<OwedConversion>, StoreError> {
        (**self).list(state, limit).await
    }

    async fn counts(&self) -> Result<ConversionCounts, StoreError> {
        (**self).counts().await
    }

    async fn find(&self, order: &OrderRef) -> Result<Option<OwedConversion>, StoreError> {
        (**self).find(order).await
    }

    async fn wake_parked(&self, now: SystemTime) -> Result<u64, StoreError> {
        (**self).wake_parked(now).await
    }

    async fn revive(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
        (**self).revive(id, now).await
    }

    async fn purge(&self, settled_before: SystemTime, now: SystemTime) -> Result<u64, StoreError> {
        (**self).purge(settled_before, now).await
    }
}
