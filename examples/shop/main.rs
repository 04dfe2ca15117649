//! A small shop that tracks Sovendus conversions, durable by default.
//!
//! ```text
//! cargo run --example shop
//! ```
//!
//! Without `SOVENDUS_API_KEY` it starts an embedded Sovendus sandbox on 127.0.0.1 and sends
//! conversions there: no credentials and no internet needed. With `SOVENDUS_PRODUCT_ID`,
//! `SOVENDUS_API_KEY` (and optionally `SOVENDUS_ENDPOINT`) set, it talks to Sovendus.
//!
//! Sessions, captured tokens and owed conversions live in `SHOP_DATABASE_URL`: a sqlx URL
//! (`sqlite://PATH?mode=rwc`, `postgres://...`), a Redis URL (`redis://...`), or `memory` to
//! keep everything in memory. The default is the SQLite file `target/demo-shop.db`, so a
//! restart keeps carts, visitors' tokens, owed conversions and orders.
//!
//! **Orders.** On SQLite and Postgres the orders (their items, the visitor's token and product,
//! what recording the conversion answered) and the products' stock live in the same database,
//! on the same pool: one transaction takes the stock, makes the visitor's token an owed
//! conversion (`SovendusConversion::owe_in`) and writes the order, so the conversion commits
//! with the order or not at all (a sold-out product rolls everything back, and the visitor
//! keeps their token). An order can be cancelled from its page (`Delivery::void`).
//!
//! **Redis and memory** cannot join the shop's transaction. There the orders live in a SQLite
//! database of their own, `SHOP_ORDERS_URL` (default `target/demo-shop-orders.db` for Redis,
//! `sqlite::memory:` for memory): the order's transaction keeps the visitor's token and product
//! with it, the conversion is recorded after the commit from what it kept (`Delivery::owe`), and at start
//! the shop makes owed (`Delivery::owe`) the conversions of the orders that kept a token and
//! recorded no outcome: a crash between the commit and the send. The store makes one
//! conversion per token, so an order whose conversion was recorded after all books nothing more.
//!
//! **The staff's console** is at `/console` (`tower_sovendus::console`), behind HTTP Basic auth:
//! user `staff`, the password in `SHOP_CONSOLE_PASSWORD`, or, unset, one the shop makes up and
//! prints at start.
//!
//! `SHOP_ADDR` changes where it listens (default 127.0.0.1:3000). `SHOP_STOCK` sets the initial
//! stock of a database that has none yet, as `PRODUCT=COUNT` pairs (`4=1,1=500`; the catalog's
//! defaults otherwise). For tests: `SHOP_MAX_WAIT` (seconds) caps the waits between delivery
//! attempts, and `SHOP_CRASH_AFTER_COMMIT=1` aborts the process right after an order's commit,
//! before it answers. SIGTERM and Ctrl-C stop it gracefully, within 10 seconds: what is still
//! being delivered then stays owed in the database, for the next start.

mod app;
mod console;
mod signal;

use std::{sync::Arc, time::Duration};

use tower_sessions::{MemoryStore, SessionStore, cookie::SameSite};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};
use tower_sovendus::{
    DeliverySchedule, SovendusConfig, SovendusConfigBuilder, SovendusLayer,
    sandbox::Sandbox,
    store::{
        DEFAULT_REDIS_TIMEOUT as REDIS_TIMEOUT, MokaTokenStore, RedisTokenStore, SqlTokenStore, TokenStore,
        fred::prelude::{Builder, ClientLike, Config, ReconnectPolicy},
        sqlx::{PgPool, SqlitePool},
    },
};
use tracing_subscriber::EnvFilter;

use self::app::{Orders, Stock};

