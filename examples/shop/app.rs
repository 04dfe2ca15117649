//! The demo shop's routes and pages, kept apart from `main` so tests can serve the same shop.

#[path = "orders.rs"]
mod orders;

use std::{collections::BTreeMap, sync::Arc, time::SystemTime};

use axum::{
    Form, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use tower::ServiceBuilder;
use tower_sessions::{Session, SessionManagerLayer, SessionStore, cookie::SameSite};
use tower_sovendus::{
    Delivery, OrderRef, SovendusConversion, SovendusLayer, VoidOutcome,
    sandbox::Sandbox,
    store::{Conversion, ConversionState, ListQuery, StoreError},
};

use self::orders::{NewOrder, Order, Placed};
pub use self::orders::{Orders, Stock};

/// What the shop sells: ID, name, price and initial stock. The map is a limited edition, to
/// sell out.
const CATALOG: &[(u32, &str, &str, i64)] = &[
    (1, "Walking boots", "49.90", 100),
    (2, "Wool socks", "9.90", 100),
    (3, "Rain jacket", "89.00", 100),
    (4, "Signed trail map", "19.00", 3),
];

/// The session key of the visitor's latest order, for a repeated click on "order".
const LAST_ORDER: &str = "last_order";

/// How many orders the order list shows.
const LISTED_ORDERS: i64 = 100;

#[derive(Clone)]
struct Shop {
    sandbox: Option<Arc<Sandbox>>,
    delivery: Delivery,
    orders: Orders,
}

/// The whole shop, its orders in memory: its pages behind `sovendus` inside `sessions`, in one
/// `layer` call (axum then wraps each route once, not once per layer).
#[allow(dead_code, reason = "the tests' and the load test's shop; `main` keeps its orders in a database")]
pub fn router<S>(
    sovendus: SovendusLayer,
    sessions: SessionManagerLayer<S>,
    sandbox: Option<Arc<Sandbox>>,
) -> Router
where
    S: SessionStore + Clone,
{
    router_with(Orders::in_memory(&Stock::default()), sovendus, sessions, sandbox)
}

/// The whole shop with `orders`.
pub fn router_with<S>(
    orders: Orders,
    sovendus: SovendusLayer,
    sessions: SessionManagerLayer<S>,
    sandbox: Option<Arc<Sandbox>>,
) -> Router
where
    S: SessionStore + Clone,
{
    pages_with(orders, sovendus.delivery(), sandbox)
        .layer(ServiceBuilder::new().layer(sessions).layer(sovendus))
}

/// The session layer of the demo: `SameSite=Lax`, so that the click-through from Sovendus
/// keeps the visitor's session. `secure_cookie` should be `true` in production (HTTPS); the
/// demo serves plain HTTP.
pub fn sessions<S: SessionStore>(
    store: S,
    same_site: SameSite,
    secure_cookie: bool,
) -> SessionManagerLayer<S> {
    SessionManagerLayer::new(store).with_same_site(same_site).with_secure(secure_cookie)
}

/// The shop's pages, its orders in memory, without any layer; `delivery` is the Sovendus
/// layer's.
#[allow(dead_code, reason = "the load test's shop; `main` keeps its orders in a database")]
pub fn pages(delivery: Delivery, sandbox: Option<Arc<Sandbox>>) -> Router {
    pages_with(Orders::in_memory(&Stock::default()), delivery, sandbox)
}

/// The shop's pages with `orders`, without any layer.
pub fn pages_with(orders: Orders, delivery: Delivery, sandbox: Option<Arc<Sandbox>>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/products/{id}", get(product))
        .route("/cart", get(cart).post(add_to_cart))
        .route("/login", get(login_form).post(login))
        .route("/checkout", get(checkout))
        .route("/order", post(order))
        .route("/thank-you/{reference}", get(thank_you))
        .route("/orders", get(order_list))
        .route("/orders/{reference}", get(order_page))
        .route("/orders/{reference}/cancel", post(cancel))
        .route("/sandbox", get(sandbox_log))
        .route("/sandbox/retry-parked", post(retry_parked))
        .with_state(Shop { sandbox, delivery, orders })
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{title} · Trail Shop</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem}}\
         nav a{{margin-right:1rem}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem}}\
         .note{{background:#f4f7ff;border-left:4px solid #36c;padding:.5rem 1rem}}</style></head>\
         <body><nav><a href=/>Home</a><a href=/cart>Cart</a><a href=/login>Login</a><a href=/checkout>Checkout</a>\
         <a href=/orders>Orders</a><a href=/sandbox>Sandbox log</a></nav><h1>{title}</h1>{body}</body></html>"
    ))
}

