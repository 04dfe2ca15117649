//! [`DeliverySchedule`]: when an owed conversion is attempted again, how long settled ones are
//! kept, and how deliveries hold what they send. Plain data.

use std::time::{Duration, SystemTime};

/// When an owed conversion is attempted again after its first delivery (with its quick
/// [retries](crate::RetryPolicy)) failed, and how the delivery workers go about it.
///
/// The waits grow with the conversion's age: the first is `first_wait`, each next one as long
/// as the conversion is old, so they double, up to `max_wait`, each plus a random jitter of up
/// to a tenth. A `Retry-After` from Sovendus is honoured. Once the conversion is
/// `give_up_after` old it is tried one last time and, failing that, becomes dead. Parked
/// conversions wait the same, but never die of age: they wait, every `max_wait` once they
/// are old, for the configuration to be fixed, and are tried at once when a delivery starts
/// and on [`retry_parked`](crate::Delivery::retry_parked).
///
/// A delivery holds each conversion it sends under a lease of `lease`, renewed while it sends,
/// and starts an attempt only while its last renewal is fresh. A holder that goes silent (its
/// instance crashed, paused, or cut off from the store) keeps the conversion for `quarantine`
/// more: its call may be out, or its 200 heard and not yet written, and nobody sends the
/// conversion again before it could record what it heard. Each instance looks for due
/// conversions every `poll_interval`, and at once when an order of its own makes one owed.
///
/// ```
/// use std::time::Duration;
/// use tower_sovendus::{DeliverySchedule, SovendusConfig};
///
/// let schedule = DeliverySchedule::default()
///     .first_wait(Duration::from_secs(30))
///     .give_up_after(Duration::from_secs(3 * 24 * 60 * 60));
/// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX").schedule(schedule).build()?;
/// assert_eq!(config.schedule().first_wait, Duration::from_secs(30));
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct DeliverySchedule {
    /// The wait after the first delivery failed.
    pub first_wait: Duration,
    /// The longest wait between two attempts, before jitter.
    pub max_wait: Duration,
    /// How old a conversion may grow before it is given up, counted from its order.
    pub give_up_after: Duration,
    /// How long settled conversions (delivered, dead and voided) are kept, for inspection, for
    /// checking Sovendus' invoice, and so that their token converts no second time; at least the
    /// token TTL. 90 days by default: last month's invoice can always be checked. Each costs
    /// about 360 bytes on SQLite and 670 on Postgres, indexes included.
    pub keep_settled_for: Duration,
    /// How long a delivery holds a conversion without renewing its lease.
    pub lease: Duration,
    /// How long a conversion stays with a holder gone silent, past its lease, before another
    /// delivery may send it again.
    pub quarantine: Duration,
    /// How often each instance looks for due conversions.
    pub poll_interval: Duration,
    /// Whether waits get a random jitter.
    pub jitter: bool,
}

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl Default for DeliverySchedule {
    fn default() -> Self {
        Self {
            first_wait: MINUTE,
            max_wait: 60 * MINUTE,
            give_up_after: 7 * DAY,
            keep_settled_for: 90 * DAY,
            lease: Duration::from_secs(15),
            quarantine: 5 * MINUTE,
            poll_interval: Duration::from_secs(5),
            jitter: true,
        }
    }
}

impl DeliverySchedule {
    /// The wait after the first delivery failed.
    pub fn first_wait(mut self, wait: Duration) -> Self {
        self.first_wait = wait;
        self
    }

    /// The longest wait between two attempts, before jitter.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// How old a conversion may grow before it is given up.
    pub fn give_up_after(mut self, age: Duration) -> Self {
        self.give_up_after = age;
        self
    }

    /// How long settled conversions (delivered, dead and voided) are kept, for inspection and so
    /// that their token converts no second time; `build()` refuses less than the token TTL. The
    /// workers then purge them, every 120 poll intervals (10 minutes by default).
    pub fn keep_settled_for(mut self, age: Duration) -> Self {
        self.keep_settled_for = age;
        self
    }

