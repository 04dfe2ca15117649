//! Capturing a landing's token: read it from the query, check it, and store it against the
//! visitor's session.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use http::Request;
use tower_sessions::{Expiry, Session, cookie::time};
use tracing::Instrument;

use crate::{
    config::SovendusConfig,
    ids::{ProductId, SovReqToken},
    mask::Masked,
    metrics,
    query::{self, Param},
    store::{Capture, NewCapture, StoreError, TokenStore},
    visitor,
};

/// What capturing needs: the layer's configuration and store, and what the layer learns as it
/// goes.
pub(super) struct Capturer {
    pub(super) config: SovendusConfig,
    store: Arc<dyn TokenStore>,
    missing_session_logged: AtomicBool,
    /// How long tower-sessions keeps a session that ends with the browser, once the layer has
    /// seen one (see [`extend_expiry`]).
    browser_session_age: OnceLock<time::Duration>,
}

/// A valid token found on a request, with the product it chose.
pub(super) struct Landing {
    token: SovReqToken,
    product: ProductId,
}

impl Capturer {
    pub(super) fn new(config: SovendusConfig, store: Arc<dyn TokenStore>) -> Self {
        Self {
            config,
            store,
            missing_session_logged: AtomicBool::new(false),
            browser_session_age: OnceLock::new(),
        }
    }

    /// Reads the token and product from the query and applies the capture filter. Refusals
    /// are logged (masked) and counted; the request goes on untouched.
    pub(super) fn landing<B>(&self, req: Request<B>) -> (Request<B>, Option<Landing>) {
        let config = &self.config;
        let query = req.uri().query().unwrap_or_default();
        let parameter = config.token_parameter();
        let token = match query::find(query, parameter) {
            Param::Absent => return (req, None),
            Param::Once(value) => match SovReqToken::new(&value) {
                Ok(token) => token,
                Err(reason) => {
                    tracing::warn!(%parameter, value = %Masked(&value), %reason, "refused Sovendus token");
                    metrics::refused("invalid");
                    return (req, None);
                }
            },
            Param::Repeated => {
                tracing::warn!(%parameter, "refused Sovendus token: the parameter appears more than once");
                metrics::refused("repeated");
                return (req, None);
            }
            Param::NotUtf8 => {
                tracing::warn!(%parameter, "refused Sovendus token: not UTF-8 once decoded");
                metrics::refused("not_utf8");
                return (req, None);
            }
        };
        let products = &config.products;
        let product = match query::find(query, config.product_parameter()) {
            Param::Once(value) => products.get(&value).unwrap_or_else(|| {
                tracing::debug!(value = %Masked(&value), "ignored unknown Sovendus product ID");
                products.primary()
            }),
            _ => products.primary(),
        };
        let landing = Landing { token, product: product.clone() };
        let Some(filter) = &config.capture.filter else {
            return (req, Some(landing));
        };
        let (parts, body) = req.into_parts();
        let allowed = filter(&parts);
        if !allowed {
            tracing::debug!(token = %landing.token, "capture filter declined the Sovendus token");
            metrics::refused("capture_filter");
        }
        (Request::from_parts(parts, body), allowed.then_some(landing))
    }

