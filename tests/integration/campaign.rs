//! The fault campaign: three demo shops as processes on one Postgres (then on one Redis), each
//! calling a sandbox of its own that counts a call as booked when it arrives (so every call is
//! known by the instance that made it), visitors ordering all along, some of a product that
//! sells out, and a seeded storm of faults: slow, failing, rate-limited and refusing (422)
//! answers, retries of the conversions that refusal made dead, kill -9 and restarts, SIGTERM
//! with calls in flight, SIGSTOP of an instance and of the database (up to 25 s, longer than a
//! lease), instances whose clocks run 20 s to 90 s off (`faketime`), steps of the database's
//! own clock forward and back within a minute (Postgres, `faketime`), cancellations of orders
//! while their conversions are delivered. Then the faults stop, and the
//! orders the shops committed, read from their own database, are judged against the bookings:
//! every committed order booked once, every sold-out or voided one never.
//!
//! One window no client can close is told apart, not hidden: an instance killed or paused
//! while its call was at Sovendus never learns the answer, and the conversion is sent again
//! once its lease and quarantine run out, as Sovendus' guide asks of an unanswered call. A
//! repeat is excused only if the instance that made the call before it was killed or stopped
//! during that call, and the repeat came at least a lease later; any other double, any loss,
//! and any booking of an order sold out or voided fails the campaign.
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
    store::{
        ConversionState, RedisTokenStore, SqlTokenStore, TokenStore,
        sqlx::{self, PgPool, SqlitePool},
    },
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
/// The shops' quarantine: with their 20 s request timeout, a step of the store's clock of up to
/// a minute sends nothing twice (see `DeliverySchedule::quarantine`).
const QUARANTINE: Duration = Duration::from_secs(80);
/// The stock of the boots most visitors order (more than any campaign sells), and of the
/// signed maps one in ten orders, which sell out at once.
const STOCK: &str = "1=1000000,4=3";
/// The product that sells out.
const SELLS_OUT: &str = "4";

#[test]
fn three_instances_book_every_order_once_through_a_storm_of_faults() {
    on_each(|kind| async move {
        // Postgres on a wall clock the campaign steps (libfaketime); redis-server does not start
        // under libfaketime, whose clock the instances' own step tests cover
        // (`integration::silent_holder`).
        let database = match kind {
            Kind::Postgres => Database::start_on_stepped_clock(kind, "the fault campaign"),
            Kind::Redis => Database::start(kind, "the fault campaign"),
        };
        let Some(database) = database else { return };
        let url = database.url().await;
        let store: Box<dyn TokenStore> = match &database {
            Database::Postgres(_) => {
                let store = SqlTokenStore::postgres(PgPool::connect(&url).await.unwrap());
                store.migrate().await.unwrap();
                Box::new(store)
            }
            Database::Redis(redis) => Box::new(RedisTokenStore::new(redis.pool().await)),
        };
        Campaign::from_env(kind).run(&url, &*store, &database, kind).await;
    });
}

/// One campaign: its seed, length and what it saw.
struct Campaign {
    name: &'static str,
    seed: u64,
    length: Duration,
    /// When an instance was killed or paused: the faults that may cut an instance off a call
    /// under way, or off recording its answer.
    cuts: Mutex<Vec<Cut>>,
    /// When each cancellation's request ended, on this host's clock, by order reference: a
    /// booking of a cancelled order must have arrived before.
    cancels: Mutex<BTreeMap<String, SystemTime>>,
    faults: Mutex<BTreeMap<&'static str, usize>>,
}

/// A fault that may have cut the instance in `slot` off a call, from `from` to `until`.
struct Cut {
    slot: usize,
    from: SystemTime,
    until: SystemTime,
    what: &'static str,
}

/// What an order's page said of its conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Said {
    /// "on its way": owed.
    Owed,
    /// No conversion: the landing's capture was lost, or the store failed (the token stays).
    NotOwed,
    /// Sold out (409): rolled back, nothing booked.
    SoldOut,
    /// No page: the instance died or stalled under the request.
    NoAnswer,
}