    /// How long a delivery holds a conversion without renewing its lease (15 s by default).
    ///
    /// A delivery renews it a third of its length after the last renewal that went through,
    /// beside the call, and again promptly after one that failed; a delivery whose last
    /// renewal went through five sixths of the lease ago starts no further attempt. A renewal
    /// must land within that: the store's timeout must stay under half the lease, or a slow
    /// store makes deliveries stop early (the layer logs an ERROR when it does not).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a conversion whose lease ran out unsettled stays with its silent holder
    /// before another delivery may send it again (5 minutes by default): its call may still be
    /// out, or its 200 heard and waiting for the store. The holder's settlement ends it at
    /// once, however late.
    ///
    /// It bounds what the promise of one booking survives: a store outage of every instance,
    /// a pause (SIGSTOP, a VM migration) or a cut-off of the holder shorter than it; and a step
    /// of the store's clock shorter than `quarantine + lease / 6 - request_timeout`. It is also
    /// how long a crashed instance's conversions wait, after their lease, for another. `build()`
    /// refuses one shorter than the request timeout: an attempt started under a fresh lease
    /// always ends inside it.
    pub fn quarantine(mut self, quarantine: Duration) -> Self {
        self.quarantine = quarantine;
        self
    }

    /// How often each instance looks for due conversions.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Whether waits get a random jitter.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The schedule if its values are usable; else the reason, naming the faulty value.
    pub(crate) fn validate(self) -> Result<Self, String> {
        let positive = [
            ("first_wait", self.first_wait),
            ("max_wait", self.max_wait),
            ("give_up_after", self.give_up_after),
            ("keep_settled_for", self.keep_settled_for),
            ("lease", self.lease),
            ("quarantine", self.quarantine),
            ("poll_interval", self.poll_interval),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| value.is_zero()) {
            return Err(format!("{name} must be longer than zero"));
        }
        if self.max_wait < self.first_wait {
            return Err("max_wait must be at least first_wait".to_owned());
        }
        // Times are kept to the millisecond: a shorter lease would run out as it is taken.
        if self.lease < Duration::from_millis(100) {
            return Err("lease must be at least 100 ms".to_owned());
        }
        if positive.iter().any(|(_, value)| *value > 100 * 365 * DAY) {
            return Err("every duration must be at most 100 years".to_owned());
        }
        Ok(self)
    }

    /// Why a store that gives up after `timeout` does not fit the lease: see
    /// [`lease`](Self::lease).
    pub(crate) fn misfit_store_timeout(&self, timeout: Duration) -> Option<String> {
        (timeout * 2 >= self.lease).then(|| {
            format!(
                "the token store's timeout ({timeout:?}) is not under half the Sovendus lease ({:?}): a slow \
                 renewal lets the lease lapse and stops the deliveries; shorten the timeout or lengthen the lease",
                self.lease
            )
        })
    }

    /// How often a delivery renews its lease: three times within it.
    pub(crate) fn renew_every(&self) -> Duration {
        self.lease / 3
    }

    /// How soon a failed renewal is tried again: four times within a third of the lease.
    pub(crate) fn renew_again_after(&self) -> Duration {
        self.lease / 12
    }

    /// How long a lease written to the store keeps its conversion from every other delivery:
    /// the lease, then the quarantine.
    pub(crate) fn held_for(&self) -> Duration {
        self.lease + self.quarantine
    }

    /// When a conversion ordered at `ordered_at`, whose attempt failed at `now`, is due next;
    /// `None` once it is too old to try again.
    pub(crate) fn next_attempt(
        &self,
        ordered_at: SystemTime,
        now: SystemTime,
        retry_after: Option<Duration>,
    ) -> Option<SystemTime> {
        let age = now.duration_since(ordered_at).unwrap_or_default();
        if age >= self.give_up_after {
            return None;
        }
        let wait = self.wait(age, retry_after);
        // One last attempt when the schedule ends, if the wait reaches past it.
        let last = ordered_at.checked_add(self.give_up_after)?;
        Some(now.checked_add(wait).map_or(last, |next| next.min(last)))
    }

    /// When a parked conversion ordered at `ordered_at`, refused at `now`, is due next: as an
    /// owed one, but past the end of the schedule too.
    pub(crate) fn next_parked_attempt(
        &self,
        ordered_at: SystemTime,
        now: SystemTime,
        retry_after: Option<Duration>,
    ) -> SystemTime {
        let age = now.duration_since(ordered_at).unwrap_or_default();
        now.checked_add(self.wait(age, retry_after)).unwrap_or(now)
    }

