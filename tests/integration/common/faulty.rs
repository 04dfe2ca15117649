//! [`FaultyStore`]: a token store that renews leases slowly, not at all, or finds them lost,
//! cannot settle for a while, or fails an order's take before or after writing it, around a
//! real one, for the delivery's fault tests.

use std::{
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};

use async_trait::async_trait;
use tower_sovendus::{
    OrderRef,
    store::{
        Capture, ConversionCounts, ConversionId, ConversionState, Lease, LeaseId, NewCapture, NewConversion,
        OwedConversion, Settlement, StoreError, Taken, TokenKey, TokenStore, VoidOutcome,
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

/// A [`TokenStore`] that passes every operation to `inner`, but renewals and takes as told, and
/// settlements failing until a time.
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    renewals: Mutex<Renewals>,
    takes: Mutex<Takes>,
    settles_fail_until: Mutex<Option<Instant>>,
}

impl<S: TokenStore> FaultyStore<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            renewals: Mutex::default(),
            takes: Mutex::default(),
            settles_fail_until: Mutex::default(),
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
impl<S: TokenStore> TokenStore for FaultyStore<S> {
    fn timeout(&self) -> Option<Duration> {
        self.inner.timeout()
    }

    async fn now(&self) -> Result<SystemTime, StoreError> {
        self.inner.now().await
    }

    async fn capture(&self, key: TokenKey, capture: NewCapture) -> Result<bool, StoreError> {
        self.inner.capture(key, capture).await
    }

    async fn captured(&self, key: TokenKey, now: SystemTime) -> Result<Option<Capture>, StoreError> {
        self.inner.captured(key, now).await
    }

    async fn take(&self, key: TokenKey, conversion: NewConversion) -> Result<Taken, StoreError> {
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
        self.inner.owe(capture, conversion).await
    }

    async fn void(&self, id: ConversionId, now: SystemTime) -> Result<VoidOutcome, StoreError> {
        self.inner.void(id, now).await
    }

    async fn claim(
        &self,
        now: SystemTime,
        limit: usize,
        lease: Lease,
    ) -> Result<Vec<OwedConversion>, StoreError> {
        self.inner.claim(now, limit, lease).await
    }

    async fn renew(&self, id: ConversionId, lease: Lease) -> Result<bool, StoreError> {
        let renewals = *self.renewals.lock().unwrap();
        match renewals {
            Renewals::Work => self.inner.renew(id, lease).await,
            Renewals::Stall(stall) => {
                tokio::time::sleep(stall).await;
                self.inner.renew(id, lease).await
            }
            Renewals::Lost => Ok(false),
            Renewals::Fail => Err(StoreError::backend(std::io::Error::other("the store is away"))),
        }
    }

    async fn settle(
        &self,
        id: ConversionId,
        lease: LeaseId,
        settlement: Settlement,
    ) -> Result<bool, StoreError> {
        let failing = self.settles_fail_until.lock().unwrap().is_some_and(|until| Instant::now() < until);
        if failing {
            return Err(StoreError::backend(std::io::Error::other("the store is away")));
        }
        self.inner.settle(id, lease, settlement).await
    }

    async fn list(&self, state: ConversionState, limit: usize) -> Result<Vec<OwedConversion>, StoreError> {
        self.inner.list(state, limit).await
    }

    async fn counts(&self) -> Result<ConversionCounts, StoreError> {
        self.inner.counts().await
    }

    async fn find(&self, order: &OrderRef) -> Result<Option<OwedConversion>, StoreError> {
        self.inner.find(order).await
    }

    async fn wake_parked(&self, now: SystemTime) -> Result<u64, StoreError> {
        self.inner.wake_parked(now).await
    }

    async fn revive(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
        self.inner.revive(id, now).await
    }

    async fn purge(&self, settled_before: SystemTime, now: SystemTime) -> Result<u64, StoreError> {
        self.inner.purge(settled_before, now).await
    }
}
