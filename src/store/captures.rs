//! [`CaptureStore`]: the role of a store that keeps landings' captures until an order takes
//! them.

use std::{sync::Arc, time::SystemTime};

use super::{Capture, NewCapture, StoreError, TokenKey, async_trait};

/// Keeps each visitor's capture (a landing's token and product) under the visitor's
/// [`TokenKey`], for the capture's TTL. The layer [captures](Self::capture) on every landing;
/// the extractor shows what an order [would take](Self::captured).
///
/// Rules (checked by `conformance::captures`):
///
/// - One capture per key: under [`Attribution::FirstClick`](crate::Attribution::FirstClick) a
///   live capture wins, under [`Attribution::LastClick`](crate::Attribution::LastClick) the new
///   one replaces it.
/// - A token that has a conversion is not captured again, and no longer
///   [`captured`](Self::captured): what the shop sees is what an order would take.
/// - A capture lives until `at + ttl` by the caller's clock, kept to the millisecond.
#[async_trait]
pub trait CaptureStore: std::fmt::Debug + Send + Sync + 'static {
    /// Stores a landing's capture for `key`; returns whether it was kept: not when its token was
    /// converted before, nor under first-click when a live capture is there.
    async fn capture(&self, key: TokenKey, capture: NewCapture) -> Result<bool, StoreError>;

    /// The capture for `key`, if it is live at `now` and its token was not converted since
    /// (by another visitor's order, or a re-landing); left in place.
    async fn captured(&self, key: TokenKey, now: SystemTime) -> Result<Option<Capture>, StoreError>;
}

#[async_trait]
impl<S: CaptureStore + ?Sized> CaptureStore for Arc<S> {
    async fn capture(&self, key: TokenKey, capture: NewCapture) -> Result<bool, StoreError> {
        (**self).capture(key, capture).await
    }

    async fn captured(&self, key: TokenKey, now: SystemTime) -> Result<Option<Capture>, StoreError> {
        (**self).captured(key, now).await
    }
}
