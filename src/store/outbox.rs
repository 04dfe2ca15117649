//! [`Outbox`]: the role of a store that the delivery workers drive: what is due, under whose
//! lease, and how it ended.

use std::{sync::Arc, time::SystemTime};

use super::{Conversion, ConversionId, Lease, LeaseId, Settlement, StoreError, async_trait};

/// What the delivery workers of every instance sharing the store drive: they
/// [claim](Self::claim) due conversions under a [`Lease`], [renew](Self::renew) it while they
/// send, and [settle](Self::settle) each with its outcome. The lease covers its renewals and a
/// quarantine after them ([`DeliverySchedule::quarantine`](crate::DeliverySchedule::quarantine)):
/// a lease that runs out (its instance crashed, or was cut off for longer than the quarantine)
/// makes the conversion due again, for any instance.
///
/// Rules (checked by `conformance::outbox`):
///
/// - Times are the caller's, read from the store's [clock](Self::now), so that instances whose
///   wall clocks disagree judge due times and leases alike: Postgres' `clock_timestamp()`,
///   Redis' `TIME`, the process's monotonic clock for the memory store, the host's wall clock
///   for SQLite (whose instances share a host).
/// - [`claim`](Self::claim) is atomic across everything sharing the store: of concurrent
///   claims, each conversion goes to one.
/// - [`renew`](Self::renew) and [`settle`](Self::settle) do nothing unless the lease named is
///   the conversion's current one (and a renewal nothing once it is voided); a renewal keeps
///   the later end. A settlement that says delivered (a 200) is recorded whatever the lease,
///   unless the conversion is delivered already, or voided with no lease left.
#[async_trait]
pub trait Outbox: std::fmt::Debug + Send + Sync + 'static {
    /// The store's clock: what every instance sharing the store judges due times and leases
    /// by. A store shared over the network answers its server's; one whose instances share a
    /// host may answer `SystemTime::now()`. A store that wraps another answers the inner one's.
    async fn now(&self) -> Result<SystemTime, StoreError>;

    /// How long the store waits on one operation before giving up, if it gives up: a lease
    /// must leave a renewal that long to land (see
    /// [`DeliverySchedule::lease`](crate::DeliverySchedule::lease)). `None` by default.
    fn timeout(&self) -> Option<std::time::Duration> {
        None
    }

    /// Leases up to `limit` owed or parked conversions due at `now` (their next attempt
    /// reached, and no live lease on them), the earliest due first.
    async fn claim(&self, now: SystemTime, limit: usize, lease: Lease)
    -> Result<Vec<Conversion>, StoreError>;

    /// Extends the lease on `id` to `lease.until` (keeping a later end), if `lease.id` still
    /// holds it and the conversion is not voided; returns whether it did.
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
}

#[async_trait]
impl<S: Outbox + ?Sized> Outbox for Arc<S> {
    async fn now(&self) -> Result<SystemTime, StoreError> {
        (**self).now().await
    }

    fn timeout(&self) -> Option<std::time::Duration> {
        (**self).timeout()
    }

    async fn claim(
        &self,
        now: SystemTime,
        limit: usize,
        lease: Lease,
    ) -> Result<Vec<Conversion>, StoreError> {
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
}
