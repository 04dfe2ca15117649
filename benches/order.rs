//! What recording the conversion costs an order: the demo shop's order of its three products
//! (take each one's stock, insert the order and its items, commit) with and without the visitor's conversion taken in the same
//! transaction (`SovendusConversion::owe_in`), on SQLite in WAL mode and on Postgres
//! (`SOVENDUS_BENCH_POSTGRES_URL`, see `benches/servers.sh`), each at two durabilities: SQLite
//! with `synchronous = FULL` (sqlx's default, the demo shop's: a commit waits for its fsync)
//! and `NORMAL` (no fsync at commit); Postgres with `synchronous_commit = on` (its default) and
//! `off`. Target: ≤ 1.25×.
//!
//! Both shops run the same stack (sessions, the Sovendus layer, one pool for orders, captures
//! and conversions) and the same landing before each order, untimed; only the order request is
//! timed, through the extractor. criterion times each, the workers delivering to a sandbox
//! meanwhile. Then the two are timed interleaved, block by block, for the ratios: first with
//! the workers delivering each conversion as it commits (claim, call, settlement: on the same
//! database, and on this machine's two cores), then with the delivery shut down, which leaves
//! the order's own cost, its transaction. The target is the latter's; delivery's own cost is
//! the backlog bench's.
//!
//! ```text
//! eval "$(bash benches/servers.sh)"
//! cargo bench --bench order
//! python3 benches/report.py
//! ```

mod support;

use std::time::{Duration, Instant};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    routing::{get, post},
};
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::{COOKIE, SET_COOKIE};
use tokio::runtime::Runtime;
use tower::ServiceExt;
use tower_sessions::{MemoryStore, Session, SessionManagerLayer};
use tower_sovendus::{
    Delivery, SovendusConversion, SovendusLayer,
    sandbox::Sandbox,
    store::{
        SqlTokenStore,
        sqlx::{
            self, PgPool, SqlitePool,
            postgres::PgPoolOptions,
            sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
        },
    },
};

/// Orders per block, and blocks per shop, of the interleaved timing.
const BLOCK: u64 = 50;
const BLOCKS: usize = 40;

/// The shop's tables, on either backend.
const TABLES: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS products (id BIGINT PRIMARY KEY NOT NULL, stock BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS orders (reference TEXT PRIMARY KEY NOT NULL)",
    "CREATE TABLE IF NOT EXISTS order_items (reference TEXT NOT NULL, product BIGINT NOT NULL)",
];
const STOCK: &str = "INSERT INTO products (id, stock) VALUES (1, 9000000000000000), (2, 9000000000000000), \
     (3, 9000000000000000) ON CONFLICT (id) DO NOTHING";
/// The products of an order: the demo shop's catalog, one of each.
const ITEMS: [i64; 3] = [1, 2, 3];
const TAKE_STOCK: &str = "UPDATE products SET stock = stock - 1 WHERE id = $1 AND stock > 0";
const INSERT_ORDER: &str = "INSERT INTO orders (reference) VALUES ($1)";
const INSERT_ITEM: &str = "INSERT INTO order_items (reference, product) VALUES ($1, $2)";

#[derive(Clone)]
enum Orders {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The order, in one transaction; with the visitor's conversion if `conversion` is given.
async fn place(orders: &Orders, conversion: Option<SovendusConversion>) {
    let reference = format!("{:032x}", fastrand::u128(..));
    // The conversion is found again by the order's reference (`Delivery::find`).
    let conversion =
        conversion.map(|conversion| conversion.for_order(reference.parse().expect("a reference")));
    macro_rules! in_transaction {
        ($pool:expr) => {{
            let mut transaction = $pool.begin().await.expect("begin");
            for item in ITEMS {
                let taken =
                    sqlx::query(TAKE_STOCK).bind(item).execute(&mut *transaction).await.expect("stock");
                assert_eq!(taken.rows_affected(), 1, "in stock");
            }
            sqlx::query(INSERT_ORDER).bind(&reference).execute(&mut *transaction).await.expect("order");
            for item in ITEMS {
                sqlx::query(INSERT_ITEM)
                    .bind(&reference)
                    .bind(item)
                    .execute(&mut *transaction)
                    .await
                    .expect("item");
            }
            if let Some(conversion) = conversion {
                let outcome = conversion.owe_in(&mut *transaction).await.expect("owed");
                assert!(outcome.conversion().is_some(), "a conversion: {outcome:?}");
            }
            transaction.commit().await.expect("commit");
        }};
    }
    match orders {
        Orders::Sqlite(pool) => in_transaction!(pool),
        Orders::Postgres(pool) => in_transaction!(pool),
    }
}

async fn plain_order(State(orders): State<Orders>, _session: Session) -> &'static str {
    place(&orders, None).await;
    "thank you"
}

