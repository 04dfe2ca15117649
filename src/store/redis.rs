//! [`RedisTokenStore`]: tokens in Redis, shared by every instance of the shop.
//!
//! Each token is one string key, `{prefix}{<key>}`, holding `<product ID>/<token>` with the
//! token's TTL as Redis' own expiry (`PX`), so Redis drops it on time whatever happens to the
//! instances. A lease is a second key, `{prefix}{<key>}:lease`, holding the lease ID with the
//! lease's duration as its expiry. Capture, lease and settle are small Lua scripts (sent with
//! `EVALSHA`), so each is atomic across instances; the braces keep both keys in one cluster
//! slot.

use std::{fmt, sync::LazyLock, time::Duration};

use fred::{
    clients::Pool,
    interfaces::{KeysInterface, LuaInterface},
    types::{FromValue, Value, scripts::Script},
};

use super::{LeaseId, Leased, PendingToken, Settlement, StoreError, TokenKey, TokenStore, async_trait};
use crate::{
    config::{Attribution, ProductId},
    token::SovReqToken,
};

/// The prefix of every key [`RedisTokenStore`] writes: `sovendus:`.
pub const DEFAULT_REDIS_PREFIX: &str = "sovendus:";

/// How long [`RedisTokenStore`] waits for Redis before it gives up on one operation: 1 second.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// Stores the token; under first-click (`ARGV[3]` = `0`) only if none is stored. A new click
/// replaces the entry whole: any lease on the old token no longer applies to it.
const INSERT: &str = r"
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('DEL', KEYS[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return 1
end
return 0
";

/// Returns the stored entry and leases it, if it is stored and free; else nil.
const LEASE: &str = r"
local entry = redis.call('GET', KEYS[1])
if not entry then
  return false
end
if redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') then
  return entry
end
return false
";

/// Ends the lease `ARGV[1]`, if it still holds: `done` deletes the token, `keep` frees it.
const SETTLE: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2])
if ARGV[2] == 'done' then
  redis.call('DEL', KEYS[1])
end
return 1
";

static INSERT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(INSERT));
static LEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(LEASE));
static SETTLE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::from_lua(SETTLE));

/// A [`TokenStore`] in Redis, on a [`fred`] client or pool, for shops running several
/// instances: a visitor who lands on one instance and orders on another converts, exactly
/// once, and tokens outlive restarts and deploys (as long as Redis keeps its data).
///
/// Give it the same pool as tower-sessions-redis-store 0.16, which uses fred 10 too. The
/// pool's own settings decide what happens while Redis is down: set
/// `PerformanceConfig::default_command_timeout`, or fred queues commands until Redis returns,
/// and the session store waits with them. This store gives up on each operation after its own
/// [timeout](Self::with_timeout) either way, so that a landing page still answers (the capture
/// is logged as lost and counted) and [`send`](crate::SovendusConversion::send) answers
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
/// // ...and `SessionManagerLayer::new(RedisStore::new(pool))` for the sessions.
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisTokenStore<C = Pool> {
    client: C,
    prefix: Box<str>,
    timeout: Duration,
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
        Self { client, prefix: DEFAULT_REDIS_PREFIX.into(), timeout: DEFAULT_REDIS_TIMEOUT }
    }

    /// Puts every key under `prefix` instead, e.g. for two shops on one Redis.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    /// How long to wait for Redis on one operation before giving up with
    /// [`StoreError::TimedOut`] (default [`DEFAULT_REDIS_TIMEOUT`]). A landing page waits this
    /// long at most for the capture while Redis is down.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The Redis key of the token stored under `key`.
    fn token_key(&self, key: TokenKey) -> String {
        format!("{}{{{key}}}", self.prefix)
    }

    /// The token's key and its lease's key.
    fn keys(&self, key: TokenKey) -> Vec<String> {
        let token = self.token_key(key);
        let lease = format!("{token}:lease");
        vec![token, lease]
    }

    /// Runs `script` by its SHA-1, sending its source once if Redis does not know it yet (a
    /// new or restarted server), within the timeout.
    async fn run<R: FromValue>(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<R, StoreError> {
        let call = async {
            match self.client.evalsha(script.sha1().clone(), keys.clone(), args.clone()).await {
                Err(error) if error.details().starts_with("NOSCRIPT") => {
                    let source = script.lua().cloned().unwrap_or_default();
                    self.client.eval(source, keys, args).await
                }
                result => result,
            }
        };
        self.within_timeout(call).await
    }

    async fn within_timeout<R>(
        &self,
        call: impl Future<Output = Result<R, fred::error::Error>>,
    ) -> Result<R, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(StoreError::backend),
            Err(_elapsed) => Err(StoreError::TimedOut(self.timeout)),
        }
    }
}

