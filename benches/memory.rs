//! Resident memory per stored token: fills the layer's cache with 1,000,000 tokens of the real
//! shape, each captured through the layer by a landing request, and reads the process's
//! resident set size (`VmRSS` in `/proc/self/status`, Linux) before and after.
//!
//! The sessions go to a store that keeps nothing, so what grows is the token cache alone: the
//! token, its key, its deadline, its lease slot and the cache's own bookkeeping.
//!
//! ```text
//! cargo bench --bench memory
//! ```

use std::{path::PathBuf, time::Instant};

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
const TARGET_BYTES_PER_TOKEN: f64 = 300.0;

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

/// criterion's output folder: `target/criterion`, next to this binary's `target/release/deps`.
fn criterion_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench binary's path");
    exe.ancestors().nth(3).expect("target/release/deps/NAME").join("criterion")
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

fn main() {
    if std::env::args().skip(1).any(|arg| arg == "--list") {
        return; // `cargo bench -- --list`: nothing to list.
    }
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let config = SovendusConfig::builder("9bc72425-902c-3abf-9db8-8b186d7cb160", "XXXX-XXXXX")
        .max_tokens(u64::from(TOKENS))
        .build()
        .expect("valid config");
    let layer = SovendusLayer::new(config);
    let mut app = Router::new()
        .route("/products/{id}", get(|| async { "product" }))
        .layer(layer.clone())
        .layer(SessionManagerLayer::new(Forgetful));

    let before = resident_bytes();
    let start = Instant::now();
    runtime.block_on(fill(&mut app));
    let elapsed = start.elapsed();
    let after = resident_bytes();

    let per_token = (after - before) as f64 / f64::from(TOKENS);
    println!(
        "{TOKENS} tokens captured in {elapsed:.1?}: resident {:.1} MiB -> {:.1} MiB, \
         {per_token:.0} bytes per token (target <= {TARGET_BYTES_PER_TOKEN})",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
    );
    let dir = criterion_dir().join("memory");
    std::fs::create_dir_all(&dir).expect("criterion's folder is writable");
    let json = serde_json::json!({
        "tokens": TOKENS, "resident_before": before, "resident_after": after, "bytes_per_token": per_token,
    });
    std::fs::write(dir.join("tokens.json"), json.to_string()).expect("writable");
    drop(layer);
}
