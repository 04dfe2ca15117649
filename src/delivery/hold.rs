//! [`Hold`]: what a delivery knows of its lease while it sends.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crate::sync::lock;

/// A delivery's hold on the conversion it sends: lost once a renewal says another delivery took
/// it, and no longer trusted once no renewal went through for five sixths of the lease, on this
/// process's monotonic clock. A delivery starts no further attempt, nor a wait for one, without
/// it; an attempt already under way finishes and is settled.
pub(super) struct Hold {
    lease: Duration,
    lost: AtomicBool,
    /// When the last renewal that went through was asked for.
    renewed_at: Mutex<Instant>,
}

impl Hold {
    /// The hold on a lease `lease` long, taken at `since`: no later than the store's clock was
    /// read for its end (see [`StoreClock::at_least`](super::clock::StoreClock::at_least)).
    pub(super) fn new(lease: Duration, since: Instant) -> Self {
        Self { lease, lost: AtomicBool::new(false), renewed_at: Mutex::new(since) }
    }

    /// Whether a new attempt may start.
    pub(super) fn is_held(&self) -> bool {
        !self.lost.load(Ordering::Relaxed) && lock(&self.renewed_at).elapsed() < self.lease - self.lease / 6
    }

    /// A renewal asked for at `asked` went through (one asked earlier and answered later moves
    /// nothing back).
    pub(super) fn renewed(&self, asked: Instant) {
        let mut renewed_at = lock(&self.renewed_at);
        *renewed_at = (*renewed_at).max(asked);
    }

    /// A renewal found the lease ended: another delivery took it, or the shop voided it.
    pub(super) fn lose(&self) {
        self.lost.store(true, Ordering::Relaxed);
    }

    /// Whether a renewal found the lease ended.
    pub(super) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// When the last renewal that went through was asked for (or the lease taken).
    pub(super) fn renewed_at(&self) -> Instant {
        *lock(&self.renewed_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_is_lost_or_goes_stale_without_renewals() {
        let lease = Duration::from_millis(600);
        let fresh = Hold::new(lease, Instant::now());
        assert!(fresh.is_held());
        fresh.lose();
        assert!(!fresh.is_held(), "lost to another delivery");

        let old = Hold::new(lease, Instant::now() - lease * 9 / 10);
        assert!(!old.is_held(), "nine tenths of the lease used, no renewal");
        old.renewed(Instant::now() - lease);
        assert!(!old.is_held(), "the last renewal is a lease old");
        old.renewed(Instant::now());
        assert!(old.is_held(), "renewed");
        old.renewed(Instant::now() - lease);
        assert!(old.is_held(), "an older renewal answered late moves nothing back");
    }
}