/// A call that arrived at a sandbox: when, from which instance's slot, and its answer.
type Call = (SystemTime, usize, Option<StatusCode>);

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
            cancels: Mutex::default(),
            faults: Mutex::default(),
        }
    }

    fn count(&self, fault: &'static str) {
        *self.faults.lock().unwrap().entry(fault).or_default() += 1;
    }

    /// Runs the campaign against the store at `url` on `database`, read through `store`.
    async fn run(self, url: &str, store: &dyn TokenStore, database: &Database, kind: Kind) {
        eprintln!(
            "campaign on {}: CAMPAIGN_SEED={} CAMPAIGN_SECONDS={}",
            self.name,
            self.seed,
            self.length.as_secs()
        );
        let dir = tempfile::Builder::new().prefix("campaign-").tempdir().unwrap();
        let mut sandboxes = Vec::new();
        for _ in 0..INSTANCES {
            sandboxes.push(Sandbox::start().await.unwrap());
        }
        let mut rng = fastrand::Rng::with_seed(self.seed);
        let addrs: Vec<SocketAddr> = (0..INSTANCES).map(|_| free_addr()).collect();
        let setup = |clock| Setup {
            clock,
            max_wait: Some(MAX_WAIT),
            quarantine: QUARANTINE,
            stock: Some(STOCK),
            ..Setup::shared(dir.path(), url.to_owned())
        };
        let mut shops: Vec<Shop> = (0..INSTANCES)
            .zip(CLOCKS)
            .map(|(slot, clock)| Shop::launch(&setup(clock), addrs[slot], &sandboxes[slot]))
            .collect();

        let ordering = Arc::new(AtomicBool::new(true));
        let placed = Arc::new(Mutex::new(Vec::new()));
        let orders =
            tokio::spawn(place_orders(addrs.clone(), self.seed, Arc::clone(&ordering), Arc::clone(&placed)));
        let started = std::time::Instant::now();
        while started.elapsed() < self.length {
            tokio::time::sleep(Duration::from_millis(rng.u64(500..3_000))).await;
            let at = SystemTime::now();
            let which = rng.usize(..INSTANCES);
            match rng.u8(..100) {
                0..20 => self.change_sovendus(&sandboxes, &mut rng),
                20..30 => {
                    let recent =
                        placed.lock().unwrap().iter().rev().take(5).cloned().collect::<Vec<String>>();
                    if let Some(reference) = rng.choice(recent) {
                        self.count(cancel(addrs[which], &reference).await);
                        self.cancels.lock().unwrap().insert(reference, SystemTime::now());
                    }
                }
                30..42 => {
                    shops.remove(which).kill();
                    tokio::time::sleep(Duration::from_millis(rng.u64(200..2_000))).await;
                    let clock = CLOCKS[rng.usize(..CLOCKS.len())];
                    shops.insert(which, Shop::launch(&setup(clock), addrs[which], &sandboxes[which]));
                    self.cut(which, at, "kill -9 of an instance");
                }
                42..50 => {
                    shops.remove(which).terminate(Duration::from_secs(60));
                    shops.insert(which, Shop::launch(&setup(CLOCKS[which]), addrs[which], &sandboxes[which]));
                    self.count("SIGTERM and restart of an instance");
                }
                50..75 => {
                    shops[which].pause();
                    tokio::time::sleep(Duration::from_millis(rng.u64(1_000..25_000))).await;
                    shops[which].resume();
                    self.cut(which, at, "SIGSTOP of an instance");
                }
                75..80 => {
                    let revived = revive_dead(store).await;
                    self.count(if revived > 0 {
                        "a retry of the dead conversions"
                    } else {
                        "a retry of the dead conversions (none)"
                    });
                }
                80..88 if matches!(kind, Kind::Postgres) => {
                    // Forward or back, its offset kept within a minute ahead: no instance's
                    // reading is ever more than a minute behind the store's clock.
                    let step =
                        rng.i64(-60..=60).clamp(-database.clock_offset(), 60 - database.clock_offset());
                    database.step_clock(step);
                    self.count(if step >= 0 {
                        "a step of the store's clock forward"
                    } else {
                        "a step of the store's clock back"
                    });
                }
                _ => {
                    database.pause();
                    tokio::time::sleep(Duration::from_millis(rng.u64(1_000..25_000))).await;
                    database.resume();
                    self.count("SIGSTOP of the store");
                }
            }
        }
        ordering.store(false, Ordering::Relaxed);
        let said = orders.await.unwrap();
        for sandbox in &sandboxes {
            sandbox.stop_faults();
        }
        let orders_at = match kind {
            Kind::Postgres => url.to_owned(),
            Kind::Redis => format!("sqlite://{}", dir.path().join("orders.db").display()),
        };
        if let Err(failed) = std::panic::AssertUnwindSafe(self.judge(store, &sandboxes, &said, &orders_at))
            .catch_unwind()
            .await
        {
            eprintln!("the shops' logs are kept in {}", dir.keep().display());
            std::panic::resume_unwind(failed);
        }
        drop(shops);
        if std::env::var_os("CAMPAIGN_KEEP_LOGS").is_some() {
            eprintln!("the shops' logs are kept in {}", dir.keep().display());
        }
    }

    /// Changes how Sovendus answers, the same for every instance's sandbox.
    fn change_sovendus(&self, sandboxes: &[Sandbox], rng: &mut fastrand::Rng) {
        let (what, faults) = match rng.u8(..5) {
            0 => ("Sovendus healthy again", None),
            4 => {
                ("Sovendus refusing tokens (422)", Some((4, Fault::Status(StatusCode::UNPROCESSABLE_ENTITY))))
            }
            1 => {
                let delay = Duration::from_millis(rng.u64(500..SLOWEST_ANSWER.as_millis() as u64));
                ("Sovendus slow", Some((1, Fault::Delay(delay))))
            }
            2 => ("Sovendus failing (503)", Some((2, Fault::Status(StatusCode::SERVICE_UNAVAILABLE)))),
            _ => ("Sovendus rate limiting (429)", Some((3, Fault::RateLimited(Duration::from_secs(1))))),
        };
        for sandbox in sandboxes {
            sandbox.stop_faults();
            if let Some((every, fault)) = &faults {
                sandbox.fail_every(*every, [fault.clone()]);
            }
        }
        self.count(what);
    }

    /// Records a fault of the instance in `slot` that ran from `from` until now and may have
    /// cut it off a call.
    fn cut(&self, slot: usize, from: SystemTime, what: &'static str) {
        self.count(what);
        self.cuts.lock().unwrap().push(Cut { slot, from, until: SystemTime::now(), what });
    }

    /// Waits until the store holds nothing owed and every order the shops committed with a token
    /// is recorded, and a lease more, then judges every booking against the store and the
    /// committed orders.
    async fn judge(
        &self,
        store: &dyn TokenStore,
        sandboxes: &[Sandbox],
        said: &BTreeMap<String, Said>,
        orders_at: &str,
    ) {
        let committed = committed_orders(orders_at).await;
        // The tokens of the orders that stand: each must be recorded, and booked once.
        let standing: std::collections::BTreeSet<&String> = committed
            .iter()
            .filter(|order| !order.cancelled)
            .filter_map(|order| order.token.as_ref())
            .collect();
        let in_store_now = async || {
            let mut in_store = BTreeMap::new();
            for state in ConversionState::ALL {
                for conversion in
                    store.list(&tower_sovendus::store::ListQuery::new(state).limit(1_000_000)).await.unwrap()
                {
                    let order = conversion.order.map(|order| order.as_str().to_owned());
                    in_store.insert(conversion.token.as_str().to_owned(), (state, order));
                }
            }
            in_store
        };
        let settled = async || {
            tokio::time::sleep(Duration::from_millis(500)).await;
            // The shop retries what Sovendus refused while it was refusing tokens.
            revive_dead(store).await;
            let counts = store.counts().await.unwrap();
            let recorded = in_store_now().await;
            counts.owed + counts.parked + counts.dead == 0
                && standing.iter().all(|token| recorded.contains_key(*token))
        };
        let all_settled = eventually(Duration::from_secs(240), settled).await;
        // Nothing is owed: no delivery holds anything, and a call still to come would be a double.
        tokio::time::sleep(LEASE).await;
        let recorded = in_store_now().await;
        let in_store: BTreeMap<String, ConversionState> =
            recorded.iter().map(|(token, (state, _))| (token.clone(), *state)).collect();
        // Each order's token: the one its row kept, or the one the store recorded for it (an
        // order whose page could not read the token still takes it in its transaction).
        let mut token_of: BTreeMap<&str, &String> = BTreeMap::new();
        for (token, (_, order)) in &recorded {
            if let Some(order) = order {
                token_of.insert(order.as_str(), token);
            }
        }
        for order in &committed {
            if let Some(token) = &order.token {
                token_of.insert(order.reference.as_str(), token);
            }
        }
        // Booked: every call that arrived but those Sovendus refused (503, 429), by instance.
        let mut booked: BTreeMap<String, Vec<Call>> = BTreeMap::new();
        for (slot, sandbox) in sandboxes.iter().enumerate() {
            for call in sandbox.conversions() {
                if call.status().is_none_or(|status| status == StatusCode::OK) {
                    let token = call.token().unwrap_or_default().to_owned();
                    booked.entry(token).or_default().push((call.received_at(), slot, call.status()));
                }
            }
        }
        for calls in booked.values_mut() {
            calls.sort_by_key(|(at, ..)| *at);
        }

        let mut lost = Vec::new();
        let mut unexplained = Vec::new();
        let mut voided_booked = Vec::new();
        let mut cut_off = 0;
        for (token, state) in &in_store {
            let calls = booked.get(token).map_or(&[][..], Vec::as_slice);
            let excused = self.excused(calls);
            match (state, calls) {
                (ConversionState::Voided, []) => {}
                (ConversionState::Voided, [first, ..]) if excused || self.cut_during(first) => {
                    cut_off += 1;
                    eprintln!(
                        "  excused on {}: {token} (voided): booked at {}, cut off by {}",
                        self.name,
                        times_of(calls),
                        self.cuts_before_repeats(calls)
                    );
                }
                (ConversionState::Voided, _) => {
                    voided_booked.push(format!("{token}: booked at {}", times_of(calls)))
                }
                (_, []) => lost.push(format!("{token} ({state})")),
                (_, [_]) => {}
                (_, [_, ..]) if excused => {
                    cut_off += 1;
                    eprintln!(
                        "  excused on {}: {token}: booked at {}, cut off by {}",
                        self.name,
                        times_of(calls),
                        self.cuts_before_repeats(calls)
                    );
                }
                _ => unexplained.push(format!("{token}: booked at {}", times_of(calls))),
            }
        }
        let owed_but_absent: Vec<&String> = said
            .iter()
            .filter(|(token, said)| **said == Said::Owed && !in_store.contains_key(*token))
            .map(|(token, _)| token)
            .collect();
        let committed_tokens: std::collections::BTreeSet<&String> =
            committed.iter().filter_map(|order| token_of.get(order.reference.as_str()).copied()).collect();
        let committed_unrecorded: Vec<&&String> =
            standing.iter().filter(|token| !in_store.contains_key(**token)).collect();
        // A cancelled order's conversion is voided, or was booked before the cancellation (the
        // shop was told so, with the token for Sovendus): judged on this host's clock, by when
        // the bookings arrived and the cancellation's request ended.
        let cancels = self.cancels.lock().unwrap().clone();
        let cancelled_went_on: Vec<String> = committed
            .iter()
            .filter(|order| order.cancelled)
            .filter_map(|order| Some((order, *token_of.get(order.reference.as_str())?)))
            .filter(|(order, token)| match in_store.get(*token) {
                None | Some(ConversionState::Voided) => false,
                Some(ConversionState::Delivered) => {
                    let cancelled = cancels.get(&order.reference).copied().unwrap_or(SystemTime::UNIX_EPOCH);
                    booked.get(*token).into_iter().flatten().any(|(arrived, ..)| *arrived > cancelled)
                }
                Some(_) => true,
            })
            .map(|(order, token)| format!("{} ({token}): {:?}", order.reference, booked.get(token)))
            .collect();
        let booked_without_order: Vec<&String> =
            booked.keys().filter(|token| !committed_tokens.contains(token)).collect();
        let sold_out_booked: Vec<&String> = said
            .iter()
            .filter(|(token, said)| {
                **said == Said::SoldOut && (booked.contains_key(*token) || in_store.contains_key(*token))
            })
            .map(|(token, _)| token)
            .collect();

        let tally = |wanted: Said| said.values().filter(|said| **said == wanted).count();
        let report = format!(
            "campaign on {} (CAMPAIGN_SEED={}, {} s of faults): {} orders ({} owed, {} without a conversion, {} \
             sold out, {} unanswered), {} committed ({} with a token, {} cancelled), {} conversions in the store ({} voided), \
             faults {:?}; booked once: {}, lost: {}, doubled by a fault that cut its caller off the call: {}, \
             other doubles: {}, voided or sold out and booked: {}; the excuse covered {:.1} % of the run",
            self.name,
            self.seed,
            self.length.as_secs(),
            said.len(),
            tally(Said::Owed),
            tally(Said::NotOwed),
            tally(Said::SoldOut),
            tally(Said::NoAnswer),
            committed.len(),
            committed_tokens.len(),
            committed.iter().filter(|order| order.cancelled).count(),
            in_store.len(),
            in_store.values().filter(|state| **state == ConversionState::Voided).count(),
            self.faults.lock().unwrap(),
            in_store.len() - lost.len() - cut_off - unexplained.len() - voided_booked.len(),
            lost.len(),
            cut_off,
            unexplained.len(),
            voided_booked.len() + sold_out_booked.len(),
            self.excuse_share() * 100.0,
        );
        eprintln!("{report}");
        assert!(
            all_settled,
            "{report}: conversions still owed, or committed orders unrecorded, after the faults stopped"
        );
        assert!(tally(Said::Owed) > 0, "{report}: no order went through");
        assert!(lost.is_empty(), "{report}: lost {lost:?}");
        assert!(
            committed_unrecorded.is_empty(),
            "{report}: committed, never recorded: {committed_unrecorded:?}"
        );
        assert!(owed_but_absent.is_empty(), "{report}: said owed, not in the store: {owed_but_absent:?}");
        assert!(
            booked_without_order.is_empty(),
            "{report}: booked without a committed order: {booked_without_order:?}"
        );
        assert!(sold_out_booked.is_empty(), "{report}: sold out, and booked: {sold_out_booked:?}");
        assert!(voided_booked.is_empty(), "{report}: voided, and booked: {voided_booked:?}");
        assert!(cancelled_went_on.is_empty(), "{report}: cancelled, not voided: {cancelled_went_on:?}");
        assert!(unexplained.is_empty(), "{report}: doubled {unexplained:?}");
    }

    /// Whether the calls of a conversion booked more than once are the window no client can
    /// close: before each repeat, the instance that made the call before it was killed or
    /// stopped during that call, and the repeat came at least a lease later. (A step of the
    /// store's clock forward brings a dead caller's conversion back sooner than its lease and
    /// quarantine.)
    fn excused(&self, calls: &[Call]) -> bool {
        calls.len() > 1
            && calls.windows(2).all(|pair| {
                let apart = pair[1].0.duration_since(pair[0].0).unwrap_or_default();
                self.cut_during(&pair[0]) && apart >= LEASE
            })
    }

    /// Whether the instance that made `call` was killed or stopped while it could still be
    /// waiting for its answer.
    fn cut_during(&self, (arrived, slot, _): &Call) -> bool {
        let answered_by = *arrived + SLOWEST_ANSWER + Duration::from_secs(1);
        let cuts = self.cuts.lock().unwrap();
        cuts.iter().any(|cut| cut.slot == *slot && cut.from <= answered_by && *arrived <= cut.until)
    }

    /// The faults that may have cut off each call but the last, for the report.
    fn cuts_before_repeats(&self, calls: &[Call]) -> String {
        let callers = &calls[..calls.len().saturating_sub(1).max(1)];
        callers.iter().map(|call| self.cuts_near(call)).collect::<Vec<_>>().join(" | ")
    }

    /// The faults of the instance that made `call` that may have cut it off, for the report.
    fn cuts_near(&self, (arrived, slot, _): &Call) -> String {
        let answered_by = *arrived + SLOWEST_ANSWER + Duration::from_secs(1);
        let cuts = self.cuts.lock().unwrap();
        let near =
            cuts.iter().filter(|cut| cut.slot == *slot && cut.from <= answered_by && *arrived <= cut.until);
        let offset = |time: &SystemTime| match time.duration_since(*arrived) {
            Ok(after) => format!("+{:.1} s", after.as_secs_f64()),
            Err(before) => format!("-{:.1} s", before.duration().as_secs_f64()),
        };
        near.map(|cut| {
            format!("{} of instance {slot} from {} to {}", cut.what, offset(&cut.from), offset(&cut.until))
        })
        .collect::<Vec<_>>()
        .join("; ")
    }

    /// The share of the run, over every instance, in which a first call would be excused: the
    /// calls that arrived within an answer's time before a kill or a stop of their instance, or
    /// during it.
    fn excuse_share(&self) -> f64 {
        let reach = SLOWEST_ANSWER + Duration::from_secs(1);
        let cuts = self.cuts.lock().unwrap();
        let mut covered = Duration::ZERO;
        for slot in 0..INSTANCES {
            let mut spans: Vec<(SystemTime, SystemTime)> =
                cuts.iter().filter(|cut| cut.slot == slot).map(|cut| (cut.from - reach, cut.until)).collect();
            spans.sort();
            let mut merged: Option<(SystemTime, SystemTime)> = None;
            for (from, until) in spans {
                merged = match merged {
                    Some((start, end)) if from <= end => Some((start, end.max(until))),
                    Some((start, end)) => {
                        covered += end.duration_since(start).unwrap_or_default();
                        Some((from, until))
                    }
                    None => Some((from, until)),
                };
            }
            if let Some((start, end)) = merged {
                covered += end.duration_since(start).unwrap_or_default();
            }
        }
        covered.as_secs_f64() / (self.length.as_secs_f64() * INSTANCES as f64)
    }
}

