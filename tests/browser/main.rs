//! A real browser end to end: headless Chromium arrives at the demo shop from a partner page on
//! another site, browses, logs in and checks out, while the sandbox records what Sovendus would
//! receive. Cookies, redirects and SameSite are applied by the browser, not by a test client.
//!
//! Needs Debian's `chromium` and `chromium-driver`; see `harness` for the skip rule.

#[path = "../../examples/shop/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "../integration/common/mod.rs"]
mod common;
mod console;
mod harness;
mod sites;

use std::time::Duration;

use harness::Browser;
use sites::Sites;
use tower_sessions::cookie::SameSite;
use tower_sovendus::sandbox::Sandbox;

const TOKEN: &str = Sandbox::TEST_TOKEN;

/// What the thank-you page says when the order queued a conversion.
const QUEUED: &str = "Sovendus conversion on its way.";

/// The time between the two clicks of the double click.
const CLICK_INTERVAL: Duration = Duration::from_millis(100);

/// How long the order page takes in the double-click scenario: long enough that the second
/// click lands while the first order is still on its way.
const SLOW_ORDER_PAGE: Duration = Duration::from_secs(1);

/// The link on the partner page: the shop's home with the visitor's token.
fn landing() -> String {
    format!("/?sovReqToken={TOKEN}")
}

#[tokio::test]
async fn click_through_browse_log_in_and_check_out_converts_once() {
    let Some(browser) = Browser::start_or_skip().await else { return };
    let sites = Sites::start(SameSite::Lax, &[&landing()]).await;

    arrive_from_partner(&browser, &sites, 0, &landing()).await;
    assert!(browser.text("#sovendus").await.starts_with("You came from Sovendus (token 12345-te"));
    add_to_cart(&browser, 1).await;
    add_to_cart(&browser, 3).await;
    let before_login = browser.session_cookie().await;
    assert_eq!(before_login.same_site(), Some(SameSite::Lax));
    log_in(&browser).await;
    let after_login = browser.session_cookie().await;
    assert_ne!(after_login.value(), before_login.value(), "logging in gives the session a new ID");

    assert_eq!(check_out(&browser).await, QUEUED);
    assert_eq!(browser.text("#items").await, "Walking boots\nRain jacket");
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser/thank-you.png");
    browser.screenshot(&screenshot).await;
    eprintln!("thank-you page saved to {}", screenshot.display());

    assert_booked_once(&sites).await;
    browser.close().await;
}

#[tokio::test]
async fn lax_session_keeps_cart_and_login_across_the_landing() {
    let Some(browser) = Browser::start_or_skip().await else { return };
    let sites = Sites::start(SameSite::Lax, &[&landing()]).await;
    let before = shop_with_cart_and_login(&browser, &sites).await;

    arrive_from_partner(&browser, &sites, 0, &landing()).await;
    // The browser sent the Lax cookie on the cross-site click: the shop knows the visitor.
    assert!(browser.text("#sovendus").await.starts_with("You came from Sovendus"));
    assert_eq!(browser.text("#user").await, "Logged in as demo.");
    assert_eq!(browser.session_cookie().await.value(), before, "the landing kept the visitor's session");
    browser.click_to("nav a[href='/cart']", "/cart").await;
    assert_eq!(browser.text("#items").await, "Walking boots");

    assert_eq!(check_out(&browser).await, QUEUED);
    assert_booked_once(&sites).await;
    browser.close().await;
}

#[tokio::test]
async fn strict_session_loses_cart_and_login_on_the_landing() {
    let Some(browser) = Browser::start_or_skip().await else { return };
    let sites = Sites::start(SameSite::Strict, &[&landing()]).await;
    let before = shop_with_cart_and_login(&browser, &sites).await;

    arrive_from_partner(&browser, &sites, 0, &landing()).await;
    // The browser withheld the Strict cookie on the cross-site click: the shop saw a stranger,
    // stored the token in a new session, and that session's cookie replaced the visitor's.
    assert!(browser.text("#sovendus").await.starts_with("You came from Sovendus"));
    assert!(!browser.has("#user").await, "the landing page does not know the visitor");
    let after = browser.session_cookie().await;
    assert_ne!(after.value(), before, "the landing's new session replaced the visitor's cookie");
    assert_eq!(after.same_site(), Some(SameSite::Strict));
    // Later same-site clicks send the new cookie: cart and login are gone for good.
    browser.click_to("nav a[href='/cart']", "/cart").await;
    assert_eq!(browser.text("#items").await, "Your cart is empty.");
    browser.click_to("nav a[href='/login']", "/login").await;
    assert!(!browser.has("#user").await, "the visitor is logged out");

    // The token sits in the new session, so an order placed from scratch still converts.
    add_to_cart(&browser, 2).await;
    assert_eq!(check_out(&browser).await, QUEUED);
    assert_booked_once(&sites).await;
    browser.close().await;
}

