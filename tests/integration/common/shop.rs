//! The demo shop as a process of its own, for the tests that kill, stop, pause it or run it on
//! another clock: [`Shop`], started as a [`Setup`] says.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tower_sovendus::sandbox::Sandbox;

use super::clock::{FAKETIME_LIBRARY, faketime_installed};

/// How long the shop may take to start (a fresh SQLite file is migrated first).
const STARTUP: Duration = Duration::from_secs(30);

/// The demo shop's binary, beside this test's (`cargo test` builds the examples).
pub fn shop_binary() -> PathBuf {
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

/// One run of the demo shop at `addr`, sending to a sandbox.
pub struct Shop {
    child: Child,
}

/// How a shop runs: where it keeps its data, with which API key, on which clock.
/// The demo shops' quarantine, and request timeout, in the process tests: a killed instance's
/// conversion is sent again 35 s after its last renewal (its 15 s lease, then this).
pub const TEST_QUARANTINE: Duration = Duration::from_secs(20);

#[derive(Clone)]
pub struct Setup<'a> {
    /// Where its log goes, beside its SQLite file if it has one.
    pub dir: &'a Path,
    pub database: String,
    pub api_key: &'a str,
    /// A libfaketime offset its clocks run at (`+20s`), if any.
    pub clock: Option<&'a str>,
    /// The longest wait between delivery attempts, if shorter than the schedule's hour.
    pub max_wait: Option<Duration>,
    /// How long a silent holder keeps its conversion past its lease (`SHOP_QUARANTINE`; the
    /// request timeout is as long, at most 20 s): [`TEST_QUARANTINE`] unless a test says
    /// otherwise.
    pub quarantine: Duration,
    /// The initial stock, as `SHOP_STOCK` takes it (`4=1`), if not the catalog's.
    pub stock: Option<&'a str>,
    /// Whether the shop aborts right after an order's commit (`SHOP_CRASH_AFTER_COMMIT`).
    pub crash_after_commit: bool,
}

impl<'a> Setup<'a> {
    /// On the SQLite file `shop.db` in `dir`, with the sandbox's API key, on this host's clock.
    pub fn sqlite(dir: &'a Path) -> Self {
        let database = format!("sqlite://{}?mode=rwc", dir.join("shop.db").display());
        Self::shared(dir, database)
    }

    /// On the Postgres database or Redis at `url`, logging to `dir` (on Redis, the orders are
    /// kept in `dir` too).
    pub fn shared(dir: &'a Path, url: String) -> Self {
        Self {
            dir,
            database: url,
            api_key: Sandbox::API_KEY,
            clock: None,
            max_wait: None,
            quarantine: TEST_QUARANTINE,
            stock: None,
            crash_after_commit: false,
        }
    }
}

impl Shop {
    /// Starts the shop on its SQLite file in `dir` with `api_key`, and waits until it accepts
    /// connections.
    pub fn start(dir: &Path, addr: SocketAddr, sandbox: &Sandbox, api_key: &str) -> Self {
        Self::launch(&Setup { api_key, ..Setup::sqlite(dir) }, addr, sandbox)
    }

    /// Starts the shop as `setup` says, and waits until it accepts connections.
    pub fn launch(setup: &Setup<'_>, addr: SocketAddr, sandbox: &Sandbox) -> Self {
        let dir = setup.dir;
        let log_path = dir.join(format!("shop-{}.log", addr.port()));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("a log file");
        let mut command = Command::new(shop_binary());
        if let Some(offset) = setup.clock {
            // libfaketime preloaded as `faketime -m -f OFFSET` does, without its wrapper
            // process: signals reach the shop itself. Without it the loader would only warn, and
            // the shop would run on the host's clock.
            assert!(
                faketime_installed(),
                "a shop on another clock needs libfaketime ({FAKETIME_LIBRARY}); install Debian's faketime"
            );
            command.env("LD_PRELOAD", FAKETIME_LIBRARY).env("FAKETIME", offset);
        }
        if let Some(max_wait) = setup.max_wait {
            command.env("SHOP_MAX_WAIT", max_wait.as_secs().to_string());
        }
        command.env("SHOP_QUARANTINE", setup.quarantine.as_secs().to_string());
        if let Some(stock) = setup.stock {
            command.env("SHOP_STOCK", stock);
        }
        if setup.crash_after_commit {
            command.env("SHOP_CRASH_AFTER_COMMIT", "1");
        }
        let child = command
            .env("SHOP_ADDR", addr.to_string())
            .env("SHOP_DATABASE_URL", &setup.database)
            // The orders of a shop on Redis, which live apart from its store; unused on SQL.
            .env("SHOP_ORDERS_URL", format!("sqlite://{}?mode=rwc", dir.join("orders.db").display()))
            .env("SOVENDUS_PRODUCT_ID", Sandbox::PRODUCT_ID)
            .env("SOVENDUS_API_KEY", setup.api_key)
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
                panic!("the demo shop exited at start ({status}); its log ends:\n{}", last_lines(&log_path));
            }
            assert!(
                started.elapsed() < STARTUP,
                "the demo shop did not start; see its log in {}",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        shop
    }

    /// Stops the shop (SIGSTOP), as a stalled host or a long pause does: its connections stay
    /// open, its clocks run on, and nothing it does moves until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a [paused](Self::pause) shop go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        super::signal(&self.child, signal);
    }

    /// Kills the shop at once (SIGKILL): no shutdown, no last write.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the shop ends");
    }

    /// Waits until the shop has aborted by itself (`SHOP_CRASH_AFTER_COMMIT`), at most `within`.
    pub fn crashed(mut self, within: Duration) {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Some(status) = self.child.try_wait().expect("the shop's status") {
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(status.signal(), Some(libc::SIGABRT), "the shop aborted: {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the shop did not abort within {within:?}");
    }

    /// Sends SIGTERM and returns how long the shop took to exit (at most `within`).
    pub fn terminate(mut self, within: Duration) -> Duration {
        self.signal("-TERM");
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

/// The last lines of the log at `path`: why a shop exited, as its temporary folder goes.
fn last_lines(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A free port on loopback: the shop keeps it across its restarts.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port")
}
