//! Background delivery: a bounded queue, a bounded set of workers, and [`Delivery`], the handle
//! that drains them on shutdown.

use std::{
    collections::HashSet,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_channel::{Receiver, Sender, TrySendError};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    Outcome, ProductId, SovReqToken, SovendusConfig, SovendusError, metrics, sender::ConversionSender,
    sync::lock, token_store::TokenKey,
};

/// What [`send_in_background`](crate::SovendusConversion::send_in_background) did.
///
/// ```
/// use tower_sovendus::QueueOutcome;
///
/// fn note(outcome: QueueOutcome) -> &'static str {
///     match outcome {
///         QueueOutcome::Queued => "conversion on its way",
///         QueueOutcome::NoToken => "no Sovendus visitor",
///     }
/// }
/// assert_eq!(note(QueueOutcome::Queued), "conversion on its way");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum QueueOutcome {
    /// The conversion is queued; a worker sends it promptly.
    Queued,
    /// The visitor has no token: nothing to send.
    NoToken,
}

/// The background queue shared by a layer's requests; clones share it.
#[derive(Clone)]
pub(crate) struct BackgroundQueue {
    inner: Arc<QueueInner>,
}

struct QueueInner {
    sender: Sender<TokenKey>,
    receiver: Receiver<TokenKey>,
    conversions: ConversionSender,
    worker_count: usize,
    workers: Mutex<Workers>,
    shared: Arc<Shared>,
}

enum Workers {
    /// None yet: they start with the first queued conversion, inside the app's runtime.
    NotStarted,
    Running(JoinSet<()>),
    ShutDown,
}

/// What the workers and the handles share. The workers hold no sender, so the queue closes
/// once every handle is gone.
struct Shared {
    cancel: CancellationToken,
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    /// Keys the workers took but could not deliver (they gave up, or were cut off at the
    /// deadline); their tokens stay stored. Bounded by the store's own size.
    undelivered: Mutex<HashSet<TokenKey>>,
    max_undelivered: usize,
}

impl BackgroundQueue {
    pub(crate) fn new(config: &SovendusConfig, conversions: ConversionSender) -> Self {
        let (sender, receiver) = async_channel::bounded(config.queue_capacity());
        let shared = Arc::new(Shared {
            cancel: CancellationToken::new(),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            undelivered: Mutex::default(),
            max_undelivered: usize::try_from(config.max_tokens()).unwrap_or(usize::MAX),
        });
        let inner = QueueInner {
            sender,
            receiver,
            conversions,
            worker_count: config.workers(),
            workers: Mutex::new(Workers::NotStarted),
            shared,
        };
        Self { inner: Arc::new(inner) }
    }

    /// Queues the conversion for `key`, or says why not; the token stays stored either way.
    pub(crate) fn push(&self, key: TokenKey) -> Result<(), SovendusError> {
        self.start_workers();
        let (error, reason) = match self.inner.sender.try_send(key) {
            Ok(()) => {
                tracing::debug!("Sovendus conversion queued");
                ::metrics::counter!(metrics::QUEUED).increment(1);
                return Ok(());
            }
            Err(TrySendError::Full(_)) => (SovendusError::QueueFull, "queue_full"),
            Err(TrySendError::Closed(_)) => (SovendusError::ShuttingDown, "shutting_down"),
        };
        ::metrics::counter!(metrics::DROPPED, "reason" => reason).increment(1);
        self.inner.shared.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%error, "Sovendus conversion not queued; the token stays stored");
        Err(error)
    }

    fn start_workers(&self) {
        let mut workers = lock(&self.inner.workers);
        if !matches!(*workers, Workers::NotStarted) {
            return;
        }
        let mut set = JoinSet::new();
        for _ in 0..self.inner.worker_count {
            let receiver = self.inner.receiver.clone();
            let conversions = self.inner.conversions.clone();
            set.spawn(work(receiver, conversions, self.inner.shared.clone()));
        }
        *workers = Workers::Running(set);
    }
}

