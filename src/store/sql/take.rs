//! The take and the owe as plain statements on one connection of either backend, inside the
//! caller's transaction: the store's own, or the shop's (`SovendusConversion::owe_in`).

use std::marker::PhantomData;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::{TakeInError, at_commit, backend, due_at, lease_text, queries, read};
use crate::store::{Capture, Conversion, NewConversion, StoreError, Taken, TokenKey, records::to_millis};

/// The statements of a take on a connection of backend `DB`.
pub(super) struct Take<DB>(PhantomData<DB>);

impl<DB> Take<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    &'static str: ColumnIndex<DB::Row>,
{
    /// [`capture`](Self::capture) in a transaction of the store's own, on `pool`.
    pub(super) async fn on_pool(
        pool: &sqlx::Pool<DB>,
        database: &str,
        key: TokenKey,
        conversion: NewConversion,
    ) -> Result<Taken, StoreError> {
        let mut transaction = pool.begin().await.map_err(backend)?;
        let taken = match Self::capture(&mut transaction, database, key, conversion).await {
            Ok(taken) => Ok(taken),
            // Refused, and removed: the removal commits.
            Err(TakeInError::Store(error @ StoreError::Unreadable(_))) => Err(error),
            Err(TakeInError::Store(error)) => return Err(error),
            // The store's own pool is on its own database.
            Err(unjoinable) => return Err(StoreError::backend(unjoinable)),
        };
        transaction.commit().await.map_err(at_commit)?;
        taken
    }

    /// [`owe`](Self::owe) in a transaction of the store's own, on `pool`.
    pub(super) async fn owe_on_pool(
        pool: &sqlx::Pool<DB>,
        capture: Capture,
        conversion: NewConversion,
    ) -> Result<Taken, StoreError> {
        let mut transaction = pool.begin().await.map_err(backend)?;
        let taken = Self::owe(&mut transaction, capture, conversion).await?;
        transaction.commit().await.map_err(at_commit)?;
        Ok(taken)
    }

    /// The identity of the database `pool` is on.
    pub(super) async fn database_on_pool(pool: &sqlx::Pool<DB>) -> Result<String, StoreError> {
        let mut connection = pool.acquire().await.map_err(backend)?;
        Self::database(&mut connection).await
    }

    /// Locks the capture for `key` and makes it the owed conversion `conversion`, if the
    /// connection is on the database named `database` (the identity `migrate` gave the
    /// store's). An unreadable capture is removed and refused: it can never become a
    /// conversion.
    pub(super) async fn capture(
        connection: &mut DB::Connection,
        database: &str,
        key: TokenKey,
        conversion: NewConversion,
    ) -> Result<Taken, TakeInError> {
        // The lock is a write that changes nothing (see `TAKE_CAPTURE`): the take holds the
        // write lock on SQLite from here, the row's lock on Postgres.
        let held = sqlx::query(queries::TAKE_CAPTURE)
            .bind(key.to_string())
            .bind(database.to_owned())
            .fetch_optional(&mut *connection)
            .await
            .map_err(|error| match is_missing_table(&error) {
                true => TakeInError::Unjoinable(
                    "the transaction's database has no Sovendus tables (SqlTokenStore::migrate ran on another)"
                        .to_owned(),
                ),
                false => TakeInError::Store(backend(error)),
            })?;
        let Some(held) = held else {
            return match Self::database(connection).await? == database {
                true => Ok(Taken::NoCapture),
                false => Err(TakeInError::Unjoinable(
                    "the transaction's database is not the token store's".to_owned(),
                )),
            };
        };
        match read::live_capture(&held, to_millis(conversion.ordered_at)) {
            Ok(Some(capture)) => Ok(Self::owe(connection, capture, conversion).await?),
            Ok(None) => Ok(Taken::NoCapture),
            Err(error) => {
                read::refused("capture", None, &error);
                sqlx::query(queries::DELETE_CAPTURE)
                    .bind(key.to_string())
                    .execute(&mut *connection)
                    .await
                    .map_err(backend)?;
                Err(TakeInError::Store(error))
            }
        }
    }

    /// Makes `capture` the owed conversion `conversion`, unless its token has one.
    pub(super) async fn owe(
        connection: &mut DB::Connection,
        capture: Capture,
        conversion: NewConversion,
    ) -> Result<Taken, StoreError> {
        let lease = conversion.lease;
        let owed = Conversion::new(capture, conversion);
        let inserted = sqlx::query(queries::INSERT_CONVERSION)
            .bind(owed.id.to_string())
            .bind(owed.token.as_str().to_owned())
            .bind(owed.product.as_str().to_owned())
            .bind(owed.order.as_ref().map(|order| order.as_str().to_owned()))
            .bind(to_millis(owed.ordered_at))
            .bind(owed.next_attempt_at.map(to_millis))
            .bind(lease.map(|lease| lease_text(lease.id)))
            .bind(lease.map(|lease| to_millis(lease.until)))
            .bind(due_at(owed.next_attempt_at, lease))
            .fetch_optional(&mut *connection)
            .await
            .map_err(backend)?;
        if inserted.is_some() {
            return Ok(Taken::Owed(owed));
        }
        let existing = sqlx::query(queries::CONVERSION_OF_TOKEN)
            .bind(owed.token.as_str().to_owned())
            .fetch_one(&mut *connection)
            .await
            .map_err(backend)?;
        let existing: String = existing.try_get("id").map_err(backend)?;
        read::conversion_id(&existing)
            .map(Taken::AlreadyConverted)
            .inspect_err(|error| read::refused("conversion", None, error))
    }

    /// The identity of the database `connection` is on.
    pub(super) async fn database(connection: &mut DB::Connection) -> Result<String, StoreError> {
        let row = sqlx::query(queries::DATABASE_ID).fetch_one(&mut *connection).await.map_err(backend)?;
        row.try_get("id").map_err(backend)
    }
}

/// Whether `error` says a table is missing: the database is not one `migrate` ran on.
fn is_missing_table(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(error) = error else { return false };
    // Postgres' undefined_table; SQLite has no code of its own for it.
    error.code().as_deref() == Some("42P01") || error.message().starts_with("no such table")
}
