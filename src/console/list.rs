//! A state's conversions, a page at a time, filtered; and a conversion found by its order
//! reference or its token.

use axum::{
    extract::{Path, Query, State},
    response::Html,
};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    Staff,
    filters::{Filters, PAGE},
    page::{self, Base},
    refusal::Refusal,
};
use crate::{
    Delivery,
    ids::{OrderRef, SovReqToken},
    store::{Conversion, ConversionState, Cursor, TimeAxis},
};

/// `state` from the path, or a 404.
pub(super) fn state(name: &str) -> Result<ConversionState, Refusal> {
    name.parse().map_err(|_| Refusal::NotFound(format!("no state {name:?}")))
}

/// `GET /conversions/{state}`: a page of the state's conversions.
pub(super) async fn show(
    State(delivery): State<Delivery>,
    base: Base,
    staff: Staff,
    Path(name): Path<String>,
    Query(filters): Query<Filters>,
) -> Result<Html<String>, Refusal> {
    let state = state(&name)?;
    let listed = delivery.list(&filters.query(state, TimeAxis::Ordered)?).await?;
    let next = next_page(&listed, TimeAxis::Ordered);
    let path = base.to(&format!("/conversions/{state}"));
    let body = html! {
        h1 { (page::state_name(state)) }
        p { "Conversions that are " (state) ": " (page::state_meaning(state)) "." }
        form.filters method="get" action=(path) {
            label { "Order " select name="order" {
                option value="newest" selected[filters.order != "oldest"] { "newest first" }
                option value="oldest" selected[filters.order == "oldest"] { "oldest first" }
            } }
            label { "Product " input type="text" name="product" value=(filters.product); }
            label { "Ordered from " input type="date" name="from" value=(filters.from); }
            label { "until " input type="date" name="until" value=(filters.until); }
            button type="submit" { "Show" }
        }
        (table(&base, &listed))
        p.pages {
            @if !filters.after.is_empty() { a href=(format!("{path}?{}", filters.first_page())) { "First page" } }
            @if let Some(cursor) = next { a rel="next" href=(format!("{path}?{}", filters.after(cursor))) { "Next page" } }
        }
    };
    Ok(page::page(&base, &staff, page::state_name(state), body))
}

/// The cursor after a full page's last conversion: `None` when the page was the last.
pub(super) fn next_page(listed: &[Conversion], axis: TimeAxis) -> Option<Cursor> {
    (listed.len() == PAGE).then(|| listed.last().and_then(|last| Cursor::after(last, axis))).flatten()
}

/// `conversions` as a table, each linking to its page; tokens masked.
pub(super) fn table(base: &Base, conversions: &[Conversion]) -> Markup {
    html! {
        @if conversions.is_empty() {
            p.empty { "None." }
        } @else {
            table.conversions {
                thead { tr {
                    th { "Ordered" } th { "Order" } th { "Product" } th { "Token" } th { "State" }
                    th.number { "Calls" } th { "Next call / settled" } th { "Last answer" }
                } }
                tbody {
                    @for conversion in conversions {
                        @let link = base.to(&format!("/conversion/{}", conversion.id));
                        tr {
                            td { a href=(link) { (page::time(conversion.ordered_at)) } }
                            td { @match &conversion.order { Some(order) => a href=(link) { (order.as_str()) }, None => "—" } }
                            td { (conversion.product.as_str()) }
                            td.token { (page::masked(&conversion.token)) }
                            td { (conversion.state) }
                            td.number { (conversion.attempts) }
                            td { @match conversion.settled_at.or(conversion.next_attempt_at) { Some(at) => (page::time(at)), None => "—" } }
                            td.answer { (conversion.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

/// The search's parameter: an order reference or a token.
#[derive(Debug, Deserialize)]
pub(super) struct Search {
    #[serde(default)]
    q: String,
}

/// `GET /search?q=`: the conversions of that order reference or token.
pub(super) async fn search(
    State(delivery): State<Delivery>,
    base: Base,
    staff: Staff,
    Query(Search { q }): Query<Search>,
) -> Result<Html<String>, Refusal> {
    let q = q.trim();
    let mut found: Vec<Conversion> = Vec::new();
    if let Ok(order) = OrderRef::new(q) {
        found.extend(delivery.find(&order).await?);
    }
    if let Ok(token) = q.parse::<SovReqToken>() {
        if let Some(conversion) = delivery.find_token(&token).await? {
            if found.iter().all(|known| known.id != conversion.id) {
                found.push(conversion);
            }
        }
    }
    let body = html! {
        h1 { "Find a conversion" }
        form method="get" action=(base.to("/search")) {
            label for="q" { "Order reference or token" }
            input #q type="search" name="q" value=(q) required;
            button type="submit" { "Find" }
        }
        @if !q.is_empty() {
            p { (found.len()) " found for the order reference or token " code { (q) } "." }
            (table(&base, &found))
        }
    };
    Ok(page::page(&base, &staff, "Find a conversion", body))
}