/// Where the shop keeps its data unless `SHOP_DATABASE_URL` says otherwise.
const DEFAULT_DATABASE: &str = "sqlite://target/demo-shop.db?mode=rwc";
/// Where the orders of a shop on Redis live unless `SHOP_ORDERS_URL` says otherwise.
const DEFAULT_ORDERS_BESIDE_REDIS: &str = "sqlite://target/demo-shop-orders.db?mode=rwc";
/// How long a shutdown may take: the server's connections, then the deliveries under way.
const DRAIN: Duration = Duration::from_secs(10);
/// How often the orders left unrecorded are looked for, on Redis and in memory.
const RECOVER_EVERY: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();

    let (config, sandbox) = if std::env::var_os("SOVENDUS_API_KEY").is_some() {
        let config = with_test_schedule(SovendusConfig::builder_from_env()?)?.build()?;
        println!("Sending conversions to {} for product {}.", config.endpoint(), config.product_ids()[0]);
        (config, None)
    } else {
        let sandbox = Sandbox::start().await?;
        println!(
            "SOVENDUS_API_KEY is not set: conversions go to the embedded sandbox at {}.",
            sandbox.endpoint()
        );
        (with_test_schedule(sandbox.config())?.build()?, Some(Arc::new(sandbox)))
    };

    let stock = match std::env::var("SHOP_STOCK") {
        Ok(spec) => spec.parse::<Stock>()?,
        Err(_) => Stock::default(),
    };
    let orders_apart =
        |default: &str| std::env::var("SHOP_ORDERS_URL").unwrap_or_else(|_| default.to_owned());

    let database = std::env::var("SHOP_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE.to_owned());
    if database == "memory" {
        println!("Keeping sessions, tokens and owed conversions in memory: a restart loses them.");
        let tokens = MokaTokenStore::new(config.max_tokens()).with_max_owed(config.queue_capacity());
        let orders = open_orders_apart(&orders_apart("sqlite::memory:"), &stock).await?;
        serve(config, tokens, MemoryStore::default(), orders, sandbox).await
    } else if database.starts_with("sqlite:") {
        create_parent_folder(&database)?;
        let pool = SqlitePool::connect(&database).await?;
        let (tokens, sessions) = (SqlTokenStore::sqlite(pool.clone()), SqliteStore::new(pool.clone()));
        tokens.migrate().await?;
        sessions.migrate().await?;
        let orders = Orders::joined_sqlite(pool, &stock).await?;
        println!("Keeping sessions, tokens, owed conversions and orders in {database}.");
        serve(config, tokens, sessions, orders, sandbox).await
    } else if database.starts_with("postgres:") || database.starts_with("postgresql:") {
        let pool = PgPool::connect(&database).await?;
        let (tokens, sessions) = (SqlTokenStore::postgres(pool.clone()), PostgresStore::new(pool.clone()));
        tokens.migrate().await?;
        sessions.migrate().await?;
        let orders = Orders::joined_postgres(pool, &stock).await?;
        println!("Keeping sessions, tokens, owed conversions and orders in Postgres.");
        serve(config, tokens, sessions, orders, sandbox).await
    } else if database.starts_with("redis:") {
        let pool = Builder::from_config(Config::from_url(&database)?)
            .with_performance_config(|performance| performance.default_command_timeout = REDIS_TIMEOUT)
            .set_policy(ReconnectPolicy::new_constant(0, 100))
            .build_pool(4)?;
        pool.init().await?;
        let (tokens, sessions) = (RedisTokenStore::new(pool.clone()), RedisStore::new(pool));
        println!("Keeping sessions, tokens and owed conversions in Redis.");
        let orders = open_orders_apart(&orders_apart(DEFAULT_ORDERS_BESIDE_REDIS), &stock).await?;
        serve(config, tokens, sessions, orders, sandbox).await
    } else {
        Err(format!(
            "SHOP_DATABASE_URL must be sqlite://..., postgres://..., redis://... or memory, not {database}"
        )
        .into())
    }
}

/// The orders in a SQLite database of their own at `url`, for a token store that cannot join
/// the shop's transaction.
async fn open_orders_apart(url: &str, stock: &Stock) -> Result<Orders, Box<dyn std::error::Error>> {
    if !url.starts_with("sqlite:") {
        return Err(format!("SHOP_ORDERS_URL must be sqlite://... or sqlite::memory:, not {url}").into());
    }
    create_parent_folder(url)?;
    let orders = Orders::apart(url, stock).await?;
    println!(
        "Keeping orders in {url}, apart from the tokens: a conversion is recorded after its order's commit."
    );
    Ok(orders)
}