/// One worker: takes queued conversions until the queue closes and empties, or until the
/// shutdown deadline cancels it.
async fn work(receiver: Receiver<TokenKey>, conversions: ConversionSender, shared: Arc<Shared>) {
    loop {
        let key = tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return,
            key = receiver.recv() => match key {
                Ok(key) => key,
                Err(_closed) => return,
            },
        };
        match conversions.send(key, Some(&shared.cancel)).await {
            Ok(Outcome::Sent(_)) => {
                shared.sent.fetch_add(1, Ordering::Relaxed);
            }
            // Sent meanwhile by another delivery, or expired: nothing left to do.
            Ok(Outcome::NoToken) => {}
            Err(SovendusError::Cancelled) => shared.remember(key),
            Err(error) => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                if error.is_retryable() {
                    shared.remember(key);
                }
            }
        }
    }
}

impl Shared {
    fn remember(&self, key: TokenKey) {
        let mut undelivered = lock(&self.undelivered);
        if undelivered.len() < self.max_undelivered {
            undelivered.insert(key);
        }
    }
}

/// The handle to a layer's background delivery: await [`shutdown`](Self::shutdown) when the
/// app stops, after the server has stopped taking requests.
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::post};
/// use tower_sessions::{MemoryStore, SessionManagerLayer, cookie::SameSite};
/// use tower_sovendus::{SovendusConfig, SovendusConversion, SovendusLayer};
///
/// async fn order(conversion: SovendusConversion) -> &'static str {
///     if let Err(error) = conversion.send_in_background() {
///         tracing::warn!(%error, "Sovendus conversion kept for later");
///     }
///     "thank you"
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = SovendusLayer::new(SovendusConfig::new("product-a", "XXXX-XXXXX")?);
/// let delivery = layer.delivery();
/// let app: Router = Router::new()
///     .route("/order", post(order))
///     .layer(layer)
///     .layer(SessionManagerLayer::new(MemoryStore::default()).with_same_site(SameSite::Lax));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// axum::serve(listener, app).with_graceful_shutdown(async { /* ctrl-c */ }).await?;
///
/// let report = delivery.shutdown(Duration::from_secs(10)).await;
/// for pending in report.left() {
///     tracing::warn!(token = %pending.token(), "persist me and send me later");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Delivery {
    queue: BackgroundQueue,
}

impl Delivery {
    pub(crate) fn new(queue: BackgroundQueue) -> Self {
        Self { queue }
    }

    /// Conversions waiting in the queue now.
    ///
    /// ```
    /// use tower_sovendus::{SovendusConfig, SovendusLayer};
    ///
    /// let layer = SovendusLayer::new(SovendusConfig::new("product-a", "XXXX-XXXXX")?);
    /// assert_eq!(layer.delivery().queued(), 0);
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn queued(&self) -> usize {
        self.queue.inner.receiver.len()
    }

    /// Stops taking background conversions, lets the workers deliver what is queued until
    /// `deadline`, then cuts off whatever is still under way and reports.
    ///
    /// Nothing is dropped silently: every conversion left is logged (token masked), listed in
    /// the report with its whole token, and its token stays stored, so the visitor's next order
    /// or a foreground [`send`](crate::SovendusConversion::send) still sends it. Conversions
    /// asked for after this call get [`SovendusError::ShuttingDown`]. Calling it again
    /// reports again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_sovendus::{SovendusConfig, SovendusLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_sovendus::ConfigError> {
    /// let layer = SovendusLayer::new(SovendusConfig::new("product-a", "XXXX-XXXXX")?);
    /// let report = layer.delivery().shutdown(Duration::from_secs(5)).await;
    /// assert!(report.is_complete());
    /// assert_eq!((report.sent(), report.failed(), report.dropped()), (0, 0, 0));
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self, deadline: Duration) -> DeliveryReport {
        let inner = &self.queue.inner;
        inner.sender.close();
        let workers = std::mem::replace(&mut *lock(&inner.workers), Workers::ShutDown);
        if let Workers::Running(mut workers) = workers {
            let finished = tokio::time::timeout(deadline, join_all(&mut workers)).await.is_ok();
            if !finished {
                inner.shared.cancel.cancel();
                join_all(&mut workers).await;
            }
        }
        // What no worker got to.
        while let Ok(key) = inner.receiver.try_recv() {
            inner.shared.remember(key);
        }
        let keys: Vec<TokenKey> = lock(&inner.shared.undelivered).iter().copied().collect();
        let client = inner.conversions.client();
        let mut left = Vec::new();
        for key in keys {
            match inner.conversions.store().get(key).await {
                Ok(Some(stored)) => {
                    let product_id = client.product(stored.product).clone();
                    tracing::warn!(token = %stored.token, product = %product_id,
                        "Sovendus conversion left undelivered at shutdown; the token stays stored");
                    left.push(PendingConversion { token: stored.token, product_id });
                }
                Ok(None) => {}
                Err(error) => tracing::error!(%error,
                    "could not list a Sovendus conversion left at shutdown: the token store failed"),
            }
        }
        let report = DeliveryReport {
            sent: inner.shared.sent.load(Ordering::Relaxed),
            failed: inner.shared.failed.load(Ordering::Relaxed),
            dropped: inner.shared.dropped.load(Ordering::Relaxed),
            left,
        };
        tracing::info!(
            sent = report.sent,
            failed = report.failed,
            dropped = report.dropped,
            left = report.left.len(),
            "Sovendus background delivery stopped"
        );
        report
    }
}

