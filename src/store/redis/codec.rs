//! How a [`RedisTokenStore`](super::RedisTokenStore) writes its records and reads them back,
//! refusing what does not decode.

use std::collections::HashMap;

use fred::types::Value;

use crate::{
    ids::OrderRef,
    ids::ProductId,
    ids::SovReqToken,
    store::{Capture, Conversion, ConversionId, LeaseId, StoreError, VoidOutcome, records::from_millis},
};

/// What the take script did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Took {
    /// No capture is stored.
    NoCapture,
    /// The stored capture is not `<expires_at>/<product ID>/<token>`; it was left in place.
    Corrupt,
    /// The capture had expired at the order's time; it went.
    Expired,
    /// The token went into the conversion with this ID before.
    Converted(String),
    /// The capture is now an owed conversion of this product and token.
    Owed { product: String, token: String },
}

impl Took {
    pub(super) fn from_reply(reply: Value) -> Self {
        let mut words = reply.into_array().into_iter().map(|word| word.into_string().unwrap_or_default());
        match (words.next().as_deref(), words.next(), words.next()) {
            (Some("none"), ..) => Self::NoCapture,
            (Some("expired"), ..) => Self::Expired,
            (Some("converted"), Some(id), _) => Self::Converted(id),
            (Some("owed"), Some(product), Some(token)) => Self::Owed { product, token },
            _ => Self::Corrupt,
        }
    }
}

/// What the void script's `reply` says about the conversion `id`: `{'none'}`, or what it found
/// (or did) and the conversion's fields as they are now.
pub(super) fn void_outcome(id: &str, reply: Value) -> Result<VoidOutcome, StoreError> {
    let mut reply = reply.into_array().into_iter();
    let what = reply.next().and_then(Value::into_string).unwrap_or_default();
    if what == "none" {
        return Ok(VoidOutcome::NotFound);
    }
    let fields = reply.next().unwrap_or(Value::Null);
    let conversion =
        decode_record(id, fields).map_err(|(id, corrupt)| unreadable_conversion(id, &corrupt))?;
    match what.as_str() {
        "voided" => Ok(VoidOutcome::Voided(conversion)),
        "delivered" => Ok(VoidOutcome::Delivered(conversion)),
        "already" => Ok(VoidOutcome::AlreadyVoided(conversion)),
        "sending" => Ok(VoidOutcome::Sending(conversion)),
        _ => Err(unreadable_conversion(Some(conversion.id), &Corrupt::Field("state"))),
    }
}

/// Why a conversion's record cannot be read; what it holds stays out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum Corrupt {
    /// Its ID is not 32 hexadecimal digits.
    #[error("its ID is not 32 hexadecimal digits")]
    Id,
    /// Its key is missing or holds something else than a hash.
    #[error("its key is missing or not a hash")]
    NotAHash,
    /// A field is missing, or its value is not valid.
    #[error("its field `{0}` is missing or not valid")]
    Field(&'static str),
}

/// The `(id, fields)` pairs of a script's `{id, fields, id, fields, …}` reply.
pub(super) fn records(reply: Value) -> impl Iterator<Item = (String, Value)> {
    let mut items = reply.into_array().into_iter();
    std::iter::from_fn(move || {
        let id = items.next()?;
        let fields = items.next()?;
        Some((id.into_string().unwrap_or_default(), fields))
    })
}

/// A conversion's record, from its ID and its hash's fields.
pub(super) fn decode_record(id: &str, fields: Value) -> Result<Conversion, (Option<ConversionId>, Corrupt)> {
    let parsed: ConversionId = id.parse().map_err(|_| (None, Corrupt::Id))?;
    if !fields.is_array() && !fields.is_map() {
        return Err((Some(parsed), Corrupt::NotAHash));
    }
    decode_conversion(parsed, fields.into_array()).map_err(|corrupt| (Some(parsed), corrupt))
}

