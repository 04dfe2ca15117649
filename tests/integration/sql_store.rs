//! `SqlTokenStore` on SQLite and on a real Postgres: the rules every store keeps, migrations
//! run by several instances at once, unreadable rows, the pool shared with
//! tower-sessions-sqlx-store, and a Postgres that goes away and comes back.

use crate::common;

use std::{
    collections::HashMap,
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use common::{
    counters::{count, counters},
    postgres::PostgresServer,
};
use metrics_util::debugging::DebuggingRecorder;
use tower_sessions::{
    SessionStore,
    cookie::time::OffsetDateTime,
    session::{Id, Record},
};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};
use tower_sovendus::{
    config::Attribution,
    metrics,
    store::{
        Capture, CaptureStore, ConversionId, ConversionState, ConversionStore, Inspection, Lease, LeaseId,
        NewCapture, NewConversion, Outbox, SqlTokenStore, StoreError, Taken, conformance,
        sqlx::{self, Executor, PgPool, SqlitePool},
    },
};

const MINUTE: Duration = Duration::from_secs(60);

/// A SQLite pool on a new database file at `path`.
async fn sqlite_pool(path: &Path) -> SqlitePool {
    SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display())).await.unwrap()
}

/// A migrated store on a new SQLite database file at `path`.
async fn sqlite_store(path: &Path) -> SqlTokenStore {
    let store = SqlTokenStore::sqlite(sqlite_pool(path).await);
    store.migrate().await.unwrap();
    store
}

/// A migrated store on the new database `name` of `server`, and its pool.
async fn postgres_store(server: &PostgresServer, name: &str) -> (SqlTokenStore, PgPool) {
    let pool = PgPool::connect(&server.database(name).await).await.unwrap();
    let store = SqlTokenStore::postgres(pool.clone());
    store.migrate().await.unwrap();
    (store, pool)
}

/// Now, to the millisecond (as stores keep times).
fn now() -> SystemTime {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap())
}

fn landing(token: &str, at: SystemTime) -> NewCapture {
    let capture = Capture::new(token.parse().unwrap(), "product-a".parse().unwrap());
    NewCapture::new(capture, Attribution::LastClick, at, MINUTE)
}

fn order(at: SystemTime) -> NewConversion {
    NewConversion::new(ConversionId::random(), None, at, None)
}

/// Captures `token` under `key` and takes it: the conversion's ID.
async fn capture_and_take(store: &SqlTokenStore, key: i128, token: &str) -> ConversionId {
    let at = now();
    assert!(store.capture(key, landing(token, at)).await.unwrap());
    match store.take(key, order(at)).await.unwrap() {
        Taken::Owed(owed) => owed.id,
        other => panic!("{token} is taken into an owed conversion, not {other:?}"),
    }
}

#[tokio::test]
async fn sqlite_keeps_every_rule() {
    let dir = tempfile::tempdir().unwrap();
    let stores = AtomicUsize::new(0);
    conformance::check(|| {
        let path = dir.path().join(format!("store-{}.db", stores.fetch_add(1, Ordering::Relaxed)));
        async move { sqlite_store(&path).await }
    })
    .await;
}

#[tokio::test]
async fn postgres_keeps_every_rule() {
    let Some(server) = PostgresServer::start("postgres_keeps_every_rule") else { return };
    let stores = AtomicUsize::new(0);
    conformance::check(|| {
        let name = format!("store_{}", stores.fetch_add(1, Ordering::Relaxed));
        let server = &server;
        async move { postgres_store(server, &name).await.0 }
    })
    .await;
}

/// The migrations recorded.
const SCHEMA_ROWS: &str = "SELECT COUNT(*) FROM sovendus_schema";

/// The count that `count_query` (a `SELECT COUNT(*)`) reads from `pool`.
async fn rows<DB: sqlx::Database>(pool: &sqlx::Pool<DB>, count_query: &'static str) -> i64
where
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    i64: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    sqlx::query_scalar(count_query).fetch_one(pool).await.unwrap()
}

