//! [`Inspection`]: the role of a store that shows the staff where the conversions stand, and
//! retries those waiting on them.

use std::{sync::Arc, time::SystemTime};

use super::{
    Cause, Conversion, ConversionCounts, ConversionId, ConversionState, DailyCounts, ListQuery, StoreError,
    async_trait,
};
use crate::ids::SovReqToken;

/// What the shop's staff see and do: [pages](Self::list) of each state's conversions,
/// [counts](Self::counts) (also [per day](Self::daily)), why conversions wait
/// ([causes](Self::causes)), a conversion [by its ID](Self::get) or [its token](Self::find_token), and the retries of
/// those that wait for them: the [parked](Self::retry_parked) ones once the configuration is
/// fixed, a [dead](Self::retry_dead) one once Sovendus answers again.
///
/// Rules (checked by `conformance::inspection`): a list holds what its [`ListQuery`] admits
/// ([`ListQuery::admits`]), in its order, by time on its axis then ID, at most its limit, so
/// that pages after one another's last [`Cursor`](super::Cursor) list each conversion once;
/// counts, counts per day and lists agree; a retry makes a conversion due at the time given, or
/// when a live lease on it runs out if that is later.
#[async_trait]
pub trait Inspection: std::fmt::Debug + Send + Sync + 'static {
    /// A page of the conversions `query` asks for.
    async fn list(&self, query: &ListQuery) -> Result<Vec<Conversion>, StoreError>;

    /// How many conversions are in each state.
    async fn counts(&self) -> Result<ConversionCounts, StoreError>;

    /// The conversions ordered on each day (UTC) from the one `from` falls on until `until`,
    /// by the state each is in now; every day is listed, those without a conversion too.
    async fn daily(&self, from: SystemTime, until: SystemTime) -> Result<Vec<DailyCounts>, StoreError>;

    /// Why the conversions in `state` failed their last attempt (their `last_error`), with how
    /// many failed each way, the most frequent first, at most `limit` causes.
    async fn causes(&self, state: ConversionState, limit: usize) -> Result<Vec<Cause>, StoreError>;

    /// The conversion `id`, if the store holds it.
    async fn get(&self, id: ConversionId) -> Result<Option<Conversion>, StoreError>;

    /// The conversion of `token`, if it has one.
    async fn find_token(&self, token: &SovReqToken) -> Result<Option<Conversion>, StoreError>;

    /// Makes every parked conversion due at `now`; returns how many there were.
    async fn retry_parked(&self, now: SystemTime) -> Result<u64, StoreError>;

    /// Makes the parked conversion `id` due at `now`; returns whether it was parked.
    async fn retry_parked_one(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError>;

    /// Makes the dead conversion `id` owed again, due at `now`, its attempts kept; returns
    /// whether it was dead.
    async fn retry_dead(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError>;
}

#[async_trait]
impl<S: Inspection + ?Sized> Inspection for Arc<S> {
    async fn list(&self, query: &ListQuery) -> Result<Vec<Conversion>, StoreError> {
        (**self).list(query).await
    }

    async fn counts(&self) -> Result<ConversionCounts, StoreError> {
        (**self).counts().await
    }

    async fn daily(&self, from: SystemTime, until: SystemTime) -> Result<Vec<DailyCounts>, StoreError> {
        (**self).daily(from, until).await
    }

    async fn causes(&self, state: ConversionState, limit: usize) -> Result<Vec<Cause>, StoreError> {
        (**self).causes(state, limit).await
    }

    async fn get(&self, id: ConversionId) -> Result<Option<Conversion>, StoreError> {
        (**self).get(id).await
    }

    async fn find_token(&self, token: &SovReqToken) -> Result<Option<Conversion>, StoreError> {
        (**self).find_token(token).await
    }

    async fn retry_parked(&self, now: SystemTime) -> Result<u64, StoreError> {
        (**self).retry_parked(now).await
    }

    async fn retry_parked_one(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
        (**self).retry_parked_one(id, now).await
    }

    async fn retry_dead(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
        (**self).retry_dead(id, now).await
    }
}
