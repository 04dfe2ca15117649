//! [`Database`]: a real Postgres or Redis server that demo shops as processes share.

use super::{postgres::PostgresServer, redis::RedisServer};

/// Which server a [`Database`] is.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Postgres,
    Redis,
}

/// Runs `test` on Postgres and on Redis at once, each on a thread and runtime of its own: the
/// runs wait on processes and timers, not on the CPU, so together they take as long as one. A
/// run's panic is the test's.
pub fn on_each<F, Fut>(test: F)
where
    F: Fn(Kind) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = ()>,
{
    let runs = [Kind::Postgres, Kind::Redis].map(|kind| {
        std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(test(kind));
        })
    });
    for run in runs {
        if let Err(failed) = run.join() {
            std::panic::resume_unwind(failed);
        }
    }
}

/// A server of this test's own, for shops to share.
pub enum Database {
    Postgres(PostgresServer),
    Redis(RedisServer),
}

impl Database {
    /// Starts a server of `kind`, or `None` if it is not installed (see each server's `start`).
    pub fn start(kind: Kind, test: &str) -> Option<Self> {
        match kind {
            Kind::Postgres => PostgresServer::start(test).map(Self::Postgres),
            Kind::Redis => RedisServer::start(test).map(Self::Redis),
        }
    }

    /// The same, its wall clock on a file the test steps ([`step_clock`](Self::step_clock)).
    pub fn start_on_stepped_clock(kind: Kind, test: &str) -> Option<Self> {
        match kind {
            Kind::Postgres => PostgresServer::start_on_stepped_clock(test).map(Self::Postgres),
            Kind::Redis => RedisServer::start_on_stepped_clock(test).map(Self::Redis),
        }
    }

    /// Steps the server's wall clock by `seconds`; returns its offset now.
    pub fn step_clock(&self, seconds: i64) -> i64 {
        match self {
            Self::Postgres(postgres) => postgres.step_clock(seconds),
            Self::Redis(redis) => redis.step_clock(seconds),
        }
    }

    /// How far ahead of the host's the server's wall clock runs, in seconds (0 unless stepped).
    pub fn clock_offset(&self) -> i64 {
        match self {
            Self::Postgres(postgres) => postgres.clock_offset(),
            Self::Redis(redis) => redis.clock_offset(),
        }
    }

    /// The URL the shops' `SHOP_DATABASE_URL` takes: on Postgres, a new database's.
    pub async fn url(&self) -> String {
        match self {
            Self::Postgres(postgres) => postgres.database("shop").await,
            Self::Redis(redis) => redis.url(),
        }
    }

    /// Stops every process of the server (SIGSTOP).
    pub fn pause(&self) {
        match self {
            Self::Postgres(postgres) => postgres.pause(),
            Self::Redis(redis) => redis.pause(),
        }
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        match self {
            Self::Postgres(postgres) => postgres.resume(),
            Self::Redis(redis) => redis.resume(),
        }
    }
}
