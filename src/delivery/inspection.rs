//! What the shop's staff see of a delivery, and retry: the inspection role of
//! [`Delivery`].

use super::{Delivery, DeliveryHealth};
use std::time::SystemTime;

use crate::{
    ids::{OrderRef, SovReqToken},
    store::{
        Cause, Conversion, ConversionCounts, ConversionId, ConversionState, DailyCounts, ListQuery,
        StoreError,
    },
    sync::lock,
};

impl Delivery {
    /// How many conversions the store holds in each state.
    pub async fn counts(&self) -> Result<ConversionCounts, StoreError> {
        self.store().counts().await
    }

    /// A page of the conversions `query` asks for: one state's, filtered, oldest or newest
    /// first, after the [cursor](crate::store::Cursor) of the page before.
    ///
    /// ```
    /// # async fn parked(delivery: tower_sovendus::Delivery) -> Result<(), tower_sovendus::store::StoreError> {
    /// use tower_sovendus::store::{ConversionState, Cursor, ListQuery, TimeAxis};
    ///
    /// let mut query = ListQuery::new(ConversionState::Parked).newest_first().limit(50);
    /// loop {
    ///     let page = delivery.list(&query).await?;
    ///     for parked in &page {
    ///         tracing::warn!(%parked, "waiting for the configuration to be fixed");
    ///     }
    ///     match page.last().and_then(|last| Cursor::after(last, TimeAxis::Ordered)) {
    ///         Some(cursor) if page.len() == query.limit => query = query.after(cursor),
    ///         _ => break,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self, query: &ListQuery) -> Result<Vec<Conversion>, StoreError> {
        self.store().list(query).await
    }

    /// The conversions ordered on each day (UTC) from the one `from` falls on until `until`,
    /// by the state each is in now, days without any included.
    pub async fn daily(&self, from: SystemTime, until: SystemTime) -> Result<Vec<DailyCounts>, StoreError> {
        self.store().daily(from, until).await
    }

    /// Why the conversions in `state` failed their last call, the most frequent cause first,
    /// at most `limit` causes: for the parked ones, what in the configuration to fix.
    pub async fn causes(&self, state: ConversionState, limit: usize) -> Result<Vec<Cause>, StoreError> {
        self.store().causes(state, limit).await
    }

    /// The conversion `id`, if the store holds it.
    pub async fn get(&self, id: ConversionId) -> Result<Option<Conversion>, StoreError> {
        self.store().get(id).await
    }

    /// The conversion of `token`, if it has one: what Sovendus asks about.
    pub async fn find_token(&self, token: &SovReqToken) -> Result<Option<Conversion>, StoreError> {
        self.store().find_token(token).await
    }

    /// The store's time now, as the store judges leases: compare a conversion's
    /// [`held_until`](Conversion::held_until) with it.
    pub async fn now(&self) -> Result<SystemTime, StoreError> {
        self.inner.sender.clock.read_at_most(self.store()).await
    }

    /// The conversion of the shop's order `order`, if its handler gave the reference (see
    /// [`SovendusConversion::for_order`](crate::SovendusConversion::for_order)).
    pub async fn find(&self, order: &OrderRef) -> Result<Option<Conversion>, StoreError> {
        self.store().find(order).await
    }

    /// How this instance's delivery is doing: its workers, and its last calls.
    pub fn health(&self) -> DeliveryHealth {
        let last = lock(&self.inner.sender.last_calls).clone();
        let (running, workers, busy) = self.inner.workers.activity();
        DeliveryHealth {
            running,
            workers,
            busy,
            last_delivered_at: last.delivered_at,
            last_error: last.error,
        }
    }

    /// Makes every parked conversion due now, once the configuration is fixed, and wakes this
    /// instance's workers; returns how many there were.
    pub async fn retry_parked(&self) -> Result<u64, StoreError> {
        let now = self.inner.sender.clock.read_at_most(self.store()).await?;
        let woken = self.store().retry_parked(now).await?;
        self.inner.workers.wake.notify_one();
        Ok(woken)
    }

    /// Makes the parked conversion `id` due now, and wakes this instance's workers; returns
    /// whether it was parked.
    pub async fn retry_parked_one(&self, id: ConversionId) -> Result<bool, StoreError> {
        let now = self.inner.sender.clock.read_at_most(self.store()).await?;
        let woken = self.store().retry_parked_one(id, now).await?;
        if woken {
            tracing::info!(%id, "a parked Sovendus conversion is due now");
            self.inner.workers.wake.notify_one();
        }
        Ok(woken)
    }

    /// Makes the dead conversion `id` owed again, due now, and wakes this instance's workers;
    /// returns whether it was dead. For a conversion that died of the schedule's end (Sovendus
    /// away for longer than [`give_up_after`](crate::DeliverySchedule::give_up_after)) once
    /// Sovendus answers again: it gets one call, and is dead again if that fails. One that
    /// Sovendus refused (422) is refused again. Its last call may have reached Sovendus
    /// unanswered, so a revived conversion may be booked twice: revive on purpose, one by one.
    pub async fn retry_dead(&self, id: ConversionId) -> Result<bool, StoreError> {
        let now = self.inner.sender.clock.read_at_most(self.store()).await?;
        let revived = self.store().retry_dead(id, now).await?;
        if revived {
            tracing::info!(%id, "a dead Sovendus conversion is owed again");
            self.inner.workers.wake.notify_one();
        }
        Ok(revived)
    }
}
