//! [`RetryPolicy`]: how a conversion is repeated when Sovendus fails or does not answer.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{ProductId, Receipt, SovReqToken, SovendusClient, SovendusError, metrics};

/// How a conversion is repeated after a retryable failure: 5xx, 429, a timeout or a broken
/// connection. Terminal answers (403, 404, 405, 422) are never repeated.
///
/// Waits grow exponentially from `initial_backoff`, doubling up to `max_backoff`, each plus a
/// random jitter of up to its own length, so that many shops do not retry in step. A
/// `Retry-After` from Sovendus is honoured: the wait is never shorter. The attempts stop at
/// `max_attempts`, or when the next one could not start within `max_elapsed` of the first.
///
/// The defaults: 5 attempts, waits from 500 ms up to 30 s, everything within 2 minutes.
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
    ///
    /// ```
    /// use tower_sovendus::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::never().max_attempts, 1);
    /// ```
    pub fn never() -> Self {
        Self::default().max_attempts(1)
    }

    /// The most attempts, the first included (default 5).
    ///
    /// ```
    /// use tower_sovendus::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::default().max_attempts(3).max_attempts, 3);
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The first wait (default 500 ms); each next one doubles.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_sovendus::RetryPolicy;
    ///
    /// let policy = RetryPolicy::default().initial_backoff(Duration::from_secs(1));
    /// assert_eq!(policy.initial_backoff, Duration::from_secs(1));
    /// ```
    pub fn initial_backoff(mut self, wait: Duration) -> Self {
        self.initial_backoff = wait;
        self
    }

    /// The longest wait before jitter (default 30 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_sovendus::RetryPolicy;
    ///
    /// let policy = RetryPolicy::default().max_backoff(Duration::from_secs(10));
    /// assert_eq!(policy.max_backoff, Duration::from_secs(10));
    /// ```
    pub fn max_backoff(mut self, wait: Duration) -> Self {
        self.max_backoff = wait;
        self
    }

    /// No attempt starts later than this after the first (default 2 minutes). A `Retry-After`
    /// reaching beyond it ends the attempts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_sovendus::RetryPolicy;
    ///
    /// let policy = RetryPolicy::default().max_elapsed(Duration::from_secs(30));
    /// assert_eq!(policy.max_elapsed, Duration::from_secs(30));
    /// ```
    pub fn max_elapsed(mut self, budget: Duration) -> Self {
        self.max_elapsed = budget;
        self
    }

    /// Whether waits get a random jitter (default `true`).
    ///
    /// ```
    /// use tower_sovendus::RetryPolicy;
    ///
    /// assert!(!RetryPolicy::default().jitter(false).jitter);
    /// ```
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Checks the values; the reason names the faulty one.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".to_owned());
        }
        if self.initial_backoff.is_zero() {
            return Err("initial_backoff must be longer than zero".to_owned());
        }
        if self.max_backoff < self.initial_backoff {
            return Err("max_backoff must be at least initial_backoff".to_owned());
        }
        if self.max_elapsed.is_zero() {
            return Err("max_elapsed must be longer than zero".to_owned());
        }
        // A delivery leases its token for this long: keep it a sane span.
        const DAY: Duration = Duration::from_secs(24 * 60 * 60);
        if self.max_elapsed > DAY || self.max_backoff > DAY {
            return Err("max_elapsed and max_backoff must be at most a day".to_owned());
        }
        Ok(())
    }

    /// The waits between attempts, one fewer than the attempts.
    fn waits(&self) -> impl Iterator<Item = Duration> + use<> {
        let retries = usize::try_from(self.max_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        let builder = ExponentialBuilder::new()
            .with_min_delay(self.initial_backoff)
            .with_max_delay(self.max_backoff)
            .with_max_times(retries);
        let builder = if self.jitter { builder.with_jitter() } else { builder };
        builder.build()
    }

    /// The longest one delivery can hold a token: the time budget, plus the last attempt.
    pub(crate) fn lease(&self, request_timeout: Duration) -> Duration {
        self.max_elapsed.saturating_add(request_timeout.saturating_mul(2))
    }
}

/// Sends `token` with retries under `policy`, until a 200, a terminal answer, the end of the
/// policy, or `cancel`.
pub(crate) async fn send(
    client: &SovendusClient,
    policy: &RetryPolicy,
    product: &ProductId,
    token: &SovReqToken,
    cancel: Option<&CancellationToken>,
) -> Result<Receipt, SovendusError> {
    let started = Instant::now();
    let mut waits = policy.waits();
    let mut attempt = 1_u32;
    loop {
        let Some(answer) = until_cancelled(cancel, client.attempt(product, token)).await else {
            return Err(SovendusError::Cancelled);
        };
        let error = match answer {
            Ok(receipt) => {
                tracing::info!(attempt, "Sovendus accepted the conversion");
                return Ok(receipt);
            }
            Err(error) => error,
        };
        if !error.is_retryable() {
            tracing::error!(%error, attempt, "Sovendus refused the conversion; not retrying");
            return Err(error);
        }
        let Some(backoff) = waits.next() else {
            tracing::error!(%error, attempt, "Sovendus conversion failed; no attempts left");
            return Err(error);
        };
        let wait = error.retry_after().map_or(backoff, |asked| asked.max(backoff));
        if started.elapsed().saturating_add(wait) > policy.max_elapsed {
            tracing::error!(%error, attempt, ?wait, "Sovendus conversion failed; out of retry time");
            return Err(error);
        }
        tracing::warn!(%error, attempt, ?wait, "Sovendus conversion failed; retrying");
        ::metrics::counter!(metrics::RETRIED).increment(1);
        if until_cancelled(cancel, tokio::time::sleep(wait)).await.is_none() {
            return Err(SovendusError::Cancelled);
        }
        attempt += 1;
    }
}

/// Runs `work` to its end, or until `cancel` fires (`None`). Once started, `work` finishing
/// as the token fires wins: an answer Sovendus already gave is never thrown away. Without a
/// token, `work` runs with nothing around it.
async fn until_cancelled<T>(cancel: Option<&CancellationToken>, work: impl Future<Output = T>) -> Option<T> {
    match cancel {
        Some(cancel) => cancel.run_until_cancelled(work).await,
        None => Some(work.await),
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
