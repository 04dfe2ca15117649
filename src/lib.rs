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
//! owed, parked, dead, voided), and [`DeliverySchedule`] when it is tried again. The first
//! delivery of a conversion gets the quick [retries](RetryPolicy); each later one is one call.
//!
//! **Parked conversions** are tried on the schedule like owed ones, and past its end every
//! `max_wait` (an hour by default), at every start of an instance and on
//! [`Delivery::retry_parked`]. Those calls fail, logged, until the shop's configuration is
//! fixed; the first after the fix delivers the conversion. Being parked never ends by age: a
//! call that meets a 5xx, a 429 or no answer makes the conversion owed again while the
//! schedule runs (and an owed one dies at the schedule's end), and leaves it parked past it.
//!
//! **Workers and leases.** Each instance runs [`workers`](SovendusConfigBuilder::workers)
//! workers that claim due conversions from the store under a [lease](DeliverySchedule::lease),
//! renewed beside the call, so a slow store never holds an answer back. Leases are judged by
//! the store's clock (see [`store`]), so instances whose wall clocks disagree never take each
//! other's leases. A delivery starts a call only while its last renewal is fresh, and renews
//! before every quick retry: a [void](Delivery::void), or another's claim, takes effect before
//! the next call. [`send_in_background`](SovendusConversion::send_in_background) and `owe_in`
//! leave the first delivery to the workers, so the order page never waits on Sovendus.
//!
//! **A silent holder keeps its conversion.** A delivery whose lease ran out unsettled may still
//! have its call out, or a 200 heard and not yet written. Nobody sends that conversion again
//! for the [quarantine](DeliverySchedule::quarantine) after its lease, and the holder's late
//! settlement ends it at once. A 200 is recorded whatever the lease: if the store cannot record
//! it, the instance tries again, at most a second apart, as long as it lives, and never sends
//! that conversion itself meanwhile; a graceful stop waits for every call of the instance, the
//! order handlers' `send()` included. So a conversion is sent a second time only when its first
//! caller is gone. Sovendus' API has no idempotency key to tell a repeat. The windows that
//! remain, with the default schedule:
//!
//! | What happens | When the conversion may be sent a second time |
//! |---|---|
//! | an instance is killed (or crashes) with a call at Sovendus, or after a 200 and before the store records it | 5¼ minutes after its last renewal (lease and quarantine), by another instance or its restart |
//! | the store is out of reach of the holder (an outage, a failover, a partition), or the holder is paused (SIGSTOP, a frozen VM), for longer than the quarantine while its call is out or its 200 unrecorded | once the lease and quarantine ran out, by an instance that reaches the store |
//! | the store's clock steps forward by more than `quarantine + lease / 6 - request_timeout` (4½ minutes by default) | at once, for the calls out during the step |
//! | a call times out, or its connection breaks before a status line: Sovendus may have booked it | at its next attempt on the schedule, as Sovendus' guide asks of an unanswered call |
//! | [`Delivery::retry_dead`] of a conversion whose last call went unanswered | at once, on purpose |
//! | [`shutdown`](Delivery::shutdown) returns with [`unrecorded`](DeliveryReport::unrecorded) not empty (a 200 the store could not record by the deadline) | by the next delivery; each is logged at ERROR |
//!
//! A step of the store's clock back, of any size, or forward up to that bound, sends nothing
//! twice; an outage of every instance shorter than the quarantine neither. The repository's
//! tests run these faults on every store (`tests/integration/silent_holder.rs`), and a seeded
//! fault campaign against three instances on Postgres and on Redis (its figures are in
//! `CONTRIBUTING.md`).
//!
//! **Shutdown.** Await [`Delivery::shutdown`] after the server stopped. It takes at most its
//! deadline, plus the request timeout (a call already sent is never cut: Sovendus may have
//! booked it), plus the store's timeout for the last settlements: with the deadline below
//! (10 s) and the defaults (30 s, 5 s for SQL), give the process 50 s:
//! `terminationGracePeriodSeconds: 50` on Kubernetes (its default is 30) or `TimeoutStopSec=50`
//! for systemd.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use tower::ServiceBuilder;
//! use tower_sessions::{MemoryStore, SessionManagerLayer, cookie::SameSite};
//! use tower_sovendus::{SovendusConfig, SovendusLayer};
//!
//! async fn serve() -> Result<(), Box<dyn std::error::Error>> {
//!     let sovendus = SovendusLayer::new(SovendusConfig::from_env()?);
//!     let delivery = sovendus.delivery(); // before the router takes the layer
//!     let app = Router::new().route("/", get(|| async { "welcome" })).layer(
//!         ServiceBuilder::new()
//!             .layer(SessionManagerLayer::new(MemoryStore::default()).with_same_site(SameSite::Lax))
//!             .layer(sovendus),
//!     );
//!     let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//!     axum::serve(listener, app).with_graceful_shutdown(stop_signal()).await?;
//!     let report = delivery.shutdown(Duration::from_secs(10)).await;
//!     tracing::info!(sent = report.sent(), cut_off = report.left().len(), "Sovendus delivery stopped");
//!     Ok(())
//! }
//!
//! /// Ctrl-C, or SIGTERM: systemd, Docker and Kubernetes stop a service with it.
//! async fn stop_signal() {
//!     use tokio::signal::{ctrl_c, unix::{SignalKind, signal}};
//!     match signal(SignalKind::terminate()) {
//!         Ok(mut terminate) => tokio::select! {
//!             _ = ctrl_c() => {}
//!             _ = terminate.recv() => {}
//!         },
//!         Err(_) => ctrl_c().await.unwrap_or(()),
//!     }
//! }
//! ```
//!
//! **Inspection.** [`Delivery::counts`], [`list`](Delivery::list) (by
//! [state](store::ConversionState)), [`find`](Delivery::find) (by order),
//! [`retry_parked`](Delivery::retry_parked) (after fixing the configuration) and
//! [`retry_dead`](Delivery::retry_dead) (after a long outage of Sovendus: the last unanswered
//! call may have been booked, so revive on purpose, one by one).
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
//! The [`store`] module tells what every store keeps and how to write one; each store's type,
//! the rest. In short:
//!
//! **The embedded store** ([`MokaTokenStore`]) keeps captures in a moka cache and owed
//! conversions in a map that never evicts (at most
//! [`queue_capacity`](SovendusConfigBuilder::queue_capacity) owed or parked; beyond it an
//! order answers [`SovendusError::QueueFull`] and the token stays with the visitor). It loses
//! everything on a restart: for tests, and single-instance shops that accept it.
//!
//! **SQL.** `SqlTokenStore` runs on sqlx 0.8, on the same pool as tower-sessions-sqlx-store
//! 0.15, so sessions, captures and owed conversions share one database. Its migrations are
//! embedded, and safe when several instances start at once. They make four tables:
//! `sovendus_captures`, `sovendus_conversions` (in state `owed`, `parked`, `dead`, `delivered`
//! or `voided`), `sovendus_schema` (the migrations applied) and `sovendus_database`, the
//! database's identity, which `migrate` gives it: `owe_in` checks the order's transaction
//! against it, so a transaction on another database is refused
//! ([`SovendusError::Unjoinable`]), never written elsewhere. On Postgres, claims use
//! `FOR UPDATE SKIP LOCKED`.
//!
//! ```toml
//! [dependencies]
//! tower-sovendus = { version = "0.1", features = ["postgres"] } # or "sqlite"
//! tower-sessions-sqlx-store = { version = "0.15", features = ["postgres"] }
//! ```
//!
//! ```no_run
//! use tower_sessions::{SessionManagerLayer, cookie::SameSite};
//! use tower_sessions_sqlx_store::PostgresStore;
//! use tower_sovendus::{SovendusConfig, SovendusLayer, store::{SqlTokenStore, sqlx::PgPool}};
//!
//! async fn layers() -> Result<(SovendusLayer, SessionManagerLayer<PostgresStore>), Box<dyn std::error::Error>> {
//!     let pool = PgPool::connect("postgres://shop@127.0.0.1/shop").await?;
//!     let (tokens, sessions) = (SqlTokenStore::postgres(pool.clone()), PostgresStore::new(pool));
//!     tokens.migrate().await?;
//!     sessions.migrate().await?;
//!     let sovendus = SovendusLayer::with_store(SovendusConfig::from_env()?, tokens);
//!     Ok((sovendus, SessionManagerLayer::new(sessions).with_same_site(SameSite::Lax)))
//! }
//! ```
//!
//! **Redis.** `RedisTokenStore` runs on fred 10, the version tower-sessions-redis-store 0.16
//! uses (re-exported as `store::fred`), so one pool serves sessions and tokens. Every key of a
//! store starts with one hash tag, `{sovendus}:` by default, so it works on a Redis Cluster; each
//! operation that reads and writes is one Lua script. Run Redis with `noeviction` or a
//! `volatile-*` policy: owed conversions have no expiry. The store reads the policy at its first
//! operation and refuses every operation under an `allkeys-*` one (`allow_evicting_policy()`
//! lets it go on, with an ERROR logged). Run it with `appendonly yes`: a conversion Redis
//! loses is never delivered. `examples/cluster.rs` is a runnable shop on Redis.
//!
//! **When the store is down**, a landing still answers (the capture is lost, logged and
//! counted), and an order answers a retryable [`SovendusError::Store`] (or
//! [`Outcome::Unknown`], for a write cut off midway) with the token still the visitor's. A
//! settlement due after a 200 is retried for as long as the process lives, until the store
//! answers. Records a store cannot read are refused, logged without their content, counted,
//! and never sent.
//!
//! Settled conversions (delivered, dead and voided) are kept for
//! [`keep_settled_for`](DeliverySchedule::keep_settled_for), 30 days and never less than the
//! token's TTL, for inspection and so that a token that lands again converts no second time;
//! then the workers purge them. A take leaves the visitor's capture in place, spent: their next
//! order answers [`Outcome::AlreadyConverted`] until the capture expires.
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
//! instance drains its owed conversions at about 5,600 a second on SQLite, 4,700 on Postgres
//! and 9,000 on Redis, on two cores that also run the database and the sandbox. The default TLS
//! (rustls on aws-lc-rs) makes a shop's clean build about 2.6× as long; `native-tls` or
//! `rustls-ring` about 1.5× to 1.6×. The repository's `BENCHMARKS.md` has every figure with its
//! target and its method.
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
