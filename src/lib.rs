//! Sovendus server-to-server conversion tracking for tower and axum.
//!
//! A visitor arrives from Sovendus on any URL carrying `?sovReqToken=...`. [`SovendusLayer`]
//! keeps that token against the visitor's tower-sessions session (30 days by default); when
//! the visitor orders, [`SovendusConversion`] sends it back to Sovendus,
//! `POST {endpoint}/ext/{PRODUCT_ID}/{TOKEN}/api` with `{"apiKey": "..."}`, exactly once.
//!
//! ```text
//! landing   GET /any/path?sovReqToken=T      SessionManagerLayer ─► SovendusLayer ─► handler
//!                                            the token is stored against the session
//! order     POST /order                      handler(conversion: SovendusConversion)
//!                                            conversion.send().await: leased, sent, settled
//! ```
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use tower::ServiceBuilder;
//! use tower_sessions::{MemoryStore, SessionManagerLayer, cookie::SameSite};
//! use tower_sovendus::{Outcome, SovendusConfig, SovendusConversion, SovendusLayer};
//!
//! async fn order(conversion: SovendusConversion) -> &'static str {
//!     match conversion.send().await {
//!         Ok(Outcome::Sent(_)) => "thank you (conversion sent)",
//!         Ok(Outcome::NoToken) => "thank you",
//!         Err(error) => { tracing::warn!(%error, "kept for a later attempt"); "thank you" }
//!     }
//! }
//!
//! # fn main() -> Result<(), tower_sovendus::ConfigError> {
//! let config = SovendusConfig::new("9bc72425-902c-3abf-9db8-8b186d7cb160", "XXXX-XXXXX")?;
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "welcome" }))
//!     .route("/order", post(order))
//!     .layer(
//!         // One `layer` call for both, sessions outside: axum wraps each route once.
//!         ServiceBuilder::new()
//!             .layer(SessionManagerLayer::new(MemoryStore::default()).with_same_site(SameSite::Lax))
//!             .layer(SovendusLayer::new(config)),
//!     );
//! # Ok(()) }
//! ```
//!
//! # Modules
//!
//! [`config`] holds the options, [`layer`] the tower plumbing, [`extract`] the extractor,
//! [`delivery`] the background delivery, [`store`] the token stores, [`client`] the HTTP
//! client and [`metrics`] the counters' names.
//!
//! # Features
//!
//! - `axum` (default): [`SovendusConversion`] as an axum extractor. Without it the layer works
//!   in any tower/hyper app, and [`SovendusConversion::from_extensions`] builds the conversion.
//! - `sandbox`: [`sandbox::Sandbox`], a fake Sovendus API on 127.0.0.1 for demos and tests.
//! - `redis`: `store::RedisTokenStore`, tokens shared by several instances of the shop in
//!   Redis, on the same fred pool as tower-sessions-redis-store.
//! - `sqlite`, `postgres`: `store::SqlTokenStore`, captures and owed conversions in SQLite or
//!   Postgres, on the same sqlx pool as tower-sessions-sqlx-store.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod client;
pub mod config;
pub mod delivery;
mod error;
pub mod extract;
mod handoff;
pub mod layer;
mod mask;
pub mod metrics;
mod query;
mod retry;
#[cfg(feature = "sandbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "sandbox")))]
pub mod sandbox;
pub mod store;
mod sync;
pub mod token;
mod visitor;

pub use client::SovendusClient;
pub use config::{SovendusConfig, SovendusConfigBuilder};
pub use delivery::{Delivery, Outcome};
pub use error::{ConfigError, SovendusError};
pub use extract::SovendusConversion;
pub use layer::SovendusLayer;
pub use retry::RetryPolicy;
pub use token::SovReqToken;

/// The query parser and the masking, for the fuzz targets in `fuzz/` only (cargo fuzz builds
/// with `--cfg fuzzing`); not part of the public API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::{
        mask::Masked,
        query::{Param, find, may_contain},
    };
}

// The README's examples are compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
