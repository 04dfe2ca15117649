//! The console's page frame, and how it shows times, ages, tokens and states.

use std::time::{Duration, SystemTime};

use axum::{extract::FromRequestParts, extract::NestedPath, response::Html};
use http::request::Parts;
use maud::{DOCTYPE, Markup, html};
use time::{OffsetDateTime, format_description::BorrowedFormatItem, macros::format_description};

use super::Staff;
use crate::{ids::SovReqToken, store::ConversionState};

/// How times are shown: to the second, in UTC.
const SHOWN: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");

/// The path the console is nested at (`/console`), for its links: empty at the root.
#[derive(Debug, Clone)]
pub(super) struct Base(pub(super) String);

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let nested = parts.extensions.get::<NestedPath>().map(NestedPath::as_str).unwrap_or_default();
        Ok(Self(nested.trim_end_matches('/').to_owned()))
    }
}

impl Base {
    /// The link to `path` (which starts with `/`) inside the console. The overview, `/`, is the
    /// nested path itself (`/console`): axum's `nest` matches no trailing slash.
    pub(super) fn to(&self, path: &str) -> String {
        match path.strip_prefix('/') {
            Some(rest) if !self.0.is_empty() && (rest.is_empty() || rest.starts_with('?')) => {
                format!("{}{rest}", self.0)
            }
            _ => format!("{}{path}", self.0),
        }
    }
}

/// A console page: the frame with its navigation, `title`, and `body`.
pub(super) fn page(base: &Base, staff: &Staff, title: &str, body: Markup) -> Html<String> {
    let frame = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Sovendus console" }
                link rel="stylesheet" href=(base.to("/style.css"));
            }
            body {
                header {
                    nav {
                        a href=(base.to("/")) { "Overview" }
                        @for state in ConversionState::ALL {
                            a href=(base.to(&format!("/conversions/{state}"))) { (state_name(state)) }
                        }
                        a href=(base.to("/invoice")) { "Invoice" }
                    }
                    p.who {
                        (staff.actor()) " · " @if staff.can_act() { "admin" } @else { "read-only" }
                    }
                }
                main { (body) }
            }
        }
    };
    Html(frame.into_string())
}

/// A page without navigation, for refusals, which may come before the console knows where it
/// is mounted.
pub(super) fn bare(title: &str, body: Markup) -> Html<String> {
    let frame = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) " · Sovendus console" } }
            body { main { (body) } }
        }
    };
    Html(frame.into_string())
}

/// `at`, to the second, in UTC.
pub(super) fn time(at: SystemTime) -> String {
    OffsetDateTime::from(at).format(SHOWN).unwrap_or_else(|_| "?".to_owned())
}

/// `at` in RFC 3339, for the export and JSON.
pub(super) fn rfc3339(at: SystemTime) -> String {
    let at = OffsetDateTime::from(at).replace_nanosecond(0).unwrap_or(OffsetDateTime::from(at));
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// `age` in words: the largest two units.
pub(super) fn age(age: Duration) -> String {
    let seconds = age.as_secs();
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds} s"),
        (0, 0, minutes) => format!("{minutes} min"),
        (0, hours, minutes) => format!("{hours} h {minutes} min"),
        (days, hours, _) => format!("{days} d {hours} h"),
    }
}

/// `token` masked, as lists show it: its first 8 characters.
pub(super) fn masked(token: &SovReqToken) -> String {
    token.to_string()
}

/// The state's name as a heading.
pub(super) fn state_name(state: ConversionState) -> &'static str {
    match state {
        ConversionState::Owed => "Owed",
        ConversionState::Parked => "Parked",
        ConversionState::Dead => "Dead",
        ConversionState::Delivered => "Delivered",
        ConversionState::Voided => "Voided",
    }
}

/// What each state means, in a line.
pub(super) fn state_meaning(state: ConversionState) -> &'static str {
    match state {
        ConversionState::Owed => "not delivered yet: retried on the schedule",
        ConversionState::Parked => "Sovendus refused the shop's configuration: retried until it is fixed",
        ConversionState::Dead => "Sovendus does not know the token, or never answered: not sent again",
        ConversionState::Delivered => "Sovendus accepted it: booked",
        ConversionState::Voided => "the order was taken back before delivery: never sent",
    }
}
