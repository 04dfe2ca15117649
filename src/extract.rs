//! [`SovendusConversion`]: send the visitor's conversion from an order handler.

use std::time::SystemTime;

use http::Extensions;
use tower_sessions::Session;

use crate::{
    delivery::{Delivery, Outcome},
    error::SovendusError,
    ids::{OrderRef, ProductId, SovReqToken},
    store::{Capture, TokenKey},
    visitor,
};

/// What [`SovendusLayer`](crate::SovendusLayer) leaves in every request's extensions: its
/// delivery, for the extractor. Of nested layers, the innermost's is found, as with any
/// extension.
#[derive(Clone)]
pub(crate) struct LayerDelivery(pub(crate) Delivery);

/// The visitor's Sovendus conversion, taken from the request: record it from the order handler.
///
/// In axum it is an extractor; elsewhere, build it with
/// [`from_extensions`](Self::from_extensions). It needs [`SovendusLayer`](crate::SovendusLayer)
/// and tower-sessions' `SessionManagerLayer` around the handler, and finds both in the
/// request's extensions, whatever middleware runs the handler.
///
/// Recording makes the visitor's token an owed conversion, in the store, in one atomic step:
/// the visitor's next order records nothing more, and the conversion is delivered until
/// Sovendus answers, by this instance or another, after a restart too (see
/// [`delivery`](crate::delivery)). Three ways, each answering an [`Outcome`]; `Err` only when
/// nothing was recorded:
///
/// - `owe_in(&mut *transaction)` (SQL stores): in the order's own transaction, so the
///   conversion commits, or rolls back, with the order.
/// - [`send`](Self::send): after the order's commit, delivered at once (the page waits).
/// - [`send_in_background`](Self::send_in_background): after the commit, delivered by the
///   workers.
///
/// ```
/// use axum::{Router, http::StatusCode, routing::post};
/// use tower_sovendus::{Outcome, SovendusConversion};
///
/// async fn order(conversion: SovendusConversion) -> StatusCode {
///     // ...the order committed, with `conversion.token()` kept beside it.
///     let order = "A-10427".parse().expect("a short reference");
///     match conversion.for_order(order).send().await {
///         Ok(Outcome::Sent { .. }) => tracing::info!("booked"),
///         Ok(Outcome::Parked { error, .. }) => tracing::error!(%error, "check the Sovendus setup"),
///         Ok(outcome) => tracing::info!(?outcome, "recorded or nothing to record"),
///         // Nothing recorded: the token stays with the visitor, for their next order.
///         Err(error) => tracing::warn!(%error, "Sovendus conversion not recorded"),
///     }
///     StatusCode::OK
/// }
///
/// let app: Router = Router::new().route("/order", post(order));
/// ```
#[derive(Clone)]
pub struct SovendusConversion {
    delivery: Delivery,
    key: Option<TokenKey>,
    /// The visitor's capture, looked up at the first ask: an order that never asks costs the
    /// store no read.
    capture: tokio::sync::OnceCell<Option<Capture>>,
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
        let LayerDelivery(delivery) = extensions
            .get::<LayerDelivery>()
            .cloned()
            .ok_or(SovendusConversionRejection::MissingSovendusLayer)?;
        delivery.start();
        let session = extensions.get::<Session>().ok_or(SovendusConversionRejection::MissingSessionLayer)?;
        let key = visitor::token_key(session).await.map_err(SovendusConversionRejection::Session)?;
        Ok(Self { delivery, key, capture: tokio::sync::OnceCell::new(), order: None })
    }

    /// The visitor's live capture, asked of the store once.
    async fn capture(&self) -> Option<&Capture> {
        let captured = self.capture.get_or_init(|| async {
            let key = self.key?;
            self.delivery.store().captured(key, SystemTime::now()).await.unwrap_or_else(|error| {
                // The page goes on; recording asks the store again.
                tracing::warn!(%error, "could not look up the Sovendus token: the token store failed");
                None
            })
        });
        captured.await.as_ref()
    }

    /// The visitor's token, if they came from Sovendus and no order has converted it: what
    /// recording the conversion would book. Keep it with the order (and the
    /// [product](Self::product_id)), for a cancellation, and for
    /// [`Delivery::owe`](crate::Delivery::owe) after a crash.
    ///
    /// The store is asked at the first call (one read), not when the extractor runs: an order
    /// handler that only records the conversion costs the store no read. `None` too if the
    /// [token store](crate::store::TokenStore) could not be asked (logged); recording asks it
    /// again.
    pub async fn token(&self) -> Option<&SovReqToken> {
        self.capture().await.map(|capture| &capture.token)
    }

    /// The product the token will be booked for (see [`token`](Self::token)).
    pub async fn product_id(&self) -> Option<&ProductId> {
        self.capture().await.map(|capture| &capture.product)
    }

    /// Keeps the shop's reference of the order with the conversion, so that
    /// [`Delivery::find`](crate::Delivery::find) finds the token again, e.g. for a cancellation.
    pub fn for_order(mut self, order: OrderRef) -> Self {
        self.order = Some(order);
        self
    }

    /// Makes the visitor's token an owed conversion inside the order's own transaction, on
    /// `connection` (`&mut *transaction`, sqlx's): it commits with the order, and a rollback
    /// leaves the token with the visitor. The workers deliver it once committed (they look
    /// for it every 25 ms until they find it); nothing more to do after the commit. Needs a
    /// [`SqlTokenStore`](crate::SqlTokenStore) on the transaction's database.
    ///
    /// Answers [`Outcome::Owed`] (owed once committed), [`Outcome::AlreadyConverted`] or
    /// [`Outcome::NoToken`]. On `Err`, roll the transaction back: a statement of the take
    /// failed ([`SovendusError::Store`]; on Postgres that aborted the transaction, and a commit
    /// would silently roll the order back), or the transaction cannot take the conversion
    /// ([`SovendusError::Unjoinable`]: not the store's database, not a transaction). Once
    /// rolled back, nothing is recorded and the token is the visitor's. The database is checked
    /// with the take's own statement, so an order without a token checks nothing: a setup
    /// mistake shows on the first order of a Sovendus visitor. The check is of an identity
    /// [`migrate`](crate::SqlTokenStore::migrate) gives the database: a copy of it (a restored
    /// backup, a copied file) passes.
    ///
    /// It takes no lock of the crate's and has no timeout of its own: it waits for the database
    /// as the transaction's own statements do. It takes no second connection of the pool once
    /// the store knows its database's identity: from [`migrate`](crate::SqlTokenStore::migrate)
    /// on this store, else read once, on a connection of the pool, at the first take. Of two
    /// transactions taking one visitor's token, the second waits for the first and then finds
    /// it taken (Postgres, at `READ COMMITTED`), or never runs beside it (SQLite runs one write
    /// transaction at a time).
    ///
    /// ```no_run
    /// use axum::{Router, extract::State, http::StatusCode, routing::post};
    /// use tower_sovendus::{SovendusConversion, store::sqlx::SqlitePool};
    ///
    /// async fn order(State(pool): State<SqlitePool>, conversion: SovendusConversion) -> Result<String, StatusCode> {
    ///     let fail = |_| StatusCode::INTERNAL_SERVER_ERROR;
    ///     let mut transaction = pool.begin().await.map_err(fail)?;
    ///     sqlx::query("INSERT INTO orders (reference) VALUES ('A-10427')")
    ///         .execute(&mut *transaction).await.map_err(fail)?;
    ///     let order = "A-10427".parse().expect("a short reference");
    ///     let outcome = conversion.for_order(order).owe_in(&mut *transaction).await;
    ///     let outcome = outcome.map_err(|error| { tracing::error!(%error); StatusCode::INTERNAL_SERVER_ERROR })?;
    ///     transaction.commit().await.map_err(fail)?;
    ///     Ok(format!("thank you ({:?})", outcome.recorded()))
    /// }
    ///
    /// # let pool = SqlitePool::connect_lazy("sqlite::memory:").unwrap();
    /// let app: Router = Router::new().route("/order", post(order)).with_state(pool);
    /// ```
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
    pub async fn owe_in<'c>(
        &self,
        connection: impl Into<crate::store::SqlConnection<'c>>,
    ) -> Result<Outcome, SovendusError> {
        self.delivery.owe_in(self.key, self.order.clone(), connection.into()).await
    }

    /// Makes the visitor's token an owed conversion and delivers it now, with the quick
    /// [retries](crate::RetryPolicy); returns where it stands: [`Outcome::Sent`] (booked),
    /// [`Owed`](Outcome::Owed) (retried on the schedule), [`Parked`](Outcome::Parked) (the
    /// shop's setup is wrong), [`Dead`](Outcome::Dead), [`AlreadyConverted`](Outcome::AlreadyConverted),
    /// [`NoToken`](Outcome::NoToken) or [`Unknown`](Outcome::Unknown). Call it after the order
    /// committed.
    ///
    /// Of concurrent orders, double submits and reloads of one visitor, one makes the token
    /// owed; the others get [`Outcome::AlreadyConverted`] or [`Outcome::NoToken`]. `Err` means
    /// nothing was recorded (the store refused or is full): the token stays with the visitor.
    /// The delivery runs on its own task, so a visitor who closes the page mid-send loses
    /// nothing.
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
    /// promptly, with the same retries, and the order page never waits on Sovendus. Answers
    /// [`Outcome::Owed`], [`AlreadyConverted`](Outcome::AlreadyConverted),
    /// [`NoToken`](Outcome::NoToken) or [`Unknown`](Outcome::Unknown).
    ///
    /// `Err` means nothing was recorded and the token stays with the visitor: the store
    /// refused or is full, or the workers were stopped ([`SovendusError::ShuttingDown`]).
    ///
    /// ```
    /// use axum::{Router, routing::post};
    /// use tower_sovendus::{Outcome, SovendusConversion};
    ///
    /// async fn order(conversion: SovendusConversion) -> &'static str {
    ///     match conversion.send_in_background().await {
    ///         Ok(Outcome::Owed { .. }) => "thank you (conversion on its way)",
    ///         Ok(_) => "thank you", // no token, converted before, or the store did not say
    ///         Err(error) => {
    ///             tracing::warn!(%error, "Sovendus conversion kept for a later order");
    ///             "thank you"
    ///         }
    ///     }
    /// }
    ///
    /// let app: Router = Router::new().route("/order", post(order));
    /// ```
    pub async fn send_in_background(&self) -> Result<Outcome, SovendusError> {
        match self.key {
            Some(key) => self.delivery.send_in_background(key, self.order.clone()).await,
            None => Ok(Outcome::NoToken),
        }
    }
}

impl std::fmt::Debug for SovendusConversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let capture = self.capture.get().and_then(Option::as_ref);
        f.debug_struct("SovendusConversion")
            .field("token", &capture.map(|capture| &capture.token))
            .field("product_id", &capture.map(|capture| &capture.product))
            .finish_non_exhaustive()
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