fn product_name(id: u32) -> Option<&'static str> {
    CATALOG.iter().find(|(known, ..)| *known == id).map(|(_, name, ..)| *name)
}

async fn cart_of(session: &Session) -> Vec<u32> {
    session.get("cart").await.ok().flatten().unwrap_or_default()
}

async fn user_of(session: &Session) -> Option<String> {
    session.get("user").await.ok().flatten()
}

async fn home(State(shop): State<Shop>, session: Session, conversion: SovendusConversion) -> Html<String> {
    let stock = shop.orders.stock().await.unwrap_or_else(|error| {
        tracing::warn!(%error, "could not read the stock");
        BTreeMap::new()
    });
    let products: String = CATALOG
        .iter()
        .map(|(id, name, price, _)| {
            let left = match stock.get(id) {
                Some(0) => format!(" · <span id=stock-{id}>sold out</span>"),
                Some(left) => format!(" · <span id=stock-{id}>{left} in stock</span>"),
                None => String::new(),
            };
            format!("<li><a href=/products/{id}>{name}</a> · {price} €{left}</li>")
        })
        .collect();
    let visitor = match conversion.token().await {
        // Display masks the token: only its first 8 characters are shown.
        Some(token) => format!("<p class=note id=sovendus>You came from Sovendus (token {token}).</p>"),
        None => "<p id=sovendus>No Sovendus token for this visit.</p>".to_owned(),
    };
    let user = user_of(&session)
        .await
        .map(|user| format!("<p id=user>Logged in as {user}.</p>"))
        .unwrap_or_default();
    page("Trail Shop", &format!("{visitor}{user}<ul>{products}</ul>"))
}

async fn product(Path(id): Path<u32>) -> Response {
    let Some((id, name, price, _)) = CATALOG.iter().find(|(known, ..)| *known == id) else {
        return (StatusCode::NOT_FOUND, page("Not found", "<p>No such product.</p>")).into_response();
    };
    page(
        name,
        &format!(
            "<p>{price} €</p><form method=post action=/cart><input type=hidden name=product value={id}>\
             <button id=add>Add to cart</button></form>"
        ),
    )
    .into_response()
}

#[derive(Deserialize)]
struct AddToCart {
    product: u32,
}

async fn add_to_cart(session: Session, Form(AddToCart { product }): Form<AddToCart>) -> Response {
    if product_name(product).is_none() {
        return (StatusCode::BAD_REQUEST, page("Cart", "<p>No such product.</p>")).into_response();
    }
    let mut cart = cart_of(&session).await;
    cart.push(product);
    if session.insert("cart", cart).await.is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    Redirect::to("/cart").into_response()
}

fn items_list(items: &[u32]) -> String {
    let items: String =
        items.iter().filter_map(|id| product_name(*id)).map(|name| format!("<li>{name}</li>")).collect();
    format!("<ul id=items>{items}</ul>")
}

async fn cart(session: Session) -> Html<String> {
    let cart = cart_of(&session).await;
    if cart.is_empty() {
        return page("Cart", "<p id=items>Your cart is empty.</p>");
    }
    page("Cart", &format!("{}<p><a href=/checkout>Go to checkout</a></p>", items_list(&cart)))
}

async fn login_form(session: Session) -> Html<String> {
    let state = match user_of(&session).await {
        Some(user) => format!("<p id=user>Logged in as {user}.</p>"),
        None => "<p>Demo login: no password needed.</p>".to_owned(),
    };
    page(
        "Login",
        &format!("{state}<form method=post action=/login><button id=login>Log in as demo</button></form>"),
    )
}

