//! The demo shop as a process of its own, on a SQLite file or a real Postgres, sending to a
//! sandbox in this test: conversions owed when the shop is killed, stopped, misconfigured, when
//! Sovendus is away, when the database stalls, or when two instances' clocks disagree, are each
//! delivered once, without any visitor coming back. The sandbox lists a call as it arrives, so
//! a token that arrived twice was booked twice. Its orders follow their conversions: a sold-out
//! order books nothing, an order the shop crashed right after committing is booked once, and a
//! cancelled one is never booked.

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

/// A visitor lands from Sovendus with `token`.
async fn land(visitor: &Visitor, token: &str) {
    let (status, home) = visitor.get(&format!("/?sovReqToken={token}")).await;
    assert_eq!(status, 200);
    assert!(home.contains("You came from Sovendus"), "{home}");
}

/// Puts `product` in the visitor's cart.
async fn add_to_cart(visitor: &Visitor, product: u32) {
    let cart = visitor
        .client
        .post(visitor.url("/cart"))
        .form(&[("product", product.to_string())])
        .send()
        .await
        .unwrap();
    assert!(cart.status().is_success(), "{}", cart.status());
}

/// The visitor puts `product` in the cart and orders; returns the answer's status, the path it
/// ends at (the thank-you page's, after the redirect) and the page.
async fn order(visitor: &Visitor, product: u32) -> (StatusCode, String, String) {
    add_to_cart(visitor, product).await;
    let order =
        visitor.client.post(visitor.url("/order")).form(&[("shipping", "standard")]).send().await.unwrap();
    let (status, path) = (order.status(), order.url().path().to_owned());
    (status, path, order.text().await.unwrap())
}

