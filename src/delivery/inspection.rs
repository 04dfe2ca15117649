//! What the shop's staff see of a delivery, and retry: the inspection role of
//! [`Delivery`].

use super::Delivery;
use crate::{
    ids::OrderRef,
    store::{Conversion, ConversionCounts, ConversionId, ConversionState, StoreError},
};

impl Delivery {
    /// How many conversions the store holds in each state.
    pub async fn counts(&self) -> Result<ConversionCounts, StoreError> {
        self.store().counts().await
    }

    /// The conversions in `state`, the earliest ordered first, at most `limit`.
    pub async fn list(&self, state: ConversionState, limit: usize) -> Result<Vec<Conversion>, StoreError> {
        self.store().list(state, limit).await
    }

    /// The conversion of the shop's order `order`, if its handler gave the reference (see
    /// [`SovendusConversion::for_order`](crate::SovendusConversion::for_order)).
    pub async fn find(&self, order: &OrderRef) -> Result<Option<Conversion>, StoreError> {
        self.store().find(order).await
    }

    /// Makes every parked conversion due now, once the configuration is fixed, and wakes this
    /// instance's workers; returns how many there were.
    pub async fn retry_parked(&self) -> Result<u64, StoreError> {
        let now = self.inner.sender.clock.read_at_most(self.store()).await?;
        let woken = self.store().retry_parked(now).await?;
        self.inner.workers.wake.notify_one();
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
