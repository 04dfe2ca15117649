//! What every request to the console passes first: the shop's [`Staff`], and for anything but a
//! read, an admin on a same-origin request; and the headers every answer carries.

use axum::{
    extract::Request,
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{
    HeaderMap, HeaderValue, Method,
    header::{
        CACHE_CONTROL, CONTENT_SECURITY_POLICY, HOST, ORIGIN, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
        X_FRAME_OPTIONS,
    },
};

use super::{Staff, refusal::Refusal};

/// Only the console's own stylesheet and forms; no script at all, no frame around it.
const POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                      frame-ancestors 'none'; base-uri 'none'";

/// Refuses a request without [`Staff`], and one that would act from a read-only account or
/// from another site; adds the security headers to every answer, refusals included.
pub(super) async fn guard(request: Request, next: Next) -> Response {
    let refused = match request.extensions().get::<Staff>() {
        None => Some(Refusal::NoStaff),
        Some(_) if is_read(request.method()) => None,
        Some(_) if !same_origin(request.headers()) => Some(Refusal::CrossSite),
        Some(staff) if !staff.can_act() => Some(Refusal::ReadOnly),
        Some(_) => None,
    };
    if let Some(refusal) = &refused {
        let actor = request.extensions().get::<Staff>().map(|staff| staff.actor().to_owned());
        tracing::warn!(actor, method = %request.method(), path = request.uri().path(), %refusal, "Sovendus console refused a request");
    }
    let mut response = match refused {
        Some(refusal) => refusal.into_response(),
        None => next.run(request).await,
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (CONTENT_SECURITY_POLICY, POLICY),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (X_FRAME_OPTIONS, "DENY"),
        (REFERRER_POLICY, "same-origin"),
        (CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

/// Whether a browser says the request comes from the console's own origin: by
/// `Sec-Fetch-Site: same-origin`, or, from a browser that does not send it, by an `Origin`
/// whose host is the request's `Host`. A request that says neither is refused.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site == "same-origin";
    }
    let (Some(origin), Some(host)) = (headers.get(ORIGIN), headers.get(HOST)) else { return false };
    let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else { return false };
    origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (http::HeaderName::from_static(name), HeaderValue::from_static(value)))
            .collect()
    }

    #[test]
    fn only_the_consoles_own_origin_may_post() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        for site in ["same-site", "cross-site", "none"] {
            let mut pairs = vec![("sec-fetch-site", site)];
            // The fetch metadata wins over an Origin that would pass.
            pairs.extend([("origin", "http://shop.example"), ("host", "shop.example")]);
            assert!(!same_origin(&headers(&pairs)), "{site}");
        }
        assert!(same_origin(&headers(&[
            ("origin", "https://shop.example:8443"),
            ("host", "shop.example:8443")
        ])));
        assert!(!same_origin(&headers(&[("origin", "https://evil.example"), ("host", "shop.example")])));
        assert!(!same_origin(&headers(&[("origin", "null"), ("host", "shop.example")])));
        assert!(!same_origin(&headers(&[("host", "shop.example")])), "neither header");
    }
}
