//! [`RetryPolicy`]: when a failed call to Sovendus is repeated. Plain data: the waits between
//! attempts and the bounds on them; [`SovendusClient`](crate::SovendusClient) runs the loop.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// How a conversion is repeated after a retryable failure: 5xx, 429, a timeout or a broken
/// connection. Terminal answers (403, 404, 405, 422) are never repeated.
///
/// Waits grow exponentially from `initial_backoff`, doubling up to `max_backoff`, each plus a
/// random jitter of up to its own length, so that many shops do not retry in step. A
/// `Retry-After` from Sovendus is honoured: the wait is never shorter. The attempts stop at
/// `max_attempts`, or when the next one could not start within `max_elapsed` of the first.
///
/// ```
/// use std::time::Duration;
/// use tower_sovendus::{RetryPolicy, SovendusConfig};
///
/// let policy = RetryPolicy::default()
///     .max_attempts(8)
///     .initial_backoff(Duration::from_secs(1))
///     .max_elapsed(Duration::from_secs(5 * 60));
/// let config = SovendusConfig::builder("product-a", "XXXX-XXXXX").retry(policy).build()?;
/// assert_eq!(config.retry_policy().max_attempts, 8);
/// # Ok::<(), tower_sovendus::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct RetryPolicy {
    /// The most attempts, the first included.
    pub max_attempts: u32,
    /// The first wait, before jitter; each next one doubles.
    pub initial_backoff: Duration,
    /// The longest wait, before jitter.
    pub max_backoff: Duration,
    /// No attempt starts later than this after the first.
    pub max_elapsed: Duration,
    /// Whether waits get a random jitter.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(2 * 60),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn never() -> Self {
        Self::default().max_attempts(1)
    }

    /// The most attempts, the first included.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The first wait; each next one doubles.
    pub fn initial_backoff(mut self, wait: Duration) -> Self {
        self.initial_backoff = wait;
        self
    }

    /// The longest wait before jitter.
    pub fn max_backoff(mut self, wait: Duration) -> Self {
        self.max_backoff = wait;
        self
    }

    /// No attempt starts later than this after the first. A `Retry-After` reaching beyond it
    /// ends the attempts.
    pub fn max_elapsed(mut self, budget: Duration) -> Self {
        self.max_elapsed = budget;
        self
    }

    /// Whether waits get a random jitter.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The policy if its values are usable; else the reason, naming the faulty value.
    pub(crate) fn validate(self) -> Result<Self, String> {
        // A delivery leases its token for the whole budget: keep it a sane span.
        const DAY: Duration = Duration::from_secs(24 * 60 * 60);
        if self.max_attempts == 0 {
            Err("max_attempts must be at least 1".to_owned())
        } else if self.initial_backoff.is_zero() {
            Err("initial_backoff must be longer than zero".to_owned())
        } else if self.max_backoff < self.initial_backoff {
            Err("max_backoff must be at least initial_backoff".to_owned())
        } else if self.max_elapsed.is_zero() {
            Err("max_elapsed must be longer than zero".to_owned())
        } else if self.max_elapsed > DAY || self.max_backoff > DAY {
            Err("max_elapsed and max_backoff must be at most a day".to_owned())
        } else {
            Ok(self)
        }
    }

    /// The waits between attempts, one fewer than the attempts.
    pub(crate) fn waits(&self) -> impl Iterator<Item = Duration> + use<> {
        let retries = usize::try_from(self.max_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        let builder = ExponentialBuilder::new()
            .with_min_delay(self.initial_backoff)
            .with_max_delay(self.max_backoff)
            .with_max_times(retries);
        let builder = if self.jitter { builder.with_jitter() } else { builder };
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_without_jitter() {
        let policy = RetryPolicy::default()
            .max_attempts(6)
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(500))
            .jitter(false);
        let waits: Vec<u128> = policy.waits().map(|wait| wait.as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(RetryPolicy::never().waits().count(), 0);
    }

    #[test]
    fn jitter_stays_within_twice_the_wait() {
        let policy = RetryPolicy::default().max_attempts(4).initial_backoff(Duration::from_millis(100));
        for _ in 0..100 {
            for (wait, base) in policy.waits().zip([100, 200, 400]) {
                let wait = wait.as_millis();
                assert!((base..2 * base).contains(&wait), "{wait} for {base}");
            }
        }
    }

    #[test]
    fn validation_names_the_value() {
        assert!(RetryPolicy::default().validate().is_ok());
        let bad = [
            (RetryPolicy::default().max_attempts(0), "max_attempts"),
            (RetryPolicy::default().initial_backoff(Duration::ZERO), "initial_backoff"),
            (RetryPolicy::default().max_backoff(Duration::from_millis(1)), "max_backoff"),
            (RetryPolicy::default().max_elapsed(Duration::ZERO), "max_elapsed"),
            (RetryPolicy::default().max_elapsed(Duration::MAX), "max_elapsed"),
        ];
        for (policy, name) in bad {
            assert!(policy.validate().unwrap_err().starts_with(name));
        }
    }
}