async fn login(session: Session) -> Response {
    // A new session ID at login prevents session fixation; the Sovendus token survives it.
    if session.cycle_id().await.is_err() || session.insert("user", "demo").await.is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    Redirect::to("/").into_response()
}

async fn checkout(session: Session) -> Html<String> {
    let cart = cart_of(&session).await;
    if cart.is_empty() {
        return page("Checkout", "<p>Your cart is empty: <a href=/>find something</a>.</p>");
    }
    page(
        "Checkout",
        &format!(
            "{}<form method=post action=/order><label>Shipping <select name=shipping>\
             <option>standard</option><option>express</option></select></label> \
             <button id=order>Place order</button></form>",
            items_list(&cart)
        ),
    )
}

#[derive(Deserialize)]
struct Checkout {
    #[serde(default)]
    shipping: String,
}

async fn order(
    State(shop): State<Shop>,
    session: Session,
    conversion: SovendusConversion,
    Form(checkout): Form<Checkout>,
) -> Response {
    let mut items = cart_of(&session).await;
    if items.is_empty() {
        // A second click on "order" after the first emptied the cart: show that order again.
        let last_order: Option<String> = session.get(LAST_ORDER).await.ok().flatten();
        let page =
            last_order.map_or_else(|| "/checkout".to_owned(), |reference| format!("/thank-you/{reference}"));
        return Redirect::to(&page).into_response();
    }
    let shipping = if checkout.shipping == "express" { "express" } else { "standard" };
    let from_sovendus = conversion.token().await.is_some();
    // The stock, the order and its Sovendus conversion: one transaction on SQLite and Postgres.
    let placed = shop
        .orders
        .place(&NewOrder { items: items.clone(), shipping: shipping.to_owned() }, conversion, &shop.delivery)
        .await;
    let reference = match placed {
        Ok(Placed::Order(reference)) => reference,
        Ok(Placed::SoldOut(product)) => {
            // Rolled back: nothing was booked, and the token stays with the visitor.
            items.retain(|item| *item != product);
            if session.insert("cart", items).await.is_err() {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            let name = product_name(product).unwrap_or("A product");
            let token = if from_sovendus {
                " Your Sovendus voucher stays with your visit, for your next order."
            } else {
                ""
            };
            let body = format!(
                "<p class=note id=sold-out>Sorry, {name} is sold out: your order is not placed. \
                 We took it out of your cart.{token}</p><p><a href=/cart>Back to your cart</a></p>"
            );
            return (StatusCode::CONFLICT, page("Sold out", &body)).into_response();
        }
        Err(error) => {
            tracing::error!(%error, "order not placed");
            let body = format!(
                "<p class=note id=not-placed>Your order could not be placed: {}. Nothing was booked, and \
                 your cart is kept: please try again.</p>",
                html_text(&error.to_string())
            );
            return (StatusCode::SERVICE_UNAVAILABLE, page("Order not placed", &body)).into_response();
        }
    };
    if session.insert("cart", Vec::<u32>::new()).await.is_err()
        || session.insert(LAST_ORDER, reference.as_str()).await.is_err()
    {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    // Post/redirect/get: reloading the thank-you page never places the order again.
    Redirect::to(&format!("/thank-you/{reference}")).into_response()
}

async fn thank_you(State(shop): State<Shop>, Path(reference): Path<String>) -> Response {
    order_view(&shop, &reference, true).await
}

async fn order_page(State(shop): State<Shop>, Path(reference): Path<String>) -> Response {
    order_view(&shop, &reference, false).await
}

/// The order `reference`, from the database, with its conversion's state now.
async fn order_view(shop: &Shop, reference: &str, thank_you: bool) -> Response {
    let (reference, order) = match find_order(shop, reference).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let live = shop.delivery.find(&reference).await;
    let kept = match &order.token {
        // Display masks the token: only its first 8 characters are shown.
        Some(token) => format!(
            "<p id=token>Sovendus token kept with the order, for cancellations: <code>{token}</code>, \
             for product <code>{}</code></p>",
            html_text(order.product.as_deref().unwrap_or_default())
        ),
        None => String::new(),
    };
    let status = match order.cancelled_at {
        Some(at) => format!(
            "<p id=order-state>Order <code>{reference}</code> is cancelled ({}).</p>\
             <p class=note id=cancellation>{}</p>",
            httpdate::fmt_http_date(at),
            cancellation(&live)
        ),
        None => format!(
            "<p id=order-state>Order <code>{reference}</code> is placed, {} shipping.</p>\
             <form method=post action=/orders/{reference}/cancel>\
             <button id=cancel>Cancel the order</button></form>",
            html_text(&order.shipping)
        ),
    };
    let body = format!(
        "{status}{}<p class=note id=conversion>{}</p>{kept}<p id=state>{}</p>\
         <p><a href=/orders>All orders</a> · <a href=/sandbox>See what the sandbox received</a></p>",
        items_list(&order.items),
        said(&order),
        live_state(&live),
    );
    let title = if thank_you { "Thank you!".to_owned() } else { format!("Order {reference}") };
    page(&title, &body).into_response()
}

/// The order `reference` from the database, or the page that says why not.
async fn find_order(shop: &Shop, reference: &str) -> Result<(OrderRef, Order), Response> {
    let not_found = || (StatusCode::NOT_FOUND, page("Not found", "<p>No such order.</p>")).into_response();
    let reference = OrderRef::new(reference).map_err(|_| not_found())?;
    match shop.orders.find(&reference).await {
        Ok(Some(order)) => Ok((reference, order)),
        Ok(None) => Err(not_found()),
        Err(error) => {
            tracing::error!(%error, "could not read an order");
            Err(unavailable("Order", &error.to_string()))
        }
    }
}

/// What the order said of its conversion when it was placed.
fn said(order: &Order) -> &'static str {
    match order.conversion.as_deref() {
        Some("owed" | "parked") => "Sovendus conversion on its way.",
        Some("sent") => "Sovendus booked the conversion.",
        Some("dead") => "Sovendus refused the conversion.",
        Some("already converted") => {
            "No Sovendus conversion for this order: an earlier order converted the visitor's token."
        }
        None if order.token.is_some() => {
            "Sovendus conversion not recorded yet: the shop records it from the order at its next start."
        }
        _ => "No Sovendus conversion for this order.",
    }
}

/// The conversion's state in the store now.
fn live_state(live: &Result<Option<Conversion>, StoreError>) -> String {
    let conversion = match live {
        Ok(Some(conversion)) => conversion,
        Ok(None) => return "Now: no Sovendus conversion in the store for this order.".to_owned(),
        Err(error) => {
            return format!("Now: the Sovendus conversion cannot be read: {}", html_text(&error.to_string()));
        }
    };
    let at = |time: Option<SystemTime>| time.map(httpdate::fmt_http_date).unwrap_or_default();
    let error = conversion.last_error.as_deref().map(|error| format!(" Last error: {}.", html_text(error)));
    let error = error.unwrap_or_default();
    let calls = conversion.attempts;
    match conversion.state {
        ConversionState::Owed => {
            format!("Now: owed, {calls} calls so far, next {}.{error}", at(conversion.next_attempt_at))
        }
        ConversionState::Parked => {
            format!(
                "Now: parked, Sovendus refused the shop's setup; next {}.{error}",
                at(conversion.next_attempt_at)
            )
        }
        ConversionState::Dead => format!("Now: dead, never sent again.{error}"),
        ConversionState::Delivered => format!("Now: booked by Sovendus on {}.", at(conversion.settled_at)),
        ConversionState::Voided => "Now: voided, never sent.".to_owned(),
        state => format!("Now: {state}."),
    }
}

/// What the cancellation of an order did to its conversion, found by `live`.
fn cancellation(live: &Result<Option<Conversion>, StoreError>) -> String {
    match live {
        Ok(Some(conversion)) if conversion.state == ConversionState::Delivered => format!(
            "Sovendus booked its conversion before the cancellation, and has no API to take it back: tell \
             Sovendus the token <code id=tell-token>{}</code>, booked on <span id=booked-at>{}</span>.",
            // The whole token, for Sovendus.
            conversion.token.as_str(),
            conversion.settled_at.map(httpdate::fmt_http_date).unwrap_or_default()
        ),
        Ok(Some(conversion)) if conversion.state == ConversionState::Voided => {
            "Its Sovendus conversion is voided: it is never sent.".to_owned()
        }
        Ok(Some(conversion)) => format!("Its Sovendus conversion is {}.", conversion.state),
        Ok(None) => "It had no Sovendus conversion.".to_owned(),
        Err(error) => format!("Its Sovendus conversion cannot be read: {}", html_text(&error.to_string())),
    }
}

/// Cancels an order: its conversion first (voided, unless Sovendus has it already), then the
/// order, with its stock back.
async fn cancel(State(shop): State<Shop>, Path(reference): Path<String>) -> Response {
    let (reference, order) = match find_order(&shop, &reference).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let page_of_order = Redirect::to(&format!("/orders/{reference}")).into_response();
    if order.cancelled_at.is_some() {
        return page_of_order;
    }
    match shop.delivery.void(&reference).await {
        // A call to Sovendus may be under way: its answer decides, so the order stays.
        Ok(VoidOutcome::Sending(_)) => {
            let body = format!(
                "<p class=note id=cancellation>The Sovendus conversion of order <code>{reference}</code> is \
                 being sent right now, try again in a moment.</p>\
                 <form method=post action=/orders/{reference}/cancel>\
                 <button id=cancel>Cancel the order</button></form>"
            );
            return (StatusCode::CONFLICT, page("Not cancelled yet", &body)).into_response();
        }
        Ok(outcome) => {
            let conversion = match outcome {
                VoidOutcome::Voided(_) | VoidOutcome::AlreadyVoided(_) => "voided",
                VoidOutcome::Delivered(_) => "booked by Sovendus before",
                _ => "none",
            };
            tracing::info!(order = %reference, conversion, "cancelling an order");
        }
        Err(error) => {
            tracing::error!(%error, "could not void a Sovendus conversion");
            return unavailable("Not cancelled", &error.to_string());
        }
    }
    match shop.orders.cancel(&reference).await {
        Ok(_) => {
            // The order's conversion may have been recorded between the void and the
            // cancellation's commit (Redis and memory record it from the order, now and then):
            // void it once more, now that no recording picks the order up.
            if let Ok(VoidOutcome::Voided(_)) = shop.delivery.void(&reference).await {
                tracing::info!(order = %reference, "voided a Sovendus conversion recorded during the cancellation");
            }
            page_of_order
        }
        Err(error) => {
            tracing::error!(%error, "could not cancel an order");
            unavailable("Not cancelled", &error.to_string())
        }
    }
}

async fn order_list(State(shop): State<Shop>) -> Response {
    let orders = match shop.orders.latest(LISTED_ORDERS).await {
        Ok(orders) => orders,
        Err(error) => return unavailable("Orders", &error.to_string()),
    };
    if orders.is_empty() {
        return page("Orders", "<p id=orders>No orders yet.</p>").into_response();
    }
    let rows: String = orders
        .iter()
        .map(|(order, items)| {
            let reference = &order.reference;
            // Display masks the token.
            let token = order.token.as_ref().map(ToString::to_string).unwrap_or_default();
            let status = if order.cancelled_at.is_some() { "cancelled" } else { "placed" };
            format!(
                "<tr><td><a href=/orders/{reference}>{reference}</a></td><td>{}</td><td>{items}</td>\
                 <td>{}</td><td><code>{token}</code></td><td>{}</td><td>{status}</td></tr>",
                httpdate::fmt_http_date(order.placed_at),
                html_text(&order.shipping),
                order.conversion.as_deref().unwrap_or("not recorded"),
            )
        })
        .collect();
    let table = format!(
        "<table id=orders><tr><th>Order</th><th>Placed</th><th>Items</th><th>Shipping</th>\
         <th>Sovendus token</th>\
         <th>Conversion</th><th>Status</th></tr>{rows}</table>"
    );
    page("Orders", &format!("<p>The latest {LISTED_ORDERS} orders, the newest first.</p>{table}"))
        .into_response()
}

/// A 503 page: `what` failed for `why`.
fn unavailable(what: &str, why: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        page(what, &format!("<p class=note>Please try again: {}</p>", html_text(why))),
    )
        .into_response()
}

