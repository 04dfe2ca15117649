//! Delivering conversions until Sovendus answers: [`Delivery`], the handle shared by a layer,
//! its extractor and its delivery workers, and what sending ends in. When they are attempted is
//! the configuration's [`DeliverySchedule`](crate::DeliverySchedule).
//!
//! An order makes its visitor's capture an *owed conversion*, in the store, in one atomic step
//! (see [`store`](crate::store)), inside the order's own transaction on a SQL store
//! (`owe_in`), or after its commit. [`send`](crate::SovendusConversion::send) then delivers it
//! at once, with the quick [retries](crate::RetryPolicy), and returns where it stands (an
//! [`Outcome`]); [`send_in_background`](crate::SovendusConversion::send_in_background) and
//! `owe_in` leave that to the workers. Whatever the first delivery ends in, the answer decides
//! what comes next:
//!
//! | answer | state | next |
//! |---|---|---|
//! | 200 | delivered | nothing: one 200 per token, ever |
//! | 5xx, 429, a timeout, a broken connection | owed | retried on the schedule |
//! | 403, 404, 405, 422 "External product id not found.", any other status | parked | ERROR logged once per cause; retried on the schedule (past its end, every `max_wait`), and at every start; never dies of age |
//! | 422 "Token not found." or "Invalid API parameters." | dead | never retried; kept for inspection |
//! | the shop voids the order first ([`Delivery::void`]) | voided | never sent; kept for inspection |
//!
//! The workers of every instance sharing the store claim what is due, under a lease renewed
//! while they send, so each conversion is delivered by one at a time, and a crashed instance's
//! conversions are due again once their lease runs out. On start, each instance makes the
//! parked conversions due and claims what is due at once. The handle lists and counts the
//! conversions, and retries the parked ones on demand:
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::post};
//! use tower::ServiceBuilder;
//! use tower_sessions::{MemoryStore, SessionManagerLayer, cookie::SameSite};
//! use tower_sovendus::{SovendusConfig, SovendusConversion, SovendusLayer, store::ConversionState};
//!
//! async fn order(conversion: SovendusConversion) -> &'static str {
//!     if let Err(error) = conversion.send_in_background().await {
//!         tracing::warn!(%error, "the token stays with the visitor");
//!     }
//!     "thank you"
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = SovendusLayer::new(SovendusConfig::new("product-a", "XXXX-XXXXX")?);
//! let delivery = layer.delivery();
//! let app: Router = Router::new().route("/order", post(order)).layer(
//!     ServiceBuilder::new()
//!         .layer(SessionManagerLayer::new(MemoryStore::default()).with_same_site(SameSite::Lax))
//!         .layer(layer),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app).with_graceful_shutdown(async { /* SIGTERM, Ctrl-C */ }).await?;
//!
//! let counts = delivery.counts().await?;
//! for parked in delivery.list(ConversionState::Parked, 100).await? {
//!     tracing::warn!(%parked, "waiting for the configuration to be fixed");
//! }
//! let report = delivery.shutdown(Duration::from_secs(10)).await;
//! assert!(report.is_complete() && counts.owed == 0);
//! # Ok(()) }
//! ```

mod claimed;
mod clock;
mod hold;
mod inspection;
mod lifecycle;
mod orders;
mod outcome;
mod report;
mod sender;
mod verdict;
mod workers;

use std::{fmt, sync::Arc};

pub use self::{
    outcome::{Outcome, Recorded},
    report::{DeliveryReport, PendingConversion},
};
use self::{sender::Sender, workers::Workers};
use crate::{client::SovendusClient, config::SovendusConfig, store::TokenStore};

/// The handle to a layer's delivery: its store, client and workers. Clones
/// share them. Take it with [`SovendusLayer::delivery`](crate::SovendusLayer::delivery); see
/// the [module](self) for an example.
#[derive(Clone)]
pub struct Delivery {
    inner: Arc<Inner>,
}

struct Inner {
    sender: Arc<Sender>,
    workers: Arc<Workers>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: the workers' loop ends.
        self.workers.stop.cancel();
    }
}

impl Delivery {
    pub(crate) fn new(config: SovendusConfig, store: Arc<dyn TokenStore>) -> Self {
        if let Some(misfit) =
            store.timeout().and_then(|timeout| config.schedule().misfit_store_timeout(timeout))
        {
            tracing::error!("{misfit}");
        }
        let client = SovendusClient::new(&config);
        let sender = Arc::new(Sender::new(store, client, *config.schedule()));
        let workers = Arc::new(Workers::new(config.workers()));
        let delivery = Self { inner: Arc::new(Inner { sender, workers }) };
        delivery.start();
        delivery
    }

    /// Starts the workers if they have not started and a Tokio runtime is at hand: when the
    /// layer is built, else when it first serves a request's extractor.
    pub(crate) fn start(&self) {
        self.inner.workers.start(&self.inner.sender);
    }

    pub(crate) fn store(&self) -> &dyn TokenStore {
        &*self.inner.sender.store
    }

    pub(crate) fn client(&self) -> &SovendusClient {
        &self.inner.sender.client
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery").field("store", &self.inner.sender.store).finish_non_exhaustive()
    }
}
