//! What an admin does: retry one parked conversion or all of them, send a dead one again, void
//! one. Each is logged with the actor the shop named, and answers with the conversion's page
//! saying what happened (or the overview, for all the parked ones).

use axum::{
    Form,
    extract::{Path, State},
    response::Redirect,
};
use serde::{Deserialize, Serialize};

use super::{Console, Staff, filters, page::Base, refusal::Refusal};
use crate::{store::ConversionState, store::VoidOutcome};

/// What an action did, told on the page it lands on.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Done {
    Retried,
    NotParked,
    Revived,
    NotDead,
    Voided,
    VoidPending,
    AlreadyDelivered,
    AlreadyVoided,
    RetriedAllParked,
}

impl Done {
    /// What it did, in words.
    pub(super) fn message(self) -> &'static str {
        match self {
            Self::Retried => "Due now: the workers call Sovendus for it at once.",
            Self::NotParked => "It was no longer parked: nothing was changed.",
            Self::Revived => "Owed again and due now: it gets one call, and is dead again if that fails.",
            Self::NotDead => "It was no longer dead: nothing was changed.",
            Self::Voided => "Voided: it is never sent.",
            Self::VoidPending => {
                "A delivery holds it: its call may be out now. It is marked voided and no further \
                 call starts; if Sovendus accepts the call under way, it is delivered. Look again in a \
                 minute."
            }
            Self::AlreadyDelivered => {
                "Sovendus booked it before the void: tell Sovendus its token and when it was delivered."
            }
            Self::AlreadyVoided => "It was voided before.",
            Self::RetriedAllParked => "Every parked conversion is due now.",
        }
    }
}

/// The form of a retry: a dead conversion is sent again only with `booked_twice_ok=yes`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RetryForm {
    #[serde(default)]
    booked_twice_ok: String,
}

/// `POST /conversion/{id}/retry`: a parked conversion due now, or a dead one owed again.
pub(super) async fn retry(
    State(console): State<Console>,
    base: Base,
    staff: Staff,
    Path(text): Path<String>,
    Form(form): Form<RetryForm>,
) -> Result<Redirect, Refusal> {
    let (id, delivery) = (filters::conversion_id(&text)?, &console.delivery);
    let conversion =
        delivery.get(id).await?.ok_or_else(|| Refusal::NotFound(format!("no conversion {id}")))?;
    let done = match conversion.state {
        ConversionState::Dead if form.booked_twice_ok != "yes" => {
            return Err(Refusal::BadRequest(
                "A dead conversion is sent again only once you confirm it may be booked twice.".to_owned(),
            ));
        }
        ConversionState::Dead if delivery.retry_dead(id).await? => Done::Revived,
        ConversionState::Dead => Done::NotDead,
        _ if delivery.retry_parked_one(id).await? => Done::Retried,
        _ => Done::NotParked,
    };
    console.changed().await;
    tracing::info!(actor = staff.actor(), %id, token = %conversion.token, done = ?done, "Sovendus console: retry");
    Ok(to_conversion(&base, &text, done))
}

/// `POST /conversion/{id}/void`.
pub(super) async fn void(
    State(console): State<Console>,
    base: Base,
    staff: Staff,
    Path(text): Path<String>,
) -> Result<Redirect, Refusal> {
    let id = filters::conversion_id(&text)?;
    let done = match console.delivery.void_conversion(id).await? {
        VoidOutcome::Voided(_) => Done::Voided,
        VoidOutcome::Sending(_) => Done::VoidPending,
        VoidOutcome::Delivered(_) => Done::AlreadyDelivered,
        VoidOutcome::AlreadyVoided(_) => Done::AlreadyVoided,
        VoidOutcome::NotFound => return Err(Refusal::NotFound(format!("no conversion {id}"))),
    };
    console.changed().await;
    tracing::info!(actor = staff.actor(), %id, done = ?done, "Sovendus console: void");
    Ok(to_conversion(&base, &text, done))
}

/// `POST /parked/retry`: every parked conversion due now.
pub(super) async fn retry_all_parked(
    State(console): State<Console>,
    base: Base,
    staff: Staff,
) -> Result<Redirect, Refusal> {
    let retried = console.delivery.retry_parked().await?;
    console.changed().await;
    tracing::info!(actor = staff.actor(), retried, "Sovendus console: retry every parked conversion");
    Ok(Redirect::to(&base.to(&format!("/?done={}", done_name(Done::RetriedAllParked)))))
}

/// Back to the conversion's page, saying what was done (POST, redirect, GET: a reload does not
/// act again).
fn to_conversion(base: &Base, id: &str, done: Done) -> Redirect {
    Redirect::to(&base.to(&format!("/conversion/{id}?done={}", done_name(done))))
}

/// How `done` reads in a URL.
fn done_name(done: Done) -> String {
    serde_json::to_value(done).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
}
