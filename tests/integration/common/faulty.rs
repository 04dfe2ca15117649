//! [`FaultyStore`]: a token store that renews leases slowly, not at all, or finds them lost,
//! cannot settle for a while, or fails an order's take before or after writing it, around a
//! real one, for the delivery's fault tests; and [`StoreFaults`], what every instance sharing
//! one store meets at once: an outage, a step of the store's clock.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use async_trait::async_trait;
use tower_sovendus::{
    OrderRef, SovReqToken,
    store::{
        Capture, CaptureStore, Cause, Conversion, ConversionCounts, ConversionId, ConversionState,
        ConversionStore, DailyCounts, Inspection, Lease, LeaseId, ListQuery, NewCapture, NewConversion,
        Outbox, Settlement, StoreError, Taken, TokenKey, TokenStore, VoidOutcome,
    },
};

/// What [`FaultyStore::renew`] does instead of renewing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Renewals {
    /// Renews, as the store it wraps does.
    #[default]
    Work,
    /// Waits this long, then renews.
    Stall(Duration),
    /// Answers that another delivery holds the lease.
    Lost,
    /// Fails, as a store that is away does.
    Fail,
    /// Waits this long, then answers that it timed out, without renewing.
    TimeOut(Duration),
}

/// What [`FaultyStore::take`] does instead of taking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Takes {
    /// Takes, as the store it wraps does.
    #[default]
    Work,
    /// Fails without writing, as a store that refuses the connection does.
    FailBeforeWriting,
    /// Takes, then answers that it timed out, as a store whose commit went through after the
    /// caller stopped waiting does.
    TimeOutAfterWriting,
}

/// What every instance on one store meets at once: the store away (every operation fails, as
/// when the database's host is unreachable or failing over), and steps of its clock.
#[derive(Debug, Default)]
pub struct StoreFaults {
    away: AtomicBool,
    clock_step_ms: AtomicI64,
}

impl StoreFaults {
    /// Takes the store away from every instance, or brings it back.
    pub fn away(&self, away: bool) {
        self.away.store(away, Ordering::SeqCst);
    }

    /// Steps the store's clock by `by_ms` milliseconds, forward or (negative) back.
    pub fn step_clock(&self, by_ms: i64) {
        self.clock_step_ms.fetch_add(by_ms, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.away.load(Ordering::SeqCst) {
            return Err(StoreError::backend(std::io::Error::other("the store is unreachable")));
        }
        Ok(())
    }

    fn stepped(&self, time: SystemTime) -> SystemTime {
        let step = self.clock_step_ms.load(Ordering::SeqCst);
        let by = Duration::from_millis(step.unsigned_abs());
        if step >= 0 { time + by } else { time - by }
    }
}

/// A [`TokenStore`] that passes every operation to `inner`, but renewals and takes as told,
/// settlements failing until a time, and the faults it shares with other instances.
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    renewals: Mutex<Renewals>,
    takes: Mutex<Takes>,
    settles_fail_until: Mutex<Option<Instant>>,
    shared: Arc<StoreFaults>,
}

impl<S: TokenStore> FaultyStore<S> {
    pub fn new(inner: S) -> Self {
        Self::sharing(inner, Arc::default())
    }

    /// An instance's view of `inner`, meeting the faults of `shared` with every other.
    pub fn sharing(inner: S, shared: Arc<StoreFaults>) -> Self {
        Self {
            inner,
            renewals: Mutex::default(),
            takes: Mutex::default(),
            settles_fail_until: Mutex::default(),
            shared,
        }
    }

    pub fn takes(&self, takes: Takes) {
        *self.takes.lock().unwrap() = takes;
    }

    pub fn renewals(&self, renewals: Renewals) {
        *self.renewals.lock().unwrap() = renewals;
    }

    /// Every settlement fails for `away` from now, as on a database that lost its primary.
    pub fn fail_settles_for(&self, away: Duration) {
        *self.settles_fail_until.lock().unwrap() = Some(Instant::now() + away);
    }
}

#[async_trait]
impl<S: TokenStore> CaptureStore for FaultyStore<S> {
    async fn capture(&self, key: TokenKey, capture: NewCapture) -> Result<bool, StoreError> {
        self.shared.check()?;
        self.inner.capture(key, capture).await
    }

    async fn captured(&self, key: TokenKey, now: SystemTime) -> Result<Option<Capture>, StoreError> {
        self.shared.check()?;
        self.inner.captured(key, now).await
    }
}