async fn sandbox_log(State(shop): State<Shop>) -> Html<String> {
    let conversions = conversions_report(&shop.delivery).await;
    let Some(sandbox) = &shop.sandbox else {
        return page(
            "Sandbox log",
            &format!(
                "{conversions}<p>Conversions go to the real Sovendus endpoint; there is no sandbox log.</p>"
            ),
        );
    };
    let calls = sandbox.conversions();
    let rows: String = calls
        .iter()
        .map(|call| {
            let status = call.status().map_or("refused".to_owned(), |status| status.to_string());
            let ms = call.received_at().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
            let (seconds, millis) = (ms / 1000, ms % 1000);
            let (hours, minutes) = (seconds / 3600 % 24, seconds / 60 % 60);
            format!(
                "<tr><td>{}</td><td><code>{}</code></td><td>{status}</td>\
                 <td data-ms={ms}>{hours:02}:{minutes:02}:{:02}.{millis:03} UTC</td></tr>",
                call.method(),
                call.path(),
                seconds % 60
            )
        })
        .collect();
    let table = if rows.is_empty() {
        "<p id=conversions>No conversion received yet.</p>".to_owned()
    } else {
        format!(
            "<table id=conversions><tr><th>Method</th><th>Path</th><th>Answer</th><th>Received</th></tr>{rows}</table>"
        )
    };
    let received = sandbox.calls_received();
    let which = if received > calls.len() {
        format!("The latest {} of the {received} calls", calls.len())
    } else {
        "Every call".to_owned()
    };
    page(
        "Sandbox log",
        &format!(
            "{conversions}<h2>Calls</h2><p>{which} the embedded Sovendus sandbox at <code>{}</code> received:</p>{table}",
            sandbox.endpoint()
        ),
    )
}

