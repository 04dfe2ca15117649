//! The layer's cost per request, in process: the hot path (no token) and the capture path
//! (a landing with a token), each against baselines measured in the same group.
//!
//! Every stack is an axum router with one trivial handler inside tower-sessions'
//! `SessionManagerLayer` (MemoryStore); only the layer in between changes (see `support`):
//!
//! - `sovendus`: [`SovendusLayer`];
//! - `identity`: tower's `Identity`, since axum wraps every route for any layer;
//! - `none`: no layer at all;
//! - `from_fn`: the integration guide's pattern written as axum middleware: parse the query
//!   into a map and put the token in the session.
//!
//! criterion times each stack; then the stacks are timed again interleaved, block by block,
//! for the ratios (see [`interleaved`]). Every landing carries a fresh token.
//!
//! ```text
//! cargo bench --bench layer
//! python3 benches/report.py   # ratios into BENCHMARKS.md, and the chart
//! ```

mod support;

use std::{
    borrow::Cow,
    collections::HashMap,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::Request,
    middleware::{Next, from_fn},
    response::Response,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::header::{COOKIE, SET_COOKIE};
use support::{PLAIN, identity, none, routes, sessions, sovendus};
use tokio::runtime::Runtime;
use tower::ServiceExt;
use tower_sessions::Session;

/// Requests per block, and blocks per stack, of the interleaved timing.
const BLOCK: u64 = 100;
const BLOCKS: usize = 1000;

/// The `n`-th landing from Sovendus on the same page: a fresh token of the real shape
/// (`1095752fb409-457a-af14-17a09e6be522`), since every click on Sovendus makes a new one.
fn landing(n: u64) -> Cow<'static, str> {
    format!("/products/42?color=red&size=m&sovReqToken=1095752fb409-457a-af14-{n:012x}").into()
}

/// The integration guide's capture, as a shop would write it without this crate.
async fn guide_capture(session: Session, request: Request, next: Next) -> Response {
    let query = request.uri().query().unwrap_or_default();
    let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    if let Some(token) = params.get("sovReqToken") {
        if let Err(error) = session.insert("sovReqToken", token).await {
            tracing::error!(%error, "could not store the Sovendus token");
        }
    }
    next.run(request).await
}

fn guide() -> Router {
    sessions(routes().layer(from_fn(guide_capture)))
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}

fn request(uri: &str, cookie: Option<&str>) -> Request {
    let mut request = Request::builder().uri(uri);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.body(Body::empty()).expect("a valid request")
}

/// Serves one request with a clone of `app` (an `Arc` clone) and checks it succeeded.
async fn serve(app: Router, request: Request) -> Response {
    let response = app.oneshot(request).await.expect("routers never fail");
    assert!(response.status().is_success(), "{}", response.status());
    response
}

/// One stack of a group: its name, its router and the session cookie its visitor sends.
struct Stack {
    name: &'static str,
    app: Router,
    cookie: Option<String>,
}

impl Stack {
    fn new(name: &'static str, app: Router) -> Self {
        Self { name, app, cookie: None }
    }

    /// The same stack with a returning visitor: a session made by one landing.
    fn with_session(mut self) -> Self {
        let response = runtime().block_on(serve(self.app.clone(), request(&landing(0), None)));
        let cookie = response.headers().get(SET_COOKIE).expect("a landing starts a session");
        let cookie = cookie.to_str().expect("an ASCII cookie");
        self.cookie = Some(cookie.split(';').next().expect("name=value first").to_owned());
        self
    }
}

/// Benches every stack with criterion (`GROUP/STACK`, absolute times), then times them
/// interleaved (see [`interleaved`]); `uri(n)` is the `n`-th request's URI.
fn measure(c: &mut Criterion, group: &str, stacks: &[Stack], uri: impl Fn(u64) -> Cow<'static, str>) {
    let runtime = runtime();
    let mut criterion_group = c.benchmark_group(group);
    criterion_group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let mut n = 0;
    for Stack { name, app, cookie } in stacks {
        criterion_group.bench_with_input(BenchmarkId::from_parameter(name), cookie, |b, cookie| {
            b.to_async(&runtime).iter(|| {
                n += 1;
                serve(app.clone(), request(&uri(n), cookie.as_deref()))
            })
        });
    }
    criterion_group.finish();
    // `cargo bench -- FILTER` and `--list` run only what they name; the ratios go with a full run.
    if std::env::args().skip(1).all(|arg| arg == "--bench") {
        interleaved(&runtime, group, stacks, |i| uri(n + i));
    }
}

/// Times blocks of [`BLOCK`] requests on each stack in turn (the first stack changing from
/// block to block), [`BLOCKS`] times over, and writes each stack's time per request per block
/// to `criterion/interleaved/GROUP.json`. A burst of load from elsewhere on the machine lasts
/// far longer than a block, so it hits neighbouring blocks of every stack alike:
/// `benches/report.py` takes the median over blocks of the ratio between two stacks' blocks.
fn interleaved(runtime: &Runtime, group: &str, stacks: &[Stack], uri: impl Fn(u64) -> Cow<'static, str>) {
    let mut times = vec![Vec::with_capacity(BLOCKS); stacks.len()];
    let mut n = 0;
    for block in 0..BLOCKS {
        for turn in 0..stacks.len() {
            let index = (block + turn) % stacks.len();
            let Stack { app, cookie, .. } = &stacks[index];
            let start = Instant::now();
            runtime.block_on(async {
                for _ in 0..BLOCK {
                    n += 1;
                    serve(app.clone(), request(&uri(n), cookie.as_deref())).await;
                }
            });
            times[index].push(start.elapsed().as_secs_f64() * 1e9 / BLOCK as f64);
        }
    }
    let json: serde_json::Map<_, _> =
        stacks.iter().zip(times).map(|(stack, times)| (stack.name.to_owned(), times.into())).collect();
    support::write_result("interleaved", &format!("{group}.json"), &json.into());
}

fn hot_path(c: &mut Criterion) {
    let stacks = [
        Stack::new("sovendus", sovendus()),
        Stack::new("identity", identity()),
        Stack::new("none", none()),
        Stack::new("from_fn", guide()),
    ];
    measure(c, "hot_path", &stacks, |_| PLAIN.into());
}

fn capture_path(c: &mut Criterion) {
    let stacks = [Stack::new("sovendus", sovendus()), Stack::new("from_fn", guide())];
    measure(c, "capture_new_visitor", &stacks, landing);
    let stacks =
        [Stack::new("sovendus", sovendus()).with_session(), Stack::new("from_fn", guide()).with_session()];
    measure(c, "capture_existing_session", &stacks, landing);
}

criterion_group!(benches, hot_path, capture_path);
criterion_main!(benches);
