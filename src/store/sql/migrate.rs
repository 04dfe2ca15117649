//! [`SqlTokenStore::migrate`]: the store's own migrations, numbered SQL scripts embedded in the
//! crate, each applied once, in a transaction of its own, and recorded in `sovendus_schema`.
//!
//! Not sqlx's migrator: its `_sqlx_migrations` table belongs to the application's own
//! migrations, which would then clash with these.

use std::time::SystemTime;

use sqlx::Executor;

use super::{SqlTokenStore, backend, on_pool, queries};
use crate::{store::StoreError, store::records::to_millis};

/// One script of the schema's history.
struct Migration {
    version: i64,
    name: &'static str,
    script: &'static str,
}

/// Every migration, in order. A script never changes once released: a change is a new one.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "captures and conversions",
    script: include_str!("migrations/0001_captures_and_conversions.sql"),
}];

impl SqlTokenStore {
    /// Creates the store's tables, or brings them up to this version's schema; does nothing
    /// when they are up to date. Call it at every start: instances migrating at once queue,
    /// and each migration is applied once (on Postgres behind an advisory lock; on SQLite
    /// behind the write lock).
    ///
    /// It waits for the database as long as the pool lets it (its acquire timeout), not the
    /// store's timeout: a migration cut off midway would only start again.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        on_pool!(self, |pool, dialect| {
            for statement in dialect.before_migrations {
                sqlx::query(statement).execute(pool).await.map_err(backend)?;
            }
            for migration in MIGRATIONS {
                let mut transaction = pool.begin().await.map_err(backend)?;
                for statement in dialect.open_migration {
                    sqlx::query(statement).execute(&mut *transaction).await.map_err(backend)?;
                }
                // The record first: it is the transaction's first write, and says whether the
                // migration is still to apply.
                let recorded = sqlx::query(queries::RECORD_MIGRATION)
                    .bind(migration.version)
                    .bind(migration.name)
                    .bind(to_millis(SystemTime::now()))
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend)?;
                if recorded.rows_affected() == 1 {
                    // Through the transaction's `execute`: `raw_sql(..).execute(&mut *transaction)`
                    // leaves the compiler unable to prove `migrate`'s future `Send`, and a shop
                    // could not spawn it.
                    transaction.execute(sqlx::raw_sql(migration.script)).await.map_err(backend)?;
                }
                transaction.commit().await.map_err(backend)?;
                if recorded.rows_affected() == 1 {
                    tracing::info!(
                        version = migration.version,
                        name = migration.name,
                        "migrated the Sovendus store"
                    );
                }
            }
            // Instances migrating at once: the first names it, the others find it named.
            let id = format!("{:032x}", fastrand::u128(..));
            sqlx::query(queries::NAME_DATABASE).bind(id).execute(pool).await.map_err(backend)?;
            let id: String =
                sqlx::query_scalar(queries::DATABASE_ID).fetch_one(pool).await.map_err(backend)?;
            self.know_database(id);
            Ok(())
        })
    }
}
