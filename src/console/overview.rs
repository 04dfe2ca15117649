//! The overview: counts per state, the oldest owed conversion's age, why conversions are parked,
//! how this instance's delivery is doing, and conversions per day.

use std::time::{Duration, SystemTime};

use axum::{
    extract::{Query, State},
    response::Html,
};
use maud::html;
use serde::Deserialize;

use super::{
    Console, Staff, chart,
    page::{self, Base},
    refusal::Refusal,
};
use crate::{
    delivery::DeliveryHealth,
    store::{Cause, ConversionCounts, ConversionState, DailyCounts, ListQuery},
};

/// The days the chart can span.
const SPANS: [u32; 2] = [30, 90];
/// The most causes of parking shown.
const CAUSES: usize = 10;
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// What the overview shows, read from the store and the delivery.
pub(super) struct Overview {
    pub(super) now: SystemTime,
    pub(super) counts: ConversionCounts,
    /// When the counts were read.
    pub(super) counted_at: SystemTime,
    /// When the oldest owed conversion was ordered.
    pub(super) oldest_owed: Option<SystemTime>,
    pub(super) parked_causes: Vec<Cause>,
    pub(super) health: DeliveryHealth,
    pub(super) days: Vec<DailyCounts>,
}

impl Overview {
    /// Reads it all, the chart over the last `span` days, today included.
    pub(super) async fn read(console: &Console, span: u32) -> Result<Self, Refusal> {
        let delivery = &console.delivery;
        let now = delivery.now().await?;
        let oldest = delivery.list(&ListQuery::new(ConversionState::Owed).limit(1)).await?;
        let (counts, counted_at) = console.counts().await?;
        Ok(Self {
            now,
            counts,
            counted_at,
            oldest_owed: oldest.first().map(|conversion| conversion.ordered_at),
            parked_causes: delivery.causes(ConversionState::Parked, CAUSES).await?,
            health: delivery.health(),
            days: console.daily(now - DAY * span.saturating_sub(1), now).await?,
        })
    }
}

/// The overview's parameters: the chart's span in days.
#[derive(Debug, Deserialize)]
pub(super) struct Span {
    days: Option<u32>,
    /// What the action before this page did.
    done: Option<super::actions::Done>,
}

impl Span {
    /// The span asked for, if it is one of [`SPANS`].
    pub(super) fn days(&self) -> Result<u32, Refusal> {
        match self.days {
            None => Ok(SPANS[0]),
            Some(days) if SPANS.contains(&days) => Ok(days),
            Some(days) => Err(Refusal::BadRequest(format!("the chart spans 30 or 90 days, not {days}"))),
        }
    }
}

/// `GET /`: the overview.
pub(super) async fn show(
    State(console): State<Console>,
    base: Base,
    staff: Staff,
    Query(span): Query<Span>,
) -> Result<Html<String>, Refusal> {
    let (done, span) = (span.done, span.days()?);
    let overview = Overview::read(&console, span).await?;
    let counts = &overview.counts;
    let health = &overview.health;
    let body = html! {
        h1 { "Sovendus conversions" }
        @if let Some(done) = done { p.done { (done.message()) } }
        p.note { "Counted at " (page::time(overview.counted_at)) " (counts are shared for up to ten seconds)." }
        section.counts {
            @for state in ConversionState::ALL {
                a class=(format!("count {}", state.as_str())) href=(base.to(&format!("/conversions/{state}"))) {
                    strong { (counts.of(state)) }
                    span { (page::state_name(state)) }
                    small { (page::state_meaning(state)) }
                }
            }
        }
        section {
            h2 { "Owed" }
            @match overview.oldest_owed {
                Some(ordered_at) => p {
                    "The oldest owed conversion was ordered "
                    (page::age(overview.now.duration_since(ordered_at).unwrap_or_default())) " ago ("
                    (page::time(ordered_at)) ")."
                },
                None => p { "No conversion is owed." },
            }
        }
        section {
            h2 { "Parked" }
            @if overview.parked_causes.is_empty() {
                p { "No conversion is parked." }
            } @else {
                p { "Sovendus refused these for the shop's configuration (the API key, the product IDs, the endpoint). Fix it; the workers retry at their next attempt, or now:" }
                table {
                    thead { tr { th { "Sovendus' answer" } th.number { "Conversions" } } }
                    tbody {
                        @for cause in &overview.parked_causes {
                            tr { td { (cause.reason) } td.number { (cause.count) } }
                        }
                    }
                }
                @if staff.can_act() {
                    form method="post" action=(base.to("/parked/retry")) {
                        button type="submit" { "Retry every parked conversion now" }
                    }
                }
            }
        }
        section {
            h2 { "Delivery (this instance)" }
            dl {
                dt { "Workers" }
                dd {
                    @if health.running { (health.busy) " of " (health.workers) " delivering" }
                    @else { "not running (" (health.workers) " configured): they start with the first request, and stop at the shutdown" }
                }
                dt { "Last delivered" }
                dd { @match health.last_delivered_at { Some(at) => (page::time(at)), None => "not since this instance started" } }
                dt { "Last error" }
                dd {
                    @match &health.last_error {
                        Some((at, error)) => { (page::time(*at)) ": " (error) },
                        None => "none since this instance started",
                    }
                }
            }
        }
        section {
            h2 { "Conversions per day, by the state each is in now" }
            p.note { "Today and yesterday as they are now; the days before, as they were at most five minutes ago." }
            p.spans {
                @for days in SPANS {
                    @if days == span { strong { (days) " days" } }
                    @else { a href=(base.to(&format!("/?days={days}"))) { (days) " days" } }
                }
            }
            (chart::daily_bars(&overview.days))
        }
        section {
            h2 { "Find a conversion" }
            form method="get" action=(base.to("/search")) {
                label for="q" { "Order reference or token" }
                input #q type="search" name="q" required;
                button type="submit" { "Find" }
            }
        }
    };
    Ok(page::page(&base, &staff, "Overview", body))
}
