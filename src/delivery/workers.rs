//! The delivery workers of one instance: a loop that claims due conversions from the store,
//! up to as many at once as there are workers, delivers each on a task of its own, and keeps
//! the store tidy; and its shutdown.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use tokio::{
    sync::{Notify, OwnedSemaphorePermit, Semaphore},
    task::{JoinHandle, JoinSet},
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    claimed::Claimed,
    report::{DeliveryReport, PendingConversion},
    sender::Sender,
};
use crate::{
    error::SovendusError,
    metrics,
    store::{Conversion, ConversionId, ConversionState, Lease, StoreError},
    sync::lock,
};

/// How many poll intervals apart the gauges of the conversions' states are read from the
/// store: 30 s with the default schedule.
const POLLS_PER_GAUGE: u32 = 6;
/// How many poll intervals apart settled conversions past their retention and expired
/// captures are purged: 10 minutes with the default schedule.
const POLLS_PER_PURGE: u32 = 120;
/// The most conversions cut off at a shutdown that its report lists.
const MAX_LISTED: usize = 10_000;
/// How often the loop looks for conversions taken in a shop's transaction, until it finds them
/// committed: one look for all of them, well inside the quarter of a second a call should
/// start after its order's commit.
const COMMIT_LOOK: Duration = Duration::from_millis(25);
/// How long the loop looks for a conversion taken in a shop's transaction: past that, its
/// transaction rolled back, is still open, or another instance claimed it; the poll finds it
/// if it commits later.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const COMMIT_LOOK_FOR: Duration = Duration::from_secs(8);

/// The workers' shared state: their loop, the signals it takes, and what it did.
pub(crate) struct Workers {
    count: usize,
    /// A permit for each worker not delivering now.
    free: Arc<Semaphore>,
    run: Mutex<Run>,
    /// Says an order of this instance made a conversion owed: claim at once.
    pub(crate) wake: Notify,
    /// The conversions taken in a shop's transaction, until claimed: the loop looks for them
    /// every [`COMMIT_LOOK`], for at most [`COMMIT_LOOK_FOR`].
    expected: Mutex<HashMap<ConversionId, Instant>>,
    /// No more claims: the loop ends once its deliveries have.
    pub(crate) stop: CancellationToken,
    /// Cuts the deliveries under way off (a shutdown's deadline).
    pub(crate) cut: CancellationToken,
    /// The deliveries order handlers started ([`send`](crate::SovendusConversion::send)): a
    /// shutdown waits for them as for the workers' own.
    pub(crate) calls: TaskTracker,
    sent: AtomicU64,
    failed: AtomicU64,
    /// Orders whose token stayed with the visitor: the store refused, or the workers stopped.
    dropped: AtomicU64,
    /// The conversions cut off, still owed in the store.
    left: Mutex<Vec<PendingConversion>>,
}

enum Run {
    /// Not yet: the loop starts inside the app's runtime.
    NotStarted,
    Running(JoinHandle<()>),
    Stopped,
}

impl Workers {
    pub(crate) fn new(count: usize) -> Self {
        Self {
            count,
            free: Arc::new(Semaphore::new(count)),
            run: Mutex::new(Run::NotStarted),
            wake: Notify::new(),
            expected: Mutex::default(),
            stop: CancellationToken::new(),
            cut: CancellationToken::new(),
            calls: TaskTracker::new(),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            left: Mutex::default(),
        }
    }

    /// Starts the loop, if it has not started and a Tokio runtime is at hand.
    pub(crate) fn start(self: &Arc<Self>, sender: &Arc<Sender>) {
        let mut run = lock(&self.run);
        if !matches!(*run, Run::NotStarted) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        *run = Run::Running(runtime.spawn(claim_and_deliver(Arc::clone(sender), Arc::clone(self))));
    }

    /// Stops claiming, lets the deliveries under way (the workers' and the order handlers')
    /// end until `deadline`, then cuts their waits off (a call under way ends within its
    /// request timeout, and is settled); returns the conversions cut off.
    pub(crate) async fn stop(&self, deadline: Duration) -> Vec<PendingConversion> {
        self.stop.cancel();
        self.calls.close();
        let run = std::mem::replace(&mut *lock(&self.run), Run::Stopped);
        let ended = async {
            if let Run::Running(running) = run {
                if let Err(error) = running.await {
                    tracing::error!(%error, "the Sovendus delivery loop failed");
                }
            }
            self.calls.wait().await;
        };
        let mut ended = std::pin::pin!(ended);
        if tokio::time::timeout(deadline, &mut ended).await.is_err() {
            self.cut.cancel();
            ended.await;
        }
        lock(&self.left).clone()
    }

