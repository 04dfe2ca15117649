//! A conversion's page: its order, product and whole token, its times, its last answer,
//! whether a delivery holds it now, and what staff may do with it.

use axum::{
    extract::{Path, Query, State},
    response::Html,
};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    Staff,
    actions::Done,
    filters,
    page::{self, Base},
    refusal::Refusal,
};
use crate::{
    Delivery,
    store::{Conversion, ConversionState},
};

/// The page's parameter: what the action before it did.
#[derive(Debug, Deserialize)]
pub(super) struct Flash {
    done: Option<Done>,
}

/// `GET /conversion/{id}`.
pub(super) async fn show(
    State(delivery): State<Delivery>,
    base: Base,
    staff: Staff,
    Path(text): Path<String>,
    Query(flash): Query<Flash>,
) -> Result<Html<String>, Refusal> {
    let id = filters::conversion_id(&text)?;
    let conversion =
        delivery.get(id).await?.ok_or_else(|| Refusal::NotFound(format!("no conversion {id}")))?;
    let now = delivery.now().await?;
    let held = conversion.held_until.filter(|until| *until > now);
    let c = &conversion;
    let body = html! {
        h1 { "Conversion " code { (c.id) } }
        @if let Some(done) = flash.done { p.done { (done.message()) } }
        dl.conversion {
            dt { "State" } dd { strong { (c.state) } ": " (page::state_meaning(c.state)) }
            dt { "Order" } dd { @match &c.order { Some(order) => (order.as_str()), None => "— (recorded without the order's reference)" } }
            dt { "Product" } dd { (c.product.as_str()) }
            dt { "Token" } dd.token { code { (c.token.as_str()) } }
            dt { "Ordered" } dd { (page::time(c.ordered_at)) }
            dt { "Calls to Sovendus" } dd { (c.attempts) }
            dt { "Calls ended" }
            dd.calls {
                @if c.calls.is_empty() { "none yet" }
                @else {
                    @if c.attempts as usize > c.calls.len() { "the last " (c.calls.len()) ": " }
                    @for (n, at) in c.calls.iter().enumerate() { @if n > 0 { ", " } (page::time(*at)) }
                }
            }
            dt { "Next call" } dd { @match c.next_attempt_at { Some(at) => (page::time(at)), None => "none" } }
            dt { @if c.state == ConversionState::Delivered { "Delivered" } @else { "Settled" } }
            dd { @match c.settled_at { Some(at) => (page::time(at)), None => "not yet" } }
            dt { "Last answer" } dd.answer { (last_answer(c)) }
            dt { "Held by a delivery" }
            dd { @match held { Some(until) => { "yes, until " (page::time(until)) ": a call may be out now" }, None => "no" } }
        }
        @if staff.can_act() && (!c.state.is_settled() || c.state == ConversionState::Dead) { (actions(&base, c)) }
    };
    Ok(page::page(&base, &staff, "Conversion", body))
}

/// What Sovendus last answered, in words.
fn last_answer(conversion: &Conversion) -> String {
    match (&conversion.last_error, conversion.state) {
        (_, ConversionState::Delivered) => "200: accepted".to_owned(),
        (Some(error), _) => error.clone(),
        (None, _) if conversion.attempts == 0 => "not called yet".to_owned(),
        (None, _) => "none recorded".to_owned(),
    }
}

/// The forms of what an admin may do with `conversion` in its state.
fn actions(base: &Base, conversion: &Conversion) -> Markup {
    let path = |action: &str| base.to(&format!("/conversion/{}/{action}", conversion.id));
    html! {
        section.actions {
            h2 { "Actions" }
            @match conversion.state {
                ConversionState::Parked => form method="post" action=(path("retry")) {
                    p { "Once the shop's configuration is fixed: call Sovendus for it now." }
                    button type="submit" { "Retry now" }
                },
                ConversionState::Dead => form method="post" action=(path("retry")) {
                    p.warning { "Its last call may have reached Sovendus unanswered and been booked: sent again, it may be booked twice." }
                    label { input type="checkbox" name="booked_twice_ok" value="yes" required; " I know it may be booked twice" }
                    button type="submit" { "Send it again" }
                },
                _ => {}
            }
            @if matches!(conversion.state, ConversionState::Owed | ConversionState::Parked | ConversionState::Dead) {
                form method="post" action=(path("void")) {
                    p { "The order was taken back: never send this conversion. If a delivery holds it now, its call decides: voided, or delivered if Sovendus accepts it." }
                    button.danger type="submit" { "Void" }
                }
            }
        }
    }
}
