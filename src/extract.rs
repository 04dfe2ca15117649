//! [`SovendusConversion`]: send the visitor's conversion from an order handler.

use std::time::SystemTime;

use http::Extensions;
use tower_sessions::Session;

use crate::{
    delivery::{Delivery, Outcome, QueueOutcome},
    error::SovendusError,
    ids::{OrderRef, ProductId, SovReqToken},
    store::{Capture, TokenKey},
    visitor,
};

/// What [`SovendusLayer`](crate::SovendusLayer) leaves in every request's extensions: its
/// delivery, for the extractor. Of nested layers, the innermost's is found, as with any
/// extension.
#[derive(Clone)]
pub(crate) struct Handoff(pub(crate) Delivery);

/// The visitor's Sovendus conversion, taken from the request: send it from the order handler.
///
/// In axum it is an extractor; elsewhere, build it with
/// [`from_extensions`](Self::from_extensions). It needs [`SovendusLayer`](crate::SovendusLayer)
/// and tower-sessions' `SessionManagerLayer` around the handler, and finds both in the
/// request's extensions, whatever middleware runs the handler.
///
/// Sending makes the visitor's token an owed conversion, in the store, in one atomic step:
/// the visitor's next order sends nothing more, and the conversion is delivered until
/// Sovendus answers, by this instance or another, after a restart too (see
/// [`delivery`](crate::delivery)).
///
/// ```
/// use axum::{Router, http::StatusCode, response::IntoResponse, routing::post};
/// use tower_sovendus::{Outcome, SovendusConversion};
///
/// async fn order(conversion: SovendusConversion) -> impl IntoResponse {
///     let token = conversion.token().cloned(); // Option<SovReqToken>: keep it with the order
///     match conversion.for_order("A-10427".parse().expect("a short reference")).send().await {
///         Ok(_) => {} // sent, or no token
///         // Typed: InvalidApiKey, InvalidProductOrToken, WrongUrl, Unavailable, ... The
///         // conversion stays owed (or parked) and is delivered later; the order succeeded.
///         Err(e) => tracing::warn!(error = %e, "Sovendus conversion not delivered yet"),
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
    capture: Option<Capture>,
    order: Option<OrderRef>,
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
        let Handoff(delivery) =
            extensions.get::<Handoff>().cloned().ok_or(SovendusConversionRejection::MissingSovendusLayer)?;
        delivery.start();
        let session = extensions.get::<Session>().ok_or(SovendusConversionRejection::MissingSessionLayer)?;
        let key = visitor::token_key(session).await.map_err(SovendusConversionRejection::Session)?;
        let capture = match key {
            Some(key) => delivery.store().captured(key, SystemTime::now()).await.unwrap_or_else(|error| {
                // The page goes on; sending asks the store again.
                tracing::warn!(%error, "could not look up the Sovendus token: the token store failed");
                None
            }),
            None => None,
        };
        Ok(Self { delivery, key, capture, order: None })
    }

    /// The visitor's token, if they came from Sovendus and no order has taken it yet. Store
    /// it with the order to find it again for a cancellation.
    ///
    /// `None` too if the [token store](crate::store::TokenStore) could not be asked (logged);
    /// [`send`](Self::send) and [`send_in_background`](Self::send_in_background) ask it again.
    pub fn token(&self) -> Option<&SovReqToken> {
        self.capture.as_ref().map(|capture| &capture.token)
    }

    /// The product the token will be booked for.
    pub fn product_id(&self) -> Option<&ProductId> {
        self.capture.as_ref().map(|capture| &capture.product)
    }

    /// Keeps the shop's reference of the order with the conversion, so that
    /// [`Delivery::find`](crate::Delivery::find) finds the token again, e.g. for a cancellation.
    pub fn for_order(mut self, order: OrderRef) -> Self {
        self.order = Some(order);
        self
    }

    /// Makes the visitor's token an owed conversion and delivers it now, with the quick
    /// [retries](crate::RetryPolicy); returns what Sovendus answered.
    ///
    /// Of concurrent orders, double submits and reloads of one visitor, one makes the token
    /// owed; the others get [`Outcome::NoToken`]. An error means the first delivery failed:
    /// the conversion stays owed (5xx, 429, no answer) or is parked (403, 404, 405, an unknown
    /// product) and is delivered later; only a 422 "Token not found." or "Invalid API
    /// parameters." makes it dead. A [`SovendusError::Store`] means nothing changed: the token
    /// stays with the visitor. The delivery runs on its own task, so a visitor who closes the
    /// page mid-send loses nothing.
    ///
    /// The quick retries make the order page wait (up to the policy's `max_elapsed`); shops
    /// that do not show the result use [`send_in_background`](Self::send_in_background).
    pub async fn send(&self) -> Result<Outcome, SovendusError> {
        match self.key {
            Some(key) => self.delivery.send(key, self.order.clone()).await,
            None => Ok(Outcome::NoToken),
        }
    }

    /// Makes the visitor's token an owed conversion and returns: a delivery worker sends it
    /// promptly, with the same retries, and the order page never waits on Sovendus.
    ///
    /// A [`SovendusError::Store`] means nothing changed (the token stays with the visitor); a
    /// [`SovendusError::ShuttingDown`] that the workers were stopped, the token kept too.
    ///
    /// ```
    /// use axum::{Router, routing::post};
    /// use tower_sovendus::{QueueOutcome, SovendusConversion};
    ///
    /// async fn order(conversion: SovendusConversion) -> &'static str {
    ///     match conversion.send_in_background().await {
    ///         Ok(QueueOutcome::Queued) => "thank you (conversion on its way)",
    ///         Ok(_) => "thank you", // no token
    ///         Err(error) => {
    ///             tracing::warn!(%error, "Sovendus conversion kept for a later order");
    ///             "thank you"
    ///         }
    ///     }
    /// }
    ///
    /// let app: Router = Router::new().route("/order", post(order));
    /// ```
    pub async fn send_in_background(&self) -> Result<QueueOutcome, SovendusError> {
        match self.key {
            Some(key) => self.delivery.send_in_background(key, self.order.clone()).await,
            None => Ok(QueueOutcome::NoToken),
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
