//! The shop's orders and stock, in a database: [`Orders`].
//!
//! On SQLite and Postgres the orders share the database, and its pool, with the sessions and
//! the `SqlTokenStore`: an order, its stock and its Sovendus conversion are written in one
//! transaction (`owe_in`), and commit or roll back together. Redis and memory cannot join the
//! shop's transaction, so the orders live in a SQLite database of their own: an order keeps the
//! visitor's token and product in its transaction, its conversion is recorded after the commit
//! from what it kept (`Delivery::owe`), and [`Orders::owe_unrecorded`], run at start, makes the conversions
//! of orders a crash left between the two owed (`Delivery::owe`).

use std::{
    collections::BTreeMap,
    str::FromStr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use tower_sovendus::{
    Delivery, OrderRef, Outcome, ProductId, Recorded, SovReqToken, SovendusConversion, SovendusError,
    store::sqlx::{
        self, PgPool, SqlitePool,
        sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
    },
};

use super::CATALOG;

/// The shop's tables: one text for SQLite and Postgres. `shop_orders.conversion` is what
/// recording the order's conversion answered (see [`outcome_name`]); NULL while nothing is
/// known, e.g. after a crash between an order's commit and its send (Redis, memory).
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS shop_products (\
         id BIGINT PRIMARY KEY NOT NULL, name TEXT NOT NULL, stock BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS shop_orders (\
         reference TEXT PRIMARY KEY NOT NULL, placed_at BIGINT NOT NULL, shipping TEXT NOT NULL, \
         sovendus_token TEXT, sovendus_product TEXT, conversion TEXT, cancelled_at BIGINT)",
    "CREATE TABLE IF NOT EXISTS shop_order_items (\
         order_ref TEXT NOT NULL REFERENCES shop_orders (reference), line BIGINT NOT NULL, \
         product_id BIGINT NOT NULL REFERENCES shop_products (id), PRIMARY KEY (order_ref, line))",
    "CREATE INDEX IF NOT EXISTS shop_orders_by_time ON shop_orders (placed_at)",
];

/// Postgres: instances starting at once create the tables one after the other (concurrent
/// `CREATE TABLE IF NOT EXISTS` can fail there).
const POSTGRES_SCHEMA_LOCK: &str = "SELECT pg_advisory_xact_lock(7526831003944137329)";

/// Adds a product with its initial stock, unless the shop has it: a restart keeps the stock.
const ADD_PRODUCT: &str =
    "INSERT INTO shop_products (id, name, stock) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING";
/// Takes `$2` of product `$1` from the stock, if there are as many.
const TAKE_STOCK: &str = "UPDATE shop_products SET stock = stock - $2 WHERE id = $1 AND stock >= $2";
const STOCK: &str = "SELECT id, stock FROM shop_products ORDER BY id";
const PRODUCTS: &str = "SELECT id FROM shop_products";

const INSERT_ORDER: &str = "INSERT INTO shop_orders \
     (reference, placed_at, shipping, sovendus_token, sovendus_product, conversion) \
     VALUES ($1, $2, $3, $4, $5, $6)";
const INSERT_ITEM: &str = "INSERT INTO shop_order_items (order_ref, line, product_id) VALUES ($1, $2, $3)";
const ORDER: &str = "SELECT reference, placed_at, shipping, sovendus_token, sovendus_product, conversion, \
     cancelled_at FROM shop_orders WHERE reference = $1";
const ITEMS: &str = "SELECT product_id FROM shop_order_items WHERE order_ref = $1 ORDER BY line";
const LATEST: &str = "SELECT reference, placed_at, shipping, sovendus_token, sovendus_product, conversion, \
     cancelled_at, (SELECT COUNT(*) FROM shop_order_items \
                    WHERE shop_order_items.order_ref = shop_orders.reference) \
     FROM shop_orders ORDER BY placed_at DESC, reference LIMIT $1";
/// The orders placed after `$1` that kept a token and recorded no outcome.
const UNRECORDED: &str = "SELECT reference, sovendus_token, sovendus_product FROM shop_orders \
     WHERE conversion IS NULL AND sovendus_token IS NOT NULL AND cancelled_at IS NULL AND placed_at > $1 \
     ORDER BY placed_at";
/// How far back the start looks for orders left unrecorded: the token's TTL (the default), within
/// which the store keeps every converted token, so that a recovered order books no token twice.
const RECOVER_FOR: Duration = Duration::from_secs(30 * 24 * 60 * 60);
const RECORD: &str = "UPDATE shop_orders SET conversion = $2 WHERE reference = $1 AND conversion IS NULL";
const CANCEL: &str = "UPDATE shop_orders SET cancelled_at = $2 WHERE reference = $1 AND cancelled_at IS NULL";
/// Puts the items of order `$1` back in stock.
const RESTOCK: &str = "UPDATE shop_products SET stock = stock + (SELECT COUNT(*) FROM shop_order_items \
     WHERE order_ref = $1 AND product_id = shop_products.id) \
     WHERE id IN (SELECT product_id FROM shop_order_items WHERE order_ref = $1)";

/// An order's row: reference, placed_at, shipping, token, product, conversion, cancelled_at.
type OrderRow = (String, i64, String, Option<String>, Option<String>, Option<String>, Option<i64>);

/// Runs `$body` with `$pool` bound to the pool of either backend: one text of sqlx calls for
/// both, each compiled for its own.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

/// Creates the tables and adds the products of `$stock` on `$connection`.
macro_rules! create_tables {
    ($connection:expr, $stock:expr) => {{
        for statement in SCHEMA {
            sqlx::query(statement).execute(&mut *$connection).await?;
        }
        for (id, name, count) in $stock.products() {
            sqlx::query(ADD_PRODUCT).bind(id).bind(name).bind(count).execute(&mut *$connection).await?;
        }
    }};
}

/// The shop's orders and its stock.
#[derive(Clone)]
pub struct Orders {
    db: Db,
    /// Whether the token store is on `db`: the conversion is then written in the order's
    /// transaction.
    joined: bool,
    /// A test knob: abort the process right after an order's commit.
    crash_after_commit: bool,
}

#[derive(Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An order the visitor is placing.
pub struct NewOrder {
    pub items: Vec<u32>,
    pub shipping: String,
}

/// What placing an order came to.
pub enum Placed {
    /// The order is placed, under this reference.
    Order(OrderRef),
    /// This product is sold out: nothing was written, and the visitor keeps their token.
    SoldOut(u32),
}

/// Why an order was not placed: nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("the shop's database failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the Sovendus conversion could not be written with the order: {0}")]
    Sovendus(#[from] SovendusError),
}

/// A placed order, as the database keeps it.
#[derive(Debug, Clone)]
pub struct Order {
    pub reference: String,
    pub placed_at: SystemTime,
    pub shipping: String,
    /// The products, one per item; empty in [`Orders::latest`].
    pub items: Vec<u32>,
    /// The visitor's token, kept for a cancellation (Sovendus asks for it), and on Redis and
    /// memory to record the conversion after a crash.
    pub token: Option<SovReqToken>,
    pub product: Option<String>,
    /// What recording the conversion answered (see [`outcome_name`]), if known.
    pub conversion: Option<String>,
    pub cancelled_at: Option<SystemTime>,
}

/// The initial stock of each product, for a database that has none yet.
#[derive(Debug, Clone)]
pub struct Stock(BTreeMap<u32, i64>);

impl Default for Stock {
    fn default() -> Self {
        Self(CATALOG.iter().map(|(id, .., stock)| (*id, *stock)).collect())
    }
}

impl FromStr for Stock {
    type Err = String;

    /// The catalog's stock, but for the products `spec` names: `ID=COUNT` pairs separated by
    /// commas, e.g. `4=1,1=500`.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut stock = Self::default();
        for pair in spec.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
            let parsed = pair.split_once('=').and_then(|(id, count)| {
                Some((id.trim().parse::<u32>().ok()?, count.trim().parse::<i64>().ok()?))
            });
            match parsed {
                Some((id, count)) if stock.0.contains_key(&id) && count >= 0 => {
                    stock.0.insert(id, count);
                }
                _ => {
                    return Err(format!(
                        "SHOP_STOCK: `{pair}` is not PRODUCT=COUNT of a product in the catalog"
                    ));
                }
            }
        }
        Ok(stock)
    }
}

