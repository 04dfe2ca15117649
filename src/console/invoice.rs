//! The invoice: the conversions Sovendus accepted in a date range, as a page that explains and
//! a CSV that finance checks Sovendus' commission invoice against.

use std::time::{Duration, SystemTime};

use axum::{
    extract::{Query, State},
    response::{Html, IntoResponse, Response},
};
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use maud::html;
use serde::Deserialize;

use super::{
    Staff, filters,
    page::{self, Base},
    refusal::Refusal,
};
use crate::{
    Delivery,
    store::{Conversion, ConversionState, Cursor, ListQuery, TimeAxis},
};

/// Conversions read from the store at a time for the export.
const BATCH: usize = 500;
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The range: the first and the last day (UTC, `YYYY-MM-DD`), both included.
#[derive(Debug, Deserialize)]
pub(super) struct Range {
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
}

impl Range {
    /// From the first day's midnight until the midnight after the last.
    fn bounds(&self) -> Result<(SystemTime, SystemTime), Refusal> {
        let from = filters::day("from", &self.from)?;
        let until = filters::day("until", &self.until)?;
        match (from, until) {
            (Some(from), Some(last)) if from <= last => Ok((from, last + DAY)),
            (Some(_), Some(_)) => {
                Err(Refusal::BadRequest("the range's first day is after its last".to_owned()))
            }
            _ => Err(Refusal::BadRequest("give the range's first and last days, from and until".to_owned())),
        }
    }
}

/// `GET /invoice`: what the export holds, and a form for its range.
pub(super) async fn show(base: Base, staff: Staff) -> Html<String> {
    let body = html! {
        h1 { "Invoice" }
        p {
            "Sovendus invoices a commission for each conversion it accepted. The export lists the \
             conversions delivered (accepted by Sovendus) between two days, by the day of delivery \
             (UTC): order reference, product, token, when it was ordered and when delivered, as CSV \
             (RFC 4180) to check the invoice against."
        }
        p {
            "Delivered conversions are kept for the delivery schedule's keep_settled_for (90 days \
             unless the shop set it otherwise), so last month's invoice can always be checked."
        }
        form method="get" action=(base.to("/invoice.csv")) {
            label { "From " input type="date" name="from" required; }
            label { "until (included) " input type="date" name="until" required; }
            button type="submit" { "Download CSV" }
        }
    };
    page::page(&base, &staff, "Invoice", body)
}

/// `GET /invoice.csv?from=&until=`: the delivered conversions of the range, oldest first.
pub(super) async fn csv(
    State(delivery): State<Delivery>,
    Query(range): Query<Range>,
) -> Result<Response, Refusal> {
    let (from, until) = range.bounds()?;
    let delivered = delivered_between(&delivery, from, until).await?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = ["order_reference", "product_id", "token", "ordered_at", "delivered_at"];
    let failed = |error: csv::Error| Refusal::BadRequest(format!("the CSV could not be written: {error}"));
    writer.write_record(header).map_err(failed)?;
    for conversion in &delivered {
        writer
            .write_record([
                conversion.order.as_ref().map_or("", |order| order.as_str()),
                conversion.product.as_str(),
                conversion.token.as_str(),
                &page::rfc3339(conversion.ordered_at),
                &conversion.settled_at.map(page::rfc3339).unwrap_or_default(),
            ])
            .map_err(failed)?;
    }
    let body = writer.into_inner().map_err(|error| failed(error.into_error().into()))?;
    let name = format!("attachment; filename=\"sovendus-delivered-{}-to-{}.csv\"", range.from, range.until);
    Ok(([(CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (CONTENT_DISPOSITION, name)], body)
        .into_response())
}

/// Every conversion delivered from `from` until `until`, by the time of delivery.
async fn delivered_between(
    delivery: &Delivery,
    from: SystemTime,
    until: SystemTime,
) -> Result<Vec<Conversion>, Refusal> {
    let mut query =
        ListQuery::new(ConversionState::Delivered).on(TimeAxis::Settled).between(from, until).limit(BATCH);
    let mut delivered = Vec::new();
    loop {
        let batch = delivery.list(&query).await?;
        let next = batch.last().and_then(|last| Cursor::after(last, TimeAxis::Settled));
        let full = batch.len() == BATCH;
        delivered.extend(batch);
        match next {
            Some(cursor) if full => query = query.after(cursor),
            _ => return Ok(delivered),
        }
    }
}
