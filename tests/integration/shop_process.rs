//! The demo shop as a process of its own, on a SQLite file or a real Postgres, sending to a
//! sandbox in this test: conversions owed when the shop is killed, stopped, misconfigured, when
//! Sovendus is away, when the database stalls, or when two instances' clocks disagree, are each
//! delivered once, without any visitor coming back. The sandbox lists a call as it arrives, so
//! a token that arrived twice was booked twice.

use crate::common;

use std::{collections::BTreeMap, time::Duration};

use common::{
    Visitor,
    database::{Database, Kind, on_each},
    eventually,
    shop::{Setup, Shop, free_addr},
};
use http::StatusCode;
use tower_sovendus::sandbox::{Fault, Sandbox};

/// A visitor lands from Sovendus with `token`, puts a product in the cart and orders.
async fn land_and_order(visitor: &Visitor, token: &str) {
    let (status, home) = visitor.get(&format!("/?sovReqToken={token}")).await;
    assert_eq!(status, 200);
    assert!(home.contains("You came from Sovendus"), "{home}");
    let cart = visitor.client.post(visitor.url("/cart")).form(&[("product", "1")]).send().await.unwrap();
    assert!(cart.status().is_success(), "{}", cart.status());
    let order =
        visitor.client.post(visitor.url("/order")).form(&[("shipping", "standard")]).send().await.unwrap();
    let thank_you = order.text().await.unwrap();
    assert!(thank_you.contains("Sovendus conversion on its way."), "{thank_you}");
}