impl Stock {
    /// Each product's ID, name and initial stock.
    fn products(&self) -> impl Iterator<Item = (i64, &'static str, i64)> + '_ {
        CATALOG.iter().map(|(id, name, ..)| (i64::from(*id), *name, self.0.get(id).copied().unwrap_or(0)))
    }
}

impl Orders {
    /// The orders in the SQLite database of the shop's `SqlTokenStore`, on its pool: each
    /// order's conversion is written in the order's transaction. Creates the tables.
    pub async fn joined_sqlite(pool: SqlitePool, stock: &Stock) -> Result<Self, sqlx::Error> {
        Self { db: Db::Sqlite(pool), joined: true, crash_after_commit: false }.created(stock).await
    }

    /// The orders in the Postgres database of the shop's `SqlTokenStore`, on its pool.
    pub async fn joined_postgres(pool: PgPool, stock: &Stock) -> Result<Self, sqlx::Error> {
        Self { db: Db::Postgres(pool), joined: true, crash_after_commit: false }.created(stock).await
    }

    /// The orders in a SQLite database of their own at `url` (`sqlite://PATH?mode=rwc` or
    /// `sqlite::memory:`), for a token store no transaction of the shop's can join. A file is
    /// in WAL mode: instances sharing it read while one of them writes.
    pub async fn apart(url: &str, stock: &Stock) -> Result<Self, sqlx::Error> {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Ok(Self::in_memory(stock));
        }
        let options = SqliteConnectOptions::from_str(url)?.journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePool::connect_with(options).await?;
        Self { db: Db::Sqlite(pool), joined: false, crash_after_commit: false }.created(stock).await
    }

