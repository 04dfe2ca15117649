//! The visitor's [`TokenKey`], kept in their session: what links a session to its token.

use tower_sessions::Session;

use crate::store::TokenKey;

/// The session entry holding the visitor's [`TokenKey`].
pub(crate) const SESSION_KEY: &str = "tower_sovendus.key";

/// The visitor's token key. Reading it loads the session record from the store, so the key
/// comes from a session the store knows, never from an unverified cookie.
///
/// Kept as a decimal string: JSON session stores cannot hold a 128-bit number.
pub(crate) async fn token_key(session: &Session) -> Result<Option<TokenKey>, tower_sessions::session::Error> {
    let key = session.get::<String>(SESSION_KEY).await?;
    Ok(key.and_then(|key| key.parse().ok()))
}

/// Gives the session a new random token key and returns it.
pub(crate) async fn new_token_key(session: &Session) -> Result<TokenKey, tower_sessions::session::Error> {
    // tower-sessions' session IDs are 128 random bits: the same strength serves here.
    let key = tower_sessions::session::Id::default().0;
    session.insert(SESSION_KEY, key.to_string()).await?;
    Ok(key)
}
