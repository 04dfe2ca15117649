//! The SQL [`SqlTokenStore`](super::SqlTokenStore) runs. One text serves both backends
//! (sqlx's SQLite driver reads `$1`-style placeholders too) except what [`Dialect`] holds: the
//! claim, whose Postgres form skips the rows other claims hold, the order of causes, and how
//! migrations queue. A list's text is built for its query by [`list`], in the backend's
//! placeholders.
//!
//! Times are bound as BIGINT milliseconds since the Unix epoch, always the caller's; the caller
//! reads them from the database's clock ([`Dialect::now`]), which no other query reads.

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::as_i64;
use crate::store::{ListOrder, ListQuery, TimeAxis, records::to_millis};

/// The columns an [`Conversion`](crate::store::Conversion) is read from, in a
/// `concat!`.
macro_rules! conversion_columns {
    () => {
        "id, token, product_id, order_ref, ordered_at, state, attempts, next_attempt_at, last_error, \
         settled_at, calls, lease_until"
    };
}

/// Why the conversions in state `$1` failed, with how many failed each way, the most frequent
/// first, then by reason in the order of its bytes (as Rust orders strings), at most `$2`;
/// `$collate` makes the reasons compare by their bytes. One range of the index on `state`.
macro_rules! causes {
    ($collate:literal) => {
        concat!(
            "SELECT last_error, COUNT(*) AS count FROM sovendus_conversions \
             WHERE state = $1 AND last_error IS NOT NULL \
             GROUP BY last_error ORDER BY COUNT(*) DESC, last_error",
            $collate,
            " LIMIT $2"
        )
    };
}

/// The claim, with its lock clause: leases the due conversions, the earliest due first. `$1`
/// now, `$2` the limit, `$3` the lease's ID, `$4` its end. The rows are picked once, in a
/// materialised CTE: a subquery in the `WHERE` may be run again, and pick (and lease) rows the
/// claim does not return.
macro_rules! claim {
    ($lock:literal) => {
        concat!(
            "WITH picked AS MATERIALIZED (SELECT id FROM sovendus_conversions WHERE due_at <= $1 \
                                          ORDER BY due_at, id LIMIT $2",
            $lock,
            ") UPDATE sovendus_conversions \
             SET lease_id = $3, lease_until = $4, \
                 due_at = CASE WHEN next_attempt_at > $4 THEN next_attempt_at ELSE $4 END \
             WHERE id IN (SELECT id FROM picked) RETURNING ",
            conversion_columns!()
        )
    };
}

/// Whether any conversion is due at `$1`: one step into the index the claim ranges over.
pub(super) const ANY_DUE: &str = "SELECT 1 FROM sovendus_conversions WHERE due_at <= $1 LIMIT 1";

/// What differs between the backends.
#[derive(Debug)]
pub(super) struct Dialect {
    /// The backend's name, for `Debug`.
    pub(super) name: &'static str,
    /// Leases the due conversions (see `claim!`).
    pub(super) claim: &'static str,
    /// Counts the causes of a state (see `causes!`).
    pub(super) causes: &'static str,
    /// Reads the database server's clock, in milliseconds since the Unix epoch; none where the
    /// database is a file on this host, whose clock is this process's.
    pub(super) now: Option<&'static str>,

    /// Run once before the migrations, each on its own.
    pub(super) before_migrations: &'static [&'static str],
    /// Run first in each migration's transaction, so that instances migrating at once queue.
    pub(super) open_migration: &'static [&'static str],
}

