//! The fault campaign: three demo shops as processes on one Postgres (then on one Redis), a
//! sandbox that counts a call as booked when it arrives, visitors ordering all along, and a
//! seeded storm of faults: slow, failing and rate-limited answers, kill -9 and restarts,
//! SIGTERM with calls in flight, SIGSTOP of an instance and of the database, instances whose
//! clocks run 20 s to 90 s off (`faketime`). Then the faults stop, and every conversion the
//! store holds must be booked exactly once, every order that said "on its way" among them.
//!
//! One window no client can close is told apart, not hidden: an instance killed or paused
//! while its call was at Sovendus never learns the answer, and the conversion is sent again
//! once its lease runs out, as Sovendus' guide asks of an unanswered call. A token booked
//! twice with such a fault during its first call is counted as such; any other double, and any
//! loss, fails the campaign.
//!
//! `CAMPAIGN_SEED` replays a run, `CAMPAIGN_SECONDS` sets how long the faults go on (30 by
//! default); `scripts/campaign.sh` runs long ones and prints the figures.

use crate::common;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use common::{
    database::{Database, Kind, on_each},
    eventually,
    shop::{Setup, Shop, free_addr},
};
use futures_util::FutureExt;
use http::StatusCode;
use tower_sovendus::{
    sandbox::{Fault, Sandbox},
    store::{ConversionState, RedisTokenStore, SqlTokenStore, TokenStore, sqlx::PgPool},
};

/// The instances, all on one store.
const INSTANCES: usize = 3;
/// The clocks an instance may run on, as `faketime` offsets (`None`: the host's).
const CLOCKS: [Option<&str>; 5] = [None, Some("+20s"), Some("-20s"), Some("+90s"), None];
/// The longest wait between two delivery attempts, so that what failed is delivered soon after
/// the faults stop.
const MAX_WAIT: Duration = Duration::from_secs(8);
/// The longest Sovendus takes to answer while slow: within the shops' 30 s request timeout, so
/// every call an instance is alive to hear gets its answer.
const SLOWEST_ANSWER: Duration = Duration::from_secs(10);
/// The demo shop's lease.
const LEASE: Duration = Duration::from_secs(15);
/// The stock of the boots every visitor orders: more than any campaign sells.
const STOCK: &str = "1=1000000";

#[test]
fn three_instances_book_every_order_once_through_a_storm_of_faults() {
    on_each(|kind| async move {
        let Some(database) = Database::start(kind, "the fault campaign") else { return };
        let url = database.url().await;
        let store: Box<dyn TokenStore> = match &database {
            Database::Postgres(_) => {
                let store = SqlTokenStore::postgres(PgPool::connect(&url).await.unwrap());
                store.migrate().await.unwrap();
                Box::new(store)
            }
            Database::Redis(redis) => Box::new(RedisTokenStore::new(redis.pool().await)),
        };
        let pause = |paused: bool| if paused { database.pause() } else { database.resume() };
        Campaign::from_env(kind).run(&url, &*store, pause).await;
    });
}

/// One campaign: its seed, length and what it saw.
struct Campaign {
    name: &'static str,
    seed: u64,
    length: Duration,
    /// When an instance was killed or paused: the faults that may cut an instance off a call
    /// under way, or off recording its answer.
    cuts: Mutex<Vec<(SystemTime, SystemTime, String)>>,
    faults: Mutex<BTreeMap<&'static str, usize>>,
}

/// What an order's page said of its conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Said {
    /// "on its way": owed.
    Owed,
    /// No conversion: the landing's capture was lost, or the store failed (the token stays).
    NotOwed,
    /// No page: the instance died or stalled under the request.
    NoAnswer,
}

