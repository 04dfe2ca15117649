//! The counters this crate records through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! Install any recorder (`metrics-exporter-prometheus`, for one) and they appear under these
//! names. Without a recorder, recording costs nothing.
//!
//! | Metric | Counts | Labels |
//! |---|---|---|
//! | [`CAPTURED`] | tokens stored against a session | |
//! | [`REFUSED`] | landings whose token was not stored | `reason`: `invalid`, `repeated`, `not_utf8`, `capture_filter`, `session_store`, `token_store` |
//! | [`OWED`] | orders whose token became an owed conversion | |
//! | [`QUEUED`] | of those, the ones left to the delivery workers | |
//! | [`SENT`] | conversions Sovendus accepted (200) | |
//! | [`RETRIED`] | calls repeated within a delivery's quick retries | |
//! | [`FAILED`] | deliveries that ended without a 200, by what they left | `reason`: `owed`, a parking cause (`invalid_api_key`, `wrong_url`, `unknown_product`, `unexpected_422`, `unexpected_status`), a death (`unknown_token`, `invalid_parameters`, `gave_up`), or `token_store` (nothing changed) |
//! | [`DROPPED`] | background conversions not made owed (token kept) | `reason`: `shutting_down`, `token_store` |
//! | [`VOIDED`] | conversions voided for an order taken back, never sent | |
//! | [`UNREADABLE`] | records a store refused to read, never sent | |
//! | [`CONVERSIONS`] (gauge) | conversions the store holds, read every 6 poll intervals (30 s) | `state`: `owed`, `parked`, `dead`, `delivered`, `voided` |
//!
//! ```
//! use metrics_util::debugging::DebuggingRecorder;
//! use tower_sovendus::metrics;
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! ::metrics::with_local_recorder(&recorder, || {
//!     metrics::describe();
//!     ::metrics::counter!(metrics::SENT).increment(1);
//! });
//! let names: Vec<String> = snapshotter.snapshot().into_vec().into_iter()
//!     .map(|(key, ..)| key.key().name().to_owned())
//!     .collect();
//! assert_eq!(names, [metrics::SENT]);
//! ```

/// Tokens stored against a visitor's session.
pub const CAPTURED: &str = "sovendus_tokens_captured_total";
/// Landings whose token was not stored, by `reason`.
pub const REFUSED: &str = "sovendus_tokens_refused_total";
/// Orders whose token became an owed conversion.
pub const OWED: &str = "sovendus_conversions_owed_total";
/// Owed conversions left to the delivery workers.
pub const QUEUED: &str = "sovendus_conversions_queued_total";
/// Conversions Sovendus accepted with a 200.
pub const SENT: &str = "sovendus_conversions_sent_total";
/// Calls repeated within a delivery's quick retries.
pub const RETRIED: &str = "sovendus_conversions_retried_total";
/// Deliveries that ended without a 200, by `reason`.
pub const FAILED: &str = "sovendus_conversions_failed_total";
/// Background conversions not made owed, by `reason`; their tokens stay with the visitors.
pub const DROPPED: &str = "sovendus_conversions_dropped_total";
/// Conversions voided for an order taken back; they are never sent.
pub const VOIDED: &str = "sovendus_conversions_voided_total";
/// Records a store refused to read; they are never sent.
pub const UNREADABLE: &str = "sovendus_records_unreadable_total";
/// Conversions the store holds, by `state` (a gauge).
pub const CONVERSIONS: &str = "sovendus_conversions";

/// Registers a description for every counter with the installed recorder. Optional: the
/// counters are recorded either way.
pub fn describe() {
    use ::metrics::describe_counter;
    describe_counter!(CAPTURED, "Sovendus tokens stored against a visitor's session");
    describe_counter!(REFUSED, "Sovendus landings whose token was not stored");
    describe_counter!(OWED, "Sovendus orders whose token became an owed conversion");
    describe_counter!(QUEUED, "Sovendus owed conversions left to the delivery workers");
    describe_counter!(SENT, "Sovendus conversions accepted with a 200");
    describe_counter!(RETRIED, "Sovendus calls repeated within a delivery's quick retries");
    describe_counter!(FAILED, "Sovendus deliveries that ended without a 200");
    describe_counter!(DROPPED, "Sovendus background conversions not made owed (token kept)");
    describe_counter!(VOIDED, "Sovendus conversions voided for an order taken back, never sent");
    describe_counter!(UNREADABLE, "records a Sovendus token store refused to read");
    ::metrics::describe_gauge!(CONVERSIONS, "Sovendus conversions in the store, by state");
}

/// Counts a landing whose token was not stored.
pub(crate) fn refused(reason: &'static str) {
    ::metrics::counter!(REFUSED, "reason" => reason).increment(1);
}
