//! The records a [`TokenStore`](super::TokenStore) keeps and the values it trades in.

use std::{
    fmt,
    str::FromStr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use super::error::StoreError;
use crate::{
    config::Attribution,
    ids::{OrderRef, ProductId, SovReqToken},
};

/// The key a capture is stored under: 128 random bits kept in the visitor's (server-side)
/// session data.
///
/// It is made when the session first captures a token and travels with the session's data, so
/// it survives `Session::cycle_id` (login), and it is only ever read from a session the store
/// has loaded, never from a cookie.
pub type TokenKey = i128;

/// A captured token and the product its landing chose, kept by its ID: a deploy that reorders
/// or removes configured products still books the token for that product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Capture {
    /// The token.
    pub token: SovReqToken,
    /// The product the landing chose.
    pub product: ProductId,
}

/// A landing's capture, as [`CaptureStore::capture`](super::CaptureStore::capture) writes it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewCapture {
    /// The token and its product.
    pub capture: Capture,
    /// Whether a live capture already stored wins.
    pub attribution: Attribution,
    /// When the landing came.
    pub at: SystemTime,
    /// How long after `at` the capture lives.
    pub ttl: Duration,
}

impl Capture {
    /// A capture of `token` for `product`.
    pub fn new(token: SovReqToken, product: ProductId) -> Self {
        Self { token, product }
    }
}

impl NewCapture {
    /// A landing's `capture` at `at`, living `ttl`, kept by `attribution`'s rule.
    pub fn new(capture: Capture, attribution: Attribution, at: SystemTime, ttl: Duration) -> Self {
        Self { capture, attribution, at, ttl }
    }

    /// When the capture stops counting.
    pub fn expires_at(&self) -> SystemTime {
        self.at.checked_add(self.ttl).unwrap_or(self.at)
    }
}

/// Names one owed conversion: 128 random bits, shown as 32 hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ConversionId(u128);

impl ConversionId {
    /// A random ID (128 bits from the same source as tower-sessions' session IDs).
    pub fn random() -> Self {
        // Reinterpreting the bits keeps all 128 of them random.
        Self(tower_sessions::session::Id::default().0 as u128)
    }

    /// The ID as a number.
    pub fn get(self) -> u128 {
        self.0
    }
}

impl From<u128> for ConversionId {
    fn from(id: u128) -> Self {
        Self(id)
    }
}

impl fmt::Display for ConversionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for ConversionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConversionId({self})")
    }
}

impl From<ConversionId> for String {
    fn from(id: ConversionId) -> Self {
        id.to_string()
    }
}

impl TryFrom<String> for ConversionId {
    type Error = StoreError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl FromStr for ConversionId {
    type Err = StoreError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let valid = value.len() == 32 && value.bytes().all(|byte| byte.is_ascii_hexdigit());
        let id = valid.then(|| u128::from_str_radix(value, 16).ok()).flatten();
        id.map(Self)
            .ok_or_else(|| StoreError::Unreadable("a conversion ID is not 32 hexadecimal digits".to_owned()))
    }
}

/// Names one lease: a delivery's hold on the conversions it claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(u128);

impl LeaseId {
    /// A random lease ID.
    pub fn random() -> Self {
        Self(tower_sessions::session::Id::default().0 as u128)
    }

    /// The ID as a number.
    pub fn get(self) -> u128 {
        self.0
    }
}

impl From<u128> for LeaseId {
    fn from(id: u128) -> Self {
        Self(id)
    }
}

/// A delivery's hold on a conversion until `until`: meanwhile no other delivery claims it. It
/// runs out on its own, so the conversions of a crashed instance are claimed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// Which lease.
    pub id: LeaseId,
    /// When it runs out.
    pub until: SystemTime,
}

impl Lease {
    /// The lease `id`, until `until`.
    pub fn new(id: LeaseId, until: SystemTime) -> Self {
        Self { id, until }
    }
}

/// Where an owed conversion stands; see the [module](super) for what each state means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ConversionState {
    /// Not delivered yet; claimed when due.
    Owed,
    /// Sovendus refused the shop's configuration; claimed when due, and at every start.
    Parked,
    /// Never sent again: Sovendus does not know the token, or never answered.
    Dead,
    /// Sovendus accepted it.
    Delivered,
    /// The shop took its order back before it was delivered: never sent.
    Voided,
}

impl ConversionState {
    /// Every state, in the order of the table.
    pub const ALL: [Self; 5] = [Self::Owed, Self::Parked, Self::Dead, Self::Delivered, Self::Voided];

    /// The state's name, as stores keep it: `owed`, `parked`, `dead`, `delivered`, `voided`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owed => "owed",
            Self::Parked => "parked",
            Self::Dead => "dead",
            Self::Delivered => "delivered",
            Self::Voided => "voided",
        }
    }

    /// Whether the conversion is done with: dead, delivered or voided.
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Dead | Self::Delivered | Self::Voided)
    }
}

impl fmt::Display for ConversionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConversionState {
    type Err = StoreError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == value)
            .ok_or_else(|| StoreError::Unreadable("a conversion's state is not one of the five".to_owned()))
    }
}