    /// The orders in memory, on one SQLite connection kept open, its tables created when it
    /// opens; a restart loses them.
    pub fn in_memory(stock: &Stock) -> Self {
        let stock = Arc::new(stock.clone());
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(move |connection, _| {
                let stock = Arc::clone(&stock);
                Box::pin(async move {
                    create_tables!(connection, stock);
                    Ok(())
                })
            })
            .connect_lazy_with(SqliteConnectOptions::new().in_memory(true));
        Self { db: Db::Sqlite(pool), joined: false, crash_after_commit: false }
    }

    /// With `crash`, the process aborts right after an order's commit, before it answers: a
    /// test knob for the crash between an order and anything after it.
    pub fn crash_after_commit(self, crash: bool) -> Self {
        Self { crash_after_commit: crash, ..self }
    }

    /// Whether each order's conversion is written in the order's transaction.
    pub fn is_joined(&self) -> bool {
        self.joined
    }

    /// Creates the tables and the products, unless a read finds them: an instance starting
    /// beside others does not wait for their writes.
    async fn created(self, stock: &Stock) -> Result<Self, sqlx::Error> {
        let known: Result<Vec<(i64,)>, _> =
            on_db!(&self.db, pool => sqlx::query_as(PRODUCTS).fetch_all(pool).await);
        if known.is_ok_and(|known| stock.products().all(|(id, ..)| known.contains(&(id,)))) {
            return Ok(self);
        }
        let before: &[&str] = match self.db {
            Db::Sqlite(_) => &[],
            Db::Postgres(_) => &[POSTGRES_SCHEMA_LOCK],
        };
        on_db!(&self.db, pool => {
            let mut transaction = pool.begin().await?;
            for statement in before {
                sqlx::query(statement).execute(&mut *transaction).await?;
            }
            create_tables!(transaction, stock);
            transaction.commit().await?;
        });
        Ok(self)
    }

