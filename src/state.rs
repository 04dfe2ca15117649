//! The state shared by the layer and the extractor, and the session entry linking them.

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicBool, Ordering},
};

use tower_sessions::{Session, cookie::time};

use crate::{
    SovendusClient, SovendusConfig,
    delivery::BackgroundQueue,
    sender::ConversionSender,
    token_store::{TokenKey, TokenStore},
};

/// The session entry holding the visitor's [`TokenKey`].
pub(crate) const SESSION_KEY: &str = "tower_sovendus.key";

/// One per layer. While the layer's response future is polled, it is the thread's
/// [`CURRENT`] handle, for the extractor.
#[derive(Clone)]
pub(crate) struct SovendusState(Arc<Inner>);

scoped_tls::scoped_thread_local! {
    /// The handle of the `SovendusLayer` whose response future is being polled: set around each
    /// poll of the inner service's future, so that the handler finds it without an allocation
    /// per request (a request extension would box it). A scoped thread-local holds a pointer to
    /// the layer's own handle: setting it is two stores, with no reference count touched.
    pub(crate) static CURRENT: SovendusState
}

/// The handle set by the `SovendusLayer` whose response future is being polled, if any.
pub(crate) fn current() -> Option<SovendusState> {
    CURRENT.is_set().then(|| CURRENT.with(SovendusState::clone))
}

pub(crate) struct Inner {
    pub(crate) config: SovendusConfig,
    pub(crate) conversions: ConversionSender,
    pub(crate) queue: BackgroundQueue,
    missing_session_logged: AtomicBool,
    /// How long tower-sessions keeps a session that ends with the browser, once the layer has
    /// seen one (see `layer::extend_expiry`).
    pub(crate) browser_session_age: OnceLock<time::Duration>,
}

impl SovendusState {
    pub(crate) fn new(config: SovendusConfig, store: Arc<dyn TokenStore>) -> Self {
        let client = SovendusClient::new(&config);
        let conversions = ConversionSender::new(&config, store, client);
        let queue = BackgroundQueue::new(&config, conversions.clone());
        Self(Arc::new(Inner {
            conversions,
            queue,
            config,
            missing_session_logged: AtomicBool::new(false),
            browser_session_age: OnceLock::new(),
        }))
    }

    /// The token store, shared with the conversion sender.
    pub(crate) fn store(&self) -> &dyn TokenStore {
        self.0.conversions.store()
    }

    /// The HTTP client, shared with the conversion sender.
    pub(crate) fn client(&self) -> &SovendusClient {
        self.0.conversions.client()
    }

    /// Logs, once per layer, that `SessionManagerLayer` is missing.
    pub(crate) fn log_missing_session(&self) {
        if !self.0.missing_session_logged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "tower-sovendus cannot capture tokens: no tower_sessions::Session in the request; \
                 add SessionManagerLayer outside SovendusLayer (call .layer(SovendusLayer) first, \
                 then .layer(SessionManagerLayer))"
            );
        }
    }
}

impl std::ops::Deref for SovendusState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The visitor's token key. Reading it loads the session record from the store, so the key
/// comes from a session the store knows, never from an unverified cookie.
///
/// Kept as a decimal string: JSON session stores cannot hold a 128-bit number.
pub(crate) async fn token_key(session: &Session) -> Result<Option<TokenKey>, tower_sessions::session::Error> {
    let key = session.get::<String>(SESSION_KEY).await?;
    Ok(key.and_then(|key| key.parse().ok()))
}

/// Gives the session a new random token key and returns it.
pub(crate) async fn new_token_key(session: &Session) -> Result<TokenKey, tower_sessions::session::Error> {
    // tower-sessions' session IDs are 128 random bits: the same strength serves here.
    let key = tower_sessions::session::Id::default().0;
    session.insert(SESSION_KEY, key.to_string()).await?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{Request, Response};
    use tower::{ServiceExt, service_fn};
    use tower_layer::Layer;

    use super::current;
    use crate::{SovendusConfig, SovendusLayer};

    /// The product of the layer whose handle is set now.
    fn current_product() -> Option<String> {
        current().map(|state| state.config.product_ids()[0].as_str().to_owned())
    }

    fn layer(product: &str) -> SovendusLayer {
        SovendusLayer::new(SovendusConfig::new(product, "XXXX-XXXXX").expect("a valid config"))
    }

    #[tokio::test]
    async fn the_handle_is_the_innermost_layers_while_polled_and_restored_after() {
        assert_eq!(current_product(), None);
        let inner = layer("inner").layer(service_fn(|_: Request<()>| async {
            tokio::task::yield_now().await;
            Ok::<_, Infallible>(Response::new(current_product()))
        }));
        let outer = layer("outer").layer(service_fn(move |request: Request<()>| {
            let inner = inner.clone();
            async move {
                let before = current_product();
                let seen_inside = inner.oneshot(request).await?.into_body();
                tokio::task::yield_now().await;
                Ok::<_, Infallible>(Response::new([before, seen_inside, current_product()]))
            }
        }));

        let seen = outer.oneshot(Request::new(())).await.expect("infallible").into_body();

        let [before, inside, after] = seen.map(|product| product.unwrap_or_default());
        assert_eq!([before.as_str(), inside.as_str(), after.as_str()], ["outer", "inner", "outer"]);
        assert_eq!(current_product(), None, "no handle outside the layer's future");
    }
}
