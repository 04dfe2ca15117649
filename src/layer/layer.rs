//! [`SovendusLayer`].

use std::{fmt, sync::Arc};

use tower_layer::Layer;

use super::{capture::Capturer, service::SovendusService, shared::Shared};
use crate::{
    client::SovendusClient,
    config::SovendusConfig,
    delivery::Delivery,
    store::{MokaTokenStore, TokenStore},
};

/// Watches every request for the `sovReqToken` parameter and stores a valid token against the
/// visitor's session; see the [module](super) for where it goes.
#[derive(Clone)]
pub struct SovendusLayer {
    shared: Arc<Shared>,
}

impl SovendusLayer {
    /// A layer keeping its captures and owed conversions in a [`MokaTokenStore`] of the
    /// configured `max_tokens` and `queue_capacity`, with its own HTTP client. Built inside a
    /// Tokio runtime, it starts its delivery workers at once; else with its first request.
    ///
    /// # Panics
    ///
    /// Like `reqwest::Client::new`, if the TLS backend cannot be initialised.
    pub fn new(config: SovendusConfig) -> Self {
        let store = MokaTokenStore::new(config.max_tokens()).with_max_owed(config.queue_capacity());
        Self::with_store(config, store)
    }

    /// A layer keeping its captures and owed conversions in `store`: a durable one survives
    /// restarts, and a shared one lets several instances of the shop serve one visitor and
    /// share the deliveries. Requests without a token never touch it.
    ///
    /// # Panics
    ///
    /// Like [`new`](Self::new), if the TLS backend cannot be initialised.
    pub fn with_store(config: SovendusConfig, store: impl TokenStore) -> Self {
        let store: Arc<dyn TokenStore> = Arc::new(store);
        let capturer = Capturer::new(config.clone(), Arc::clone(&store));
        Self { shared: Arc::new(Shared { capturer, delivery: Delivery::new(config, store) }) }
    }

    /// The client this layer's conversions are sent with, e.g. to send a token stored with an
    /// order later.
    pub fn client(&self) -> &SovendusClient {
        self.shared.delivery.client()
    }

    /// The handle to this layer's delivery, to await [`shutdown`](Delivery::shutdown) when
    /// the app stops.
    pub fn delivery(&self) -> Delivery {
        self.shared.delivery.clone()
    }

    /// The configuration this layer runs with.
    pub fn config(&self) -> &SovendusConfig {
        &self.shared.capturer.config
    }
}

impl fmt::Debug for SovendusLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SovendusLayer").field("config", &self.shared.capturer.config).finish()
    }
}

impl<S> Layer<S> for SovendusLayer {
    type Service = SovendusService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.shared.delivery.start();
        SovendusService::new(inner, Arc::clone(&self.shared))
    }
}
