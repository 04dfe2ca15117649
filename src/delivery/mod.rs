//! Delivering conversions: [`Delivery`], the handle shared by a layer, its extractor and its
//! background workers, and what sending ends in.
//!
//! A conversion is sent by the order handler ([`send`](crate::SovendusConversion::send)) or by
//! one of a bounded set of background workers
//! ([`send_in_background`](crate::SovendusConversion::send_in_background)), in both cases
//! under a lease on the stored token, so that one delivery at a time sends it and Sovendus
//! sees each token until one 200, and never after. Await [`Delivery::shutdown`] when the app
//! stops:
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::post};
//! use tower_sessions::{MemoryStore, SessionManagerLayer, cookie::SameSite};
//! use tower_sovendus::{SovendusConfig, SovendusConversion, SovendusLayer};
//!
//! async fn order(conversion: SovendusConversion) -> &'static str {
//!     if let Err(error) = conversion.send_in_background() {
//!         tracing::warn!(%error, "Sovendus conversion kept for later");
//!     }
//!     "thank you"
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = SovendusLayer::new(SovendusConfig::new("product-a", "XXXX-XXXXX")?);
//! let delivery = layer.delivery();
//! let app: Router = Router::new()
//!     .route("/order", post(order))
//!     .layer(layer)
//!     .layer(SessionManagerLayer::new(MemoryStore::default()).with_same_site(SameSite::Lax));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app).with_graceful_shutdown(async { /* ctrl-c */ }).await?;
//!
//! let report = delivery.shutdown(Duration::from_secs(10)).await;
//! assert!(report.is_complete());
//! for pending in report.left() {
//!     tracing::warn!(token = %pending.token(), "persist me and send me later");
//! }
//! # Ok(()) }
//! ```

mod queue;
mod sender;

use std::{
    fmt,
    sync::{Arc, Weak},
    time::Duration,
};

use self::{queue::BackgroundQueue, sender::ConversionSender};
use crate::{
    client::{Receipt, SovendusClient},
    config::{ProductId, SovendusConfig},
    error::SovendusError,
    store::{TokenKey, TokenStore},
    token::SovReqToken,
};

/// What [`send`](crate::SovendusConversion::send) ended in when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// Sovendus accepted the conversion (200); the token is gone from the store.
    Sent(Receipt),
    /// The visitor has no token: they did not come from Sovendus, or their conversion was
    /// already sent (or is being sent by a concurrent request).
    NoToken,
}

/// What [`send_in_background`](crate::SovendusConversion::send_in_background) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum QueueOutcome {
    /// The conversion is queued; a worker sends it promptly.
    Queued,
    /// The visitor has no token: nothing to send.
    NoToken,
}

/// The handle to a layer's delivery: its configuration, token store, client and background
/// workers. Clones share them. Take it with
/// [`SovendusLayer::delivery`](crate::SovendusLayer::delivery) and await
/// [`shutdown`](Self::shutdown) when the app stops, after the server has stopped taking
/// requests; see the [module](self) for an example.
#[derive(Clone)]
pub struct Delivery {
    inner: Arc<Inner>,
}

struct Inner {
    config: SovendusConfig,
    sender: ConversionSender,
    queue: BackgroundQueue,
}

impl Delivery {
    pub(crate) fn new(config: SovendusConfig, store: Arc<dyn TokenStore>) -> Self {
        let sender = ConversionSender::new(&config, store);
        let queue = BackgroundQueue::new(&config, sender.clone());
        Self { inner: Arc::new(Inner { config, sender, queue }) }
    }

    /// Conversions waiting in the background queue now.
    pub fn queued(&self) -> usize {
        self.inner.queue.len()
    }

