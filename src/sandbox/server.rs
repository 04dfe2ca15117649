//! The sandbox's HTTP server: it records each call, applies the scripted faults, and answers as
//! the real API does.

use std::{
    collections::HashSet,
    io,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Channel, Full, Limited, combinators::BoxBody};
use hyper::{
    body::{Frame, Incoming},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::Notify};

use super::{
    faults::{Fault, Faults},
    record::{Conversion, Recorded, parse_path},
};
use crate::{ids::SovReqToken, sync::lock};

/// What the server and the [`Sandbox`](super::Sandbox) handle share.
pub(super) struct Shared {
    pub(super) api_key: String,
    pub(super) products: Vec<String>,
    pub(super) tokens: Option<HashSet<String>>,
    pub(super) faults: Mutex<Faults>,
    pub(super) calls: Mutex<Recorded>,
    pub(super) finished: Notify,
}

pub(super) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping the set (when the server task is aborted) aborts every connection.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| handle(shared.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

type Answer = Result<Response<BoxBody<Bytes, io::Error>>, io::Error>;

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Answer {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let body = Limited::new(request.into_body(), 64 * 1024)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let fault = lock(&shared.faults).for_next_call();
    let call = Call::arrived(
        &shared,
        Conversion {
            method: method.clone(),
            path: path.clone(),
            content_type,
            body: body.clone(),
            status: None,
            received_at: SystemTime::now(),
            finished: false,
        },
    );
    let (status, body, headers, cut) = match fault {
        Some(Fault::Refuse) => {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "scripted refusal"));
        }
        Some(Fault::Status(status)) => with_no_headers(canned(status)),
        Some(Fault::RateLimited(wait)) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let (status, body) = canned(StatusCode::TOO_MANY_REQUESTS);
            (status, body, vec![(header::RETRY_AFTER, seconds.to_string())], false)
        }
        Some(Fault::Delay(delay)) => {
            // Dropped here if the client hangs up: nothing is booked, the call has no status.
            tokio::time::sleep(delay).await;
            with_no_headers(shared.answer(&method, &path, &body))
        }
        Some(Fault::CutOff(status)) => {
            let (status, body) =
                if status == StatusCode::OK { shared.answer(&method, &path, &body) } else { canned(status) };
            (status, body, Vec::new(), true)
        }
        None => with_no_headers(shared.answer(&method, &path, &body)),
    };
    call.answered(status);
    let mut response = Response::builder().status(status).header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        response = response.header(name, value);
    }
    let body = if cut {
        // Promise the whole body, send half, then fail it: hyper resets the connection.
        response = response.header(header::CONTENT_LENGTH, body.len().to_string());
        let (mut sender, cut_body) = Channel::new(1);
        let half = Bytes::copy_from_slice(&body.as_bytes()[..body.len() / 2]);
        sender.try_send(Frame::data(half)).map_err(|_| io::Error::other("channel closed"))?;
        // Fail the body only once hyper has flushed the status, headers and half the body.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            sender.abort(io::Error::new(io::ErrorKind::ConnectionReset, "scripted cut-off"));
        });
        cut_body.boxed()
    } else {
        Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed()
    };
    response.body(body).map_err(io::Error::other)
}

fn with_no_headers(
    (status, body): (StatusCode, String),
) -> (StatusCode, String, Vec<(header::HeaderName, String)>, bool) {
    (status, body, Vec::new(), false)
}

/// A call being answered; when it ends (answered, refused, or dropped because its client hung
/// up) it is marked finished and waiters are woken.
struct Call<'a> {
    shared: &'a Shared,
    number: usize,
}

impl<'a> Call<'a> {
    fn arrived(shared: &'a Shared, conversion: Conversion) -> Self {
        Self { shared, number: lock(&shared.calls).push(conversion) }
    }

    fn answered(&self, status: StatusCode) {
        if let Some(call) = lock(&self.shared.calls).get_mut(self.number) {
            call.status = Some(status);
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        let mut calls = lock(&self.shared.calls);
        calls.finished += 1;
        if let Some(call) = calls.get_mut(self.number) {
            call.finished = true;
        }
        drop(calls);
        self.shared.finished.notify_waiters();
    }
}

impl Shared {
    /// The real API's answer to a call: status and JSON body.
    fn answer(&self, method: &Method, path: &str, body: &[u8]) -> (StatusCode, String) {
        let unprocessable = |message: &str| (StatusCode::UNPROCESSABLE_ENTITY, error_body(message));
        let Some((product, token)) = parse_path(path) else {
            return canned(StatusCode::NOT_FOUND);
        };
        if method != Method::POST {
            return canned(StatusCode::METHOD_NOT_ALLOWED);
        }
        let Some(api_key) = api_key_of(body) else {
            return canned(StatusCode::UNPROCESSABLE_ENTITY);
        };
        if api_key != self.api_key {
            return canned(StatusCode::FORBIDDEN);
        }
        if !self.products.iter().any(|known| known == product) {
            return unprocessable("External product id not found.");
        }
        let token_known =
            SovReqToken::new(token).is_ok() && self.tokens.as_ref().is_none_or(|known| known.contains(token));
        if !token_known {
            return unprocessable("Token not found.");
        }
        let receipt = serde_json::json!({ "externalProductId": product, "sovReqToken": token });
        (StatusCode::OK, receipt.to_string())
    }
}

fn api_key_of(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("apiKey")?.as_str().map(str::to_owned)
}

fn error_body(message: &str) -> String {
    serde_json::json!({ "message": message }).to_string()
}

/// The real API's answer for a status, with its usual message.
fn canned(status: StatusCode) -> (StatusCode, String) {
    let message = match status.as_u16() {
        403 => "Unauthorized.",
        404 | 405 => "Invalid API call.",
        422 => "Invalid API parameters.",
        429 => "Too many requests.",
        500..=599 => "Internal server error.",
        _ => status.canonical_reason().unwrap_or("Error."),
    };
    (status, error_body(message))
}
