//! [`RedisTokenStore`]: captures and owed conversions in Redis, shared by every instance of
//! the shop. Its keys, and what it does with unreadable records, are told on the type, for
//! the shop; this is how it works.
//!
//! # Scripts
//!
//! Each operation that reads and writes is one Lua script, sent by its SHA-1 (`EVALSHA`, and
//! its source once after `NOSCRIPT`), so it is atomic across instances. Times are the caller's,
//! passed in as milliseconds since the Unix epoch; no script reads Redis' clock.
//!
//! - `capture` writes nothing for a token that has a conversion (`tokens`); under first-click
//!   it keeps a capture live at the landing's time (by the `expires_at` in its value), else
//!   it writes the new one (`SET … PX`).
//! - `take` reads the capture and leaves it, spent; an expired one makes nothing, a known token
//!   (`tokens`) answers the conversion it went into, and otherwise the conversion is written
//!   with its indexes, due at the order's time or at the end of the lease it comes with. The
//!   script checks the capture's product ID and token by the same rules as [`ProductId`] and
//!   [`SovReqToken`], and refuses a malformed capture without changing anything. `owe`
//!   writes the conversion the same way (one Lua function, `convert`), from the capture it is
//!   given, and leaves captures alone.
//! - `void` reads the conversion's state and lease and, if it is owed, parked or dead, makes it
//!   voided: out of `due`, into `settled` at the time given. A live lease stays (the void waits
//!   for that delivery's settlement); one run out is ended.
//! - `claim` reads the due IDs (`ZRANGEBYSCORE due -inf now LIMIT 0 n`), earliest first, then
//!   leases those still due and re-scores them to their lease's end (or their next attempt, if
//!   later); one whose key holds no hash stays due, at the lease's end. A claimed record
//!   that does not decode is marked dead by a second script (`bury`), if the lease still holds.
//! - `renew` and `settle` act only if the conversion's `lease` field is the one named; a
//!   settlement moves the ID between the state sets and into `due` (next attempt) or
//!   `settled` (settled_at), adds the end of its call to `calls` (the last ten) and
//!   removes `lease` and `lease_until`.
//! - `retry_parked` reads the parked IDs 500 at a time (a `window`), then makes those still
//!   parked due now, one script a window; `retry_parked_one` runs the same script on the one
//!   conversion's key. `purge` reads up to 500 IDs settled before a time, then removes those
//!   still so with their `tokens` and `orders` entries: no script holds Redis for long.
//! - `list` walks a sorted set in windows (`ZRANGEBYSCORE`, or `ZREVRANGEBYSCORE` newest
//!   first, `WITHSCORES` and `LIMIT`, from 100 to 500 IDs): the state's set by `ordered_at`,
//!   or `settled` by `settled_at`, each ID there checked against the state's set. The scores
//!   bound a window by the query's range and its cursor (the next window starts at the last
//!   one's last score, past the IDs read at it); IDs at or before the cursor are left out, then
//!   the records of the rest are read and filtered by
//!   [`ListQuery::admits`](crate::store::ListQuery::admits)
//!   (product, state, range, cursor), window after window until the page is full or the range
//!   is read.
//! - `find` and `find_token` read the ID from `orders` or `tokens`, then its record.
//! - `counts` reads the state sets in one script (`ZCARD`); `daily` counts each state's set
//!   per day (`ZCOUNT` from midnight to the next, excluded), up to 100 days a script;
//!   `causes` walks the state's set in windows of 500 and reads each conversion's `state` and
//!   `last_error` (`HMGET`), counting those still in the state. `captured` reads the capture
//!   and whether its token has a conversion in one.
//! - `retry_dead` makes a dead conversion owed again; `now` reads `TIME` on the node that holds the
//!   store's keys (a failover to a replica steps it by the two hosts' difference).
//!
//! Every key a script touches is declared: the operations that follow an index (`claim`,
//! `list`, `find`, `find_token`, `causes`, `retry_parked`, `purge`) read the IDs first, then
//! name each conversion's key to the script that acts on it, which checks again what it read.
//! So Redis Cluster routes each script to the node that holds its keys, and a slot migrating
//! key by key answers `ASK`/`TRYAGAIN`, which the client follows, instead of a key that seems
//! missing.

mod codec;
mod inspection;
mod keys;
mod roles;
mod scripts;

use std::{fmt, sync::Arc, time::Duration};

use fred::{
    clients::Pool,
    error::ErrorKind,
    interfaces::{KeysInterface, LuaInterface},
    types::{ClusterHash, CustomCommand, Value, scripts::Script},
};
use tokio::sync::OnceCell;

