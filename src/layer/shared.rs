//! [`Shared`]: what a layer and every service it makes share, behind one `Arc`.

use super::capture::Capturer;
use crate::delivery::Delivery;

/// A layer's capture of tokens and its delivery, the handle each request carries to the
/// extractor. One `Arc` around both: a service clone (axum clones one per request) touches one
/// count.
pub(super) struct Shared {
    pub(super) capturer: Capturer,
    pub(super) delivery: Delivery,
}
