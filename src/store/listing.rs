//! What [`Inspection::list`](super::Inspection::list) is asked for: a state's conversions, on
//! one of their two times, filtered, a page at a time after a [`Cursor`]; and the counts per
//! day [`Inspection::daily`](super::Inspection::daily) answers.

use std::{fmt, str::FromStr, time::SystemTime};

use super::{
    Conversion, ConversionCounts, ConversionId, ConversionState, StoreError,
    records::{from_millis, to_millis},
};
use crate::ids::ProductId;

/// Which time a list is ordered and bounded by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TimeAxis {
    /// When the order was placed: every conversion has it.
    #[default]
    Ordered,
    /// When the conversion was settled (delivered, dead or voided): the invoice's axis.
    /// Conversions not settled have no place on it.
    Settled,
}

/// Which end of the axis a list starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ListOrder {
    /// The earliest first.
    #[default]
    OldestFirst,
    /// The latest first.
    NewestFirst,
}

/// Where a page of a list ended: its last conversion's time on the list's axis, and its ID. The
/// next page starts strictly after it, so a page is never shown twice, or skipped, however many
/// conversions come meanwhile.
///
/// It reads and writes as `<milliseconds>-<ID>`, for a link to the next page:
///
/// ```
/// use tower_sovendus::store::Cursor;
///
/// let cursor: Cursor = "1700000000000-0000000000000000000000000000002a".parse()?;
/// assert_eq!(cursor.to_string(), "1700000000000-0000000000000000000000000000002a");
/// assert!("1700000000000".parse::<Cursor>().is_err());
/// # Ok::<(), tower_sovendus::store::StoreError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The time on the list's axis, to the millisecond.
    pub at: SystemTime,
    /// The conversion's ID, which orders conversions of the same millisecond.
    pub id: ConversionId,
}

impl Cursor {
    /// The cursor just past `conversion` on `axis`; `None` on the settled axis for a
    /// conversion not settled.
    pub fn after(conversion: &Conversion, axis: TimeAxis) -> Option<Self> {
        let at = match axis {
            TimeAxis::Ordered => conversion.ordered_at,
            TimeAxis::Settled => conversion.settled_at?,
        };
        Some(Self { at: from_millis(to_millis(at)), id: conversion.id })
    }

    /// The cursor as milliseconds and ID, as stores compare it.
    pub fn key(&self) -> (i64, ConversionId) {
        (to_millis(self.at), self.id)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", to_millis(self.at), self.id)
    }
}

impl FromStr for Cursor {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unreadable = || StoreError::Unreadable("a list cursor is <milliseconds>-<ID>".to_owned());
        let (at, id) = text.split_once('-').ok_or_else(unreadable)?;
        let at: i64 = at.parse().map_err(|_| unreadable())?;
        Ok(Self { at: from_millis(at), id: id.parse().map_err(|_| unreadable())? })
    }
}

/// A page of one state's conversions: which, in which order, from where. Build it from
/// [`ListQuery::new`] and its methods:
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_sovendus::store::{ConversionState, ListQuery};
///
/// let month = SystemTime::now() - Duration::from_secs(30 * 24 * 60 * 60);
/// let page = ListQuery::new(ConversionState::Delivered).newest_first().between(month, SystemTime::now()).limit(50);
/// assert_eq!(page.limit, 50);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListQuery {
    /// The state listed.
    pub state: ConversionState,
    /// The time the list is ordered and bounded by.
    pub axis: TimeAxis,
    /// Which end comes first.
    pub order: ListOrder,
    /// Only conversions of this product, if given.
    pub product: Option<ProductId>,
    /// Only conversions at or after this time on the axis, if given.
    pub from: Option<SystemTime>,
    /// Only conversions before this time on the axis, if given.
    pub until: Option<SystemTime>,
    /// Only conversions past this one, in the list's order: the last of the previous page.
    pub after: Option<Cursor>,
    /// At most this many.
    pub limit: usize,
}

impl ListQuery {
    /// The first 100 conversions in `state`, the earliest ordered first.
    pub fn new(state: ConversionState) -> Self {
        Self {
            state,
            axis: TimeAxis::Ordered,
            order: ListOrder::OldestFirst,
            product: None,
            from: None,
            until: None,
            after: None,
            limit: 100,
        }
    }

