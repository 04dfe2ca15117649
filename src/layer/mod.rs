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
//!
//! # Sessions
//!
//! **Use `SameSite::Lax` for the session cookie**, as above. tower-sessions defaults to
//! `Strict`, under which the browser withholds the cookie on the click-through from Sovendus (a
//! cross-site navigation): the shop sees a stranger, and capturing the token starts a new
//! session whose cookie replaces the visitor's own, cart and login with it. `Lax` sends the
//! cookie on top-level navigations, which a landing needs, and still withholds it from
//! cross-site POSTs. Keep the cookie `Secure` in production.
//!
//! **The session must live as long as the token**, since the token is found through it. By
//! default a capture raises the session's expiry to at least the token's TTL
//! ([`extend_session_expiry`](crate::SovendusConfigBuilder::extend_session_expiry)). The
//! session layer's own expiry applies again at the session's next change: with
//! `Expiry::OnInactivity` shorter than the TTL, that change shortens it again. Give the session
//! layer an expiry at least as long as the TTL.
//!
//! **Login is fine.** `session.cycle_id()` keeps the session's data, and the token is found
//! through an entry in the data, not through the session's ID.
//!
//! **Without `SessionManagerLayer`** around it, the layer serves every page as usual, captures
//! nothing, and logs one ERROR at the first landing saying which layer to add; the extractor
//! answers 500
//! ([`MissingSessionLayer`](crate::extract::SovendusConversionRejection::MissingSessionLayer))
//! with a body that says so.

mod capture;
mod future;
#[allow(clippy::module_inception, reason = "tower-http's layout: layer.rs, service.rs, future.rs")]
mod layer;
mod service;
mod shared;

pub use self::{future::ResponseFuture, layer::SovendusLayer, service::SovendusService};