/// Four instances migrate one database at once, then again: each migration is applied once,
/// and the store works.
async fn migrations_run_once(instances: Vec<SqlTokenStore>, schema_rows: impl AsyncFnOnce() -> i64) {
    let mut migrations = tokio::task::JoinSet::new();
    for store in &instances {
        let store = store.clone();
        migrations.spawn(async move { store.migrate().await });
    }
    for migrated in migrations.join_all().await {
        migrated.expect("every instance migrates");
    }
    instances[0].migrate().await.expect("migrating again does nothing");
    assert_eq!(schema_rows().await, 1, "one migration, recorded once");
    let id = capture_and_take(&instances[1], 1, "token").await;
    let claimed = instances[2].claim(now(), 10, Lease::new(LeaseId::random(), now() + MINUTE)).await;
    assert_eq!(claimed.unwrap().iter().map(|conversion| conversion.id).collect::<Vec<_>>(), [id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migrations_run_once_however_many_instances_run_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    let mut pools = Vec::new();
    for _ in 0..4 {
        pools.push(sqlite_pool(&path).await);
    }
    let instances = pools.iter().cloned().map(SqlTokenStore::sqlite).collect();
    migrations_run_once(instances, async || rows(&pools[0], SCHEMA_ROWS).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrations_run_once_however_many_instances_run_them() {
    let Some(server) = PostgresServer::start("postgres_migrations_run_once_however_many_instances_run_them")
    else {
        return;
    };
    let url = server.database("shop").await;
    let mut pools = Vec::new();
    for _ in 0..4 {
        pools.push(PgPool::connect(&url).await.unwrap());
    }
    let instances = pools.iter().cloned().map(SqlTokenStore::postgres).collect();
    migrations_run_once(instances, async || rows(&pools[0], SCHEMA_ROWS).await).await;
}

/// Rows written around the store: unreadable ones (an invalid token, state, ID, product), and a
/// readable one, all due; and an unreadable capture under key 9.
const CORRUPT_ROWS: &[&str] = &[
    "INSERT INTO sovendus_conversions (id, token, product_id, order_ref, ordered_at, state, attempts, next_attempt_at, due_at) \
     VALUES ('0000000000000000000000000000000a', 'not a token!', 'product-a', 'A-1', 0, 'owed', 0, 0, 0)",
    "INSERT INTO sovendus_conversions (id, token, product_id, ordered_at, state, attempts, next_attempt_at, due_at) \
     VALUES ('0000000000000000000000000000000b', 'token-b', 'product-a', 0, 'lost', 0, 0, 0)",
    "INSERT INTO sovendus_conversions (id, token, product_id, ordered_at, state, attempts, next_attempt_at, due_at) \
     VALUES ('not an id', 'token-c', 'product-a', 0, 'owed', 0, 0, 0)",
    "INSERT INTO sovendus_conversions (id, token, product_id, ordered_at, state, attempts, next_attempt_at, due_at) \
     VALUES ('0000000000000000000000000000000d', 'token-d', '', 0, 'parked', 0, 0, 0)",
    "INSERT INTO sovendus_conversions (id, token, product_id, ordered_at, state, attempts, next_attempt_at, due_at) \
     VALUES ('0000000000000000000000000000000e', 'token-e', 'product-a', 0, 'owed', 0, 0, 0)",
    "INSERT INTO sovendus_captures (visitor_key, token, product_id, expires_at) \
     VALUES ('9', '../admin', 'product-a', 9223372036854775807)",
];

/// What the store makes of [`CORRUPT_ROWS`]: never sent, refused and counted, and the claimed
/// ones marked dead; `dead_rows` reads back how many rows are dead as unreadable.
async fn unreadable_rows_are_refused(store: &SqlTokenStore, dead_rows: impl AsyncFn() -> i64) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // This test's thread only: the stores run on the current-thread runtime.
    let _recorder = ::metrics::set_default_local_recorder(&recorder);
    let unreadable = || count(&counters(&snapshotter), metrics::UNREADABLE, None);
    let t = now();

    let claimed = store.claim(t, 10, Lease::new(LeaseId::random(), t + MINUTE)).await.unwrap();
    let ids: Vec<String> = claimed.iter().map(|conversion| conversion.id.to_string()).collect();
    assert_eq!(ids, ["0000000000000000000000000000000e"], "the readable one alone");
    assert_eq!(unreadable(), 4, "each unreadable row counted");
    assert_eq!(dead_rows().await, 4, "marked dead");
    let later = store.claim(t + 2 * MINUTE, 10, Lease::new(LeaseId::random(), t + 3 * MINUTE)).await;
    assert_eq!(later.unwrap().len(), 1, "the readable one again (its lease ran out), the dead ones never");
    assert_eq!(unreadable(), 0, "not read again");
    assert_eq!(store.counts().await.unwrap().dead, 4, "counted as dead");
    // The one whose state alone was unreadable reads back as dead; the others are skipped.
    let dead =
        store.list(&tower_sovendus::store::ListQuery::new(ConversionState::Dead).limit(10)).await.unwrap();
    let dead: Vec<(String, Option<&str>)> =
        dead.iter().map(|dead| (dead.id.to_string(), dead.last_error.as_deref())).collect();
    assert_eq!(
        dead,
        [("0000000000000000000000000000000b".to_owned(), Some("unreadable record"))],
        "skipped by list"
    );
    assert_eq!(unreadable(), 3, "each skipped row counted");
    assert_eq!(store.find(&"A-1".parse().unwrap()).await.unwrap(), None, "skipped by find");
    assert_eq!(unreadable(), 1);

    let captured = store.captured(9, t).await;
    assert!(matches!(captured, Err(StoreError::Unreadable(_))), "{captured:?}");
    let taken = store.take(9, order(t)).await;
    assert!(matches!(&taken, Err(error @ StoreError::Unreadable(_)) if !error.is_retryable()), "{taken:?}");
    assert_eq!(unreadable(), 2);
    assert!(store.captured(9, t).await.unwrap().is_none(), "the take removed the unreadable capture");
    assert!(store.capture(9, landing("fresh", t)).await.unwrap(), "the visitor's next landing is captured");
    assert!(matches!(store.take(9, order(t)).await.unwrap(), Taken::Owed(_)));
}

/// Counts the rows marked dead as unreadable.
const DEAD_ROWS: &str = "SELECT COUNT(*) FROM sovendus_conversions \
     WHERE state = 'dead' AND due_at IS NULL AND lease_id IS NULL AND settled_at IS NOT NULL \
     AND last_error = 'unreadable record'";

#[tokio::test]
async fn sqlite_refuses_unreadable_rows() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite_pool(&dir.path().join("shop.db")).await;
    let store = SqlTokenStore::sqlite(pool.clone());
    store.migrate().await.unwrap();
    for row in CORRUPT_ROWS {
        pool.execute(*row).await.unwrap();
    }
    unreadable_rows_are_refused(&store, async || rows(&pool, DEAD_ROWS).await).await;
}

/// Concurrent claims on Postgres each lease exactly the rows they return: none is leased and
/// left out, to wait for its lease to run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claims_lease_exactly_what_they_return() {
    let Some(server) = PostgresServer::start("postgres_claims_lease_exactly_what_they_return") else {
        return;
    };
    let (store, pool) = postgres_store(&server, "claims").await;
    for key in 0..200 {
        capture_and_take(&store, key, &format!("token-{key}")).await;
    }
    let claims = (0..8).map(|_| {
        let (store, lease) = (store.clone(), Lease::new(LeaseId::random(), now() + MINUTE));
        tokio::spawn(async move { (lease, store.claim(now(), 10, lease).await.unwrap()) })
    });
    let mut returned = 0;
    for claim in claims.collect::<Vec<_>>() {
        let (lease, claimed) = claim.await.unwrap();
        let leased: i64 = sqlx::query_scalar("SELECT count(*) FROM sovendus_conversions WHERE lease_id = $1")
            .bind(format!("{:032x}", lease.id.get()))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(usize::try_from(leased).unwrap(), claimed.len(), "leased as many as returned");
        returned += claimed.len();
    }
    assert_eq!(returned, 80, "eight claims of ten, from 200 due");
}

#[tokio::test]
async fn postgres_refuses_unreadable_rows() {
    let Some(server) = PostgresServer::start("postgres_refuses_unreadable_rows") else { return };
    let (store, pool) = postgres_store(&server, "shop").await;
    for row in CORRUPT_ROWS {
        pool.execute(*row).await.unwrap();
    }
    unreadable_rows_are_refused(&store, async || rows(&pool, DEAD_ROWS).await).await;
}

/// A session stored by `sessions` and a token by `tokens`, on one pool.
async fn shares_the_pool(sessions: impl SessionStore, tokens: SqlTokenStore) {
    let data = HashMap::from([("cart".to_owned(), serde_json::json!(["book"]))]);
    let mut record = Record { id: Id::default(), data, expiry_date: OffsetDateTime::now_utc() + MINUTE };
    sessions.create(&mut record).await.unwrap();
    tokens.migrate().await.unwrap();
    capture_and_take(&tokens, 1, "token").await;
    let loaded = sessions.load(&record.id).await.unwrap().expect("the session is stored");
    assert_eq!(loaded.data, record.data);
    assert_eq!(tokens.counts().await.unwrap().owed, 1);
}

#[tokio::test]
async fn sqlite_shares_the_pool_of_tower_sessions_sqlx_store() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite_pool(&dir.path().join("shop.db")).await;
    let sessions = SqliteStore::new(pool.clone());
    sessions.migrate().await.unwrap();
    shares_the_pool(sessions, SqlTokenStore::sqlite(pool)).await;
}

