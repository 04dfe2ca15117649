//! The demo shop's routes and pages, kept apart from `main` so tests can serve the same shop.

use std::sync::{Arc, Mutex};

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
    Delivery, OrderRef, QueueOutcome, SovReqToken, SovendusConversion, SovendusLayer, sandbox::Sandbox,
    store::ConversionState,
};

/// What the shop sells.
const CATALOG: &[(u32, &str, &str)] =
    &[(1, "Walking boots", "49.90"), (2, "Wool socks", "9.90"), (3, "Rain jacket", "89.00")];

/// The session key of the visitor's latest order, for a repeated click on "order".
const LAST_ORDER: &str = "last_order";

/// One placed order, with the Sovendus token kept for cancellations.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: usize,
    pub items: Vec<u32>,
    pub token: Option<SovReqToken>,
    pub conversion: String,
}

#[derive(Clone)]
struct Shop {
    sandbox: Option<Arc<Sandbox>>,
    delivery: Delivery,
    orders: Arc<Mutex<Vec<Order>>>,
}

/// The whole shop: its pages behind `sovendus` inside `sessions`, in one `layer` call (axum
/// then wraps each route once, not once per layer).
pub fn router<S>(
    sovendus: SovendusLayer,
    sessions: SessionManagerLayer<S>,
    sandbox: Option<Arc<Sandbox>>,
) -> Router
where
    S: SessionStore + Clone,
{
    pages(sovendus.delivery(), sandbox).layer(ServiceBuilder::new().layer(sessions).layer(sovendus))
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

/// The shop's pages, without any layer; `delivery` is the Sovendus layer's.
pub fn pages(delivery: Delivery, sandbox: Option<Arc<Sandbox>>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/products/{id}", get(product))
        .route("/cart", get(cart).post(add_to_cart))
        .route("/login", get(login_form).post(login))
        .route("/checkout", get(checkout))
        .route("/order", post(order))
        .route("/thank-you/{id}", get(thank_you))
        .route("/sandbox", get(sandbox_log))
        .route("/sandbox/retry-parked", post(retry_parked))
        .with_state(Shop { sandbox, delivery, orders: Arc::default() })
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{title} · Trail Shop</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem}}\
         nav a{{margin-right:1rem}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem}}\
         .note{{background:#f4f7ff;border-left:4px solid #36c;padding:.5rem 1rem}}</style></head>\
         <body><nav><a href=/>Home</a><a href=/cart>Cart</a><a href=/login>Login</a><a href=/checkout>Checkout</a>\
         <a href=/sandbox>Sandbox log</a></nav><h1>{title}</h1>{body}</body></html>"
    ))
}

fn product_name(id: u32) -> Option<&'static str> {
    CATALOG.iter().find(|(known, ..)| *known == id).map(|(_, name, _)| *name)
}

async fn cart_of(session: &Session) -> Vec<u32> {
    session.get("cart").await.ok().flatten().unwrap_or_default()
}

async fn user_of(session: &Session) -> Option<String> {
    session.get("user").await.ok().flatten()
}

async fn home(session: Session, conversion: SovendusConversion) -> Html<String> {
    let products: String = CATALOG
        .iter()
        .map(|(id, name, price)| format!("<li><a href=/products/{id}>{name}</a> · {price} €</li>"))
        .collect();
    let visitor = match conversion.token() {
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
    let Some((id, name, price)) = CATALOG.iter().find(|(known, ..)| *known == id) else {
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

async fn order(State(shop): State<Shop>, session: Session, conversion: SovendusConversion) -> Response {
    let items = cart_of(&session).await;
    if items.is_empty() {
        // A second click on "order" after the first emptied the cart: show that order again.
        let last_order: Option<usize> = session.get(LAST_ORDER).await.ok().flatten();
        let page = last_order.map_or_else(|| "/checkout".to_owned(), |id| format!("/thank-you/{id}"));
        return Redirect::to(&page).into_response();
    }
    // Keep the token with the order: Sovendus asks for it on cancellations.
    let token = conversion.token().cloned();
    let id = {
        let mut orders = shop.orders.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let id = orders.len() + 1;
        orders.push(Order { id, items, token, conversion: String::new() });
        id
    };
    // The order's reference goes with the conversion, to find it again for a cancellation.
    let reference = OrderRef::new(format!("order-{id}-{}", std::process::id()));
    let conversion = match reference {
        Ok(reference) => conversion.for_order(reference),
        Err(_) => conversion,
    };
    // The page never waits on Sovendus: the conversion is owed, and a worker delivers it.
    let said = match conversion.send_in_background().await {
        Ok(QueueOutcome::Queued) => "Sovendus conversion on its way.".to_owned(),
        Ok(_) => "No Sovendus conversion for this order.".to_owned(),
        Err(error) => {
            format!("Sovendus conversion not sent yet: {error}. The token is kept for a later order.")
        }
    };
    if let Some(order) = shop
        .orders
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter_mut()
        .find(|order| order.id == id)
    {
        order.conversion = said;
    }
    if session.insert("cart", Vec::<u32>::new()).await.is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if session.insert(LAST_ORDER, id).await.is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    // Post/redirect/get: reloading the thank-you page never places the order again.
    Redirect::to(&format!("/thank-you/{id}")).into_response()
}

async fn thank_you(State(shop): State<Shop>, Path(id): Path<usize>) -> Response {
    let orders = shop.orders.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(order) = orders.iter().find(|order| order.id == id) else {
        return (StatusCode::NOT_FOUND, page("Not found", "<p>No such order.</p>")).into_response();
    };
    let kept = match &order.token {
        // Display masks the token: only its first 8 characters are shown.
        Some(token) => {
            format!("<p>Sovendus token kept with the order, for cancellations: <code>{token}</code></p>")
        }
        None => String::new(),
    };
    let body = format!(
        "<p>Order #{} is placed.</p>{}<p class=note id=conversion>{}</p>{kept}\
         <p><a href=/sandbox>See what the sandbox received</a></p>",
        order.id,
        items_list(&order.items),
        order.conversion
    );
    page("Thank you!", &body).into_response()
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
            format!(
                "<tr><td>{}</td><td><code>{}</code></td><td>{status}</td></tr>",
                call.method(),
                call.path()
            )
        })
        .collect();
    let table = if rows.is_empty() {
        "<p id=conversions>No conversion received yet.</p>".to_owned()
    } else {
        format!("<table id=conversions><tr><th>Method</th><th>Path</th><th>Answer</th></tr>{rows}</table>")
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
        "<h2>Conversions</h2><p id=counts>owed {}, parked {}, dead {}, delivered {}</p>",
        counts.owed, counts.parked, counts.dead, counts.delivered
    );
    for state in [ConversionState::Owed, ConversionState::Parked, ConversionState::Dead] {
        let Ok(listed) = delivery.list(state, 50).await else { continue };
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
