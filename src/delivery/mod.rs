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
//! Being parked never ends by age: a call that meets a 5xx, a 429 or no answer makes a parked
//! conversion owed again while the schedule runs (and an owed one dies at the schedule's end),
//! and leaves it parked past it.
//!
//! The workers of every instance sharing the store claim what is due, under a
//! [lease](crate::DeliverySchedule::lease) renewed beside the call, so each conversion is
//! delivered by one at a time, a slow store never holds an answer back, and a crashed
//! instance's conversions are due again once their lease runs out. Leases are judged by the
//! store's clock, so instances whose wall clocks disagree never take each other's leases. A
//! delivery starts a call only while its last renewal is fresh, and renews before every quick
//! retry: a [void](Delivery::void), or another's claim, takes effect before the next call. On
//! start, each instance makes the parked conversions due and claims what is due at once.
//!
//! # Exactly once
//!
//! **A silent holder keeps its conversion.** A delivery whose lease ran out unsettled may still
//! have its call out, or a 200 heard and not yet written. Nobody sends that conversion again
//! for the [quarantine](crate::DeliverySchedule::quarantine) after its lease, and the holder's late
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
//! # Shutdown
//!
//! Await [`Delivery::shutdown`] after the server stopped. It takes at most its
//! deadline, plus the request timeout (a call already sent is never cut: Sovendus may have
//! booked it), plus the store's timeout for the last settlements: with the deadline below
//! (10 s) and the defaults (30 s, 5 s for SQL), give the process 50 s:
//! `terminationGracePeriodSeconds: 50` on Kubernetes (its default is 30) or `TimeoutStopSec=50`
//! for systemd.
//!
//! The handle also counts, lists, finds and retries the conversions, for the shop's staff:
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use tower::ServiceBuilder;
//! use tower_sessions::{MemoryStore, SessionManagerLayer, cookie::SameSite};
//! use tower_sovendus::{SovendusConfig, SovendusLayer, store::{ConversionState, ListQuery}};
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
//!     for parked in delivery.list(&ListQuery::new(ConversionState::Parked)).await? {
//!         tracing::warn!(%parked, "waiting for the configuration to be fixed");
//!     }
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

mod claimed;
mod clock;
mod health;
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
    health::DeliveryHealth,
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