    /// Whether the loop runs, how many workers there are, and how many of them deliver now.
    pub(crate) fn activity(&self) -> (bool, usize, usize) {
        let running = matches!(*lock(&self.run), Run::Running(_)) && !self.stop.is_cancelled();
        (running, self.count, self.count.saturating_sub(self.free.available_permits()))
    }

    /// Looks for the conversion `id`, taken in a shop's transaction, until it is committed.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn expect_commit(&self, id: ConversionId) {
        lock(&self.expected).insert(id, Instant::now() + COMMIT_LOOK_FOR);
        self.wake.notify_one();
    }

    /// Counts the expected conversions among `claimed` as committed.
    fn found_committed(&self, claimed: &[Conversion]) {
        let mut expected = lock(&self.expected);
        for conversion in claimed {
            if expected.remove(&conversion.id).is_some() {
                ::metrics::counter!(metrics::OWED).increment(1);
                ::metrics::counter!(metrics::QUEUED).increment(1);
            }
        }
    }

    /// Whether any conversion is still looked for; forgets those looked for long enough.
    fn is_expecting(&self) -> bool {
        let mut expected = lock(&self.expected);
        let now = Instant::now();
        expected.retain(|_, until| *until > now);
        !expected.is_empty()
    }

    /// Counts an order whose token stayed with the visitor, for `reason`.
    pub(crate) fn count_dropped(&self, reason: &'static str) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        ::metrics::counter!(metrics::DROPPED, "reason" => reason).increment(1);
    }

    /// What the workers did, with what the shutdown `left` and what it found `unrecorded`.
    pub(crate) fn report(
        &self,
        left: Vec<PendingConversion>,
        unrecorded: Vec<PendingConversion>,
    ) -> DeliveryReport {
        DeliveryReport {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            left,
            unrecorded,
        }
    }

    /// Lists `conversion` among those the shutdown cut off, if `outcome` says it was.
    pub(crate) fn note_if_cut(
        &self,
        conversion: &Conversion,
        outcome: &Result<crate::client::Receipt, SovendusError>,
    ) {
        if matches!(outcome, Err(SovendusError::Cancelled)) {
            tracing::warn!(id = %conversion.id, token = %conversion.token,
                "Sovendus delivery cut off by the shutdown; the conversion stays owed, due at once");
            let mut left = lock(&self.left);
            if left.len() < MAX_LISTED {
                left.push(PendingConversion::of(conversion));
            }
        }
    }

    fn count_outcome(
        &self,
        conversion: &Conversion,
        outcome: &Result<crate::client::Receipt, SovendusError>,
    ) {
        self.note_if_cut(conversion, outcome);
        match outcome {
            Ok(_) => self.sent.fetch_add(1, Ordering::Relaxed),
            Err(SovendusError::Cancelled) => 0,
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The loop: at start, makes the parked conversions due (the configuration may have been
/// fixed); then claims what is due, as many as there are free workers, waking on an order of
/// its own, after the poll interval, when a quarter of the workers came free after a full
/// claim or while every worker was busy, and every [`COMMIT_LOOK`] while it looks for
/// conversions taken in a shop's transaction.
async fn claim_and_deliver(sender: Arc<Sender>, workers: Arc<Workers>) {
    let woken = async { sender.store.retry_parked(sender.clock.read_at_most(&*sender.store).await?).await };
    match woken.await {
        Ok(0) => {}
        Ok(woken) => tracing::info!(woken, "parked Sovendus conversions are due again"),
        Err(error) => tracing::error!(%error,
            "could not make the parked Sovendus conversions due: they are at their next attempt, or on retry_parked"),
    }
    let schedule = sender.schedule;
    let free = Arc::clone(&workers.free);
    let quarter = u32::try_from(workers.count.div_ceil(4)).unwrap_or(u32::MAX);
    let mut deliveries = JoinSet::new();
    let mut upkeep = Upkeep::default();
    while !workers.stop.is_cancelled() {
        while let Some(ended) = deliveries.try_join_next() {
            report_panic(ended);
        }
        upkeep.run_if_due(&sender).await;
        let room = free.available_permits();
        // Every worker busy: claim again once a quarter of them is free.
        let (mut full, mut failed) = (room == 0, false);
        if room > 0 {
            match claim(&sender, room).await {
                Ok((claimed, lease, since)) => {
                    full = claimed.len() == room;
                    workers.found_committed(&claimed);
                    // What this instance is sending or settling, it never sends again: its lease
                    // may seem run out to a store whose clock stepped, or after an outage.
                    for conversion in claimed.into_iter().filter(|claimed| !sender.is_in_hand(claimed.id)) {
                        let Ok(worker) = Arc::clone(&free).try_acquire_owned() else { break };
                        let claim = Claim { conversion, lease, since, _worker: worker };
                        deliveries.spawn(deliver(Arc::clone(&sender), Arc::clone(&workers), claim));
                    }
                }
                Err(error) => {
                    failed = true;
                    tracing::warn!(%error, "could not claim due Sovendus conversions");
                }
            }
        }
        // After a failed claim, the next comes after the poll interval, not the look's 25 ms.
        let expecting = !failed && workers.is_expecting();
        tokio::select! {
            () = workers.stop.cancelled() => {}
            () = workers.wake.notified() => {}
            () = tokio::time::sleep(schedule.poll_interval) => {}
            () = tokio::time::sleep(COMMIT_LOOK), if expecting => {}
            // More may be due once a quarter of the workers is free.
            Ok(_free) = free.acquire_many(quarter), if full => {}
        }
    }
    while let Some(ended) = deliveries.join_next().await {
        report_panic(ended);
    }
}

/// Claims up to `limit` due conversions, judged by the store's clock, read first; returns them
/// with their lease and when this instance took it.
async fn claim(
    sender: &Sender,
    limit: usize,
) -> Result<(Vec<Conversion>, Lease, std::time::Instant), StoreError> {
    let now = sender.clock.read_at_most(&*sender.store).await?;
    let (lease, since) = sender.new_lease();
    let claimed = sender.store.claim(now, limit, lease).await?;
    Ok((claimed, lease, since))
}

/// A claimed conversion, holding its worker until it is settled.
struct Claim {
    conversion: Conversion,
    lease: Lease,
    /// When this instance took the lease.
    since: std::time::Instant,
    _worker: OwnedSemaphorePermit,
}

/// Delivers a claimed conversion, and settles it; gives it back, due at once, if the workers
/// stopped or its lease could not be renewed before the first call.
async fn deliver(sender: Arc<Sender>, workers: Arc<Workers>, claim: Claim) {
    let Claim { conversion, lease, since, _worker } = claim;
    let claimed = Claimed::new(&sender, conversion, (lease, since));
    if workers.stop.is_cancelled() || !claimed.renew_before_calling().await {
        return claimed.give_back().await;
    }
    let conversion = claimed.conversion().clone();
    let outcome = claimed.deliver(&workers.cut).await;
    workers.count_outcome(&conversion, &outcome);
}

fn report_panic(ended: Result<(), tokio::task::JoinError>) {
    if let Err(error) = ended {
        tracing::error!(%error, "a Sovendus delivery failed");
    }
}

/// The loop's upkeep, each part when it is due: the gauges, and the purge.
#[derive(Default)]
struct Upkeep {
    gauges_at: Option<Instant>,
    purge_at: Option<Instant>,
}

impl Upkeep {
    async fn run_if_due(&mut self, sender: &Sender) {
        let now = Instant::now();
        let poll = sender.schedule.poll_interval;
        if self.gauges_at.is_none_or(|at| at <= now) {
            self.gauges_at = Some(now + poll * POLLS_PER_GAUGE);
            match sender.store.counts().await {
                Ok(counts) => {
                    for state in ConversionState::ALL {
                        ::metrics::gauge!(metrics::CONVERSIONS, "state" => state.as_str())
                            .set(counts.of(state) as f64);
                    }
                }
                Err(error) => tracing::warn!(%error, "could not count the Sovendus conversions"),
            }
        }
        if self.purge_at.is_none_or(|at| at <= now) {
            self.purge_at = Some(now + poll * POLLS_PER_PURGE);
            let wall = SystemTime::now();
            let before = wall.checked_sub(sender.schedule.keep_settled_for).unwrap_or(SystemTime::UNIX_EPOCH);
            match sender.store.purge(before, wall).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged Sovendus conversions past their retention"),
                Err(error) => tracing::warn!(%error, "could not purge settled Sovendus conversions"),
            }
        }
    }
}
