//! Sovendus server-to-server conversion tracking for tower and axum.
//!
//! A visitor arrives from Sovendus on any URL carrying `?sovReqToken=...`. [`SovendusLayer`]
//! keeps that token against the visitor's tower-sessions session (30 days by default); when
//! the visitor orders, [`SovendusConversion`] sends it back to Sovendus,
//! `POST {endpoint}/ext/{PRODUCT_ID}/{TOKEN}/api` with `{"apiKey": "..."}`, exactly once.
//!
//! ```text
//! landing   GET /any/path?sovReqToken=T      SessionManagerLayer ─► SovendusLayer ─► handler
//!                                            the token is captured against the session
//! order     POST /order                      handler(conversion: SovendusConversion)
//!                                            SQL store: in the order's own transaction,
//!                                            conversion.owe_in(&mut *tx): the capture becomes
//!                                            an owed conversion if, and when, the order commits
//!                                            any store, after the commit: conversion.send()
//! owed      the delivery workers of any instance, after a restart too, claim what is due
//!           (a lease, renewed while they send), send it, and settle it by the answer
//! ```
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use tower::ServiceBuilder;
//! use tower_sessions::{MemoryStore, SessionManagerLayer, cookie::SameSite};
//! use tower_sovendus::{Outcome, SovendusConfig, SovendusConversion, SovendusLayer};
//!
//! async fn order(conversion: SovendusConversion) -> &'static str {
//!     // ...after the order committed (on a SQL store, `owe_in` joins its transaction).
//!     match conversion.send().await {
//!         Ok(Outcome::Sent { .. }) => "thank you (conversion sent)",
//!         Ok(Outcome::Owed { .. } | Outcome::Parked { .. }) => "thank you (conversion on its way)",
//!         Ok(_) => "thank you", // no token, converted before, dead, or the store did not say
//!         Err(error) => { tracing::warn!(%error, "nothing recorded: the token is kept"); "thank you" }
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
//! # Glossary
//!
//! - **capture**: a landing's token (and the product it chose), kept against the visitor's
//!   session for `token_ttl`, until an order takes it.
//! - **owed**: an order took the capture; the conversion waits in the store until Sovendus
//!   accepts it, and is attempted on the [`DeliverySchedule`].
//! - **parked**: Sovendus refused the shop's configuration (403, 404, 405, an unknown product,
//!   an unexpected answer); tried again on the schedule with no end, at every start and on
//!   [`Delivery::retry_parked`], so delivered once the configuration is fixed
//!   ([more](#delivery)).
//! - **dead**: Sovendus does not know the token, or never answered within the schedule; never
//!   sent again unless [`Delivery::retry_dead`] revives it.
//! - **delivered**: Sovendus answered 200. One 200 per token, ever.
//! - **voided**: the shop took the order back before delivery ([`Delivery::void`]): never sent.
//!
//! # Where the names live
//!
//! The root holds every name an app's setup and order handlers use: the configuration and its
//! options, the layer, the extractor and what sending answers, the identifiers, the delivery
//! handle and the stores. Each module keeps its concept's other names: [`config`] the
//! defaults, [`layer`] the tower service and future, [`extract`] the extractor's rejection,
//! [`delivery`] what a shutdown reports, [`store`] the [`TokenStore`](store::TokenStore)
//! trait and the records a store of one's own trades in, [`metrics`] the metrics' names.
//!
//! # Features
//!
//! - `axum` (default): [`SovendusConversion`] as an axum extractor. Without it the layer works
//!   in any tower/hyper app, and [`SovendusConversion::from_extensions`] builds the conversion.
//! - `rustls` (default), `rustls-ring`, `native-tls`: HTTPS to Sovendus with rustls on
//!   aws-lc-rs, rustls on ring, or the platform's TLS library. Without any, only `http`
//!   endpoints are accepted.
//! - `sandbox`: [`sandbox::Sandbox`], a fake Sovendus API on 127.0.0.1 for demos and tests.
//! - `sqlite`, `postgres`: `SqlTokenStore`, captures and owed conversions in SQLite or
//!   Postgres, on the same sqlx pool as tower-sessions-sqlx-store.
//! - `redis`: `RedisTokenStore`, the same in Redis, on the same fred pool as
//!   tower-sessions-redis-store.
//! - `conformance`: `store::conformance`, the rules every store keeps, for a store's tests.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
pub mod config;
pub mod delivery;
mod error;
pub mod extract;
mod ids;
pub mod layer;
mod mask;
pub mod metrics;
mod query;
#[cfg(feature = "sandbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "sandbox")))]
pub mod sandbox;
pub mod store;
mod sync;
mod visitor;

// The root holds every name an app's setup and order handlers use; each module keeps the rest
// of its concept (defaults, the tower service, the extractor's rejection, what writing a store
// needs).
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::store::RedisTokenStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use self::store::SqlTokenStore;
pub use self::{
    client::{Receipt, SovendusClient},
    config::{
        Attribution, ConfigError, DeliverySchedule, RetryPolicy, SovendusConfig, SovendusConfigBuilder,
    },
    delivery::{Delivery, DeliveryReport, Outcome, Recorded},
    error::SovendusError,
    extract::SovendusConversion,
    ids::{InvalidOrderRef, InvalidProductId, InvalidToken, OrderRef, ProductId, SovReqToken},
    layer::SovendusLayer,
    store::{MokaTokenStore, StoreError, VoidOutcome},
};

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
