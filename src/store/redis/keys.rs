//! The names of a [`RedisTokenStore`](super::RedisTokenStore)'s keys, and what its earlier
//! layout holds.

use crate::store::{ConversionState, TokenKey};

/// The names of a store's keys.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    /// `{<prefix>}:`, the start of every key.
    pub(super) tag: Box<str>,
    /// `<prefix>:`, the start of the earlier layout's keys.
    legacy: Box<str>,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self { tag: format!("{{{prefix}}}:").into(), legacy: format!("{prefix}:").into() }
    }

    pub(super) fn capture(&self, key: TokenKey) -> String {
        format!("{}capture:{key}", self.tag)
    }

    /// The start of every conversion's key, for the scripts that follow an index.
    pub(super) fn conversions(&self) -> String {
        format!("{}conversion:", self.tag)
    }

    pub(super) fn conversion(&self, id: &str) -> String {
        format!("{}conversion:{id}", self.tag)
    }

    pub(super) fn due(&self) -> String {
        format!("{}due", self.tag)
    }

    pub(super) fn state(&self, state: ConversionState) -> String {
        format!("{}state:{state}", self.tag)
    }

    pub(super) fn settled(&self) -> String {
        format!("{}settled", self.tag)
    }

    pub(super) fn tokens(&self) -> String {
        format!("{}tokens", self.tag)
    }

    pub(super) fn orders(&self) -> String {
        format!("{}orders", self.tag)
    }

    /// Where the earlier layout kept the capture for `key`.
    pub(super) fn legacy_capture(&self, key: TokenKey) -> String {
        format!("{}{{{key}}}", self.legacy)
    }

    /// Where the earlier layout kept the lease on the capture for `key`.
    pub(super) fn legacy_lease(&self, key: TokenKey) -> String {
        format!("{}:lease", self.legacy_capture(key))
    }
}

/// What the earlier layout holds for one token key.
pub(super) struct Legacy {
    /// The capture's value, if there is one.
    pub(super) value: Option<String>,
    /// Whether an instance of the earlier version holds a lease on it.
    pub(super) leased: bool,
}
