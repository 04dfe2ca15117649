//! [`Sender`]: what every delivery of an instance shares (the store, the client, the schedule,
//! the store's clock, what it holds in hand), and what a delivery's answer settles to.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Instant, SystemTime},
};

use super::{clock::StoreClock, health::LastCalls, report::PendingConversion, verdict::Verdict};
use crate::{
    client::{Receipt, SovendusClient},
    config::DeliverySchedule,
    error::SovendusError,
    metrics,
    store::{Conversion, ConversionId, ConversionState, Lease, LeaseId, Settlement, TokenStore},
    sync::lock,
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
    pub(super) unrecorded: Mutex<HashMap<ConversionId, PendingConversion>>,
    /// The conversions this instance is sending or settling: its claims never send them again,
    /// whatever the store's clock says of their lease.
    in_hand: Arc<Mutex<HashSet<ConversionId>>>,
    /// What the deliveries last ended in, for [`DeliveryHealth`](super::DeliveryHealth).
    pub(super) last_calls: Mutex<LastCalls>,
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
            last_calls: Mutex::default(),
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
    pub(super) fn lease_end(&self) -> SystemTime {
        self.clock.at_least() + self.schedule.held_for()
    }

    /// Marks `id` as in this instance's hands until the guard is dropped.
    pub(super) fn take_in_hand(&self, id: ConversionId) -> InHand {
        lock(&self.in_hand).insert(id);
        InHand { id, hands: Arc::clone(&self.in_hand) }
    }

    /// Whether this instance is sending or settling the conversion `id`.
    pub(crate) fn is_in_hand(&self, id: ConversionId) -> bool {
        lock(&self.in_hand).contains(&id)
    }

    /// What a delivery that ended in `result` after `calls` calls writes at `now` (the store's
    /// time), logged and counted.
    pub(super) fn settlement(
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
            attempted_at: (calls > 0).then_some(now),
        };
        let error = match result {
            Ok(_) => {
                lock(&self.last_calls).delivered_at = Some(now);
                tracing::info!(id = %conversion.id, token = %conversion.token, attempts, "Sovendus conversion delivered");
                ::metrics::counter!(metrics::SENT).increment(1);
                return settled(ConversionState::Delivered, None, None);
            }
            Err(error) => error,
        };
        let message = Some(error.to_string());
        if calls > 0 {
            lock(&self.last_calls).error = Some((now, error.to_string()));
        }
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

    /// The conversions Sovendus accepted that the store has yet to record.
    pub(crate) fn unrecorded(&self) -> Vec<PendingConversion> {
        lock(&self.unrecorded).values().cloned().collect()
    }
}
