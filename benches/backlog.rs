//! A backlog after an outage: 10,000 owed conversions, all due, drained by one instance's
//! delivery workers into the sandbox on loopback, against the rate of the pooled client
//! sending as many conversions with no store at all, at the same concurrency (the workers'
//! count), in rounds that alternate the two.
//!
//! On each store: the embedded one always; SQLite in a temporary file always; Postgres and
//! Redis when `SOVENDUS_BENCH_POSTGRES_URL` and `SOVENDUS_BENCH_REDIS_URL` name servers to use
//! (`benches/servers.sh` starts throwaway ones on loopback and prints them), else skipped with
//! a notice.
//!
//! ```text
//! cargo bench --bench backlog
//! ```

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use tokio::task::JoinSet;
use tower_sovendus::{
    OrderRef, SovReqToken, SovendusClient, SovendusLayer,
    config::Attribution,
    sandbox::Sandbox,
    store::{
        Capture, CaptureStore, Cause, Conversion, ConversionCounts, ConversionId, ConversionState,
        ConversionStore, DailyCounts, Inspection, Lease, LeaseId, ListQuery, MokaTokenStore, NewCapture,
        NewConversion, Outbox, RedisTokenStore, Settlement, SqlTokenStore, StoreError, Taken, TokenKey,
        TokenStore, VoidOutcome, async_trait,
        fred::prelude::{Builder, ClientLike, Config},
        sqlx::{
            PgPool, SqlitePool,
            sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
        },
    },
};

/// Conversions in the backlog.
const BACKLOG: usize = 10_000;
/// Rounds of each: the store's drain, and the client's sending.
const ROUNDS: usize = 3;
/// Delivery workers, and the client's concurrency.
const WORKERS: usize = 16;
/// The target: a floor on the drain's rate, in conversions a second (a shop converts at its
/// order rate).
const TARGET: f64 = 1_000.0;

fn token(round: usize, n: usize) -> SovReqToken {
    // The process's ID keeps tokens apart from those an earlier run left in a shared database.
    format!("1095752fb409-{:x}-{round:04x}-{n:012x}", std::process::id()).parse().expect("a valid token")
}

/// A store that times its claims and settlements: where a drain's time goes.
#[derive(Debug)]
struct Timed {
    store: Arc<dyn TokenStore>,
    claims: Tally,
    settlements: Tally,
}

/// Calls, the conversions they carried, and the time they took.
#[derive(Debug, Default)]
struct Tally {
    calls: AtomicU64,
    conversions: AtomicU64,
    nanos: AtomicU64,
}

impl Tally {
    fn add(&self, conversions: usize, started: Instant) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.conversions.fetch_add(conversions as u64, Ordering::Relaxed);
        self.nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Resets the tally; says what it counted, against a drain of `elapsed`.
    fn take(&self, elapsed: Duration) -> String {
        let calls = self.calls.swap(0, Ordering::Relaxed).max(1);
        let conversions = self.conversions.swap(0, Ordering::Relaxed);
        let nanos = self.nanos.swap(0, Ordering::Relaxed);
        format!(
            "{calls} of {:.0} conversions, {:.0} µs each, {:.1} µs a conversion, busy {:.0} % of the drain",
            conversions as f64 / calls as f64,
            nanos as f64 / calls as f64 / 1e3,
            nanos as f64 / conversions.max(1) as f64 / 1e3,
            nanos as f64 / elapsed.as_nanos() as f64 * 100.0,
        )
    }
}

#[async_trait]
impl CaptureStore for Timed {
    async fn capture(&self, key: TokenKey, capture: NewCapture) -> Result<bool, StoreError> {
        self.store.capture(key, capture).await
    }

    async fn captured(&self, key: TokenKey, now: SystemTime) -> Result<Option<Capture>, StoreError> {
        self.store.captured(key, now).await
    }
}

#[async_trait]
impl ConversionStore for Timed {
    async fn take(&self, key: TokenKey, conversion: NewConversion) -> Result<Taken, StoreError> {
        self.store.take(key, conversion).await
    }

    async fn owe(&self, capture: Capture, conversion: NewConversion) -> Result<Taken, StoreError> {
        self.store.owe(capture, conversion).await
    }

    async fn void(&self, id: ConversionId, now: SystemTime) -> Result<VoidOutcome, StoreError> {
        self.store.void(id, now).await
    }