/// The orders the shops committed, from their database at `url`: each reference with the token it
/// kept, if any.
async fn committed_orders(url: &str) -> Vec<Committed> {
    const ORDERS: &str = "SELECT reference, sovendus_token, cancelled_at FROM shop_orders";
    let rows: Vec<(String, Option<String>, Option<i64>)> = if url.starts_with("sqlite:") {
        let pool = SqlitePool::connect(url).await.unwrap();
        sqlx::query_as(ORDERS).fetch_all(&pool).await.unwrap()
    } else {
        let pool = PgPool::connect(url).await.unwrap();
        sqlx::query_as(ORDERS).fetch_all(&pool).await.unwrap()
    };
    let committed = rows.into_iter().map(|(reference, token, cancelled_at)| Committed {
        reference,
        token,
        cancelled: cancelled_at.is_some(),
    });
    committed.collect()
}

/// An order a shop committed: its reference, the token it kept, and whether it was cancelled.
struct Committed {
    reference: String,
    token: Option<String>,
    cancelled: bool,
}

/// Makes every dead conversion owed again, due now, as `Delivery::retry_dead` does; returns how
/// many there were.
async fn revive_dead(store: &dyn TokenStore) -> usize {
    let (Ok(dead), Ok(now)) = (
        store.list(&tower_sovendus::store::ListQuery::new(ConversionState::Dead).limit(1_000_000)).await,
        store.now().await,
    ) else {
        return 0;
    };
    let mut revived = 0;
    for conversion in dead {
        revived += usize::from(store.retry_dead(conversion.id, now).await.unwrap_or(false));
    }
    revived
}

