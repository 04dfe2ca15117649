//! [`SovendusConversion`]: send the visitor's conversion from an order handler.

use http::Extensions;
use tower_sessions::Session;

use crate::{
    config::ProductId,
    delivery::{Delivery, Outcome, QueueOutcome},
    error::SovendusError,
    handoff,
    store::{PendingToken, TokenKey},
    token::SovReqToken,
    visitor,
};

/// The visitor's pending Sovendus conversion, taken from the request.
///
/// In axum it is an extractor; elsewhere, build it with
/// [`from_extensions`](Self::from_extensions). It needs [`SovendusLayer`](crate::SovendusLayer)
/// and tower-sessions' `SessionManagerLayer` around the handler, and finds both in the
/// request's extensions, whatever middleware runs the handler.
///
/// The order handler from the design document, as shops write it:
///
/// ```
/// use axum::{Router, http::StatusCode, response::IntoResponse, routing::post};
/// use tower_sovendus::{Outcome, SovendusConversion};
///
/// async fn order(conversion: SovendusConversion) -> impl IntoResponse {
///     let token = conversion.token().cloned(); // Option<SovReqToken>: keep it with the order
///     match conversion.send().await {
///         Ok(Outcome::Sent(_)) | Ok(Outcome::NoToken) => { /* ... */ }
///         // Typed: InvalidApiKey, InvalidProductOrToken, WrongUrl, Unavailable, ...
///         // The token is kept for a later attempt; the order itself succeeded.
///         Err(e) => tracing::warn!(error = %e, "Sovendus conversion not sent yet"),
///     }
///     let _ = token;
///     StatusCode::OK
/// }
///
/// let app: Router = Router::new().route("/order", post(order));
/// ```
#[derive(Clone)]
pub struct SovendusConversion {
    delivery: Delivery,
    key: Option<TokenKey>,
    pending: Option<PendingToken>,
    /// The token store could not be asked: the visitor may have a token all the same.
    store_failed: bool,
}

impl SovendusConversion {
    /// Builds the conversion from a request's extensions, for services without axum.
    ///
    /// This loads the visitor's session from its store. Call it inside the service the layer
    /// wraps: both layers left their handles in `extensions`.
    ///
    /// ```
    /// use http::Request;
    /// use tower_sovendus::{SovendusConversion, extract::SovendusConversionRejection};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let request = Request::new(());
    /// let rejection = SovendusConversion::from_extensions(request.extensions()).await.err();
    /// assert!(matches!(rejection, Some(SovendusConversionRejection::MissingSovendusLayer)));
    /// # }
    /// ```
    pub async fn from_extensions(extensions: &Extensions) -> Result<Self, SovendusConversionRejection> {
        let delivery =
            handoff::delivery(extensions).ok_or(SovendusConversionRejection::MissingSovendusLayer)?;
        let session = extensions.get::<Session>().ok_or(SovendusConversionRejection::MissingSessionLayer)?;
        let key = visitor::token_key(session).await.map_err(SovendusConversionRejection::Session)?;
        let (pending, store_failed) = match key {
            Some(key) => match delivery.store().get(key).await {
                Ok(pending) => (pending, false),
                Err(error) => {
                    // The order page goes on; sending tries the store again.
                    tracing::warn!(%error, "could not look up the Sovendus token: the token store failed");
                    (None, true)
                }
            },
            None => (None, false),
        };
        Ok(Self { delivery, key, pending, store_failed })
    }

    /// The visitor's token, if they came from Sovendus and it has not been sent yet. Store it
    /// with the order to find it again for a cancellation.
    ///
    /// `None` too if the [token store](crate::store::TokenStore) could not be asked (logged);
    /// [`send`](Self::send) and [`send_in_background`](Self::send_in_background) try it again.
    ///
    /// ```
    /// use axum::{Router, routing::post};
    /// use tower_sovendus::SovendusConversion;
    ///
    /// async fn order(conversion: SovendusConversion) -> String {
    ///     // Saved with the order, to cancel the conversion if the order is returned.
    ///     let token = conversion.token().map(|token| token.as_str().to_owned());
    ///     format!("order placed, Sovendus token: {}", token.as_deref().unwrap_or("none"))
    /// }
    ///
    /// let app: Router = Router::new().route("/order", post(order));
    /// ```
    pub fn token(&self) -> Option<&SovReqToken> {
        self.pending.as_ref().map(|pending| &pending.token)
    }

    /// The product the token will be booked for.
    ///
    /// ```
    /// use axum::{Router, routing::post};
    /// use tower_sovendus::SovendusConversion;
    ///
    /// async fn order(conversion: SovendusConversion) -> String {
    ///     match conversion.product_id() {
    ///         Some(product) => format!("conversion pending for product {product}"),
    ///         None => "no Sovendus visitor".to_owned(),
    ///     }
    /// }
    ///
    /// let app: Router = Router::new().route("/order", post(order));
    /// ```
    pub fn product_id(&self) -> Option<&ProductId> {
        self.pending.as_ref().map(|pending| &pending.product)
    }

