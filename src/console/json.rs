//! The console's lists and counts as JSON, for the shop's own tools: the same reads and the same
//! masking as the pages.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Path, Query, State},
};
use serde::Serialize;

use super::{
    Staff,
    filters::Filters,
    list,
    overview::{Overview, Span},
    page,
    refusal::Refusal,
};
use crate::{
    Delivery,
    store::{Conversion, ConversionState, TimeAxis},
};

/// A conversion as the JSON lists show it: its token masked.
#[derive(Debug, Serialize)]
pub(super) struct Listed {
    id: String,
    order: Option<String>,
    product: String,
    token: String,
    state: ConversionState,
    ordered_at: String,
    attempts: u32,
    calls: Vec<String>,
    next_attempt_at: Option<String>,
    settled_at: Option<String>,
    last_error: Option<String>,
    held_until: Option<String>,
}

impl From<&Conversion> for Listed {
    fn from(conversion: &Conversion) -> Self {
        Self {
            id: conversion.id.to_string(),
            order: conversion.order.as_ref().map(|order| order.as_str().to_owned()),
            product: conversion.product.as_str().to_owned(),
            token: page::masked(&conversion.token),
            state: conversion.state,
            ordered_at: page::rfc3339(conversion.ordered_at),
            attempts: conversion.attempts,
            calls: conversion.calls.iter().map(|at| page::rfc3339(*at)).collect(),
            next_attempt_at: conversion.next_attempt_at.map(page::rfc3339),
            settled_at: conversion.settled_at.map(page::rfc3339),
            last_error: conversion.last_error.clone(),
            held_until: conversion.held_until.map(page::rfc3339),
        }
    }
}

/// A page of a list, and the cursor of the next, if any.
#[derive(Debug, Serialize)]
pub(super) struct ListPage {
    conversions: Vec<Listed>,
    next: Option<String>,
}

/// `GET /api/conversions/{state}`: a page, with the list page's parameters.
pub(super) async fn list(
    State(delivery): State<Delivery>,
    _staff: Staff,
    Path(name): Path<String>,
    Query(filters): Query<Filters>,
) -> Result<Json<ListPage>, Refusal> {
    let state = list::state(&name)?;
    let listed = delivery.list(&filters.query(state, TimeAxis::Ordered)?).await?;
    let next = list::next_page(&listed, TimeAxis::Ordered).map(|cursor| cursor.to_string());
    Ok(Json(ListPage { conversions: listed.iter().map(Listed::from).collect(), next }))
}

/// The overview as JSON.
#[derive(Debug, Serialize)]
pub(super) struct OverviewJson {
    now: String,
    counts: BTreeMap<&'static str, u64>,
    oldest_owed_ordered_at: Option<String>,
    parked_causes: Vec<(String, u64)>,
    health: Health,
    daily: Vec<(String, BTreeMap<&'static str, u64>)>,
}

/// This instance's delivery, as JSON.
#[derive(Debug, Serialize)]
struct Health {
    running: bool,
    workers: usize,
    busy: usize,
    last_delivered_at: Option<String>,
    last_error_at: Option<String>,
    last_error: Option<String>,
}

/// `GET /api/overview`: what the overview shows.
pub(super) async fn overview(
    State(console): State<super::Console>,
    _staff: Staff,
    Query(span): Query<Span>,
) -> Result<Json<OverviewJson>, Refusal> {
    let overview = Overview::read(&console, span.days()?).await?;
    let by_state = |counts: &crate::store::ConversionCounts| {
        ConversionState::ALL
            .iter()
            .map(|state| (state.as_str(), counts.of(*state)))
            .collect::<BTreeMap<_, _>>()
    };
    let health = &overview.health;
    Ok(Json(OverviewJson {
        now: page::rfc3339(overview.now),
        counts: by_state(&overview.counts),
        oldest_owed_ordered_at: overview.oldest_owed.map(page::rfc3339),
        parked_causes: overview
            .parked_causes
            .iter()
            .map(|cause| (cause.reason.clone(), cause.count))
            .collect(),
        health: Health {
            running: health.running,
            workers: health.workers,
            busy: health.busy,
            last_delivered_at: health.last_delivered_at.map(page::rfc3339),
            last_error_at: health.last_error.as_ref().map(|(at, _)| page::rfc3339(*at)),
            last_error: health.last_error.as_ref().map(|(_, error)| error.clone()),
        },
        daily: overview
            .days
            .iter()
            .map(|day| (page::rfc3339(day.day)[..10].to_owned(), by_state(&day.counts)))
            .collect(),
    }))
}