use self::{
    codec::{
        Corrupt, MALFORMED, Took, decode_capture, decode_record, encode_capture, lease_text, records,
        text_or_null, unreadable_capture, unreadable_conversion, void_outcome,
    },
    keys::Keys,
    scripts::*,
};
use super::{
    Capture, CaptureStore, Conversion, ConversionCounts, ConversionId, ConversionState, ConversionStore,
    Inspection, Lease, LeaseId, NewCapture, NewConversion, Outbox, Settlement, StoreError, Taken, TokenKey,
    VoidOutcome, async_trait, records::to_millis,
};
use crate::{
    config::Attribution,
    ids::SovReqToken,
    ids::{OrderRef, ProductId},
};

/// The prefix of every key [`RedisTokenStore`] writes, as the hash tag `{sovendus}:`.
pub const DEFAULT_REDIS_PREFIX: &str = "sovendus";

/// How long [`RedisTokenStore`] waits for Redis before it gives up on one operation: 1 second.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// The `maxmemory-policy` values under which Redis may evict keys that have no expiry, the
/// owed conversions among them.
const EVICTING_POLICIES: [&str; 3] = ["allkeys-lru", "allkeys-lfu", "allkeys-random"];

/// How many conversions one `retry_parked` or `purge` script handles at most.
const BATCH: usize = 500;

/// A [`TokenStore`](super::TokenStore) in Redis, on a [`fred`] client or pool, for shops running several
/// instances: a visitor who lands on one instance and orders on another converts, exactly
/// once, and an owed conversion is delivered by whichever instance claims it, even after the
/// instance that took it crashed.
///
/// # Keys
///
/// Every key of a store begins with `{<prefix>}:` (default `{sovendus}:`, see
/// [`with_prefix`](Self::with_prefix)). The braces make the prefix the Redis Cluster hash tag:
/// all of a store's keys live in one slot, so its scripts run on a cluster too.
///
/// | key | type | holds |
/// |---|---|---|
/// | `{p}:capture:<token key>` | string | `<expires_at>/<product ID>/<token>`, with the capture's TTL as `PX` |
/// | `{p}:conversion:<id>` | hash | the [`Conversion`]'s fields (`calls`: the ends of its last ten calls), and `lease`, `lease_until` while leased (`lease_until` is its `held_until`) |
/// | `{p}:due` | sorted set | owed and parked IDs by when they are due: their next attempt, or their lease's end if later |
/// | `{p}:state:<state>` | sorted set | the IDs in each state by `ordered_at`, for `list`, `counts`, `daily`, `causes` |
/// | `{p}:settled` | sorted set | delivered, dead and voided IDs by `settled_at`, for `purge` and `list` on the settled axis |
/// | `{p}:tokens` | hash | token → ID: one conversion per token, ever, while it is kept; for `find_token` |
/// | `{p}:orders` | hash | the shop's order reference → ID, for `find` |
///
/// Times are milliseconds since the Unix epoch, always the caller's: each operation is judged
/// by the times it is given, never by Redis' clock. A capture's `PX` only lets Redis drop its
/// key once it no longer counts, so [`purge`](ConversionStore::purge) leaves captures to Redis.
/// Conversions carry no expiry: `purge` removes the settled ones. Redis must not evict them:
/// run it with `maxmemory-policy noeviction`, or a `volatile-*` policy (which evicts only keys
/// with an expiry: the captures). The store reads the policy at its first operation and,
/// under an `allkeys-*` policy, refuses every operation with an ERROR saying so until the shop
/// restarts on a safe policy ([`allow_evicting_policy`](Self::allow_evicting_policy) makes it
/// a logged warning instead).
///
/// For the exactly-once promise Redis must also keep what it acknowledged: `appendonly yes`
/// with `appendfsync everysec` (a crash of the Redis host may lose the last second) or
/// `always`, and, with replicas, a failover that promotes an up-to-date replica (Sentinel or
/// Cluster with `min-replicas-to-write`). A conversion lost by Redis is never delivered; a
/// settlement lost by it is delivered again.
///
/// Redis keeps the data across a restart only if it persists (RDB or AOF): without that, a
/// restart loses the captures and the conversions still owed.
///
/// # Unreadable records
///
/// A record that does not decode into valid values is never sent: it is refused with
/// [`StoreError::Unreadable`], logged at ERROR (with its conversion ID at most, never its
/// content) and counted in [`UNREADABLE`](crate::metrics::UNREADABLE).
/// [`claim`](Outbox::claim) marks such a conversion dead, so that it is not claimed again,
/// and leaves it out; [`list`](Inspection::list) and [`find`](ConversionStore::find) skip it. A
/// malformed capture stays in place until a new landing replaces it or Redis drops it.
///
/// # Example
///
/// Give it the same pool as tower-sessions-redis-store 0.16, which uses fred 10 too. The
/// pool's own settings decide what happens while Redis is down: set
/// `PerformanceConfig::default_command_timeout`, or fred queues commands until Redis returns,
/// and the session store waits with them. This store gives up on each operation after its own
/// [timeout](Self::with_timeout) either way, with a retryable [`StoreError`], so that a landing
/// page still answers (the capture is logged as lost and counted) and
/// [`send`](crate::SovendusConversion::send) answers
/// [`SovendusError::Store`](crate::SovendusError::Store).
///
/// ```no_run
/// use std::time::Duration;
/// use tower_sovendus::{SovendusConfig, SovendusLayer, store::RedisTokenStore};
/// use tower_sovendus::store::fred::prelude::{Builder, ClientLike, Config, ReconnectPolicy};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Builder::from_config(Config::from_url("redis://127.0.0.1:6379")?)
///     .with_performance_config(|performance| {
///         performance.default_command_timeout = Duration::from_secs(1);
///     })
///     .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
///     .build_pool(4)?;
/// pool.init().await?;
///
/// let config = SovendusConfig::from_env()?;
/// let layer = SovendusLayer::with_store(config, RedisTokenStore::new(pool.clone()));
/// // ...and `SessionManagerLayer::new(RedisStore::new(pool))` for the sessions
/// // (tower-sessions-redis-store 0.16).
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisTokenStore<C = Pool> {
    client: C,
    keys: Keys,
    timeout: Duration,
    /// Whether an evicting `maxmemory-policy` is logged only (see
    /// [`allow_evicting_policy`](Self::allow_evicting_policy)).
    allow_evicting: bool,
    /// What the first read of the `maxmemory-policy` found: `Err` holds the refusal. Clones
    /// share it.
    policy: Arc<OnceCell<Result<(), String>>>,
}

