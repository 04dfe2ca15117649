//! [`SovendusLayer`] and [`SovendusService`]: capture the token on the way in.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
};

use http::Request;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tower_sessions::{Expiry, Session, cookie::time};
use tracing::Instrument;

use crate::{
    Delivery, SovReqToken, SovendusClient, SovendusConfig,
    compact_store::CompactTokenStore,
    metrics,
    query::{self, Param},
    state::{self, SovendusState},
    token::Masked,
    token_store::{PendingToken, StoreError, TokenStore},
};

/// Watches every request for the `sovReqToken` parameter and stores a valid token against the
/// visitor's session.
///
/// Put it *inside* tower-sessions' `SessionManagerLayer`: after it in a `ServiceBuilder`, as
/// below, or, in axum, `.layer(SovendusLayer)` first, then `.layer(SessionManagerLayer)`. One
/// `ServiceBuilder` in one `layer` call is cheaper in axum, which wraps every route again for
/// each `layer` call. Requests without the parameter pass straight through: no session load,
/// no store access.
///
/// ```
/// use axum::{Router, routing::get};
/// use tower::ServiceBuilder;
/// use tower_sessions::{MemoryStore, SessionManagerLayer, cookie::SameSite};
/// use tower_sovendus::{SovendusConfig, SovendusLayer};
///
/// # fn main() -> Result<(), tower_sovendus::ConfigError> {
/// let config = SovendusConfig::new("9bc72425-902c-3abf-9db8-8b186d7cb160", "XXXX-XXXXX")?;
/// let app: Router = Router::new().route("/", get(|| async { "welcome" })).layer(
///     ServiceBuilder::new()
///         .layer(SessionManagerLayer::new(MemoryStore::default()).with_same_site(SameSite::Lax))
///         .layer(SovendusLayer::new(config)),
/// );
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SovendusLayer {
    state: SovendusState,
}

impl SovendusLayer {
    /// A layer with its own token cache and HTTP client.
    ///
    /// ```
    /// use tower_sovendus::{SovendusConfig, SovendusLayer};
    ///
    /// let layer = SovendusLayer::new(SovendusConfig::new("product-a", "XXXX-XXXXX")?);
    /// assert_eq!(layer.config().product_ids()[0].as_str(), "product-a");
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    ///
    /// # Panics
    ///
    /// Like `reqwest::Client::new`, if the TLS backend cannot be initialised.
    pub fn new(config: SovendusConfig) -> Self {
        let store = CompactTokenStore::new(config.max_tokens());
        Self::with_store(config, store)
    }

    /// A layer keeping its tokens in `store`: a shared one, such as
    /// [`RedisTokenStore`](crate::RedisTokenStore), lets several instances of the shop serve
    /// one visitor (see the README, "Running several instances"). Requests without a token
    /// never touch it. The config's `max_tokens` sizes only the embedded default store.
    ///
    /// ```
    /// use tower_sovendus::{MokaTokenStore, SovendusConfig, SovendusLayer};
    ///
    /// let config = SovendusConfig::new("product-a", "XXXX-XXXXX")?;
    /// let layer = SovendusLayer::with_store(config, MokaTokenStore::new(10_000));
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    ///
    /// # Panics
    ///
    /// Like [`new`](Self::new), if the TLS backend cannot be initialised.
    pub fn with_store(config: SovendusConfig, store: impl TokenStore) -> Self {
        Self { state: SovendusState::new(config, Arc::new(store)) }
    }

    /// The client this layer's conversions are sent with, e.g. to send a token stored with an
    /// order later.
    ///
    /// ```
    /// # use tower_sovendus::{SovendusConfig, SovendusLayer};
    /// let layer = SovendusLayer::new(SovendusConfig::new("product-a", "XXXX-XXXXX")?);
    /// let client = layer.client().clone();
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn client(&self) -> &SovendusClient {
        self.state.client()
    }

    /// The handle to this layer's background delivery, to await
    /// [`shutdown`](crate::Delivery::shutdown) when the app stops.
    ///
    /// ```
    /// # use tower_sovendus::{SovendusConfig, SovendusLayer};
    /// let layer = SovendusLayer::new(SovendusConfig::new("product-a", "XXXX-XXXXX")?);
    /// let delivery = layer.delivery();
    /// assert_eq!(delivery.queued(), 0);
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn delivery(&self) -> Delivery {
        Delivery::new(self.state.queue.clone())
    }

