//! [`Outcome`]: what an order's conversion ended in, and [`Recorded`]: whether it is recorded.

use crate::{
    client::Receipt,
    error::SovendusError,
    store::{ConversionId, StoreError},
};

/// What recording an order's conversion ended in: the answer of
/// [`send`](crate::SovendusConversion::send),
/// [`send_in_background`](crate::SovendusConversion::send_in_background),
/// `owe_in` and [`Delivery::owe`](crate::Delivery::owe). Their `Err` means nothing was
/// recorded; everything else is here, including an answer the store never gave
/// ([`Unknown`](Self::Unknown)).
///
/// ```
/// use tower_sovendus::{Outcome, Recorded};
///
/// fn page(outcome: &Outcome) -> &'static str {
///     match outcome {
///         Outcome::Sent { .. } => "booked by Sovendus",
///         Outcome::Owed { .. } | Outcome::Parked { .. } => "on its way to Sovendus",
///         Outcome::Dead { .. } => "refused by Sovendus",
///         Outcome::AlreadyConverted(_) => "converted by an earlier order",
///         Outcome::NoToken => "not a Sovendus visitor",
///         Outcome::Unknown(_) => "on its way, or the visitor's again",
///         _ => "thank you",
///     }
/// }
/// assert_eq!(page(&Outcome::NoToken), "not a Sovendus visitor");
/// assert_eq!(Outcome::NoToken.recorded(), Recorded::No);
/// ```
#[derive(Debug)]
#[must_use]
#[non_exhaustive]
pub enum Outcome {
    /// Sovendus accepted the conversion (200): booked.
    Sent {
        /// The conversion, in the store, delivered.
        id: ConversionId,
        /// What Sovendus answered.
        receipt: Receipt,
    },
    /// The conversion is owed, in the store: the workers deliver it. Right after
    /// `send_in_background` or `owe_in`, or after a first delivery that failed and is retried
    /// on the schedule (5xx, 429, no answer, a shutdown).
    Owed {
        /// The conversion, in the store.
        id: ConversionId,
        /// Why the first delivery failed, if one was tried.
        error: Option<SovendusError>,
    },
    /// Sovendus refused the shop's configuration (403, 404, 405, an unknown product, an
    /// unexpected answer): the conversion is parked, ERROR logged, and retried on the schedule
    /// and at every start, so it is delivered once the configuration is fixed.
    Parked {
        /// The conversion, in the store.
        id: ConversionId,
        /// What Sovendus answered.
        error: SovendusError,
    },
    /// Sovendus does not know the token, or refused the call's parameters (422): never sent
    /// again.
    Dead {
        /// The conversion, in the store.
        id: ConversionId,
        /// What Sovendus answered.
        error: SovendusError,
    },
    /// The visitor's token was converted by an earlier order: theirs (a double submit, a
    /// reload, a second order), one racing this one, one in another session with the same
    /// link, or [`Delivery::owe`](crate::Delivery::owe). Nothing more is booked.
    AlreadyConverted(ConversionId),
    /// The visitor has no token: they did not come from Sovendus, or their token expired.
    NoToken,
    /// The store did not answer whether it recorded the conversion (it timed out, or was cut
    /// off, after the write may have gone through). The take is atomic: either the conversion
    /// is owed and the workers deliver it, or nothing changed and the token is still the
    /// visitor's, for their next order. Never both. To book it with this order whichever it
    /// was, call [`Delivery::owe`](crate::Delivery::owe) with the token and product the order
    /// kept: it makes one conversion per token. The write may still land after this answer (a
    /// command queued before the store's timeout): before voiding such an order, call `owe`
    /// until it answers, so that a [`void`](crate::Delivery::void) finds what it must stop.
    Unknown(StoreError),
}

impl Outcome {
    /// Whether this order's conversion is recorded in the store.
    pub fn recorded(&self) -> Recorded {
        match self {
            Self::Sent { .. } | Self::Owed { .. } | Self::Parked { .. } | Self::Dead { .. } => Recorded::Yes,
            Self::AlreadyConverted(_) | Self::NoToken => Recorded::No,
            Self::Unknown(_) => Recorded::Unknown,
        }
    }

    /// The conversion this order recorded, if it did; for [`AlreadyConverted`](Self::AlreadyConverted),
    /// the earlier order's.
    pub fn conversion(&self) -> Option<ConversionId> {
        match self {
            Self::Sent { id, .. }
            | Self::Owed { id, .. }
            | Self::Parked { id, .. }
            | Self::Dead { id, .. }
            | Self::AlreadyConverted(id) => Some(*id),
            Self::NoToken | Self::Unknown(_) => None,
        }
    }
}

/// Whether an order's conversion is recorded in the store: [`Outcome::recorded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recorded {
    /// This order's conversion is in the store: delivered, owed or parked (the workers deliver
    /// it), or dead. The visitor's token is spent.
    Yes,
    /// This order recorded nothing: the visitor had no token, or an earlier order converted it.
    No,
    /// The store did not say: see [`Outcome::Unknown`].
    Unknown,
}