impl Campaign {
    fn from_env(kind: Kind) -> Self {
        let name = match kind {
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
        };
        let seed =
            std::env::var("CAMPAIGN_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or_else(|| {
                SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs()
            });
        let seconds =
            std::env::var("CAMPAIGN_SECONDS").ok().and_then(|seconds| seconds.parse().ok()).unwrap_or(30);
        Self {
            name,
            seed,
            length: Duration::from_secs(seconds),
            cuts: Mutex::default(),
            faults: Mutex::default(),
        }
    }

    fn count(&self, fault: &'static str) {
        *self.faults.lock().unwrap().entry(fault).or_default() += 1;
    }

    /// Runs the campaign against the store at `url`, read through `store`, paused by `pause`.
    async fn run(self, url: &str, store: &dyn TokenStore, pause: impl Fn(bool)) {
        eprintln!(
            "campaign on {}: CAMPAIGN_SEED={} CAMPAIGN_SECONDS={}",
            self.name,
            self.seed,
            self.length.as_secs()
        );
        let dir = tempfile::Builder::new().prefix("campaign-").tempdir().unwrap();
        let sandbox = Sandbox::start().await.unwrap();
        let mut rng = fastrand::Rng::with_seed(self.seed);
        let addrs: Vec<SocketAddr> = (0..INSTANCES).map(|_| free_addr()).collect();
        let setup = |clock| Setup {
            clock,
            max_wait: Some(MAX_WAIT),
            stock: Some(STOCK),
            ..Setup::shared(dir.path(), url.to_owned())
        };
        let mut shops: Vec<Shop> = addrs
            .iter()
            .zip(CLOCKS)
            .map(|(addr, clock)| Shop::launch(&setup(clock), *addr, &sandbox))
            .collect();

        let ordering = Arc::new(AtomicBool::new(true));
        let orders = tokio::spawn(place_orders(addrs.clone(), self.seed, Arc::clone(&ordering)));
        let started = std::time::Instant::now();
        while started.elapsed() < self.length {
            tokio::time::sleep(Duration::from_millis(rng.u64(500..3_000))).await;
            let at = SystemTime::now();
            let which = rng.usize(..INSTANCES);
            match rng.u8(..100) {
                0..25 => self.change_sovendus(&sandbox, &mut rng),
                25..40 => {
                    shops.remove(which).kill();
                    tokio::time::sleep(Duration::from_millis(rng.u64(200..2_000))).await;
                    let clock = CLOCKS[rng.usize(..CLOCKS.len())];
                    shops.insert(which, Shop::launch(&setup(clock), addrs[which], &sandbox));
                    self.cut(at, "kill -9 of an instance");
                }
                40..50 => {
                    shops.remove(which).terminate(Duration::from_secs(60));
                    shops.insert(which, Shop::launch(&setup(CLOCKS[which]), addrs[which], &sandbox));
                    self.count("SIGTERM and restart of an instance");
                }
                50..75 => {
                    shops[which].pause();
                    tokio::time::sleep(Duration::from_millis(rng.u64(1_000..25_000))).await;
                    shops[which].resume();
                    self.cut(at, "SIGSTOP of an instance");
                }
                _ => {
                    pause(true);
                    tokio::time::sleep(Duration::from_millis(rng.u64(1_000..25_000))).await;
                    pause(false);
                    self.count("SIGSTOP of the store");
                }
            }
        }
        ordering.store(false, Ordering::Relaxed);
        let said = orders.await.unwrap();
        sandbox.stop_faults();
        if let Err(failed) =
            std::panic::AssertUnwindSafe(self.judge(store, &sandbox, &said)).catch_unwind().await
        {
            eprintln!("the shops' logs are kept in {}", dir.keep().display());
            std::panic::resume_unwind(failed);
        }
        drop(shops);
        if std::env::var_os("CAMPAIGN_KEEP_LOGS").is_some() {
            eprintln!("the shops' logs are kept in {}", dir.keep().display());
        }
    }

    fn change_sovendus(&self, sandbox: &Sandbox, rng: &mut fastrand::Rng) {
        sandbox.stop_faults();
        match rng.u8(..4) {
            0 => self.count("Sovendus healthy again"),
            1 => {
                let delay = Duration::from_millis(rng.u64(500..SLOWEST_ANSWER.as_millis() as u64));
                sandbox.fail_every(1, [Fault::Delay(delay)]);
                self.count("Sovendus slow");
            }
            2 => {
                sandbox.fail_every(2, [Fault::Status(StatusCode::SERVICE_UNAVAILABLE)]);
                self.count("Sovendus failing (503)");
            }
            _ => {
                sandbox.fail_every(3, [Fault::RateLimited(Duration::from_secs(1))]);
                self.count("Sovendus rate limiting (429)");
            }
        }
    }

    /// Records a fault that ran from `from` until now and may have cut an instance off a call.
    fn cut(&self, from: SystemTime, what: &'static str) {
        self.count(what);
        self.cuts.lock().unwrap().push((from, SystemTime::now(), what.to_owned()));
    }

    /// Waits until the store holds nothing owed, and longer than a lease, then checks every
    /// booking against the store and the orders.
    async fn judge(&self, store: &dyn TokenStore, sandbox: &Sandbox, said: &BTreeMap<String, Said>) {
        let settled = async || {
            let counts = store.counts().await.unwrap();
            counts.owed + counts.parked == 0
        };
        let all_settled = eventually(Duration::from_secs(180), settled).await;
        tokio::time::sleep(LEASE + Duration::from_secs(5)).await;
        let mut in_store = BTreeMap::new();
        for state in ConversionState::ALL {
            for conversion in store.list(state, 1_000_000).await.unwrap() {
                in_store.insert(conversion.token.as_str().to_owned(), state);
            }
        }
        // Booked: every call that arrived but those Sovendus refused (503, 429).
        let mut booked: BTreeMap<String, Vec<(SystemTime, Option<StatusCode>)>> = BTreeMap::new();
        for call in sandbox.conversions() {
            if call.status().is_none_or(|status| status == StatusCode::OK) {
                let token = call.token().unwrap_or_default().to_owned();
                booked.entry(token).or_default().push((call.received_at(), call.status()));
            }
        }

        let mut lost = Vec::new();
        let mut unexplained = Vec::new();
        let mut cut_off = 0;
        for (token, state) in &in_store {
            let times = booked.get(token).map_or(&[][..], Vec::as_slice);
            match times {
                [] => lost.push(format!("{token} ({state})")),
                [_] => {}
                [(first, _), ..] if self.cut_off_at(*first) => {
                    cut_off += 1;
                    eprintln!(
                        "  {token}: booked at {}, cut off by {}",
                        times_of(times),
                        self.cuts_near(*first)
                    );
                }
                _ => unexplained.push(format!("{token}: booked at {}", times_of(times))),
            }
        }
        let owed_but_absent: Vec<&String> = said
            .iter()
            .filter(|(token, said)| **said == Said::Owed && !in_store.contains_key(*token))
            .map(|(token, _)| token)
            .collect();
        let booked_unknown: Vec<&String> =
            booked.keys().filter(|token| !in_store.contains_key(*token)).collect();

        let tally = |wanted: Said| said.values().filter(|said| **said == wanted).count();
        let report = format!(
            "campaign on {} (CAMPAIGN_SEED={}, {} s of faults): {} orders ({} owed, {} without a conversion, {} \
             unanswered), {} conversions in the store, faults {:?}; booked once: {}, lost: {}, doubled by a fault \
             that cut an instance off its call: {}, other doubles: {}",
            self.name,
            self.seed,
            self.length.as_secs(),
            said.len(),
            tally(Said::Owed),
            tally(Said::NotOwed),
            tally(Said::NoAnswer),
            in_store.len(),
            self.faults.lock().unwrap(),
            in_store.len() - lost.len() - cut_off - unexplained.len(),
            lost.len(),
            cut_off,
            unexplained.len(),
        );
        eprintln!("{report}");
        assert!(all_settled, "{report}: conversions still owed after the faults stopped");
        assert!(tally(Said::Owed) > 0, "{report}: no order went through");
        assert!(lost.is_empty(), "{report}: lost {lost:?}");
        assert!(owed_but_absent.is_empty(), "{report}: said owed, not in the store: {owed_but_absent:?}");
        assert!(booked_unknown.is_empty(), "{report}: booked, not in the store: {booked_unknown:?}");
        assert!(unexplained.is_empty(), "{report}: doubled {unexplained:?}");
    }

    /// The faults that may have cut off a call that arrived at `arrived`, for the report.
    fn cuts_near(&self, arrived: SystemTime) -> String {
        let answered_by = arrived + SLOWEST_ANSWER + Duration::from_secs(1);
        let cuts = self.cuts.lock().unwrap();
        let near = cuts.iter().filter(|(from, until, _)| *from <= answered_by && arrived <= *until);
        let offset = |time: &SystemTime| match time.duration_since(arrived) {
            Ok(after) => format!("+{:.1} s", after.as_secs_f64()),
            Err(before) => format!("-{:.1} s", before.duration().as_secs_f64()),
        };
        near.map(|(from, until, what)| format!("{what} from {} to {}", offset(from), offset(until)))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether a fault that cuts an instance off its calls ran while a call that arrived at
    /// `arrived` could still be waiting for its answer.
    fn cut_off_at(&self, arrived: SystemTime) -> bool {
        let answered_by = arrived + SLOWEST_ANSWER + Duration::from_secs(1);
        self.cuts.lock().unwrap().iter().any(|(from, until, _)| *from <= answered_by && arrived <= *until)
    }
}

