//! The order path of [`Delivery`]: recording an order's conversion, sending it, and voiding it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::{Delivery, Outcome, claimed::Claimed, verdict::Verdict};
use crate::{
    error::SovendusError,
    ids::{OrderRef, ProductId, SovReqToken},
    metrics,
    store::{
        Capture, Conversion, ConversionId, ConversionState, Lease, NewConversion, StoreError, Taken,
        TokenKey, VoidOutcome,
    },
};

impl Delivery {
    /// Makes the capture for `key` owed, in one step, and delivers it now, on a task of its
    /// own: a handler cancelled mid-send (the visitor left) still settles it.
    pub(crate) async fn send(
        &self,
        key: TokenKey,
        order: Option<OrderRef>,
    ) -> Result<Outcome, SovendusError> {
        let store = self.store();
        let (owed, lease) = match self.record(true, order, |conversion| store.take(key, conversion)).await? {
            Recording::Owed(owed, Some(lease)) => (owed, lease),
            Recording::Owed(owed, None) => return Ok(Outcome::Owed { id: owed.id, error: None }),
            Recording::Done(outcome) => return Ok(outcome),
        };
        if self.inner.workers.stop.is_cancelled() {
            // Once stopping, no call starts that the shutdown would not wait for: the
            // conversion stays owed, due at once for the next instance to start.
            self.give_back_later(owed.id, lease.0);
            return Ok(Outcome::Owed { id: owed.id, error: None });
        }
        let (sender, workers) = (Arc::clone(&self.inner.sender), Arc::clone(&self.inner.workers));
        let id = owed.id;
        // Tracked by the workers: a shutdown waits for the call, and cuts only the waits
        // between calls, at its deadline.
        let task = self.inner.workers.calls.spawn(async move {
            let delivered = Claimed::new(&sender, owed.clone(), lease).deliver(&workers.cut).await;
            workers.note_if_cut(&owed, &delivered);
            delivered
        });
        let error = match task.await {
            Ok(Ok(receipt)) => return Ok(Outcome::Sent { id, receipt }),
            Ok(Err(error)) => error,
            Err(join_error) if join_error.is_panic() => std::panic::resume_unwind(join_error.into_panic()),
            // The runtime is shutting down: the conversion stays owed, due at once.
            Err(_) => SovendusError::Cancelled,
        };
        Ok(match Verdict::of(&error) {
            Verdict::Owed => Outcome::Owed { id, error: Some(error) },
            Verdict::Parked(_) => Outcome::Parked { id, error },
            Verdict::Dead(_) => Outcome::Dead { id, error },
        })
    }

    /// Makes the capture for `key` owed, in one step, for a worker to deliver.
    pub(crate) async fn send_in_background(
        &self,
        key: TokenKey,
        order: Option<OrderRef>,
    ) -> Result<Outcome, SovendusError> {
        let store = self.store();
        self.record_for_workers(order, |conversion| store.take(key, conversion)).await
    }

    /// Makes `token`, captured for `product`, an owed conversion of `order`, unless the token
    /// was converted before ([`Outcome::AlreadyConverted`]); the workers deliver it.
    ///
    /// For a shop whose store cannot join its order's transaction (Redis, memory): it keeps
    /// the visitor's [token](crate::SovendusConversion::token) and
    /// [product](crate::SovendusConversion::product_id) with the order, in the order's
    /// transaction, and calls this after the commit: what is booked is what the order kept. An
    /// order a crash left between its commit and this call still has them: call it again at
    /// start, or on a timer, for the orders that recorded no outcome. The store makes one
    /// conversion per token while it keeps the conversion
    /// ([`keep_settled_for`](crate::DeliverySchedule::keep_settled_for), at least the token's
    /// TTL), so calling it for an order that did record, or twice, books nothing more; past
    /// that retention it would book again, so recover only orders younger than the token's TTL.
    /// With [`MokaTokenStore`](crate::MokaTokenStore), which forgets every conversion on a
    /// restart, only in the process that took the order.
    pub async fn owe(
        &self,
        order: OrderRef,
        token: SovReqToken,
        product: ProductId,
    ) -> Result<Outcome, SovendusError> {
        let store = self.store();
        let capture = Capture { token, product };
        self.record_for_workers(Some(order), |conversion| store.owe(capture, conversion)).await
    }

