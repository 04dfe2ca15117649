//! Where captured tokens live: a moka TTL cache keyed by the visitor's session.

use std::time::{Duration, Instant};

use moka::{Expiry, future::Cache};

use crate::{SovReqToken, config::Attribution};

/// The cache key: a random value kept in the visitor's (server-side) session data.
///
/// It is made when the session first captures a token and travels with the session's data, so
/// it survives `Session::cycle_id` (login), and it is only ever read from a session the store
/// has loaded, never from a cookie.
pub(crate) type TokenKey = i128;

/// A captured token, waiting for its order.
#[derive(Debug, Clone)]
pub(crate) struct StoredToken {
    pub(crate) token: SovReqToken,
    /// Index into the configured product IDs.
    pub(crate) product: u8,
    /// When the token stops counting, fixed at capture: putting a token back after a failed
    /// send does not extend its life.
    pub(crate) expires_at: Instant,
}

/// The embedded token store.
#[derive(Debug, Clone)]
pub(crate) struct TokenStore {
    cache: Cache<TokenKey, StoredToken>,
    attribution: Attribution,
}

impl TokenStore {
    pub(crate) fn new(max_tokens: u64, attribution: Attribution) -> Self {
        let cache = Cache::builder().max_capacity(max_tokens).expire_after(UntilDeadline).build();
        Self { cache, attribution }
    }

    /// Stores a freshly captured token; returns whether it was kept (under first-click, an
    /// existing token wins).
    pub(crate) async fn insert(&self, key: TokenKey, token: StoredToken) -> bool {
        self.put(key, token, self.attribution == Attribution::LastClick).await
    }

    /// The token stored for `key`, left in place.
    pub(crate) async fn get(&self, key: TokenKey) -> Option<StoredToken> {
        self.cache.get(&key).await
    }

    /// Removes and returns the token for `key`. Atomic: of concurrent callers, one gets it.
    /// An expired token that moka has not evicted yet is not returned.
    pub(crate) async fn take(&self, key: TokenKey) -> Option<StoredToken> {
        self.cache.remove(&key).await.filter(|token| token.expires_at > Instant::now())
    }

    /// Puts back a taken token after a failed send, unless it has expired meanwhile. A token
    /// captured while the send was under way wins under last-click; the returned one wins
    /// under first-click, being the older.
    pub(crate) async fn restore(&self, key: TokenKey, token: StoredToken) {
        if token.expires_at > Instant::now() {
            self.put(key, token, self.attribution == Attribution::FirstClick).await;
        }
    }

    /// Stores `token`, replacing a stored one only if `overwrite`; returns whether it was kept.
    async fn put(&self, key: TokenKey, token: StoredToken, overwrite: bool) -> bool {
        if overwrite {
            self.cache.insert(key, token).await;
            true
        } else {
            self.cache.entry(key).or_insert(token).await.is_fresh()
        }
    }
}

/// Expires each token at its own deadline.
struct UntilDeadline;

impl Expiry<TokenKey, StoredToken> for UntilDeadline {
    fn expire_after_create(&self, _: &TokenKey, token: &StoredToken, now: Instant) -> Option<Duration> {
        Some(token.expires_at.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        key: &TokenKey,
        token: &StoredToken,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, token, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(token: &str, ttl: Duration) -> StoredToken {
        StoredToken { token: token.parse().unwrap(), product: 0, expires_at: Instant::now() + ttl }
    }

    #[tokio::test]
    async fn last_click_replaces_first_click_keeps() {
        let last = TokenStore::new(10, Attribution::LastClick);
        assert!(last.insert(1, stored("first", Duration::from_secs(60))).await);
        assert!(last.insert(1, stored("second", Duration::from_secs(60))).await);
        assert_eq!(last.get(1).await.unwrap().token.as_str(), "second");

        let first = TokenStore::new(10, Attribution::FirstClick);
        assert!(first.insert(1, stored("first", Duration::from_secs(60))).await);
        assert!(!first.insert(1, stored("second", Duration::from_secs(60))).await);
        assert_eq!(first.get(1).await.unwrap().token.as_str(), "first");
    }

    #[tokio::test]
    async fn take_is_once_and_restore_puts_back() {
        let store = TokenStore::new(10, Attribution::LastClick);
        store.insert(7, stored("abc", Duration::from_secs(60))).await;
        let taken = store.take(7).await.unwrap();
        assert!(store.take(7).await.is_none());
        store.restore(7, taken).await;
        assert_eq!(store.take(7).await.unwrap().token.as_str(), "abc");
    }

    #[tokio::test]
    async fn restore_keeps_a_newer_token_under_last_click() {
        let store = TokenStore::new(10, Attribution::LastClick);
        store.insert(7, stored("old", Duration::from_secs(60))).await;
        let taken = store.take(7).await.unwrap();
        store.insert(7, stored("new", Duration::from_secs(60))).await;
        store.restore(7, taken).await;
        assert_eq!(store.get(7).await.unwrap().token.as_str(), "new");
    }

    #[tokio::test]
    async fn expired_tokens_vanish_and_are_not_restored() {
        let store = TokenStore::new(10, Attribution::LastClick);
        store.insert(1, stored("abc", Duration::from_millis(30))).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(store.get(1).await.is_none());
        store.restore(2, stored("abc", Duration::ZERO)).await;
        assert!(store.take(2).await.is_none());
    }
}
