//! [`Inspection`] on SQL: the staff's pages, counts and retries.

use std::{collections::HashMap, time::SystemTime};

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{SqlTokenStore, as_i64, backend, on_pool, queries, read};
use crate::{
    ids::SovReqToken,
    store::{
        Cause, Conversion, ConversionCounts, ConversionId, ConversionState, DailyCounts, Inspection,
        ListQuery, StoreError, async_trait, listing, records::to_millis,
    },
};

/// The `count` column of `row`, if it decodes to a count.
fn count<'r, R>(row: &'r R) -> Option<u64>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get::<i64, _>("count").ok().and_then(|count| u64::try_from(count).ok())
}

#[async_trait]
impl Inspection for SqlTokenStore {
    async fn list(&self, query: &ListQuery) -> Result<Vec<Conversion>, StoreError> {
        self.within_timeout(async {
            on_pool!(self, |pool| {
                let mut list = queries::list("", query);
                let rows = list.build().fetch_all(pool).await.map_err(backend)?;
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
                    match (state, count(row)) {
                        (Some(state), Some(count)) => *counts.of_mut(state) += count,
                        _ => tracing::warn!("Sovendus conversions in an unknown state are not counted"),
                    }
                }
                Ok(counts)
            })
        })
        .await
    }

    async fn daily(&self, from: SystemTime, until: SystemTime) -> Result<Vec<DailyCounts>, StoreError> {
        // From the midnight `from` falls on to the end of the day `until` falls in.
        let first = listing::day_of(to_millis(from));
        let end = listing::day_of(to_millis(until).saturating_sub(1)).saturating_add(listing::DAY_MS);
        let by_day: HashMap<i64, ConversionCounts> = self
            .within_timeout(async {
                on_pool!(self, |pool| {
                    let rows = sqlx::query(queries::DAILY)
                        .bind(first)
                        .bind(end.max(first))
                        .fetch_all(pool)
                        .await
                        .map_err(backend)?;
                    let mut by_day: HashMap<i64, ConversionCounts> = HashMap::new();
                    for row in &rows {
                        let state =
                            row.try_get::<String, _>("state").ok().and_then(|state| state.parse().ok());
                        let day = row.try_get::<i64, _>("day").ok();
                        match (state, day, count(row)) {
                            (Some(state), Some(day), Some(count)) => {
                                let start = first.saturating_add(day.saturating_mul(listing::DAY_MS));
                                *by_day.entry(start).or_default().of_mut(state) += count;
                            }
                            _ => tracing::warn!("a count per day of Sovendus conversions does not decode"),
                        }
                    }
                    Ok(by_day)
                })
            })
            .await?;
        Ok(listing::every_day(from, until, |day| by_day.get(&day).copied().unwrap_or_default()))
    }

    async fn causes(&self, state: ConversionState, limit: usize) -> Result<Vec<Cause>, StoreError> {
        self.within_timeout(async {
            on_pool!(self, |pool, dialect| {
                let rows = sqlx::query(dialect.causes)
                    .bind(state.as_str())
                    .bind(as_i64(limit))
                    .fetch_all(pool)
                    .await
                    .map_err(backend)?;
                let mut causes = Vec::with_capacity(rows.len());
                for row in &rows {
                    match (row.try_get::<String, _>("last_error").ok(), count(row)) {
                        (Some(reason), Some(count)) => causes.push(Cause::new(reason, count)),
                        _ => tracing::warn!("a cause of Sovendus conversions does not decode"),
                    }
                }
                Ok(causes)
            })
        })
        .await
    }

    async fn get(&self, id: ConversionId) -> Result<Option<Conversion>, StoreError> {
        self.first_conversion(queries::CONVERSION_BY_ID, id.to_string()).await
    }

    async fn find_token(&self, token: &SovReqToken) -> Result<Option<Conversion>, StoreError> {
        self.first_conversion(queries::CONVERSION_BY_TOKEN, token.as_str().to_owned()).await
    }

    async fn retry_parked_one(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
        self.writing(async {
            on_pool!(self, |pool| {
                sqlx::query(queries::WAKE_PARKED_ONE)
                    .bind(to_millis(now))
                    .bind(id.to_string())
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected() == 1)
                    .map_err(backend)
            })
        })
        .await
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
