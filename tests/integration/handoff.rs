//! The layer's handle reaches the extractor whatever middleware runs the rest of the request
//! (one that spawns it, tower's `Buffer`), for every layer of a process, whichever was built
//! first; of nested layers, the innermost wins.

use crate::common;

use axum::{
    BoxError, Router,
    error_handling::HandleErrorLayer,
    extract::Request,
    http::StatusCode,
    middleware::{Next, from_fn},
    response::Response,
    routing::{get, post},
};
use common::Visitor;
use tower::{ServiceBuilder, buffer::BufferLayer};
use tower_sessions::MemoryStore;
use tower_sovendus::{SovendusConversion, SovendusLayer, sandbox::Sandbox};

use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh token for each landing: a token is converted once, ever.
fn token() -> String {
    static LANDINGS: AtomicUsize = AtomicUsize::new(0);
    format!("1095752fb409-457a-{:04}", LANDINGS.fetch_add(1, Ordering::Relaxed))
}

async fn order(conversion: SovendusConversion) -> String {
    common::describe(conversion.send().await)
}

/// A middleware that runs the rest of the request on a task of its own.
async fn in_another_task(request: Request, next: Next) -> Response {
    tokio::spawn(next.run(request)).await.expect("the request's task ran")
}

/// The shop's routes behind `inside`, then `sovendus` and the session layer.
fn shop(sovendus: SovendusLayer, inside: impl FnOnce(Router) -> Router) -> Router {
    let routes = Router::new().route("/landing", get(|| async { "landing" })).route("/order", post(order));
    inside(routes)
        .layer(ServiceBuilder::new().layer(common::session_layer(MemoryStore::default())).layer(sovendus))
}

fn spawning(routes: Router) -> Router {
    routes.layer(from_fn(in_another_task))
}

fn buffered(routes: Router) -> Router {
    routes.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|error: BoxError| async move {
                (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
            }))
            .layer(BufferLayer::new(64)),
    )
}

/// A visitor lands on `app` and orders: what the order said.
async fn land_and_order(app: Router) -> String {
    let visitor = Visitor::new(common::serve(app).await);
    assert_eq!(visitor.get(&format!("/landing?sovReqToken={}", token())).await, (200, "landing".to_owned()));
    visitor.order().await
}

#[tokio::test]
async fn the_handle_travels_with_the_request() {
    // Each layer sends to a sandbox of its own, so the calls tell which layer sent.
    let (sandbox_first, sandbox_later) = (Sandbox::start().await.unwrap(), Sandbox::start().await.unwrap());
    let first = SovendusLayer::new(sandbox_first.config().build().unwrap());
    let later = SovendusLayer::new(sandbox_later.config().build().unwrap());

    for (which, layer) in [("first", &first), ("later", &later)] {
        for (middleware, inside) in [("spawning", spawning as fn(Router) -> Router), ("Buffer", buffered)] {
            let said = land_and_order(shop(layer.clone(), inside)).await;
            assert_eq!(said, "sent", "the {which} layer under a {middleware} middleware");
        }
    }
    assert_eq!((sandbox_first.accepted().len(), sandbox_later.accepted().len()), (2, 2));

    // Nested, either way round: the inner layer sends.
    let inner_later = shop(first.clone(), |routes| routes.layer(later.clone()));
    assert_eq!(land_and_order(inner_later).await, "sent");
    assert_eq!((sandbox_first.accepted().len(), sandbox_later.accepted().len()), (2, 3));
    let inner_first = shop(later, |routes| routes.layer(first));
    assert_eq!(land_and_order(inner_first).await, "sent");
    assert_eq!((sandbox_first.accepted().len(), sandbox_later.accepted().len()), (3, 3));
}
