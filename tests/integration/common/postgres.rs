//! A real Postgres server for the tests: Debian's `postgres`, started by the test itself.
//!
//! Each test starts its own server on a free loopback port, in a directory of its own (its
//! socket there too), without `fsync`; it is killed and the directory removed on drop. Run as
//! root (as CI is), it runs as the `postgres` system user the Debian package creates, since
//! Postgres refuses to run as root. Outside CI a missing installation skips the test loudly;
//! with `CI` set it fails it.

use std::{
    io::Write,
    net::TcpListener,
    os::unix::{fs::MetadataExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tower_sovendus::store::sqlx::{Connection, Executor, PgConnection};

use super::clock::SteppedClock;

/// Where Debian installs each major version's programs: `{INSTALLS}/{version}/bin`.
const INSTALLS: &str = "/usr/lib/postgresql";
/// How long a starting server may take to accept connections.
const STARTUP: Duration = Duration::from_secs(30);
/// The superuser `initdb` makes, trusted on loopback.
const SUPERUSER: &str = "postgres";

/// A Postgres server of this test's own.
pub struct PostgresServer {
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
    /// The `postgres` user's IDs, when the tests run as root.
    user: Option<(u32, u32)>,
    child: Option<Child>,
    /// Its wall clock, if a test steps it.
    clock: Option<SteppedClock>,
}

impl PostgresServer {
    /// Starts a server, or returns `None` after saying loudly that `test` is skipped because
    /// Postgres is not installed. Under CI (`CI` set) a missing installation fails the test.
    pub fn start(test: &str) -> Option<Self> {
        Self::start_on(test, false)
    }

    /// The same, on a wall clock the test steps with [`step_clock`](Self::step_clock).
    pub fn start_on_stepped_clock(test: &str) -> Option<Self> {
        Self::start_on(test, true)
    }

    fn start_on(test: &str, stepped: bool) -> Option<Self> {
        let Some(bin) = installed_bin() else {
            let missing = format!("no {INSTALLS}/*/bin/postgres");
            if std::env::var_os("CI").is_some() {
                panic!("{test}: Postgres is required in CI ({missing}); install Debian's postgresql");
            }
            // Straight to stderr: the test harness captures `eprintln!` of passing tests.
            writeln!(
                std::io::stderr(),
                "\n!!!!! SKIPPED {test}: Postgres is not installed ({missing}). \
                 Install Debian's postgresql package to run the Postgres tests. !!!!!\n"
            )
            .ok();
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("tower-sovendus-postgres-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let user = running_as_root().then(postgres_user);
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let clock = stepped.then(|| SteppedClock::new(dir.join("clock")));
        let server = Self { bin, port, dir, user, child: None, clock };
        let initdb = server
            .command("initdb")
            .arg("-D")
            .arg(server.data())
            .args(["--auth=trust", "-U", SUPERUSER, "--encoding=UTF8", "--locale=C", "--no-sync"])
            .output()
            .unwrap();
        assert!(initdb.status.success(), "initdb failed: {}", String::from_utf8_lossy(&initdb.stderr));
        let mut server = server;
        server.run();
        Some(server)
    }

    /// The superuser's URL of the `postgres` database.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// Creates the empty database `name` (lowercase letters, digits and `_`) and returns its
    /// URL.
    pub async fn database(&self, name: &str) -> String {
        assert!(
            name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_'),
            "{name:?} is not a plain database name"
        );
        let mut connection = PgConnection::connect(&self.url()).await.unwrap();
        connection.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        connection.close().await.ok();
        self.url_of(name)
    }

    /// Kills the server at once (SIGKILL), with every process it started. Its data stays, as
    /// after a power cut with the disk intact: [`restart`](Self::restart) recovers it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = libc::pid_t::try_from(child.id()).unwrap();
            // SAFETY: killpg only sends a signal; the group is the one the server was started
            // in, and its leader is our child, not yet reaped (the `Child` still holds it), so
            // the ID cannot have been reused.
            unsafe {
                libc::killpg(group, libc::SIGKILL);
            }
            child.wait().unwrap();
        }
    }

    /// Stops every process of the server (SIGSTOP), as a stalled host or a frozen VM does:
    /// connections stay open and nothing answers until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal_all(libc::SIGSTOP);
    }

    /// Lets a [paused](Self::pause) server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal_all(libc::SIGCONT);
    }

    fn signal_all(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("a running server");
        let group = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: killpg only sends a signal, to the group the server was started in, whose
        // leader is our child, not yet reaped, so the ID cannot have been reused.
        let sent = unsafe { libc::killpg(group, signal) };
        assert_eq!(sent, 0, "signal {signal} sent to postgres");
    }

    /// How far ahead of the host's its wall clock runs, in seconds.
    pub fn clock_offset(&self) -> i64 {
        self.clock.as_ref().map_or(0, SteppedClock::offset)
    }

    /// Steps the server's wall clock by `seconds`; returns its offset now.
    pub fn step_clock(&self, seconds: i64) -> i64 {
        self.clock.as_ref().expect("a server started on a stepped clock").step(seconds)
    }

    /// Starts the server again on the same port and data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill the server first");
        self.run();
    }

    fn url_of(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The installation's `program`, run as the `postgres` user when the tests run as root.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command.current_dir(&self.dir).stdin(Stdio::null());
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Starts the server and waits until it accepts connections. A restart right after a kill
    /// may find the killed server's last processes still going: it tries again.
    fn run(&mut self) {
        let started = Instant::now();
        loop {
            let log = std::fs::File::create(self.dir.join("postgres.log")).unwrap();
            let mut command = self.command("postgres");
            if let Some(clock) = &self.clock {
                clock.preload(&mut command);
            }
            let child = command
                .arg("-D")
                .arg(self.data())
                .args(["-p", &self.port.to_string()])
                .args(["-c", "listen_addresses=127.0.0.1"])
                .arg("-c")
                .arg(format!("unix_socket_directories={}", self.dir.display()))
                .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
                .args(["-c", "max_connections=200", "-c", "shared_buffers=16MB"])
                .stdout(Stdio::null())
                .stderr(log)
                // A group of its own, so that `kill` reaches every process it starts.
                .process_group(0)
                .spawn()
                .unwrap();
            self.child = Some(child);
            match self.wait_until_ready(started) {
                Ok(()) => return,
                Err(status) => {
                    self.child = None;
                    assert!(
                        started.elapsed() < STARTUP,
                        "postgres exited at start ({status}): {}",
                        self.log_tail()
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Waits until the server accepts connections; the exit status if it stopped.
    fn wait_until_ready(&mut self, started: Instant) -> Result<(), std::process::ExitStatus> {
        loop {
            let ready = self
                .command("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", SUPERUSER, "-q"])
                .status()
                .unwrap();
            if ready.success() {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|child| child.try_wait().unwrap()) {
                return Err(status);
            }
            if started.elapsed() > STARTUP {
                self.kill();
                panic!(
                    "postgres did not start on port {} within {STARTUP:?}: {}",
                    self.port,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill();
        }
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// The `bin` directory of the newest installed major version that has `initdb` and
/// `postgres`.
fn installed_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(INSTALLS)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            let complete =
                ["initdb", "postgres", "pg_isready"].iter().all(|program| bin.join(program).is_file());
            complete.then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Whether this process runs as root (it owns its own `/proc` entry as its effective user).
fn running_as_root() -> bool {
    Path::new("/proc/self").metadata().is_ok_and(|proc| proc.uid() == 0)
}

/// The `postgres` system user's user and group IDs, from `/etc/passwd`.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| (fields[2].parse().unwrap(), fields[3].parse().unwrap()))
        })
        .expect("running as root needs the `postgres` user (Debian's postgresql package creates it)")
}
