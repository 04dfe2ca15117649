//! The conversion path: conversions per second sent to the sandbox on loopback, at
//! concurrency 1 and 64, by
//!
//! - `pooled`: [`SovendusClient::send`], one pooled client for the app (what the layer uses);
//! - `per_call`: a reqwest client built for every call, the integration guide's pattern;
//! - `reqwest`: one pooled `reqwest::Client` posting the same request with nothing around it,
//!   the floor for any client built on reqwest;
//!
//! and, after criterion's groups, the sandbox's own ceiling at the same concurrency, measured
//! by `wrk` with keep-alive, in rounds paired with `pooled` and `reqwest` (see [`ceilings`];
//! skipped with a notice when `wrk` is not installed). The rounds go next to criterion's
//! results, for `benches/report.py`.
//!
//! The sandbox runs on a runtime of its own, the same one whether wrk or a client loads it.
//! Each client runs on its own runtime too, with as many threads as wrk is given at that
//! concurrency (see [`wrk_threads`]): one at concurrency 1, two at 64.
//!
//! ```text
//! cargo bench --bench conversion
//! ```

use std::{
    future::Future,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

mod support;

use criterion::{Criterion, SamplingMode, Throughput};
use tokio::{runtime::Runtime, task::JoinSet};
use tower_sovendus::{SovReqToken, SovendusClient, sandbox::Sandbox};

const CONCURRENCY: [usize; 2] = [1, 64];
/// How long each stack loads the sandbox in a round of the ceiling comparison, and how many
/// rounds there are (see [`ceilings`]).
const ROUND_SECONDS: u32 = 3;
const ROUNDS: usize = 7;

/// Runs `call` in `concurrency` tasks while `more()` says so (asked before each call), and
/// returns how many calls ran and how long they took.
async fn load<F, Fut>(
    concurrency: usize,
    call: F,
    more: impl Fn() -> bool + Clone + Send + 'static,
) -> (u64, Duration)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut callers = JoinSet::new();
    for _ in 0..concurrency {
        let (done, call, more) = (done.clone(), call.clone(), more.clone());
        callers.spawn(async move {
            while more() {
                call().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    callers.join_all().await;
    (done.load(Ordering::Relaxed), start.elapsed())
}

/// Runs `iters` calls of `call`, `concurrency` at a time, and returns how long they took.
async fn concurrently<F, Fut>(iters: u64, concurrency: usize, call: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let remaining = Arc::new(AtomicI64::new(i64::try_from(iters).expect("fewer than 2^63 iterations")));
    load(concurrency, call, move || remaining.fetch_sub(1, Ordering::Relaxed) > 0).await.1
}

/// Sends through `call`, `concurrency` at a time, for `duration`; returns calls per second.
async fn rate_for<F, Fut>(duration: Duration, concurrency: usize, call: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let deadline = Instant::now() + duration;
    let (calls, took) = load(concurrency, call, move || Instant::now() < deadline).await;
    calls as f64 / took.as_secs_f64()
}

/// Posts the conversion with `client` and nothing else: no span, no retry policy, no answer
/// parsed. On one pooled client, the floor for any client built on reqwest; on a client built
/// for the call, the integration guide's pattern.
async fn post(client: &reqwest::Client, url: &reqwest::Url) {
    let response = client
        .post(url.clone())
        .json(&serde_json::json!({ "apiKey": Sandbox::API_KEY }))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the sandbox answers");
    assert!(response.status().is_success(), "{}", response.status());
    response.bytes().await.expect("the sandbox's answer");
}

fn conversion_url(sandbox: &Sandbox) -> String {
    format!("{}/ext/{}/{}/api", sandbox.endpoint(), Sandbox::PRODUCT_ID, Sandbox::TEST_TOKEN)
}

/// wrk's threads at `concurrency`, and the client runtime's.
fn wrk_threads(concurrency: usize) -> usize {
    concurrency.min(2)
}

/// The runtime a client runs on at `concurrency`: one thread, like `wrk -t1`, or a worker per
/// wrk thread.
fn client_runtime(concurrency: usize) -> Runtime {
    let mut builder = match wrk_threads(concurrency) {
        1 => tokio::runtime::Builder::new_current_thread(),
        threads => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
    };
    builder.enable_all().build().expect("a tokio runtime")
}

fn clients(c: &mut Criterion, sandbox: &Sandbox) {
    let client = SovendusClient::new(&sandbox.config().build().expect("the sandbox's config is valid"));
    let token: SovReqToken = Sandbox::TEST_TOKEN.parse().expect("the test token is valid");
    let url = reqwest::Url::parse(&conversion_url(sandbox)).expect("a valid URL");
    for concurrency in CONCURRENCY {
        let runtime = &client_runtime(concurrency);
        let mut group = c.benchmark_group(format!("conversion_c{concurrency}"));
        group.throughput(Throughput::Elements(1));
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(8));
        group.bench_function("pooled", |b| {
            b.to_async(runtime).iter_custom(|iters| {
                let (client, token) = (client.clone(), token.clone());
                concurrently(iters, concurrency, move || {
                    let (client, token) = (client.clone(), token.clone());
                    async move {
                        client.send(&token).await.expect("the sandbox accepts it");
                    }
                })
            })
        });
        let http = reqwest::Client::new();
        group.bench_function("reqwest", |b| {
            b.to_async(runtime).iter_custom(|iters| {
                let (http, url) = (http.clone(), url.clone());
                concurrently(iters, concurrency, move || {
                    let (http, url) = (http.clone(), url.clone());
                    async move { post(&http, &url).await }
                })
            })
        });
        // A client per call costs milliseconds (it loads the TLS roots): fewer, shorter samples.
        group.sample_size(10).measurement_time(Duration::from_secs(4));
        group.bench_function("per_call", |b| {
            b.to_async(runtime).iter_custom(|iters| {
                let url = url.clone();
                concurrently(iters, concurrency, move || {
                    let url = url.clone();
                    async move { post(&reqwest::Client::new(), &url).await }
                })
            })
        });
        group.finish();
    }
}

/// Requests per second `wrk` gets from the sandbox with `concurrency` keep-alive connections,
/// or `None` (with a notice) when `wrk` cannot run.
fn wrk(sandbox: &Sandbox, concurrency: usize) -> Option<f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/support/conversion.lua");
    let threads = wrk_threads(concurrency);
    let mut wrk = Command::new("wrk");
    wrk.args([&format!("-t{threads}"), &format!("-c{concurrency}"), &format!("-d{ROUND_SECONDS}s")]);
    wrk.args(["-s", script, &conversion_url(sandbox)]);
    let output = support::output(&mut wrk, "the sandbox's ceiling is not measured")?;
    support::number_after(&output, "Requests/sec:")
}

/// The sandbox's ceiling against the clients, paired: [`ROUNDS`] rounds, in each of which
/// wrk, the pooled `SovendusClient` and bare reqwest load the sandbox for [`ROUND_SECONDS`]
/// in turn (the first changing from round to round). A drift of the machine's speed then
/// hits the three alike, and `benches/report.py` takes the median over rounds of each
/// client's rate over wrk's. Each load gets a fresh sandbox (which records every call it
/// receives) and fresh connections, so none starts with another's history.
fn ceilings(server: &Runtime) {
    let token: SovReqToken = Sandbox::TEST_TOKEN.parse().expect("the test token is valid");
    let duration = Duration::from_secs(ROUND_SECONDS.into());
    for concurrency in CONCURRENCY {
        let runtime = client_runtime(concurrency);
        let mut rounds: [Vec<f64>; 3] = Default::default();
        for round in 0..ROUNDS {
            for turn in 0..3 {
                let stack = (round + turn) % 3;
                let sandbox = server.block_on(Sandbox::start()).expect("the sandbox starts on loopback");
                let rate = match stack {
                    0 => match wrk(&sandbox, concurrency) {
                        Some(rate) => rate,
                        None => return,
                    },
                    1 => {
                        let config = sandbox.config().build().expect("the sandbox's config is valid");
                        let (client, token) = (SovendusClient::new(&config), token.clone());
                        runtime.block_on(rate_for(duration, concurrency, move || {
                            let (client, token) = (client.clone(), token.clone());
                            async move {
                                client.send(&token).await.expect("the sandbox accepts it");
                            }
                        }))
                    }
                    _ => {
                        let url = reqwest::Url::parse(&conversion_url(&sandbox)).expect("a valid URL");
                        let http = reqwest::Client::new();
                        runtime.block_on(rate_for(duration, concurrency, move || {
                            let (http, url) = (http.clone(), url.clone());
                            async move { post(&http, &url).await }
                        }))
                    }
                };
                rounds[stack].push(rate);
            }
        }
        let [wrk, pooled, reqwest] = rounds;
        println!(
            "concurrency {concurrency}, per second: wrk {wrk:.0?}, pooled {pooled:.0?}, reqwest {reqwest:.0?}"
        );
        let json = serde_json::json!({ "concurrency": concurrency, "wrk": wrk, "pooled": pooled, "reqwest": reqwest });
        support::write_result("sandbox_ceiling", &format!("c{concurrency}.json"), &json);
    }
}

fn main() {
    // The sandbox's own runtime: its workers serve it alone, whoever sends.
    let server = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let sandbox = server.block_on(Sandbox::start()).expect("the sandbox starts on loopback");
    let mut criterion = Criterion::default().configure_from_args();
    clients(&mut criterion, &sandbox);
    criterion.final_summary();
    // `cargo bench -- FILTER` and `--list` run only what they name; the ceiling goes with a full run.
    if std::env::args().skip(1).all(|arg| arg == "--bench") {
        drop(sandbox);
        ceilings(&server);
    }
}