    /// Places an order of `order.items` with the visitor's `conversion`, under a new
    /// reference. Sold out: nothing is written and the visitor keeps their token.
    ///
    /// On SQLite and Postgres one transaction writes the stock, the conversion and the order:
    /// they commit together, or not at all. Otherwise the order keeps the visitor's token and
    /// product, and its conversion is recorded after the commit from what it kept
    /// (`delivery.owe`).
    pub async fn place(
        &self,
        order: &NewOrder,
        conversion: SovendusConversion,
        delivery: &Delivery,
    ) -> Result<Placed, OrderError> {
        let reference = new_reference();
        let conversion = conversion.for_order(reference.clone());
        // What recording would book, read before the transaction: kept with the order.
        let (token, product) = (conversion.token().await.cloned(), conversion.product_id().await.cloned());
        let placed_at = millis(SystemTime::now());
        let outcome = on_db!(&self.db, pool => {
            let mut transaction = pool.begin().await?;
            // A write first: SQLite takes its write lock at once, rather than failing to
            // upgrade a read lock later.
            for (product, count) in counted(&order.items) {
                let taken = sqlx::query(TAKE_STOCK).bind(i64::from(product)).bind(count);
                if taken.execute(&mut *transaction).await?.rows_affected() == 0 {
                    transaction.rollback().await?;
                    return Ok(Placed::SoldOut(product));
                }
            }
            // On SQL, the visitor's token becomes an owed conversion of this order, in its
            // transaction (`Err`: nothing written; the transaction, dropped, rolls the order
            // back). Otherwise the order keeps the token and product, recorded after the commit.
            let outcome = if self.joined { Some(conversion.owe_in(&mut *transaction).await?) } else { None };
            // The token of a conversion this order records, for a cancellation (and the restart).
            let kept = outcome.as_ref().is_none_or(|outcome| outcome.recorded() != Recorded::No);
            let token = token.as_ref().filter(|_| kept).map(SovReqToken::as_str);
            let product = product.as_ref().filter(|_| kept).map(ProductId::as_str);
            sqlx::query(INSERT_ORDER)
                .bind(reference.as_str())
                .bind(placed_at)
                .bind(&order.shipping)
                .bind(token)
                .bind(product)
                .bind(outcome.as_ref().and_then(outcome_name))
                .execute(&mut *transaction)
                .await?;
            for (line, product) in (0_i64..).zip(&order.items) {
                let item = sqlx::query(INSERT_ITEM).bind(reference.as_str()).bind(line);
                item.bind(i64::from(*product)).execute(&mut *transaction).await?;
            }
            transaction.commit().await?;
            outcome
        });
        if self.crash_after_commit {
            std::process::abort();
        }
        if let (None, Some(token), Some(product)) = (outcome, token, product) {
            // Recorded after the commit, from what the order kept: a crash in between leaves the
            // order with its token and no outcome, for `owe_unrecorded` at the next start.
            match delivery.owe(reference.clone(), token, product).await {
                Ok(outcome) => self.record(&reference, &outcome).await,
                Err(error) => tracing::warn!(%error, order = %reference,
                    "Sovendus conversion not recorded: kept with the order, owed at the next start"),
            }
        }
        Ok(Placed::Order(reference))
    }

    /// Keeps what recording the conversion of `reference` answered, if it says.
    async fn record(&self, reference: &OrderRef, outcome: &Outcome) {
        let Some(name) = outcome_name(outcome) else { return };
        let recorded = on_db!(&self.db, pool => {
            sqlx::query(RECORD).bind(reference.as_str()).bind(name).execute(pool).await.map(drop)
        });
        if let Err(error) = recorded {
            tracing::warn!(%error, order = %reference, "could not keep the Sovendus outcome with the order");
        }
    }

