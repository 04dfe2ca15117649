//! [`StoreClock`]: the store's time, as this instance knows it between two readings.

use std::{
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};

use crate::{
    store::{StoreError, TokenStore},
    sync::lock,
};

/// How old a reading may be before an order handler's send reads the clock again: the workers
/// read it before every claim, so this only matters when they are idle for long.
const FRESH_FOR: Duration = Duration::from_secs(60);

/// The store's clock (see [`Outbox::now`]), read now and then and counted on this process's
/// monotonic clock in between: a wall-clock step or a paused process moves none of its times.
///
/// A reading is taken somewhere between asking and the answer, so each time it gives is a
/// bound: [`at_most`](Self::at_most) judges what is due and which leases ran out (never too
/// early), [`at_least`](Self::at_least) sets where a lease ends (never too soon).
#[derive(Debug, Default)]
pub(super) struct StoreClock {
    reading: Mutex<Option<Reading>>,
}

#[derive(Debug, Clone, Copy)]
struct Reading {
    store: SystemTime,
    asked: Instant,
    answered: Instant,
}

impl StoreClock {
    /// Reads the store's clock.
    pub(super) async fn read(&self, store: &dyn TokenStore) -> Result<(), StoreError> {
        let asked = Instant::now();
        let store = store.now().await.map_err(read_changed_nothing)?;
        *lock(&self.reading) = Some(Reading { store, asked, answered: Instant::now() });
        Ok(())
    }

    /// Reads the store's clock; returns its time now, or earlier (see [`at_most`](Self::at_most)).
    pub(super) async fn read_at_most(&self, store: &dyn TokenStore) -> Result<SystemTime, StoreError> {
        self.read(store).await?;
        Ok(self.at_most())
    }

    /// Reads the store's clock unless a reading is fresh.
    pub(super) async fn read_if_stale(&self, store: &dyn TokenStore) -> Result<(), StoreError> {
        match *lock(&self.reading) {
            Some(reading) if reading.answered.elapsed() < FRESH_FOR => return Ok(()),
            _ => {}
        }
        self.read(store).await
    }

    /// The store's time now, or earlier; this process's wall clock before the first reading,
    /// which the delivery takes before any use.
    pub(super) fn at_most(&self) -> SystemTime {
        lock(&self.reading).map_or_else(SystemTime::now, |reading| reading.store + reading.answered.elapsed())
    }

    /// The store's time now, or later; this process's wall clock before the first reading.
    pub(super) fn at_least(&self) -> SystemTime {
        lock(&self.reading).map_or_else(SystemTime::now, |reading| reading.store + reading.asked.elapsed())
    }
}

/// A reading of the clock that failed changed nothing, whatever the store says of the outcome.
fn read_changed_nothing(error: StoreError) -> StoreError {
    if error.is_outcome_unknown() { StoreError::Backend(Box::new(error)) } else { error }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_counts_from_the_answer_at_most_and_from_the_question_at_least() {
        // The store answered T, somewhere between asking (50 ms ago) and the answer (10 ms ago).
        let (store, now) = (SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000), Instant::now());
        let reading = Reading {
            store,
            asked: now - Duration::from_millis(50),
            answered: now - Duration::from_millis(10),
        };
        let clock = StoreClock { reading: Mutex::new(Some(reading)) };
        let (at_most, at_least) = (clock.at_most(), clock.at_least());
        let after = |time: SystemTime| time.duration_since(store).unwrap();
        assert!(
            after(at_most) >= Duration::from_millis(10) && after(at_most) < Duration::from_millis(50),
            "{at_most:?}"
        );
        assert!(after(at_least) >= Duration::from_millis(50), "{at_least:?}");
        assert!(
            at_least.duration_since(at_most).unwrap() >= Duration::from_millis(39),
            "the gap is the reading's round trip"
        );
    }

    #[test]
    fn a_reading_that_timed_out_changed_nothing() {
        let error = read_changed_nothing(StoreError::TimedOut(Duration::from_secs(1)));
        assert!(!error.is_outcome_unknown(), "{error}");
    }
}