/// A visitor lands from Sovendus with `token`, puts a product in the cart and orders; returns
/// the order's reference.
async fn land_and_order(visitor: &Visitor, token: &str) -> String {
    land(visitor, token).await;
    let (status, path, thank_you) = order(visitor, 1).await;
    assert_eq!(status, 200, "{thank_you}");
    assert!(thank_you.contains("Sovendus conversion on its way."), "{thank_you}");
    path.strip_prefix("/thank-you/").expect("the thank-you page").to_owned()
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
    // Picked up once the killed delivery's lease (15 s) and quarantine (20 s) have run out.
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
/// 20 s request timeout. The call is not cut at the end of the drain: the shop waits for the
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

/// Two instances on one store, the database stopped (SIGSTOP) for three leases (45 s) while
/// their calls are out: Sovendus books each call as it arrives and answers 200 two seconds later,
/// to instances that cannot reach the store, and whose leases run out meanwhile. Each holder
/// keeps its conversion through the outage (a quarantine of 60 s here) and records its 200 once
/// the database is back: every order is booked once, and the shops take orders as before.
async fn a_database_stopped_for_three_leases_while_calls_are_out(kind: Kind, test: &str) {
    let Some(database) = Database::start(kind, test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.fail_every(1, [Fault::Delay(Duration::from_secs(2))]);
    let setup =
        Setup { quarantine: Duration::from_secs(60), ..Setup::shared(dir.path(), database.url().await) };
    let (first, second) = (free_addr(), free_addr());
    let _first = Shop::launch(&setup, first, &sandbox);
    let _second = Shop::launch(&setup, second, &sandbox);
    let tokens: Vec<String> = (0..4).map(|n| format!("1095752fb409-db-stopped-{n}")).collect();
    let orders = tokens.iter().enumerate().map(|(n, token)| {
        let addr = if n % 2 == 0 { first } else { second };
        async move { land_and_order(&Visitor::new(addr), token).await }
    });
    futures_util::future::join_all(orders).await;
    let out = async || sandbox.calls_received() == tokens.len();
    assert!(eventually(Duration::from_secs(20), out).await, "being sent: {:?}", arrivals(&sandbox));
    database.pause();
    let answered = async || sandbox.accepted().len() == tokens.len();
    assert!(eventually(Duration::from_secs(10), answered).await, "booked during the outage");
    tokio::time::sleep(Duration::from_secs(43)).await;
    database.resume();

    sandbox.stop_faults();
    // Longer than a poll and a lease: a conversion taken again would have arrived by now.
    tokio::time::sleep(Duration::from_secs(20)).await;
    land_and_order(&Visitor::new(second), "1095752fb409-db-back").await;
    let mut expected: Vec<String> = tokens.clone();
    expected.push("1095752fb409-db-back".to_owned());
    let mut booked = booked(&sandbox, expected.len(), Duration::from_secs(30)).await;
    booked.sort();
    expected.sort();
    assert_eq!(booked, expected);
    assert_eq!(
        arrivals(&sandbox).values().sum::<usize>(),
        expected.len(),
        "one call each: {:?}",
        arrivals(&sandbox)
    );
}

#[test]
fn a_database_stopped_for_three_leases_while_calls_are_out_books_each_order_once() {
    on_each(|kind| a_database_stopped_for_three_leases_while_calls_are_out(kind, "a_database_stopped"));
}

/// The last signed map goes to a visitor without a token. A visitor from Sovendus who orders
/// it too is refused (409): the order's transaction rolls back, nothing is owed or sent, and
/// the token stays with the visitor, whose next order, of boots, books it once.
async fn a_sold_out_order_books_nothing_and_keeps_the_token(setup: &Setup<'_>, token: &str) {
    let (sandbox, addr) = (Sandbox::start().await.unwrap(), free_addr());
    let _shop = Shop::launch(&Setup { stock: Some("4=1"), ..setup.clone() }, addr, &sandbox);
    let (status, _, page) = order(&Visitor::new(addr), 4).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("No Sovendus conversion for this order."), "{page}");

    let visitor = Visitor::new(addr);
    land(&visitor, token).await;
    let (status, _, page) = order(&visitor, 4).await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("Signed trail map is sold out"), "{page}");
    let (_, home) = visitor.get("/").await;
    assert!(home.contains("You came from Sovendus"), "the token stays with the visitor: {home}");
    assert!(home.contains("<span id=stock-4>sold out</span>"), "{home}");
    let (_, log) = visitor.get("/sandbox").await;
    assert!(log.contains("owed 0, parked 0, dead 0, delivered 0, voided 0"), "nothing owed: {log}");

    let (status, _, page) = order(&visitor, 1).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Sovendus conversion on its way."), "{page}");
    assert_eq!(booked(&sandbox, 1, Duration::from_secs(30)).await, [token]);
    assert_eq!(sandbox.calls_received(), 1, "one call: {:?}", sandbox.conversions());
    let (_, log) = visitor.get("/sandbox").await;
    assert!(log.contains("owed 0, parked 0, dead 0, delivered 1, voided 0"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sold_out_order_books_nothing_and_keeps_the_token_for_the_next_order() {
    let dir = tempfile::tempdir().unwrap();
    a_sold_out_order_books_nothing_and_keeps_the_token(&Setup::sqlite(dir.path()), "1095752fb409-sold-out")
        .await;
}

#[test]
fn a_sold_out_order_books_nothing_on_postgres_and_redis_too() {
    on_each(|kind| async move {
        let Some(database) = Database::start(kind, "a_sold_out_order_books_nothing") else { return };
        let dir = tempfile::tempdir().unwrap();
        let setup = Setup::shared(dir.path(), database.url().await);
        a_sold_out_order_books_nothing_and_keeps_the_token(
            &setup,
            &format!("1095752fb409-sold-out-{kind:?}"),
        )
        .await;
    });
}

/// The shop aborts right after an order's commit, before it answers
/// (`SHOP_CRASH_AFTER_COMMIT`). Restarted on the same database, it has the order and delivers
/// its conversion once: on SQLite and Postgres the conversion committed with the order; on
/// Redis the order kept the token, and the restart makes its conversion owed
/// (`Delivery::owe`). The visitor's next order books nothing more.
async fn an_order_the_shop_crashed_right_after_committing(setup: &Setup<'_>, token: &str) {
    let (sandbox, addr) = (Sandbox::start().await.unwrap(), free_addr());
    let crashing = Shop::launch(&Setup { crash_after_commit: true, ..setup.clone() }, addr, &sandbox);
    let visitor = Visitor::new(addr);
    land(&visitor, token).await;
    add_to_cart(&visitor, 1).await;
    let answer = visitor.client.post(visitor.url("/order")).form(&[("shipping", "standard")]).send().await;
    assert!(answer.is_err(), "no answer from a shop that aborted: {answer:?}");
    crashing.crashed(Duration::from_secs(10));

    let _restarted = Shop::launch(setup, addr, &sandbox);
    assert_eq!(booked(&sandbox, 1, Duration::from_secs(60)).await, [token]);
    let (_, orders) = visitor.get("/orders").await;
    assert_eq!(orders.matches("<tr><td><a href=/orders/").count(), 1, "the order is kept: {orders}");
    assert!(orders.contains("<code>1095752f…</code></td><td>owed</td><td>placed</td>"), "{orders}");
    let reference = orders.split("<a href=/orders/").nth(1).and_then(|rest| rest.split('>').next()).unwrap();
    let (status, page) = visitor.get(&format!("/thank-you/{reference}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Now: booked by Sovendus on"), "{page}");

    let (status, _, page) = order(&visitor, 2).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("No Sovendus conversion for this order"), "the token converted once: {page}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(arrivals(&sandbox), BTreeMap::from([(token.to_owned(), 1)]), "one call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_the_shop_crashed_right_after_committing_is_delivered_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    an_order_the_shop_crashed_right_after_committing(&Setup::sqlite(dir.path()), "1095752fb409-crashed")
        .await;
}

#[test]
fn an_order_the_shop_crashed_right_after_committing_is_delivered_once_on_postgres_and_redis_too() {
    on_each(|kind| async move {
        let Some(database) = Database::start(kind, "an_order_the_shop_crashed_right_after_committing") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let setup = Setup::shared(dir.path(), database.url().await);
        an_order_the_shop_crashed_right_after_committing(&setup, &format!("1095752fb409-crashed-{kind:?}"))
            .await;
    });
}

/// Posts the cancellation of order `reference` until no call to Sovendus holds its conversion;
/// returns the order's page after it.
async fn cancel(visitor: &Visitor, reference: &str) -> String {
    let sending = async || {
        let answer =
            visitor.client.post(visitor.url(&format!("/orders/{reference}/cancel"))).send().await.unwrap();
        let (status, page) = (answer.status(), answer.text().await.unwrap());
        match status {
            StatusCode::CONFLICT => {
                assert!(page.contains("being sent right now, try again in a moment"), "{page}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                None
            }
            _ => {
                assert_eq!(status, 200, "{page}");
                Some(page)
            }
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if let Some(page) = sending().await {
            return page;
        }
    }
    panic!("order {reference} still being sent after a minute");
}

/// Sovendus answers 503 to every call, so an order's conversion stays owed; the order is
/// cancelled meanwhile: its conversion is voided and never sent, not even once Sovendus answers
/// again and the retries' waits (at most 8 s here) have passed several times; its item is back
/// in stock. An order cancelled after Sovendus booked it shows the whole token and when it was
/// booked, to tell Sovendus.
async fn cancelled_orders(setup: &Setup<'_>, token: &str, booked_token: &str) {
    let (sandbox, addr) = (Sandbox::start().await.unwrap(), free_addr());
    sandbox.fail_every(1, [Fault::Status(StatusCode::SERVICE_UNAVAILABLE)]);
    let max_wait = Some(Duration::from_secs(8));
    let _shop = Shop::launch(&Setup { max_wait, stock: Some("1=5"), ..setup.clone() }, addr, &sandbox);
    let visitor = Visitor::new(addr);
    let reference = land_and_order(&visitor, token).await;
    assert!(eventually(Duration::from_secs(20), async || sandbox.calls_received() >= 1).await, "tried");
    let page = cancel(&visitor, &reference).await;
    assert!(page.contains(&format!("Order <code>{reference}</code> is cancelled")), "{page}");
    assert!(page.contains("Its Sovendus conversion is voided: it is never sent."), "{page}");
    assert!(page.contains("Now: voided, never sent."), "{page}");
    let calls = sandbox.calls_received();

    sandbox.stop_faults();
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(sandbox.calls_received(), calls, "no call after the void: {:?}", sandbox.conversions());
    assert!(sandbox.accepted().is_empty(), "nothing booked: {:?}", sandbox.conversions());
    let (_, log) = visitor.get("/sandbox").await;
    assert!(log.contains("owed 0, parked 0, dead 0, delivered 0, voided 1"), "{log}");
    let (_, home) = visitor.get("/").await;
    assert!(home.contains("<span id=stock-1>5 in stock</span>"), "the boots are back in stock: {home}");

    let other = Visitor::new(addr);
    let reference = land_and_order(&other, booked_token).await;
    assert_eq!(booked(&sandbox, 1, Duration::from_secs(30)).await, [booked_token]);
    let page = cancel(&other, &reference).await;
    assert!(page.contains("is cancelled"), "{page}");
    assert!(
        page.contains(&format!("tell Sovendus the token <code id=tell-token>{booked_token}</code>")),
        "{page}"
    );
    assert!(page.contains("booked on <span id=booked-at>"), "{page}");
    let (_, log) = other.get("/sandbox").await;
    assert!(log.contains("owed 0, parked 0, dead 0, delivered 1, voided 1"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_cancelled_before_delivery_is_never_booked_and_one_cancelled_after_shows_its_token() {
    let dir = tempfile::tempdir().unwrap();
    cancelled_orders(&Setup::sqlite(dir.path()), "1095752fb409-cancelled", "1095752fb409-booked").await;
}

#[test]
fn an_order_cancelled_before_delivery_is_never_booked_on_postgres_and_redis_too() {
    on_each(|kind| async move {
        let Some(database) = Database::start(kind, "an_order_cancelled_before_delivery") else { return };
        let dir = tempfile::tempdir().unwrap();
        let setup = Setup::shared(dir.path(), database.url().await);
        let (token, booked_token) =
            (format!("1095752fb409-cancelled-{kind:?}"), format!("1095752fb409-booked-{kind:?}"));
        cancelled_orders(&setup, &token, &booked_token).await;
    });
}