    /// Ordered and bounded by `axis`.
    pub fn on(mut self, axis: TimeAxis) -> Self {
        self.axis = axis;
        self
    }

    /// The latest first.
    pub fn newest_first(mut self) -> Self {
        self.order = ListOrder::NewestFirst;
        self
    }

    /// In `order`.
    pub fn ordered(mut self, order: ListOrder) -> Self {
        self.order = order;
        self
    }

    /// Only `product`'s.
    pub fn product(mut self, product: ProductId) -> Self {
        self.product = Some(product);
        self
    }

    /// Only those from `from` (included) until `until` (excluded), on the axis.
    pub fn between(mut self, from: SystemTime, until: SystemTime) -> Self {
        (self.from, self.until) = (Some(from), Some(until));
        self
    }

    /// The page after `cursor`.
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// At most `limit`.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Whether `conversion` belongs on this list's page, by every part of the query but the
    /// limit: the rule every store keeps, written once for the stores that filter in Rust.
    pub fn admits(&self, conversion: &Conversion) -> bool {
        let Some(at) = self.time_of(conversion) else { return false };
        let key = (at, conversion.id);
        conversion.state == self.state
            && self.product.as_ref().is_none_or(|product| *product == conversion.product)
            && self.from.is_none_or(|from| at >= to_millis(from))
            && self.until.is_none_or(|until| at < to_millis(until))
            && self.after.is_none_or(|cursor| match self.order {
                ListOrder::OldestFirst => key > cursor.key(),
                ListOrder::NewestFirst => key < cursor.key(),
            })
    }

    /// `conversion`'s time on the list's axis, in milliseconds.
    pub fn time_of(&self, conversion: &Conversion) -> Option<i64> {
        match self.axis {
            TimeAxis::Ordered => Some(to_millis(conversion.ordered_at)),
            TimeAxis::Settled => conversion.settled_at.map(to_millis),
        }
    }
}

/// The conversions ordered on one day (UTC), by the state each is in now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DailyCounts {
    /// The day's start, midnight UTC.
    pub day: SystemTime,
    /// How many of the conversions ordered that day are in each state.
    pub counts: ConversionCounts,
}

impl DailyCounts {
    /// `counts` of the day starting at `day`.
    pub fn new(day: SystemTime, counts: ConversionCounts) -> Self {
        Self { day, counts }
    }
}

/// One way conversions failed, and how many failed that way: an answer of
/// [`Inspection::causes`](super::Inspection::causes).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cause {
    /// The conversions' `last_error`, as Sovendus or the connection gave it.
    pub reason: String,
    /// How many conversions failed that way.
    pub count: u64,
}

impl Cause {
    /// `count` conversions that failed for `reason`.
    pub fn new(reason: String, count: u64) -> Self {
        Self { reason, count }
    }
}

/// The causes counted in `counted`, the most frequent first (then by reason), at most `limit`.
pub(crate) fn most_frequent(counted: std::collections::HashMap<String, u64>, limit: usize) -> Vec<Cause> {
    let mut causes: Vec<Cause> =
        counted.into_iter().map(|(reason, count)| Cause::new(reason, count)).collect();
    causes.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    causes.truncate(limit);
    causes
}

/// Milliseconds in a day.
pub(crate) const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The start (midnight UTC) of the day `at` falls on, in milliseconds.
pub(crate) fn day_of(at: i64) -> i64 {
    at.div_euclid(DAY_MS) * DAY_MS
}

/// The days from the one `from` falls on to the one before `until`'s end, each with its
/// counts from `counted` (day start in milliseconds → counts), empty days included: what every
/// store answers to [`Inspection::daily`](super::Inspection::daily).
pub(crate) fn every_day(
    from: SystemTime,
    until: SystemTime,
    mut counted: impl FnMut(i64) -> ConversionCounts,
) -> Vec<DailyCounts> {
    let (mut day, end) = (day_of(to_millis(from)), to_millis(until));
    let mut days = Vec::new();
    while day < end {
        days.push(DailyCounts::new(from_millis(day), counted(day)));
        day += DAY_MS;
    }
    days
}