/// The calls `times`, in seconds since the first, with their answers, for the report.
fn times_of(times: &[(SystemTime, Option<StatusCode>)]) -> String {
    let first = times.first().map_or(SystemTime::UNIX_EPOCH, |(first, _)| *first);
    let since = |(time, status): &(SystemTime, Option<StatusCode>)| {
        let after = time.duration_since(first).unwrap_or_default().as_secs_f64();
        format!(
            "+{after:.1} s ({})",
            status.map_or("unanswered".to_owned(), |status| status.as_u16().to_string())
        )
    };
    times.iter().map(since).collect::<Vec<_>>().join(", ")
}

/// Visitors landing and ordering on random instances (sessions are in the shared store) until
/// `ordering` turns false; returns what each order's page said, by token.
async fn place_orders(
    addrs: Vec<SocketAddr>,
    seed: u64,
    ordering: Arc<AtomicBool>,
) -> BTreeMap<String, Said> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
    let mut said = BTreeMap::new();
    let mut number = 0;
    while ordering.load(Ordering::Relaxed) {
        number += 1;
        // Told apart by its first 8 characters, all that logs show of a token.
        let token = format!("{number:06}-{seed}-campaign");
        let (landing, ordering_at) = (addrs[rng.usize(..addrs.len())], addrs[rng.usize(..addrs.len())]);
        said.insert(token.clone(), land_and_order(landing, ordering_at, &token).await);
        tokio::time::sleep(Duration::from_millis(rng.u64(50..400))).await;
    }
    said
}

/// A visitor lands with `token` at `landing`, and orders at `ordering`.
async fn land_and_order(landing: SocketAddr, ordering: SocketAddr, token: &str) -> Said {
    let client =
        reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(5)).build().unwrap();
    let url = |addr: SocketAddr, path: &str| format!("http://{addr}{path}");
    let page = async {
        client.get(url(landing, &format!("/?sovReqToken={token}"))).send().await?.error_for_status()?;
        let cart = client.post(url(ordering, "/cart")).form(&[("product", "1")]).send().await?;
        cart.error_for_status()?;
        let order = client.post(url(ordering, "/order")).form(&[("shipping", "standard")]).send().await?;
        order.error_for_status()?.text().await
    };
    match page.await {
        Ok(page) if page.contains("Sovendus conversion on its way.") => Said::Owed,
        Ok(_) => Said::NotOwed,
        Err(_) => Said::NoAnswer,
    }
}