/// A conversion from its hash's fields, `[name, value, name, value, …]`.
fn decode_conversion(id: ConversionId, fields: Vec<Value>) -> Result<Conversion, Corrupt> {
    let mut pairs = HashMap::with_capacity(fields.len() / 2);
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        // A name that is not UTF-8 is none of ours, and is left aside.
        if let Some(name) = name.into_string() {
            pairs.insert(name, value);
        }
    }
    let field = |name: &'static str| -> Result<Option<String>, Corrupt> {
        pairs.get(name).map(|value| value.as_string().ok_or(Corrupt::Field(name))).transpose()
    };
    let required = |name: &'static str| field(name)?.ok_or(Corrupt::Field(name));
    let time = |name: &'static str, value: String| {
        let millis = value.parse::<u64>().ok().and_then(|millis| i64::try_from(millis).ok());
        millis.map(from_millis).ok_or(Corrupt::Field(name))
    };
    let optional_time = |name: &'static str| field(name)?.map(|value| time(name, value)).transpose();

    let token = SovReqToken::new(required("token")?).map_err(|_| Corrupt::Field("token"))?;
    let product_text = required("product")?;
    let product = ProductId::new(&product_text)
        .ok()
        .filter(|product| product.as_str() == product_text)
        .ok_or(Corrupt::Field("product"))?;
    let order = field("order")?.map(OrderRef::new).transpose().map_err(|_| Corrupt::Field("order"))?;
    let leased = field("lease")?.is_some_and(|lease| !lease.is_empty());
    Ok(Conversion {
        id,
        token,
        product,
        order,
        ordered_at: time("ordered_at", required("ordered_at")?)?,
        state: required("state")?.parse().map_err(|_| Corrupt::Field("state"))?,
        attempts: required("attempts")?.parse().map_err(|_| Corrupt::Field("attempts"))?,
        next_attempt_at: optional_time("next_attempt_at")?,
        last_error: field("last_error")?,
        settled_at: optional_time("settled_at")?,
        calls: field("calls")?
            .unwrap_or_default()
            .split(',')
            .filter(|call| !call.is_empty())
            .map(|call| time("calls", call.to_owned()))
            .collect::<Result<_, _>>()?,
        // A lease's end shows while the record names a lease; a settlement removes both.
        held_until: if leased { optional_time("lease_until")? } else { None },
    })
}

/// A value read from Redis as text: `Some(None)` for nil, `None` if it is not UTF-8 text.
pub(super) fn text_or_null(value: Value) -> Option<Option<String>> {
    if value.is_null() { Some(None) } else { value.into_string().map(Some) }
}

/// A lease's ID as the scripts keep it: 32 hexadecimal digits.
pub(super) fn lease_text(lease: LeaseId) -> String {
    format!("{:032x}", lease.get())
}

/// `<expires_at>/<product ID>/<token>`: neither a product ID nor a token ever holds a `/`.
pub(super) fn encode_capture(capture: &Capture, expires_at: i64) -> String {
    format!("{expires_at}/{}/{}", capture.product, capture.token.as_str())
}

/// A capture and when it expires, from `<expires_at>/<product ID>/<token>`.
pub(super) fn decode_capture(value: &str) -> Result<(i64, Capture), StoreError> {
    let malformed = || unreadable_capture(MALFORMED);
    let (expires_at, rest) = value.split_once('/').ok_or_else(malformed)?;
    let expires_at = expires_at.parse::<u64>().ok().and_then(|millis| i64::try_from(millis).ok());
    let capture = decode_product_and_token(rest);
    match (expires_at, capture) {
        (Some(expires_at), Some(capture)) => Ok((expires_at, capture)),
        _ => Err(malformed()),
    }
}

/// `<product ID>/<token>`, if both are valid.
fn decode_product_and_token(value: &str) -> Option<Capture> {
    let (product, token) = value.split_once('/')?;
    let product = ProductId::new(product).ok().filter(|parsed| parsed.as_str() == product)?;
    Some(Capture { product, token: SovReqToken::new(token).ok()? })
}

