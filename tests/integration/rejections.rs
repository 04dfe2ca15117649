//! A router missing a layer answers the order page with a 500 that says how to fix it.

use crate::common;

use axum::{Router, routing::post};
use tower_sovendus::{SovendusConversion, SovendusLayer, sandbox::Sandbox};

async fn order(conversion: SovendusConversion) -> String {
    common::describe(conversion.send().await)
}

async fn post_order(app: Router) -> (u16, String) {
    post_order_at(common::serve(app).await).await
}

#[tokio::test]
async fn missing_sovendus_layer() {
    let app = Router::new()
        .route("/order", post(order))
        .layer(common::session_layer(tower_sessions::MemoryStore::default()));
    let (status, body) = post_order(app).await;
    assert_eq!(status, 500);
    assert!(body.contains("SovendusConversion needs SovendusLayer"), "{body}");
    assert!(body.contains(".layer(SovendusLayer::new(config))"), "{body}");
}

#[tokio::test]
async fn missing_session_layer() {
    let sandbox = Sandbox::start().await.unwrap();
    let app = Router::new()
        .route("/order", post(order))
        .layer(SovendusLayer::new(sandbox.config().build().unwrap()));
    let (status, body) = post_order(app).await;
    assert_eq!(status, 500);
    assert!(body.contains("SessionManagerLayer"), "{body}");
    assert!(body.contains(".layer(SessionManagerLayer::new(store))"), "{body}");
}

#[tokio::test]
async fn layers_in_the_wrong_order_never_fail_the_page() {
    // SovendusLayer outside the session layer sees no session on the way in.
    let sandbox = Sandbox::start().await.unwrap();
    let app = Router::new()
        .route("/order", post(order))
        .layer(common::session_layer(tower_sessions::MemoryStore::default()))
        .layer(SovendusLayer::new(sandbox.config().build().unwrap()));
    let addr = common::serve(app).await;
    let landing =
        reqwest::get(format!("http://{addr}/order?sovReqToken=12345-test-123-12345")).await.unwrap();
    // GET on a POST route: 405, but served; the page never fails because of the layer.
    assert_eq!(landing.status(), 405);
    let (status, body) = post_order_at(addr).await;
    // The extractor still finds both (the session is added inside); nothing was captured.
    assert_eq!((status, body.as_str()), (200, "no_token"));
    assert!(sandbox.conversions().is_empty());
}

async fn post_order_at(addr: std::net::SocketAddr) -> (u16, String) {
    let response = reqwest::Client::new().post(format!("http://{addr}/order")).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}