/// An order's conversion, as [`ConversionStore::take`](super::ConversionStore::take) writes it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewConversion {
    /// Its ID.
    pub id: ConversionId,
    /// The shop's reference of the order, if it gave one.
    pub order: Option<OrderRef>,
    /// When the order was placed.
    pub ordered_at: SystemTime,
    /// The lease of the delivery that sends it at once, if one does.
    pub lease: Option<Lease>,
}

impl NewConversion {
    /// The conversion `id` of an order placed at `ordered_at`, with the shop's reference if it
    /// gave one, and the lease of the delivery that sends it at once, if one does.
    pub fn new(
        id: ConversionId,
        order: Option<OrderRef>,
        ordered_at: SystemTime,
        lease: Option<Lease>,
    ) -> Self {
        Self { id, order, ordered_at, lease }
    }
}

/// An order's conversion, as a store keeps it. `Debug` and `Display` show the token masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Conversion {
    /// Its ID.
    pub id: ConversionId,
    /// The token.
    pub token: SovReqToken,
    /// The product it is booked for.
    pub product: ProductId,
    /// The shop's reference of the order, if it gave one.
    pub order: Option<OrderRef>,
    /// When the order was placed.
    pub ordered_at: SystemTime,
    /// Where it stands.
    pub state: ConversionState,
    /// Calls made to Sovendus for it so far.
    pub attempts: u32,
    /// When it is due next, while it is owed or parked.
    pub next_attempt_at: Option<SystemTime>,
    /// Why its last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When it was delivered, became dead, or was voided.
    pub settled_at: Option<SystemTime>,
    /// When its most recent calls to Sovendus ended (answered, or given up on), oldest first:
    /// the last [`CALLS_KEPT`].
    pub calls: Vec<SystemTime>,
    /// Until when a delivery holds it: its lease's end, as the store keeps it (the lease may
    /// have run out since; compare with the store's clock).
    pub held_until: Option<SystemTime>,
}

impl Conversion {
    /// The record [`take`](super::ConversionStore::take) makes of `capture` for `conversion`.
    pub fn new(capture: Capture, conversion: NewConversion) -> Self {
        Self {
            id: conversion.id,
            token: capture.token,
            product: capture.product,
            order: conversion.order,
            ordered_at: conversion.ordered_at,
            state: ConversionState::Owed,
            attempts: 0,
            next_attempt_at: Some(conversion.lease.map_or(conversion.ordered_at, |lease| lease.until)),
            last_error: None,
            settled_at: None,
            calls: Vec::new(),
            held_until: conversion.lease.map(|lease| lease.until),
        }
    }

    /// The record with `settlement` applied.
    pub fn settled(mut self, settlement: Settlement) -> Self {
        self.state = settlement.state;
        self.attempts = settlement.attempts;
        self.next_attempt_at = settlement.next_attempt_at;
        self.last_error = settlement.last_error;
        self.settled_at = settlement.state.is_settled().then_some(settlement.at);
        self.called(settlement.attempted_at)
    }

    /// The record with the call that ended `at`, if any, among its [`calls`](Self::calls).
    pub fn called(mut self, at: Option<SystemTime>) -> Self {
        if let Some(at) = at {
            self.calls.push(at);
            let excess = self.calls.len().saturating_sub(CALLS_KEPT);
            self.calls.drain(..excess);
        }
        self
    }
}

/// How many of a conversion's most recent calls it keeps the times of.
pub const CALLS_KEPT: usize = 10;

impl fmt::Display for Conversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conversion {} for product {}, token {}: {}",
            self.id, self.product, self.token, self.state
        )?;
        if let Some(order) = &self.order {
            write!(f, ", order {order}")?;
        }
        Ok(())
    }
}

/// A delivery's outcome, as [`Outbox::settle`](super::Outbox::settle) writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settlement {
    /// The conversion's new state.
    pub state: ConversionState,
    /// Calls made to Sovendus for it so far, this delivery's included.
    pub attempts: u32,
    /// When it is due next; `None` once it is dead or delivered.
    pub next_attempt_at: Option<SystemTime>,
    /// Why the delivery failed, if it did.
    pub last_error: Option<String>,
    /// When the delivery ended.
    pub at: SystemTime,
    /// When this delivery's last call to Sovendus ended, if it made one: the store adds it to
    /// the conversion's [`calls`](Conversion::calls).
    pub attempted_at: Option<SystemTime>,
}

impl Settlement {
    /// A delivery's outcome at `at`, after a call that ended then: the conversion's new `state`
    /// after `attempts` calls, when it is due next, and why the delivery failed.
    pub fn new(
        state: ConversionState,
        attempts: u32,
        next_attempt_at: Option<SystemTime>,
        last_error: Option<String>,
        at: SystemTime,
    ) -> Self {
        Self { state, attempts, next_attempt_at, last_error, at, attempted_at: Some(at) }
    }
}