/// Cancels the order `reference` at `addr`; says what the shop answered.
async fn cancel(addr: SocketAddr, reference: &str) -> &'static str {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(40)).build().unwrap();
    match client.post(format!("http://{addr}/orders/{reference}/cancel")).send().await {
        Ok(response) if response.status().is_success() => "an order cancelled",
        Ok(response) if response.status() == StatusCode::CONFLICT => "a cancel answered: being sent",
        _ => "a cancel that failed (the instance or the store away)",
    }
}

/// The calls `times`, in seconds since the first, with their instance and answers, for the report.
fn times_of(times: &[Call]) -> String {
    let first = times.first().map_or(SystemTime::UNIX_EPOCH, |(first, ..)| *first);
    let since = |(time, slot, status): &Call| {
        let after = time.duration_since(first).unwrap_or_default().as_secs_f64();
        let answer = status.map_or("unanswered".to_owned(), |status| status.as_u16().to_string());
        format!("+{after:.1} s by instance {slot} ({answer})")
    };
    times.iter().map(since).collect::<Vec<_>>().join(", ")
}

/// Visitors landing and ordering on random instances (sessions are in the shared store), one
/// in ten of the product that sells out, until `ordering` turns false; keeps the references of
/// the orders placed in `placed`; returns what each order's page said, by token.
async fn place_orders(
    addrs: Vec<SocketAddr>,
    seed: u64,
    ordering: Arc<AtomicBool>,
    placed: Arc<Mutex<Vec<String>>>,
) -> BTreeMap<String, Said> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
    let mut said = BTreeMap::new();
    let mut number = 0;
    while ordering.load(Ordering::Relaxed) {
        number += 1;
        // Told apart by its first 8 characters, all that logs show of a token.
        let token = format!("{number:06}-{seed}-campaign");
        let (landing, ordering_at) = (addrs[rng.usize(..addrs.len())], addrs[rng.usize(..addrs.len())]);
        let product = if rng.u8(..10) == 0 { SELLS_OUT } else { "1" };
        let (page, reference) = land_and_order(landing, ordering_at, &token, product).await;
        placed.lock().unwrap().extend(reference);
        said.insert(token.clone(), page);
        tokio::time::sleep(Duration::from_millis(rng.u64(50..400))).await;
    }
    said
}