    /// Logs, once per layer, that `SessionManagerLayer` is missing.
    pub(super) fn log_missing_session(&self) {
        if !self.missing_session_logged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "tower-sovendus cannot capture tokens: no tower_sessions::Session in the request; \
                 add SessionManagerLayer outside SovendusLayer (call .layer(SovendusLayer) first, \
                 then .layer(SessionManagerLayer))"
            );
        }
    }

    /// Stores the token against the session; a failure is logged and counted, and the page
    /// served anyway.
    pub(super) async fn capture(&self, session: &Session, landing: Landing) {
        let span = tracing::info_span!("sovendus.capture", token = %landing.token);
        async {
            match self.store(session, landing).await {
                Ok(true) => {
                    tracing::info!("captured Sovendus token");
                    ::metrics::counter!(metrics::CAPTURED).increment(1);
                }
                Ok(false) => tracing::info!(
                    "Sovendus token not stored: converted before, or an earlier live one wins (first-click)"
                ),
                Err(error) => {
                    tracing::error!(%error, "lost a Sovendus token");
                    metrics::refused(error.reason());
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn store(&self, session: &Session, landing: Landing) -> Result<bool, CaptureError> {
        // Loading the key loads the record: an unknown or forged cookie ID is dropped here,
        // and the visitor gets a new session instead.
        let (key, new_key) = match visitor::token_key(session).await? {
            Some(key) => (key, false),
            None => (visitor::new_token_key(session).await?, true),
        };
        let config = &self.config;
        let ttl = config.token_ttl();
        if config.extends_session_expiry() {
            extend_expiry(session, ttl, &self.browser_session_age);
        }
        // A new key (always the case for a brand-new visitor) is saved at once: the visitor
        // gets a session ID before the handler runs, and the key is durable even if the page
        // fails. Otherwise the session layer saves any change at the end of the request.
        if new_key {
            if let Err(error) = session.save().await {
                // Leave the session as the shop had it: an empty new session is then not saved
                // again by the session layer, so a store outage does not turn the page into a
                // 500.
                session.remove_value(visitor::SESSION_KEY).await.ok();
                return Err(error.into());
            }
        }
        let capture = Capture { token: landing.token, product: landing.product };
        let new = NewCapture { capture, attribution: config.attribution(), at: SystemTime::now(), ttl };
        Ok(self.store.capture(key, new).await?)
    }
}

/// Why a valid token could not be stored.
#[derive(Debug, thiserror::Error)]
enum CaptureError {
    #[error("the session store failed: {0}")]
    Session(#[from] tower_sessions::session::Error),
    #[error(transparent)]
    TokenStore(#[from] StoreError),
}

impl CaptureError {
    /// The `reason` label of the refusal counter.
    fn reason(&self) -> &'static str {
        match self {
            Self::Session(_) => "session_store",
            Self::TokenStore(_) => "token_store",
        }
    }
}

/// Makes the session live at least `ttl` past now, and beyond the browser's closing; never
/// shortens it.
///
/// Reads the clock only for an expiry at a fixed date. A session ending with the browser lives
/// in its store for a fixed time (two weeks in tower-sessions 0.14, not public), read once, off
/// the first such session, into `browser_session_age`.
fn extend_expiry(session: &Session, ttl: Duration, browser_session_age: &OnceLock<time::Duration>) {
    let Ok(ttl) = time::Duration::try_from(ttl) else { return };
    let (ends_with_browser, current) = match session.expiry() {
        Some(Expiry::OnInactivity(age)) => (false, age),
        Some(Expiry::AtDateTime(_)) => (false, session.expiry_age()),
        None | Some(Expiry::OnSessionEnd) => {
            (true, *browser_session_age.get_or_init(|| session.expiry_age()))
        }
    };
    if ends_with_browser || current < ttl {
        session.set_expiry(Some(Expiry::OnInactivity(ttl.max(current))));
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration as StdDuration};

    use tower_sessions::{
        Expiry, MemoryStore, Session,
        cookie::time::{Duration, OffsetDateTime},
    };

    use super::{OnceLock, extend_expiry};

    const DAY: Duration = Duration::days(1);

    /// A session as the session layer hands it over, with the shop's `expiry`.
    fn session(expiry: Option<Expiry>) -> Session {
        Session::new(None, Arc::new(MemoryStore::default()), expiry)
    }

    /// The expiry `extend_expiry` leaves with a token TTL of `ttl_days`.
    fn extended(expiry: Option<Expiry>, ttl_days: u64) -> Option<Expiry> {
        let session = session(expiry);
        extend_expiry(&session, StdDuration::from_secs(ttl_days * 86_400), &OnceLock::new());
        session.expiry()
    }

    fn on_inactivity_days(expiry: Option<Expiry>) -> f64 {
        match expiry {
            Some(Expiry::OnInactivity(age)) => age / DAY,
            other => panic!("expected an expiry on inactivity, got {other:?}"),
        }
    }

    #[test]
    fn a_session_ending_with_the_browser_lives_for_the_ttl() {
        for expiry in [None, Some(Expiry::OnSessionEnd)] {
            assert_eq!(extended(expiry, 30), Some(Expiry::OnInactivity(30 * DAY)), "{expiry:?}");
        }
    }

    #[test]
    fn a_short_ttl_does_not_cut_the_stores_own_life_of_a_browser_session() {
        // tower-sessions keeps a browser session two weeks in its store.
        let days = on_inactivity_days(extended(None, 1));
        assert!((13.99..=14.0).contains(&days), "{days} days");
    }

    #[test]
    fn a_longer_life_is_kept_and_a_shorter_one_extended() {
        assert_eq!(extended(Some(Expiry::OnInactivity(60 * DAY)), 30), Some(Expiry::OnInactivity(60 * DAY)));
        assert_eq!(extended(Some(Expiry::OnInactivity(DAY)), 30), Some(Expiry::OnInactivity(30 * DAY)));

        let far = Some(Expiry::AtDateTime(OffsetDateTime::now_utc() + 90 * DAY));
        assert_eq!(extended(far, 30), far);
        let near = Some(Expiry::AtDateTime(OffsetDateTime::now_utc() + DAY));
        assert_eq!(extended(near, 30), Some(Expiry::OnInactivity(30 * DAY)));
    }

    #[test]
    fn the_browser_session_life_is_read_once_and_reused() {
        let age = OnceLock::new();
        extend_expiry(&session(None), StdDuration::from_secs(86_400), &age);
        let read = *age.get().expect("read off the first browser session");
        assert!((13.99..=14.0).contains(&(read / DAY)), "{read}");

        let later = session(Some(Expiry::OnSessionEnd));
        extend_expiry(&later, StdDuration::from_secs(86_400), &age);
        assert_eq!(later.expiry(), Some(Expiry::OnInactivity(read)), "the cached life, not a new clock read");
    }
}
