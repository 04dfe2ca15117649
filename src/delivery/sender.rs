//! Delivering one owed conversion: send it under its lease, renewing the lease meanwhile, and
//! settle it with what Sovendus answered.

use std::{
    collections::{HashMap, HashSet},
    pin::pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use tokio_util::sync::CancellationToken;

use futures_util::future::{self, Either};

use super::{clock::StoreClock, hold::Hold, report::PendingConversion, verdict::Verdict};
use crate::{
    client::{Attempted, Receipt, SovendusClient},
    config::{DeliverySchedule, RetryPolicy},
    error::SovendusError,
    metrics,
    store::{Conversion, ConversionId, ConversionState, Lease, LeaseId, Settlement, StoreError, TokenStore},
    sync::lock,
};

/// How settling is repeated while the store fails: waits from 100 ms doubling to 1 s, for as
/// long as the process lives, so that the holder writes what it heard within a second of the
/// store's return, well inside the quarantine.
const SETTLE_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: u32::MAX,
    initial_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(1),
    max_elapsed: Duration::MAX,
    jitter: true,
};

/// Sends owed conversions, for the order handlers and the delivery workers alike.
pub(crate) struct Sender {
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) client: SovendusClient,
    pub(crate) schedule: DeliverySchedule,
    /// The store's clock, which due times and leases are judged by.
    pub(super) clock: StoreClock,
    /// The causes of parking logged at ERROR so far: each once.
    parked_causes: Mutex<HashSet<&'static str>>,
    /// The conversions Sovendus accepted whose settlement waits for the store: its shutdown
    /// waits for them.
    unrecorded: Mutex<HashMap<ConversionId, PendingConversion>>,
    /// The conversions this instance is sending or settling: its claims never send them again,
    /// whatever the store's clock says of their lease.
    in_hand: Arc<Mutex<HashSet<ConversionId>>>,
}

/// What a delivery's calls ended in, and the settlement that records it.
pub(crate) struct Sent {
    result: Result<Receipt, SovendusError>,
    settlement: Settlement,
    /// The hold on the lease, renewed until the settlement is written.
    hold: Hold,
    /// Keeps the conversion in this instance's hands until the settlement is written.
    in_hand: InHand,
}

/// A conversion in this instance's hands (see [`Sender::in_hand`]) until dropped.
pub(crate) struct InHand {
    id: ConversionId,
    hands: Arc<Mutex<HashSet<ConversionId>>>,
}

impl Drop for InHand {
    fn drop(&mut self) {
        lock(&self.hands).remove(&self.id);
    }
}

impl Sender {
    pub(crate) fn new(
        store: Arc<dyn TokenStore>,
        client: SovendusClient,
        schedule: DeliverySchedule,
    ) -> Self {
        Self {
            store,
            client,
            schedule,
            clock: StoreClock::default(),
            parked_causes: Mutex::default(),
            unrecorded: Mutex::default(),
            in_hand: Arc::default(),
        }
    }

    /// A new lease, ending on the store's clock, and when this instance took it, on its own.
    pub(crate) fn new_lease(&self) -> (Lease, Instant) {
        let since = Instant::now();
        (Lease { id: LeaseId::random(), until: self.lease_end() }, since)
    }

    /// Where a lease taken or renewed now ends on the store's clock: no other delivery claims
    /// its conversion before, and the quarantine is part of it (see
    /// [`DeliverySchedule::quarantine`]).
    fn lease_end(&self) -> SystemTime {
        self.clock.at_least() + self.schedule.held_for()
    }

    /// Delivers `conversion` under `lease`, taken at `since`, and settles it. Its first delivery gets the quick
    /// retries, later ones one call each. `cancel` cuts the attempts off (a shutdown at its
    /// deadline): the conversion is then due again at once.
    pub(crate) async fn deliver(
        self: &Arc<Self>,
        conversion: &Conversion,
        (lease, since): (Lease, Instant),
        cancel: &CancellationToken,
    ) -> Result<Receipt, SovendusError> {
        let sent = self.send(conversion, (lease, since), cancel).await;
        self.settle_sent(conversion, lease, sent).await
    }

    /// The calls of a delivery (see [`deliver`](Self::deliver)), renewing the lease meanwhile;
    /// what they ended in is yet to be settled.
    pub(crate) async fn send(
        &self,
        conversion: &Conversion,
        (lease, since): (Lease, Instant),
        cancel: &CancellationToken,
    ) -> Sent {
        let in_hand = self.take_in_hand(conversion.id);
        let policy =
            if conversion.attempts == 0 { *self.client.retry_policy() } else { RetryPolicy::never() };
        let hold = Hold::new(self.schedule.lease, since);
        // Before each wait and each attempt after the first, the lease is renewed: a void, or
        // another delivery's claim, takes effect before the next call.
        let may_go_on = || async { hold.is_held() && self.renew(conversion, lease, &hold).await };
        let send =
            self.client.send_under(&policy, &conversion.product, &conversion.token, Some(cancel), may_go_on);
        let Attempted { result, calls } = self.renewing(conversion, lease, &hold, send).await;
        let settlement = self.settlement(conversion, &result, calls, self.clock.at_most());
        Sent { result, settlement, hold, in_hand }
    }

