//! Resident memory per stored token: fills the embedded token store (`MokaTokenStore`) with
//! 1,000,000 tokens of the real shape, each captured through the layer by a landing request,
//! and reads the process's resident set size (`VmRSS` in `/proc/self/status`, Linux) before
//! and after.
//!
//! The sessions go to a store that keeps nothing, so what grows is the token store alone: the
//! token, its key, its deadline, its lease slot and the store's own bookkeeping. For scale, it
//! also measures moka's own cost per entry in three configurations: the cache holding empty
//! values. Each part runs in a process of its own.
//!
//! ```text
//! cargo bench --bench memory
//! ```

use std::{
    process::Command,
    time::{Duration, Instant},
};

mod support;

use async_trait::async_trait;
use axum::{Router, body::Body, extract::Request, routing::get};
use tower::{Service, ServiceExt};
use tower_sessions::{
    SessionManagerLayer, SessionStore,
    session::{Id, Record},
    session_store,
};
use tower_sovendus::{SovendusConfig, SovendusLayer};

const TOKENS: u32 = 1_000_000;
const TARGET_BYTES_PER_TOKEN: f64 = 400.0;

/// A session store that keeps nothing: sessions cost no memory, tokens do.
#[derive(Debug, Clone)]
struct Forgetful;

#[async_trait]
impl SessionStore for Forgetful {
    async fn save(&self, _: &Record) -> session_store::Result<()> {
        Ok(())
    }

    async fn load(&self, _: &Id) -> session_store::Result<Option<Record>> {
        Ok(None)
    }

    async fn delete(&self, _: &Id) -> session_store::Result<()> {
        Ok(())
    }
}

/// The `n`-th token, shaped like Sovendus' (`1095752fb409-457a-af14-17a09e6be522`: 35 bytes).
fn token(n: u32) -> String {
    let mixed = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{:012x}-{:04x}-{:04x}-{:012x}", mixed >> 16, n >> 16, n & 0xFFFF, mixed & 0xFFFF_FFFF_FFFF)
}

/// The resident set size in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux: /proc/self/status");
    let line = status.lines().find_map(|line| line.strip_prefix("VmRSS:")).expect("a VmRSS line");
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().expect("VmRSS in kB");
    kib * 1024
}

async fn fill(app: &mut Router) {
    for n in 0..TOKENS {
        let uri = format!("/products/42?sovReqToken={}", token(n));
        let request = Request::builder().uri(uri).body(Body::empty()).expect("a valid request");
        let response =
            ServiceExt::<Request>::ready(app).await.expect("ready").call(request).await.expect("infallible");
        assert!(response.status().is_success());
    }
}

/// Fills the layer's token store through the layer; returns the resident bytes before and after.
fn tokens() -> (u64, u64) {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let config = SovendusConfig::builder("9bc72425-902c-3abf-9db8-8b186d7cb160", "XXXX-XXXXX")
        .max_tokens(u64::from(TOKENS))
        .build()
        .expect("valid config");
    let layer = SovendusLayer::new(config);
    let mut app = Router::new()
        .route("/products/{id}", get(|| async { "product" }))
        .layer(layer)
        .layer(SessionManagerLayer::new(Forgetful));
    let before = resident_bytes();
    runtime.block_on(fill(&mut app));
    (before, resident_bytes())
}

/// The moka configurations whose own cost per entry this bench measures: how the cache is
/// built, each holding the same number of empty entries under 128-bit keys.
const MOKA_FLOORS: [(&str, &str); 3] = [
    ("moka_floor_expiry", "bounded, with an expiry per entry (a timer wheel node each)"),
    ("moka_floor_ttl", "bounded, with one time_to_live for the whole cache"),
    ("moka_floor_bounded", "bounded, no expiry"),
];

/// The cache library's own cost per entry in configuration `part` (one of [`MOKA_FLOORS`]).
fn moka_floor(part: &str) -> (u64, u64) {
    struct Deadline;
    impl moka::Expiry<i128, ()> for Deadline {
        fn expire_after_create(&self, _: &i128, _: &(), _: Instant) -> Option<Duration> {
            Some(MONTH)
        }
    }
    const MONTH: Duration = Duration::from_secs(30 * 24 * 60 * 60);
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let builder = moka::future::Cache::builder().max_capacity(u64::from(TOKENS));
    let cache: moka::future::Cache<i128, ()> = match part {
        "moka_floor_expiry" => builder.expire_after(Deadline).build(),
        "moka_floor_ttl" => builder.time_to_live(MONTH).build(),
        _ => builder.build(),
    };
    let before = resident_bytes();
    runtime.block_on(async {
        for n in 0..TOKENS {
            cache.insert(i128::from(n) << 64 | 0x5EED, ()).await;
        }
        cache.run_pending_tasks().await;
    });
    (before, resident_bytes())
}

/// Runs `part` of this bench in a fresh process, so neither part reuses the other's memory.
fn in_own_process(part: &str) -> (u64, u64) {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let output = Command::new(exe).env(PART, part).output().expect("the bench runs itself");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let (before, after) = stdout.trim().split_once(' ').expect("two numbers");
    (before.parse().expect("bytes"), after.parse().expect("bytes"))
}

/// The environment variable naming the part a child process runs.
const PART: &str = "TOWER_SOVENDUS_MEMORY_PART";

fn main() {
    match std::env::var(PART).as_deref() {
        Ok("store") => return print_pair(tokens()),
        Ok(part) if part.starts_with("moka_floor") => return print_pair(moka_floor(part)),
        _ => {}
    }
    if std::env::args().skip(1).any(|arg| arg == "--list") {
        return; // `cargo bench -- --list`: nothing to list.
    }
    let start = Instant::now();
    let (before, after) = in_own_process("store");
    let elapsed = start.elapsed();
    let per_token = (after - before) as f64 / f64::from(TOKENS);
    println!(
        "MokaTokenStore: {TOKENS} tokens captured in {elapsed:.1?}: resident {:.1} MiB -> {:.1} MiB, \
         {per_token:.0} bytes per token (target <= {TARGET_BYTES_PER_TOKEN})",
        mib(before),
        mib(after),
    );
    let mut floors = serde_json::Map::new();
    for (part, configuration) in MOKA_FLOORS {
        let (floor_before, floor_after) = in_own_process(part);
        let floor = (floor_after - floor_before) as f64 / f64::from(TOKENS);
        println!("moka's own floor, empty entries, {configuration}: {floor:.0} bytes per entry");
        floors.insert(part.to_owned(), floor.into());
    }
    let json = serde_json::json!({
        "tokens": TOKENS, "resident_before": before, "resident_after": after, "bytes_per_token": per_token,
        "moka_floor_bytes_per_entry": floors["moka_floor_expiry"], "moka_floors": floors,
    });
    support::write_result("memory", "tokens.json", &json);
}

fn print_pair((before, after): (u64, u64)) {
    println!("{before} {after}");
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}
