//! The layer and `SovendusConversion::from_extensions` in a plain tower stack, without axum:
//! the service finds the layer's handle in the request's extensions, wherever it runs.

use std::convert::Infallible;

use http::{Request, Response, header};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_sessions::{MemoryStore, SessionManagerLayer};
use tower_sovendus::{
    Outcome, SovendusConversion, SovendusLayer, extract::SovendusConversionRejection, sandbox::Sandbox,
};

/// Sends the visitor's conversion and says what happened.
async fn order(request: Request<String>) -> Result<Response<String>, Infallible> {
    let said = match SovendusConversion::from_extensions(request.extensions()).await {
        Ok(conversion) => match conversion.send().await {
            Ok(Outcome::Sent { .. }) => "sent",
            Ok(Outcome::NoToken) => "no_token",
            Ok(Outcome::AlreadyConverted(_)) => "already_converted",
            Ok(other) => panic!("a new outcome: {other:?}"),
            Err(_) => "error",
        },
        Err(SovendusConversionRejection::MissingSovendusLayer) => "missing_layer",
        Err(_) => "rejected",
    };
    Ok(Response::new(said.to_owned()))
}

/// The same, finished in a task of its own.
async fn order_in_another_task(request: Request<String>) -> Result<Response<String>, Infallible> {
    tokio::spawn(order(request)).await.expect("the order's task ran")
}

fn request(uri: &str, cookie: Option<&str>) -> Request<String> {
    let mut request = Request::post(uri);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(String::new()).unwrap()
}

async fn said<S>(service: &mut S, request: Request<String>) -> (String, Option<String>)
where
    S: Service<Request<String>, Response = Response<String>, Error = Infallible>,
{
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .map(|cookie| cookie.to_str().unwrap().split(';').next().unwrap().to_owned());
    (response.into_body(), cookie)
}

#[tokio::test]
async fn a_plain_tower_service_sends_the_conversion_once() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut shop = ServiceBuilder::new()
        .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false))
        .layer(SovendusLayer::new(sandbox.config().build().unwrap()))
        .service(service_fn(order));

    // The landing is captured before the service runs, so the service sees the token at once.
    let (landing, cookie) = said(&mut shop, request("/?sovReqToken=12345-test-123-12345", None)).await;
    assert_eq!(landing, "sent");
    let (again, _) = said(&mut shop, request("/order", cookie.as_deref())).await;
    assert_eq!(again, "already_converted");
    assert_eq!(sandbox.accepted().len(), 1);
}

#[tokio::test]
async fn a_service_without_the_layer_is_told_it_is_missing() {
    let sessions = SessionManagerLayer::new(MemoryStore::default()).with_secure(false);
    let mut bare = ServiceBuilder::new().layer(sessions).service(service_fn(order));
    assert_eq!(said(&mut bare, request("/order", None)).await.0, "missing_layer");
}

#[tokio::test]
async fn a_service_finishing_in_another_task_still_finds_the_layer() {
    let sandbox = Sandbox::start().await.unwrap();
    let layer = SovendusLayer::new(sandbox.config().build().unwrap());
    let sessions = SessionManagerLayer::new(MemoryStore::default()).with_secure(false);
    let mut spawning =
        ServiceBuilder::new().layer(sessions).layer(layer).service(service_fn(order_in_another_task));
    let (landing, cookie) = said(&mut spawning, request("/?sovReqToken=12345-test-123-12345", None)).await;
    assert_eq!(landing, "sent");
    assert_eq!(said(&mut spawning, request("/order", cookie.as_deref())).await.0, "already_converted");
    assert_eq!(sandbox.accepted().len(), 1);
}
