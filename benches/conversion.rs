//! The conversion path: conversions per second sent to the sandbox on loopback, at
//! concurrency 1 and 64, by
//!
//! - `pooled`: [`SovendusClient::send`], one pooled client for the app (what the layer uses);
//! - `per_call`: a reqwest client built for every call, the integration guide's pattern;
//!
//! and, after criterion's groups, the sandbox's own ceiling at the same concurrency, measured
//! by `wrk` with keep-alive (skipped with a notice when `wrk` is not installed). The ceilings
//! go next to criterion's results, for `benches/report.py`.
//!
//! ```text
//! cargo bench --bench conversion
//! ```

use std::{
    future::Future,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

mod common;

use criterion::{Criterion, SamplingMode, Throughput};
use tokio::{runtime::Runtime, task::JoinSet};
use tower_sovendus::{SovReqToken, SovendusClient, sandbox::Sandbox};

const CONCURRENCY: [usize; 2] = [1, 64];
/// How long each `wrk` run lasts, and how many runs give the median.
const WRK_SECONDS: u32 = 5;
const WRK_RUNS: usize = 3;

/// Runs `iters` calls of `call`, `concurrency` at a time, and returns how long they took.
async fn concurrently<F, Fut>(iters: u64, concurrency: usize, call: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let remaining = Arc::new(AtomicI64::new(i64::try_from(iters).expect("fewer than 2^63 iterations")));
    let start = Instant::now();
    let mut callers = JoinSet::new();
    for _ in 0..concurrency {
        let (remaining, call) = (remaining.clone(), call.clone());
        callers.spawn(async move {
            while remaining.fetch_sub(1, Ordering::Relaxed) > 0 {
                call().await;
            }
        });
    }
    callers.join_all().await;
    start.elapsed()
}

/// The integration guide's pattern: a new HTTP client for every conversion.
async fn per_call(url: &str) {
    let response = reqwest::Client::new()
        .post(url)
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

fn clients(c: &mut Criterion, runtime: &Runtime, sandbox: &Sandbox) {
    let client = SovendusClient::new(&sandbox.config().build().expect("the sandbox's config is valid"));
    let token: SovReqToken = Sandbox::TEST_TOKEN.parse().expect("the test token is valid");
    let url: Arc<str> = conversion_url(sandbox).into();
    for concurrency in CONCURRENCY {
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
        // A client per call costs milliseconds (it loads the TLS roots): fewer, shorter samples.
        group.sample_size(10).measurement_time(Duration::from_secs(4));
        group.bench_function("per_call", |b| {
            b.to_async(runtime).iter_custom(|iters| {
                let url = url.clone();
                concurrently(iters, concurrency, move || {
                    let url = url.clone();
                    async move { per_call(&url).await }
                })
            })
        });
        group.finish();
    }
}

/// Requests per second `wrk` gets from the sandbox with `concurrency` keep-alive connections,
/// or `None` (with a notice) when `wrk` cannot run.
fn wrk(sandbox: &Sandbox, concurrency: usize) -> Option<f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/wrk/conversion.lua");
    let threads = concurrency.min(2);
    let output = Command::new("wrk")
        .args([&format!("-t{threads}"), &format!("-c{concurrency}"), &format!("-d{WRK_SECONDS}s")])
        .args(["-s", script, &conversion_url(sandbox)])
        .output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            eprintln!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
            return None;
        }
        Err(error) => {
            eprintln!("wrk not run ({error}): the sandbox's ceiling is not measured");
            return None;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find_map(|line| line.trim().strip_prefix("Requests/sec:"));
    let rate = line.and_then(|rate| rate.trim().parse().ok());
    if rate.is_none() {
        eprintln!("no Requests/sec in wrk's output:\n{stdout}");
    }
    rate
}

fn ceilings(runtime: &Runtime, sandbox: &Sandbox) {
    // Only the runtime's workers serve the sandbox meanwhile; this thread waits for wrk.
    let _guard = runtime.enter();
    for concurrency in CONCURRENCY {
        let mut rates: Vec<f64> = (0..WRK_RUNS).filter_map(|_| wrk(sandbox, concurrency)).collect();
        if rates.is_empty() {
            return;
        }
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        println!(
            "sandbox ceiling (wrk, keep-alive) at concurrency {concurrency}: {median:.0} requests/s {rates:?}"
        );
        let json =
            serde_json::json!({ "concurrency": concurrency, "median_per_second": median, "runs": rates });
        common::write_result("sandbox_ceiling", &format!("c{concurrency}.json"), &json);
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let sandbox = runtime.block_on(Sandbox::start()).expect("the sandbox starts on loopback");
    let mut criterion = Criterion::default().configure_from_args();
    clients(&mut criterion, &runtime, &sandbox);
    criterion.final_summary();
    // `cargo bench -- FILTER` and `--list` run only what they name; the ceiling goes with a full run.
    if std::env::args().skip(1).all(|arg| arg == "--bench") {
        ceilings(&runtime, &sandbox);
    }
}