impl<C> RedisTokenStore<C>
where
    C: KeysInterface + LuaInterface + Send + Sync + 'static,
{
    /// A store on `client` (a fred `Pool` or `Client`), with keys under
    /// [`DEFAULT_REDIS_PREFIX`] and the [`DEFAULT_REDIS_TIMEOUT`].
    ///
    /// See [`RedisTokenStore`] for an example.
    pub fn new(client: C) -> Self {
        Self {
            client,
            keys: Keys::new(DEFAULT_REDIS_PREFIX),
            timeout: DEFAULT_REDIS_TIMEOUT,
            allow_evicting: false,
            policy: Arc::default(),
        }
    }

    /// Puts every key under `{<prefix>}:` instead, e.g. for two shops on one Redis.
    ///
    /// # Panics
    ///
    /// If the prefix is empty or holds a brace: it is the keys' Redis Cluster hash tag.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        assert!(
            !prefix.is_empty() && !prefix.contains(['{', '}']),
            "a RedisTokenStore's prefix must be non-empty and without braces: it is the keys' hash tag"
        );
        self.keys = Keys::new(&prefix);
        self
    }

    /// How long to wait for Redis on one operation (for `retry_parked` and `purge`, on one
    /// batch) before giving up with [`StoreError::TimedOut`] (default
    /// [`DEFAULT_REDIS_TIMEOUT`]). A landing page waits this long at most for the capture while
    /// Redis is down.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs `script` by its SHA-1, sending its source if Redis does not know it yet (a new or
    /// restarted server).
    async fn script(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<Value, StoreError> {
        let result = match self.client.evalsha(script.sha1().clone(), keys.clone(), args.clone()).await {
            Err(error) if error.details().starts_with("NOSCRIPT") => {
                let source = script.lua().cloned().unwrap_or_default();
                self.client.eval(source, keys, args).await
            }
            result => result,
        };
        result.map_err(|error| match error.kind() {
            // Sent, perhaps run: fred may even send it once Redis is back.
            ErrorKind::IO | ErrorKind::Timeout | ErrorKind::Canceled => StoreError::interrupted(error),
            _ => StoreError::backend(error),
        })
    }

    /// Runs on a Redis whose `maxmemory-policy` may evict keys without an expiry (`allkeys-*`),
    /// logging an ERROR at the first operation instead of refusing every operation. Under such
    /// a policy Redis may drop owed conversions silently, once it reaches `maxmemory`: only
    /// for a Redis that never does.
    pub fn allow_evicting_policy(mut self) -> Self {
        self.allow_evicting = true;
        self
    }

    /// `operation`, given up after the timeout; the first of all reads the `maxmemory-policy`
    /// first (see [`RedisTokenStore`]).
    async fn timed<R>(
        &self,
        operation: impl Future<Output = Result<R, StoreError>>,
    ) -> Result<R, StoreError> {
        let checked = async {
            self.eviction_policy_allows().await?;
            operation.await
        };
        tokio::time::timeout(self.timeout, checked).await.unwrap_or(Err(StoreError::TimedOut(self.timeout)))
    }

    /// Whether Redis' `maxmemory-policy` keeps owed conversions, read once: an `allkeys-*`
    /// policy refuses every operation (unless allowed). A Redis that cannot say (`CONFIG`
    /// renamed or forbidden, as on some hosted offers) is logged once and trusted; one that is
    /// away is asked again at the next operation.
    async fn eviction_policy_allows(&self) -> Result<(), StoreError> {
        let verdict = self
            .policy
            .get_or_try_init(|| async {
                let config_get = CustomCommand::new("CONFIG", ClusterHash::Random, false);
                match self.client.custom::<Value, _>(config_get, vec!["GET", "maxmemory-policy"]).await {
                    Ok(reply) => Ok(self.judge(reply.into_array().get(1).and_then(Value::as_string))),
                    Err(error) if matches!(error.kind(), ErrorKind::IO | ErrorKind::Timeout | ErrorKind::Canceled) => {
                        Err(StoreError::backend(error))
                    }
                    Err(error) => {
                        tracing::warn!(%error,
                            "could not read Redis' maxmemory-policy: make sure it is noeviction or a volatile-* policy, \
                             or Redis may drop owed Sovendus conversions");
                        Ok(Ok(()))
                    }
                }
            })
            .await?;
        verdict.clone().map_err(|refusal| StoreError::backend(std::io::Error::other(refusal)))
    }

    /// What the `maxmemory-policy` `policy` means for the store.
    fn judge(&self, policy: Option<String>) -> Result<(), String> {
        let Some(policy) = policy.filter(|policy| EVICTING_POLICIES.contains(&policy.as_str())) else {
            return Ok(());
        };
        let danger = format!(
            "Redis runs with maxmemory-policy {policy}, which may evict owed Sovendus conversions (they have no \
             expiry): set noeviction or a volatile-* policy"
        );
        if self.allow_evicting {
            tracing::error!("{danger}; allowed by allow_evicting_policy");
            return Ok(());
        }
        tracing::error!("{danger}; the Sovendus store refuses every operation until then");
        Err(danger)
    }

    /// Runs the take script on the capture stored under `key`.
    async fn take_script(&self, key: TokenKey, conversion: &NewConversion) -> Result<Took, StoreError> {
        let mut keys = vec![self.keys.capture(key)];
        keys.extend(self.convert_keys(conversion));
        let args = convert_args(conversion);
        Ok(Took::from_reply(self.script(&TAKE_SCRIPT, keys, args).await?))
    }

    /// Runs the owe script on `capture`.
    async fn owe_script(&self, capture: &Capture, conversion: &NewConversion) -> Result<Took, StoreError> {
        let mut args = convert_args(conversion);
        args.extend([capture.product.as_str().to_owned(), capture.token.as_str().to_owned()]);
        Ok(Took::from_reply(self.script(&OWE_SCRIPT, self.convert_keys(conversion), args).await?))
    }

    /// The script keys `convert` writes `conversion` under: its record, `tokens`, `orders`,
    /// `due` and `state:owed`.
    fn convert_keys(&self, conversion: &NewConversion) -> Vec<String> {
        vec![
            self.keys.conversion(&conversion.id.to_string()),
            self.keys.tokens(),
            self.keys.orders(),
            self.keys.due(),
            self.keys.state(ConversionState::Owed),
        ]
    }

    /// What `took` makes of `conversion`.
    fn taken(&self, took: Took, conversion: NewConversion) -> Result<Taken, StoreError> {
        match took {
            Took::NoCapture | Took::Expired => Ok(Taken::NoCapture),
            Took::Corrupt => Err(unreadable_capture(MALFORMED)),
            Took::Converted(id) => match id.parse::<ConversionId>() {
                Ok(id) => Ok(Taken::AlreadyConverted(id)),
                Err(_) => Err(unreadable_conversion(None, &Corrupt::Id)),
            },
            Took::Owed { product, token } => {
                let (Ok(product), Ok(token)) = (ProductId::new(&product), SovReqToken::new(&token)) else {
                    return Err(unreadable_conversion(Some(conversion.id), &Corrupt::Field("token")));
                };
                Ok(Taken::Owed(Conversion::new(Capture { token, product }, conversion)))
            }
        }
    }

    /// The script keys of a conversion's record and of every index a settlement touches.
    fn settle_keys(&self, id: &str) -> Vec<String> {
        let mut keys = vec![self.keys.conversion(id), self.keys.due(), self.keys.settled()];
        keys.extend(ConversionState::ALL.map(|state| self.keys.state(state)));
        keys
    }

    /// Marks the claimed conversion `id`, which cannot be read, dead.
    async fn bury(&self, id: &str, lease: LeaseId, now: i64) -> Result<(), StoreError> {
        let args = vec![id.to_owned(), lease_text(lease), now.to_string()];
        self.timed(self.script(&BURY_SCRIPT, self.settle_keys(id), args)).await.map(drop)
    }

    /// The conversions `ids`, each with its fields (`0` for a key missing or not a hash).
    async fn read_records(&self, ids: Vec<String>) -> Result<Vec<(String, Value)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = ids.iter().map(|id| self.keys.conversion(id)).collect();
        Ok(records(self.timed(self.script(&RECORDS_SCRIPT, keys, ids)).await?).collect())
    }

    /// The conversion `id`, if its record is there and `belongs` (the index that led to it
    /// agrees with it; else it is logged as unreadable by `field`, and left out).
    async fn record_of(
        &self,
        id: String,
        field: &'static str,
        belongs: impl Fn(&Conversion) -> bool,
    ) -> Result<Option<Conversion>, StoreError> {
        let Some((id, fields)) = self.read_records(vec![id]).await?.into_iter().next() else {
            return Ok(None);
        };
        let found = decode_record(&id, fields).and_then(|conversion| match belongs(&conversion) {
            true => Ok(conversion),
            false => Err((Some(conversion.id), Corrupt::Field(field))),
        });
        Ok(found.map_err(|(id, corrupt)| unreadable_conversion(id, &corrupt)).ok())
    }

    /// The conversion the hash `index` (`tokens`, `orders`) names for `value`, if it `belongs`.
    async fn indexed(
        &self,
        index: String,
        value: &str,
        field: &'static str,
        belongs: impl Fn(&Conversion) -> bool,
    ) -> Result<Option<Conversion>, StoreError> {
        let id = self.timed(self.script(&INDEXED_SCRIPT, vec![index], vec![value.to_owned()])).await?;
        let Some(id) = id.into_string() else { return Ok(None) };
        self.record_of(id, field, belongs).await
    }
}

