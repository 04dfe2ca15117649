//! [`Console`]: the console's state, its delivery and the counts per day it remembers.

use std::time::{Duration, SystemTime};

use axum::extract::FromRef;
use moka::future::Cache;

use super::refusal::Refusal;
use crate::{
    Delivery,
    store::{ConversionCounts, DAY_MS, DailyCounts, day_of, from_millis, to_millis},
};

/// How long the counts of a day before yesterday are kept: such days change only as their last
/// conversions settle, retry or are purged.
const KEEP_PAST_DAYS: Duration = Duration::from_secs(5 * 60);
/// The most days kept: more than the longest chart.
const MOST_DAYS: u64 = 400;
/// How long the counts per state are kept between two overviews: counting every state reads a
/// range of the index as long as the table (the delivered ones are most of it), so the staff
/// looking at once share one count a few seconds. An action in the console counts again.
pub(super) const KEEP_COUNTS: Duration = Duration::from_secs(10);

/// What every page of the console shares.
#[derive(Clone)]
pub(super) struct Console {
    pub(super) delivery: Delivery,
    /// The counts of days before yesterday, by the day's start in milliseconds.
    past_days: Cache<i64, ConversionCounts>,
    /// The counts per state, and when they were read, for [`KEEP_COUNTS`].
    counts: Cache<(), (ConversionCounts, SystemTime)>,
}

impl Console {
    pub(super) fn new(delivery: Delivery) -> Self {
        let past_days = Cache::builder().max_capacity(MOST_DAYS).time_to_live(KEEP_PAST_DAYS).build();
        let counts = Cache::builder().max_capacity(1).time_to_live(KEEP_COUNTS).build();
        Self { delivery, past_days, counts }
    }

    /// The counts per state, read at most [`KEEP_COUNTS`] ago, and when they were read (the
    /// store's time).
    pub(super) async fn counts(&self) -> Result<(ConversionCounts, SystemTime), Refusal> {
        if let Some(kept) = self.counts.get(&()).await {
            return Ok(kept);
        }
        let read = (self.delivery.counts().await?, self.delivery.now().await?);
        self.counts.insert((), read).await;
        Ok(read)
    }

    /// Forgets the counts: an action changed them.
    pub(super) async fn changed(&self) {
        self.counts.invalidate(&()).await;
    }

    /// The counts per day from the day `from` falls on until `until`: today and yesterday read
    /// now, the days before from what was read at most [`KEEP_PAST_DAYS`] ago, so that a chart
    /// reads the whole span once every five minutes, not on every page.
    pub(super) async fn daily(
        &self,
        from: SystemTime,
        until: SystemTime,
    ) -> Result<Vec<DailyCounts>, Refusal> {
        let (first, recent) = (day_of(to_millis(from)), day_of(to_millis(until)) - DAY_MS);
        let mut days = Vec::new();
        if first < recent {
            let mut kept = Vec::new();
            for day in (first..recent).step_by(DAY_MS.unsigned_abs() as usize) {
                match self.past_days.get(&day).await {
                    Some(counts) => kept.push(DailyCounts::new(from_millis(day), counts)),
                    None => break,
                }
            }
            if kept.len() as i64 != (recent - first) / DAY_MS {
                kept = self.delivery.daily(from_millis(first), from_millis(recent)).await?;
                for day in &kept {
                    self.past_days.insert(to_millis(day.day), day.counts).await;
                }
            }
            days = kept;
        }
        days.extend(self.delivery.daily(from_millis(first.max(recent)), until).await?);
        Ok(days)
    }
}

impl FromRef<Console> for Delivery {
    fn from_ref(console: &Console) -> Self {
        console.delivery.clone()
    }
}