/// Waits until the sandbox booked `count` conversions, then a moment more to see that no other
/// comes; returns the bookings.
async fn booked(sandbox: &Sandbox, count: usize, within: Duration) -> Vec<String> {
    let reached = eventually(within, async || sandbox.accepted().len() >= count).await;
    assert!(reached, "{count} booked within {within:?}: {:?}", sandbox.conversions());
    tokio::time::sleep(Duration::from_secs(2)).await;
    sandbox.accepted().iter().map(|call| call.token().unwrap_or_default().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_owed_when_the_shop_is_killed_is_delivered_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (sandbox, addr) = (Sandbox::start().await.unwrap(), free_addr());
    // Sovendus hangs: the shop is killed in the middle of the delivery.
    sandbox.fail_every(1, [Fault::Delay(Duration::from_secs(300))]);
    let shop = Shop::start(dir.path(), addr, &sandbox, Sandbox::API_KEY);
    land_and_order(&Visitor::new(addr), "1095752fb409-killed").await;
    assert!(eventually(Duration::from_secs(20), async || sandbox.calls_received() == 1).await, "being sent");
    shop.kill();

    sandbox.stop_faults();
    let _restarted = Shop::start(dir.path(), addr, &sandbox, Sandbox::API_KEY);
    // Picked up once the killed delivery's lease (15 s) has run out.
    assert_eq!(booked(&sandbox, 1, Duration::from_secs(60)).await, ["1095752fb409-killed"]);
    assert_eq!(sandbox.conversions()[0].status(), None, "the call cut off by the kill was not booked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_owed_through_a_40_second_outage_is_delivered_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (sandbox, addr) = (Sandbox::start().await.unwrap(), free_addr());
    let _shop = Shop::start(dir.path(), addr, &sandbox, Sandbox::API_KEY);
    sandbox.take_down().await;
    land_and_order(&Visitor::new(addr), "1095752fb409-outage").await;
    tokio::time::sleep(Duration::from_secs(40)).await;
    sandbox.bring_up().await.unwrap();
    // The quick retries gave up during the outage; the schedule's next attempt comes a minute
    // after them, with no visitor coming back.
    assert_eq!(booked(&sandbox, 1, Duration::from_secs(120)).await, ["1095752fb409-outage"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_refused_for_a_wrong_key_is_delivered_after_a_restart_with_the_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let (sandbox, addr) = (Sandbox::start().await.unwrap(), free_addr());
    let shop = Shop::start(dir.path(), addr, &sandbox, "a-rotated-api-key-0000");
    land_and_order(&Visitor::new(addr), "1095752fb409-wrong-key").await;
    let refused =
        async || sandbox.conversions().iter().any(|call| call.status() == Some(StatusCode::FORBIDDEN));
    assert!(eventually(Duration::from_secs(20), refused).await, "403 for the wrong key");
    shop.terminate(Duration::from_secs(20));

    let _fixed = Shop::start(dir.path(), addr, &sandbox, Sandbox::API_KEY);
    // Parked conversions are due at once when the shop starts again.
    assert_eq!(booked(&sandbox, 1, Duration::from_secs(30)).await, ["1095752fb409-wrong-key"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_token_is_sent_once_and_never_again() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::builder().known_tokens(["another-token"]).start().await.unwrap();
    let addr = free_addr();
    let shop = Shop::start(dir.path(), addr, &sandbox, Sandbox::API_KEY);
    land_and_order(&Visitor::new(addr), "1095752fb409-unknown").await;
    let answered = async || sandbox.conversions().iter().any(|call| call.status().is_some());
    assert!(eventually(Duration::from_secs(20), answered).await);
    shop.terminate(Duration::from_secs(20));
    let _restarted = Shop::start(dir.path(), addr, &sandbox, Sandbox::API_KEY);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls = sandbox.conversions();
    assert_eq!(calls.len(), 1, "one call only: {calls:?}");
    assert_eq!(calls[0].status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
}

/// How many calls arrived for each token, answered or not.
fn arrivals(sandbox: &Sandbox) -> BTreeMap<String, usize> {
    let mut arrivals = BTreeMap::new();
    for call in sandbox.conversions() {
        *arrivals.entry(call.token().unwrap_or_default().to_owned()).or_default() += 1;
    }
    arrivals
}

/// SIGTERM while Sovendus takes 14 s to answer: longer than the shop's 10 s drain, within the
/// 30 s request timeout. The call is not cut at the end of the drain: the shop waits for the
/// answer and records it, so the restart sends nothing again.
async fn sigterm_lets_the_call_in_flight_finish(setup: &Setup<'_>, token: &str) {
    let (sandbox, addr) = (Sandbox::start().await.unwrap(), free_addr());
    sandbox.fail_every(1, [Fault::Delay(Duration::from_secs(14))]);
    let shop = Shop::launch(setup, addr, &sandbox);
    land_and_order(&Visitor::new(addr), token).await;
    assert!(eventually(Duration::from_secs(20), async || sandbox.calls_received() == 1).await, "being sent");
    let took = shop.terminate(Duration::from_secs(45));
    assert!(took >= Duration::from_secs(10), "the shop waited for the call in flight: {took:?}");
    assert_eq!(sandbox.accepted().len(), 1, "answered before the shop exited");

    sandbox.stop_faults();
    let _restarted = Shop::launch(setup, addr, &sandbox);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(sandbox.calls_received(), 1, "the restart sent nothing again: one call, one booking");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_call_in_flight_finish_and_a_restart_sends_nothing_again() {
    let dir = tempfile::tempdir().unwrap();
    sigterm_lets_the_call_in_flight_finish(&Setup::sqlite(dir.path()), "1095752fb409-sigterm").await;
}

#[test]
fn sigterm_lets_the_call_in_flight_finish_on_postgres_and_redis_too() {
    on_each(|kind| async move {
        let Some(database) = Database::start(kind, "sigterm_lets_the_call_in_flight_finish") else { return };
        let dir = tempfile::tempdir().unwrap();
        let setup = Setup::shared(dir.path(), database.url().await);
        sigterm_lets_the_call_in_flight_finish(&setup, &format!("1095752fb409-sigterm-{kind:?}")).await;
    });
}

/// Two instances on one store, the second with every clock 20 s ahead (libfaketime), and
/// Sovendus answering in 8 s: judged on each instance's own clock, the one ahead would see the
/// other's leases (15 s) run out at once and send their conversions again. On the store's
/// clock, every order is booked once, whichever instance took it.
async fn two_instances_whose_clocks_differ_by_20_seconds(kind: Kind, test: &str) {
    let Some(database) = Database::start(kind, test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.fail_every(1, [Fault::Delay(Duration::from_secs(8))]);
    let on_time = Setup::shared(dir.path(), database.url().await);
    let ahead = Setup { clock: Some("+20s"), ..Setup::shared(dir.path(), on_time.database.clone()) };
    let (first, second) = (free_addr(), free_addr());
    let _on_time = Shop::launch(&on_time, first, &sandbox);
    let _ahead = Shop::launch(&ahead, second, &sandbox);

    let tokens: Vec<String> = (0..6).map(|n| format!("1095752fb409-skew-{n}")).collect();
    let orders = tokens.iter().enumerate().map(|(n, token)| {
        let addr = if n % 2 == 0 { first } else { second };
        async move { land_and_order(&Visitor::new(addr), token).await }
    });
    futures_util::future::join_all(orders).await;
    let all_booked = async || sandbox.accepted().len() >= tokens.len();
    assert!(eventually(Duration::from_secs(60), all_booked).await, "{:?}", arrivals(&sandbox));
    // Longer than a lease and an answer: a conversion taken again would have arrived by now.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let once: BTreeMap<String, usize> = tokens.iter().map(|token| (token.clone(), 1)).collect();
    assert_eq!(arrivals(&sandbox), once, "every order booked once");
}

#[test]
fn two_instances_whose_clocks_differ_by_20_seconds_book_every_order_once() {
    on_each(|kind| {
        two_instances_whose_clocks_differ_by_20_seconds(kind, "two_instances_whose_clocks_differ")
    });
}

/// The database stopped (SIGSTOP) as Sovendus booked a conversion, for 25 s: longer than the
/// lease and the store's timeout. The 200 is recorded once the database is back, and the
/// conversion is not sent again; the shop then takes orders as before.
async fn a_database_stopped_for_25_seconds_right_after_a_200(kind: Kind, test: &str) {
    let Some(database) = Database::start(kind, test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sandbox, addr) = (Sandbox::start().await.unwrap(), free_addr());
    sandbox.fail_every(1, [Fault::Delay(Duration::from_secs(2))]);
    let _shop = Shop::launch(&Setup::shared(dir.path(), database.url().await), addr, &sandbox);
    land_and_order(&Visitor::new(addr), "1095752fb409-db-stopped").await;
    assert!(eventually(Duration::from_secs(20), async || sandbox.calls_received() == 1).await, "being sent");
    // Sovendus answers 200 two seconds later, to a shop whose database is stopped.
    database.pause();
    assert!(eventually(Duration::from_secs(10), async || sandbox.accepted().len() == 1).await, "booked");
    tokio::time::sleep(Duration::from_secs(23)).await;
    database.resume();

    sandbox.stop_faults();
    let visitor = Visitor::new(addr);
    tokio::time::sleep(Duration::from_secs(20)).await;
    land_and_order(&visitor, "1095752fb409-db-back").await;
    assert_eq!(
        booked(&sandbox, 2, Duration::from_secs(30)).await,
        ["1095752fb409-db-stopped", "1095752fb409-db-back"]
    );
    assert_eq!(arrivals(&sandbox).values().sum::<usize>(), 2, "one call each: {:?}", arrivals(&sandbox));
}

#[test]
fn a_database_stopped_for_25_seconds_right_after_a_200_books_it_once() {
    on_each(|kind| a_database_stopped_for_25_seconds_right_after_a_200(kind, "a_database_stopped"));
}