    /// Marks `id` as in this instance's hands until the guard is dropped.
    fn take_in_hand(&self, id: ConversionId) -> InHand {
        lock(&self.in_hand).insert(id);
        InHand { id, hands: Arc::clone(&self.in_hand) }
    }

    /// Whether this instance is sending or settling the conversion `id`.
    pub(crate) fn is_in_hand(&self, id: ConversionId) -> bool {
        lock(&self.in_hand).contains(&id)
    }

    /// Settles what a delivery's calls ended in; returns it.
    pub(crate) async fn settle_sent(
        self: &Arc<Self>,
        conversion: &Conversion,
        lease: Lease,
        sent: Sent,
    ) -> Result<Receipt, SovendusError> {
        let Sent { result, settlement, hold, in_hand } = sent;
        let delivered = settlement.state == ConversionState::Delivered;
        if delivered {
            // From Sovendus' 200 until the store records it, this instance sends it no more.
            lock(&self.unrecorded).insert(conversion.id, PendingConversion::of(conversion));
        }
        // The lease is renewed until the store answers: a settlement that waits for the store
        // keeps the conversion from every other delivery meanwhile.
        let settle = self.store.settle(conversion.id, lease.id, settlement.clone());
        match self.renewing(conversion, lease, &hold, settle).await {
            Ok(true) => {}
            Ok(false) if delivered => recorded_before(conversion),
            Ok(false) => lease_lost(conversion),
            Err(error) => return self.settle_later(conversion, lease, settlement, error, result, in_hand),
        }
        if delivered {
            lock(&self.unrecorded).remove(&conversion.id);
        }
        result
    }

    /// Runs `work` beside the renewals of the lease on `conversion`: both are polled as they
    /// wake, so a renewal that waits on the store never keeps an answer of Sovendus waiting.
    async fn renewing<T>(
        &self,
        conversion: &Conversion,
        lease: Lease,
        hold: &Hold,
        work: impl Future<Output = T>,
    ) -> T {
        let renewals = pin!(self.keep_renewing(conversion, lease, hold));
        match future::select(pin!(work), renewals).await {
            Either::Left((done, _)) => done,
            // The lease is lost: the attempt under way finishes, and no other starts.
            Either::Right(((), work)) => work.await,
        }
    }

    /// Renews the lease on `conversion` a third of its length after the last renewal that went
    /// through, and promptly again after one that failed; ends when a renewal finds the lease
    /// ended (another delivery took it, or the shop voided it).
    async fn keep_renewing(&self, conversion: &Conversion, lease: Lease, hold: &Hold) {
        let mut failed = false;
        loop {
            let next = if failed {
                Instant::now() + self.schedule.renew_again_after()
            } else {
                hold.renewed_at() + self.schedule.renew_every()
            };
            tokio::time::sleep_until(next.into()).await;
            let asked = Instant::now();
            if self.renew(conversion, lease, hold).await {
                failed = hold.renewed_at() < asked;
            } else if hold.is_lost() {
                return;
            } else {
                failed = true;
            }
        }
    }

    /// Renews the lease on `conversion` now, telling `hold`; returns whether the lease is still
    /// this delivery's: true after a renewal that went through, or one that failed while the
    /// hold is fresh.
    async fn renew(&self, conversion: &Conversion, lease: Lease, hold: &Hold) -> bool {
        // A reading the claims have not refreshed for long is read again first.
        if let Err(error) = self.clock.read_if_stale(&*self.store).await {
            tracing::warn!(%error, "could not read the token store's clock");
        }
        let asked = Instant::now();
        match self.store.renew(conversion.id, Lease { until: self.lease_end(), ..lease }).await {
            Ok(true) => {
                hold.renewed(asked);
                true
            }
            Ok(false) => {
                hold.lose();
                lease_lost(conversion);
                false
            }
            Err(error) => {
                tracing::warn!(%error, id = %conversion.id, "could not renew the lease on a Sovendus conversion");
                hold.is_held()
            }
        }
    }