/// The conversions the store holds: counts, and those not delivered.
async fn conversions_report(delivery: &Delivery) -> String {
    let counts = match delivery.counts().await {
        Ok(counts) => counts,
        Err(error) => return format!("<p class=note>The conversions cannot be read: {error}</p>"),
    };
    let mut report = format!(
        "<h2>Conversions</h2><p id=counts>owed {}, parked {}, dead {}, delivered {}, voided {}</p>",
        counts.owed, counts.parked, counts.dead, counts.delivered, counts.voided
    );
    for state in [ConversionState::Owed, ConversionState::Parked, ConversionState::Dead] {
        let Ok(listed) = delivery.list(&ListQuery::new(state).limit(50)).await else { continue };
        if listed.is_empty() {
            continue;
        }
        let rows: String = listed
            .iter()
            .map(|conversion| {
                // Display masks the token.
                let next = conversion.next_attempt_at.map(httpdate::fmt_http_date).unwrap_or_default();
                let error = conversion.last_error.as_deref().unwrap_or_default();
                format!(
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{next}</td><td>{}</td></tr>",
                    conversion.order.as_ref().map(|order| order.to_string()).unwrap_or_default(),
                    conversion.token,
                    conversion.attempts,
                    html_text(error),
                )
            })
            .collect();
        report.push_str(&format!(
            "<h3>{state}</h3><table id={state}><tr><th>Order</th><th>Token</th><th>Attempts</th>\
             <th>Next attempt</th><th>Last error</th></tr>{rows}</table>"
        ));
    }
    if counts.parked > 0 {
        report.push_str("<form method=post action=/sandbox/retry-parked><button id=retry>Retry the parked ones now</button></form>");
    }
    report
}

async fn retry_parked(State(shop): State<Shop>) -> Response {
    match shop.delivery.retry_parked().await {
        Ok(_) => Redirect::to("/sandbox").into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, page("Sandbox log", &html_text(&error.to_string())))
            .into_response(),
    }
}

/// `text` safe inside an HTML element.
fn html_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
