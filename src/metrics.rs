//! The counters this crate records through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! Install any recorder (`metrics-exporter-prometheus`, for one) and they appear under these
//! names. Without a recorder, recording costs nothing.
//!
//! | Counter | Counts | Labels |
//! |---|---|---|
//! | [`CAPTURED`] | tokens stored against a session | |
//! | [`REFUSED`] | landings whose token was not stored | `reason`: `invalid`, `repeated`, `not_utf8`, `capture_filter`, `session_store`, `token_store` |
//! | [`SENT`] | conversions Sovendus accepted (200) | |
//! | [`RETRIED`] | attempts repeated after a retryable failure | |
//! | [`FAILED`] | conversions that ended without a 200 | `reason`: `terminal` (token dropped), `gave_up` or `token_store` (token kept) |
//! | [`QUEUED`] | conversions handed to the background queue | |
//! | [`DROPPED`] | background conversions the queue did not take (token kept) | `reason`: `queue_full`, `shutting_down` |
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
/// Conversions Sovendus accepted with a 200.
pub const SENT: &str = "sovendus_conversions_sent_total";
/// Attempts repeated after a retryable failure.
pub const RETRIED: &str = "sovendus_conversions_retried_total";
/// Conversions that ended without a 200, by `reason`.
pub const FAILED: &str = "sovendus_conversions_failed_total";
/// Conversions handed to the background queue.
pub const QUEUED: &str = "sovendus_conversions_queued_total";
/// Background conversions the queue did not take, by `reason`; their tokens stay stored.
pub const DROPPED: &str = "sovendus_conversions_dropped_total";

/// Registers a description for every counter with the installed recorder. Optional: the
/// counters are recorded either way.
pub fn describe() {
    use ::metrics::describe_counter;
    describe_counter!(CAPTURED, "Sovendus tokens stored against a visitor's session");
    describe_counter!(REFUSED, "Sovendus landings whose token was not stored");
    describe_counter!(SENT, "Sovendus conversions accepted with a 200");
    describe_counter!(RETRIED, "Sovendus conversion attempts repeated after a retryable failure");
    describe_counter!(FAILED, "Sovendus conversions that ended without a 200");
    describe_counter!(QUEUED, "Sovendus conversions handed to the background queue");
    describe_counter!(DROPPED, "Sovendus background conversions not taken by the queue (token kept)");
}

/// Counts a landing whose token was not stored.
pub(crate) fn refused(reason: &'static str) {
    ::metrics::counter!(REFUSED, "reason" => reason).increment(1);
}
