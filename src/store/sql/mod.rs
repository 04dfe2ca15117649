//! [`SqlTokenStore`]: captures and owed conversions in SQLite or Postgres, on sqlx 0.8. Each
//! query is in `queries.rs`, what is due included (`due_at`, kept by every write); the take's
//! statements, shared by the store's own transaction and the shop's, in `take.rs`.

mod inspection;
mod migrate;
#[cfg(test)]
mod plans;
mod queries;
mod read;
mod take;
mod transaction;

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use sqlx::Row;

use self::{queries::Dialect, take::Take};
use super::{
    Capture, CaptureStore, Conversion, ConversionId, ConversionState, ConversionStore, Lease, LeaseId,
    NewCapture, NewConversion, Outbox, Settlement, StoreError, Taken, TokenKey, VoidOutcome, async_trait,
    records::{from_millis, to_millis},
};
use crate::{config::Attribution, ids::OrderRef};

/// How long [`SqlTokenStore`] waits for the database before it gives up on one operation: 5
/// seconds.
pub const DEFAULT_SQL_TIMEOUT: Duration = Duration::from_secs(5);

pub use self::transaction::{SqlConnection, TakeInError};

/// A [`TokenStore`](super::TokenStore) in SQLite or Postgres: durable, and on Postgres shared by every instance of
/// the shop (a visitor who lands on one instance and orders on another converts, once).
///
/// Give it the pool of tower-sessions-sqlx-store 0.15, which uses sqlx 0.8 too: it takes the
/// pool as it is and never changes its connection options. Call [`migrate`](Self::migrate)
/// once at start, beside the session store's own.
///
/// Writes that go together are one statement or one transaction, so a crash between two
/// loses nothing: [`take`](ConversionStore::take) locks the capture and inserts the conversion in
/// one transaction, and a [`claim`](Outbox::claim) is one `UPDATE`, which on Postgres skips
/// the rows other claims hold (`FOR UPDATE SKIP LOCKED`). Each operation gives up after the
/// [timeout](Self::with_timeout) with [`StoreError::TimedOut`]; while the database is down,
/// that is what they end with, since sqlx's pool keeps trying to connect meanwhile.
///
/// A row that cannot be read (its token, product, state or ID not valid) is never sent: it is
/// logged at ERROR without its content, counted as
/// [`UNREADABLE`](crate::metrics::UNREADABLE), and
///
/// - a claimed conversion is marked dead (`last_error` = `unreadable record`), so that no claim
///   returns it again; [`list`](super::Inspection::list) and [`find`](ConversionStore::find) skip it;
/// - a capture makes [`captured`](CaptureStore::captured) and [`take`](ConversionStore::take) fail
///   with [`StoreError::Unreadable`]. `take` removes it: it can never become a conversion, and
///   left in place it would fail every order of the visitor and, under first-click
///   attribution, keep their next landing from being captured for the token's TTL.
///
/// # Tables
///
/// Four tables, created by [`migrate`](Self::migrate):
///
/// - `sovendus_captures`: a landing's capture under the visitor's key (an `i128` in decimal):
///   `token`, `product_id`, `expires_at`.
/// - `sovendus_conversions`: an order's conversion under its ID (32 hexadecimal digits), one
///   per token (`UNIQUE`): `token`, `product_id`, `order_ref`, `ordered_at`, `state` (`owed`,
///   `parked`, `dead`, `delivered`, `voided`), `attempts`, `next_attempt_at`, `last_error`, `settled_at`,
///   `calls` (when its last ten calls ended), the lease (`lease_id`, `lease_until`, shown
///   as [`held_until`](Conversion::held_until)), and `due_at`: the later of the next attempt
///   and the lease's end while it is owed or parked, `NULL` once settled. A claim is one range
///   of the index on `due_at`; [`find`](ConversionStore::find) reads the index on `order_ref`,
///   [`find_token`](super::Inspection::find_token) the token's. A
///   [list](super::Inspection::list) by order time is one range of the index on
///   `(state, ordered_at, id)`, and so are the [causes](super::Inspection::causes) of a state,
///   and the [counts per day](super::Inspection::daily) and [`counts`](super::Inspection::counts)
///   (a range per state, the counts without the table). A list by settlement time is a range
///   of the partial index on `(state, settled_at, id)`, or of the purge's on `settled_at`
///   (Postgres' choice for a state holding most settled rows); both partial indexes hold
///   settled rows only, so an order's insert touches neither.
/// - `sovendus_schema`: the migrations applied.
/// - `sovendus_database`: the database's identity, written by `migrate`: a shop's transaction
///   is checked against it before it takes a conversion.
///
/// Times are BIGINT milliseconds since the Unix epoch, read from the database's clock on
/// Postgres. The migrations are the store's own, not sqlx's, whose `_sqlx_migrations` table
/// belongs to the application.
///
/// ```no_run
/// use tower_sessions::SessionManagerLayer;
/// use tower_sessions_sqlx_store::SqliteStore;
/// use tower_sovendus::{SovendusConfig, SovendusLayer, store::{SqlTokenStore, sqlx::SqlitePool}};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // One pool for the sessions and the tokens.
/// let pool = SqlitePool::connect("sqlite://shop.db?mode=rwc").await?;
/// let sessions = SqliteStore::new(pool.clone());
/// sessions.migrate().await?;
/// let tokens = SqlTokenStore::sqlite(pool);
/// tokens.migrate().await?;
///
/// let config = SovendusConfig::from_env()?;
/// let sovendus = SovendusLayer::with_store(config, tokens);
/// let sessions = SessionManagerLayer::new(sessions);
/// // ...`.layer(ServiceBuilder::new().layer(sessions).layer(sovendus))` on the shop's router.
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqlTokenStore {
    pool: Pool,
    timeout: Duration,
    /// On SQLite, which runs one write at a time: this process's writes queue here, instead of
    /// colliding in the database, where a busy writer sleeps for milliseconds before it tries
    /// again. Clones share it.
    #[cfg(feature = "sqlite")]
    writes: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The identity `migrate` gave the database, once read: a shop's transaction is checked
    /// against it. Clones share it.
    database: std::sync::Arc<tokio::sync::OnceCell<String>>,
}