    /// The handle the extractor uses.
    pub(crate) fn state(&self) -> SovendusState {
        self.state.clone()
    }

    /// The configuration this layer runs with.
    ///
    /// ```
    /// # use tower_sovendus::{SovendusConfig, SovendusLayer};
    /// let layer = SovendusLayer::new(SovendusConfig::new("product-a", "XXXX-XXXXX")?);
    /// assert_eq!(layer.config().token_parameter(), "sovReqToken");
    /// # Ok::<(), tower_sovendus::ConfigError>(())
    /// ```
    pub fn config(&self) -> &SovendusConfig {
        &self.state.config
    }
}

impl std::fmt::Debug for SovendusLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SovendusLayer").field("config", &self.state.config).finish()
    }
}

impl<S> Layer<S> for SovendusLayer {
    type Service = SovendusService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SovendusService { inner, state: self.state.clone() }
    }
}

/// The service made by [`SovendusLayer`].
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use tower::{ServiceExt, service_fn};
/// use tower_layer::Layer;
/// use tower_sovendus::{SovendusConfig, SovendusLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = SovendusLayer::new(SovendusConfig::new("product-a", "XXXX-XXXXX")?);
/// let service = layer.layer(service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new("ok")) }));
/// let response = service.oneshot(Request::new(())).await?;
/// assert_eq!(*response.body(), "ok");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SovendusService<S> {
    inner: S,
    state: SovendusState,
}

impl<S> std::fmt::Debug for SovendusService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SovendusService").finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for SovendusService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    // Not `#[inline]`, unlike the response future's poll: inlined into the session layer's
    // call, it made that call copy more, 71 instructions per request in the demo shop
    // (callgrind under wrk, `benches/wrk/shop.lua`).
    fn call(&mut self, req: Request<B>) -> Self::Future {
        if query::may_contain(req.uri().query(), self.state.config.token_parameter()) {
            return self.call_with_query(req);
        }
        ResponseFuture { inner: self.inner.call(req), capture: None, state: self.state.clone() }
    }
}

impl<S> SovendusService<S> {
    /// A request whose query may hold a token: the capture of a valid one runs before the
    /// inner future is first polled. Kept out of line: inlined into `call`, it cost every
    /// request without a token 76 instructions more (`benches/instructions.rs`).
    #[inline(never)]
    fn call_with_query<B>(&mut self, req: Request<B>) -> ResponseFuture<S::Future>
    where
        S: Service<Request<B>>,
    {
        let (req, landing) = landing(&self.state, req);
        let capture = landing.and_then(|landing| {
            let Some(session) = req.extensions().get::<Session>().cloned() else {
                self.state.log_missing_session();
                return None;
            };
            let state = self.state.clone();
            Some(Box::pin(async move { capture(&state, &session, landing).await }) as BoxFuture<()>)
        });
        ResponseFuture { inner: self.inner.call(req), capture, state: self.state.clone() }
    }
}

/// A valid token found on a request, with the product it chose.
struct Landing {
    token: SovReqToken,
    product: u8,
}

/// Reads the token and product from the query and applies the capture filter. Refusals are
/// logged (masked) and the request goes on untouched.
fn landing<B>(state: &SovendusState, req: Request<B>) -> (Request<B>, Option<Landing>) {
    let config = &state.config;
    let query = req.uri().query().unwrap_or_default();
    let parameter = config.token_parameter();
    let token = match query::find(query, parameter) {
        Param::Absent => return (req, None),
        Param::Once(value) => match SovReqToken::new(&value) {
            Ok(token) => token,
            Err(reason) => {
                tracing::warn!(%parameter, value = %Masked(&value), %reason, "refused Sovendus token");
                metrics::refused("invalid");
                return (req, None);
            }
        },
        Param::Repeated => {
            tracing::warn!(%parameter, "refused Sovendus token: the parameter appears more than once");
            metrics::refused("repeated");
            return (req, None);
        }
        Param::NotUtf8 => {
            tracing::warn!(%parameter, "refused Sovendus token: not UTF-8 once decoded");
            metrics::refused("not_utf8");
            return (req, None);
        }
    };
    let product = match query::find(query, config.product_parameter()) {
        Param::Once(value) => state.client().product_index(&value).unwrap_or_else(|| {
            tracing::debug!(value = %Masked(&value), "ignored unknown Sovendus product ID");
            0
        }),
        _ => 0,
    };
    let Some(filter) = &config.capture_filter else {
        return (req, Some(Landing { token, product }));
    };
    let (parts, body) = req.into_parts();
    let allowed = filter(&parts);
    if !allowed {
        tracing::debug!(token = %token, "capture filter declined the Sovendus token");
        metrics::refused("capture_filter");
    }
    (Request::from_parts(parts, body), allowed.then_some(Landing { token, product }))
}