    /// What a delivery that ended in `result` after `calls` calls writes at `now` (the store's
    /// time), logged and counted.
    fn settlement(
        &self,
        conversion: &Conversion,
        result: &Result<Receipt, SovendusError>,
        calls: u32,
        now: SystemTime,
    ) -> Settlement {
        let attempts = conversion.attempts.saturating_add(calls);
        let settled = |state, next_attempt_at, last_error| Settlement {
            state,
            attempts,
            next_attempt_at,
            last_error,
            at: now,
        };
        let error = match result {
            Ok(_) => {
                tracing::info!(id = %conversion.id, token = %conversion.token, attempts, "Sovendus conversion delivered");
                ::metrics::counter!(metrics::SENT).increment(1);
                return settled(ConversionState::Delivered, None, None);
            }
            Err(error) => error,
        };
        let message = Some(error.to_string());
        if matches!(error, SovendusError::Cancelled) {
            // Cut off by a shutdown: the next delivery, here or elsewhere, tries it at once.
            return settled(ConversionState::Owed, Some(now), message);
        }
        let (ordered_at, retry_after) = (conversion.ordered_at, error.retry_after());
        let (state, reason, next) = match Verdict::of(error) {
            Verdict::Dead(reason) => (ConversionState::Dead, reason, None),
            // Parked conversions wait for the configuration to be fixed, however long it takes.
            Verdict::Parked(cause) => (
                ConversionState::Parked,
                cause,
                Some(self.schedule.next_parked_attempt(ordered_at, now, retry_after)),
            ),
            Verdict::Owed => match self.schedule.next_attempt(ordered_at, now, retry_after) {
                Some(next) => (ConversionState::Owed, "owed", Some(next)),
                // A parked conversion waits for its configuration however long it takes: a
                // failure on its way, past the schedule's end, does not end it.
                None if conversion.state == ConversionState::Parked => (
                    ConversionState::Parked,
                    "unavailable_while_parked",
                    Some(self.schedule.next_parked_attempt(ordered_at, now, retry_after)),
                ),
                None => (ConversionState::Dead, "gave_up", None),
            },
        };
        ::metrics::counter!(metrics::FAILED, "reason" => reason).increment(1);
        let (id, token) = (conversion.id, &conversion.token);
        match state {
            ConversionState::Parked
                if matches!(Verdict::of(error), Verdict::Parked(_))
                    && lock(&self.parked_causes).insert(reason) =>
            {
                tracing::error!(%error, %id, %token, cause = reason,
                "Sovendus refused the shop's configuration: the conversion is parked and retried on the schedule; \
                 fix the configuration (logged once per cause)")
            }
            ConversionState::Parked => {
                tracing::warn!(%error, %id, %token, cause = reason, "Sovendus conversion parked")
            }
            ConversionState::Dead => {
                tracing::error!(%error, %id, %token, reason, "Sovendus conversion dead: never sent again")
            }
            _ => {
                tracing::warn!(%error, %id, %token, next = ?next, "Sovendus conversion still owed; retried on the schedule")
            }
        }
        settled(state, next, message)
    }

    /// Settles on a task of its own once the store answers again, however long that takes.
    /// A 200 is recorded whatever the lease then (the store's rule), and until it is, this
    /// instance sends the conversion no more (see [`is_in_hand`](Self::is_in_hand)).
    /// Returns `result`, the delivery's, at once.
    fn settle_later<R>(
        self: &Arc<Self>,
        conversion: &Conversion,
        lease: Lease,
        settlement: Settlement,
        error: StoreError,
        result: R,
        in_hand: InHand,
    ) -> R {
        let (id, token) = (conversion.id, conversion.token.clone());
        tracing::warn!(%error, %id, %token, "could not settle the Sovendus conversion yet; trying again");
        let delivered = settlement.state == ConversionState::Delivered;
        let sender = Arc::clone(self);
        tokio::spawn(async move {
            for wait in SETTLE_RETRY.waits() {
                tokio::time::sleep(wait).await;
                match sender.store.settle(id, lease.id, settlement.clone()).await {
                    Ok(true) => tracing::info!(%id, %token, "settled the Sovendus conversion"),
                    Ok(false) if delivered => tracing::warn!(%id, %token,
                        "the store refused Sovendus' 200: recorded delivered already (by an earlier write that \
                         timed out after it went through, or by another delivery's 200: then Sovendus booked it \
                         twice), or voided after this instance was cut off past the quarantine (then Sovendus \
                         booked a voided order: tell them the token)"),
                    Ok(false) => {
                        tracing::info!(%id, %token, "another delivery took the Sovendus conversion meanwhile")
                    }
                    Err(_) => continue,
                }
                break;
            }
            lock(&sender.unrecorded).remove(&id);
            drop(in_hand);
        });
        result
    }

    /// The conversions Sovendus accepted that the store has yet to record.
    pub(crate) fn unrecorded(&self) -> Vec<PendingConversion> {
        lock(&self.unrecorded).values().cloned().collect()
    }
}

fn recorded_before(conversion: &Conversion) {
    tracing::error!(id = %conversion.id, token = %conversion.token,
        "the store refused Sovendus' 200: the conversion was recorded delivered already (by another delivery's \
         200: Sovendus booked it twice), or voided after this delivery was silent past the quarantine (Sovendus \
         booked a voided order): tell Sovendus the token");
}

fn lease_lost(conversion: &Conversion) {
    tracing::warn!(id = %conversion.id, token = %conversion.token,
        "a Sovendus delivery's lease ended (the shop voided the conversion, or another delivery took it \
         after this one was silent past the quarantine): no further attempt");
}
