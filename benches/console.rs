//! The staff's console on a store holding 100,000 conversions (90 days of a busy shop: most
//! delivered, some voided, dead, owed and parked, of three products): how long its pages take,
//! served over loopback HTTP by axum, with 4 staff at once asking for them in turn. Target: the
//! overview and a list page within 100 ms at p95, on SQLite and on Postgres.
//!
//! Also prints what a conversion costs in storage on each: the table and its indexes, divided
//! by the conversions.
//!
//! On SQLite in a temporary file always; on Postgres when `SOVENDUS_BENCH_POSTGRES_URL` names a
//! server (`benches/servers.sh` starts a throwaway one), else skipped with a notice.
//!
//! ```text
//! eval "$(bash benches/servers.sh)"
//! cargo bench --bench console
//! python3 benches/report.py
//! ```

mod support;

use std::{
    net::SocketAddr,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{Router, extract::Request, middleware::Next};
use tower_sovendus::{
    SovendusLayer,
    console::{self, Staff},
    sandbox::{Fault, Sandbox},
    store::{
        SqlTokenStore,
        sqlx::{self, PgPool, SqlitePool},
    },
};

/// Conversions in the store.
const CONVERSIONS: usize = 100_000;
/// Over how many days they were ordered.
const DAYS: u64 = 90;
/// Staff asking for pages at once.
const STAFF: usize = 4;
/// Requests of each page kind, in all.
const REQUESTS: usize = 200;
/// The target: p95 at most this.
const TARGET: Duration = Duration::from_millis(100);

/// The pages asked for, in turn: the overview, the newest owed and delivered, a delivered page
/// deep in the list (after a cursor), and a delivered page filtered by product and month.
fn pages(deep_cursor: &str) -> Vec<(&'static str, String)> {
    vec![
        ("overview", "/console".to_owned()),
        ("overview, 90 days", "/console?days=90".to_owned()),
        ("owed, first page", "/console/conversions/owed".to_owned()),
        ("delivered, first page", "/console/conversions/delivered".to_owned()),
        ("delivered, a page deep in the list", format!("/console/conversions/delivered?after={deep_cursor}")),
        (
            "delivered, one product in a month",
            "/console/conversions/delivered?product=product-b&from=2026-01-01&until=2026-01-31&order=oldest"
                .to_owned(),
        ),
    ]
}

/// The state of the `n`th conversion: 80 % delivered, 10 % voided, 5 % dead, 4 % owed, 1 % parked.
fn state_of(n: usize) -> &'static str {
    match n % 100 {
        0..80 => "delivered",
        80..90 => "voided",
        90..95 => "dead",
        95..99 => "owed",
        _ => "parked",
    }
}

/// The SQL that inserts conversions `chunk` of [`CONVERSIONS`], ordered over the [`DAYS`] days
/// before `now` (milliseconds): generated values only, written out.
fn insert(chunk: &[usize], now: i64) -> String {
    let span = i64::try_from(Duration::from_secs(DAYS * 86_400).as_millis()).unwrap();
    let optional = |value: Option<String>| value.map_or("NULL".to_owned(), |value| format!("'{value}'"));
    let rows: Vec<String> = chunk
        .iter()
        .map(|&n| {
            let ordered_at = now - span + span * i64::try_from(n).unwrap() / i64::try_from(CONVERSIONS).unwrap();
            let state = state_of(n);
            let settled = matches!(state, "delivered" | "voided" | "dead");
            let next = (!settled).then(|| (ordered_at + 60_000).to_string());
            let error = match state {
                "parked" => Some("Sovendus refused the API key (403)".to_owned()),
                "dead" => Some("Sovendus refused the product ID or token (422): Token not found.".to_owned()),
                "owed" => Some("Sovendus is unavailable (503)".to_owned()),
                _ => None,
            };
            format!(
                "('{:032x}', 'bench-token-{n}', '{}', 'B-{n}', {ordered_at}, '{state}', 1, {}, {}, {}, {}, ',{}')",
                u128::try_from(n).unwrap().wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
                ["product-a", "product-b", "product-c"][n % 3],
                next.clone().unwrap_or("NULL".to_owned()),
                optional(error),
                if settled { (ordered_at + 60_000).to_string() } else { "NULL".to_owned() },
                next.unwrap_or("NULL".to_owned()),
                ordered_at + 60_000,
            )
        })
        .collect();
    format!(
        "INSERT INTO sovendus_conversions (id, token, product_id, order_ref, ordered_at, state, attempts, \
         next_attempt_at, last_error, settled_at, due_at, calls) VALUES {}",
        rows.join(", ")
    )
}

