//! Several instances of one shop behind a load balancer: sessions and Sovendus tokens in Redis,
//! on one fred pool shared by tower-sessions-redis-store and `RedisTokenStore`.
//!
//! Needs a running Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`); without one it says
//! so and exits. Start two instances and land on one, order on the other:
//!
//! ```text
//! redis-server --port 6379 &
//! CLUSTER_ADDR=127.0.0.1:3002 cargo run --example cluster &
//! CLUSTER_ADDR=127.0.0.1:3003 cargo run --example cluster &
//! curl -c jar -b jar 'http://127.0.0.1:3002/?sovReqToken=12345-test-123-12345'
//! curl -c jar -b jar -X POST http://127.0.0.1:3003/order
//! ```
//!
//! Each instance sends to an embedded sandbox of its own here; a shop points every instance
//! at Sovendus with `SovendusConfig::from_env()`.

#[path = "shop/signal.rs"]
mod signal;

use std::{process::ExitCode, time::Duration};

use axum::{
    Router,
    routing::{get, post},
};
use tower::ServiceBuilder;
use tower_sessions::{SessionManagerLayer, cookie::SameSite};
use tower_sessions_redis_store::RedisStore;
use tower_sovendus::{
    Outcome, SovendusConversion, SovendusLayer,
    sandbox::Sandbox,
    store::{
        RedisTokenStore,
        fred::prelude::{Builder, ClientLike, Config, Pool, ReconnectPolicy},
    },
};

/// How long one Redis command may wait, queued or sent, before it fails: a landing page waits
/// at most about this long for a Redis that is down, then answers anyway.
const REDIS_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// The pool a shop runs: commands give up after [`REDIS_COMMAND_TIMEOUT`] instead of waiting
/// for Redis to come back (fred's default), and the pool reconnects on its own, backing off
/// from 100 ms to 5 s.
async fn redis_pool(url: &str) -> Result<Pool, Box<dyn std::error::Error>> {
    let pool = Builder::from_config(Config::from_url(url)?)
        .with_performance_config(|performance| performance.default_command_timeout = REDIS_COMMAND_TIMEOUT)
        .with_connection_config(|connection| connection.connection_timeout = REDIS_COMMAND_TIMEOUT)
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build_pool(4)?;
    pool.init().await?;
    Ok(pool)
}

async fn order(conversion: SovendusConversion) -> String {
    match conversion.send().await {
        Ok(Outcome::Sent { .. }) => "order placed, Sovendus conversion sent\n".to_owned(),
        // Owed (retried by any instance), parked, converted before, no token, or unknown.
        Ok(outcome) => format!("order placed; Sovendus conversion: {outcome:?}\n"),
        // Nothing recorded (Redis refused): the token stays with the visitor.
        Err(error) => format!("order placed; Sovendus conversion not recorded: {error}\n"),
    }
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let pool = match redis_pool(&url).await {
        Ok(pool) => pool,
        Err(error) => {
            eprintln!("cannot reach Redis at {url} ({error}); start one (redis-server) or set REDIS_URL");
            return Ok(ExitCode::FAILURE);
        }
    };
    let sandbox = Sandbox::start().await?;

    // The same pool for both: sessions and tokens live in the one Redis every instance shares.
    let sovendus = SovendusLayer::with_store(sandbox.config().build()?, RedisTokenStore::new(pool.clone()));
    let delivery = sovendus.delivery();
    let sessions = SessionManagerLayer::new(RedisStore::new(pool.clone()))
        .with_same_site(SameSite::Lax)
        // Plain HTTP on loopback for the demo; keep the cookie Secure in production.
        .with_secure(false);
    let app = Router::new()
        .route("/", get(|| async { "welcome to the shop\n" }))
        .route("/order", post(order))
        // Sessions outside, Sovendus inside, in one `layer` call: axum wraps each route once.
        .layer(ServiceBuilder::new().layer(sessions).layer(sovendus));

    let addr = std::env::var("CLUSTER_ADDR").unwrap_or_else(|_| "127.0.0.1:3002".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(addr = %listener.local_addr()?, sandbox = %sandbox.endpoint(), "shop instance listening");
    axum::serve(listener, app).with_graceful_shutdown(signal::stop()).await?;
    delivery.shutdown(Duration::from_secs(10)).await;
    pool.quit().await?;
    Ok(ExitCode::SUCCESS)
}
