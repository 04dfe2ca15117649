//! What a store costs the two requests that touch it: the capture of a landing, and the order
//! that takes the capture into an owed conversion. Each on the embedded store, SQLite (a file
//! in a temporary folder, WAL, `synchronous = NORMAL`) and, when `SOVENDUS_BENCH_POSTGRES_URL` names a server
//! (`benches/servers.sh`), Postgres; `benches/report.py` sets each against the embedded store.
//!
//! ```text
//! cargo bench --bench store
//! ```

mod support;

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::{Duration, Instant, SystemTime},
};

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tower_sovendus::{
    config::Attribution,
    store::{
        Capture, ConversionId, MokaTokenStore, NewCapture, NewConversion, SqlTokenStore, TokenStore,
        sqlx::{
            PgPool,
            sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
        },
    },
};

/// Keys never repeat across the stores and iterations.
static NEXT_KEY: AtomicI64 = AtomicI64::new(0);

fn landing(key: i64) -> NewCapture {
    let capture = Capture::new(
        format!("1095752fb409-457a-af14-{key:012x}").parse().expect("a valid token"),
        "9bc72425-902c-3abf-9db8-8b186d7cb160".parse().expect("a valid product"),
    );
    NewCapture::new(capture, Attribution::LastClick, SystemTime::now(), Duration::from_secs(3600))
}

fn order() -> NewConversion {
    NewConversion::new(ConversionId::random(), None, SystemTime::now(), None)
}

fn next_key() -> i64 {
    NEXT_KEY.fetch_add(1, Ordering::Relaxed)
}

fn bench_store(c: &mut Criterion, runtime: &Runtime, name: &str, store: &dyn TokenStore) {
    let mut group = c.benchmark_group(format!("store_{name}"));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("capture", |b| {
        b.to_async(runtime).iter(|| async {
            let key = next_key();
            store.capture(i128::from(key), landing(key)).await.expect("captured");
        })
    });
    group.bench_function("order", |b| {
        b.to_async(runtime).iter_custom(|iters| async move {
            let keys: Vec<i64> = (0..iters).map(|_| next_key()).collect();
            for key in &keys {
                store.capture(i128::from(*key), landing(*key)).await.expect("captured");
            }
            let started = Instant::now();
            for key in keys {
                store.take(i128::from(key), order()).await.expect("taken");
            }
            started.elapsed()
        })
    });
    group.finish();
}

fn stores(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let memory = MokaTokenStore::new(10_000_000).with_max_owed(10_000_000);
    bench_store(c, &runtime, "memory", &memory);

    let dir = tempfile::tempdir().expect("a temporary folder");
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("store.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let sqlite = runtime.block_on(async {
        let store = SqlTokenStore::sqlite(
            SqlitePoolOptions::new()
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .expect("a SQLite file"),
        );
        store.migrate().await.expect("migrated");
        store
    });
    bench_store(c, &runtime, "sqlite", &sqlite);

    match std::env::var("SOVENDUS_BENCH_POSTGRES_URL") {
        Ok(url) => {
            let postgres = runtime.block_on(async {
                let store =
                    SqlTokenStore::postgres(PgPool::connect(&url).await.expect("the Postgres server"));
                store.migrate().await.expect("migrated");
                store
            });
            bench_store(c, &runtime, "postgres", &postgres);
        }
        Err(_) => eprintln!("SOVENDUS_BENCH_POSTGRES_URL is not set: Postgres is not measured"),
    }
}

criterion_group!(benches, stores);
criterion_main!(benches);
