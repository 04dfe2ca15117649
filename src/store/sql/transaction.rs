//! The shop's own transaction taking the visitor's capture: [`SqlConnection`], and the take
//! on it. The order and its conversion then commit, or roll back, together.

use super::{Dialect, Pool, SqlTokenStore, backend, on_pool, queries, taken_from};
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

/// Why a shop's transaction cannot take a conversion.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// It is on another database than the store's: why.
    Unjoinable(String),
    /// The database failed.
    Store(StoreError),
}

/// Runs `$body` with `$connection` bound to the shop's connection and `$pool` to the store's
/// pool, of the same backend; refuses a connection of the other backend.
macro_rules! on_connection {
    ($store:expr, $shop:expr, |$pool:ident, $connection:ident| $body:expr) => {{
        #[allow(unreachable_patterns)]
        match (&$store.pool, &mut $shop.0) {
            #[cfg(feature = "sqlite")]
            (Pool::Sqlite($pool), Connection::Sqlite($connection)) => $body,
            #[cfg(feature = "postgres")]
            (Pool::Postgres($pool), Connection::Postgres($connection)) => $body,
            _ => Err(Refusal::Unjoinable(format!(
                "the transaction is on {}, the token store on {}",
                $shop.backend(),
                $store.dialect().name
            ))),
        }
    }};
}

/// Whether `error` says a table is missing: the database is not one `migrate` ran on.
fn is_missing_table(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(error) = error else { return false };
    // Postgres' undefined_table; SQLite has no code of its own for it.
    error.code().as_deref() == Some("42P01") || error.message().starts_with("no such table")
}

impl SqlConnection<'_> {
    fn backend(&self) -> &'static str {
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
    async fn database_id(&self) -> Result<String, StoreError> {
        let id = self.database.get_or_try_init(|| async {
            self.within_timeout(async {
                on_pool!(self, |pool| {
                    sqlx::query_scalar(queries::DATABASE_ID).fetch_one(pool).await.map_err(backend)
                })
            })
            .await
        });
        id.await.cloned()
    }

    /// Takes the capture for `key` into `conversion` on the shop's `connection`, inside its
    /// transaction: owed once it commits, nothing if it rolls back. Refuses a connection to
    /// another database than the store's, before it writes: the capture's locking write names
    /// the store's database. Waits for the shop's database as the shop's own statements do (no
    /// timeout of the store's: the transaction is the shop's).
    pub(crate) async fn take_in(
        &self,
        shop: &mut SqlConnection<'_>,
        key: TokenKey,
        conversion: NewConversion,
    ) -> Result<Taken, Refusal> {
        let ours = self.database_id().await.map_err(Refusal::Store)?;
        on_connection!(self, shop, |_pool, connection| {
            let connection = &mut **connection;
            if !sqlx::Connection::is_in_transaction(connection) {
                return Err(Refusal::Unjoinable(
                    "the connection is not in a transaction: pass `&mut *transaction`".to_owned(),
                ));
            }
            let held = sqlx::query(queries::TAKE_CAPTURE_OF_DATABASE)
                .bind(key.to_string())
                .bind(&ours)
                .fetch_all(&mut *connection)
                .await;
            let held = match held {
                Ok(held) => held,
                Err(error) if is_missing_table(&error) => {
                    return Err(Refusal::Unjoinable(
                        "the transaction's database has no Sovendus tables (SqlTokenStore::migrate ran on another)"
                            .to_owned(),
                    ));
                }
                Err(error) => return Err(Refusal::Store(backend(error))),
            };
            if held.is_empty() {
                // No capture here, or not the store's database: which?
                let theirs: String = sqlx::query_scalar(queries::DATABASE_ID)
                    .fetch_one(&mut *connection)
                    .await
                    .map_err(|error| Refusal::Store(backend(error)))?;
                if theirs != ours {
                    return Err(Refusal::Unjoinable(
                        "the transaction's database is not the token store's".to_owned(),
                    ));
                }
            }
            let taken: Result<Taken, StoreError> =
                async { taken_from!(connection, key, held, conversion) }.await;
            match taken {
                // Logged, counted and removed with the order, which need not fail for it.
                Err(StoreError::Unreadable(_)) => Ok(Taken::NoCapture),
                taken => taken.map_err(Refusal::Store),
            }
        })
    }

    /// Reads the identity [`migrate`](Self::migrate) gave the database into the store, so that
    /// a take inside a shop's transaction never waits for a second connection of the pool.
    pub(super) fn know_database(&self, id: String) {
        // Set once: a second migrate of the same store finds the same identity.
        let _ = self.database.set(id);
    }

    /// Whether conversion `id` is committed, as the store's pool sees it.
    pub(crate) async fn is_committed(&self, id: crate::store::ConversionId) -> Result<bool, StoreError> {
        self.within_timeout(async {
            on_pool!(self, |pool| {
                let count: i64 = sqlx::query_scalar(queries::CONVERSION_EXISTS)
                    .bind(id.to_string())
                    .fetch_one(pool)
                    .await
                    .map_err(backend)?;
                Ok(count > 0)
            })
        })
        .await
    }
}
