//! The staff's console of the demo shop, at `/console`, behind HTTP Basic auth: user `staff`,
//! the password in `SHOP_CONSOLE_PASSWORD` (or one made up at start and printed). The shop's
//! own auth decides who may act; here, the one staff account is an admin.

use axum::{
    Router,
    extract::Request,
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use http::{
    StatusCode,
    header::{AUTHORIZATION, WWW_AUTHENTICATE},
};
use subtle::ConstantTimeEq;
use tower_sovendus::{Delivery, console};

/// The console's one user.
pub const USER: &str = "staff";

/// The console of `delivery`, for the user [`USER`] with `password`.
pub fn staff(delivery: Delivery, password: String) -> Router {
    let expected = format!("{USER}:{password}");
    console::router(delivery).layer(middleware::from_fn(move |request, next| {
        let expected = expected.clone();
        async move { basic_auth(&expected, request, next).await }
    }))
}

/// The password: `SHOP_CONSOLE_PASSWORD`, or 20 random letters and digits, and whether it was
/// made up.
pub fn password() -> (String, bool) {
    match std::env::var("SHOP_CONSOLE_PASSWORD") {
        Ok(password) if !password.is_empty() => (password, false),
        _ => (std::iter::repeat_with(fastrand::alphanumeric).take(20).collect(), true),
    }
}

/// Lets a request with `Authorization: Basic` of `expected` (`user:password`) through as the
/// console's admin; asks for the password otherwise.
async fn basic_auth(expected: &str, mut request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded).ok());
    match given {
        Some(given) if bool::from(given.ct_eq(expected.as_bytes())) => {
            request.extensions_mut().insert(console::Staff::admin(USER));
            next.run(request).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(WWW_AUTHENTICATE, "Basic realm=\"Sovendus console\", charset=\"UTF-8\"")],
        )
            .into_response(),
    }
}
