//! The order and its conversion in one transaction (`SovendusConversion::owe_in`), on SQLite
//! and a real Postgres, through the extractor: commit books once, rollback leaves the token
//! with the visitor, two transactions for one token make one conversion, a transaction on
//! another database is refused, and SQLite's write lock is never waited for.

use crate::common;

use std::time::{Duration, Instant};

use axum::{
    Router,
    extract::{Query, State},
    routing::post,
};
use common::{TestShop, Visitor, describe, postgres::PostgresServer};
use serde::Deserialize;
use tower_sessions::MemoryStore;
use tower_sovendus::{
    SovendusConversion, SovendusLayer,
    sandbox::{Fault, Sandbox},
    store::{
        ConversionCounts, MokaTokenStore, SqlTokenStore,
        sqlx::{self, PgPool, SqlitePool},
    },
};

/// The shop's own database: where its orders go, in the transaction that owes the conversion.
#[derive(Clone)]
enum Orders {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

const CREATE_ORDERS: &str = "CREATE TABLE IF NOT EXISTS orders (reference TEXT PRIMARY KEY NOT NULL)";

impl Orders {
    async fn create(&self) {
        match self {
            Self::Sqlite(pool) => sqlx::query(CREATE_ORDERS).execute(pool).await.map(drop),
            Self::Postgres(pool) => sqlx::query(CREATE_ORDERS).execute(pool).await.map(drop),
        }
        .unwrap();
    }

