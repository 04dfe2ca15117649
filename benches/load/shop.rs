//! The load test's shops (`benches/load/load.sh`): the demo shop's pages with `SovendusLayer`,
//! or without it, both with sessions in memory, listening on `SHOP_ADDR`.
//!
//! ```text
//! cargo build --release --example load-shop
//! SHOP_ADDR=127.0.0.1:39117 target/release/examples/load-shop with
//! SHOP_ADDR=127.0.0.1:39118 target/release/examples/load-shop without
//! ```
//!
//! Without the layer the pages are served the same, but for the home and order pages, which
//! need the layer and answer 500; the load test asks for neither.

#[path = "../../examples/shop/app.rs"]
#[allow(dead_code)]
mod app;

use std::sync::Arc;

use tower::ServiceBuilder;
use tower_sessions::{MemoryStore, cookie::SameSite};
use tower_sovendus::{SovendusLayer, sandbox::Sandbox};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let with_layer = match std::env::args().nth(1).as_deref() {
        Some("with") => true,
        Some("without") => false,
        _ => return Err("usage: load-shop with|without".into()),
    };
    let sandbox = Arc::new(Sandbox::start().await?);
    let sessions = app::sessions(MemoryStore::default(), SameSite::Lax, false);
    let sovendus = SovendusLayer::new(sandbox.config().build()?);
    let app = if with_layer {
        app::router(sovendus, sessions, Some(sandbox))
    } else {
        // One `layer` call, as `app::router` makes: axum wraps each route once either way. The
        // layer's delivery only serves the sandbox page.
        app::pages(sovendus.delivery(), Some(sandbox)).layer(ServiceBuilder::new().layer(sessions))
    };
    let addr = std::env::var("SHOP_ADDR").unwrap_or_else(|_| "127.0.0.1:39117".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.unwrap_or(()) })
        .await?;
    Ok(())
}
