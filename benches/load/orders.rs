//! The order load test's visitors (`benches/load/orders.sh`): `VISITORS` at once order from the
//! demo shop at `SHOP_URL`, in rounds of `SECONDS_PER_ROUND` that alternate visitors from
//! Sovendus, each with a token of their own, and visitors without one, `ROUNDS` pairs of them.
//! Prints each kind's orders per second and their ratio (the median of the pairs' ratios, and
//! their range), then checks the run: every answer was a successful order's, and the shop's
//! embedded sandbox booked every token exactly once. A failed check exits with an error; a run
//! that passes writes its figures to `RESULTS`, if set.
//!
//! ```text
//! cargo build --release --example shop --example load-orders
//! SHOP_ADDR=127.0.0.1:39127 SHOP_DATABASE_URL='sqlite://shop.db?mode=rwc' target/release/examples/shop &
//! SHOP_URL=http://127.0.0.1:39127 ROUNDS=3 target/release/examples/load-orders
//! ```
//!
//! A visitor lands on the home page (with `?sovReqToken=...` from Sovendus), puts a product in
//! the cart, opens the checkout and orders, each redirect followed as a browser does: six
//! requests on one session cookie. Visitors share one cookie-less client, each keeping their
//! own cookie, and a new visitor comes as soon as one has ordered. A round lasts until the
//! last visitor who came before its end has ordered. Then the shop's delivery is left to
//! deliver what is still owed, so that a round of visitors with tokens leaves no work to the
//! next, and the calls the sandbox received are read. The rounds of a pair take turns at going
//! first, after a round of each kind that warms the shop up.

use std::{
    collections::BTreeMap,
    str::FromStr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use http::{
    StatusCode,
    header::{COOKIE, LOCATION, SET_COOKIE},
};
use serde_json::json;

/// The product a visitor puts in the cart (the walking boots).
const PRODUCT: &str = "1";
/// How long the delivery may take to deliver what a round left owed.
const DRAIN_WITHIN: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Visitors from Sovendus, each with a token of their own.
    With,
    /// Visitors without a token.
    Without,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::With => "with",
            Kind::Without => "without",
        }
    }
}

/// The run's settings, from the environment.
struct Settings {
    shop: String,
    rounds: usize,
    seconds: u64,
    visitors: usize,
    results: Option<String>,
    store: String,
}

fn setting<T: FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(value) => value.parse().map_err(|_| format!("{name} must be a number, not {value}")),
        Err(_) => Ok(default),
    }
}

impl Settings {
    fn from_env() -> Result<Self, String> {
        Ok(Self {
            shop: std::env::var("SHOP_URL").unwrap_or_else(|_| "http://127.0.0.1:39127".to_owned()),
            rounds: setting("ROUNDS", 6)?,
            seconds: setting("SECONDS_PER_ROUND", 5)?,
            visitors: setting("VISITORS", 16)?,
            results: std::env::var("RESULTS").ok(),
            store: std::env::var("STORE").unwrap_or_else(|_| "the shop's store".to_owned()),
        })
    }
}

/// What the shop answered a request.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    page: String,
}

/// One visitor: their session cookie, on the shared client.
struct Visitor<'a> {
    client: &'a reqwest::Client,
    shop: &'a str,
    cookie: Option<String>,
}