    /// Sends the conversion to Sovendus and waits for the answer, retrying under the
    /// configured [`RetryPolicy`](crate::RetryPolicy).
    ///
    /// Exactly once: the token is leased while it is sent, so of concurrent orders, double
    /// submits, reloads and background workers for one visitor exactly one sends it; the
    /// others get [`Outcome::NoToken`]. It is deleted after Sovendus answered 200 or a
    /// terminal error (403, 404, 405, 422); after a retryable failure it stays stored for a
    /// later attempt. The call runs on its own task, so a handler cancelled mid-send (the
    /// visitor left) still settles the token.
    ///
    /// Retries make the order page wait (up to the policy's `max_elapsed`); shops that do not
    /// show the result use [`send_in_background`](Self::send_in_background).
    ///
    /// ```
    /// use axum::{Router, routing::post};
    /// use tower_sovendus::{Outcome, SovendusConversion};
    ///
    /// async fn order(conversion: SovendusConversion) -> &'static str {
    ///     match conversion.send().await {
    ///         Ok(Outcome::Sent(_)) => "thank you (conversion sent)",
    ///         Ok(Outcome::NoToken) => "thank you",
    ///         Err(error) if error.is_retryable() => "thank you (conversion kept for a retry)",
    ///         Err(_) => "thank you (conversion refused: check the configuration)",
    ///     }
    /// }
    ///
    /// let app: Router = Router::new().route("/order", post(order));
    /// ```
    pub async fn send(&self) -> Result<Outcome, SovendusError> {
        match self.key {
            Some(key) => self.delivery.send(key).await,
            None => Ok(Outcome::NoToken),
        }
    }

    /// Queues the conversion for a background worker and returns at once, so the order page
    /// never waits on Sovendus. Workers send promptly, with the same retries and the same
    /// exactly-once guarantee as [`send`](Self::send).
    ///
    /// A full queue answers [`SovendusError::QueueFull`], a shut-down one
    /// [`SovendusError::ShuttingDown`]; the token stays stored either way. Await
    /// [`Delivery::shutdown`] when the app stops.
    ///
    /// Must be called inside a Tokio runtime (as every axum handler is): the first call
    /// starts the workers.
    ///
    /// ```
    /// use axum::{Router, routing::post};
    /// use tower_sovendus::{SovendusConversion, delivery::QueueOutcome};
    ///
    /// async fn order(conversion: SovendusConversion) -> &'static str {
    ///     match conversion.send_in_background() {
    ///         Ok(QueueOutcome::Queued) => "thank you (conversion on its way)",
    ///         Ok(QueueOutcome::NoToken) => "thank you",
    ///         Err(error) => {
    ///             tracing::warn!(%error, "Sovendus conversion kept for a later order");
    ///             "thank you"
    ///         }
    ///     }
    /// }
    ///
    /// let app: Router = Router::new().route("/order", post(order));
    /// ```
    pub fn send_in_background(&self) -> Result<QueueOutcome, SovendusError> {
        match self.key {
            Some(key) if self.pending.is_some() || self.store_failed => {
                self.delivery.push(key)?;
                Ok(QueueOutcome::Queued)
            }
            _ => Ok(QueueOutcome::NoToken),
        }
    }
}

impl std::fmt::Debug for SovendusConversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SovendusConversion")
            .field("token", &self.token())
            .field("product_id", &self.product_id())
            .finish()
    }
}

/// Why a [`SovendusConversion`] could not be extracted: a setup mistake, answered with a 500
/// whose body says what to add.
///
/// ```
/// use axum::response::IntoResponse;
/// use http::StatusCode;
/// use tower_sovendus::extract::SovendusConversionRejection;
///
/// let rejection = SovendusConversionRejection::MissingSessionLayer;
/// assert!(rejection.to_string().contains("SessionManagerLayer::new(store)"));
/// assert_eq!(rejection.into_response().status(), StatusCode::INTERNAL_SERVER_ERROR);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SovendusConversionRejection {
    /// No [`SovendusLayer`](crate::SovendusLayer) wraps the handler.
    #[error(
        "SovendusConversion needs SovendusLayer: add `.layer(SovendusLayer::new(config))` to the router, \
         inside (before) `.layer(SessionManagerLayer::new(store))`"
    )]
    MissingSovendusLayer,
    /// No tower-sessions `SessionManagerLayer` wraps the handler.
    #[error(
        "SovendusConversion needs tower-sessions' SessionManagerLayer: add \
         `.layer(SessionManagerLayer::new(store))` to the router, outside (after) `.layer(SovendusLayer::new(config))`"
    )]
    MissingSessionLayer,
    /// The session could not be loaded from its store.
    #[error("could not load the session: {0}")]
    Session(#[source] tower_sessions::session::Error),
}

#[cfg(feature = "axum")]
mod axum_impls {
    use axum_core::{
        extract::FromRequestParts,
        response::{IntoResponse, Response},
    };
    use http::{StatusCode, request::Parts};

    use super::{SovendusConversion, SovendusConversionRejection};

    impl<S: Send + Sync> FromRequestParts<S> for SovendusConversion {
        type Rejection = SovendusConversionRejection;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            Self::from_extensions(&parts.extensions).await
        }
    }

    impl IntoResponse for SovendusConversionRejection {
        fn into_response(self) -> Response {
            match &self {
                Self::Session(error) => tracing::error!(%error, "SovendusConversion: session store failed"),
                _ => tracing::error!(rejection = %self, "SovendusConversion: misconfigured router"),
            }
            (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
        }
    }
}