    /// Stops taking background conversions, lets the workers deliver what is queued until
    /// `deadline`, then cuts off whatever is still under way and reports.
    ///
    /// Nothing is dropped silently: every conversion left is logged (token masked), listed in
    /// the report with its whole token, and its token stays stored, so the visitor's next order
    /// or a foreground [`send`](crate::SovendusConversion::send) still sends it. Conversions
    /// asked for after this call get [`SovendusError::ShuttingDown`]. Calling it again
    /// reports again.
    pub async fn shutdown(&self, deadline: Duration) -> DeliveryReport {
        let drained = self.inner.queue.drain(deadline).await;
        let mut left = Vec::new();
        for key in drained.undelivered {
            match self.store().get(key).await {
                Ok(Some(stored)) => {
                    tracing::warn!(token = %stored.token, product = %stored.product,
                        "Sovendus conversion left undelivered at shutdown; the token stays stored");
                    left.push(PendingConversion { token: stored.token, product_id: stored.product });
                }
                Ok(None) => {}
                Err(error) => tracing::error!(%error,
                    "could not list a Sovendus conversion left at shutdown: the token store failed"),
            }
        }
        let report =
            DeliveryReport { sent: drained.sent, failed: drained.failed, dropped: drained.dropped, left };
        tracing::info!(
            sent = report.sent,
            failed = report.failed,
            dropped = report.dropped,
            left = report.left.len(),
            "Sovendus background delivery stopped"
        );
        report
    }

    pub(crate) fn config(&self) -> &SovendusConfig {
        &self.inner.config
    }

    pub(crate) fn store(&self) -> &dyn TokenStore {
        self.inner.sender.store()
    }

    pub(crate) fn client(&self) -> &SovendusClient {
        self.inner.sender.client()
    }

    /// Sends the token stored for `key` now, on a task of its own: a handler cancelled
    /// mid-send (the visitor left) still settles the token.
    pub(crate) async fn send(&self, key: TokenKey) -> Result<Outcome, SovendusError> {
        let sender = self.inner.sender.clone();
        let task = tokio::spawn(async move { sender.send(key, None).await });
        match task.await {
            Ok(result) => result,
            Err(join_error) if join_error.is_panic() => std::panic::resume_unwind(join_error.into_panic()),
            Err(_) => Err(SovendusError::Cancelled),
        }
    }

    /// Queues the conversion for `key` for a background worker.
    pub(crate) fn push(&self, key: TokenKey) -> Result<(), SovendusError> {
        self.inner.queue.push(key)
    }

    /// A handle that does not keep the delivery alive.
    pub(crate) fn downgrade(&self) -> WeakDelivery {
        WeakDelivery(Arc::downgrade(&self.inner))
    }
}

/// A [`Delivery`] that may have been dropped.
pub(crate) struct WeakDelivery(Weak<Inner>);

impl WeakDelivery {
    pub(crate) fn upgrade(&self) -> Option<Delivery> {
        self.0.upgrade().map(|inner| Delivery { inner })
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery").field("queued", &self.queued()).finish_non_exhaustive()
    }
}

/// What the background delivery did in its life, and what it left undelivered.
#[derive(Debug, Clone)]
pub struct DeliveryReport {
    sent: u64,
    failed: u64,
    dropped: u64,
    left: Vec<PendingConversion>,
}

impl DeliveryReport {
    /// Background conversions Sovendus accepted.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Background conversions that ended without a 200: refused for good, or given up after
    /// the retry policy (those are also in [`left`](Self::left) while their token lives).
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// Conversions the queue did not take (full, or shutting down); their tokens stayed stored.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The conversions queued but not delivered, whose tokens are still stored: persist them
    /// and send them later with
    /// [`SovendusClient::send_with_retries`](crate::SovendusClient::send_with_retries).
    pub fn left(&self) -> &[PendingConversion] {
        &self.left
    }

    /// Whether nothing was left undelivered.
    pub fn is_complete(&self) -> bool {
        self.left.is_empty()
    }
}

/// A conversion not yet delivered: its token (whole through [`SovReqToken::as_str`], masked in
/// `Debug` and `Display`) and the product it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingConversion {
    token: SovReqToken,
    product_id: ProductId,
}

impl PendingConversion {
    /// The token.
    pub fn token(&self) -> &SovReqToken {
        &self.token
    }

    /// The product the conversion is for.
    pub fn product_id(&self) -> &ProductId {
        &self.product_id
    }
}
