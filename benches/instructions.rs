//! The hot path counted in instructions instead of seconds: callgrind counts what one request
//! without a token costs on each stack of the `layer` bench's hot path. The counts stay the
//! same from run to run whatever else the machine does, where times move by several percent.
//!
//! The bench runs itself under `valgrind --tool=callgrind` for each stack, serving 1,000
//! requests and then 11,000: the difference over 10,000 is one request's cost, start-up
//! cancelled. Every run builds all the stacks and serves one, so that each starts from the
//! same heap. Skipped with a notice when valgrind is not installed.
//!
//! ```text
//! cargo bench --bench instructions
//! ```

mod support;

use std::process::Command;

use axum::{body::Body, extract::Request};
use tower::ServiceExt;

const STACKS: [&str; 3] = ["sovendus", "identity", "none"];
/// Requests served in the short and the long run.
const FEW: u64 = 1_000;
const MANY: u64 = 11_000;

/// Serves `requests` plain pages on `stack`, in this process.
fn serve(stack: &str, requests: u64) {
    let apps = [support::sovendus(), support::identity(), support::none()];
    let index = STACKS.iter().position(|name| *name == stack).expect("a known stack");
    let app = &apps[index];
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(async {
        for _ in 0..requests {
            let request =
                Request::builder().uri(support::PLAIN).body(Body::empty()).expect("a valid request");
            let response = app.clone().oneshot(request).await.expect("routers never fail");
            assert!(response.status().is_success(), "{}", response.status());
        }
    });
}

/// Instructions this bench executes serving `requests` on `stack`, as callgrind counts them,
/// or `None` (with a notice) when valgrind cannot run.
fn instructions(stack: &str, requests: u64) -> Option<u64> {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let mut valgrind = Command::new("valgrind");
    valgrind.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"]).arg(exe);
    valgrind.args(["--serve", stack, &requests.to_string()]);
    let output = support::output(&mut valgrind, "instructions are not counted")?;
    // callgrind ends with "==PID== Collected : N".
    support::number_after(&output, "Collected :")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, stack, requests] = args.as_slice() {
        if flag == "--serve" {
            serve(stack, requests.parse().expect("a number of requests"));
            return;
        }
    }
    // `cargo bench -- FILTER` and `--list` run only what they name.
    if !args.iter().all(|arg| arg == "--bench") {
        return;
    }
    let mut per_request = serde_json::Map::new();
    for stack in STACKS {
        let (Some(few), Some(many)) = (instructions(stack, FEW), instructions(stack, MANY)) else { return };
        let cost = (many - few) as f64 / (MANY - FEW) as f64;
        println!("hot path, {stack}: {cost:.0} instructions per request");
        per_request.insert(stack.to_owned(), cost.into());
    }
    support::write_result("instructions", "hot_path.json", &per_request.into());
}
