//! [`Refusal`]: what the console answers instead of a page, each with a page that says why.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use maud::html;

use super::page;
use crate::store::StoreError;

/// Why the console did not answer with the page asked for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The request carries no [`Staff`](super::Staff): the shop's auth did not run.
    #[error("the console is mounted without the shop's auth: no Staff in the request")]
    NoStaff,
    /// A read-only user tried to act.
    #[error("this account may look, not act")]
    ReadOnly,
    /// A POST from another site, or one whose origin cannot be told.
    #[error("a form posted from another site, or from an origin the browser did not say")]
    CrossSite,
    /// No such conversion or page.
    #[error("not found: {0}")]
    NotFound(String),
    /// A parameter that does not parse.
    #[error("{0}")]
    BadRequest(String),
    /// The store did not answer.
    #[error("the store did not answer: {0}")]
    Store(#[from] StoreError),
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::NoStaff | Self::ReadOnly | Self::CrossSite => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn advice(&self) -> &'static str {
        match self {
            Self::NoStaff => {
                "Put a Staff (read-only or admin) into the request's extensions in the shop's auth \
                 middleware, in front of the console's router."
            }
            Self::ReadOnly => "Nothing was changed. Ask someone with admin access.",
            Self::CrossSite => {
                "Nothing was changed. Actions are taken only from the console's own pages; go back \
                 to the console and try again from there."
            }
            Self::NotFound(_) | Self::BadRequest(_) => "Go back to the console's overview.",
            Self::Store(_) => "Nothing was changed. Try again in a moment.",
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        if let Self::Store(error) = &self {
            tracing::warn!(%error, "the Sovendus console could not read the store");
        }
        let body = html! {
            h1 { "Refused" }
            p.refusal { (self.to_string()) }
            p { (self.advice()) }
        };
        (self.status(), page::bare("Refused", body)).into_response()
    }
}