    async fn find(&self, order: &OrderRef) -> Result<Option<Conversion>, StoreError> {
        self.store.find(order).await
    }

    async fn purge(&self, settled_before: SystemTime, now: SystemTime) -> Result<u64, StoreError> {
        self.store.purge(settled_before, now).await
    }
}

#[async_trait]
impl Outbox for Timed {
    fn timeout(&self) -> Option<Duration> {
        self.store.timeout()
    }

    async fn now(&self) -> Result<SystemTime, StoreError> {
        self.store.now().await
    }

    async fn claim(
        &self,
        now: SystemTime,
        limit: usize,
        lease: Lease,
    ) -> Result<Vec<Conversion>, StoreError> {
        let started = Instant::now();
        let claimed = self.store.claim(now, limit, lease).await;
        self.claims.add(claimed.as_ref().map_or(0, Vec::len), started);
        claimed
    }

    async fn renew(&self, id: ConversionId, lease: Lease) -> Result<bool, StoreError> {
        self.store.renew(id, lease).await
    }

    async fn settle(
        &self,
        id: ConversionId,
        lease: LeaseId,
        settlement: Settlement,
    ) -> Result<bool, StoreError> {
        let started = Instant::now();
        let held = self.store.settle(id, lease, settlement).await;
        self.settlements.add(1, started);
        held
    }
}

#[async_trait]
impl Inspection for Timed {
    async fn list(&self, query: &ListQuery) -> Result<Vec<Conversion>, StoreError> {
        self.store.list(query).await
    }

    async fn daily(&self, from: SystemTime, until: SystemTime) -> Result<Vec<DailyCounts>, StoreError> {
        self.store.daily(from, until).await
    }

    async fn causes(&self, state: ConversionState, limit: usize) -> Result<Vec<Cause>, StoreError> {
        self.store.causes(state, limit).await
    }

    async fn get(&self, id: ConversionId) -> Result<Option<Conversion>, StoreError> {
        self.store.get(id).await
    }

    async fn find_token(&self, token: &SovReqToken) -> Result<Option<Conversion>, StoreError> {
        self.store.find_token(token).await
    }

    async fn retry_parked_one(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
        self.store.retry_parked_one(id, now).await
    }

    async fn counts(&self) -> Result<ConversionCounts, StoreError> {
        self.store.counts().await
    }

    async fn retry_parked(&self, now: SystemTime) -> Result<u64, StoreError> {
        self.store.retry_parked(now).await
    }

    async fn retry_dead(&self, id: ConversionId, now: SystemTime) -> Result<bool, StoreError> {
        self.store.retry_dead(id, now).await
    }
}

/// Fills `store` with `BACKLOG` owed conversions, due at once.
async fn fill(store: &dyn TokenStore, round: usize) {
    let product = Sandbox::PRODUCT_ID.parse().expect("a valid product");
    let now = SystemTime::now();
    for n in 0..BACKLOG {
        let key = i128::try_from(round * BACKLOG + n).expect("a small key");
        let capture = Capture::new(token(round, n), Clone::clone(&product));
        let new = NewCapture::new(capture, Attribution::LastClick, now, Duration::from_secs(3600));
        store.capture(key, new).await.expect("captured");
        let conversion = NewConversion::new(ConversionId::random(), None, now, None);
        assert!(matches!(store.take(key, conversion).await.expect("taken"), Taken::Owed(_)));
    }
}