async fn join_all(workers: &mut JoinSet<()>) {
    while let Some(joined) = workers.join_next().await {
        if let Err(error) = joined {
            tracing::error!(%error, "a Sovendus background worker failed");
        }
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery").field("queued", &self.queued()).finish_non_exhaustive()
    }
}

/// What the background delivery did in its life, and what it left undelivered.
///
/// ```
/// use std::time::Duration;
/// use tower_sovendus::{SovendusConfig, SovendusLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_sovendus::ConfigError> {
/// let layer = SovendusLayer::new(SovendusConfig::new("product-a", "XXXX-XXXXX")?);
/// let report = layer.delivery().shutdown(Duration::from_secs(1)).await;
/// assert_eq!(format!("{report:?}"), "DeliveryReport { sent: 0, failed: 0, dropped: 0, left: [] }");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DeliveryReport {
    sent: u64,
    failed: u64,
    dropped: u64,
    left: Vec<PendingConversion>,
}

impl DeliveryReport {
    /// Background conversions Sovendus accepted.
    ///
    /// See [`Delivery::shutdown`] for an example.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Background conversions that ended without a 200: refused for good, or given up after
    /// the retry policy (those are also in [`left`](Self::left) while their token lives).
    ///
    /// See [`Delivery::shutdown`] for an example.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// Conversions the queue did not take (full, or shutting down); their tokens stayed stored.
    ///
    /// See [`Delivery::shutdown`] for an example.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The conversions queued but not delivered, whose tokens are still stored: persist them
    /// and send them later with
    /// [`SovendusClient::send_with_retries`](crate::SovendusClient::send_with_retries).
    ///
    /// See [`Delivery::shutdown`] for an example.
    pub fn left(&self) -> &[PendingConversion] {
        &self.left
    }

    /// Whether nothing was left undelivered.
    ///
    /// See [`Delivery::shutdown`] for an example.
    pub fn is_complete(&self) -> bool {
        self.left.is_empty()
    }
}

/// A conversion not yet delivered: its token (whole through [`SovReqToken::as_str`], masked in
/// `Debug` and `Display`) and the product it is for.
///
/// ```
/// use tower_sovendus::{PendingConversion, SovendusClient, SovendusError};
///
/// async fn resend(client: &SovendusClient, left: &[PendingConversion]) -> Result<(), SovendusError> {
///     for pending in left {
///         client.send_with_retries(pending.product_id(), pending.token()).await?;
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingConversion {
    token: SovReqToken,
    product_id: ProductId,
}

impl PendingConversion {
    /// The token.
    ///
    /// See [`PendingConversion`] for an example.
    pub fn token(&self) -> &SovReqToken {
        &self.token
    }

    /// The product the conversion is for.
    ///
    /// See [`PendingConversion`] for an example.
    pub fn product_id(&self) -> &ProductId {
        &self.product_id
    }
}