    /// Voids the conversion of `order`, so that it is never sent: for an order taken back
    /// (cancelled, refunded) before Sovendus booked it. Says what it found: see
    /// [`VoidOutcome`]. A conversion Sovendus booked is
    /// [`Delivered`](VoidOutcome::Delivered), with its token and the time: Sovendus has no API
    /// to take a booking back, so tell them. One a delivery is sending right now is marked
    /// voided, that delivery starts no further call, and this waits for the call under way (at
    /// most the [request timeout](crate::SovendusConfigBuilder::request_timeout) and a third of
    /// the lease): [`Voided`](VoidOutcome::Voided), or `Delivered` if Sovendus booked it. It
    /// answers [`Sending`](VoidOutcome::Sending) when that delivery has not settled by then:
    /// its instance went silent, or it waits longer than that between two quick retries (a
    /// long `Retry-After`). Nothing sends the conversion meanwhile; ask again later (at the
    /// latest once its lease and [quarantine](crate::DeliverySchedule::quarantine) ran out). Once it answered `Voided`, no
    /// call goes out and no 200 is recorded for the conversion.
    ///
    /// An `Err` (the store timed out) may still void it later: call it again until it answers.
    ///
    /// Only for an order whose conversion was recorded with its reference
    /// ([`for_order`](crate::SovendusConversion::for_order)). Void first, and cancel the order
    /// in the shop's database once this answered: a crash in between leaves a live order whose
    /// conversion is void (its commission unpaid), never a cancelled one booked. A voided token
    /// stays converted: the visitor's next order books nothing for it.
    pub async fn void(&self, order: &OrderRef) -> Result<VoidOutcome, StoreError> {
        let Some(conversion) = self.store().find(order).await? else { return Ok(VoidOutcome::NotFound) };
        self.void_conversion(conversion.id).await
    }

