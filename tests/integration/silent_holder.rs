//! Exactly once across instances: two instances on one shared store (memory, SQLite, Postgres
//! and Redis), each with its own workers, and the faults that would have another instance send a
//! conversion whose holder went silent: an outage of the store for every instance longer than
//! the lease, a renewal that times out, a step of the store's clock; a void during a delivery,
//! or between its claim and its first call; a stop while an order handler's call is out. The sandbox counts every call as it arrives:
//! the honest count of bookings.

use std::{sync::Arc, time::Duration};

use tokio::time::sleep;
use tower_sessions::MemoryStore;
use tower_sovendus::{
    Delivery, DeliverySchedule, OrderRef, RetryPolicy, SovendusLayer,
    sandbox::{Fault, Sandbox},
    store::{ConversionState, MokaTokenStore, RedisTokenStore, SqlTokenStore, TokenStore, VoidOutcome},
};

use crate::common::{
    self, Visitor, eventually,
    faulty::{FaultyStore, Renewals, StoreFaults},
    postgres::PostgresServer,
    redis::RedisServer,
    serve, session_layer, shop_routes,
};

/// Leases of 1 s: an outage of 3 s is three of them.
const LEASE: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Longer than the outages below, and at least the request timeout.
const QUARANTINE: Duration = Duration::from_secs(5);

/// Where the instances keep their tokens: one store, shared.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    Sqlite,
    Postgres,
    Redis,
}

const BACKENDS: [Backend; 4] = [Backend::Memory, Backend::Sqlite, Backend::Postgres, Backend::Redis];

/// One shared store: what each instance opens of it, and the server or file behind it.
struct SharedStore {
    stores: Vec<Arc<dyn TokenStore>>,
    _postgres: Option<PostgresServer>,
    _redis: Option<RedisServer>,
    _dir: Option<tempfile::TempDir>,
}

impl SharedStore {
    /// `count` views of one store of `backend`, each on connections of its own; `None` where
    /// the server is not installed (outside CI).
    async fn open(backend: Backend, count: usize, test: &str) -> Option<Self> {
        let mut shared = Self { stores: Vec::new(), _postgres: None, _redis: None, _dir: None };
        match backend {
            Backend::Memory => {
                let store: Arc<dyn TokenStore> = Arc::new(MokaTokenStore::new(1_000));
                shared.stores = vec![store; count];
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("tokens.db").display());
                for _ in 0..count {
                    let store = SqlTokenStore::sqlite(sqlx::SqlitePool::connect(&url).await.unwrap());
                    store.migrate().await.unwrap();
                    shared.stores.push(Arc::new(store));
                }
                shared._dir = Some(dir);
            }
            Backend::Postgres => {
                let server = PostgresServer::start(test)?;
                let url = server.database("tokens").await;
                for _ in 0..count {
                    let store = SqlTokenStore::postgres(sqlx::PgPool::connect(&url).await.unwrap());
                    store.migrate().await.unwrap();
                    shared.stores.push(Arc::new(store));
                }
                shared._postgres = Some(server);
            }
            Backend::Redis => {
                let server = RedisServer::start(test)?;
                for _ in 0..count {
                    shared.stores.push(Arc::new(RedisTokenStore::new(server.pool().await)));
                }
                shared._redis = Some(server);
            }
        }
        Some(shared)
    }
}

/// An instance of the shop: its delivery, its own view of the shared store, and its address.
struct Instance {
    delivery: Delivery,
    store: Arc<FaultyStore<Arc<dyn TokenStore>>>,
    addr: std::net::SocketAddr,
}

/// The instances of one test on one backend, their sandbox, and what they all meet.
struct Shops {
    backend: Backend,
    sandbox: Sandbox,
    faults: Arc<StoreFaults>,
    instances: Vec<Instance>,
    _store: SharedStore,
}

impl Shops {
    /// Two instances on one store of `backend`, sharing sessions, with `schedule` and `retry`.
    async fn start(
        backend: Backend,
        test: &str,
        schedule: DeliverySchedule,
        retry: RetryPolicy,
    ) -> Option<Self> {
        Self::start_with(backend, test, schedule, retry, 4).await
    }

