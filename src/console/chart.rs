//! The overview's chart: conversions per day by state, as an SVG drawn on the server, styled by
//! the console's stylesheet (no script, nothing fetched).

use maud::{Markup, html};

use super::page;
use crate::store::{ConversionState, DailyCounts};

/// Each day's bar, and the gap beside it, in SVG units.
const BAR: u64 = 12;
/// The height of the tallest bar.
const HEIGHT: u64 = 160;
/// Room for the labels under and beside the bars.
const MARGIN: u64 = 40;

/// `days` as stacked bars, one a day, a band per state, the tallest day at full height.
pub(super) fn daily_bars(days: &[DailyCounts]) -> Markup {
    let total =
        |day: &DailyCounts| ConversionState::ALL.iter().map(|state| day.counts.of(*state)).sum::<u64>();
    let top = days.iter().map(total).max().unwrap_or(0).max(1);
    let width = MARGIN + BAR * days.len() as u64;
    let scale = |count: u64| count * HEIGHT / top;
    let label = |day: &DailyCounts| page::time(day.day)[..10].to_owned();
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" role="img" viewBox=(format!("0 0 {width} {}", HEIGHT + MARGIN))
            aria-label="Conversions per day by state" {
            line.axis x1=(MARGIN) y1=(HEIGHT) x2=(width) y2=(HEIGHT) {}
            text.label x="0" y="10" { (top) }
            text.label x="0" y=(HEIGHT) { "0" }
            @for (index, day) in days.iter().enumerate() {
                g {
                    title { (label(day)) ": " (summary(day)) }
                    @for (state, y, height) in bands(day, scale) {
                        rect class=(state.as_str()) x=(MARGIN + BAR * index as u64) y=(y) width=(BAR - 2) height=(height) {}
                    }
                }
            }
            @if let (Some(first), Some(last)) = (days.first(), days.last()) {
                text.label x=(MARGIN) y=(HEIGHT + 16) { (label(first)) }
                text.label x=(width) y=(HEIGHT + 16) text-anchor="end" { (label(last)) }
            }
        }
        p.legend {
            @for state in ConversionState::ALL {
                span class=(format!("key {}", state.as_str())) { (page::state_name(state)) }
            }
        }
    }
}

/// A day's bands, bottom up: each state with a count, its top and its height.
fn bands(day: &DailyCounts, scale: impl Fn(u64) -> u64) -> Vec<(ConversionState, u64, u64)> {
    let mut top = HEIGHT;
    let mut bands = Vec::new();
    for state in ConversionState::ALL {
        let height = scale(day.counts.of(state));
        if height > 0 {
            top -= height.min(top);
            bands.push((state, top, height));
        }
    }
    bands
}

/// A day's counts in words.
fn summary(day: &DailyCounts) -> String {
    let parts: Vec<String> = ConversionState::ALL
        .iter()
        .map(|state| (state, day.counts.of(*state)))
        .filter(|(_, count)| *count > 0)
        .map(|(state, count)| format!("{count} {state}"))
        .collect();
    if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
}
