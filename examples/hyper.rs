//! tower-sovendus in a plain hyper server, without axum.
//!
//! ```text
//! cargo run --example hyper
//! curl -c jar -b jar 'http://127.0.0.1:3001/?sovReqToken=12345-test-123-12345'
//! curl -c jar -b jar -X POST http://127.0.0.1:3001/order
//! ```
//!
//! Conversions go to an embedded sandbox; `HYPER_ADDR` changes where it listens.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_sessions::{MemoryStore, SessionManagerLayer, cookie::SameSite};
use tower_sovendus::{Outcome, SovendusConversion, SovendusLayer, sandbox::Sandbox};

/// The app's own handler: the order route sends the conversion.
async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, text) = match (request.method(), request.uri().path()) {
        (&Method::POST, "/order") => match SovendusConversion::from_extensions(request.extensions()).await {
            Ok(conversion) => match conversion.send().await {
                Ok(Outcome::Sent { .. }) => {
                    (StatusCode::OK, "order placed, Sovendus conversion sent\n".to_owned())
                }
                Ok(outcome @ (Outcome::Owed { .. } | Outcome::Parked { .. })) => {
                    (StatusCode::OK, format!("order placed, Sovendus conversion owed: {outcome:?}\n"))
                }
                Ok(_) => (StatusCode::OK, "order placed, no Sovendus conversion for this order\n".to_owned()),
                // Nothing recorded: the token stays with the visitor.
                Err(error) => {
                    (StatusCode::OK, format!("order placed; Sovendus conversion not recorded: {error}\n"))
                }
            },
            // A setup mistake: the text says which layer is missing.
            Err(rejection) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{rejection}\n")),
        },
        (_, "/order") => (StatusCode::METHOD_NOT_ALLOWED, "POST only\n".to_owned()),
        _ => (StatusCode::OK, "welcome to the shop\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let sandbox = Sandbox::start().await?;

    // Outermost first: the session layer, then the Sovendus layer, then the handler.
    let app = ServiceBuilder::new()
        .layer(
            SessionManagerLayer::new(MemoryStore::default()).with_same_site(SameSite::Lax).with_secure(false),
        )
        .layer(SovendusLayer::new(sandbox.config().build()?))
        .service(service_fn(handle));

    let addr = std::env::var("HYPER_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "listening on http://{}; conversions go to the sandbox at {}",
        listener.local_addr()?,
        sandbox.endpoint()
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| app.clone().oneshot(request));
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection closed");
            }
        });
    }
}
