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
//! [`delivery`] what a shutdown reports, [`store`] the store's roles (a small trait each, and
//! [`TokenStore`](store::TokenStore), the four) and the records a store of one's own trades in,
//! [`metrics`] the metrics' names.
//!
//! # Delivery
//!
//! The [`delivery`] module tells what each answer of Sovendus makes of a conversion (delivered,
//! owed, parked, dead, voided), how the workers of every instance share the owed ones under
//! leases, the few windows in which a conversion may be sent twice, and how to shut down;
//! [`DeliverySchedule`] tells when a conversion is tried again. The first delivery of a
//! conversion gets the quick [retries](RetryPolicy); each later one is one call.
//! [`send_in_background`](SovendusConversion::send_in_background) and `owe_in` leave the first
//! delivery to the workers, so the order page never waits on Sovendus.
//!
//! **Inspection.** [`Delivery::counts`] (also [per day](Delivery::daily)),
//! [`list`](Delivery::list) (a [state](store::ConversionState)'s, a page at a time after a
//! [cursor](store::Cursor), filtered), [`causes`](Delivery::causes), [`find`](Delivery::find)
//! (by order), [`find_token`](Delivery::find_token), [`get`](Delivery::get) (by ID),
//! [`health`](Delivery::health) (this instance's workers and last calls),
//! [`retry_parked`](Delivery::retry_parked) (all, after fixing the configuration, or
//! [one](Delivery::retry_parked_one)) and [`retry_dead`](Delivery::retry_dead) (after a long
//! outage of Sovendus: the last unanswered call may have been booked, so revive on purpose, one
//! by one). The `console` module (feature `console`) shows them all to the shop's staff.
//!
//! **Metrics and traces.** Counters and a gauge go through the `metrics` facade, under the
//! names in [`metrics`], which also registers their descriptions ([`metrics::describe`]). The
//! tracing spans `sovendus.capture` and `sovendus.send` carry the masked token.
//!
//! # Stores
//!
//! | Store | Feature | Survives a restart | Shared by instances | Joins the order's transaction (`owe_in`) |
//! |---|---|---|---|---|
//! | [`MokaTokenStore`] (the default of [`SovendusLayer::new`]) | | no | no | no: [`Delivery::owe`] after the commit |
//! | `SqlTokenStore` on SQLite | `sqlite` | yes | no (one host) | yes |
//! | `SqlTokenStore` on Postgres | `postgres` | yes | yes | yes |
//! | `RedisTokenStore` | `redis` | when Redis persists (RDB or AOF) | yes | no: [`Delivery::owe`] after the commit |
//!
//! The [`store`] module tells what every store keeps and how to write one; each store's type
//! tells how to set it up (`SqlTokenStore` on the pool of tower-sessions-sqlx-store 0.15,
//! `RedisTokenStore` on the fred pool of tower-sessions-redis-store 0.16) and what it needs of
//! its database. `examples/cluster.rs` is a runnable shop on Redis.
//!
//! **When the store is down**, a landing still answers (the capture is lost, logged and
//! counted), and an order answers a retryable [`SovendusError::Store`] (or
//! [`Outcome::Unknown`], for a write cut off midway) with the token still the visitor's. A
//! settlement due after a 200 is retried for as long as the process lives, until the store
//! answers. Records a store cannot read are refused, logged without their content, counted,
//! and never sent.
//!
//! Settled conversions (delivered, dead and voided) are kept for
//! [`keep_settled_for`](DeliverySchedule::keep_settled_for), 90 days and never less than the
//! token's TTL, for inspection, for checking Sovendus' invoice (the `console` module, feature
//! `console`), and so that a token that lands again converts no second time; then the workers
//! purge them.
//!
//! # Security
//!
//! - **The API key** is held as a secret, zeroed on drop, and never appears in logs, `Debug`
//!   output or error messages; where shown at all it is `****` plus its last 4 characters (keys
//!   shorter than 12 show `****` alone: see [`config::ApiKey`]). It goes out only in the body of
//!   the POST to the endpoint.
//! - **Tokens are validated before they are stored** ([`SovReqToken`]): 1 to 256 bytes of
//!   URL-unreserved characters, never only dots. `/`, `%2F`, `..`, `?`, `#`, spaces, control
//!   characters, unicode, and repeated or empty parameters are refused, logged masked, and the
//!   page served as usual. A stored token is always one clean path segment of the outgoing URL.
//! - **Tokens are shown masked** (their first 8 characters) in `Debug`, `Display` and every log
//!   line.
//! - **A token is never keyed by a raw cookie**: the session is loaded from its store first, and
//!   a forged or expired cookie gets a fresh session.
//! - **The product ID** in the outgoing URL is one you configured; `sovReqProductId` only
//!   chooses among them. A capture keeps the ID itself, so a deploy that reorders or removes
//!   products books each stored token for the product its landing chose.
//!
//! # Features
//!
//! | Feature | Default | What it brings |
//! |---|---|---|
//! | `axum` | yes | [`SovendusConversion`] as an axum extractor. Without it the layer works in any tower or hyper app, and [`SovendusConversion::from_extensions`] builds the conversion. |
//! | `rustls` | yes | HTTPS to Sovendus with rustls on aws-lc-rs, as reqwest's `rustls`. |
//! | `rustls-ring` | | HTTPS with rustls on ring: no aws-lc-sys, and its C build, to build. |
//! | `native-tls` | | HTTPS with the platform's TLS library (OpenSSL on Linux, `libssl-dev` to build). |
//! | `sqlite`, `postgres` | | `SqlTokenStore` on that database (sqlx 0.8). |
//! | `redis` | | `RedisTokenStore` (fred 10). |
//! | `sandbox` | | [`sandbox::Sandbox`], a fake Sovendus API on 127.0.0.1, for demos and tests. |
//! | `conformance` | | `store::conformance`, the rules every store keeps, for the tests of a store of your own. |
//! | `console` | | `console`, the staff's console: an axum router to nest behind the shop's own auth. |
//!
//! Each builds on its own and with the others. A shop that already builds OpenSSL or ring, and
//! wants no aws-lc, turns off the default TLS and keeps the extractor:
//!
//! ```toml
//! [dependencies]
//! tower-sovendus = { version = "0.1", default-features = false, features = ["axum", "native-tls"] }
//! # or: features = ["axum", "rustls-ring"]
//! ```
//!
//! A build with none of the three TLS features speaks plain HTTP only, and
//! [`build`](SovendusConfigBuilder::build) refuses an `https` endpoint (the default one
//! included) with a [`ConfigError`] that names the features.
//!
//! # Versions
//!
//! - MSRV: Rust 1.85 (edition 2024). axum 0.8, tower 0.5, http 1, reqwest 0.13, moka 0.12,
//!   metrics 0.24.
//! - tower-sessions 0.14, not 0.15: the published Redis, SQL and moka session stores still
//!   depend on tower-sessions-core 0.14.
//! - Feature `redis`: fred 10, the version tower-sessions-redis-store 0.16 uses. Features
//!   `sqlite`, `postgres`: sqlx 0.8, the version tower-sessions-sqlx-store 0.15 uses.
//!
//! # Performance
//!
//! A request without a token costs the layer a scan of the query and one allocation (its handle
//! for the extractor), about 0.1 µs (1.04× tower's `Identity` in process); under load, the demo
//! shop with the layer serves 0.96× the requests of the shop without it. After an outage, one
//! instance drains its owed conversions at about 2,000 a second on SQLite, 1,700 on Postgres
//! and 4,300 on Redis, on two cores that also run the database and the sandbox. The default TLS
//! (rustls on aws-lc-rs) makes a shop's clean build about 2.6× as long; `native-tls` or
//! `rustls-ring` about 1.5× to 1.6×. The repository's `BENCHMARKS.md` has every figure with its
//! target and its method.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
pub mod config;
#[cfg(feature = "console")]
#[cfg_attr(docsrs, doc(cfg(feature = "console")))]
pub mod console;
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
    delivery::{Delivery, DeliveryHealth, DeliveryReport, Outcome, Recorded},
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