/// Serves the shop until SIGTERM or Ctrl-C, then stops within [`DRAIN`].
async fn serve(
    config: SovendusConfig,
    tokens: impl TokenStore,
    sessions: impl SessionStore + Clone,
    orders: Orders,
    sandbox: Option<Arc<Sandbox>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let stop = signal::stop();
    let addr = std::env::var("SHOP_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    let sovendus = SovendusLayer::with_store(config, tokens);
    let delivery = sovendus.delivery();
    let counts = delivery.counts().await?;
    println!(
        "Conversions in the store: {} owed, {} parked, {} dead, {} delivered, {} voided.",
        counts.owed, counts.parked, counts.dead, counts.delivered, counts.voided
    );
    let crash_after_commit = std::env::var("SHOP_CRASH_AFTER_COMMIT").is_ok_and(|crash| crash == "1");
    if crash_after_commit {
        println!("SHOP_CRASH_AFTER_COMMIT=1: the shop aborts right after its first order's commit.");
    }
    let orders = orders.crash_after_commit(crash_after_commit);
    if !orders.is_joined() {
        // Orders a crash left between their commit and their send, or whose send met the store
        // away: their conversions are owed now, and every minute after. In the background, so
        // that a slow store does not hold the start.
        let (orders, delivery) = (orders.clone(), delivery.clone());
        tokio::spawn(async move {
            let mut every_minute = tokio::time::interval(RECOVER_EVERY);
            loop {
                every_minute.tick().await;
                match orders.owe_unrecorded(&delivery).await {
                    Ok(0) => {}
                    Ok(count) => {
                        tracing::info!(count, "recorded the Sovendus conversions of orders left unrecorded")
                    }
                    Err(error) => tracing::error!(%error, "could not read the orders left unrecorded"),
                }
            }
        });
    }
    println!();
    println!("Trail Shop is open. Arrive as a visitor from Sovendus:");
    println!("    http://{addr}/?sovReqToken=12345-test-123-12345");
    println!("then add something to the cart, check out, and see what Sovendus received:");
    println!("    http://{addr}/sandbox");
    println!("Your orders, and a button to cancel each:");
    println!("    http://{addr}/orders");
    let (password, made_up) = console::password();
    println!(
        "The staff's console (user {}, password {}):",
        console::USER,
        if made_up { &password } else { "from SHOP_CONSOLE_PASSWORD" }
    );
    println!("    http://{addr}/console");
    println!();

    // Plain HTTP on loopback for the demo, so the session cookie cannot be `Secure`.
    let app = app::router_with(orders, sovendus, app::sessions(sessions, SameSite::Lax, false), sandbox)
        .nest("/console", console::staff(delivery.clone(), password));
    let stopping = tokio_util::sync::CancellationToken::new();
    let server = axum::serve(listener, app).with_graceful_shutdown(stopping.clone().cancelled_owned());
    let server = tokio::spawn(async move { server.await });
    stop.await;
    println!(
        "Stopping: the server first, then the deliveries, within {} s (and a call to Sovendus under way, \
         within its request timeout).",
        DRAIN.as_secs()
    );
    let started = tokio::time::Instant::now();
    stopping.cancel();
    if tokio::time::timeout(DRAIN, server).await.is_err() {
        tracing::warn!("connections still open at the deadline: closing them");
    }
    let report = delivery.shutdown(DRAIN.saturating_sub(started.elapsed())).await;
    println!(
        "Sovendus: {} conversions delivered, {} still owed or refused, {} cut off and owed for the next start, \
         {} accepted but not yet recorded.",
        report.sent(),
        report.failed(),
        report.left().len(),
        report.unrecorded().len()
    );
    Ok(())
}

/// For tests that run the shop through faults: `SHOP_MAX_WAIT` (seconds) caps the waits between
/// delivery attempts, minutes to an hour otherwise, so that what failed is delivered within the
/// test once Sovendus answers; `SHOP_QUARANTINE` (seconds) shortens the quarantine, 5 minutes
/// otherwise, so that a killed instance's conversions are taken over within the test, and the
/// request timeout to at most 20 s with it.
fn with_test_schedule(
    config: SovendusConfigBuilder,
) -> Result<SovendusConfigBuilder, Box<dyn std::error::Error>> {
    let seconds =
        |name| std::env::var(name).ok().map(|value| value.parse().map(Duration::from_secs)).transpose();
    let mut schedule = DeliverySchedule::default();
    if let Some(max_wait) = seconds("SHOP_MAX_WAIT")? {
        schedule = schedule.first_wait(max_wait / 4).max_wait(max_wait);
    }
    let Some(quarantine) = seconds("SHOP_QUARANTINE")? else { return Ok(config.schedule(schedule)) };
    let request_timeout = quarantine.min(Duration::from_secs(20));
    Ok(config.schedule(schedule.quarantine(quarantine)).request_timeout(request_timeout))
}

/// Creates the folder of a `sqlite://PATH...` database if it is missing.
fn create_parent_folder(url: &str) -> std::io::Result<()> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    match std::path::Path::new(path).parent() {
        Some(folder) if !folder.as_os_str().is_empty() => std::fs::create_dir_all(folder),
        _ => Ok(()),
    }
}
