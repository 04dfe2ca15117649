//! What a list page is asked for in its URL: the order, a product, a date range and the cursor,
//! read into a [`ListQuery`].

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use time::{Date, macros::format_description};

use super::refusal::Refusal;
use crate::{
    ids::ProductId,
    store::{ConversionId, ConversionState, Cursor, ListQuery, TimeAxis},
};

/// Conversions on a page of a list.
pub(super) const PAGE: usize = 50;
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A list's parameters, as the filter form sends them: empty fields are left out.
#[derive(Debug, Default, Clone, Deserialize)]
pub(super) struct Filters {
    /// `oldest` or `newest` (the default).
    #[serde(default)]
    pub(super) order: String,
    #[serde(default)]
    pub(super) product: String,
    /// The first day, `YYYY-MM-DD` (UTC).
    #[serde(default)]
    pub(super) from: String,
    /// The last day, included.
    #[serde(default)]
    pub(super) until: String,
    /// The cursor of the previous page's last conversion.
    #[serde(default)]
    pub(super) after: String,
}

impl Filters {
    /// The query for `state`'s page on `axis`, or why a parameter does not parse.
    pub(super) fn query(&self, state: ConversionState, axis: TimeAxis) -> Result<ListQuery, Refusal> {
        let mut query = ListQuery::new(state).on(axis).limit(PAGE);
        query = match self.order.as_str() {
            "" | "newest" => query.newest_first(),
            "oldest" => query,
            other => return Err(Refusal::BadRequest(format!("order is oldest or newest, not {other:?}"))),
        };
        if !self.product.is_empty() {
            let product = ProductId::new(&self.product)
                .map_err(|error| Refusal::BadRequest(format!("product: {error}")))?;
            query = query.product(product);
        }
        query.from = day("from", &self.from)?;
        query.until = day("until", &self.until)?.map(|last| last + DAY);
        if !self.after.is_empty() {
            let cursor: Cursor = self
                .after
                .parse()
                .map_err(|_| Refusal::BadRequest("after: not a page's cursor".to_owned()))?;
            query = query.after(cursor);
        }
        Ok(query)
    }

    /// These filters, on the page after `cursor`, as a query string.
    pub(super) fn after(&self, cursor: Cursor) -> String {
        Self { after: cursor.to_string(), ..self.clone() }.to_query()
    }

    /// These filters on their first page, as a query string.
    pub(super) fn first_page(&self) -> String {
        Self { after: String::new(), ..self.clone() }.to_query()
    }

    fn to_query(&self) -> String {
        let pairs = [
            ("order", &self.order),
            ("product", &self.product),
            ("from", &self.from),
            ("until", &self.until),
            ("after", &self.after),
        ];
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in pairs.into_iter().filter(|(_, value)| !value.is_empty()) {
            query.append_pair(name, value);
        }
        query.finish()
    }
}

/// The conversion ID in a path, or a 404.
pub(super) fn conversion_id(text: &str) -> Result<ConversionId, Refusal> {
    text.parse().map_err(|_| Refusal::NotFound(format!("no conversion {text:?}")))
}

/// The midnight (UTC) starting the day `text` names, if any.
pub(super) fn day(name: &str, text: &str) -> Result<Option<SystemTime>, Refusal> {
    if text.is_empty() {
        return Ok(None);
    }
    let date = Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map_err(|_| Refusal::BadRequest(format!("{name}: a day is YYYY-MM-DD, not {text:?}")))?;
    Ok(Some(date.midnight().assume_utc().into()))
}
