//! A small shop that tracks Sovendus conversions.
//!
//! ```text
//! cargo run --example shop
//! ```
//!
//! Without `SOVENDUS_API_KEY` it starts an embedded Sovendus sandbox on 127.0.0.1 and sends
//! conversions there: no credentials and no internet needed. With `SOVENDUS_PRODUCT_ID`,
//! `SOVENDUS_API_KEY` (and optionally `SOVENDUS_ENDPOINT`) set, it talks to Sovendus.
//! `SHOP_ADDR` changes where it listens (default 127.0.0.1:3000).

mod app;

use std::{sync::Arc, time::Duration};

use tower_sessions::{MemoryStore, cookie::SameSite};
use tower_sovendus::{SovendusConfig, SovendusLayer, sandbox::Sandbox};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();

    let (config, sandbox) = if std::env::var_os("SOVENDUS_API_KEY").is_some() {
        let config = SovendusConfig::from_env()?;
        println!("Sending conversions to {} for product {}.", config.endpoint(), config.product_ids()[0]);
        (config, None)
    } else {
        let sandbox = Sandbox::start().await?;
        println!(
            "SOVENDUS_API_KEY is not set: conversions go to the embedded sandbox at {}.",
            sandbox.endpoint()
        );
        (sandbox.config().build()?, Some(Arc::new(sandbox)))
    };

    let addr = std::env::var("SHOP_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    println!();
    println!("Trail Shop is open. Arrive as a visitor from Sovendus:");
    println!("    http://{addr}/?sovReqToken=12345-test-123-12345");
    println!("then add something to the cart, check out, and see what Sovendus received:");
    println!("    http://{addr}/sandbox");
    println!();

    let sovendus = SovendusLayer::new(config);
    let delivery = sovendus.delivery();
    // Plain HTTP on loopback for the demo, so the session cookie cannot be `Secure`.
    let sessions = app::sessions(MemoryStore::default(), SameSite::Lax, false);
    axum::serve(listener, app::router(sovendus, sessions, sandbox))
        .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.unwrap_or(()) })
        .await?;

    // The server takes no more orders: deliver what is queued, then say what is left.
    let report = delivery.shutdown(Duration::from_secs(10)).await;
    println!("Sovendus: {} conversions sent, {} failed.", report.sent(), report.failed());
    for pending in report.left() {
        // A real shop would persist these and send them later with SovendusClient.
        println!(
            "Not delivered, still stored: token {} for product {}",
            pending.token(),
            pending.product_id()
        );
    }
    Ok(())
}