impl Visitor<'_> {
    /// Sends `request` with the visitor's cookie, and keeps the cookie the shop sets.
    async fn send(&mut self, what: &str, request: reqwest::RequestBuilder) -> Result<Answer, String> {
        let request = match &self.cookie {
            Some(cookie) => request.header(COOKIE, cookie),
            None => request,
        };
        let response = request.send().await.map_err(|error| format!("{what}: {error}"))?;
        if let Some(cookie) = response.headers().get(SET_COOKIE) {
            let cookie = cookie.to_str().map_err(|_| format!("{what}: a cookie that is not text"))?;
            self.cookie = cookie.split(';').next().map(str::to_owned);
        }
        let status = response.status();
        let location = response.headers().get(LOCATION).and_then(|to| to.to_str().ok()).map(str::to_owned);
        let page = response.text().await.map_err(|error| format!("{what}: {error}"))?;
        Ok(Answer { status, location, page })
    }

    /// `GET path`, which must answer 200 with a page that says `says`.
    async fn page(&mut self, path: &str, says: &str) -> Result<String, String> {
        let answer = self.send(path, self.client.get(format!("{}{path}", self.shop))).await?;
        if answer.status != StatusCode::OK || !answer.page.contains(says) {
            return Err(format!("GET {path}: {} without {says:?}: {}", answer.status, answer.page));
        }
        Ok(answer.page)
    }

    /// Posts `form` to `path`, which must redirect (303) to a path starting with `to`; follows
    /// the redirect to a page that says `says`.
    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        to: &str,
        says: &str,
    ) -> Result<String, String> {
        let request = self.client.post(format!("{}{path}", self.shop)).form(form);
        let answer = self.send(path, request).await?;
        match answer.location {
            Some(location) if answer.status == StatusCode::SEE_OTHER && location.starts_with(to) => {
                self.page(&location, says).await
            }
            location => Err(format!(
                "POST {path}: {} to {location:?}, not a redirect to {to}: {}",
                answer.status, answer.page
            )),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// A visitor lands (from Sovendus with `token`, if given), puts a product in the cart and orders;
/// returns when the order was posted and when its answer came (milliseconds since the epoch):
/// the order committed in between.
async fn visit(client: &reqwest::Client, shop: &str, token: Option<&str>) -> Result<(i64, i64), String> {
    let mut visitor = Visitor { client, shop, cookie: None };
    match token {
        Some(token) => visitor.page(&format!("/?sovReqToken={token}"), "You came from Sovendus").await?,
        None => visitor.page("/", "No Sovendus token for this visit.").await?,
    };
    visitor.post("/cart", &[("product", PRODUCT)], "/cart", "Go to checkout").await?;
    visitor.page("/checkout", "Place order").await?;
    let said = match token {
        Some(_) => "Sovendus conversion on its way.",
        None => "No Sovendus conversion for this order.",
    };
    let posted = now_ms();
    visitor.post("/order", &[("shipping", "standard")], "/thank-you/", said).await?;
    Ok((posted, now_ms()))
}

/// What the visitors did: their orders, the tokens they ordered with, what failed.
#[derive(Default)]
struct Tally {
    orders: usize,
    tokens: Vec<String>,
    /// When each token's order was posted, and when its answer came.
    ordered: BTreeMap<String, (i64, i64)>,
    failures: Vec<String>,
}

/// One round, `name` (in its tokens): `visitors` at once, a new one as soon as one has ordered,
/// until `seconds` passed. Returns the orders a second, and adds what happened to `tally`.
async fn load_round(
    client: &reqwest::Client,
    settings: &Settings,
    kind: Kind,
    name: &str,
    tally: &Arc<Mutex<Tally>>,
) -> f64 {
    let started = Instant::now();
    let end = started + Duration::from_secs(settings.seconds);
    let mut visitors = tokio::task::JoinSet::new();
    for visitor in 0..settings.visitors {
        let (client, shop, tally) = (client.clone(), settings.shop.clone(), Arc::clone(tally));
        let name = name.to_owned();
        visitors.spawn(async move {
            let mut orders = 0;
            for n in 0.. {
                if Instant::now() >= end {
                    break;
                }
                let token = (kind == Kind::With).then(|| format!("load-orders-{name}-{visitor:03}-{n:06}"));
                let visited = visit(&client, &shop, token.as_deref()).await;
                let mut tally = tally.lock().expect("the tally");
                match visited {
                    Ok(times) => {
                        orders += 1;
                        tally.orders += 1;
                        if let Some(token) = token {
                            tally.ordered.insert(token.clone(), times);
                            tally.tokens.push(token);
                        }
                    }
                    Err(failure) => tally.failures.push(failure),
                }
            }
            orders
        });
    }
    let mut orders = 0;
    while let Some(placed) = visitors.join_next().await {
        orders += placed.expect("a visitor's task");
    }
    orders as f64 / started.elapsed().as_secs_f64()
}

/// The conversion counts on the shop's sandbox page: owed, parked, dead, delivered, voided.
async fn counts(client: &reqwest::Client, shop: &str) -> Result<BTreeMap<String, usize>, String> {
    let page = sandbox_page(client, shop).await?;
    let line = between(&page, "<p id=counts>", "</p>").ok_or("no counts on the sandbox page")?;
    line.split(", ")
        .map(|count| {
            let (state, number) = count.split_once(' ').ok_or(format!("counts: {line}"))?;
            Ok((state.to_owned(), number.parse().map_err(|_| format!("counts: {line}"))?))
        })
        .collect()
}

async fn sandbox_page(client: &reqwest::Client, shop: &str) -> Result<String, String> {
    let answer = client.get(format!("{shop}/sandbox")).send().await.map_err(|error| error.to_string())?;
    if answer.status() != StatusCode::OK {
        return Err(format!("/sandbox answered {}", answer.status()));
    }
    answer.text().await.map_err(|error| error.to_string())
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let after = text.split_once(start)?.1;
    Some(after.split_once(end)?.0)
}

/// Waits until the shop owes no conversion; returns how many it owed when asked first.
async fn drained(client: &reqwest::Client, shop: &str) -> Result<usize, String> {
    let deadline = Instant::now() + DRAIN_WITHIN;
    let owed_at_first = counts(client, shop).await?["owed"];
    loop {
        let counts = counts(client, shop).await?;
        if counts["owed"] == 0 {
            return Ok(owed_at_first);
        }
        if Instant::now() >= deadline {
            return Err(format!("still owed after {DRAIN_WITHIN:?}: {counts:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The calls the shop's sandbox received, read after every round: its page lists the latest
/// 10,000 (`Sandbox::CALLS_KEPT`), far more than a round makes.
#[derive(Default)]
struct Bookings {
    /// How many calls the sandbox had received at the last read.
    read: usize,
    /// What the sandbox answered each call, by token.
    answers: BTreeMap<String, Vec<String>>,
    /// When the sandbox received each token's first call, in milliseconds since the epoch.
    received: BTreeMap<String, i64>,
}

impl Bookings {
    /// Reads the calls the sandbox received since the last read.
    async fn read(&mut self, client: &reqwest::Client, shop: &str) -> Result<(), String> {
        let page = sandbox_page(client, shop).await?;
        // Each call's row: `<tr><td>POST</td><td><code>/ext/{product}/{token}/api</code></td>
        // <td>200 OK</td></tr>`, the oldest first.
        let mut calls = Vec::new();
        for row in page.split("<code>/ext/").skip(1) {
            let token = between(row, "/", "/api</code>").ok_or_else(|| format!("a call's row: {row}"))?;
            let answer = between(row, "<td>", "</td>").ok_or_else(|| format!("a call's row: {row}"))?;
            let received = between(row, "data-ms=", ">").and_then(|ms| ms.parse::<i64>().ok());
            let received = received.ok_or_else(|| format!("a call's row without its time: {row}"))?;
            calls.push((token, answer, received));
        }
        // "Every call", or "The latest 10000 of the 12345 calls".
        let received = match between(&page, " of the ", " calls") {
            Some(received) => received.parse().map_err(|_| format!("calls received: {received}"))?,
            None => calls.len(),
        };
        let new = received - self.read;
        if new > calls.len() {
            return Err(format!("{new} calls since the last read, more than the sandbox keeps"));
        }
        for (token, answer, received) in &calls[calls.len() - new..] {
            self.answers.entry((*token).to_owned()).or_default().push((*answer).to_owned());
            self.received.entry((*token).to_owned()).or_insert(*received);
        }
        self.read = received;
        Ok(())
    }

    /// Every token the visitors ordered with was booked exactly once: one call, answered 200,
    /// and no other call; the store, `counts`, delivered them all and holds nothing else.
    fn check(&mut self, tokens: &[String], counts: BTreeMap<String, usize>) -> Result<(), String> {
        let mut wrong = Vec::new();
        for token in tokens {
            match self.answers.remove(token) {
                Some(answers) if answers == ["200 OK"] => {}
                Some(answers) => wrong.push(format!("{token}: called {} times: {answers:?}", answers.len())),
                None => wrong.push(format!("{token}: never called")),
            }
        }
        for (token, answers) in std::mem::take(&mut self.answers) {
            wrong.push(format!("{token}: called for no order: {answers:?}"));
        }
        let expected = BTreeMap::from(
            [("owed", 0), ("parked", 0), ("dead", 0), ("delivered", tokens.len()), ("voided", 0)]
                .map(|(state, count)| (state.to_owned(), count)),
        );
        if counts != expected {
            wrong.push(format!("the store's conversions: {counts:?}, not {expected:?}"));
        }
        if wrong.is_empty() {
            return Ok(());
        }
        let shown = wrong.iter().take(20).cloned().collect::<Vec<_>>().join("\n  ");
        Err(format!("{} bookings wrong, of {} tokens:\n  {shown}", wrong.len(), tokens.len()))
    }
}

/// How long after its order's commit each token's call reached the sandbox, in milliseconds,
/// sorted: at most from the order's post, at least from its answer.
fn call_delays(
    ordered: &BTreeMap<String, (i64, i64)>,
    received: &BTreeMap<String, i64>,
) -> (Vec<i64>, Vec<i64>) {
    let (mut at_most, mut at_least): (Vec<i64>, Vec<i64>) = ordered
        .iter()
        .filter_map(|(token, (posted, answered))| received.get(token).map(|at| (at - posted, at - answered)))
        .unzip();
    at_most.sort_unstable();
    at_least.sort_unstable();
    (at_most, at_least)
}

/// The `share` quantile of `sorted` (nearest rank).
fn quantile(sorted: &[i64], share: f64) -> i64 {
    let rank = ((share * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or_default()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 { sorted[middle] } else { (sorted[middle - 1] + sorted[middle]) / 2.0 }
}

/// A run against one shop.
struct Run {
    settings: Settings,
    client: reqwest::Client,
    tally: Arc<Mutex<Tally>>,
    bookings: Bookings,
}

impl Run {
    /// A round of `kind`, `name`; then waits for the delivery, and reads the sandbox's calls.
    /// Returns the orders a second.
    async fn round(&mut self, kind: Kind, name: &str) -> Result<f64, String> {
        let rate = load_round(&self.client, &self.settings, kind, name, &self.tally).await;
        let owed = drained(&self.client, &self.settings.shop).await?;
        self.bookings.read(&self.client, &self.settings.shop).await?;
        println!("  {name} {:<7} {rate:6.1} orders/s; {owed} conversions owed at its end", kind.name());
        Ok(rate)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "orders on {}: {} pairs of rounds of {} s, {} visitors at once; load average: {}",
        settings.store,
        settings.rounds,
        settings.seconds,
        settings.visitors,
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let mut run = Run { settings, client, tally: Arc::default(), bookings: Bookings::default() };
    // A round of each kind first, not counted: the shop opens its database connections and
    // fills its caches.
    run.round(Kind::With, "warm-up").await?;
    run.round(Kind::Without, "warm-up").await?;
    let (mut with, mut without, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 1..=run.settings.rounds {
        // The kind that goes first takes turns, which cancels any edge of going first.
        let kinds = if pair % 2 == 1 { [Kind::With, Kind::Without] } else { [Kind::Without, Kind::With] };
        for kind in kinds {
            let rate = run.round(kind, &format!("round-{pair:02}")).await?;
            match kind {
                Kind::With => with.push(rate),
                Kind::Without => without.push(rate),
            }
        }
        ratios.push(with[pair - 1] / without[pair - 1]);
        println!("pair {pair}: with / without {:.3}", ratios[pair - 1]);
    }
    let (low, high) = ratios.iter().fold((f64::MAX, f64::MIN), |(low, high), r| (low.min(*r), high.max(*r)));
    let ratio = median(&ratios);
    let store = &run.settings.store;
    println!(
        "{store}: with a token {:.1} orders/s, without {:.1} orders/s (medians); with / without {ratio:.3} \
         (median of {} pairs, range {low:.3} to {high:.3})",
        median(&with),
        median(&without),
        ratios.len()
    );

    // The checks: every answer was a successful order's, every token booked once.
    let tally = std::mem::take(&mut *run.tally.lock().expect("the tally"));
    if !tally.failures.is_empty() {
        for failure in tally.failures.iter().take(10) {
            eprintln!("failed: {failure}");
        }
        let visits = tally.orders + tally.failures.len();
        return Err(format!("{} of {visits} visits failed", tally.failures.len()).into());
    }
    let counts = counts(&run.client, &run.settings.shop).await?;
    run.bookings.check(&tally.tokens, counts)?;
    println!(
        "checked: {} orders, every answer a successful order's; {} tokens, each booked exactly once",
        tally.orders,
        tally.tokens.len()
    );
    let (at_most, at_least) = call_delays(&tally.ordered, &run.bookings.received);
    let (p50, p99, max) = (quantile(&at_most, 0.5), quantile(&at_most, 0.99), quantile(&at_most, 1.0));
    println!(
        "from an order's commit to its call at the sandbox: p50 {p50} ms, p99 {p99} ms, max {max} ms \
         (counted from the order's post, an upper bound; from its answer: p50 {} ms, p99 {} ms)",
        quantile(&at_least, 0.5),
        quantile(&at_least, 0.99)
    );
    if let Some(results) = &run.settings.results {
        let results_json = json!({
            "store": store, "rounds": run.settings.rounds, "seconds_per_round": run.settings.seconds,
            "visitors": run.settings.visitors, "with": with, "without": without, "ratios": ratios,
            "ratio": ratio, "ratio_low": low, "ratio_high": high, "orders": tally.orders,
            "tokens": tally.tokens.len(), "call_delay_p50_ms": p50, "call_delay_p99_ms": p99,
            "call_delay_max_ms": max,
        });
        std::fs::write(results, results_json.to_string())?;
    }
    Ok(())
}
