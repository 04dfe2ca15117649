//! The names of a [`RedisTokenStore`](super::RedisTokenStore)'s keys.

use crate::store::{ConversionState, TokenKey};

/// The names of a store's keys.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    /// `{<prefix>}:`, the start of every key.
    pub(super) tag: Box<str>,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self { tag: format!("{{{prefix}}}:").into() }
    }

    pub(super) fn capture(&self, key: TokenKey) -> String {
        format!("{}capture:{key}", self.tag)
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
}