/// Starts a layer's delivery on `store` and times how long its workers take to deliver the
/// backlog; conversions per second.
async fn drain(sandbox: &Sandbox, timed: &Arc<Timed>, round: usize) -> f64 {
    fill(&*timed.store, round).await;
    let store: Arc<dyn TokenStore> = timed.clone();
    let before = store.counts().await.expect("counted").delivered;
    let calls_before = sandbox.calls_received();
    let started = Instant::now();
    let layer =
        SovendusLayer::with_store(sandbox.config().workers(WORKERS).build().expect("valid"), store.clone());
    let delivery = layer.delivery();
    // Watched through the sandbox's count of calls, which costs the store nothing; then the
    // store's own count says every one is settled.
    while sandbox.calls_received() - calls_before < BACKLOG {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    while delivery.counts().await.expect("counted").delivered - before < BACKLOG as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    delivery.shutdown(Duration::from_secs(5)).await;
    eprintln!("  claims: {}", timed.claims.take(elapsed));
    eprintln!("  settlements: {}", timed.settlements.take(elapsed));
    BACKLOG as f64 / elapsed.as_secs_f64()
}

/// The pooled client sending `BACKLOG` conversions, `WORKERS` at a time; conversions per second.
async fn client_rate(sandbox: &Sandbox) -> f64 {
    let client = SovendusClient::new(&sandbox.config().build().expect("valid"));
    let started = Instant::now();
    let mut senders = JoinSet::new();
    for worker in 0..WORKERS {
        let client = client.clone();
        senders.spawn(async move {
            for n in (worker..BACKLOG).step_by(WORKERS) {
                client.send(&token(usize::MAX >> 16, n)).await.expect("the sandbox accepts it");
            }
        });
    }
    senders.join_all().await;
    BACKLOG as f64 / started.elapsed().as_secs_f64()
}

/// The stores to drain from, by name; each built fresh per round by its function.
async fn stores(dir: &std::path::Path) -> Vec<(&'static str, Arc<dyn TokenStore>)> {
    let mut stores: Vec<(&'static str, Arc<dyn TokenStore>)> =
        vec![("memory", Arc::new(MokaTokenStore::new(1_000_000).with_max_owed(1_000_000)))];
    // WAL with `synchronous = NORMAL`, as a shop runs SQLite: a commit is durable across a crash
    // of the process, and waits for no fsync.
    let options = SqliteConnectOptions::new()
        .filename(dir.join("backlog.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let sqlite = SqlitePool::connect_with(options).await.expect("a SQLite file");
    let sqlite = SqlTokenStore::sqlite(sqlite);
    sqlite.migrate().await.expect("migrated");
    stores.push(("sqlite", Arc::new(sqlite)));
    match std::env::var("SOVENDUS_BENCH_POSTGRES_URL") {
        Ok(url) => {
            let postgres = SqlTokenStore::postgres(PgPool::connect(&url).await.expect("the Postgres server"));
            postgres.migrate().await.expect("migrated");
            stores.push(("postgres", Arc::new(postgres)));
        }
        Err(_) => eprintln!("SOVENDUS_BENCH_POSTGRES_URL is not set: Postgres is not measured"),
    }
    match std::env::var("SOVENDUS_BENCH_REDIS_URL") {
        Ok(url) => {
            let pool = Builder::from_config(Config::from_url(&url).expect("a Redis URL"))
                .build_pool(4)
                .expect("a pool");
            pool.init().await.expect("the Redis server");
            let prefix = format!("bench-{}", std::process::id());
            stores.push(("redis", Arc::new(RedisTokenStore::new(pool).with_prefix(prefix))));
        }
        Err(_) => eprintln!("SOVENDUS_BENCH_REDIS_URL is not set: Redis is not measured"),
    }
    stores
}

fn main() {
    if std::env::args().skip(1).any(|arg| arg == "--list")
        || !std::env::args().skip(1).all(|arg| arg == "--bench")
    {
        return; // `cargo bench -- --list` and filters: nothing of criterion's here.
    }
    let (runtime, _server, sandbox) = support::runtimes_and_sandbox();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut results = serde_json::Map::new();
    for (name, store) in runtime.block_on(stores(dir.path())) {
        let timed = Arc::new(Timed { store, claims: Tally::default(), settlements: Tally::default() });
        let (mut drains, mut clients) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            drains.push(runtime.block_on(drain(&sandbox, &timed, round)));
            clients.push(runtime.block_on(client_rate(&sandbox)));
        }
        let ratios: Vec<f64> = drains.iter().zip(&clients).map(|(drain, client)| drain / client).collect();
        let ratio = median(ratios.clone());
        println!(
            "backlog of {BACKLOG} on {name}: drained at {:.0}/s (target >= {TARGET}/s), the pooled client {:.0}/s \
             at concurrency {WORKERS}: {ratio:.3}; rounds {ratios:.3?}",
            median(drains.clone()),
            median(clients.clone()),
        );
        results.insert(
            name.to_owned(),
            serde_json::json!({"drain_per_second": drains, "client_per_second": clients, "ratio": ratio}),
        );
    }
    support::write_result(
        "backlog",
        "drain.json",
        &serde_json::json!({"backlog": BACKLOG, "workers": WORKERS, "stores": results}),
    );
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