/// The statements that fill a store with [`CONVERSIONS`] conversions, a thousand each.
fn fill() -> Vec<String> {
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
    (0..CONVERSIONS).collect::<Vec<_>>().chunks(1_000).map(|chunk| insert(chunk, now)).collect()
}

/// The console of `store`, every request as an admin. The shop's delivery runs, against
/// `sandbox`, which answers every call 503: what is owed stays owed, and nothing leaves the
/// machine.
fn console_of(store: SqlTokenStore, sandbox: &Sandbox) -> Router {
    let config = sandbox.config().build().expect("a configuration");
    let sovendus = SovendusLayer::with_store(config, store);
    let staff = console::router(sovendus.delivery()).layer(axum::middleware::from_fn(
        |mut request: Request, next: Next| async move {
            request.extensions_mut().insert(Staff::admin("bench"));
            next.run(request).await
        },
    ));
    Router::new().nest("/console", staff)
}

/// Asks for every page kind [`REQUESTS`] times, [`STAFF`] at once; each kind's latencies, sorted.
async fn measure(addr: SocketAddr, pages: &[(&'static str, String)]) -> Vec<Vec<Duration>> {
    let client = reqwest::Client::new();
    let mut staff = tokio::task::JoinSet::new();
    for who in 0..STAFF {
        let (client, pages) = (client.clone(), pages.to_vec());
        staff.spawn(async move {
            let mut timings = vec![Vec::new(); pages.len()];
            for turn in 0..REQUESTS / STAFF {
                for offset in 0..pages.len() {
                    // Each member of staff starts the round at another page.
                    let kind = (turn + who + offset) % pages.len();
                    let started = Instant::now();
                    let response = client
                        .get(format!("http://{addr}{}", pages[kind].1))
                        .send()
                        .await
                        .expect("an answer");
                    assert!(response.status().is_success(), "{}: {}", pages[kind].1, response.status());
                    response.bytes().await.expect("a page");
                    timings[kind].push(started.elapsed());
                }
            }
            timings
        });
    }
    let mut all = vec![Vec::new(); pages.len()];
    while let Some(timings) = staff.join_next().await {
        for (kind, taken) in timings.expect("a member of staff").into_iter().enumerate() {
            all[kind].extend(taken);
        }
    }
    for taken in &mut all {
        taken.sort();
    }
    all
}

fn percentile(sorted: &[Duration], share: f64) -> Duration {
    let rank = ((sorted.len() as f64 * share).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Measures the console of `store`, with `bytes` the storage the conversions take; prints and
/// returns the figures.
async fn run(name: &str, store: SqlTokenStore, bytes: u64) -> serde_json::Value {
    let sandbox = Sandbox::start().await.expect("a sandbox");
    sandbox.fail_every(1, [Fault::Status(http::StatusCode::SERVICE_UNAVAILABLE)]);
    let app = console_of(store, &sandbox);
    let addr = support::serve_on_loopback(app).await;
    // A cursor half way down the delivered list: the conversion ordered 45 days ago.
    let deep = {
        let page: serde_json::Value =
            reqwest::get(format!("http://{addr}/console/api/conversions/delivered"))
                .await
                .expect("an answer")
                .json()
                .await
                .expect("JSON");
        let first = page["next"].as_str().expect("a next page").to_owned();
        let (_, id) = first.split_once('-').expect("a cursor");
        let half = SystemTime::now() - Duration::from_secs(DAYS * 86_400 / 2);
        format!("{}-{id}", half.duration_since(UNIX_EPOCH).unwrap().as_millis())
    };
    let pages = pages(&deep);
    // The overview on its own: first with nothing kept (its counts per state, and the days
    // before yesterday, read from the store), then with its counts read again (kept 10 s).
    let overview = format!("http://{addr}/console");
    let started = Instant::now();
    reqwest::get(&overview).await.expect("an answer").bytes().await.expect("a page");
    let first = started.elapsed();
    let mut recounted = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(11)).await;
        let started = Instant::now();
        reqwest::get(&overview).await.expect("an answer").bytes().await.expect("a page");
        recounted.push(started.elapsed());
    }
    recounted.sort();
    println!(
        "{name}, overview alone: {:.1} ms with nothing kept, {:.1} ms (median of 3) counting the states again",
        first.as_secs_f64() * 1e3,
        recounted[1].as_secs_f64() * 1e3
    );
    measure(addr, &pages).await; // warm-up
    let timings = measure(addr, &pages).await;
    let mut figures = serde_json::Map::new();
    for ((kind, _), taken) in pages.iter().zip(&timings) {
        let (p50, p95) = (percentile(taken, 0.5), percentile(taken, 0.95));
        println!(
            "{name}, {kind}: p50 {:.1} ms, p95 {:.1} ms (target <= {} ms), of {}",
            p50.as_secs_f64() * 1e3,
            p95.as_secs_f64() * 1e3,
            TARGET.as_millis(),
            taken.len()
        );
        figures.insert(
            (*kind).to_owned(),
            serde_json::json!({"p50_ms": p50.as_secs_f64() * 1e3, "p95_ms": p95.as_secs_f64() * 1e3, "requests": taken.len()}),
        );
    }
    let per_conversion = bytes as f64 / CONVERSIONS as f64;
    println!("{name}: the conversions take {bytes} bytes with their indexes, {per_conversion:.0} bytes each");
    serde_json::json!({
        "pages": figures,
        "bytes_per_conversion": per_conversion,
        "overview_first_ms": first.as_secs_f64() * 1e3,
        "overview_recounted_ms": recounted[1].as_secs_f64() * 1e3,
    })
}

async fn sqlite(dir: &std::path::Path) -> serde_json::Value {
    let url = format!("sqlite://{}?mode=rwc", dir.join("console.db").display());
    let pool = SqlitePool::connect(&url).await.expect("SQLite");
    let store = SqlTokenStore::sqlite(pool.clone());
    store.migrate().await.expect("migrated");
    let mut transaction = pool.begin().await.expect("a transaction");
    for statement in fill() {
        sqlx::raw_sql(&statement).execute(&mut *transaction).await.expect("conversions inserted");
    }
    transaction.commit().await.expect("committed");
    sqlx::query("ANALYZE").execute(&pool).await.expect("analyzed");
    // The whole file: the conversions, their indexes, and the store's few other rows.
    let bytes: i64 =
        sqlx::query_scalar("SELECT page_count * page_size FROM pragma_page_count, pragma_page_size")
            .fetch_one(&pool)
            .await
            .expect("the file's size");
    run("SQLite", store, u64::try_from(bytes).unwrap_or(0)).await
}

async fn postgres(url: &str) -> serde_json::Value {
    let pool = PgPool::connect(url).await.expect("Postgres");
    sqlx::query(
        "DROP TABLE IF EXISTS sovendus_captures, sovendus_conversions, sovendus_schema, sovendus_database",
    )
    .execute(&pool)
    .await
    .expect("a clean database");
    let store = SqlTokenStore::postgres(pool.clone());
    store.migrate().await.expect("migrated");
    let mut transaction = pool.begin().await.expect("a transaction");
    for statement in fill() {
        sqlx::raw_sql(&statement).execute(&mut *transaction).await.expect("conversions inserted");
    }
    transaction.commit().await.expect("committed");
    sqlx::query("VACUUM ANALYZE sovendus_conversions").execute(&pool).await.expect("analyzed");
    let bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('sovendus_conversions')")
        .fetch_one(&pool)
        .await
        .expect("its size");
    run("Postgres", store, u64::try_from(bytes).unwrap_or(0)).await
}

fn main() {
    if std::env::args().skip(1).any(|arg| arg == "--list")
        || !std::env::args().skip(1).all(|arg| arg == "--bench")
    {
        return; // `cargo bench -- --list` and filters: nothing of criterion's here.
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut results = serde_json::Map::new();
    results.insert("sqlite".to_owned(), runtime.block_on(sqlite(dir.path())));
    match std::env::var("SOVENDUS_BENCH_POSTGRES_URL") {
        Ok(url) => {
            results.insert("postgres".to_owned(), runtime.block_on(postgres(&url)));
        }
        Err(_) => eprintln!("SOVENDUS_BENCH_POSTGRES_URL is not set: Postgres is not measured"),
    }
    support::write_result(
        "console",
        "pages.json",
        &serde_json::json!({"conversions": CONVERSIONS, "staff": STAFF, "stores": results}),
    );
}
