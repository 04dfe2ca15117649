//! Rows read back into records, on either backend. A row that does not decode (a token,
//! product, order reference, state or ID that is not valid, a column of the wrong type) is
//! unreadable: refused, logged without its content and counted, and never sent.

use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::{
    ids::OrderRef,
    ids::ProductId,
    ids::SovReqToken,
    metrics,
    store::StoreError,
    store::{Capture, Conversion, ConversionId, ConversionState, records::from_millis},
};

/// Column `column` of `row`, or why it cannot be read.
fn column<'r, R, T>(row: &'r R, column: &'static str) -> Result<T, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(column).map_err(|_| unreadable(format!("its `{column}` column does not decode")))
}

fn unreadable(reason: impl Into<String>) -> StoreError {
    StoreError::Unreadable(reason.into())
}

/// The capture in `row` (columns `token`, `product_id`).
pub(super) fn capture<'r, R>(row: &'r R) -> Result<Capture, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let token: String = column(row, "token")?;
    let product: String = column(row, "product_id")?;
    Ok(Capture {
        token: SovReqToken::new(token).map_err(|_| unreadable("its token is not a valid token"))?,
        product: ProductId::new(product).map_err(|_| unreadable("its product ID is not valid"))?,
    })
}

/// The capture in `row` (columns `token`, `product_id`, `expires_at`), if it is live at `at`
/// (milliseconds).
pub(super) fn live_capture<'r, R>(row: &'r R, at: i64) -> Result<Option<Capture>, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let expires_at: i64 = column(row, "expires_at")?;
    if expires_at <= at { Ok(None) } else { capture(row).map(Some) }
}

/// A conversion's ID, as stored.
pub(super) fn conversion_id(stored: &str) -> Result<ConversionId, StoreError> {
    stored.parse()
}

/// The conversion in `row` (the columns of `conversion_columns!`).
pub(super) fn conversion<'r, R>(row: &'r R) -> Result<Conversion, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let id = conversion_id(&column::<_, String>(row, "id")?)?;
    let Capture { token, product } = capture(row)?;
    let order = column::<_, Option<String>>(row, "order_ref")?
        .map(OrderRef::new)
        .transpose()
        .map_err(|_| unreadable("its order reference is not valid"))?;
    let state: ConversionState = column::<_, String>(row, "state")?.parse()?;
    let attempts = u32::try_from(column::<_, i64>(row, "attempts")?)
        .map_err(|_| unreadable("its count of attempts is out of range"))?;
    let time = |name| column::<_, Option<i64>>(row, name).map(|millis| millis.map(from_millis));
    let ordered_at = from_millis(column(row, "ordered_at")?);
    Ok(Conversion {
        id,
        token,
        product,
        order,
        ordered_at,
        state,
        attempts,
        next_attempt_at: time("next_attempt_at")?,
        last_error: column(row, "last_error")?,
        settled_at: time("settled_at")?,
        calls: calls(column::<_, Option<String>>(row, "calls")?.as_deref().unwrap_or_default())?,
        held_until: time("lease_until")?,
    })
}

/// The times of a conversion's calls, from its `calls` column: `,` and milliseconds each.
fn calls(text: &str) -> Result<Vec<std::time::SystemTime>, StoreError> {
    let unreadable = || StoreError::Unreadable("its calls are not times".to_owned());
    text.split(',')
        .filter(|call| !call.is_empty())
        .map(|call| call.parse().map(from_millis).map_err(|_| unreadable()))
        .collect()
}

/// The conversion in `row`, or `None` (logged and counted) if it is unreadable.
pub(super) fn readable_conversion<'r, R>(row: &'r R) -> Option<Conversion>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    conversion(row).inspect_err(|error| refused("conversion", readable_id(row), error)).ok()
}

/// The ID of the conversion in `row`, if it is readable.
pub(super) fn readable_id<'r, R>(row: &'r R) -> Option<ConversionId>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    column::<_, String>(row, "id").ok().and_then(|id| conversion_id(&id).ok())
}

/// Logs an unreadable `record` at ERROR (its ID, if it has a readable one, and why; nothing it
/// holds) and counts it.
pub(super) fn refused(record: &'static str, id: Option<ConversionId>, error: &StoreError) {
    ::metrics::counter!(metrics::UNREADABLE).increment(1);
    match id {
        Some(id) => tracing::error!(record, %id, %error, "refused an unreadable Sovendus record"),
        None => tracing::error!(record, %error, "refused an unreadable Sovendus record"),
    }
}