/// What [`ConversionStore::take`](super::ConversionStore::take) did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Taken {
    /// The capture is now this owed conversion.
    Owed(Conversion),
    /// There was no live capture.
    NoCapture,
    /// The capture's token was converted before, into this conversion (by this visitor's
    /// earlier order, or another's): no second conversion was made.
    AlreadyConverted(ConversionId),
}

/// What [`ConversionStore::void`](super::ConversionStore::void) found, and did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VoidOutcome {
    /// The conversion was owed, parked or dead, and no delivery held it: it is voided now, and
    /// never sent again, and no 200 is recorded for it. As it is now. (A call that went
    /// unanswered before, by a timeout or a broken connection, may still have reached
    /// Sovendus: the window no client can close.)
    Voided(Conversion),
    /// Sovendus booked it: its `settled_at` says when. Sovendus has no API to take a booking
    /// back; tell them the token and the time.
    Delivered(Conversion),
    /// It was voided before.
    AlreadyVoided(Conversion),
    /// A delivery holds it, and may be calling Sovendus right now or recording a 200: it is
    /// marked voided, and that delivery starts no further attempt. Its settlement decides:
    /// voided, or delivered if Sovendus answered 200. If its holder went silent, the void
    /// takes effect once the lease and its quarantine run out; nothing sends it meanwhile.
    /// Ask again.
    Sending(Conversion),
    /// No such conversion.
    NotFound,
}

/// How many conversions a store holds in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConversionCounts {
    /// Not delivered yet.
    pub owed: u64,
    /// Refused for the shop's configuration.
    pub parked: u64,
    /// Never to be sent again.
    pub dead: u64,
    /// Accepted by Sovendus.
    pub delivered: u64,
    /// Taken back by the shop before delivery.
    pub voided: u64,
}

impl ConversionCounts {
    /// The count of `state`.
    pub fn of(&self, state: ConversionState) -> u64 {
        match state {
            ConversionState::Owed => self.owed,
            ConversionState::Parked => self.parked,
            ConversionState::Dead => self.dead,
            ConversionState::Delivered => self.delivered,
            ConversionState::Voided => self.voided,
        }
    }

    /// The counts with `state`'s set to `count`.
    ///
    /// ```
    /// use tower_sovendus::store::{ConversionCounts, ConversionState};
    ///
    /// let counts = ConversionCounts::default().with(ConversionState::Owed, 2);
    /// assert_eq!((counts.owed, counts.of(ConversionState::Owed), counts.parked), (2, 2, 0));
    /// ```
    pub fn with(mut self, state: ConversionState, count: u64) -> Self {
        *self.of_mut(state) = count;
        self
    }

    /// The count of `state`, to change.
    pub fn of_mut(&mut self, state: ConversionState) -> &mut u64 {
        match state {
            ConversionState::Owed => &mut self.owed,
            ConversionState::Parked => &mut self.parked,
            ConversionState::Dead => &mut self.dead,
            ConversionState::Delivered => &mut self.delivered,
            ConversionState::Voided => &mut self.voided,
        }
    }
}

/// `time` as whole milliseconds since the Unix epoch, as stores keep times.
pub(crate) fn to_millis(time: SystemTime) -> i64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// The time `millis` milliseconds after the Unix epoch.
pub(crate) fn from_millis(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or_default())
}

/// A time cut to the millisecond, as stores keep it.
#[cfg(any(test, feature = "conformance"))]
pub(crate) fn to_the_millisecond(time: SystemTime) -> SystemTime {
    from_millis(to_millis(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_show_as_32_hex_digits_and_read_back() {
        let id = ConversionId::from(0xabc);
        assert_eq!(id.to_string(), "00000000000000000000000000000abc");
        assert_eq!(id.to_string().parse::<ConversionId>().unwrap(), id);
        assert!("abc".parse::<ConversionId>().is_err());
        assert!("g".repeat(32).parse::<ConversionId>().is_err());
        assert_ne!(ConversionId::random(), ConversionId::random());
    }

    #[test]
    fn states_read_back_from_their_names() {
        for state in ConversionState::ALL {
            assert_eq!(state.as_str().parse::<ConversionState>().unwrap(), state);
        }
        assert!("lost".parse::<ConversionState>().is_err());
    }

    #[test]
    fn times_keep_the_millisecond() {
        let time = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(to_millis(time), 1_700_000_000_123);
        assert_eq!(to_the_millisecond(time), UNIX_EPOCH + Duration::from_millis(1_700_000_000_123));
    }

    #[test]
    fn display_masks_the_token() {
        let capture =
            Capture { token: "1095752fb409-457a-af14".parse().unwrap(), product: "p".parse().unwrap() };
        let conversion = NewConversion {
            id: ConversionId::from(1),
            order: Some("A-1".parse().unwrap()),
            ordered_at: UNIX_EPOCH,
            lease: None,
        };
        let owed = Conversion::new(capture, conversion);
        let shown = format!("{owed} {owed:?}");
        assert!(!shown.contains("1095752fb409-457a"), "{shown}");
        assert!(shown.contains("1095752f…"), "{shown}");
    }
}
