//! [`SovendusService`].

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::Request;
use tower_service::Service;
use tower_sessions::Session;

use super::{future::ResponseFuture, shared::Shared};
use crate::{extract::LayerDelivery, query};

/// The service made by [`SovendusLayer`](crate::SovendusLayer).
#[derive(Clone)]
pub struct SovendusService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> SovendusService<S> {
    pub(super) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// A request whose query may hold a token: the capture of a valid one runs before the
    /// inner future is first polled. Out of line, to keep `call` small for every other request.
    #[inline(never)]
    fn call_with_query<B>(&mut self, req: Request<B>) -> ResponseFuture<S::Future>
    where
        S: Service<Request<B>>,
    {
        let capturer = &self.shared.capturer;
        let (req, landing) = capturer.landing(req);
        let capture = landing.and_then(|landing| {
            let Some(session) = req.extensions().get::<Session>().cloned() else {
                capturer.log_missing_session();
                return None;
            };
            let shared = Arc::clone(&self.shared);
            Some(Box::pin(async move { shared.capturer.capture(&session, landing).await }) as _)
        });
        ResponseFuture::new(self.inner.call(req), capture)
    }
}

impl<S> fmt::Debug for SovendusService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(LayerDelivery(self.shared.delivery.clone()));
        if query::may_contain(req.uri().query(), self.shared.capturer.config.token_parameter()) {
            return self.call_with_query(req);
        }
        ResponseFuture::new(self.inner.call(req), None)
    }
}
