//! Redis killed mid-test, then restarted: landings still answer and their lost captures are
//! counted, orders get a typed error, and nothing is posted twice once Redis is back.
//!
//! The metrics recorder is global: the test runs in a process of its own.

use crate::common;

use common::{
    Visitor,
    counters::{count, counters},
    redis::{Instance, RedisServer},
    serve, session_layer, shop_routes,
};
use metrics_util::debugging::DebuggingRecorder;
use tower_sessions::MemoryStore;
use tower_sovendus::{SovendusLayer, metrics, sandbox::Sandbox, store::RedisTokenStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_then_restarted() {
    if common::ran_in_own_process("redis_outage::redis_killed_then_restarted") {
        return;
    }
    let Some(mut redis) = RedisServer::start("redis_killed_then_restarted") else { return };
    // Shown only if the test fails: why a capture or an order went the way it did.
    tracing_subscriber::fmt()
        .with_test_writer()
        .with_ansi(false)
        .with_env_filter("tower_sovendus=debug,fred=warn")
        .init();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let sandbox = Sandbox::start().await.unwrap();

    // A and B keep sessions and tokens in Redis. C keeps sessions in memory and tokens in
    // Redis, so that its session still loads while Redis is down and the token store alone
    // fails.
    let a = Instance::start(&redis, &sandbox, |config| config).await;
    let b = Instance::start(&redis, &sandbox, |config| config).await;
    let layer =
        SovendusLayer::with_store(sandbox.config().build().unwrap(), RedisTokenStore::new(a.pool.clone()));
    let c = serve(shop_routes().layer(layer).layer(session_layer(MemoryStore::default()))).await;

    let early_on_a = a.visitor();
    let early_on_c = Visitor::new(c);
    early_on_a.get("/landing?sovReqToken=early-on-a").await;
    early_on_c.get("/landing?sovReqToken=early-on-c").await;
    // Both are stored before the outage: a capture failing here (a Redis command slower than
    // the pool's 1 s on a stalled machine) is not what this test is about, and says so.
    let before = counters(&snapshotter);
    assert_eq!(count(&before, metrics::CAPTURED, None), 2, "a capture before the outage failed: {before:?}");

    redis.kill(true);

    // Landings still answer; their captures are lost, logged and counted.
    assert_eq!(a.visitor().get("/landing?sovReqToken=during-on-a").await, (200, "landing".to_owned()));
    assert_eq!(Visitor::new(c).get("/landing?sovReqToken=during-on-c").await, (200, "landing".to_owned()));
    // An order on C gets the typed error; nothing reaches Sovendus. Whether the take ran is
    // unknown to the store: fred may send the command it queued once Redis is back.
    assert_eq!(early_on_c.order().await, "unknown");
    assert!(sandbox.conversions().is_empty());

    redis.restart();

    // Back: each early token is sent once, from any instance; the lost ones are not there.
    assert_eq!(early_on_a.at(b.addr).order().await, "sent");
    assert_eq!(early_on_a.order().await, "already_converted");
    // C's next order sends its token, or finds it converted by the take fred sent on Redis'
    // return (owed then, and delivered by the workers): booked once either way.
    let next_on_c = early_on_c.order().await;
    assert!(matches!(next_on_c.as_str(), "sent" | "already_converted"), "{next_on_c}");
    assert_eq!(early_on_c.order().await, "already_converted");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sandbox.conversions().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Its 200 is counted once the workers heard it, a moment after the sandbox recorded it.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut posted: Vec<_> =
        sandbox.conversions().iter().map(|post| post.token().unwrap_or_default().to_owned()).collect();
    posted.sort();
    assert_eq!(posted, ["early-on-a", "early-on-c"]);

    let counters = counters(&snapshotter);
    let count = |name, reason| count(&counters, name, reason);
    assert_eq!(count(metrics::CAPTURED, None), 0, "no capture since the outage: {counters:?}");
    assert_eq!(count(metrics::REFUSED, Some("session_store")), 1, "A's landing: its session is in Redis");
    assert_eq!(count(metrics::REFUSED, Some("token_store")), 1, "C's landing: its token store is Redis");
    assert_eq!(count(metrics::FAILED, Some("token_store")), 1, "C's order during the outage");
    assert_eq!(count(metrics::SENT, None), 2);
}