/// Stores the token against the session; a failure is logged and the page served anyway.
async fn capture(state: &SovendusState, session: &Session, landing: Landing) {
    let span = tracing::info_span!("sovendus.capture", token = %landing.token);
    async {
        match store(state, session, landing).await {
            Ok(true) => {
                tracing::info!("captured Sovendus token");
                ::metrics::counter!(metrics::CAPTURED).increment(1);
            }
            Ok(false) => tracing::info!("kept the earlier Sovendus token (first-click)"),
            Err(error) => {
                tracing::error!(%error, "lost a Sovendus token");
                metrics::refused(error.reason());
            }
        }
    }
    .instrument(span)
    .await
}

/// Why a valid token could not be stored.
#[derive(Debug, thiserror::Error)]
enum CaptureError {
    #[error("the session store failed: {0}")]
    Session(#[from] tower_sessions::session::Error),
    #[error(transparent)]
    TokenStore(#[from] StoreError),
}

impl CaptureError {
    /// The `reason` label of the refusal counter.
    fn reason(&self) -> &'static str {
        match self {
            Self::Session(_) => "session_store",
            Self::TokenStore(_) => "token_store",
        }
    }
}

async fn store(state: &SovendusState, session: &Session, landing: Landing) -> Result<bool, CaptureError> {
    // Loading the key loads the record: an unknown or forged cookie ID is dropped here, and the
    // visitor gets a new session instead.
    let (key, new_key) = match state::token_key(session).await? {
        Some(key) => (key, false),
        None => (state::new_token_key(session).await?, true),
    };
    let ttl = state.config.token_ttl();
    if state.config.extends_session_expiry() {
        extend_expiry(session, ttl, &state.browser_session_age);
    }
    // A new key (always the case for a brand-new visitor) is saved at once: the visitor gets
    // a session ID before the handler runs, and the key is durable even if the page fails.
    // Otherwise the session layer saves any change at the end of the request, as usual.
    if new_key {
        if let Err(error) = session.save().await {
            // Leave the session as the shop had it: an empty new session is then not saved
            // again by the session layer, so a store outage does not turn the page into a 500.
            session.remove_value(state::SESSION_KEY).await.ok();
            return Err(error.into());
        }
    }
    let pending = PendingToken { token: landing.token, product: landing.product };
    Ok(state.store().insert(key, pending, ttl, state.config.attribution()).await?)
}

/// Makes the session live at least `ttl` past now, and beyond the browser's closing; never
/// shortens it.
///
/// Reads the clock only for an expiry at a fixed date. A session ending with the browser lives
/// in its store for a fixed time (two weeks in tower-sessions 0.14, not public), read once, off
/// the first such session, into `browser_session_age`.
fn extend_expiry(
    session: &Session,
    ttl: std::time::Duration,
    browser_session_age: &OnceLock<time::Duration>,
) {
    let Ok(ttl) = time::Duration::try_from(ttl) else { return };
    let (ends_with_browser, current) = match session.expiry() {
        Some(Expiry::OnInactivity(age)) => (false, age),
        Some(Expiry::AtDateTime(_)) => (false, session.expiry_age()),
        None | Some(Expiry::OnSessionEnd) => {
            (true, *browser_session_age.get_or_init(|| session.expiry_age()))
        }
    };
    if ends_with_browser || current < ttl {
        session.set_expiry(Some(Expiry::OnInactivity(ttl.max(current))));
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// The response future of [`SovendusService`]: the inner service's future, polled with the
    /// layer's handle set for the thread (where
    /// [`SovendusConversion`](crate::SovendusConversion) finds it). For the few requests with a
    /// token, the capture runs first: the inner future is not polled before the token is
    /// stored.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http::{Request, Response};
    /// use tower::{Service, ServiceExt, service_fn};
    /// use tower_layer::Layer;
    /// use tower_sovendus::{ResponseFuture, SovendusConfig, SovendusLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let layer = SovendusLayer::new(SovendusConfig::new("product-a", "XXXX-XXXXX")?);
    /// let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new("ok")) });
    /// let mut service = layer.layer(inner);
    /// let future: ResponseFuture<_> = service.ready().await?.call(Request::new(()));
    /// assert_eq!(*future.await?.body(), "ok");
    /// # Ok(()) }
    /// ```
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        capture: Option<BoxFuture<()>>,
        state: SovendusState,
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    // Inlined into the session layer's future: together with the call, this saved the demo
    // shop 50 instructions per request; the call alone is better kept out of line.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(capture) = this.capture {
            std::task::ready!(capture.as_mut().poll(cx));
            *this.capture = None;
        }
        let inner = this.inner;
        state::CURRENT.set(this.state, || inner.poll(cx))
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration as StdDuration};