    /// The same, with `workers` delivery workers each.
    async fn start_with(
        backend: Backend,
        test: &str,
        schedule: DeliverySchedule,
        retry: RetryPolicy,
        workers: usize,
    ) -> Option<Self> {
        let store = SharedStore::open(backend, 2, test).await?;
        let sandbox = Sandbox::start().await.unwrap();
        let (faults, sessions) = (Arc::new(StoreFaults::default()), MemoryStore::default());
        let mut instances = Vec::new();
        for inner in &store.stores {
            let config = sandbox
                .config()
                .request_timeout(REQUEST_TIMEOUT)
                .retry(retry)
                .schedule(schedule)
                .workers(workers)
                .build()
                .unwrap();
            let view = Arc::new(FaultyStore::sharing(Arc::clone(inner), Arc::clone(&faults)));
            let layer = SovendusLayer::with_store(config, Arc::clone(&view));
            let delivery = layer.delivery();
            let addr = serve(shop_routes().layer(layer).layer(session_layer(sessions.clone()))).await;
            instances.push(Instance { delivery, store: view, addr });
        }
        Some(Self { backend, sandbox, faults, instances, _store: store })
    }

    /// A visitor of instance `index` who landed with `token`.
    async fn visitor(&self, index: usize, token: &str) -> Visitor {
        let visitor = Visitor::new(self.instances[index].addr);
        visitor.get(&format!("/landing?sovReqToken={token}")).await;
        visitor
    }

    /// Waits until Sovendus has received `count` calls.
    async fn until_calls(&self, count: usize) {
        let sandbox = &self.sandbox;
        let arrived = eventually(Duration::from_secs(10), async || sandbox.calls_received() >= count).await;
        assert!(arrived, "{:?}: {count} call(s) arrived: {:?}", self.backend, sandbox.conversions());
    }

    /// Waits past the lease and the quarantine of every delivery (the workers poll every 50 ms),
    /// then checks that Sovendus got `calls` calls and the store records one delivered.
    async fn booked_once(&self) {
        sleep(LEASE + QUARANTINE + Duration::from_secs(1)).await;
        let calls = self.sandbox.calls_received();
        assert_eq!(calls, 1, "{:?}: one call, one booking: {:?}", self.backend, self.sandbox.conversions());
        let counts = self.instances[0].delivery.counts().await.unwrap();
        assert_eq!((counts.delivered, counts.owed), (1, 0), "{:?}: {counts:?}", self.backend);
    }
}

/// The instances' schedule: leases of [`LEASE`], the [`QUARANTINE`], polls every 50 ms.
fn schedule() -> DeliverySchedule {
    common::quick_schedule().lease(LEASE).quarantine(QUARANTINE)
}