#[tokio::test]
async fn reload_and_double_click_on_order_convert_once() {
    let Some(browser) = Browser::start_or_skip().await else { return };
    let sites = Sites::with_order_page_delay(SameSite::Lax, &[&landing()], SLOW_ORDER_PAGE).await;
    arrive_from_partner(&browser, &sites, 0, &landing()).await;
    add_to_cart(&browser, 1).await;
    browser.click_to("nav a[href='/checkout']", "/checkout").await;

    browser.double_click("#order", CLICK_INTERVAL).await;
    // The second order request finds the cart emptied by the first, and shows that order.
    browser.wait_until("a thank-you page", |path| path.starts_with("/thank-you/")).await;
    assert_eq!(sites.orders_posted(), 2, "both clicks reached the shop");
    assert_eq!(browser.text("h1").await, "Thank you!");

    browser.reload().await;
    assert_eq!(browser.text("h1").await, "Thank you!");
    assert_eq!(sites.orders_posted(), 2, "a reload of the thank-you page places no order");

    assert_booked_once(&sites).await;
    browser.close().await;
}

#[tokio::test]
async fn hostile_tokens_in_the_link_render_the_page_and_send_nothing() {
    let Some(browser) = Browser::start_or_skip().await else { return };
    let too_long = format!("/?sovReqToken={}", "a".repeat(257));
    let hostile = [
        "/?sovReqToken=%3Cscript%3Ealert(1)%3C/script%3E",
        "/?sovReqToken=..%2F..%2Fadmin",
        "/?sovReqToken=..",
        "/?sovReqToken=a%00b",
        "/?sovReqToken=%C3%A9t%C3%A9",
        "/?sovReqToken=12345-test-123-12345%22%3E%3Cimg%20src=x%3E",
        "/?sovReqToken=12345-test-123-12345&sovReqToken=other",
        &too_long,
    ];
    let sites = Sites::start(SameSite::Lax, &hostile).await;

    for (index, link) in hostile.iter().enumerate() {
        arrive_from_partner(&browser, &sites, index, link).await;
        assert_eq!(browser.text("h1").await, "Trail Shop", "{link}");
        assert_eq!(browser.text("#sovendus").await, "No Sovendus token for this visit.", "{link}");
    }
    add_to_cart(&browser, 1).await;
    assert_eq!(check_out(&browser).await, "No Sovendus conversion for this order.");

    assert!(sites.booked().await.is_empty());
    assert!(sites.sandbox.conversions().is_empty(), "nothing reached the sandbox");
    browser.close().await;
}

/// Opens the partner page and clicks its link number `index`, which leads to `landing`.
async fn arrive_from_partner(browser: &Browser, sites: &Sites, index: usize, landing: &str) {
    browser.goto(sites.partner()).await;
    browser.click_to(&format!("#offer-{index}"), landing).await;
}

/// A returning visitor types the shop's address, fills the cart and logs in; returns their
/// session cookie's value.
async fn shop_with_cart_and_login(browser: &Browser, sites: &Sites) -> String {
    browser.goto(&sites.shop("/")).await;
    add_to_cart(browser, 1).await;
    log_in(browser).await;
    assert_eq!(browser.text("#user").await, "Logged in as demo.");
    browser.session_cookie().await.value().to_owned()
}

/// Goes to the home page, opens product `id` and adds it to the cart.
async fn add_to_cart(browser: &Browser, id: u32) {
    browser.click_to("nav a[href='/']", "/").await;
    let product = format!("/products/{id}");
    browser.click_to(&format!("a[href='{product}']"), &product).await;
    browser.click_to("#add", "/cart").await;
}

async fn log_in(browser: &Browser) {
    browser.click_to("nav a[href='/login']", "/login").await;
    browser.click_to("#login", "/").await;
}

/// Checks out the cart, waits for the first order's thank-you page and returns what it says of
/// the conversion.
async fn check_out(browser: &Browser) -> String {
    browser.click_to("nav a[href='/checkout']", "/checkout").await;
    browser.find("#order").await.click().await.unwrap();
    browser.wait_until("a thank-you page", |path| path.starts_with("/thank-you/")).await;
    browser.text("#conversion").await
}

/// Asserts that the sandbox booked exactly one conversion: the test token, for the product.
async fn assert_booked_once(sites: &Sites) {
    let booked = sites.booked().await;
    assert_eq!(booked.len(), 1, "{booked:?}");
    assert_eq!(booked[0].product_and_token(), Some((Sandbox::PRODUCT_ID, TOKEN)));
}
