//! [`DeliveryReport`]: what a delivery did, and what its shutdown left owed.

use crate::{
    ids::{ProductId, SovReqToken},
    store::Conversion,
};

/// What this instance's delivery workers did in their life, and what the shutdown cut off.
#[derive(Debug, Clone)]
pub struct DeliveryReport {
    pub(super) sent: u64,
    pub(super) failed: u64,
    pub(super) dropped: u64,
    pub(super) left: Vec<PendingConversion>,
    pub(super) unrecorded: Vec<PendingConversion>,
}

impl DeliveryReport {
    /// Conversions the workers delivered.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Deliveries by the workers that ended without a 200: their conversions are owed,
    /// parked or dead in the store.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// Background conversions not made owed (the store failed, or the workers were shutting
    /// down); their tokens stayed with their visitors.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The conversions the shutdown cut off mid-delivery: they stay owed in the store, due at
    /// once.
    pub fn left(&self) -> &[PendingConversion] {
        &self.left
    }

    /// The conversions Sovendus accepted (200) that the store had not recorded when the
    /// shutdown ended, the store being away: the store still holds them owed, and another
    /// instance, or this one restarted, sends them again. Each is logged at ERROR.
    pub fn unrecorded(&self) -> &[PendingConversion] {
        &self.unrecorded
    }

    /// Whether the shutdown cut nothing off and left no 200 unrecorded.
    pub fn is_complete(&self) -> bool {
        self.left.is_empty() && self.unrecorded.is_empty()
    }
}

/// A conversion a shutdown left behind: cut off before Sovendus answered, or accepted and not yet
/// recorded. Its token (whole through [`SovReqToken::as_str`], masked in `Debug` and `Display`)
/// and the product it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingConversion {
    token: SovReqToken,
    product_id: ProductId,
}

impl PendingConversion {
    pub(crate) fn of(conversion: &Conversion) -> Self {
        Self { token: conversion.token.clone(), product_id: conversion.product.clone() }
    }

    /// The token.
    pub fn token(&self) -> &SovReqToken {
        &self.token
    }

    /// The product the conversion is for.
    pub fn product_id(&self) -> &ProductId {
        &self.product_id
    }
}