#[async_trait]
impl<C> TokenStore for RedisTokenStore<C>
where
    C: KeysInterface + LuaInterface + Send + Sync + 'static,
{
    async fn insert(
        &self,
        key: TokenKey,
        pending: PendingToken,
        ttl: Duration,
        attribution: Attribution,
    ) -> Result<bool, StoreError> {
        let overwrite = if attribution == Attribution::LastClick { "1" } else { "0" };
        let args = vec![encode(&pending).into(), millis(ttl), overwrite.into()];
        let kept: i64 = self.run(&INSERT_SCRIPT, self.keys(key), args).await?;
        Ok(kept == 1)
    }

    async fn get(&self, key: TokenKey) -> Result<Option<PendingToken>, StoreError> {
        let entry: Option<String> = self.within_timeout(self.client.get(self.token_key(key))).await?;
        entry.as_deref().map(decode).transpose()
    }

    async fn lease(&self, key: TokenKey, duration: Duration) -> Result<Option<Leased>, StoreError> {
        let lease = LeaseId::random();
        let args = vec![lease.get().to_string().into(), millis(duration)];
        let entry: Option<String> = self.run(&LEASE_SCRIPT, self.keys(key), args).await?;
        let Some(pending) = entry.as_deref().map(decode).transpose()? else { return Ok(None) };
        Ok(Some(Leased { key, pending, lease }))
    }

    async fn settle(&self, leased: &Leased, settlement: Settlement) -> Result<(), StoreError> {
        let outcome = match settlement {
            Settlement::Done => "done",
            Settlement::Keep => "keep",
        };
        let args = vec![leased.lease.get().to_string().into(), outcome.into()];
        let _settled: i64 = self.run(&SETTLE_SCRIPT, self.keys(leased.key), args).await?;
        Ok(())
    }
}

impl<C> fmt::Debug for RedisTokenStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A duration as whole milliseconds for `PX`, at least 1 (Redis refuses 0).
fn millis(duration: Duration) -> Value {
    let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX).max(1);
    Value::Integer(millis)
}

/// `<product ID>/<token>`: neither ever contains a `/`.
fn encode(pending: &PendingToken) -> String {
    format!("{}/{}", pending.product, pending.token.as_str())
}

fn decode(entry: &str) -> Result<PendingToken, StoreError> {
    let Some((product, token)) = entry.split_once('/') else {
        let old = entry.split_once(':').is_some_and(|(index, _)| index.bytes().all(|b| b.is_ascii_digit()));
        return Err(StoreError::Unreadable(if old { OLD_FORMAT } else { MALFORMED }.to_owned()));
    };
    let malformed = || StoreError::Unreadable(MALFORMED.to_owned());
    let product = ProductId::new(product).map_err(|_| malformed())?;
    let token = SovReqToken::new(token).map_err(|_| malformed())?;
    Ok(PendingToken { token, product })
}

/// Why an entry that is not `<product ID>/<token>` is refused; what it holds stays out.
const MALFORMED: &str = "a token entry in Redis is malformed";
/// Why an entry of the earlier `<index>:<token>` format is refused.
const OLD_FORMAT: &str = "a token entry in Redis has the product as its position in the configuration, \
     an earlier format that could book it for the wrong product after a deploy; it is never sent";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_bad_ones_are_refused() {
        let pending = PendingToken {
            token: "12345-test-123-12345".parse().unwrap(),
            product: ProductId::new("p-b").unwrap(),
        };
        assert_eq!(encode(&pending), "p-b/12345-test-123-12345");
        assert_eq!(decode(&encode(&pending)).unwrap(), pending);
        for bad in ["", "12345-test", "x:12345-test", "p/a b", "a/b/c", "/abc", "p/"] {
            let error = decode(bad).unwrap_err();
            assert!(!error.is_retryable());
            assert_eq!(error.to_string(), format!("the token store holds an unreadable record: {MALFORMED}"));
        }
        for old in ["0:12345-test-123-12345", "17:abc"] {
            let error = decode(old).unwrap_err().to_string();
            assert!(error.contains("position in the configuration"), "{error}");
            assert!(!error.contains("12345-test"), "{error}");
        }
    }

    #[test]
    fn keys_share_a_cluster_slot() {
        let store = RedisTokenStore::new(fred::clients::Client::default());
        assert_eq!(store.keys(-42), ["sovendus:{-42}", "sovendus:{-42}:lease"]);
        assert_eq!(millis(Duration::ZERO), Value::Integer(1));
        assert_eq!(millis(Duration::from_secs(2)), Value::Integer(2_000));
    }
}
