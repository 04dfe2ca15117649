//! Sending one stored conversion: lease the token, send it with retries, settle the lease.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use super::Outcome;
use crate::{
    client::SovendusClient,
    config::SovendusConfig,
    error::{SovendusError, StoreError},
    metrics,
    retry::RetryPolicy,
    store::{Leased, Settlement, TokenKey, TokenStore},
};

/// How settling is repeated after the token store failed: waits from 100 ms doubling to 5 s,
/// until the lease runs out.
const SETTLE_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: u32::MAX,
    initial_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(5),
    max_elapsed: Duration::MAX,
    jitter: true,
};

/// Sends stored tokens, for the extractor and the background workers alike.
///
/// The token is leased, not removed, while it is sent: it stays stored until Sovendus answers
/// 200 or a terminal error, and no second delivery (a double submit, a background worker, the
/// shop's own retry) can send it meanwhile. So Sovendus sees each token until one 200, and
/// never after it.
#[derive(Clone)]
pub(crate) struct ConversionSender {
    store: Arc<dyn TokenStore>,
    client: SovendusClient,
    lease: Duration,
}

impl ConversionSender {
    pub(crate) fn new(config: &SovendusConfig, store: Arc<dyn TokenStore>) -> Self {
        let client = SovendusClient::new(config);
        let lease = config.retry_policy().lease(config.request_timeout());
        Self { store, client, lease }
    }

    pub(crate) fn store(&self) -> &dyn TokenStore {
        &*self.store
    }

    pub(crate) fn client(&self) -> &SovendusClient {
        &self.client
    }

    /// Sends the token stored for `key`, if there is one and no other delivery holds it.
    pub(crate) async fn send(
        &self,
        key: TokenKey,
        cancel: Option<&CancellationToken>,
    ) -> Result<Outcome, SovendusError> {
        let lease_ends = tokio::time::Instant::now() + self.lease;
        let leased = match self.store.lease(key, self.lease).await {
            Ok(Some(leased)) => leased,
            Ok(None) => return Ok(Outcome::NoToken),
            Err(error) => {
                // Nothing was sent: the token, if any, stays stored for a later order.
                tracing::error!(%error, "Sovendus conversion not sent: the token store failed");
                ::metrics::counter!(metrics::FAILED, "reason" => "token_store").increment(1);
                return Err(SovendusError::Store(error));
            }
        };
        let pending = &leased.pending;
        let result = self
            .client
            .send_under(self.client.retry_policy(), &pending.product, &pending.token, cancel)
            .await;
        let settlement = match &result {
            Ok(_) => {
                ::metrics::counter!(metrics::SENT).increment(1);
                Settlement::Done
            }
            Err(SovendusError::Cancelled) => Settlement::Keep,
            Err(error) if error.is_retryable() => {
                ::metrics::counter!(metrics::FAILED, "reason" => "gave_up").increment(1);
                Settlement::Keep
            }
            Err(_) => {
                ::metrics::counter!(metrics::FAILED, "reason" => "terminal").increment(1);
                Settlement::Done
            }
        };
        if let Err(error) = self.store.settle(&leased, settlement).await {
            self.settle_later(leased, settlement, error, lease_ends);
        }
        result.map(Outcome::Sent)
    }

    /// Settles on a task of its own once the token store answers again, trying for as long
    /// as the lease lasts: within it no other delivery can take the token, so a conversion
    /// Sovendus accepted is not sent twice when the store comes back.
    fn settle_later(
        &self,
        leased: Leased,
        settlement: Settlement,
        error: StoreError,
        lease_ends: tokio::time::Instant,
    ) {
        let token = leased.pending.token.clone();
        tracing::warn!(%error, %token, ?settlement, "could not settle the Sovendus token yet; trying again");
        let store = Arc::clone(&self.store);
        let waits = SETTLE_RETRY.waits();
        tokio::spawn(async move {
            for wait in waits {
                tokio::time::sleep(wait).await;
                match store.settle(&leased, settlement).await {
                    Ok(()) => {
                        tracing::info!(%token, ?settlement, "settled the Sovendus token");
                        return;
                    }
                    Err(error) if tokio::time::Instant::now() + wait >= lease_ends => {
                        tracing::error!(%error, %token, ?settlement,
                            "gave up settling the Sovendus token: its lease runs out, and another \
                             delivery may send it again");
                        return;
                    }
                    Err(_) => {}
                }
            }
        });
    }
}
