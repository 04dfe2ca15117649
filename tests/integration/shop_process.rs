//! The demo shop as a process of its own, on a SQLite file, sending to a sandbox in this test:
//! conversions owed when the shop is killed, stopped, misconfigured, or when Sovendus is away,
//! are each delivered once, without any visitor coming back.

use crate::common;

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{Visitor, eventually};
use http::StatusCode;
use tower_sovendus::sandbox::{Fault, Sandbox};

/// How long the shop may take to start (a fresh SQLite file is migrated first).
const STARTUP: Duration = Duration::from_secs(30);

/// The demo shop's binary, beside this test's (`cargo test` builds the examples).
fn shop_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let binary =
        exe.parent().and_then(Path::parent).expect("target/debug/deps").join("examples").join("shop");
    if !binary.exists() {
        let built =
            Command::new(env!("CARGO")).args(["build", "--example", "shop"]).status().expect("cargo runs");
        assert!(built.success(), "the demo shop builds");
    }
    binary
}

/// One run of the demo shop on the SQLite file in `dir`, at `addr`, sending to a sandbox.
struct Shop {
    child: Child,
}

impl Shop {
    /// Starts the shop with `api_key`, and waits until it accepts connections.
    fn start(dir: &Path, addr: SocketAddr, sandbox: &Sandbox, api_key: &str) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("shop.log"))
            .expect("a log file");
        let child = Command::new(shop_binary())
            .env("SHOP_ADDR", addr.to_string())
            .env("SHOP_DATABASE_URL", format!("sqlite://{}?mode=rwc", dir.join("shop.db").display()))
            .env("SOVENDUS_PRODUCT_ID", Sandbox::PRODUCT_ID)
            .env("SOVENDUS_API_KEY", api_key)
            .env("SOVENDUS_ENDPOINT", sandbox.endpoint())
            .env("RUST_LOG", "tower_sovendus=debug,info")
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("the demo shop starts");
        let mut shop = Self { child };
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = shop.child.try_wait().expect("the shop's status") {
                panic!("the demo shop exited at start ({status}); see {}", dir.join("shop.log").display());
            }
            assert!(
                started.elapsed() < STARTUP,
                "the demo shop did not start; see {}",
                dir.join("shop.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        shop
    }

    /// Kills the shop at once (SIGKILL): no shutdown, no last write.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the shop ends");
    }

    /// Sends SIGTERM and returns how long the shop took to exit (at most `within`).
    fn terminate(mut self, within: Duration) -> Duration {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        assert!(sent.is_ok_and(|status| status.success()), "SIGTERM sent");
        let sent = Instant::now();
        while sent.elapsed() < within {
            if let Some(status) = self.child.try_wait().expect("the shop's status") {
                assert!(status.success(), "the shop exits cleanly on SIGTERM: {status}");
                return sent.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().ok();
        panic!("the shop did not exit within {within:?} of SIGTERM");
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A free port on loopback: the shop keeps it across its restarts.
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port")
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_call_in_flight_finish_and_a_restart_sends_nothing_again() {
    let dir = tempfile::tempdir().unwrap();
    let (sandbox, addr) = (Sandbox::start().await.unwrap(), free_addr());
    // Sovendus takes 14 s to answer: longer than the 10 s drain, within the 30 s request timeout.
    sandbox.fail_every(1, [Fault::Delay(Duration::from_secs(14))]);
    let shop = Shop::start(dir.path(), addr, &sandbox, Sandbox::API_KEY);
    land_and_order(&Visitor::new(addr), "1095752fb409-sigterm").await;
    assert!(eventually(Duration::from_secs(20), async || sandbox.calls_received() == 1).await, "being sent");
    // The call is not cut at the end of the drain: the shop waits for the answer and records it.
    let took = shop.terminate(Duration::from_secs(45));
    assert!(took >= Duration::from_secs(10), "the shop waited for the call in flight: {took:?}");
    assert_eq!(sandbox.accepted().len(), 1, "answered before the shop exited");

    sandbox.stop_faults();
    let _restarted = Shop::start(dir.path(), addr, &sandbox, Sandbox::API_KEY);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(sandbox.calls_received(), 1, "the restart sent nothing again: one call, one booking");
}
