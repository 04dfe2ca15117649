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

/// The store's clock (see [`TokenStore::now`]), read now and then and counted on this process's
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
        let store = store.now().await?;
        *lock(&self.reading) = Some(Reading { store, asked, answered: Instant::now() });
        Ok(())
    }

    /// Reads the store's clock unless a reading is fresh.
    pub(super) async fn read_if_stale(&self, store: &dyn TokenStore) -> Result<(), StoreError> {
        match *lock(&self.reading) {
            Some(reading) if reading.answered.elapsed() < FRESH_FOR => return Ok(()),
            _ => {}
        }
        self.read(store).await
    }

    /// The store's time now, or earlier; this process's wall clock before the first reading.
    pub(super) fn at_most(&self) -> SystemTime {
        lock(&self.reading).map_or_else(SystemTime::now, |reading| reading.store + reading.answered.elapsed())
    }

    /// The store's time now, or later; this process's wall clock before the first reading.
    pub(super) fn at_least(&self) -> SystemTime {
        lock(&self.reading).map_or_else(SystemTime::now, |reading| reading.store + reading.asked.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MokaTokenStore;

    #[tokio::test]
    async fn a_reading_bounds_the_store_time_from_both_sides() {
        let (store, clock) = (MokaTokenStore::new(10), StoreClock::default());
        clock.read(&store).await.unwrap();
        let (at_most, store_now, at_least) = (clock.at_most(), store.now().await.unwrap(), clock.at_least());
        assert!(at_most <= store_now, "{at_most:?} <= {store_now:?}");
        assert!(store_now <= at_least, "{store_now:?} <= {at_least:?}");
    }
}
