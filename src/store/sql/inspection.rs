//! [`Inspection`] on SQL: the staff's pages, counts and retries.

use std::time::SystemTime;

use sqlx::Row;

use super::{SqlTokenStore, as_i64, backend, on_pool, queries, read};
use crate::{
    ids::SovReqToken,
    store::{
        Cause, Conversion, ConversionCounts, ConversionId, ConversionState, DailyCounts, Inspection,
        ListQuery, StoreError, async_trait, records::to_millis,
    },
};

#[async_trait]
impl Inspection for SqlTokenStore {
    async fn list(&self, query: &ListQuery) -> Result<Vec<Conversion>, StoreError> {
        self.within_timeout(async {
            on_pool!(self, |pool| {
                let rows = sqlx::query(queries::LIST)
                    .bind(query.state.as_str())
                    .bind(as_i64(query.limit))
                    .fetch_all(pool)
                    .await
                    .map_err(backend)?;
                Ok(rows.iter().filter_map(read::readable_conversion).collect())
            })
        })
        .await
    }

    async fn counts(&self) -> Result<ConversionCounts, StoreError> {
        self.within_timeout(async {
            on_pool!(self, |pool| {
                let rows = sqlx::query(queries::COUNTS).fetch_all(pool).await.map_err(backend)?;
                let mut counts = ConversionCounts::default();
                for row in &rows {
                    let state = row.try_get::<String, _>("state").ok().and_then(|state| state.parse().ok());
                    let count =
                        row.try_get::<i64, _>("count").ok().and_then(|count| u64::try_from(count).ok());
                    match (state, count) {
                        (Some(state), Some(count)) => *counts.of_mut(state) += count,
                        _ => tracing::warn!("Sovendus conversions in an unknown state are not counted"),
                    }
                }
                Ok(counts)
            })
        })
        .await
    }

    async fn daily(&self, _from: SystemTime, _until: SystemTime) -> Result<Vec<DailyCounts>, StoreError> {
        Err(StoreError::backend(std::io::Error::other("TODO daily")))
    }

    async fn causes(&self, _state: ConversionState, _limit: usize) -> Result<Vec<Cause>, StoreError> {
        Err(StoreError::backend(std::io::Error::other("TODO causes")))
    }

    async fn get(&self, _id: ConversionId) -> Result<Option<Conversion>, StoreError> {
        Err(StoreError::backend(std::io::Error::other("TODO get")))
    }

    async fn find_token(&self, _token: &SovReqToken) -> Result<Option<Conversion>, StoreError> {
        Err(StoreError::backend(std::io::Error::other("TODO find_token")))
    }

    async fn retry_parked_one(&self, _id: ConversionId, _now: SystemTime) -> Result<bool, StoreError> {
        Err(StoreError::backend(std::io::Error::other("TODO retry_parked_one")))
    }

    async fn retry_parked(&self, now: SystemTime) -> Result<u64, StoreError> {
        self.writing(async {
            on_pool!(self, |pool| {
                sqlx::query(queries::WAKE_PARKED)
                    .bind(to_millis(now))
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
                    .map_err(backend)
            })
        })
        .await
    }

    async fn retry_dead(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
        self.writing(async {
            on_pool!(self, |pool| {
                sqlx::query(queries::REVIVE)
                    .bind(id.to_string())
                    .bind(to_millis(now))
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected() == 1)
                    .map_err(backend)
            })
        })
        .await
    }
}