/// A visitor lands with `token` at `landing`, and orders `product` at `ordering`; returns what
/// the page said, and the order's reference if it was placed.
async fn land_and_order(
    landing: SocketAddr,
    ordering: SocketAddr,
    token: &str,
    product: &str,
) -> (Said, Option<String>) {
    let client =
        reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(5)).build().unwrap();
    let url = |addr: SocketAddr, path: &str| format!("http://{addr}{path}");
    let page = async {
        client.get(url(landing, &format!("/?sovReqToken={token}"))).send().await?.error_for_status()?;
        let cart = client.post(url(ordering, "/cart")).form(&[("product", product)]).send().await?;
        cart.error_for_status()?;
        let order = client.post(url(ordering, "/order")).form(&[("shipping", "standard")]).send().await?;
        if order.status() == StatusCode::CONFLICT {
            return Ok((Said::SoldOut, None));
        }
        let order = order.error_for_status()?;
        let reference = order.url().path().strip_prefix("/thank-you/").map(str::to_owned);
        let page = order.text().await?;
        let said = if page.contains("Sovendus conversion on its way.") { Said::Owed } else { Said::NotOwed };
        Ok::<_, reqwest::Error>((said, reference))
    };
    page.await.unwrap_or((Said::NoAnswer, None))
}
