//! How the layer hands its [`Delivery`] to the extractor: in the request's extensions, so it
//! travels with the request whatever runs the rest of it (tower's `Buffer`, a middleware that
//! spawns `next.run(request)`).
//!
//! The first `SovendusLayer` a process builds (most processes build one) puts a zero-sized
//! [`FirstLayer`] marker there, which costs no allocation, and the extractor finds that
//! layer's delivery through [`FIRST`]. Any later layer puts its [`Handle`] and takes an outer
//! marker out, and the extractor looks for the marker first, so that of nested layers the
//! innermost wins, either way round, as with any extension.

use std::sync::{
    OnceLock,
    atomic::{AtomicBool, Ordering},
};

use http::Extensions;

use crate::delivery::{Delivery, WeakDelivery};

/// The delivery of the first layer built in this process.
static FIRST: OnceLock<WeakDelivery> = OnceLock::new();
/// Whether a layer was built yet.
static BUILT: AtomicBool = AtomicBool::new(false);

/// Says the request went through the first layer built.
#[derive(Clone, Copy)]
struct FirstLayer;

/// The delivery of the layer the request went through, for any layer but the first.
#[derive(Clone)]
struct Handle(Delivery);

/// A layer's way of handing off its delivery, chosen once, when the layer is built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Handoff {
    first: bool,
}

impl Handoff {
    /// The handoff of a newly built layer whose delivery is `delivery`.
    pub(crate) fn new(delivery: &Delivery) -> Self {
        let first = !BUILT.swap(true, Ordering::AcqRel);
        if first {
            // Only the first layer ever gets here, so the cell is empty.
            let _ = FIRST.set(delivery.downgrade());
        }
        Self { first }
    }

    /// Puts the layer's delivery into the request's extensions.
    #[inline]
    pub(crate) fn attach(self, delivery: &Delivery, extensions: &mut Extensions) {
        if self.first {
            // A zero-sized value is boxed without an allocation.
            extensions.insert(FirstLayer);
        } else {
            extensions.insert(Handle(delivery.clone()));
            // An outer first layer's marker gives way to this, the inner layer.
            extensions.remove::<FirstLayer>();
        }
    }
}

/// The delivery of the innermost layer the request went through, if any.
///
/// The marker wins over a handle: only a layer inside the one that left the handle can have
/// put it there, since every later layer takes an outer marker out.
pub(crate) fn delivery(extensions: &Extensions) -> Option<Delivery> {
    if extensions.get::<FirstLayer>().is_some() {
        return FIRST.get()?.upgrade();
    }
    extensions.get::<Handle>().map(|Handle(delivery)| delivery.clone())
}