/// Why a capture that is not `<expires_at>/<product ID>/<token>` is refused; what it holds
/// stays out.
pub(super) const MALFORMED: &str = "a capture in Redis is malformed";

/// Logs and counts a capture refused as unreadable; what it holds stays out of the log.
pub(super) fn unreadable_capture(reason: &'static str) -> StoreError {
    ::metrics::counter!(crate::metrics::UNREADABLE).increment(1);
    tracing::error!(reason, "a Sovendus capture in Redis is unreadable; it is never sent");
    StoreError::Unreadable(reason.to_owned())
}

/// Logs and counts a conversion refused as unreadable; its ID at most goes into the log.
pub(super) fn unreadable_conversion(id: Option<ConversionId>, corrupt: &Corrupt) -> StoreError {
    ::metrics::counter!(crate::metrics::UNREADABLE).increment(1);
    match id {
        Some(id) => {
            tracing::error!(%id, reason = %corrupt, "a Sovendus conversion in Redis is unreadable; it is never sent")
        }
        None => {
            tracing::error!(reason = %corrupt, "a Sovendus conversion in Redis is unreadable; it is never sent")
        }
    }
    let about = id.map(|id| format!("conversion {id}")).unwrap_or_else(|| "a conversion".to_owned());
    StoreError::Unreadable(format!("{about} in Redis is unreadable: {corrupt}"))
}

#[cfg(test)]
mod tests {
    use crate::store::ConversionState;

    use super::*;

    fn capture() -> Capture {
        Capture { token: "12345-test-123-12345".parse().unwrap(), product: ProductId::new("p-b").unwrap() }
    }

