//! The shop's own transaction taking the visitor's capture: [`SqlConnection`], and the take
//! on it. The order and its conversion then commit, or roll back, together.

use super::{Pool, SqlTokenStore, on_pool, take::Take};
use crate::store::{NewConversion, StoreError, Taken, TokenKey};

/// A connection of the shop's, inside the transaction that writes an order: what
/// `SovendusConversion::owe_in` takes (feature `sqlite` or `postgres`). Made from sqlx's
/// `&mut *transaction`; a connection that is not in a transaction is refused.
///
/// ```no_run
/// use tower_sovendus::store::{SqlConnection, sqlx::SqlitePool};
///
/// # async fn order(pool: SqlitePool) -> Result<(), sqlx::Error> {
/// let mut transaction = pool.begin().await?;
/// let connection: SqlConnection<'_> = (&mut *transaction).into();
/// # drop(connection);
/// # Ok(()) }
/// ```
pub struct SqlConnection<'c>(Connection<'c>);

/// The connection of one of the backends.
enum Connection<'c> {
    #[cfg(feature = "sqlite")]
    Sqlite(&'c mut sqlx::SqliteConnection),
    #[cfg(feature = "postgres")]
    Postgres(&'c mut sqlx::PgConnection),
}

#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
impl<'c> From<&'c mut sqlx::SqliteConnection> for SqlConnection<'c> {
    fn from(connection: &'c mut sqlx::SqliteConnection) -> Self {
        Self(Connection::Sqlite(connection))
    }
}

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
impl<'c> From<&'c mut sqlx::PgConnection> for SqlConnection<'c> {
    fn from(connection: &'c mut sqlx::PgConnection) -> Self {
        Self(Connection::Postgres(connection))
    }
}

impl std::fmt::Debug for SqlConnection<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.0 {
            #[cfg(feature = "sqlite")]
            Connection::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Connection::Postgres(_) => "postgres",
        };
        f.debug_tuple("SqlConnection").field(&backend).finish()
    }
}

/// Why a shop's transaction could not take the visitor's conversion
/// ([`ConversionStore::take_in`](crate::store::ConversionStore::take_in)): nothing was taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TakeInError {
    /// The transaction cannot take it: the store cannot join a shop's transaction, the
    /// transaction is on another database than the store's, or the connection is not in a
    /// transaction. Says which.
    #[error("the order's transaction cannot take the Sovendus conversion: {0}")]
    Unjoinable(String),
    /// A statement failed: on Postgres that aborted the transaction.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SqlConnection<'_> {
    /// The backend's name.
    pub(super) fn backend(&self) -> &'static str {
        match self.0 {
            #[cfg(feature = "sqlite")]
            Connection::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Connection::Postgres(_) => "postgres",
        }
    }
}

impl SqlTokenStore {
    /// The identity [`migrate`](Self::migrate) gave the store's database, read once.
    pub(super) async fn database_id(&self) -> Result<String, StoreError> {
        let id = self.database.get_or_try_init(|| async {
            self.within_timeout(async { on_pool!(self, |pool| Take::database_on_pool(pool).await) }).await
        });
        id.await.cloned()
    }

    /// Takes the capture for `key` into `conversion` on the shop's `connection`, inside its
    /// transaction (see [`ConversionStore::take_in`](crate::store::ConversionStore::take_in)).
    pub(super) async fn take_in_shop(
        &self,
        shop: &mut SqlConnection<'_>,
        key: TokenKey,
        conversion: NewConversion,
    ) -> Result<Taken, TakeInError> {
        let ours = self.database_id().await?;
        let taken = match (&self.pool, &mut shop.0) {
            #[cfg(feature = "sqlite")]
            (Pool::Sqlite(_), Connection::Sqlite(connection)) => {
                in_transaction(&**connection)?;
                Take::<sqlx::Sqlite>::capture(connection, &ours, key, conversion).await
            }
            #[cfg(feature = "postgres")]
            (Pool::Postgres(_), Connection::Postgres(connection)) => {
                in_transaction(&**connection)?;
                Take::<sqlx::Postgres>::capture(connection, &ours, key, conversion).await
            }
            #[allow(unreachable_patterns)]
            _ => {
                let why = format!(
                    "the transaction is on {}, the token store on {}",
                    shop.backend(),
                    self.dialect().name
                );
                return Err(TakeInError::Unjoinable(why));
            }
        };
        match taken {
            // Logged, counted and removed with the order, which need not fail for it.
            Err(TakeInError::Store(StoreError::Unreadable(_))) => Ok(Taken::NoCapture),
            taken => taken,
        }
    }

    /// Reads the identity [`migrate`](Self::migrate) gave the database into the store, so that
    /// a take inside a shop's transaction never waits for a second connection of the pool.
    pub(super) fn know_database(&self, id: String) {
        // Set once: a second migrate of the same store finds the same identity.
        let _ = self.database.set(id);
    }
}

/// Refuses a connection that is not in a transaction: its take would commit on its own.
fn in_transaction(connection: &impl sqlx::Connection) -> Result<(), TakeInError> {
    match connection.is_in_transaction() {
        true => Ok(()),
        false => Err(TakeInError::Unjoinable(
            "the connection is not in a transaction: pass `&mut *transaction`".to_owned(),
        )),
    }
}
