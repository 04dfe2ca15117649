//! [`Inspection`]: the role of a store that shows the staff where the conversions stand, and
//! retries those waiting on them.

use std::{sync::Arc, time::SystemTime};

use super::{Conversion, ConversionCounts, ConversionId, ConversionState, StoreError, async_trait};

/// What the shop's staff see and do: [lists](Self::list) and [counts](Self::counts) of the
/// conversions by state, and the retries of those that wait for them: the
/// [parked](Self::retry_parked) ones once the configuration is fixed, a
/// [dead](Self::retry_dead) one once Sovendus answers again.
///
/// Rules (checked by `conformance::inspection`): lists are the earliest ordered first; counts
/// and lists agree; a retry makes a conversion due at the time given, or when a live lease on
/// it runs out if that is later.
#[async_trait]
pub trait Inspection: std::fmt::Debug + Send + Sync + 'static {
    /// The conversions in `state`, the earliest ordered first, at most `limit`.
    async fn list(&self, state: ConversionState, limit: usize) -> Result<Vec<Conversion>, StoreError>;

    /// How many conversions are in each state.
    async fn counts(&self) -> Result<ConversionCounts, StoreError>;

    /// Makes every parked conversion due at `now`; returns how many there were.
    async fn retry_parked(&self, now: SystemTime) -> Result<u64, StoreError>;

    /// Makes the dead conversion `id` owed again, due at `now`, its attempts kept; returns
    /// whether it was dead.
    async fn retry_dead(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError>;
}

#[async_trait]
impl<S: Inspection + ?Sized> Inspection for Arc<S> {
    async fn list(&self, state: ConversionState, limit: usize) -> Result<Vec<Conversion>, StoreError> {
        (**self).list(state, limit).await
    }

    async fn counts(&self) -> Result<ConversionCounts, StoreError> {
        (**self).counts().await
    }

    async fn retry_parked(&self, now: SystemTime) -> Result<u64, StoreError> {
        (**self).retry_parked(now).await
    }

    async fn retry_dead(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
        (**self).retry_dead(id, now).await
    }
}
