//! A real `redis-server` for the tests, and shop instances sharing it.
//!
//! Each test starts its own server on a free loopback port, without persistence
//! (`--save '' --appendonly no`), in a directory of its own; it is killed and the directory
//! removed on drop. Outside CI a missing `redis-server` skips the test loudly; with `CI=true`
//! it fails it.

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tokio::task::JoinHandle;
use tower_sessions_redis_store::RedisStore;
use tower_sovendus::{
    Delivery, SovendusConfigBuilder, SovendusLayer,
    sandbox::Sandbox,
    store::{
        RedisTokenStore,
        fred::{
            cmd,
            prelude::{Builder, ClientLike, Config, Pool, ReconnectPolicy},
        },
    },
};

use super::{Visitor, clock::SteppedClock, session_layer, shop_routes, spawn_server};

/// The server binary, as Debian's `redis-server` package installs it.
const REDIS_SERVER: &str = "redis-server";
/// How long a starting server may take to answer.
const STARTUP: Duration = Duration::from_secs(10);

/// A `redis-server` process of this test's own.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Its wall clock, if a test steps it.
    clock: Option<SteppedClock>,
}

impl RedisServer {
    /// Starts a server, or returns `None` after saying loudly that `test` is skipped because
    /// `redis-server` is not installed. Under CI (`CI` set) a missing server fails the test.
    pub fn start(test: &str) -> Option<Self> {
        Self::start_on(test, false)
    }

    /// The same, on a wall clock the test steps with [`step_clock`](Self::step_clock).
    pub fn start_on_stepped_clock(test: &str) -> Option<Self> {
        Self::start_on(test, true)
    }

    fn start_on(test: &str, stepped: bool) -> Option<Self> {
        if let Err(error) = Command::new(REDIS_SERVER).arg("--version").output() {
            if std::env::var_os("CI").is_some() {
                panic!("{test}: `{REDIS_SERVER}` is required in CI ({error}); install Debian's redis-server");
            }
            // Straight to stderr: the test harness captures `eprintln!` of passing tests.
            writeln!(
                std::io::stderr(),
                "\n!!!!! SKIPPED {test}: `{REDIS_SERVER}` is not installed ({error}). \
                 Install Debian's redis-server package to run the Redis tests. !!!!!\n"
            )
            .ok();
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("tower-sovendus-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let clock = stepped.then(|| SteppedClock::new(dir.join("clock")));
        let mut server = Self { port, dir, child: None, clock };
        server.run();
        Some(server)
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A pool set up as a shop should (see examples/cluster.rs): commands wait at most 1 s
    /// (a loaded CI machine needs some slack), and the pool reconnects every 100 ms while the
    /// server is away.
    pub async fn pool(&self) -> Pool {
        let pool = Builder::from_config(Config::from_url(&self.url()).unwrap())
            .with_performance_config(|performance| {
                performance.default_command_timeout = Duration::from_secs(1);
            })
            .set_policy(ReconnectPolicy::new_constant(0, 100))
            .build_pool(2)
            .unwrap();
        pool.init().await.unwrap();
        pool
    }

    /// Kills the server at once (SIGKILL), after saving its data (`SAVE`) if `keep_data`,
    /// like a Redis with persistence, so that [`restart`](Self::restart) finds it again.
    pub fn kill(&mut self, keep_data: bool) {
        if keep_data {
            assert_eq!(self.command("SAVE"), "+OK");
        }
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Stops the server (SIGSTOP): connections stay open and nothing answers until
    /// [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a [paused](Self::pause) server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        super::signal(self.child.as_ref().expect("a running server"), signal);
    }

    /// How far ahead of the host's its wall clock runs, in seconds.
    pub fn clock_offset(&self) -> i64 {
        self.clock.as_ref().map_or(0, SteppedClock::offset)
    }

    /// Steps the server's wall clock by `seconds`; returns its offset now.
    pub fn step_clock(&self, seconds: i64) -> i64 {
        self.clock.as_ref().expect("a server started on a stepped clock").step(seconds)
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill the server first");
        self.run();
    }

    /// Sends one inline command and returns the first line of the answer.
    pub fn command(&self, command: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(STARTUP)).unwrap();
        stream.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    /// How many commands the server has processed (`INFO stats`), not counting this `INFO`.
    pub fn commands_processed(&self) -> u64 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(STARTUP)).unwrap();
        stream.write_all(b"INFO stats\r\n").unwrap();
        let lines = BufReader::new(stream).lines().map(Result::unwrap);
        lines
            .take_while(|line| !line.is_empty())
            .find_map(|line| {
                line.strip_prefix("total_commands_processed:").map(|count| count.parse().unwrap())
            })
            .expect("INFO stats lists total_commands_processed")
    }

    fn run(&mut self) {
        let mut command = Command::new(REDIS_SERVER);
        if let Some(clock) = &self.clock {
            clock.preload(&mut command);
        }
        let child = command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() || self.command("PING") != "+PONG" {
            assert!(started.elapsed() < STARTUP, "redis-server did not start on port {}", self.port);
            if let Some(status) = self.child.as_mut().and_then(|child| child.try_wait().unwrap()) {
                panic!("redis-server exited at start: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// The keys matching `pattern` (`KEYS`: fine for a test's few keys).
pub async fn keys(pool: &Pool, pattern: &str) -> Vec<String> {
    pool.custom(cmd!("KEYS"), vec![pattern]).await.unwrap()
}

/// One instance of the shop: its own pool, layer and background delivery, with sessions and
/// tokens in the shared Redis. Dropping it stops it.
pub struct Instance {
    pub addr: SocketAddr,
    pub delivery: Delivery,
    pub pool: Pool,
    server: JoinHandle<()>,
}

impl Instance {
    /// Starts an instance on `redis`, sending to `sandbox`, with options set by `configure`.
    pub async fn start(
        redis: &RedisServer,
        sandbox: &Sandbox,
        configure: impl FnOnce(SovendusConfigBuilder) -> SovendusConfigBuilder,
    ) -> Self {
        let pool = redis.pool().await;
        let config = configure(sandbox.config()).build().unwrap();
        let layer = SovendusLayer::with_store(config, RedisTokenStore::new(pool.clone()));
        let delivery = layer.delivery();
        let app = shop_routes().layer(layer).layer(session_layer(RedisStore::new(pool.clone())));
        let (addr, server) = spawn_server(app).await;
        Self { addr, delivery, pool, server }
    }

    /// A new visitor of this instance.
    pub fn visitor(&self) -> Visitor {
        Visitor::new(self.addr)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.server.abort();
    }
}
