//! Sovendus server-to-server conversion tracking for tower and axum.
//!
//! A visitor arrives from Sovendus on any URL carrying `?sovReqToken=...`.
//! [`SovendusLayer`] keeps that token against the visitor's tower-sessions session (30 days by
//! default); when the visitor orders, [`SovendusConversion`] sends it back to Sovendus,
//! `POST {endpoint}/ext/{PRODUCT_ID}/{TOKEN}/api` with `{"apiKey": "..."}`, exactly once.
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
//! let config = SovendusConfig::new("9bc72425-902c-3abf-9db8-8b186d7cb160", "XXXX-XXXXX-XXXXXX-XXX")?;
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
//! # Features
//!
//! - `axum` (default): [`SovendusConversion`] as an axum extractor. Without it the layer works
//!   in any tower/hyper app, and [`SovendusConversion::from_extensions`] builds the conversion.
//! - `sandbox`: [`sandbox::Sandbox`], a fake Sovendus API on 127.0.0.1 for demos and tests.
//! - `redis`: [`RedisTokenStore`], tokens shared by several instances of the shop in Redis,
//!   on the same [`fred`] pool as tower-sessions-redis-store. Re-exports [`fred`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod compact_store;
mod config;
mod delivery;
mod error;
mod extract;
mod layer;
pub mod metrics;
mod query;
#[cfg(feature = "redis")]
mod redis_store;
mod retry;
mod sender;
mod state;
mod store;
mod sync;
mod token;
mod token_store;

#[cfg(feature = "sandbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "sandbox")))]
pub mod sandbox;

/// The Redis client the [`RedisTokenStore`] is built on, at the version
/// tower-sessions-redis-store 0.16 uses.
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use fred;

pub use client::SovendusClient;
pub use compact_store::CompactTokenStore;
pub use config::{
    ApiKey, Attribution, CaptureFilter, ConfigError, DEFAULT_ENDPOINT, DEFAULT_MAX_TOKENS,
    DEFAULT_PRODUCT_PARAMETER, DEFAULT_QUEUE_CAPACITY, DEFAULT_REQUEST_TIMEOUT, DEFAULT_TOKEN_PARAMETER,
    DEFAULT_TOKEN_TTL, DEFAULT_WORKERS, MAX_PRODUCTS, ProductId, SovendusConfig, SovendusConfigBuilder,
};
pub use delivery::{Delivery, DeliveryReport, PendingConversion, QueueOutcome};
pub use error::{Outcome, Receipt, SovendusError};
pub use extract::{SovendusConversion, SovendusConversionRejection};
pub use layer::{ResponseFuture, SovendusLayer, SovendusService};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_store::{DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT, RedisTokenStore};
pub use retry::RetryPolicy;
pub use store::MokaTokenStore;
pub use token::{InvalidToken, MAX_TOKEN_LEN, Masked, SovReqToken};
pub use token_store::{
    LeaseId, Leased, PendingToken, Settlement, StoreError, StoreFuture, TokenKey, TokenStore,
};

/// The query parser, for the fuzz targets in `fuzz/` only (cargo fuzz builds with
/// `--cfg fuzzing`); not part of the public API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::query::{Param, find, may_contain};
}

// The README's examples are compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
