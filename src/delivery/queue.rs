//! The background queue: bounded, served by a bounded set of workers that start with the first
//! queued conversion, and drained at shutdown.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_channel::{Receiver, Sender, TrySendError};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Outcome, sender::ConversionSender};
use crate::{config::SovendusConfig, error::SovendusError, metrics, store::TokenKey, sync::lock};

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

/// What the queue did in its life, and the keys it took but did not deliver.
pub(crate) struct Drained {
    pub(crate) sent: u64,
    pub(crate) failed: u64,
    pub(crate) dropped: u64,
    pub(crate) undelivered: Vec<TokenKey>,
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

    /// Conversions waiting in the queue now.
    pub(crate) fn len(&self) -> usize {
        self.inner.receiver.len()
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

    /// Stops taking conversions, lets the workers deliver what is queued until `deadline`,
    /// then cuts off whatever is still under way. Calling it again reports again.
    pub(crate) async fn drain(&self, deadline: Duration) -> Drained {
        let inner = &self.inner;
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
        let shared = &inner.shared;
        Drained {
            sent: shared.sent.load(Ordering::Relaxed),
            failed: shared.failed.load(Ordering::Relaxed),
            dropped: shared.dropped.load(Ordering::Relaxed),
            undelivered: lock(&shared.undelivered).iter().copied().collect(),
        }
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

async fn join_all(workers: &mut JoinSet<()>) {
    while let Some(joined) = workers.join_next().await {
        if let Err(error) = joined {
            tracing::error!(%error, "a Sovendus background worker failed");
        }
    }
}
