//! [`SovendusLayer`]: watches every request for the token and captures it on a landing.
//!
//! Put it *inside* tower-sessions' `SessionManagerLayer`: after it in a `ServiceBuilder`, as
//! below, or, in axum, `.layer(SovendusLayer)` first, then `.layer(SessionManagerLayer)`. One
//! `ServiceBuilder` in one `layer` call is cheaper in axum, which wraps every route again for
//! each `layer` call.
//!
//! A request without the parameter passes straight through: a scan of the query, no session
//! load, no store access; its one allocation is the layer's handle in the extensions. A landing's valid token is stored against the
//! visitor's session before the shop's handler runs, so the handler already sees it. Every
//! request carries the layer's handle in its extensions, where
//! [`SovendusConversion`](crate::SovendusConversion) finds it, whatever middleware runs the
//! rest of the request.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower::ServiceBuilder;
//! use tower_sessions::{MemoryStore, SessionManagerLayer, cookie::SameSite};
//! use tower_sovendus::{SovendusConfig, SovendusLayer};
//!
//! # fn main() -> Result<(), tower_sovendus::ConfigError> {
//! let config = SovendusConfig::new("9bc72425-902c-3abf-9db8-8b186d7cb160", "XXXX-XXXXX")?;
//! let app: Router = Router::new().route("/", get(|| async { "welcome" })).layer(
//!     ServiceBuilder::new()
//!         .layer(SessionManagerLayer::new(MemoryStore::default()).with_same_site(SameSite::Lax))
//!         .layer(SovendusLayer::new(config)),
//! );
//! # Ok(()) }
//! ```

mod capture;
mod future;
#[allow(clippy::module_inception, reason = "tower-http's layout: layer.rs, service.rs, future.rs")]
mod layer;
mod service;
mod shared;

pub use self::{future::ResponseFuture, layer::SovendusLayer, service::SovendusService};