    #[test]
    fn captures_round_trip_and_bad_ones_are_refused() {
        assert_eq!(encode_capture(&capture(), 1_700), "1700/p-b/12345-test-123-12345");
        assert_eq!(decode_capture(&encode_capture(&capture(), 1_700)).unwrap(), (1_700, capture()));
        for bad in
            ["", "1700", "1700/p-b", "x/p-b/abc", "-1/p-b/abc", "1700/p b/abc", "1700/p/a/b", "1700//abc"]
        {
            let error = decode_capture(bad).unwrap_err();
            assert!(!error.is_retryable());
            assert_eq!(error.to_string(), format!("the token store holds an unreadable record: {MALFORMED}"));
        }
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<Value> {
        pairs.iter().flat_map(|(name, value)| [Value::from(*name), Value::from(*value)]).collect()
    }

    const RECORD: [(&str, &str); 7] = [
        ("token", "12345-test-123-12345"),
        ("product", "p-b"),
        ("order", "A-1"),
        ("ordered_at", "1700000000123"),
        ("state", "owed"),
        ("attempts", "2"),
        ("next_attempt_at", "1700000000999"),
    ];

    #[test]
    fn conversions_decode_and_corrupt_fields_are_named() {
        let id = ConversionId::from(7);
        let conversion = decode_conversion(id, fields(&RECORD)).unwrap();
        assert_eq!(conversion.order.as_ref().map(OrderRef::as_str), Some("A-1"));
        assert_eq!((conversion.attempts, conversion.state), (2, ConversionState::Owed));
        assert_eq!(conversion.next_attempt_at, Some(from_millis(1_700_000_000_999)));
        assert_eq!((conversion.last_error, conversion.settled_at), (None, None));
        for (name, bad) in [
            ("token", "a b"),
            ("product", " p-b"),
            ("order", ""),
            ("ordered_at", "-1"),
            ("state", "lost"),
            ("attempts", "x"),
            ("next_attempt_at", "soon"),
        ] {
            let mut record = RECORD.to_vec();
            record.retain(|(field, _)| *field != name);
            record.push((name, bad));
            assert_eq!(decode_conversion(id, fields(&record)), Err(Corrupt::Field(name)), "{name}");
        }
        let without_token: Vec<_> = RECORD.into_iter().filter(|(name, _)| *name != "token").collect();
        assert_eq!(decode_conversion(id, fields(&without_token)), Err(Corrupt::Field("token")));
        assert_eq!(decode_record("xyz", Value::Array(Vec::new())).unwrap_err(), (None, Corrupt::Id));
        assert_eq!(
            decode_record(&id.to_string(), Value::Integer(0)).unwrap_err(),
            (Some(id), Corrupt::NotAHash)
        );
    }

    #[test]
    fn a_lease_shows_its_end_and_a_last_call_its_time() {
        let id = ConversionId::from(7);
        let mut record = RECORD.to_vec();
        record.push(("lease_until", "1700000060000"));
        let unleased = decode_conversion(id, fields(&record)).unwrap();
        assert_eq!((unleased.held_until, unleased.calls), (None, Vec::new()), "no lease named");
        record.extend([
            ("lease", "0123456789abcdef0123456789abcdef"),
            ("calls", ",1700000001000,1700000002000"),
        ]);
        let held = decode_conversion(id, fields(&record)).unwrap();
        assert_eq!(held.held_until, Some(from_millis(1_700_000_060_000)));
        assert_eq!(held.calls, [from_millis(1_700_000_001_000), from_millis(1_700_000_002_000)]);
        for name in ["lease_until", "calls"] {
            let mut bad = record.clone();
            bad.retain(|(field, _)| *field != name);
            bad.push((name, "later"));
            assert_eq!(decode_conversion(id, fields(&bad)), Err(Corrupt::Field(name)), "{name}");
        }
    }

    #[test]
    fn the_take_scripts_answers_are_read() {
        let reply = |words: &[&str]| Value::Array(words.iter().map(|word| Value::from(*word)).collect());
        assert_eq!(Took::from_reply(reply(&["none"])), Took::NoCapture);
        assert_eq!(Took::from_reply(reply(&["expired"])), Took::Expired);
        assert_eq!(Took::from_reply(reply(&["converted", "ab"])), Took::Converted("ab".to_owned()));
        let owed = Took::Owed { product: "p".to_owned(), token: "t".to_owned() };
        assert_eq!(Took::from_reply(reply(&["owed", "p", "t"])), owed);
        assert_eq!(Took::from_reply(reply(&["corrupt"])), Took::Corrupt);
        assert_eq!(Took::from_reply(Value::Null), Took::Corrupt);
    }

    #[test]
    fn the_void_scripts_answers_are_read() {
        let id = ConversionId::from(7).to_string();
        let reply = |what: &str, record: &[(&str, &str)]| {
            Value::Array(vec![what.into(), Value::Array(fields(record))])
        };
        let voided = |outcome| match outcome {
            Ok(VoidOutcome::Voided(conversion)) => Some(conversion.state),
            _ => None,
        };
        assert!(matches!(void_outcome(&id, Value::Array(vec!["none".into()])), Ok(VoidOutcome::NotFound)));
        let mut record = RECORD.to_vec();
        record.retain(|(name, _)| *name != "state");
        record.push(("state", "voided"));
        assert_eq!(voided(void_outcome(&id, reply("voided", &record))), Some(ConversionState::Voided));
        assert!(matches!(void_outcome(&id, reply("already", &record)), Ok(VoidOutcome::AlreadyVoided(_))));
        assert!(matches!(void_outcome(&id, reply("sending", &RECORD)), Ok(VoidOutcome::Sending(_))));
        assert!(matches!(void_outcome(&id, reply("delivered", &RECORD)), Ok(VoidOutcome::Delivered(_))));
        assert!(void_outcome(&id, reply("corrupt", &RECORD)).is_err());
        assert!(void_outcome(&id, Value::Array(vec!["corrupt".into(), Value::Integer(0)])).is_err());
    }
}
