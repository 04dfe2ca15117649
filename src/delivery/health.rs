//! [`DeliveryHealth`]: how one instance's delivery is doing, for the shop's staff.

use std::time::SystemTime;

/// How this instance's delivery is doing: its workers, and the last call that got through or
/// failed. One instance's view: other instances sharing the store keep their own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryHealth {
    /// Whether the workers' loop runs: false before the first request started it, and after
    /// the shutdown.
    pub running: bool,
    /// How many workers the instance runs.
    pub workers: usize,
    /// How many of them are delivering now.
    pub busy: usize,
    /// When Sovendus last accepted a conversion from this instance.
    pub last_delivered_at: Option<SystemTime>,
    /// The last failed delivery of this instance: when, and why.
    pub last_error: Option<(SystemTime, String)>,
}

/// What the deliveries of an instance last ended in, kept by its sender.
#[derive(Debug, Default, Clone)]
pub(crate) struct LastCalls {
    pub(crate) delivered_at: Option<SystemTime>,
    pub(crate) error: Option<(SystemTime, String)>,
}
