//! [`ConversionStore`]: the role of a store that keeps the ledger of conversions, one per
//! token.

use std::{sync::Arc, time::SystemTime};

use super::{
    Capture, Conversion, ConversionId, NewConversion, StoreError, Taken, TokenKey, VoidOutcome, async_trait,
};
use crate::ids::OrderRef;

/// The ledger: an order [takes](Self::take) its visitor's capture into a [`Conversion`], the
/// shop [voids](Self::void) one whose order it took back, and
/// [finds](Self::find) one by its order; the retention [purges](Self::purge) the settled.
///
/// Rules (checked by `conformance::conversions`):
///
/// - [`take`](Self::take) and [`owe`](Self::owe) are atomic, and make at most one conversion
///   per token, ever (while the conversion is kept): a token taken before is
///   [`Taken::AlreadyConverted`]. The capture stays, spent.
/// - [`void`](Self::void) voids what is owed, parked or dead. One a delivery holds (a live
///   lease) it marks voided and answers [`VoidOutcome::Sending`], keeping the lease: that
///   delivery's renewals then fail, and its settlement leaves it voided unless it heard a 200.
///   A void asked again once the lease ran out ends it.
/// - Times are the caller's, kept to the millisecond.
#[async_trait]
pub trait ConversionStore: std::fmt::Debug + Send + Sync + 'static {
    /// In one atomic step: makes the capture for `key`, if it is live at the conversion's
    /// `ordered_at`, an owed conversion, due at once (or once the conversion's lease runs out,
    /// if it comes with one); or answers the conversion its token has. The capture stays (a
    /// store may remove one it cannot read).
    async fn take(&self, key: TokenKey, conversion: NewConversion) -> Result<Taken, StoreError>;

    /// [`take`](Self::take), inside the shop's own transaction on `connection`: the conversion
    /// commits, or rolls back, with the order. Stores that cannot join a shop's transaction
    /// refuse ([`TakeInError::Unjoinable`](super::TakeInError::Unjoinable)), as the default
    /// does; `SqlTokenStore` joins one on its own database.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
    async fn take_in(
        &self,
        connection: &mut super::SqlConnection<'_>,
        key: TokenKey,
        conversion: NewConversion,
    ) -> Result<Taken, super::TakeInError> {
        let _ = (connection, key, conversion);
        Err(super::TakeInError::Unjoinable(format!(
            "the layer's token store ({self:?}) is not a SqlTokenStore"
        )))
    }

    /// In one atomic step: makes `capture` an owed conversion, due at once, unless its token
    /// has one ([`Taken::AlreadyConverted`]). For the capture a shop kept with its order, when
    /// a crash came between the order's commit and its take; any capture of the token is left
    /// in place. Never [`Taken::NoCapture`].
    async fn owe(&self, capture: Capture, conversion: NewConversion) -> Result<Taken, StoreError>;

    /// In one atomic step: voids the conversion `id` at `now` if it is owed, parked or dead.
    /// One a delivery holds at `now` (a live lease: its call may be out, or its 200
    /// unrecorded) is marked voided and keeps its lease ([`VoidOutcome::Sending`]); one voided
    /// so whose lease ran out at `now` has it ended ([`VoidOutcome::Voided`]).
    async fn void(&self, id: ConversionId, now: SystemTime) -> Result<VoidOutcome, StoreError>;

    /// The conversion of the shop's order `order`, if one was taken with it.
    async fn find(&self, order: &OrderRef) -> Result<Option<Conversion>, StoreError>;

    /// Removes the conversions settled (delivered, dead or voided) before `settled_before`, and
    /// the captures expired at `now`; returns how many conversions went.
    async fn purge(&self, settled_before: SystemTime, now: SystemTime) -> Result<u64, StoreError>;
}

#[async_trait]
impl<S: ConversionStore + ?Sized> ConversionStore for Arc<S> {
    async fn take(&self, key: TokenKey, conversion: NewConversion) -> Result<Taken, StoreError> {
        (**self).take(key, conversion).await
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    async fn take_in(
        &self,
        connection: &mut super::SqlConnection<'_>,
        key: TokenKey,
        conversion: NewConversion,
    ) -> Result<Taken, super::TakeInError> {
        (**self).take_in(connection, key, conversion).await
    }

    async fn owe(&self, capture: Capture, conversion: NewConversion) -> Result<Taken, StoreError> {
        (**self).owe(capture, conversion).await
    }

    async fn void(&self, id: ConversionId, now: SystemTime) -> Result<VoidOutcome, StoreError> {
        (**self).void(id, now).await
    }

    async fn find(&self, order: &OrderRef) -> Result<Option<Conversion>, StoreError> {
        (**self).find(order).await
    }

    async fn purge(&self, settled_before: SystemTime, now: SystemTime) -> Result<u64, StoreError> {
        (**self).purge(settled_before, now).await
    }
}