#[tokio::test]
async fn postgres_shares_the_pool_of_tower_sessions_sqlx_store() {
    let Some(server) = PostgresServer::start("postgres_shares_the_pool_of_tower_sessions_sqlx_store") else {
        return;
    };
    let pool = PgPool::connect(&server.database("shop").await).await.unwrap();
    let sessions = PostgresStore::new(pool.clone());
    sessions.migrate().await.unwrap();
    shares_the_pool(sessions, SqlTokenStore::postgres(pool)).await;
}

#[tokio::test]
async fn a_stopped_postgres_fails_retryably_and_works_again_once_back() {
    let Some(mut server) =
        PostgresServer::start("a_stopped_postgres_fails_retryably_and_works_again_once_back")
    else {
        return;
    };
    let (store, _pool) = postgres_store(&server, "shop").await;
    let store = store.with_timeout(Duration::from_secs(2));
    let t = now();
    assert!(store.capture(1, landing("before", t)).await.unwrap());

    server.kill();
    let failed = [
        store.capture(2, landing("during", t)).await.map(drop),
        store.take(1, order(t)).await.map(drop),
        store.claim(t, 10, Lease::new(LeaseId::random(), t + MINUTE)).await.map(drop),
    ];
    for result in failed {
        let error = result.expect_err("Postgres is down");
        assert!(error.is_retryable(), "{error}");
        assert!(matches!(error, StoreError::Backend(_) | StoreError::TimedOut(_)), "{error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with("the token store failed")
                || message.starts_with("the token store did not answer"),
            "{message}"
        );
    }

    server.restart();
    assert!(store.captured(2, t).await.unwrap().is_none(), "the capture during the outage was not stored");
    assert!(
        matches!(store.take(1, order(t)).await.unwrap(), Taken::Owed(_)),
        "the capture before it was kept"
    );
    assert!(store.capture(3, landing("after", t)).await.unwrap());
}
