//! Three of the four roles of [`RedisTokenStore`], each operation one script (see the module's
//! docs); [`Inspection`] is in `inspection`.

use std::time::SystemTime;

use fred::{interfaces::*, types::Value};

use super::*;

#[async_trait]
impl<C> CaptureStore for RedisTokenStore<C>
where
    C: KeysInterface + LuaInterface + Send + Sync + 'static,
{
    async fn capture(&self, key: TokenKey, new: NewCapture) -> Result<bool, StoreError> {
        let value = encode_capture(&new.capture, to_millis(new.expires_at()));
        let px = i64::try_from(new.ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let keys = vec![self.keys.capture(key), self.keys.tokens()];
        let first_click = new.attribution == Attribution::FirstClick;
        let args = vec![
            value,
            px.to_string(),
            to_millis(new.at).to_string(),
            new.capture.token.as_str().to_owned(),
            if first_click { "1" } else { "0" }.to_owned(),
        ];
        let kept = self.timed(self.script(&CAPTURE_SCRIPT, keys, args)).await?;
        Ok(kept.as_i64() == Some(1))
    }

    async fn captured(&self, key: TokenKey, now: SystemTime) -> Result<Option<Capture>, StoreError> {
        let keys = vec![self.keys.capture(key), self.keys.tokens()];
        let reply = self.timed(self.script(&CAPTURED_SCRIPT, keys, Vec::new())).await?;
        let mut reply = reply.into_array().into_iter();
        let Some(value) =
            text_or_null(reply.next().unwrap_or(Value::Null)).ok_or_else(|| unreadable_capture(MALFORMED))?
        else {
            return Ok(None);
        };
        let (expires_at, capture) = decode_capture(&value)?;
        let converted = reply.next().and_then(|converted| converted.as_i64()) == Some(1);
        Ok((expires_at > to_millis(now) && !converted).then_some(capture))
    }
}

#[async_trait]
impl<C> ConversionStore for RedisTokenStore<C>
where
    C: KeysInterface + LuaInterface + Send + Sync + 'static,
{
    async fn take(&self, key: TokenKey, conversion: NewConversion) -> Result<Taken, StoreError> {
        let took = self.timed(self.take_script(key, &conversion)).await?;
        self.taken(took, conversion)
    }

    async fn owe(&self, capture: Capture, conversion: NewConversion) -> Result<Taken, StoreError> {
        let took = self.timed(self.owe_script(&capture, &conversion)).await?;
        self.taken(took, conversion)
    }

    async fn void(&self, id: ConversionId, now: SystemTime) -> Result<VoidOutcome, StoreError> {
        let id = id.to_string();
        let args = vec![id.clone(), to_millis(now).to_string()];
        let reply = self.timed(self.script(&VOID_SCRIPT, self.settle_keys(&id), args)).await?;
        void_outcome(&id, reply)
    }

    async fn find(&self, order: &OrderRef) -> Result<Option<Conversion>, StoreError> {
        self.indexed(self.keys.orders(), order.as_str(), "order", |conversion| {
            conversion.order.as_ref() == Some(order)
        })
        .await
    }

    async fn purge(&self, settled_before: SystemTime, _now: SystemTime) -> Result<u64, StoreError> {
        // Captures need no sweep: Redis drops each once its TTL has passed (`PX`).
        // Every key a script touches is declared: first the IDs settled before, then the purge
        // of those, each key named, which checks again that each is.
        let mut indexes = vec![self.keys.settled(), self.keys.due(), self.keys.tokens(), self.keys.orders()];
        indexes.extend(ConversionState::ALL.map(|state| self.keys.state(state)));
        let before = to_millis(settled_before).to_string();
        let mut purged = 0;
        loop {
            let args = vec![before.clone(), BATCH.to_string()];
            let ids = ids_of(
                self.timed(self.script(&SETTLED_BEFORE_SCRIPT, vec![self.keys.settled()], args)).await?,
            );
            if ids.is_empty() {
                return Ok(purged);
            }
            let keys = indexes.iter().cloned().chain(ids.iter().map(|id| self.keys.conversion(id))).collect();
            let args = std::iter::once(before.clone()).chain(ids.iter().cloned()).collect();
            let count = self.timed(self.script(&PURGE_SCRIPT, keys, args)).await?;
            purged += count.as_u64().unwrap_or_default();
            if ids.len() < BATCH {
                return Ok(purged);
            }
        }
    }
}

#[async_trait]
impl<C> Outbox for RedisTokenStore<C>
where
    C: KeysInterface + LuaInterface + Send + Sync + 'static,
{
    fn timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }

    async fn now(&self) -> Result<SystemTime, StoreError> {
        // Asked of the node that holds the store's keys: on a cluster, each node has its clock.
        let parts =
            self.timed(self.script(&TIME_SCRIPT, vec![self.keys.due()], Vec::new())).await?.into_array();
        let part = |at: usize| parts.get(at).and_then(Value::as_u64);
        match (part(0), part(1)) {
            (Some(seconds), Some(micros)) => {
                Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_micros(micros))
            }
            _ => Err(StoreError::Unreadable(
                "Redis' TIME answered something else than seconds and microseconds".into(),
            )),
        }
    }

    async fn claim(
        &self,
        now: SystemTime,
        limit: usize,
        lease: Lease,
    ) -> Result<Vec<Conversion>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = to_millis(now);
        // Every key a script touches is declared: first the IDs due, then the claim of those,
        // each key named, which checks again that each is still due. Those another claim took
        // in between are made up for by another round.
        let mut replies = Vec::new();
        let mut looked_at = 0;
        for round in 0..CLAIM_ROUNDS {
            if looked_at >= limit {
                break;
            }
            let claimed_round = async {
                let due_args = vec![now.to_string(), (limit - looked_at).min(i64::MAX as usize).to_string()];
                let ids =
                    ids_of(self.timed(self.script(&DUE_SCRIPT, vec![self.keys.due()], due_args)).await?);
                if ids.is_empty() {
                    return Ok((0, Vec::new()));
                }
                let keys =
                    std::iter::once(self.keys.due()).chain(ids.iter().map(|id| self.keys.conversion(id)));
                let args = [now.to_string(), lease_text(lease.id), to_millis(lease.until).to_string()];
                let args = args.into_iter().chain(ids.iter().cloned()).collect();
                let reply = self.timed(self.script(&CLAIM_SCRIPT, keys.collect(), args)).await?;
                Ok::<_, StoreError>((ids.len(), records(reply).collect::<Vec<_>>()))
            };
            let (asked, reply) = match claimed_round.await {
                Ok(claimed) => claimed,
                Err(error) if round == 0 => return Err(error),
                // What the earlier rounds leased is this claim's: their deliveries go ahead.
                Err(_) => break,
            };
            if asked == 0 {
                break;
            }
            let all_taken = reply.len() == asked;
            looked_at += reply.len();
            replies.extend(reply);
            if all_taken {
                break;
            }
        }
        let mut claimed = Vec::new();
        for (id, fields) in replies {
            match decode_record(&id, fields) {
                Ok(conversion) => claimed.push(conversion),
                Err((parsed, corrupt)) => {
                    unreadable_conversion(parsed, &corrupt);
                    if corrupt == Corrupt::NotAHash {
                        continue; // Looked at again once the lease would have run out.
                    }
                    if let Err(error) = self.bury(&id, lease.id, now).await {
                        // Claimed again once the lease runs out, and buried then.
                        tracing::warn!(%error, "an unreadable Sovendus conversion could not be marked dead");
                    }
                }
            }
        }
        Ok(claimed)
    }

    async fn renew(&self, id: ConversionId, lease: Lease) -> Result<bool, StoreError> {
        let id = id.to_string();
        let keys = vec![self.keys.conversion(&id), self.keys.due()];
        let args = vec![id, lease_text(lease.id), to_millis(lease.until).to_string()];
        let renewed = self.timed(self.script(&RENEW_SCRIPT, keys, args)).await?;
        Ok(renewed.as_i64() == Some(1))
    }

    async fn settle(
        &self,
        id: ConversionId,
        lease: LeaseId,
        settlement: Settlement,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        let millis = |time: Option<SystemTime>| time.map(|time| to_millis(time).to_string());
        let settled_at = settlement.state.is_settled().then_some(settlement.at);
        let args = vec![
            id.clone(),
            lease_text(lease),
            settlement.state.as_str().to_owned(),
            settlement.attempts.to_string(),
            millis(settlement.next_attempt_at).unwrap_or_default(),
            millis(settled_at).unwrap_or_default(),
            if settlement.last_error.is_some() { "1" } else { "0" }.to_owned(),
            settlement.last_error.unwrap_or_default(),
            millis(settlement.attempted_at).unwrap_or_default(),
        ];
        let settled = self.timed(self.script(&SETTLE_SCRIPT, self.settle_keys(&id), args)).await?;
        Ok(settled.as_i64() == Some(1))
    }
}

/// The IDs a script answered.
fn ids_of(reply: Value) -> Vec<String> {
    reply.into_array().into_iter().filter_map(Value::into_string).collect()
}

/// The most rounds of a claim that others' claims took candidates from.
const CLAIM_ROUNDS: usize = 8;
