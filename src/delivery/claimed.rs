//! [`Claimed`]: a conversion this instance holds under its lease, from its claim (or its take)
//! until it is settled. The lease rules of a delivery live here.

use std::{
    pin::pin,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::future::{self, Either};
use tokio_util::sync::CancellationToken;

use super::{
    hold::Hold,
    report::PendingConversion,
    sender::{InHand, Sender},
};
use crate::{
    client::{Attempted, Receipt},
    config::RetryPolicy,
    error::SovendusError,
    store::{Conversion, ConversionState, Lease, Settlement, StoreError},
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

/// A conversion held under a lease. It renews the lease while it sends (timed from the last
/// renewal that went through, again soon after one that failed), starts a call only while its
/// [`Hold`] is fresh, and settles fenced by the lease: a 200 the store cannot record yet is
/// retried for as long as the process lives, and the conversion stays in this instance's hands
/// (its claims never send it again) until it is settled.
pub(super) struct Claimed {
    sender: Arc<Sender>,
    conversion: Conversion,
    lease: Lease,
    hold: Hold,
    in_hand: InHand,
}

impl Claimed {
    /// `conversion`, held under `lease` since `since` (on this process's clock).
    pub(super) fn new(
        sender: &Arc<Sender>,
        conversion: Conversion,
        (lease, since): (Lease, Instant),
    ) -> Self {
        let in_hand = sender.take_in_hand(conversion.id);
        let hold = Hold::new(sender.schedule.lease, since);
        Self { sender: Arc::clone(sender), conversion, lease, hold, in_hand }
    }

    /// The conversion held.
    pub(super) fn conversion(&self) -> &Conversion {
        &self.conversion
    }

    /// Renews the lease before the first call of a conversion claimed a while ago (longer than
    /// the renewals' interval): a void since the claim, or another delivery's claim, takes
    /// effect before any call goes out. A claim that fresh is its own renewal. Returns whether
    /// the call may go: renewed, or the store did not answer and the claim's lease is still
    /// fresh (a void meanwhile waits for its answer).
    pub(super) async fn renew_before_calling(&self) -> bool {
        if self.hold.renewed_at().elapsed() < self.sender.schedule.renew_every() {
            return true;
        }
        match self.renew_now().await {
            Ok(true) => true,
            Ok(false) => false,
            Err(error) if self.hold.is_held() => {
                tracing::warn!(%error, id = %self.conversion.id, "could not renew a claimed Sovendus conversion; sent under its claim");
                true
            }
            Err(error) => {
                tracing::warn!(%error, id = %self.conversion.id, "could not renew a claimed Sovendus conversion; given back");
                false
            }
        }
    }

    /// Sends the conversion, renewing the lease meanwhile, and settles what the calls ended in.
    /// Its first delivery gets the quick retries, later ones one call each. `cancel` cuts the
    /// attempts off (a shutdown at its deadline): the conversion is then due again at once.
    pub(super) async fn deliver(self, cancel: &CancellationToken) -> Result<Receipt, SovendusError> {
        let (sender, conversion) = (&self.sender, &self.conversion);
        let policy =
            if conversion.attempts == 0 { *sender.client.retry_policy() } else { RetryPolicy::never() };
        // Before each wait and each attempt after the first, the lease is renewed: a void, or
        // another delivery's claim, takes effect before the next call.
        let may_go_on = || async { self.hold.is_held() && self.renew().await };
        let send = sender.client.send_under(
            &policy,
            &conversion.product,
            &conversion.token,
            Some(cancel),
            may_go_on,
        );
        let Attempted { result, calls } = self.renewing(send).await;
        let settlement = sender.settlement(conversion, &result, calls, sender.clock.at_most());
        self.settle(settlement, result).await
    }

    /// Ends the lease without a call, the conversion due at once as it was (a void that waited
    /// for the lease ends it; another delivery's lease is left alone).
    pub(super) async fn give_back(self) {
        let now = self.sender.clock.at_most();
        let conversion = &self.conversion;
        let unchanged = Settlement {
            state: conversion.state,
            attempts: conversion.attempts,
            next_attempt_at: Some(now),
            last_error: conversion.last_error.clone(),
            at: now,
            attempted_at: None,
        };
        if let Err(error) = self.sender.store.settle(conversion.id, self.lease.id, unchanged).await {
            tracing::warn!(%error, id = %conversion.id, "could not give a claimed Sovendus conversion back; its lease runs out");
        }
    }

    /// Writes `settlement`, renewing the lease until the store answers; returns `result`.
    async fn settle<R>(self, settlement: Settlement, result: R) -> R {
        let (sender, conversion) = (&self.sender, &self.conversion);
        let delivered = settlement.state == ConversionState::Delivered;
        if delivered {
            // From Sovendus' 200 until the store records it, this instance sends it no more.
            lock(&sender.unrecorded).insert(conversion.id, PendingConversion::of(conversion));
        }
        let settle = sender.store.settle(conversion.id, self.lease.id, settlement.clone());
        match self.renewing(settle).await {
            Ok(true) => {}
            Ok(false) if delivered => recorded_before(conversion),
            Ok(false) => lease_lost(conversion),
            Err(error) => {
                self.settle_later(settlement, error);
                return result;
            }
        }
        if delivered {
            lock(&sender.unrecorded).remove(&conversion.id);
        }
        result
    }

    /// Settles on a task of its own once the store answers again, however long that takes. A
    /// 200 is recorded whatever the lease then (the store's rule), and until it is, this
    /// instance sends the conversion no more.
    fn settle_later(self, settlement: Settlement, error: StoreError) {
        let (id, token) = (self.conversion.id, self.conversion.token.clone());
        tracing::warn!(%error, %id, %token, "could not settle the Sovendus conversion yet; trying again");
        let delivered = settlement.state == ConversionState::Delivered;
        tokio::spawn(async move {
            for wait in SETTLE_RETRY.waits() {
                tokio::time::sleep(wait).await;
                match self.sender.store.settle(id, self.lease.id, settlement.clone()).await {
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
            lock(&self.sender.unrecorded).remove(&id);
            drop(self.in_hand);
        });
    }

    /// Runs `work` beside the renewals of the lease: both are polled as they wake, so a renewal
    /// that waits on the store never keeps an answer of Sovendus waiting.
    async fn renewing<T>(&self, work: impl Future<Output = T>) -> T {
        let renewals = pin!(self.keep_renewing());
        match future::select(pin!(work), renewals).await {
            Either::Left((done, _)) => done,
            // The lease is lost: the attempt under way finishes, and no other starts.
            Either::Right(((), work)) => work.await,
        }
    }

    /// Renews the lease a third of its length after the last renewal that went through, and
    /// promptly again after one that failed; ends when a renewal finds the lease ended (another
    /// delivery took it, or the shop voided it).
    async fn keep_renewing(&self) {
        let schedule = &self.sender.schedule;
        let mut failed = false;
        loop {
            let next = match failed {
                true => Instant::now() + schedule.renew_again_after(),
                false => self.hold.renewed_at() + schedule.renew_every(),
            };
            tokio::time::sleep_until(next.into()).await;
            let asked = Instant::now();
            if self.renew().await {
                failed = self.hold.renewed_at() < asked;
            } else if self.hold.is_lost() {
                return;
            } else {
                failed = true;
            }
        }
    }

    /// Renews the lease now; returns whether it is still this delivery's: true after a renewal
    /// that went through, or one that failed while the hold is fresh.
    async fn renew(&self) -> bool {
        match self.renew_now().await {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(%error, id = %self.conversion.id, "could not renew the lease on a Sovendus conversion");
                self.hold.is_held()
            }
        }
    }

    /// Renews the lease now, telling the hold; `Ok(false)` once it found the lease ended.
    async fn renew_now(&self) -> Result<bool, StoreError> {
        let sender = &self.sender;
        // A reading the claims have not refreshed for long is read again first.
        if let Err(error) = sender.clock.read_if_stale(&*sender.store).await {
            tracing::warn!(%error, "could not read the token store's clock");
        }
        let asked = Instant::now();
        let renewed =
            sender.store.renew(self.conversion.id, Lease { until: sender.lease_end(), ..self.lease }).await?;
        if renewed {
            self.hold.renewed(asked);
        } else {
            self.hold.lose();
            lease_lost(&self.conversion);
        }
        Ok(renewed)
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