    async fn count(&self) -> i64 {
        let count = "SELECT COUNT(*) FROM orders";
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(count).fetch_one(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(count).fetch_one(pool).await,
        }
        .unwrap()
    }
}

#[derive(Deserialize)]
struct OrderForm {
    reference: String,
    /// Roll back instead of committing.
    #[serde(default)]
    roll_back: bool,
    /// How long to hold the transaction open after the take, in milliseconds.
    #[serde(default)]
    hold: u64,
    /// Pass a connection of the pool, outside any transaction.
    #[serde(default)]
    bare: bool,
}

/// Inserts the order and owes its conversion in one transaction; answers what `owe_in` said,
/// and how long it took, in milliseconds, after a space.
async fn order_in_transaction(
    State(orders): State<Orders>,
    Query(form): Query<OrderForm>,
    conversion: SovendusConversion,
) -> String {
    let conversion = conversion.for_order(form.reference.parse().unwrap());
    let insert = "INSERT INTO orders (reference) VALUES ($1)";
    macro_rules! in_transaction {
        ($pool:expr) => {{
            if form.bare {
                let mut connection = $pool.acquire().await.unwrap();
                return format!("{} 0", describe(conversion.owe_in(&mut *connection).await));
            }
            let mut transaction = $pool.begin().await.unwrap();
            // The order's write first: on SQLite the transaction holds the write lock from here.
            sqlx::query(insert).bind(&form.reference).execute(&mut *transaction).await.unwrap();
            let started = Instant::now();
            let outcome = conversion.owe_in(&mut *transaction).await;
            let took = started.elapsed().as_millis();
            tokio::time::sleep(Duration::from_millis(form.hold)).await;
            if form.roll_back || outcome.is_err() {
                transaction.rollback().await.unwrap();
            } else {
                transaction.commit().await.unwrap();
            }
            format!("{} {took}", describe(outcome))
        }};
    }
    match orders {
        Orders::Sqlite(pool) => in_transaction!(pool),
        Orders::Postgres(pool) => in_transaction!(pool),
    }
}

/// The test shop's routes, and the order route above on `orders`, behind `layer`.
async fn shop(sandbox: Sandbox, layer: SovendusLayer, orders: Orders) -> TestShop {
    orders.create().await;
    let delivery = layer.delivery();
    let transactional =
        Router::new().route("/order-in-transaction", post(order_in_transaction)).with_state(orders);
    let app = common::shop_routes()
        .merge(transactional)
        .layer(layer)
        .layer(common::session_layer(MemoryStore::default()));
    let addr = common::serve(app).await;
    TestShop { sandbox, delivery, visitor: Visitor::new(addr) }
}

/// A shop whose token store and orders share one database: SQLite in `dir`, or the database
/// `name` of `postgres`. The default schedule: the workers' own poll is 5 s apart.
async fn shop_on(backend: Backend<'_>, name: &str) -> (TestShop, Orders) {
    let sandbox = Sandbox::start().await.unwrap();
    let config = sandbox.config().build().unwrap();
    let (store, orders) = database(backend, name).await;
    (shop(sandbox, SovendusLayer::with_store(config, store), orders.clone()).await, orders)
}

#[derive(Clone, Copy)]
enum Backend<'a> {
    Sqlite(&'a std::path::Path),
    Postgres(&'a PostgresServer),
}

/// A migrated token store on a new database, and the same database as the shop's orders.
async fn database(backend: Backend<'_>, name: &str) -> (SqlTokenStore, Orders) {
    match backend {
        Backend::Sqlite(dir) => {
            let url = format!("sqlite://{}?mode=rwc", dir.join(format!("{name}.db")).display());
            let pool = SqlitePool::connect(&url).await.unwrap();
            let store = SqlTokenStore::sqlite(pool.clone());
            store.migrate().await.unwrap();
            (store, Orders::Sqlite(pool))
        }
        Backend::Postgres(server) => {
            let pool = PgPool::connect(&server.database(name).await).await.unwrap();
            let store = SqlTokenStore::postgres(pool.clone());
            store.migrate().await.unwrap();
            (store, Orders::Postgres(pool))
        }
    }
}

impl Visitor {
    /// Orders `reference` in one transaction with its conversion; what `owe_in` said.
    async fn order_in_transaction(&self, reference: &str, roll_back: bool, hold: u64) -> String {
        let query = format!("/order-in-transaction?reference={reference}&roll_back={roll_back}&hold={hold}");
        let response = self.client.post(self.url(&query)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let said = response.text().await.unwrap();
        said.rsplit_once(' ').map(|(said, _)| said.to_owned()).unwrap()
    }
}

/// Runs `test` on SQLite (a file in a temporary folder) and on Postgres, if it is installed.
async fn on_each_backend<F>(test_name: &str, test: F)
where
    F: AsyncFn(Backend<'_>),
{
    let dir = tempfile::tempdir().unwrap();
    test(Backend::Sqlite(dir.path())).await;
    if let Some(server) = PostgresServer::start(test_name) {
        test(Backend::Postgres(&server)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_order_books_its_conversion_once() {
    on_each_backend("a_committed_order_books_its_conversion_once", async |backend| {
        let (shop, orders) = shop_on(backend, "committed").await;
        shop.get("/landing?sovReqToken=committed-1").await;
        assert_eq!(shop.order_in_transaction("A-1", false, 0).await, "owed");
        // Woken once the commit is seen: well before the workers' own poll, 5 s later.
        let booked = shop.sandbox.wait_for_conversions(1, Duration::from_secs(4)).await;
        assert_eq!(booked.len(), 1, "delivered after the commit, without waiting for a poll");
        assert_eq!(
            shop.order_in_transaction("A-2", false, 0).await,
            "already_converted",
            "the token is spent"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(shop.sandbox.conversions().len(), 1, "booked once");
        let found = shop.delivery.find(&"A-1".parse().unwrap()).await.unwrap().expect("found by its order");
        assert_eq!(found.token.as_str(), "committed-1");
        assert_eq!(orders.count().await, 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_order_leaves_the_token_with_the_visitor() {
    on_each_backend("a_rolled_back_order_leaves_the_token_with_the_visitor", async |backend| {
        let (shop, orders) = shop_on(backend, "rolled_back").await;
        shop.get("/landing?sovReqToken=rolled-back-1").await;
        assert_eq!(shop.order_in_transaction("B-1", true, 0).await, "owed", "owed, had it committed");
        assert_eq!(orders.count().await, 0, "the order rolled back");
        assert_eq!(shop.delivery.counts().await.unwrap(), ConversionCounts::default(), "nothing owed");
        assert!(shop.delivery.find(&"B-1".parse().unwrap()).await.unwrap().is_none());
        assert_eq!(shop.pending_token().await, "rolled-back-1", "the token is the visitor's again");
        // The next order converts it, once.
        assert_eq!(shop.order_in_transaction("B-2", false, 0).await, "owed");
        let booked = shop.sandbox.wait_for_conversions(1, Duration::from_secs(10)).await;
        assert_eq!(booked.len(), 1);
        let found = shop.delivery.find(&"B-2".parse().unwrap()).await.unwrap().expect("the second order's");
        assert_eq!(found.token.as_str(), "rolled-back-1");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_transactions_for_one_token_make_one_conversion() {
    on_each_backend("two_transactions_for_one_token_make_one_conversion", async |backend| {
        let (shop, _orders) = shop_on(backend, "two_transactions").await;
        shop.get("/landing?sovReqToken=double-submit-1").await;
        // A double submit: both transactions hold on for 300 ms after their take.
        let (first, second) = tokio::join!(
            shop.order_in_transaction("C-1", false, 300),
            shop.order_in_transaction("C-2", false, 300)
        );
        let mut said = [first, second];
        said.sort();
        assert_eq!(
            said,
            ["already_converted", "owed"],
            "the second waited for the first, and found it taken"
        );
        shop.sandbox.wait_for_conversions(1, Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(shop.sandbox.conversions().len(), 1, "booked once");
        assert_eq!(shop.delivery.counts().await.unwrap().delivered, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_on_another_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = async |name: &str| database(Backend::Sqlite(dir.path()), name).await;
    let (store, _) = sqlite("the_store").await;
    let (_, migrated_elsewhere) = sqlite("another_store").await;
    let bare = SqlitePool::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("bare.db").display()))
        .await
        .unwrap();
    let mut cases = vec![
        (store.clone(), migrated_elsewhere, "the transaction's database is not the token store's"),
        (store.clone(), Orders::Sqlite(bare), "the transaction's database has no Sovendus tables"),
    ];
    let server = PostgresServer::start("a_transaction_on_another_database_is_refused");
    if let Some(server) = &server {
        let (_, postgres) = database(Backend::Postgres(server), "another_backend").await;
        cases.push((store.clone(), postgres, "the transaction is on postgres, the token store on sqlite"));
        // On Postgres, the failed statement aborts the order's transaction: it is rolled back.
        let (postgres_store, _) = database(Backend::Postgres(server), "the_postgres_store").await;
        let bare = PgPool::connect(&server.database("bare").await).await.unwrap();
        cases.push((
            postgres_store,
            Orders::Postgres(bare),
            "the transaction's database has no Sovendus tables",
        ));
    }
    for (store, orders, why) in cases {
        let sandbox = Sandbox::start().await.unwrap();
        let layer = SovendusLayer::with_store(sandbox.config().build().unwrap(), store.clone());
        let shop = shop(sandbox, layer, orders).await;
        // A visitor without a token has nothing to write: nothing is checked.
        assert_eq!(shop.new_visitor().order_in_transaction("D-0", false, 0).await, "no_token");
        shop.get("/landing?sovReqToken=elsewhere-1").await;
        let said = shop.order_in_transaction("D-1", false, 0).await;
        assert!(said.starts_with("unjoinable: ") && said.contains(why), "{said}");
        assert_eq!(shop.pending_token().await, "elsewhere-1", "nothing taken");
    }
    // A layer on a store no transaction can join.
    let sandbox = Sandbox::start().await.unwrap();
    let layer = SovendusLayer::with_store(sandbox.config().build().unwrap(), MokaTokenStore::new(100));
    let (_, orders) = sqlite("for_memory").await;
    let shop = shop(sandbox, layer, orders).await;
    shop.get("/landing?sovReqToken=memory-1").await;
    let said = shop.order_in_transaction("E-1", false, 0).await;
    assert!(said.contains("not a SqlTokenStore"), "{said}");
    assert_eq!(shop.pending_token().await, "memory-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_outside_a_transaction_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (shop, _) = shop_on(Backend::Sqlite(dir.path()), "bare_connection").await;
    shop.get("/landing?sovReqToken=no-transaction-1").await;
    let response =
        shop.client.post(shop.url("/order-in-transaction?reference=G-1&bare=true")).send().await.unwrap();
    let said = response.text().await.unwrap();
    assert!(said.starts_with("unjoinable: the connection is not in a transaction"), "{said}");
    assert_eq!(shop.pending_token().await, "no-transaction-1", "nothing taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_the_take_never_waits_for_the_orders_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (shop, _) = shop_on(Backend::Sqlite(dir.path()), "write_lock").await;
    // Sovendus slow: deliveries under way write to the store while orders hold the write lock.
    shop.sandbox.fail_every(1, [Fault::Delay(Duration::from_millis(200))]);
    for index in 0..5 {
        let visitor = shop.new_visitor();
        visitor.get(&format!("/landing?sovReqToken=write-lock-{index}")).await;
        let query = format!("/order-in-transaction?reference=F-{index}");
        let response = visitor.client.post(visitor.url(&query)).send().await.unwrap();
        let said = response.text().await.unwrap();
        let (said, took) = said.rsplit_once(' ').unwrap();
        assert_eq!(said, "owed");
        // The store's timeout is 5 s: a take waiting for the order's write lock would end there.
        let took: u64 = took.parse().unwrap();
        assert!(took < 2_000, "the take inside the transaction took {took} ms");
    }
    assert_eq!(shop.sandbox.wait_for_conversions(5, Duration::from_secs(20)).await.len(), 5);
}