#[async_trait]
impl<S: TokenStore> ConversionStore for FaultyStore<S> {
    async fn take(&self, key: TokenKey, conversion: NewConversion) -> Result<Taken, StoreError> {
        self.shared.check()?;
        let takes = *self.takes.lock().unwrap();
        match takes {
            Takes::Work => self.inner.take(key, conversion).await,
            Takes::FailBeforeWriting => Err(StoreError::backend(std::io::Error::other("connection refused"))),
            Takes::TimeOutAfterWriting => {
                self.inner.take(key, conversion).await?;
                Err(StoreError::TimedOut(Duration::from_secs(5)))
            }
        }
    }

    async fn owe(&self, capture: Capture, conversion: NewConversion) -> Result<Taken, StoreError> {
        self.shared.check()?;
        self.inner.owe(capture, conversion).await
    }

    async fn void(&self, id: ConversionId, now: SystemTime) -> Result<VoidOutcome, StoreError> {
        self.shared.check()?;
        self.inner.void(id, now).await
    }

    async fn find(&self, order: &OrderRef) -> Result<Option<Conversion>, StoreError> {
        self.shared.check()?;
        self.inner.find(order).await
    }

    async fn purge(&self, settled_before: SystemTime, now: SystemTime) -> Result<u64, StoreError> {
        self.shared.check()?;
        self.inner.purge(settled_before, now).await
    }
}

#[async_trait]
impl<S: TokenStore> Outbox for FaultyStore<S> {
    fn timeout(&self) -> Option<Duration> {
        self.inner.timeout()
    }

    async fn now(&self) -> Result<SystemTime, StoreError> {
        self.shared.check()?;
        Ok(self.shared.stepped(self.inner.now().await?))
    }

    async fn claim(
        &self,
        now: SystemTime,
        limit: usize,
        lease: Lease,
    ) -> Result<Vec<Conversion>, StoreError> {
        self.shared.check()?;
        self.inner.claim(now, limit, lease).await
    }

    async fn renew(&self, id: ConversionId, lease: Lease) -> Result<bool, StoreError> {
        self.shared.check()?;
        let renewals = *self.renewals.lock().unwrap();
        match renewals {
            Renewals::Work => self.inner.renew(id, lease).await,
            Renewals::Stall(stall) => {
                tokio::time::sleep(stall).await;
                self.inner.renew(id, lease).await
            }
            Renewals::Lost => Ok(false),
            Renewals::Fail => Err(StoreError::backend(std::io::Error::other("the store is away"))),
            Renewals::TimeOut(after) => {
                tokio::time::sleep(after).await;
                Err(StoreError::TimedOut(after))
            }
        }
    }

    async fn settle(
        &self,
        id: ConversionId,
        lease: LeaseId,
        settlement: Settlement,
    ) -> Result<bool, StoreError> {
        self.shared.check()?;
        let failing = self.settles_fail_until.lock().unwrap().is_some_and(|until| Instant::now() < until);
        if failing {
            return Err(StoreError::backend(std::io::Error::other("the store is away")));
        }
        self.inner.settle(id, lease, settlement).await
    }
}

#[async_trait]
impl<S: TokenStore> Inspection for FaultyStore<S> {
    async fn list(&self, query: &ListQuery) -> Result<Vec<Conversion>, StoreError> {
        self.shared.check()?;
        self.inner.list(query).await
    }

    async fn daily(&self, from: SystemTime, until: SystemTime) -> Result<Vec<DailyCounts>, StoreError> {
        self.shared.check()?;
        self.inner.daily(from, until).await
    }

    async fn causes(&self, state: ConversionState, limit: usize) -> Result<Vec<Cause>, StoreError> {
        self.shared.check()?;
        self.inner.causes(state, limit).await
    }

    async fn get(&self, id: ConversionId) -> Result<Option<Conversion>, StoreError> {
        self.shared.check()?;
        self.inner.get(id).await
    }

    async fn find_token(&self, token: &SovReqToken) -> Result<Option<Conversion>, StoreError> {
        self.shared.check()?;
        self.inner.find_token(token).await
    }

    async fn retry_parked_one(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
        self.shared.check()?;
        self.inner.retry_parked_one(id, now).await
    }

    async fn counts(&self) -> Result<ConversionCounts, StoreError> {
        self.shared.check()?;
        self.inner.counts().await
    }

    async fn retry_parked(&self, now: SystemTime) -> Result<u64, StoreError> {
        self.shared.check()?;
        self.inner.retry_parked(now).await
    }

    async fn retry_dead(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
        self.shared.check()?;
        self.inner.retry_dead(id, now).await
    }
}
