//! The staff's console (feature `console`): an axum router the shop nests under a path of its
//! choice, behind its own auth, to see where the conversions stand and act on them.
//!
//! - **The overview**: counts per state, the age of the oldest owed conversion, why conversions
//!   are parked (Sovendus' answers, counted), this instance's delivery (its workers, the last
//!   call that got through, the last error), and a chart of conversions per day by state over
//!   30 or 90 days, drawn on the server as SVG.
//! - **Lists per state**, 50 a page, newest or oldest first, by product and by the days they
//!   were ordered, each page after the last one's cursor; **search** by order reference or token.
//! - **A conversion's page**: its order reference, product and whole token, its times (ordered,
//!   each of its last ten calls, next call, delivered), the last answer, and whether a delivery holds it now.
//! - **Actions** (admin only): retry one parked conversion, or all of them; send a dead one
//!   again (confirming it may be booked twice); void one not yet delivered, with an honest
//!   answer when a call may be out.
//! - **The invoice**: the conversions delivered between two days, as CSV (RFC 4180), to check
//!   Sovendus' commission invoice against; and the lists and the overview as JSON
//!   (`api/overview`, `api/conversions/{state}`) for the shop's own tools.
//!
//! | path | what |
//! |---|---|
//! | `/` | the overview (`?days=90` for the longer chart) |
//! | `/conversions/{state}` | a state's list: `order=oldest`, `product=`, `from=`, `until=` (days, `YYYY-MM-DD`), `after=` (a cursor) |
//! | `/search?q=` | the conversion of an order reference or a token |
//! | `/conversion/{id}` | a conversion; `POST .../retry`, `POST .../void` |
//! | `POST /parked/retry` | every parked conversion due now |
//! | `/invoice`, `/invoice.csv?from=&until=` | the export of the delivered ones |
//! | `/api/overview`, `/api/conversions/{state}` | JSON |
//!
//! # Access
//!
//! The console has no sign-in of its own. The shop's auth, in front of it, puts a [`Staff`]
//! into each request's extensions: [`Staff::read_only`] may look, [`Staff::admin`] may act too.
//! A request without one is refused (403), so a console mounted without auth shows nothing. Every
//! action is logged at INFO with the actor the shop named; every refusal at WARN.
//!
//! **Cross-site requests.** A POST is taken only when the browser says it comes from the
//! console's own origin: `Sec-Fetch-Site: same-origin`, or, from a browser without fetch
//! metadata, an `Origin` matching the `Host`. Anything else gets a page saying why, and changes
//! nothing. A read-only account's POST is refused the same way.
//!
//! **What it shows.** The API key never. Tokens are masked in lists and the JSON (their first 8
//! characters) and whole on a conversion's page and in the export, which staff need to answer
//! Sovendus. Order references and Sovendus' answers are escaped. Every answer carries a strict
//! `Content-Security-Policy` (no script at all, the console's own stylesheet only, no framing)
//! and `Cache-Control: no-store`; nothing is fetched from elsewhere, so it works offline.
//!
//! **Retention.** The invoice can only list what the store still keeps: delivered conversions are
//! kept for [`keep_settled_for`](crate::DeliverySchedule::keep_settled_for), 90 days by default,
//! so last month's invoice can always be checked. That costs about 360 bytes a conversion on
//! SQLite and 670 on Postgres, indexes included (the repository's `benches/console.rs`): a shop
//! booking 1,000 conversions a day keeps about 32 MB on SQLite, 60 MB on Postgres.
//!
//! **Speed.** Lists read one range of an index, a page at a time, however long the list. The
//! overview counts every state, which reads an index as long as the table: staff looking at
//! once share one count for up to ten seconds (an action counts again), and the chart reads the
//! days before yesterday once in five minutes. With 100,000 conversions on two cores, an
//! overview takes 15 ms at the median (35 to 80 ms when it counts, 130 to 190 ms the first time),
//! a list page 2 to 4 ms.
//!
//! ```
//! use axum::{Router, extract::Request, middleware::{self, Next}, response::{IntoResponse, Response}};
//! use http::StatusCode;
//! use tower_sovendus::{SovendusConfig, SovendusLayer, console::{self, Staff}};
//!
//! /// The shop's own sign-in decides who this is and what they may do; here, a header set by
//! /// the single sign-on proxy in front of the shop.
//! async fn staff_only(mut request: Request, next: Next) -> Response {
//!     let staff = match request.headers().get("x-sso-user").and_then(|user| user.to_str().ok()) {
//!         Some("ops@shop.example") => Staff::admin("ops@shop.example"),
//!         Some(user) => Staff::read_only(user),
//!         None => return StatusCode::UNAUTHORIZED.into_response(),
//!     };
//!     request.extensions_mut().insert(staff);
//!     next.run(request).await
//! }
//!
//! # fn main() -> Result<(), tower_sovendus::ConfigError> {
//! let sovendus = SovendusLayer::new(SovendusConfig::new("product-a", "XXXX-XXXXX")?);
//! let staff = console::router(sovendus.delivery()).layer(middleware::from_fn(staff_only));
//! let app: Router = Router::new().nest("/console", staff);
//! # Ok(()) }
//! ```

mod actions;
mod chart;
mod days;
mod detail;
mod filters;
mod guard;
mod invoice;
mod json;
mod list;
mod overview;
mod page;
mod refusal;
mod staff;

use axum::{
    Router, middleware,
    routing::{get, post},
};
use http::header::CONTENT_TYPE;

use self::days::Console;
pub use self::{refusal::Refusal, staff::Staff};
use crate::Delivery;

/// The console's stylesheet: its only resource.
const STYLE: &str = include_str!("style.css");

/// The console of `delivery`'s conversions, to nest under a path of the shop's (see the
/// [module](self)): every route refuses a request without [`Staff`].
pub fn router(delivery: Delivery) -> Router {
    Router::new()
        .route("/", get(overview::show))
        .route("/style.css", get(|| async { ([(CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }))
        .route("/search", get(list::search))
        .route("/conversions/{state}", get(list::show))
        .route("/conversion/{id}", get(detail::show))
        .route("/conversion/{id}/retry", post(actions::retry))
        .route("/conversion/{id}/void", post(actions::void))
        .route("/parked/retry", post(actions::retry_all_parked))
        .route("/invoice", get(invoice::show))
        .route("/invoice.csv", get(invoice::csv))
        .route("/api/overview", get(json::overview))
        .route("/api/conversions/{state}", get(json::list))
        .fallback(|| async { Refusal::NotFound("no such page in the console".to_owned()) })
        .layer(middleware::from_fn(guard::guard))
        .with_state(days::Console::new(delivery))
}