    /// The wait after an attempt on a conversion `age` old: as long as its age, within
    /// `first_wait` and `max_wait`, jittered, and never shorter than Sovendus asked.
    fn wait(&self, age: Duration, retry_after: Option<Duration>) -> Duration {
        let mut wait = age.clamp(self.first_wait, self.max_wait);
        if self.jitter {
            wait += wait.mul_f64(fastrand::f64() / 10.0);
        }
        retry_after.map_or(wait, |asked| asked.max(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_timeout_fits_under_half_the_lease() {
        let schedule = DeliverySchedule::default().lease(Duration::from_secs(15));
        assert_eq!(schedule.misfit_store_timeout(Duration::from_secs(5)), None, "the SQL store's default");
        let misfit = schedule.misfit_store_timeout(Duration::from_millis(7500)).expect("half the lease");
        assert!(misfit.contains("7.5s") && misfit.contains("15s"), "{misfit}");
    }

    #[test]
    fn waits_double_with_the_age_up_to_the_cap() {
        let schedule = DeliverySchedule::default().jitter(false);
        let ordered = SystemTime::UNIX_EPOCH + DAY;
        let mut now = ordered;
        let mut waits = Vec::new();
        for _ in 0..9 {
            let next = schedule.next_attempt(ordered, now, None).unwrap();
            waits.push(next.duration_since(now).unwrap().as_secs() / 60);
            now = next;
        }
        assert_eq!(waits, [1, 1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn the_schedule_ends_with_a_last_attempt_then_gives_up() {
        let schedule = DeliverySchedule::default().jitter(false);
        let ordered = SystemTime::UNIX_EPOCH + DAY;
        let near_the_end = ordered + 7 * DAY - 10 * MINUTE;
        assert_eq!(schedule.next_attempt(ordered, near_the_end, None), Some(ordered + 7 * DAY));
        assert_eq!(schedule.next_attempt(ordered, ordered + 7 * DAY, None), None);
    }

    #[test]
    fn parked_conversions_wait_past_the_end_of_the_schedule() {
        let schedule = DeliverySchedule::default().jitter(false);
        let ordered = SystemTime::UNIX_EPOCH + DAY;
        let long_after = ordered + 30 * DAY;
        assert_eq!(schedule.next_attempt(ordered, long_after, None), None);
        assert_eq!(schedule.next_parked_attempt(ordered, long_after, None), long_after + 60 * MINUTE);
        assert_eq!(schedule.next_parked_attempt(ordered, ordered, None), ordered + MINUTE);
    }

    #[test]
    fn retry_after_and_jitter_lengthen_the_wait() {
        let schedule = DeliverySchedule::default();
        let ordered = SystemTime::UNIX_EPOCH + DAY;
        let asked = schedule.next_attempt(ordered, ordered, Some(10 * MINUTE)).unwrap();
        assert_eq!(asked, ordered + 10 * MINUTE);
        for _ in 0..100 {
            let wait =
                schedule.next_attempt(ordered, ordered, None).unwrap().duration_since(ordered).unwrap();
            assert!(wait >= MINUTE && wait <= MINUTE + MINUTE / 10, "{wait:?}");
        }
    }

    #[test]
    fn validation_names_the_value() {
        assert!(DeliverySchedule::default().validate().is_ok());
        let bad = [
            (DeliverySchedule::default().first_wait(Duration::ZERO), "first_wait"),
            (DeliverySchedule::default().max_wait(Duration::from_secs(1)), "max_wait"),
            (DeliverySchedule::default().lease(Duration::from_millis(10)), "lease"),
            (DeliverySchedule::default().quarantine(Duration::ZERO), "quarantine"),
            (DeliverySchedule::default().poll_interval(Duration::ZERO), "poll_interval"),
            (DeliverySchedule::default().keep_settled_for(Duration::MAX), "every duration"),
        ];
        for (schedule, name) in bad {
            assert!(schedule.validate().unwrap_err().starts_with(name), "{name}");
        }
    }
}