async fn sovendus_order(State(orders): State<Orders>, conversion: SovendusConversion) -> &'static str {
    place(&orders, Some(conversion)).await;
    "thank you"
}

/// A shop on `orders`, its layer's store on the same pool, delivering to `sandbox`.
async fn shop(orders: Orders, store: SqlTokenStore, sandbox: &Sandbox) -> (Router, Delivery) {
    for statement in TABLES.into_iter().chain([STOCK]) {
        match &orders {
            Orders::Sqlite(pool) => sqlx::query(statement).execute(pool).await.map(drop),
            Orders::Postgres(pool) => sqlx::query(statement).execute(pool).await.map(drop),
        }
        .expect("the shop's tables");
    }
    store.migrate().await.expect("migrated");
    let layer = SovendusLayer::with_store(sandbox.config().build().expect("a config"), store);
    let delivery = layer.delivery();
    let app = Router::new()
        .route("/landing", get(|| async { "welcome" }))
        .route("/plain", post(plain_order))
        .route("/sovendus", post(sovendus_order))
        .with_state(orders)
        .layer(layer)
        .layer(SessionManagerLayer::new(MemoryStore::default()));
    (app, delivery)
}

fn request(method: &str, uri: &str, cookie: Option<&str>) -> Request {
    let mut builder = http::Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        builder = builder.header(COOKIE, cookie);
    }
    builder.body(Body::empty()).expect("a request")
}

/// A visitor landing from Sovendus with a fresh token: their session cookie.
async fn land(app: &Router) -> String {
    let token = format!("1095752fb409-457a-af14-{:012x}", fastrand::u64(..1 << 48));
    let response = app.clone().oneshot(request("GET", &format!("/landing?sovReqToken={token}"), None)).await;
    let response = response.expect("infallible");
    let cookie = response.headers().get(SET_COOKIE).expect("a session").to_str().expect("ASCII");
    cookie.split(';').next().expect("name=value").to_owned()
}

/// `iters` orders at `path`, each after a landing; the time the orders took.
async fn time_orders(app: &Router, path: &str, iters: u64) -> Duration {
    let mut took = Duration::ZERO;
    for _ in 0..iters {
        let cookie = land(app).await;
        let started = Instant::now();
        let response = app.clone().oneshot(request("POST", path, Some(&cookie))).await.expect("infallible");
        took += started.elapsed();
        assert!(response.status().is_success(), "{path}: {}", response.status());
    }
    took
}

