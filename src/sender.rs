//! Sending one stored conversion: lease the token, send it with retries, settle the lease.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{
    Outcome, RetryPolicy, SovendusClient, SovendusConfig, SovendusError, metrics,
    store::{Settlement, TokenKey, TokenStore},
};

/// Sends stored tokens, for the extractor and the background workers alike.
///
/// The token is leased, not removed, while it is sent: it stays stored until Sovendus answers
/// 200 or a terminal error, and no second delivery (a double submit, a background worker, the
/// shop's own retry) can send it meanwhile. So Sovendus sees each token until one 200, and
/// never after it.
#[derive(Clone)]
pub(crate) struct ConversionSender {
    store: TokenStore,
    client: SovendusClient,
    retry: RetryPolicy,
    lease: Duration,
}

impl ConversionSender {
    pub(crate) fn new(config: &SovendusConfig, store: TokenStore, client: SovendusClient) -> Self {
        let retry = *config.retry_policy();
        Self { store, client, retry, lease: retry.lease(config.request_timeout()) }
    }

    pub(crate) fn store(&self) -> &TokenStore {
        &self.store
    }

    pub(crate) fn client(&self) -> &SovendusClient {
        &self.client
    }

    /// Sends the token stored for `key`, if there is one and no other delivery holds it.
    pub(crate) async fn send(
        &self,
        key: TokenKey,
        cancel: &CancellationToken,
    ) -> Result<Outcome, SovendusError> {
        let Some(leased) = self.store.lease(key, self.lease).await else {
            return Ok(Outcome::NoToken);
        };
        let product = self.client.product(leased.product);
        let result = self.client.send_under(&self.retry, product, &leased.token, cancel).await;
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
        self.store.settle(leased, settlement).await;
        result.map(Outcome::Sent)
    }
}