/// The pool of one of the backends.
#[derive(Clone)]
enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$pool` bound to the store's pool, of its concrete type, and `$dialect`
/// to its backend's [`Dialect`]: the body is written once and compiled for each backend.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        on_pool!($store, |$pool, _dialect| $body)
    };
    ($store:expr, |$pool:ident, $dialect:ident| $body:expr) => {
        match &$store.pool {
            #[cfg(feature = "sqlite")]
            $crate::store::sql::Pool::Sqlite($pool) => {
                let $dialect: &$crate::store::sql::queries::Dialect = &$crate::store::sql::queries::SQLITE;
                $body
            }
            #[cfg(feature = "postgres")]
            $crate::store::sql::Pool::Postgres($pool) => {
                let $dialect: &$crate::store::sql::queries::Dialect = &$crate::store::sql::queries::POSTGRES;
                $body
            }
        }
    };
}
use on_pool;

impl SqlTokenStore {
    /// The first readable conversion `query` returns for `key` (`$1`): by order, ID or token.
    async fn first_conversion(
        &self,
        query: &'static str,
        key: String,
    ) -> Result<Option<Conversion>, StoreError> {
        self.within_timeout(async {
            on_pool!(self, |pool| {
                let rows = sqlx::query(query).bind(key).fetch_all(pool).await.map_err(backend)?;
                Ok(rows.iter().find_map(read::readable_conversion))
            })
        })
        .await
    }

    /// A store on a SQLite pool, with the [`DEFAULT_SQL_TIMEOUT`].
    ///
    /// See [`SqlTokenStore`] for an example.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub fn sqlite(pool: sqlx::SqlitePool) -> Self {
        Self {
            pool: Pool::Sqlite(pool),
            timeout: DEFAULT_SQL_TIMEOUT,
            writes: Default::default(),
            database: Default::default(),
        }
    }

    /// A store on a Postgres pool, with the [`DEFAULT_SQL_TIMEOUT`].
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub fn postgres(pool: sqlx::PgPool) -> Self {
        Self {
            pool: Pool::Postgres(pool),
            timeout: DEFAULT_SQL_TIMEOUT,
            #[cfg(feature = "sqlite")]
            writes: Default::default(),
            database: Default::default(),
        }
    }

    /// How long to wait for the database on one operation before giving up with
    /// [`StoreError::TimedOut`] (default [`DEFAULT_SQL_TIMEOUT`]). A landing page waits this
    /// long at most for the capture while the database is away.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn dialect(&self) -> &'static Dialect {
        on_pool!(self, |_pool, dialect| dialect)
    }

    /// Runs `operation`, giving up after the timeout.
    async fn within_timeout<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, operation).await.unwrap_or(Err(StoreError::TimedOut(self.timeout)))
    }

    /// Runs the write `operation`, after this process's other writes on SQLite, giving up after
    /// the timeout (the wait for the others included).
    async fn writing<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.within_timeout(async {
            let _turn: Option<tokio::sync::MutexGuard<'_, ()>> = match self.pool {
                #[cfg(feature = "sqlite")]
                Pool::Sqlite(_) => Some(self.writes.lock().await),
                #[cfg(feature = "postgres")]
                Pool::Postgres(_) => None,
            };
            operation.await
        })
        .await
    }
}

impl fmt::Debug for SqlTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlTokenStore")
            .field("backend", &self.dialect().name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The database failed, or could not be reached.
fn backend(error: sqlx::Error) -> StoreError {
    StoreError::backend(error)
}

/// The commit of a write failed: on a broken connection it may have gone through.
fn at_commit(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => {
            StoreError::interrupted(error)
        }
        error => backend(error),
    }
}

/// `count` as a bound parameter.
fn as_i64(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// A lease's ID as stored: 32 hexadecimal digits.
fn lease_text(lease: LeaseId) -> String {
    format!("{:032x}", lease.get())
}

/// When a conversion next attempted at `next` and leased until `lease` is due.
fn due_at(next: Option<SystemTime>, lease: Option<Lease>) -> Option<i64> {
    let next = to_millis(next?);
    Some(lease.map_or(next, |lease| next.max(to_millis(lease.until))))
}

#[async_trait]
impl CaptureStore for SqlTokenStore {
    async fn capture(&self, key: TokenKey, new: NewCapture) -> Result<bool, StoreError> {
        let replace = new.attribution == Attribution::LastClick;
        let (at, expires_at) = (to_millis(new.at), to_millis(new.expires_at()));
        let Capture { token, product } = &new.capture;
        let stored = self.writing(async {
            on_pool!(self, |pool| {
                sqlx::query(queries::CAPTURE)
                    .bind(key.to_string())
                    .bind(token.as_str())
                    .bind(product.as_str())
                    .bind(expires_at)
                    .bind(replace)
                    .bind(at)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
                    .map_err(backend)
            })
        });
        Ok(stored.await? > 0)
    }

    async fn captured(&self, key: TokenKey, now: SystemTime) -> Result<Option<Capture>, StoreError> {
        self.within_timeout(async {
            on_pool!(self, |pool| {
                let row = sqlx::query(queries::CAPTURED)
                    .bind(key.to_string())
                    .bind(to_millis(now))
                    .fetch_optional(pool)
                    .await
                    .map_err(backend)?;
                row.map(|row| read::capture(&row).inspect_err(|error| read::refused("capture", None, error)))
                    .transpose()
            })
        })
        .await
    }
}

#[async_trait]
impl ConversionStore for SqlTokenStore {
    async fn take(&self, key: TokenKey, conversion: NewConversion) -> Result<Taken, StoreError> {
        let database = self.database_id().await?;
        self.writing(async { on_pool!(self, |pool| Take::on_pool(pool, &database, key, conversion).await) })
            .await
    }

    async fn take_in(
        &self,
        connection: &mut SqlConnection<'_>,
        key: TokenKey,
        conversion: NewConversion,
    ) -> Result<Taken, TakeInError> {
        self.take_in_shop(connection, key, conversion).await
    }

    async fn owe(&self, capture: Capture, conversion: NewConversion) -> Result<Taken, StoreError> {
        self.writing(async { on_pool!(self, |pool| Take::owe_on_pool(pool, capture, conversion).await) })
            .await
    }

    async fn void(&self, id: ConversionId, now: SystemTime) -> Result<VoidOutcome, StoreError> {
        self.writing(async {
            on_pool!(self, |pool| {
                let voided = sqlx::query(queries::VOID)
                    .bind(id.to_string())
                    .bind(to_millis(now))
                    .fetch_optional(pool)
                    .await
                    .map_err(at_commit)?;
                if let Some(row) = voided {
                    let sending: bool = row.try_get("sending").map_err(backend)?;
                    let conversion = read::conversion(&row)?;
                    return Ok(if sending {
                        VoidOutcome::Sending(conversion)
                    } else {
                        VoidOutcome::Voided(conversion)
                    });
                }
                let found = sqlx::query(queries::CONVERSION)
                    .bind(id.to_string())
                    .fetch_optional(pool)
                    .await
                    .map_err(backend)?;
                let Some(row) = found else { return Ok(VoidOutcome::NotFound) };
                let conversion = read::conversion(&row)?;
                Ok(match conversion.state {
                    ConversionState::Delivered => VoidOutcome::Delivered(conversion),
                    _ => VoidOutcome::AlreadyVoided(conversion),
                })
            })
        })
        .await
    }

    async fn find(&self, order: &OrderRef) -> Result<Option<Conversion>, StoreError> {
        self.first_conversion(queries::FIND, order.as_str().to_owned()).await
    }

    async fn purge(&self, settled_before: SystemTime, now: SystemTime) -> Result<u64, StoreError> {
        self.writing(async {
            on_pool!(self, |pool| {
                let conversions = sqlx::query(queries::PURGE_CONVERSIONS)
                    .bind(to_millis(settled_before))
                    .execute(pool)
                    .await
                    .map_err(backend)?;
                let captures = sqlx::query(queries::PURGE_CAPTURES)
                    .bind(to_millis(now))
                    .execute(pool)
                    .await
                    .map_err(backend)?;
                tracing::debug!(captures = captures.rows_affected(), "purged expired Sovendus captures");
                Ok(conversions.rows_affected())
            })
        })
        .await
    }
}

#[async_trait]
impl Outbox for SqlTokenStore {
    fn timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }

    async fn now(&self) -> Result<SystemTime, StoreError> {
        self.within_timeout(async {
            on_pool!(self, |pool, dialect| match dialect.now {
                Some(now) => {
                    let millis: i64 = sqlx::query_scalar(now).fetch_one(pool).await.map_err(backend)?;
                    Ok(from_millis(millis))
                }
                None => Ok(SystemTime::now()),
            })
        })
        .await
    }

    async fn claim(
        &self,
        now: SystemTime,
        limit: usize,
        lease: Lease,
    ) -> Result<Vec<Conversion>, StoreError> {
        let now = to_millis(now);
        // A look first, a read: the claim's write, and its turn among this process's writes,
        // only when something is due.
        let due = self.within_timeout(async {
            on_pool!(self, |pool| {
                let due = sqlx::query(queries::ANY_DUE).bind(now).fetch_optional(pool).await;
                due.map(|row| row.is_some()).map_err(backend)
            })
        });
        if !due.await? {
            return Ok(Vec::new());
        }
        let lease_id = lease_text(lease.id);
        let mut claimed = self
            .writing(async {
                on_pool!(self, |pool, dialect| {
                    let rows = sqlx::query(dialect.claim)
                        .bind(now)
                        .bind(as_i64(limit))
                        .bind(&lease_id)
                        .bind(to_millis(lease.until))
                        .fetch_all(pool)
                        .await
                        .map_err(backend)?;
                    let mut claimed = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let error = match read::conversion(row) {
                            Ok(conversion) => {
                                claimed.push(conversion);
                                continue;
                            }
                            Err(error) => error,
                        };
                        read::refused("conversion", read::readable_id(row), &error);
                        let stored_id: Option<String> = row.try_get("id").ok();
                        let Some(stored_id) = stored_id else { continue };
                        // Never claimed again. Should this fail, its lease runs out and the
                        // next claim tries again; the readable ones are claimed meanwhile.
                        let buried = sqlx::query(queries::BURY_UNREADABLE)
                            .bind(stored_id)
                            .bind(&lease_id)
                            .bind(now)
                            .execute(pool)
                            .await;
                        if let Err(error) = buried {
                            tracing::error!(%error, "could not mark an unreadable Sovendus conversion dead");
                        }
                    }
                    Ok(claimed)
                })
            })
            .await?;
        // The database returns them in no particular order. By their next attempt: the order
        // they fell due in, but for those whose lease ran out after it (the database keeps the
        // new lease alone).
        claimed.sort_by_key(|conversion| (conversion.next_attempt_at, conversion.id));
        Ok(claimed)
    }

    async fn renew(&self, id: ConversionId, lease: Lease) -> Result<bool, StoreError> {
        let renewed = self.writing(async {
            on_pool!(self, |pool| {
                sqlx::query(queries::RENEW)
                    .bind(id.to_string())
                    .bind(lease_text(lease.id))
                    .bind(to_millis(lease.until))
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
                    .map_err(backend)
            })
        });
        Ok(renewed.await? > 0)
    }

    async fn settle(
        &self,
        id: ConversionId,
        lease: LeaseId,
        settlement: Settlement,
    ) -> Result<bool, StoreError> {
        let settled = settlement.state.is_settled();
        let next = settlement.next_attempt_at.map(to_millis);
        let ended = self.writing(async {
            on_pool!(self, |pool| {
                sqlx::query(queries::SETTLE)
                    .bind(id.to_string())
                    .bind(lease_text(lease))
                    .bind(settlement.state.as_str())
                    .bind(i64::from(settlement.attempts))
                    .bind(next)
                    .bind(settlement.last_error.as_deref())
                    .bind(settled.then(|| to_millis(settlement.at)))
                    .bind(if settled { None } else { next })
                    .bind(settlement.attempted_at.map(to_millis))
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
                    .map_err(backend)
            })
        });
        Ok(ended.await? > 0)
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::store::records::from_millis;

    #[tokio::test]
    async fn debug_shows_the_backend_and_the_timeout_only() {
        let pool = sqlx::SqlitePool::connect_lazy("sqlite::memory:").expect("a lazy pool");
        let store = SqlTokenStore::sqlite(pool).with_timeout(Duration::from_secs(1));
        assert_eq!(format!("{store:?}"), r#"SqlTokenStore { backend: "sqlite", timeout: 1s, .. }"#);
    }

    #[test]
    fn a_conversion_is_due_at_its_next_attempt_or_when_its_lease_runs_out() {
        let lease = |until| Some(Lease { id: LeaseId::from(1), until: from_millis(until) });
        assert_eq!(due_at(Some(from_millis(5)), None), Some(5));
        assert_eq!(due_at(Some(from_millis(5)), lease(9)), Some(9));
        assert_eq!(due_at(Some(from_millis(5)), lease(2)), Some(5));
        assert_eq!(due_at(None, lease(9)), None, "settled");
        assert_eq!(lease_text(LeaseId::from(0xab)), "000000000000000000000000000000ab");
    }
}
