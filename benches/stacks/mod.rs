//! The stacks the layer benches compare: an axum router with one trivial handler inside
//! tower-sessions' `SessionManagerLayer` (MemoryStore), with only the layer in between
//! changing.

use axum::{Router, routing::get};
use tower::layer::util::Identity;
use tower_sessions::{MemoryStore, SessionManagerLayer};
use tower_sovendus::{SovendusConfig, SovendusLayer};

/// A page without a token, with a query as shop pages have them.
pub const PLAIN: &str = "/products/42?color=red&size=m";

/// The shop's routes. `with_state` turns handlers into routes once, as a shop with state does,
/// instead of on every request.
pub fn routes() -> Router {
    Router::new().route("/products/{id}", get(|| async { "product" })).with_state(())
}

pub fn sessions(routes: Router) -> Router {
    routes.layer(SessionManagerLayer::new(MemoryStore::default()))
}

pub fn config() -> SovendusConfig {
    SovendusConfig::new("9bc72425-902c-3abf-9db8-8b186d7cb160", "XXXX-XXXXX").expect("valid config")
}

pub fn sovendus() -> Router {
    sessions(routes().layer(SovendusLayer::new(config())))
}

/// tower's no-op layer: axum wraps every route for any layer, so this is the fair baseline.
pub fn identity() -> Router {
    sessions(routes().layer(Identity::new()))
}

pub fn none() -> Router {
    sessions(routes())
}