    use tower_sessions::{
        Expiry, MemoryStore, Session,
        cookie::time::{Duration, OffsetDateTime},
    };

    use super::{OnceLock, extend_expiry};

    const DAY: Duration = Duration::days(1);

    /// A session as the session layer hands it over, with the shop's `expiry`.
    fn session(expiry: Option<Expiry>) -> Session {
        Session::new(None, Arc::new(MemoryStore::default()), expiry)
    }

    /// The expiry `extend_expiry` leaves with a token TTL of `ttl_days`.
    fn extended(expiry: Option<Expiry>, ttl_days: u64) -> Option<Expiry> {
        let session = session(expiry);
        extend_expiry(&session, StdDuration::from_secs(ttl_days * 86_400), &OnceLock::new());
        session.expiry()
    }

    fn on_inactivity_days(expiry: Option<Expiry>) -> f64 {
        match expiry {
            Some(Expiry::OnInactivity(age)) => age / DAY,
            other => panic!("expected an expiry on inactivity, got {other:?}"),
        }
    }

    #[test]
    fn a_session_ending_with_the_browser_lives_for_the_ttl() {
        for expiry in [None, Some(Expiry::OnSessionEnd)] {
            assert_eq!(extended(expiry, 30), Some(Expiry::OnInactivity(30 * DAY)), "{expiry:?}");
        }
    }

    #[test]
    fn a_short_ttl_does_not_cut_the_stores_own_life_of_a_browser_session() {
        // tower-sessions keeps a browser session two weeks in its store.
        let days = on_inactivity_days(extended(None, 1));
        assert!((13.99..=14.0).contains(&days), "{days} days");
    }

    #[test]
    fn a_longer_life_is_kept_and_a_shorter_one_extended() {
        assert_eq!(extended(Some(Expiry::OnInactivity(60 * DAY)), 30), Some(Expiry::OnInactivity(60 * DAY)));
        assert_eq!(extended(Some(Expiry::OnInactivity(DAY)), 30), Some(Expiry::OnInactivity(30 * DAY)));

        let far = Some(Expiry::AtDateTime(OffsetDateTime::now_utc() + 90 * DAY));
        assert_eq!(extended(far, 30), far);
        let near = Some(Expiry::AtDateTime(OffsetDateTime::now_utc() + DAY));
        assert_eq!(extended(near, 30), Some(Expiry::OnInactivity(30 * DAY)));
    }

    #[test]
    fn the_browser_session_life_is_read_once_and_reused() {
        let age = OnceLock::new();
        extend_expiry(&session(None), StdDuration::from_secs(86_400), &age);
        let read = *age.get().expect("read off the first browser session");
        assert!((13.99..=14.0).contains(&(read / DAY)), "{read}");

        let later = session(Some(Expiry::OnSessionEnd));
        extend_expiry(&later, StdDuration::from_secs(86_400), &age);
        assert_eq!(later.expiry(), Some(Expiry::OnInactivity(read)), "the cached life, not a new clock read");
    }
}