/// Waits until the workers delivered every owed conversion.
async fn drained(delivery: &Delivery) {
    while delivery.counts().await.expect("counts").owed > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The databases to measure, each a fresh shop: SQLite in `dir`, and Postgres if its URL is set.
async fn backends(dir: &std::path::Path) -> Vec<(&'static str, Orders, SqlTokenStore)> {
    let mut backends = Vec::new();
    for (name, synchronous) in
        [("sqlite", SqliteSynchronous::Full), ("sqlite_normal", SqliteSynchronous::Normal)]
    {
        let options = SqliteConnectOptions::new()
            .filename(dir.join(format!("{name}.db")))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous);
        let sqlite = SqlitePool::connect_with(options).await.expect("a SQLite file");
        backends.push((name, Orders::Sqlite(sqlite.clone()), SqlTokenStore::sqlite(sqlite)));
    }
    match std::env::var("SOVENDUS_BENCH_POSTGRES_URL") {
        Ok(url) => {
            for (name, durability) in [("postgres", "on"), ("postgres_async", "off")] {
                let postgres = PgPoolOptions::new()
                    .after_connect(move |connection, _| {
                        Box::pin(async move {
                            let set = format!("SET synchronous_commit = {durability}");
                            sqlx::query(&set).execute(connection).await.map(drop)
                        })
                    })
                    .connect(&url)
                    .await
                    .expect("the Postgres server");
                let tables =
                    ["order_items", "orders", "products", "sovendus_conversions", "sovendus_captures"];
                for table in tables.into_iter().chain(["sovendus_schema", "sovendus_database"]) {
                    sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
                        .execute(&postgres)
                        .await
                        .expect("dropped");
                }
                backends.push((name, Orders::Postgres(postgres.clone()), SqlTokenStore::postgres(postgres)));
            }
        }
        Err(_) => eprintln!("SOVENDUS_BENCH_POSTGRES_URL is not set: Postgres is not measured"),
    }
    backends
}

fn order_cost(c: &mut Criterion) {
    let (runtime, _server, sandbox) = support::runtimes_and_sandbox();
    let dir = tempfile::tempdir().expect("a temporary folder");
    for (backend, orders, store) in runtime.block_on(backends(dir.path())) {
        let (app, delivery) = runtime.block_on(shop(orders, store, &sandbox));
        let mut group = c.benchmark_group(format!("order_{backend}"));
        group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5)).sample_size(20);
        for (name, path) in [("plain", "/plain"), ("sovendus", "/sovendus")] {
            group.bench_function(name, |b| {
                b.to_async(&runtime).iter_custom(|iters| {
                    let (app, delivery) = (app.clone(), delivery.clone());
                    async move {
                        let took = time_orders(&app, path, iters).await;
                        drained(&delivery).await;
                        took
                    }
                })
            });
        }
        group.finish();
        if std::env::args().skip(1).all(|arg| arg == "--bench") {
            let delivering = interleaved(&runtime, &app, Some(&delivery));
            runtime.block_on(delivery.shutdown(Duration::from_secs(10)));
            let transaction = interleaved(&runtime, &app, None);
            for (what, blocks) in [("with delivery", &delivering), ("the transaction", &transaction)] {
                println!("order on {backend}, {what}: {:.3}× the order without", median_ratio(blocks));
            }
            support::write_result(
                "order",
                &format!("{backend}.json"),
                &serde_json::json!({"delivering": delivering, "transaction": transaction, "block": BLOCK}),
            );
        }
    }
}

/// Each block's time per order, of the two shops.
#[derive(serde::Serialize)]
struct Blocks {
    plain: Vec<f64>,
    sovendus: Vec<f64>,
}

/// Times the two shops block by block, alternating; after each pair of blocks, waits for
/// `delivery` to deliver what is owed, if it runs.
fn interleaved(runtime: &Runtime, app: &Router, delivery: Option<&Delivery>) -> Blocks {
    let mut blocks = Blocks { plain: Vec::with_capacity(BLOCKS), sovendus: Vec::with_capacity(BLOCKS) };
    runtime.block_on(async {
        for _ in 0..BLOCKS {
            blocks.plain.push(time_orders(app, "/plain", BLOCK).await.as_nanos() as f64 / BLOCK as f64);
            blocks.sovendus.push(time_orders(app, "/sovendus", BLOCK).await.as_nanos() as f64 / BLOCK as f64);
            if let Some(delivery) = delivery {
                drained(delivery).await;
            }
        }
    });
    blocks
}

/// The median over the pairs of blocks of the ratio sovendus / plain.
fn median_ratio(blocks: &Blocks) -> f64 {
    let mut ratios: Vec<f64> = blocks.sovendus.iter().zip(&blocks.plain).map(|(s, p)| s / p).collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

criterion_group!(benches, order_cost);
criterion_main!(benches);