/// The script arguments `convert` writes `conversion` with: its ID, `ordered_at`, when it is
/// due, its order or '', its lease or '' and the lease's end.
fn convert_args(conversion: &NewConversion) -> Vec<String> {
    let next_attempt_at = conversion.lease.map_or(conversion.ordered_at, |lease| lease.until);
    vec![
        conversion.id.to_string(),
        to_millis(conversion.ordered_at).to_string(),
        to_millis(next_attempt_at).to_string(),
        conversion.order.as_ref().map(|order| order.as_str().to_owned()).unwrap_or_default(),
        conversion.lease.map(|lease| lease_text(lease.id)).unwrap_or_default(),
        conversion.lease.map(|lease| to_millis(lease.until).to_string()).unwrap_or_default(),
    ]
}

impl<C> fmt::Debug for RedisTokenStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStore")
            .field("prefix", &self.keys.tag)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_prefix_as_their_hash_tag() {
        let store = RedisTokenStore::new(fred::clients::Client::default());
        assert_eq!(store.keys.capture(-42), "{sovendus}:capture:-42");
        assert_eq!(store.keys.conversion("ab"), "{sovendus}:conversion:ab");
        assert_eq!(store.keys.state(ConversionState::Parked), "{sovendus}:state:parked");
        let store = store.with_prefix("shop-a");
        assert_eq!(store.keys.due(), "{shop-a}:due");
    }

    #[test]
    #[should_panic(expected = "hash tag")]
    fn a_prefix_with_braces_is_refused() {
        let _ = RedisTokenStore::new(fred::clients::Client::default()).with_prefix("a}b");
    }
}