    /// Makes owed the conversions of the orders that kept a token and recorded no outcome: a
    /// crash came between their commit and their send, or the send failed. The store makes
    /// one conversion per token, so an order whose conversion was recorded after all books
    /// nothing more. Returns how many were recorded now.
    pub async fn owe_unrecorded(&self, delivery: &Delivery) -> Result<usize, sqlx::Error> {
        let since = millis(SystemTime::now() - RECOVER_FOR);
        let rows: Vec<(String, String, Option<String>)> =
            on_db!(&self.db, pool => sqlx::query_as(UNRECORDED).bind(since).fetch_all(pool).await?);
        let mut recorded = 0;
        for (reference, token, product) in rows {
            let parsed = (OrderRef::new(&reference), SovReqToken::new(&token), product.map(ProductId::new));
            let (Ok(order), Ok(token), Some(Ok(product))) = parsed else {
                tracing::warn!(order = %reference,
                    "an order's Sovendus token or product is invalid: not recorded");
                continue;
            };
            match delivery.owe(order.clone(), token, product).await {
                Ok(outcome) => {
                    tracing::info!(order = %reference, ?outcome,
                        "Sovendus conversion of an order left unrecorded");
                    self.record(&order, &outcome).await;
                    recorded += 1;
                    // Cancelled since it was read: its conversion goes too.
                    let cancelled =
                        self.find(&order).await.ok().flatten().is_some_and(|o| o.cancelled_at.is_some());
                    if cancelled {
                        if let Err(error) = delivery.void(&order).await {
                            tracing::warn!(%error, order = %reference, "could not void the conversion of a cancelled order");
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, order = %reference,
                    "Sovendus conversion still not recorded: tried again later"),
            }
        }
        Ok(recorded)
    }

    /// The order `reference`, with its items.
    pub async fn find(&self, reference: &OrderRef) -> Result<Option<Order>, sqlx::Error> {
        on_db!(&self.db, pool => {
            let row: Option<OrderRow> =
                sqlx::query_as(ORDER).bind(reference.as_str()).fetch_optional(pool).await?;
            let Some(row) = row else { return Ok(None) };
            let items: Vec<(i64,)> = sqlx::query_as(ITEMS).bind(reference.as_str()).fetch_all(pool).await?;
            let mut order = order_of(row);
            order.items = items.into_iter().filter_map(|(product,)| u32::try_from(product).ok()).collect();
            Ok(Some(order))
        })
    }

    /// The latest `limit` orders, the newest first, each with how many items it has.
    pub async fn latest(&self, limit: i64) -> Result<Vec<(Order, i64)>, sqlx::Error> {
        type Row = (String, i64, String, Option<String>, Option<String>, Option<String>, Option<i64>, i64);
        let rows: Vec<Row> =
            on_db!(&self.db, pool => sqlx::query_as(LATEST).bind(limit).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|(reference, placed, shipping, token, product, conversion, cancelled, items)| {
                (order_of((reference, placed, shipping, token, product, conversion, cancelled)), items)
            })
            .collect())
    }

    /// Marks the order cancelled and puts its items back in stock, in one transaction; `false`
    /// if it was cancelled before, or does not exist.
    pub async fn cancel(&self, reference: &OrderRef) -> Result<bool, sqlx::Error> {
        let now = millis(SystemTime::now());
        on_db!(&self.db, pool => {
            let mut transaction = pool.begin().await?;
            let cancel = sqlx::query(CANCEL).bind(reference.as_str()).bind(now);
            if cancel.execute(&mut *transaction).await?.rows_affected() == 0 {
                transaction.rollback().await?;
                return Ok(false);
            }
            sqlx::query(RESTOCK).bind(reference.as_str()).execute(&mut *transaction).await?;
            transaction.commit().await?;
            Ok(true)
        })
    }

    /// Each product's stock.
    pub async fn stock(&self) -> Result<BTreeMap<u32, i64>, sqlx::Error> {
        let rows: Vec<(i64, i64)> = on_db!(&self.db, pool => sqlx::query_as(STOCK).fetch_all(pool).await?);
        Ok(rows.into_iter().filter_map(|(id, stock)| Some((u32::try_from(id).ok()?, stock))).collect())
    }
}

/// What recording a conversion answered, as `shop_orders.conversion` keeps it; `None` when it
/// is not known.
fn outcome_name(outcome: &Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Sent { .. } => Some("sent"),
        Outcome::Owed { .. } => Some("owed"),
        Outcome::Parked { .. } => Some("parked"),
        Outcome::Dead { .. } => Some("dead"),
        Outcome::AlreadyConverted(_) => Some("already converted"),
        Outcome::NoToken => Some("no token"),
        _ => None,
    }
}

fn order_of((reference, placed_at, shipping, token, product, conversion, cancelled_at): OrderRow) -> Order {
    Order {
        reference,
        placed_at: time_of(placed_at),
        shipping,
        items: Vec::new(),
        token: token.and_then(|token| SovReqToken::new(token).ok()),
        product,
        conversion,
        cancelled_at: cancelled_at.map(time_of),
    }
}

/// Each product of `items` with how many times it is there.
fn counted(items: &[u32]) -> BTreeMap<u32, i64> {
    let mut counted = BTreeMap::new();
    for item in items {
        *counted.entry(*item).or_default() += 1;
    }
    counted
}

/// A new order reference, `TS-` and 12 random characters of Crockford's base 32 (60 bits):
/// unique across restarts and instances sharing the database without asking it.
fn new_reference() -> OrderRef {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let suffix: String = (0..12).map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())])).collect();
    OrderRef::new(format!("TS-{suffix}")).expect("15 characters, none a control character")
}

fn millis(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

fn time_of(millis: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or_default())
}
