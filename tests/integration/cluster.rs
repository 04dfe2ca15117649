//! Several instances of the shop on one real Redis (sessions and tokens): a visitor converts
//! exactly once whichever instance serves them, across restarts and Redis outages.

use crate::common;

use std::time::Duration;

use common::{
    Visitor, quick_retries,
    redis::{Instance, RedisServer, keys},
};
use tower_sovendus::{
    DeliverySchedule, SovendusConfig, SovendusConfigBuilder,
    sandbox::{Fault, Sandbox},
    store::fred::prelude::KeysInterface,
};

const TOKEN: &str = "12345-test-123-12345";

/// Instances A and B on one Redis and one sandbox, and a visitor who landed on A with
/// [`TOKEN`], seen through A and through B.
struct TwoInstances {
    sandbox: Sandbox,
    a: Instance,
    /// Kept running for `on_b`.
    _b: Instance,
    on_a: Visitor,
    on_b: Visitor,
}

impl TwoInstances {
    async fn landed_on_a(
        redis: &RedisServer,
        configure: fn(SovendusConfigBuilder) -> SovendusConfigBuilder,
    ) -> Self {
        let sandbox = Sandbox::start().await.unwrap();
        let a = Instance::start(redis, &sandbox, configure).await;
        let b = Instance::start(redis, &sandbox, configure).await;
        let on_a = a.visitor();
        let on_b = on_a.at(b.addr);
        assert_eq!(on_a.get(&format!("/landing?sovReqToken={TOKEN}")).await, (200, "landing".to_owned()));
        Self { sandbox, a, _b: b, on_a, on_b }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_on_one_instance_ordered_on_another_posts_once() {
    let Some(redis) = RedisServer::start("captured_on_one_instance_ordered_on_another_posts_once") else {
        return;
    };
    let shop = TwoInstances::landed_on_a(&redis, |config| config).await;
    let TwoInstances { sandbox, on_a, on_b, .. } = &shop;

    assert_eq!(on_b.pending_token().await, TOKEN, "B sees A's capture");
    assert_eq!(on_b.order().await, "sent");
    assert_eq!(on_a.order().await, "already_converted", "A sees B's conversion");
    assert_eq!(on_b.order().await, "already_converted");

    let posts = sandbox.conversions();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].token(), Some(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_token_send_nothing_to_redis() {
    let Some(redis) = RedisServer::start("requests_without_a_token_send_nothing_to_redis") else { return };
    // The delivery workers look for due conversions once an hour here, so that only pages
    // could send commands during the test.
    let rarely = |config: SovendusConfigBuilder| {
        config.schedule(DeliverySchedule::default().poll_interval(Duration::from_secs(3600)))
    };
    let TwoInstances { on_a, on_b, .. } = &TwoInstances::landed_on_a(&redis, rarely).await;
    on_b.get("/cart/add?item=shoe").await; // the visitor's session is in Redis

    let before = redis.commands_processed();
    for path in ["/", "/products/1?page=2&q=red%20shoes", "/landing?sovReqTokenX=1&utm_source=mail"] {
        assert_eq!(on_a.get(path).await.0, 200);
        assert_eq!(on_b.get(path).await.0, 200);
    }
    // The only command since is the first `INFO` itself.
    assert_eq!(redis.commands_processed(), before + 1, "no session load, no token lookup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_orders_across_two_instances_post_once() {
    let Some(redis) = RedisServer::start("twenty_concurrent_orders_across_two_instances_post_once") else {
        return;
    };
    let shop = TwoInstances::landed_on_a(&redis, |config| config).await;
    let TwoInstances { sandbox, on_a, on_b, .. } = &shop;
    // Slow the answer so that every order overlaps the one in flight.
    sandbox.fault_next(1, Fault::Delay(Duration::from_millis(300)));

    let (via_a, via_b) = tokio::join!(on_a.concurrent_orders(10), on_b.concurrent_orders(10));

    let outcomes: Vec<_> = via_a.into_iter().chain(via_b).collect();
    assert_eq!(outcomes.iter().filter(|o| *o == "sent").count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "already_converted").count(), 19, "{outcomes:?}");
    assert_eq!(sandbox.conversions().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_rebuilt_between_capture_and_order_sends_the_conversion() {
    let Some(redis) =
        RedisServer::start("an_instance_rebuilt_between_capture_and_order_sends_the_conversion")
    else {
        return;
    };
    let sandbox = Sandbox::start().await.unwrap();
    let before = Instance::start(&redis, &sandbox, |config| config).await;
    let visitor = before.visitor();
    visitor.get(&format!("/landing?sovReqToken={TOKEN}")).await;
    drop(before); // a deploy: the process, its pool and its layer are gone

    let after = Instance::start(&redis, &sandbox, |config| config).await;
    let visitor = visitor.at(after.addr);
    assert_eq!(visitor.order().await, "sent");
    assert_eq!(visitor.order().await, "already_converted");
    assert_eq!(sandbox.conversions().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_enforces_the_token_ttl() {
    let Some(redis) = RedisServer::start("redis_enforces_the_token_ttl") else { return };
    let sandbox = Sandbox::start().await.unwrap();
    let ttl = Duration::from_secs(1);
    let a = Instance::start(&redis, &sandbox, |config| config.token_ttl(ttl)).await;
    let visitor = a.visitor();
    visitor.get(&format!("/landing?sovReqToken={TOKEN}")).await;

    // The expiry is Redis' own: the one capture key carries it.
    let pool = redis.pool().await;
    let [key] = <[String; 1]>::try_from(keys(&pool, "{sovendus}:capture:*").await).expect("one capture key");
    let remaining: i64 = pool.pttl(&key).await.unwrap();
    assert!(remaining > 0 && remaining <= 1_000, "PTTL {remaining} ms for a 1 s TTL");

    // Past it, Redis has dropped the key, and a fresh instance has nothing to send.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let exists: i64 = pool.exists(&key).await.unwrap();
    assert_eq!(exists, 0);
    drop(a);
    let b = Instance::start(&redis, &sandbox, |config| config.token_ttl(ttl)).await;
    assert_eq!(visitor.at(b.addr).order().await, "no_token");
    assert!(sandbox.conversions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_dying_mid_send_does_not_post_twice_when_it_returns() {
    let Some(mut redis) = RedisServer::start("redis_dying_mid_send_does_not_post_twice_when_it_returns")
    else {
        return;
    };
    // A lease of 5 s (the retry budget plus twice the request timeout), for the test's sake.
    let lease = Duration::from_secs(5);
    let shop = TwoInstances::landed_on_a(&redis, |config| {
        config
            .retry(quick_retries().max_elapsed(Duration::from_secs(3)))
            .request_timeout(Duration::from_secs(1))
    })
    .await;
    let TwoInstances { sandbox, a, on_a, on_b, .. } = &shop;
    sandbox.fault_next(1, Fault::Delay(Duration::from_millis(500)));

    // The order leases the token and posts; Redis dies while Sovendus answers.
    let leased_before = tokio::time::Instant::now() + lease;
    let ordering = on_a.at(a.addr);
    let order = tokio::spawn(async move { ordering.order().await });
    assert!(
        common::eventually(Duration::from_secs(20), async || !sandbox.conversions().is_empty()).await,
        "the POST arrives"
    );
    redis.kill(true);
    assert_eq!(order.await.unwrap(), "sent", "Sovendus accepted it; the settlement waits for Redis");

    // Redis comes back with the conversion, still leased: the waiting settlement records it.
    redis.restart();
    let delivered = async || a.delivery.counts().await.is_ok_and(|counts| counts.delivered == 1);
    assert!(
        common::eventually(Duration::from_secs(20), delivered).await,
        "the conversion was settled once Redis returned"
    );
    // Even once the lease has run out, no order sends it again.
    tokio::time::sleep_until(leased_before).await;
    assert_eq!(on_b.order().await, "already_converted");
    assert_eq!(sandbox.accepted().len(), 1, "posted once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_product_is_booked_by_its_id_whatever_the_next_deploy_configures() {
    let Some(redis) =
        RedisServer::start("a_stored_product_is_booked_by_its_id_whatever_the_next_deploy_configures")
    else {
        return;
    };
    const B: &str = "product-b";
    let sandbox = Sandbox::builder().product(B).start().await.unwrap();
    let endpoint = sandbox.endpoint();
    let products = |ids: &[&str]| {
        let builder = SovendusConfig::builder(ids[0], Sandbox::API_KEY).endpoint(endpoint.clone());
        ids[1..].iter().fold(builder, |builder, id| builder.extra_product_id(*id))
    };

    // Two visitors land on a deploy configured [A, B], choosing B.
    let before = Instance::start(&redis, &sandbox, |_| products(&[Sandbox::PRODUCT_ID, B])).await;
    let visitors = [before.visitor(), before.visitor()];
    for (index, visitor) in visitors.iter().enumerate() {
        visitor.get(&format!("/landing?sovReqToken=visitor-{index}&sovReqProductId={B}")).await;
    }
    drop(before);

    // The next deploys configure [B, A], and [B] alone: each books B.
    let reordered = Instance::start(&redis, &sandbox, |_| products(&[B, Sandbox::PRODUCT_ID])).await;
    assert_eq!(visitors[0].at(reordered.addr).order().await, "sent");
    let only_b = Instance::start(&redis, &sandbox, |_| products(&[B])).await;
    assert_eq!(visitors[1].at(only_b.addr).order().await, "sent");

    let booked: Vec<String> = sandbox.accepted().iter().map(|call| call.path().to_owned()).collect();
    assert_eq!(booked, ["/ext/product-b/visitor-0/api", "/ext/product-b/visitor-1/api"]);
}