    /// [`void`](Self::void) by the conversion's ID, for a conversion recorded without its
    /// order's reference, or found by its token: the same answers, the same wait.
    pub async fn void_conversion(&self, id: ConversionId) -> Result<VoidOutcome, StoreError> {
        let sender = &self.inner.sender;
        // A delivery under way ends its call within the request timeout, and starts no further
        // one once it learns of the void, at its next renewal: the void waits that long for it.
        let patience = self.client().request_timeout() + sender.schedule.renew_every();
        let until = Instant::now() + patience;
        let mut wait = Duration::from_millis(10);
        let mut waited = false;
        let voided = loop {
            let now = sender.clock.read_at_most(self.store()).await?;
            match self.store().void(id, now).await? {
                VoidOutcome::Sending(_) if Instant::now() + wait < until => {
                    waited = true;
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(500));
                }
                // Voided by the settlement of the delivery it waited for.
                VoidOutcome::AlreadyVoided(conversion) if waited => break VoidOutcome::Voided(conversion),
                outcome => break outcome,
            }
        };
        match &voided {
            VoidOutcome::Voided(conversion) => {
                tracing::info!(id = %conversion.id, token = %conversion.token, "Sovendus conversion voided");
                ::metrics::counter!(metrics::VOIDED).increment(1);
            }
            VoidOutcome::Delivered(conversion) => {
                tracing::warn!(id = %conversion.id, token = %conversion.token,
                "an order taken back was booked by Sovendus: tell them its token")
            }
            VoidOutcome::Sending(conversion) => {
                tracing::warn!(id = %conversion.id, token = %conversion.token,
                "a Sovendus conversion to void is held by a delivery that has not settled yet: voided once \
                 it settles, or once its lease and quarantine run out; never sent again meanwhile")
            }
            _ => {}
        }
        Ok(voided)
    }

    /// Takes the capture for `key`, if any, into an owed conversion of `order` inside the
    /// shop's transaction on `connection`; the workers look for it until it is committed.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) async fn owe_in(
        &self,
        key: Option<TokenKey>,
        order: Option<OrderRef>,
        mut connection: crate::store::SqlConnection<'_>,
    ) -> Result<Outcome, SovendusError> {
        use crate::store::TakeInError;
        // Nothing to write, nothing to check: the database is checked with the first write.
        let Some(key) = key else { return Ok(Outcome::NoToken) };
        // The workers' last reading of the store's clock (they read it at every poll): reading
        // it here would take a second connection of the pool while the order holds one.
        let conversion = NewConversion {
            id: ConversionId::random(),
            order,
            ordered_at: self.inner.sender.clock.at_most(),
            lease: None,
        };
        match self.store().take_in(&mut connection, key, conversion).await {
            Ok(Taken::Owed(owed)) => {
                tracing::info!(id = %owed.id, token = %owed.token, "Sovendus conversion owed, once the order commits");
                self.start();
                self.inner.workers.expect_commit(owed.id);
                Ok(Outcome::Owed { id: owed.id, error: None })
            }
            Ok(taken) => Ok(not_owed(taken)),
            Err(TakeInError::Unjoinable(why)) => {
                tracing::error!(%why, "SovendusConversion::owe_in: the order's transaction cannot take the conversion");
                Err(SovendusError::Unjoinable(why))
            }
            // A failed statement wrote nothing; the shop's transaction fails with it.
            Err(TakeInError::Store(error)) => Err(SovendusError::Store(error)),
        }
    }

    /// Records a conversion with `write`, for the workers to deliver, and wakes them.
    async fn record_for_workers<F, Fut>(
        &self,
        order: Option<OrderRef>,
        write: F,
    ) -> Result<Outcome, SovendusError>
    where
        F: FnOnce(NewConversion) -> Fut,
        Fut: Future<Output = Result<Taken, StoreError>>,
    {
        self.refuse_if_stopping()?;
        let workers = &self.inner.workers;
        let recorded = self.record(false, order, write).await.inspect_err(|_| {
            workers.count_dropped("token_store");
        })?;
        let owed = match recorded {
            Recording::Owed(owed, _) => owed,
            Recording::Done(outcome) => return Ok(outcome),
        };
        ::metrics::counter!(metrics::QUEUED).increment(1);
        self.start();
        workers.wake.notify_one();
        Ok(Outcome::Owed { id: owed.id, error: None })
    }

    /// Records a conversion of `order` with `write` (a take, or an owe), ordered now on the
    /// store's clock, logged and counted; under a lease of this instance's if `leased`, for
    /// sending at once. `Err` only when nothing was recorded.
    async fn record<F, Fut>(
        &self,
        leased: bool,
        order: Option<OrderRef>,
        write: F,
    ) -> Result<Recording, SovendusError>
    where
        F: FnOnce(NewConversion) -> Fut,
        Fut: Future<Output = Result<Taken, StoreError>>,
    {
        let sender = &self.inner.sender;
        let id = ConversionId::random();
        let mut taken_lease = None;
        let taken = async {
            sender.clock.read_if_stale(self.store()).await?;
            let lease = leased.then(|| sender.new_lease());
            taken_lease = lease.map(|(lease, _)| lease);
            let conversion =
                NewConversion { id, order, ordered_at: sender.clock.at_most(), lease: taken_lease };
            write(conversion).await.map(|taken| (taken, lease))
        };
        match taken.await {
            Ok((Taken::Owed(owed), lease)) => {
                tracing::info!(id = %owed.id, token = %owed.token, "Sovendus conversion owed");
                ::metrics::counter!(metrics::OWED).increment(1);
                Ok(Recording::Owed(owed, lease))
            }
            Ok((taken, _)) => Ok(Recording::Done(not_owed(taken))),
            Err(StoreError::Full(what)) => {
                tracing::error!(%what, "Sovendus conversion not made owed: the store is full; the token stays with the visitor");
                ::metrics::counter!(metrics::FAILED, "reason" => "queue_full").increment(1);
                Err(SovendusError::QueueFull)
            }
            Err(error) => {
                ::metrics::counter!(metrics::FAILED, "reason" => "token_store").increment(1);
                if error.is_outcome_unknown() {
                    tracing::error!(%error, "the token store did not say whether the Sovendus conversion was made owed: \
                        if it was, it is delivered; if not, the token stays with the visitor");
                    if let Some(lease) = taken_lease {
                        // No call went out under that lease: if the take went through, the
                        // workers may send it at once rather than after the lease's quarantine.
                        self.give_back_later(id, lease);
                    }
                    Ok(Recording::Done(Outcome::Unknown(error)))
                } else {
                    // Nothing changed: the token, if any, stays with the visitor.
                    tracing::error!(%error, "Sovendus conversion not made owed: the token store failed");
                    Err(SovendusError::Store(error))
                }
            }
        }
    }

    /// Ends `lease` on the conversion `id`, due at once, if a take wrote it: on a task of its
    /// own, retried while the store fails, for as long as the lease holds.
    fn give_back_later(&self, id: ConversionId, lease: Lease) {
        let sender = Arc::clone(&self.inner.sender);
        tokio::spawn(async move {
            let until = Instant::now() + sender.schedule.lease;
            while Instant::now() < until {
                let now = sender.clock.at_most();
                let due = crate::store::Settlement {
                    attempted_at: None,
                    ..crate::store::Settlement::new(ConversionState::Owed, 0, Some(now), None, now)
                };
                match sender.store.settle(id, lease.id, due).await {
                    Ok(_) => return,
                    Err(_) => tokio::time::sleep(sender.schedule.renew_again_after()).await,
                }
            }
        });
    }
}

/// What recording a conversion came to.
enum Recording {
    /// Owed now; under this lease of this instance's, if one was asked for.
    Owed(Conversion, Option<(Lease, Instant)>),
    /// Nothing owed by this order: no token, converted before, or unknown.
    Done(Outcome),
}

/// What a take or an owe that made no conversion answers.
fn not_owed(taken: Taken) -> Outcome {
    match taken {
        Taken::AlreadyConverted(id) => {
            tracing::info!(%id, "the visitor's token was converted before; not sent again");
            Outcome::AlreadyConverted(id)
        }
        _ => Outcome::NoToken,
    }
}