/// Runs `test` on every backend at once; a backend whose server is missing is skipped (outside CI).
async fn on_every_backend<F, Fut>(test: F)
where
    F: Fn(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    futures_util::future::join_all(BACKENDS.map(&test)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_outage_of_every_instance_longer_than_the_lease_while_a_call_is_out_books_once() {
    on_every_backend(async |backend| {
        let test = "a_store_outage_of_every_instance_longer_than_the_lease";
        let Some(shops) = Shops::start(backend, test, schedule(), RetryPolicy::never()).await else { return };
        // Sovendus books the call as it arrives, and answers 200 during the outage.
        shops.sandbox.fault_next(1, Fault::Delay(Duration::from_millis(1500)));
        let visitor = shops.visitor(0, "1095752fb409-outage").await;
        let ordered = visitor.order_in_background().await;
        assert_eq!(ordered, "owed", "{backend:?}");
        shops.until_calls(1).await;
        shops.faults.away(true);
        sleep(3 * LEASE).await;
        shops.faults.away(false);
        shops.booked_once().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_renewal_that_times_out_during_a_long_call_lets_nobody_send_it_again() {
    on_every_backend(async |backend| {
        let test = "a_renewal_that_times_out_during_a_long_call";
        let Some(shops) = Shops::start(backend, test, schedule(), RetryPolicy::never()).await else { return };
        // Every renewal of both instances times out, at a store timeout of a third of the lease
        // (a pool exhausted, SQLite's write lock held by an order), while Sovendus takes 2.5 s
        // to answer: the lease runs out during the call.
        for instance in &shops.instances {
            instance.store.renewals(Renewals::TimeOut(LEASE / 3));
        }
        shops.sandbox.fault_next(1, Fault::Delay(Duration::from_millis(2500)));
        let visitor = shops.visitor(1, "1095752fb409-renewal").await;
        assert_eq!(visitor.order_in_background().await, "owed", "{backend:?}");
        shops.until_calls(1).await;
        shops.booked_once().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_of_the_store_clock_by_a_minute_either_way_sends_nothing_twice() {
    // A quarantine a minute longer than the request timeout: the documented bound of a step.
    let quarantine = Duration::from_secs(65);
    for step_ms in [60_000, -60_000] {
        on_every_backend(async |backend| {
            let test = "a_step_of_the_store_clock_by_a_minute";
            let schedule = schedule().quarantine(quarantine);
            let Some(shops) = Shops::start(backend, test, schedule, RetryPolicy::never()).await else {
                return;
            };
            shops.sandbox.fault_next(1, Fault::Delay(Duration::from_millis(2000)));
            let visitor = shops.visitor(0, "1095752fb409-clock").await;
            assert_eq!(visitor.order_in_background().await, "owed", "{backend:?}");
            shops.until_calls(1).await;
            // The step, while the call is out: the holder's own claims see it at their next poll.
            shops.faults.step_clock(step_ms);
            sleep(LEASE * 4).await;
            assert_eq!(
                shops.sandbox.calls_received(),
                1,
                "{backend:?} {step_ms} ms: {:?}",
                shops.sandbox.conversions()
            );
            let counts = shops.instances[1].delivery.counts().await.unwrap();
            assert_eq!(counts.delivered, 1, "{backend:?} {step_ms} ms: {counts:?}");
        })
        .await;
    }
}

/// Waits of 500 ms between quick attempts, for 30 s.
fn slow_retries() -> RetryPolicy {
    RetryPolicy::default()
        .initial_backoff(Duration::from_millis(500))
        .max_backoff(Duration::from_millis(500))
        .max_elapsed(Duration::from_secs(30))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_void_between_quick_retries_answers_voided_and_stops_the_next_call() {
    on_every_backend(async |backend| {
        let test = "a_void_between_quick_retries";
        let Some(shops) = Shops::start(backend, test, schedule(), slow_retries()).await else { return };
        // Every call is refused at once: the delivery waits between its quick retries.
        shops.sandbox.fail_every(1, [Fault::Status(http::StatusCode::SERVICE_UNAVAILABLE)]);
        let visitor = shops.visitor(0, "1095752fb409-void").await;
        let order =
            tokio::spawn(async move { visitor.client.post(visitor.url("/order-for/A-1")).send().await });
        shops.until_calls(1).await;
        let voided = shops.instances[1].delivery.void(&"A-1".parse::<OrderRef>().unwrap()).await.unwrap();
        assert!(matches!(voided, VoidOutcome::Voided(_)), "{backend:?}: within one call's time: {voided:?}");
        let calls = shops.sandbox.calls_received();
        order.await.unwrap().unwrap();
        sleep(Duration::from_secs(2)).await;
        assert_eq!(shops.sandbox.calls_received(), calls, "{backend:?}: no call after the void");
        let counts = shops.instances[0].delivery.counts().await.unwrap();
        assert_eq!((counts.voided, counts.owed), (1, 0), "{backend:?}: {counts:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_void_between_the_claim_and_the_first_call_sends_nothing() {
    on_every_backend(async |backend| {
        let test = "a_void_between_the_claim_and_the_first_call";
        let Some(shops) = Shops::start_with(backend, test, schedule(), RetryPolicy::never(), 1).await else {
            return;
        };
        // Both instances' one worker each busy with a slow call; the third conversion is
        // claimed, and waits for a worker. Its visitor lands first: the order and the void then
        // come within the busy calls.
        let waiting = shops.visitor(0, "1095752fb409-waiting").await;
        shops.sandbox.fail_every(1, [Fault::Delay(Duration::from_millis(2500))]);
        for (n, token) in ["1095752fb409-busy-1", "1095752fb409-busy-2"].into_iter().enumerate() {
            let visitor = shops.visitor(n, token).await;
            assert_eq!(visitor.order_in_background().await, "owed", "{backend:?}");
        }
        shops.until_calls(2).await;
        let response = waiting.client.post(waiting.url("/order-in-background-for/A-3")).send().await.unwrap();
        assert_eq!(response.text().await.unwrap(), "owed", "{backend:?}");
        let voided = shops.instances[1].delivery.void(&"A-3".parse::<OrderRef>().unwrap()).await.unwrap();
        sleep(Duration::from_secs(3)).await;
        let calls = shops.sandbox.conversions();
        match voided {
            // Before its first call: it never calls.
            VoidOutcome::Voided(_) => {
                assert_eq!(calls.len(), 2, "{backend:?}: voided, never called: {calls:?}")
            }
            // A worker freed first (a loaded machine): called once, and said so.
            VoidOutcome::Delivered(_) => assert_eq!(calls.len(), 3, "{backend:?}: booked once: {calls:?}"),
            other => panic!("{backend:?}: {other:?}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_void_during_an_outage_with_a_call_out_never_says_voided_for_a_booking() {
    on_every_backend(async |backend| {
        let test = "a_void_during_an_outage_with_a_call_out";
        let Some(shops) = Shops::start(backend, test, schedule(), RetryPolicy::never()).await else { return };
        // The first call is booked and answered during the outage; a second would get a 503.
        shops.sandbox.fault_next(1, Fault::Delay(Duration::from_millis(1500)));
        shops.sandbox.fault_next(1, Fault::Status(http::StatusCode::SERVICE_UNAVAILABLE));
        let visitor = shops.visitor(0, "1095752fb409-takeover").await;
        // The handler's own delivery makes the call; its answer comes while the store is away.
        let ordered =
            tokio::spawn(async move { visitor.client.post(visitor.url("/order-for/A-2")).send().await });
        shops.until_calls(1).await;
        shops.faults.away(true);
        sleep(3 * LEASE).await;
        shops.faults.away(false);
        let order = "A-2".parse::<OrderRef>().unwrap();
        let voided = shops.instances[1].delivery.void(&order).await.unwrap();
        assert!(matches!(voided, VoidOutcome::Delivered(_)), "{backend:?}: Sovendus booked it: {voided:?}");
        assert_eq!(ordered.await.unwrap().unwrap().status(), 200, "{backend:?}");
        shops.booked_once().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_while_an_order_handlers_call_is_out_waits_for_it() {
    on_every_backend(async |backend| {
        let test = "a_stop_while_an_order_handlers_call_is_out";
        let Some(shops) = Shops::start(backend, test, schedule(), RetryPolicy::never()).await else { return };
        shops.sandbox.fault_next(1, Fault::Delay(Duration::from_millis(1500)));
        let visitor = shops.visitor(0, "1095752fb409-stop").await;
        // `send()`: the order handler's own call.
        let order = tokio::spawn(async move { visitor.order().await });
        shops.until_calls(1).await;
        let report = shops.instances[0].delivery.shutdown(Duration::from_secs(5)).await;
        assert!(report.is_complete(), "{backend:?}: {report:?}");
        // The instance is gone now: what it heard is in the store already.
        let counts = shops.instances[1].delivery.counts().await.unwrap();
        assert_eq!(counts.delivered, 1, "{backend:?}: recorded before the stop returned: {counts:?}");
        assert_eq!(order.await.unwrap(), "sent", "{backend:?}");
        shops.booked_once().await;
        let dead = shops.instances[1]
            .delivery
            .list(&tower_sovendus::store::ListQuery::new(ConversionState::Owed).limit(10))
            .await
            .unwrap();
        assert!(dead.is_empty(), "{backend:?}: {dead:?}");
    })
    .await;
}