/// The table of applied migrations.
const CREATE_SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS sovendus_schema (\
     version BIGINT PRIMARY KEY NOT NULL, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

/// SQLite: a claim is one write, and SQLite runs one write at a time. Text compares by its
/// bytes (`BINARY`), as Rust's strings do. The schema table is
/// created before the migrations' transactions, so that each of them starts with its write
/// ([`RECORD_MIGRATION`]) and takes the write lock at once: a transaction that reads first and
/// writes later can fail to upgrade its lock instead of waiting.
#[cfg(feature = "sqlite")]
pub(super) const SQLITE: Dialect = Dialect {
    name: "sqlite",
    claim: claim!(""),
    causes: causes!(""),
    now: None,
    before_migrations: &[CREATE_SCHEMA_TABLE],
    open_migration: &[],
};

/// Postgres: concurrent claims skip each other's rows instead of waiting for them; causes are
/// ordered in the `C` collation, by their bytes, whatever the database's. Migrations
/// queue on a transaction-scoped advisory lock (its key spells "sovendus"), taken before the
/// schema table is created: concurrent `CREATE TABLE IF NOT EXISTS` can fail on Postgres.
#[cfg(feature = "postgres")]
pub(super) const POSTGRES: Dialect = Dialect {
    name: "postgres",
    claim: claim!(" FOR UPDATE SKIP LOCKED"),
    causes: causes!(r#" COLLATE "C""#),
    now: Some("SELECT floor(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"),
    before_migrations: &[],
    open_migration: &["SELECT pg_advisory_xact_lock(8317997214792447347)", CREATE_SCHEMA_TABLE],
};

/// Records migration `$1` (named `$2`, applied at `$3`) unless it is recorded: affects no row
/// when it was applied before.
pub(super) const RECORD_MIGRATION: &str = "INSERT INTO sovendus_schema (version, name, applied_at) \
     VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING";

/// Stores a capture under `$1`, unless token `$2` has a conversion; an existing capture is
/// replaced if `$5` (last click), if it expired by `$6`, or if its token was converted since.
/// Affects no row when the token was converted, or the existing capture wins.
pub(super) const CAPTURE: &str = "INSERT INTO sovendus_captures (visitor_key, token, product_id, expires_at) \
     SELECT $1, $2, $3, $4 \
     WHERE NOT EXISTS (SELECT 1 FROM sovendus_conversions WHERE token = $2) \
     ON CONFLICT (visitor_key) DO UPDATE \
     SET token = excluded.token, product_id = excluded.product_id, expires_at = excluded.expires_at \
     WHERE $5 OR sovendus_captures.expires_at <= $6 \
        OR EXISTS (SELECT 1 FROM sovendus_conversions WHERE token = sovendus_captures.token)";

/// The capture under `$1`, if it is live at `$2` and its token has no conversion.
pub(super) const CAPTURED: &str = "SELECT token, product_id FROM sovendus_captures \
     WHERE visitor_key = $1 AND expires_at > $2 \
     AND NOT EXISTS (SELECT 1 FROM sovendus_conversions WHERE token = sovendus_captures.token)";

/// The capture under `$1`, locked by a write that changes nothing, if the database is the one
/// named `$2`: on SQLite the take holds the write lock from here (concurrent takes queue for it
/// instead of failing to upgrade a read lock), on Postgres the row's lock. The capture stays:
/// once its token is converted it tells the visitor's next order so
/// ([`Taken::AlreadyConverted`](crate::store::Taken)), until the purge removes it with its
/// expiry. No index changes: the write touches one page.
pub(super) const TAKE_CAPTURE: &str = "UPDATE sovendus_captures SET product_id = product_id \
     WHERE visitor_key = $1 AND EXISTS (SELECT 1 FROM sovendus_database WHERE id = $2) \
     RETURNING token, product_id, expires_at";

/// Removes the capture under `$1`: an unreadable one, which can never become a conversion.
pub(super) const DELETE_CAPTURE: &str = "DELETE FROM sovendus_captures WHERE visitor_key = $1";

/// A new owed conversion, unless its token has one: returns its ID if it was written.
pub(super) const INSERT_CONVERSION: &str = "INSERT INTO sovendus_conversions \
     (id, token, product_id, order_ref, ordered_at, state, attempts, next_attempt_at, lease_id, lease_until, due_at) \
     VALUES ($1, $2, $3, $4, $5, 'owed', 0, $6, $7, $8, $9) \
     ON CONFLICT (token) DO NOTHING RETURNING id";

/// The ID of the conversion of token `$1`.
pub(super) const CONVERSION_OF_TOKEN: &str = "SELECT id FROM sovendus_conversions WHERE token = $1";

/// Marks the unreadable conversion `$1`, claimed under lease `$2`, dead at `$3`, so that no
/// claim returns it again.
pub(super) const BURY_UNREADABLE: &str = "UPDATE sovendus_conversions \
     SET state = 'dead', due_at = NULL, next_attempt_at = NULL, last_error = 'unreadable record', \
         settled_at = $3, lease_id = NULL, lease_until = NULL \
     WHERE id = $1 AND lease_id = $2";

/// Extends lease `$2` on `$1` to `$3`, unless the conversion was voided meanwhile; a renewal
/// that lands after a later one keeps the later end.
pub(super) const RENEW: &str = "UPDATE sovendus_conversions \
     SET lease_until = CASE WHEN lease_until > $3 THEN lease_until ELSE $3 END, \
         due_at = CASE WHEN due_at IS NULL THEN NULL \
                       WHEN next_attempt_at > $3 AND next_attempt_at > lease_until THEN next_attempt_at \
                       WHEN lease_until > $3 THEN lease_until ELSE $3 END \
     WHERE id = $1 AND lease_id = $2 AND state <> 'voided'";

/// Ends lease `$2` on conversion `$1` with its delivery's outcome: state `$3`, attempts `$4`,
/// next attempt `$5`, last error `$6`, settled at `$7`, due at `$8`, and the end of its call `$9`
/// (NULL if it made none) added to its `calls`, of which it keeps the last ten (140 characters:
/// each is `,` and 13 digits of milliseconds, until the year 2286). Whatever the lease, a 200
/// (`$3` delivered) is recorded, unless one was already, or a void that waited for no delivery
/// ended it. A conversion voided while its delivery was out stays voided unless that delivery
/// says delivered.
pub(super) const SETTLE: &str = "UPDATE sovendus_conversions \
     SET state = CASE WHEN state = 'voided' AND $3 <> 'delivered' THEN 'voided' ELSE $3 END, \
         attempts = $4, last_error = $6, \
         calls = CASE WHEN $9 IS NULL THEN calls \
                      WHEN length(coalesce(calls, '')) >= 140 \
                      THEN substr(calls, 15) || ',' || CAST($9 AS TEXT) \
                      ELSE coalesce(calls, '') || ',' || CAST($9 AS TEXT) END, \
         next_attempt_at = CASE WHEN state = 'voided' AND $3 <> 'delivered' THEN NULL ELSE $5 END, \
         settled_at = CASE WHEN state = 'voided' AND $3 <> 'delivered' THEN settled_at ELSE $7 END, \
         due_at = CASE WHEN state = 'voided' AND $3 <> 'delivered' THEN NULL ELSE $8 END, \
         lease_id = NULL, lease_until = NULL \
     WHERE id = $1 \
       AND (lease_id = $2 OR ($3 = 'delivered' AND state <> 'delivered' \
                              AND NOT (state = 'voided' AND lease_id IS NULL)))";

/// The page `query` asks for, after `prefix` (empty; an `EXPLAIN` in the tests): one range
/// of the index on state and the query's axis (`(state, ordered_at, id)`, or the partial
/// `(state, settled_at, id)`), in its order, from its cursor (a row-value comparison, strictly
/// after it), the product checked on the rows of the range. Every value is bound.
pub(super) fn list<'q, DB>(prefix: &str, query: &ListQuery) -> QueryBuilder<'q, DB>
where
    DB: Database,
    DB::Arguments<'q>: Default,
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    let (axis, only_settled) = match query.axis {
        TimeAxis::Ordered => ("ordered_at", ""),
        TimeAxis::Settled => ("settled_at", " AND settled_at IS NOT NULL"),
    };
    let (past, direction) = match query.order {
        ListOrder::OldestFirst => (">", "ASC"),
        ListOrder::NewestFirst => ("<", "DESC"),
    };
    let mut sql = QueryBuilder::new(prefix);
    sql.push(concat!("SELECT ", conversion_columns!(), " FROM sovendus_conversions WHERE state = "));
    sql.push_bind(query.state.as_str().to_owned()).push(only_settled);
    if let Some(product) = &query.product {
        sql.push(" AND product_id = ").push_bind(product.as_str().to_owned());
    }
    if let Some(from) = query.from {
        sql.push(format_args!(" AND {axis} >= ")).push_bind(to_millis(from));
    }
    if let Some(until) = query.until {
        sql.push(format_args!(" AND {axis} < ")).push_bind(to_millis(until));
    }
    if let Some(cursor) = query.after {
        let (at, id) = cursor.key();
        sql.push(format_args!(" AND ({axis}, id) {past} (")).push_bind(at);
        sql.push(", ").push_bind(id.to_string()).push(")");
    }
    sql.push(format_args!(" ORDER BY {axis} {direction}, id {direction} LIMIT "));
    sql.push_bind(as_i64(query.limit));
    sql
}

/// How many conversions in each state were ordered on each day from `$1` (a midnight) until
/// `$2`: rows of `state`, `day` (days after `$1`) and `count`. One range of the index on
/// `(state, ordered_at)` per state.
pub(super) const DAILY: &str = "SELECT state, (ordered_at - $1) / 86400000 AS day, COUNT(*) AS count \
     FROM sovendus_conversions \
     WHERE state IN ('owed', 'parked', 'dead', 'delivered', 'voided') AND ordered_at >= $1 AND ordered_at < $2 \
     GROUP BY state, (ordered_at - $1) / 86400000";

/// The conversion `$1`, by its key.
pub(super) const CONVERSION_BY_ID: &str =
    concat!("SELECT ", conversion_columns!(), " FROM sovendus_conversions WHERE id = $1");

/// The conversion of token `$1`, by the token's unique index.
pub(super) const CONVERSION_BY_TOKEN: &str =
    concat!("SELECT ", conversion_columns!(), " FROM sovendus_conversions WHERE token = $1");

/// The conversions of order `$1`, the latest first.
pub(super) const FIND: &str = concat!(
    "SELECT ",
    conversion_columns!(),
    " FROM sovendus_conversions WHERE order_ref = $1 ORDER BY ordered_at DESC, id DESC"
);

/// How many conversions are in each of the five states: one count of a range of the index on
/// `state` per state, each with its state written out, so that the planner plans each for its
/// own share of the table (a `GROUP BY state`, or one subquery for every state, reads the whole
/// table on Postgres).
pub(super) const COUNTS: &str = "\
     SELECT 'owed' AS state, (SELECT COUNT(*) FROM sovendus_conversions WHERE state = 'owed') AS count \
     UNION ALL SELECT 'parked', (SELECT COUNT(*) FROM sovendus_conversions WHERE state = 'parked') \
     UNION ALL SELECT 'dead', (SELECT COUNT(*) FROM sovendus_conversions WHERE state = 'dead') \
     UNION ALL SELECT 'delivered', (SELECT COUNT(*) FROM sovendus_conversions WHERE state = 'delivered') \
     UNION ALL SELECT 'voided', (SELECT COUNT(*) FROM sovendus_conversions WHERE state = 'voided')";

/// Makes the parked conversions due at `$1`, or when their lease runs out if it is later.
pub(super) const WAKE_PARKED: &str = "UPDATE sovendus_conversions \
     SET next_attempt_at = $1, due_at = CASE WHEN lease_until > $1 THEN lease_until ELSE $1 END \
     WHERE state = 'parked'";

/// Makes the parked conversion `$2` due at `$1`, or when its lease runs out if it is later.
pub(super) const WAKE_PARKED_ONE: &str = "UPDATE sovendus_conversions \
     SET next_attempt_at = $1, due_at = CASE WHEN lease_until > $1 THEN lease_until ELSE $1 END \
     WHERE id = $2 AND state = 'parked'";

/// Makes the dead conversion `$1` owed, due at `$2`.
pub(super) const REVIVE: &str = "UPDATE sovendus_conversions \
     SET state = 'owed', next_attempt_at = $2, due_at = $2, settled_at = NULL, lease_id = NULL, lease_until = NULL \
     WHERE id = $1 AND state = 'dead'";

/// Voids conversion `$1` at `$2` if it is owed, parked or dead, or voided while a delivery
/// held it. A delivery that holds it at `$2` (its lease, quarantine included, not run out: its
/// call may be out, or its 200 unrecorded) keeps its lease, and `sending` says so: the void
/// waits for its settlement. A lease run out is ended: its holder is gone.
pub(super) const VOID: &str = concat!(
    "UPDATE sovendus_conversions \
     SET state = 'voided', \
         settled_at = CASE WHEN state = 'voided' THEN settled_at ELSE $2 END, \
         next_attempt_at = NULL, due_at = NULL, \
         lease_id = CASE WHEN lease_until > $2 THEN lease_id ELSE NULL END, \
         lease_until = CASE WHEN lease_until > $2 THEN lease_until ELSE NULL END \
     WHERE id = $1 AND (state IN ('owed', 'parked', 'dead') OR (state = 'voided' AND lease_id IS NOT NULL)) \
     RETURNING lease_id IS NOT NULL AS sending, ",
    conversion_columns!()
);

/// Conversion `$1`.
pub(super) const CONVERSION: &str =
    concat!("SELECT ", conversion_columns!(), " FROM sovendus_conversions WHERE id = $1");

/// The database's identity: the ID [`SqlTokenStore::migrate`](super::SqlTokenStore::migrate)
/// gave it.
pub(super) const DATABASE_ID: &str = "SELECT id FROM sovendus_database";

/// Gives the database the identity `$1`, unless it has one.
pub(super) const NAME_DATABASE: &str =
    "INSERT INTO sovendus_database (one, id) VALUES (1, $1) ON CONFLICT (one) DO NOTHING";

/// Removes the conversions settled before `$1`.
pub(super) const PURGE_CONVERSIONS: &str = "DELETE FROM sovendus_conversions WHERE settled_at < $1";

/// Removes the captures expired at `$1`.
pub(super) const PURGE_CAPTURES: &str = "DELETE FROM sovendus_captures WHERE expires_at <= $1";
