//! Two instances of a shop on one shared store, each on a runtime of its own so that one can be
//! killed outright (its runtime dropped: no shutdown, no last write): 1,000 conversions owed
//! through an API that fails every third call are each delivered exactly once, and when one
//! instance dies mid-delivery the other finishes its work.

use crate::common;

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use common::{eventually, quick_retries, quick_schedule, session_layer, shop_routes};
use http::StatusCode;
use tokio::runtime::Runtime;
use tower_sessions::SessionStore;
use tower_sovendus::{
    SovendusLayer,
    sandbox::{Fault, Sandbox},
    store::{ConversionState, Inspection, TokenStore},
};

/// Visitors, each with a token of their own.
const VISITORS: usize = 1_000;

/// One instance: a shop on a runtime of its own.
struct Instance {
    addr: SocketAddr,
    runtime: Option<Runtime>,
}

impl Instance {
    /// Starts an instance whose stores `stores` makes inside its runtime (a pool's connections
    /// belong to the runtime that opened them).
    fn start<T, S, F, Fut>(sandbox: &Sandbox, stores: F) -> Self
    where
        T: TokenStore,
        S: SessionStore + Clone,
        F: FnOnce() -> Fut,
        Fut: Future<Output = (T, S)>,
    {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let config = sandbox
            .config()
            .request_timeout(Duration::from_secs(2))
            .retry(quick_retries().max_attempts(3))
            .schedule(quick_schedule().quarantine(Duration::from_secs(2)))
            .build()
            .unwrap();
        let addr = runtime.block_on(async {
            let (tokens, sessions) = stores().await;
            let layer = SovendusLayer::with_store(config, tokens);
            common::serve(shop_routes().layer(layer).layer(session_layer(sessions))).await
        });
        Self { addr, runtime: Some(runtime) }
    }

    /// Kills the instance: every task of its runtime is dropped where it stands.
    fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How many 200s each token got.
fn bookings(sandbox: &Sandbox) -> HashMap<String, usize> {
    let mut bookings = HashMap::new();
    for call in sandbox.accepted() {
        *bookings.entry(call.token().unwrap_or_default().to_owned()).or_insert(0) += 1;
    }
    bookings
}

/// Visitor `index` lands on `landing` and orders on `order`, in the background.
async fn land_and_order(client: reqwest::Client, landing: SocketAddr, order: SocketAddr, index: usize) {
    let landed =
        client.get(format!("http://{landing}/landing?sovReqToken=visitor-{index}")).send().await.unwrap();
    let cookie = landed.headers().get(http::header::SET_COOKIE).expect("a session").to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let ordered =
        client.post(format!("http://{order}/order-in-background")).header(http::header::COOKIE, cookie);
    assert_eq!(ordered.send().await.unwrap().text().await.unwrap(), "owed");
}

/// The whole scenario on one store, made for each instance by `stores`.
async fn each_conversion_once_though_an_instance_dies<T, S, F, Fut>(
    sandbox: Sandbox,
    stores: F,
    counts: impl AsyncFn() -> u64,
) where
    T: TokenStore,
    S: SessionStore + Clone,
    F: Fn() -> Fut + Clone,
    Fut: Future<Output = (T, S)>,
{
    sandbox.fail_every(3, [Fault::Status(StatusCode::INTERNAL_SERVER_ERROR)]);
    let (sandbox, stores_a, stores_b) = (Arc::new(sandbox), stores.clone(), stores);
    let (mut a, b) = tokio::task::block_in_place(|| {
        (Instance::start(&sandbox, stores_a), Instance::start(&sandbox, stores_b))
    });

    // Each visitor lands on one instance and orders on the other.
    let client = reqwest::Client::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(50));
    let mut visitors = tokio::task::JoinSet::new();
    for index in 0..VISITORS {
        let (landing, order) = if index % 2 == 0 { (a.addr, b.addr) } else { (b.addr, a.addr) };
        let (client, permits) = (client.clone(), permits.clone());
        visitors.spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            land_and_order(client, landing, order, index).await;
        });
    }
    visitors.join_all().await;

    // Mid-way, Sovendus hangs, and instance A dies with calls under way: they are not booked.
    assert!(eventually(Duration::from_secs(60), async || bookings(&sandbox).len() >= VISITORS / 3).await);
    sandbox.fail_every(1, [Fault::Delay(Duration::from_secs(60))]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| a.kill());
    sandbox.fail_every(3, [Fault::Status(StatusCode::INTERNAL_SERVER_ERROR)]);

    // B finishes: A's conversions are due again once their leases run out.
    let all_booked = async || bookings(&sandbox).len() == VISITORS;
    assert!(eventually(Duration::from_secs(120), all_booked).await, "{} booked", bookings(&sandbox).len());
    assert!(
        eventually(Duration::from_secs(10), async || counts().await == VISITORS as u64).await,
        "all delivered"
    );
    let twice: Vec<_> = bookings(&sandbox).into_iter().filter(|(_, count)| *count > 1).collect();
    assert!(twice.is_empty(), "booked twice: {twice:?}");
    let failed = sandbox
        .conversions()
        .iter()
        .filter(|call| call.status() == Some(StatusCode::INTERNAL_SERVER_ERROR))
        .count();
    assert!(failed >= VISITORS / 4, "the API really failed every third call: {failed} failures");
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_deliver_each_conversion_once_though_one_dies() {
    use common::redis::RedisServer;
    use tower_sessions_redis_store::RedisStore;
    use tower_sovendus::store::RedisTokenStore;

    let Some(redis) =
        RedisServer::start("two_instances_on_one_redis_deliver_each_conversion_once_though_one_dies")
    else {
        return;
    };
    let redis = Arc::new(redis);
    let sandbox = Sandbox::builder().keep_calls(100_000).start().await.unwrap();
    let pools = redis.clone();
    let stores = move || {
        let redis = pools.clone();
        async move {
            let pool = redis.pool().await;
            (RedisTokenStore::new(pool.clone()), RedisStore::new(pool))
        }
    };
    let observer = RedisTokenStore::new(redis.pool().await);
    let delivered =
        async || observer.counts().await.map_or(0, |counts| counts.of(ConversionState::Delivered));
    each_conversion_once_though_an_instance_dies(sandbox, stores, delivered).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_deliver_each_conversion_once_though_one_dies() {
    use common::postgres::PostgresServer;
    use tower_sessions_sqlx_store::PostgresStore;
    use tower_sovendus::store::{SqlTokenStore, sqlx::PgPool};

    let Some(postgres) =
        PostgresServer::start("two_instances_on_one_postgres_deliver_each_conversion_once_though_one_dies")
    else {
        return;
    };
    let url = postgres.database("shop").await;
    let migrated = PgPool::connect(&url).await.unwrap();
    SqlTokenStore::postgres(migrated.clone()).migrate().await.unwrap();
    PostgresStore::new(migrated.clone()).migrate().await.unwrap();
    let sandbox = Sandbox::builder().keep_calls(100_000).start().await.unwrap();
    let stores = move || {
        let url = url.clone();
        async move {
            let pool = PgPool::connect(&url).await.unwrap();
            (SqlTokenStore::postgres(pool.clone()), PostgresStore::new(pool))
        }
    };
    let observer = SqlTokenStore::postgres(migrated);
    let delivered =
        async || observer.counts().await.map_or(0, |counts| counts.of(ConversionState::Delivered));
    each_conversion_once_though_an_instance_dies(sandbox, stores, delivered).await;
    drop(postgres);
}
