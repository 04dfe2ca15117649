//! What the benches share: the stacks the layer benches compare, running the measuring
//! programs some benches call (wrk, valgrind), and where results go for `benches/report.py`.
//! Each bench uses part of it.
#![allow(dead_code)]

use std::{path::PathBuf, process::Command, str::FromStr};

use axum::{Router, routing::get};
use tower::layer::util::Identity;
use tower_sessions::{MemoryStore, SessionManagerLayer};
use tower_sovendus::{SovendusConfig, SovendusLayer, sandbox::Sandbox};

/// A page without a token, with a query as shop pages have them.
pub const PLAIN: &str = "/products/42?color=red&size=m";

/// The shop's routes: one trivial handler. `with_state` turns handlers into routes once, as a
/// shop with state does, instead of on every request.
pub fn routes() -> Router {
    Router::new().route("/products/{id}", get(|| async { "product" })).with_state(())
}

/// `routes` inside tower-sessions' `SessionManagerLayer` (MemoryStore).
pub fn sessions(routes: Router) -> Router {
    routes.layer(SessionManagerLayer::new(MemoryStore::default()))
}

pub fn config() -> SovendusConfig {
    SovendusConfig::new("9bc72425-902c-3abf-9db8-8b186d7cb160", "XXXX-XXXXX").expect("valid config")
}

/// The stacks the layer benches compare differ only in the layer between the sessions and the
/// routes: [`SovendusLayer`] here, ...
pub fn sovendus() -> Router {
    sessions(routes().layer(SovendusLayer::new(config())))
}

/// ... tower's no-op layer (axum wraps every route for any layer, so this is the fair
/// baseline), ...
pub fn identity() -> Router {
    sessions(routes().layer(Identity::new()))
}

/// ... or none at all.
pub fn none() -> Router {
    sessions(routes())
}

/// A runtime for what is measured, and a sandbox keeping one call, on a runtime of its own
/// (one worker thread): Sovendus' side never takes a worker from the measured side. The sandbox
/// runtime is returned for the sandbox to live on.
pub fn runtimes_and_sandbox() -> (tokio::runtime::Runtime, tokio::runtime::Runtime, Sandbox) {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let sandbox = server.block_on(Sandbox::builder().keep_calls(1).start()).expect("a sandbox");
    (runtime, server, sandbox)
}

/// Serves `app` on a free loopback port, on the current runtime, for as long as it runs.
pub async fn serve_on_loopback(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("served") });
    addr
}

/// criterion's output folder: `target/criterion`, next to the bench binary's
/// `target/release/deps`.
pub fn criterion_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench binary's path");
    exe.ancestors().nth(3).expect("target/release/deps/NAME").join("criterion")
}

/// Writes `json` to `criterion/FOLDER/FILE`, next to criterion's own results.
pub fn write_result(folder: &str, file: &str, json: &serde_json::Value) {
    let dir = criterion_dir().join(folder);
    std::fs::create_dir_all(&dir).expect("criterion's folder is writable");
    std::fs::write(dir.join(file), json.to_string()).expect("criterion's folder is writable");
}

/// Runs `command` and returns what it printed, its standard output then its standard error;
/// or `None`, after a notice, when it cannot run or fails. `unmeasured` says what then goes
/// unmeasured.
pub fn output(command: &mut Command, unmeasured: &str) -> Option<String> {
    let program = command.get_program().to_string_lossy().into_owned();
    match command.output() {
        Ok(output) if output.status.success() => Some(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )),
        Ok(output) => {
            eprintln!("{program} failed: {}", String::from_utf8_lossy(&output.stderr));
            None
        }
        Err(error) => {
            eprintln!("{program} not run ({error}): {unmeasured}");
            None
        }
    }
}

/// The number after the first `marker` in `text`, or `None` after a notice.
pub fn number_after<T: FromStr>(text: &str, marker: &str) -> Option<T> {
    let after = text.lines().find_map(|line| line.split(marker).nth(1));
    let number = after.and_then(|number| number.trim().parse().ok());
    if number.is_none() {
        eprintln!("no number after {marker:?} in the output:\n{text}");
    }
    number
}
