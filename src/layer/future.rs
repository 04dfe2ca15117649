//! [`ResponseFuture`].

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use pin_project_lite::pin_project;

/// A capture in progress, boxed: only landings have one.
pub(super) type Capture = Pin<Box<dyn Future<Output = ()> + Send>>;

pin_project! {
    /// The response future of [`SovendusService`](super::SovendusService): the inner service's
    /// future, after the capture of a landing's token. The inner future is not polled before
    /// the token is stored, so the shop's handler already sees it.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        capture: Option<Capture>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, capture: Option<Capture>) -> Self {
        Self { inner, capture }
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(capture) = this.capture {
            std::task::ready!(capture.as_mut().poll(cx));
            *this.capture = None;
        }
        this.inner.poll(cx)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
