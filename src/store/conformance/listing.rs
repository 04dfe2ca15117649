//! The rules of what the staff see: pages, counts per day, causes, a conversion by its token,
//! one parked conversion retried, and what a conversion shows of its lease and last call.

use super::*;
use crate::store::{Cursor, ListQuery, TimeAxis};

/// Captures `token` for `product` under `key` and takes it at `at` for order `order_ref`.
async fn owed_for(
    store: &impl TokenStore,
    (key, token, product): (TokenKey, &str, &str),
    order_ref: Option<&str>,
    at: SystemTime,
) -> Conversion {
    let capture = Capture {
        token: token.parse().expect("a valid token"),
        product: product.parse().expect("a product"),
    };
    let landing = NewCapture { capture, attribution: Attribution::LastClick, at, ttl: DAY };
    assert!(store.capture(key, landing).await.expect("capture"));
    match store.take(key, order(at, order_ref, None)).await.expect("take") {
        Taken::Owed(owed) => owed,
        other => panic!("a fresh capture is taken into an owed conversion, not {other:?}"),
    }
}

/// Every page of `query`, one after another's last conversion, `page` at a time.
async fn every_page(store: &impl TokenStore, query: ListQuery, page: usize) -> Vec<ConversionId> {
    let (mut ids, mut query) = (Vec::new(), query.limit(page));
    loop {
        let listed = store.list(&query).await.expect("list");
        assert!(listed.len() <= page, "a page holds at most its limit");
        ids.extend(listed.iter().map(|conversion| conversion.id));
        let Some(last) = listed.last() else { return ids };
        if listed.len() < page {
            return ids;
        }
        let cursor = Cursor::after(last, query.axis).expect("a listed conversion has its time");
        query = query.after(cursor);
    }
}

/// Settles the owed conversion `id`, due at `at`, into `state` at `at`, after one call.
async fn settle_into(
    store: &impl TokenStore,
    id: ConversionId,
    state: ConversionState,
    error: &str,
    at: SystemTime,
) {
    let held = lease(at + MINUTE);
    let claimed = store.claim(at, 100, held).await.expect("claim");
    assert!(claimed.iter().any(|conversion| conversion.id == id), "the conversion is due at {at:?}");
    let next = (!state.is_settled()).then_some(at + DAY);
    let settlement = Settlement::new(state, 1, next, Some(error.to_owned()), at);
    assert!(store.settle(id, held.id, settlement).await.expect("settle"));
    // The others claimed with it are given back, due again at once.
    for other in claimed.iter().filter(|conversion| conversion.id != id) {
        let back = Settlement {
            attempted_at: None,
            ..Settlement::new(other.state, other.attempts, Some(at), other.last_error.clone(), at)
        };
        assert!(store.settle(other.id, held.id, back).await.expect("give back"));
    }
}

pub(super) async fn lists_page_by_cursor_in_either_order(store: &impl TokenStore, t: SystemTime) {
    let rule = "lists page by cursor in either order";
    // Nine conversions, three to a millisecond, of two products.
    let mut made = Vec::new();
    for key in 0..9 {
        let product = if key % 3 == 0 { "product-b" } else { "product-a" };
        let at = t + Duration::from_millis(u64::try_from(key / 3).unwrap_or(0));
        made.push(owed_for(store, (key, &format!("token-{key}"), product), None, at).await);
    }
    let mut oldest_first = made.clone();
    oldest_first.sort_by_key(|conversion| (conversion.ordered_at, conversion.id));
    let ids =
        |conversions: &[Conversion]| conversions.iter().map(|conversion| conversion.id).collect::<Vec<_>>();
    let owed = ListQuery::new(ConversionState::Owed);
    for page in [1, 2, 4, 9, 10] {
        assert_eq!(
            every_page(store, owed.clone(), page).await,
            ids(&oldest_first),
            "{rule}: oldest first, {page} a page"
        );
        let newest: Vec<ConversionId> = ids(&oldest_first).into_iter().rev().collect();
        assert_eq!(
            every_page(store, owed.clone().newest_first(), page).await,
            newest,
            "{rule}: newest first, {page} a page"
        );
    }
    let product_b: Vec<ConversionId> = oldest_first
        .iter()
        .filter(|conversion| conversion.product.as_str() == "product-b")
        .map(|c| c.id)
        .collect();
    let query = owed.clone().product("product-b".parse().expect("a product"));
    assert_eq!(every_page(store, query, 2).await, product_b, "{rule}: one product's");
    let middle: Vec<ConversionId> = ids(&oldest_first[3..6]);
    let query = owed.clone().between(t + Duration::from_millis(1), t + Duration::from_millis(2));
    assert_eq!(every_page(store, query, 2).await, middle, "{rule}: from (included) until (excluded)");
    assert!(
        store.list(&ListQuery::new(ConversionState::Parked)).await.unwrap().is_empty(),
        "{rule}: by state"
    );
    assert!(store.list(&owed.clone().limit(0)).await.unwrap().is_empty(), "{rule}: a limit of 0");
    // On the settled axis, only settled conversions, by when they were settled.
    let (early, late) = (oldest_first[8].id, oldest_first[0].id);
    settle_into(store, early, ConversionState::Delivered, "", t + MINUTE).await;
    settle_into(store, late, ConversionState::Delivered, "", t + 2 * MINUTE).await;
    let delivered = ListQuery::new(ConversionState::Delivered).on(TimeAxis::Settled);
    assert_eq!(every_page(store, delivered.clone(), 1).await, [early, late], "{rule}: by settlement");
    let query = delivered.between(t + MINUTE, t + 2 * MINUTE);
    assert_eq!(every_page(store, query, 1).await, [early], "{rule}: settled in a range");
    let query = owed.on(TimeAxis::Settled);
    assert!(store.list(&query).await.unwrap().is_empty(), "{rule}: owed ones are not settled");
}

pub(super) async fn counts_per_day_agree_with_counts(store: &impl TokenStore, t: SystemTime) {
    let rule = "counts per day agree with counts";
    let midnight = from_millis(crate::store::listing::day_of(to_millis(t)));
    // Two conversions today, one three days before (then delivered), none in between.
    let before = midnight - 3 * DAY + MINUTE;
    let old = owed_for(store, (1, "old", "product-a"), None, before).await;
    owed_for(store, (2, "today", "product-a"), None, midnight + MINUTE).await;
    owed_for(store, (3, "tonight", "product-b"), None, midnight + DAY - MINUTE).await;
    settle_into(store, old.id, ConversionState::Delivered, "", before + MINUTE).await;
    let days = store.daily(midnight - 3 * DAY + DAY / 2, midnight + DAY).await.unwrap();
    let starts: Vec<SystemTime> = days.iter().map(|day| day.day).collect();
    let expected: Vec<SystemTime> = (0..4).map(|n| midnight - 3 * DAY + n * DAY).collect();
    assert_eq!(starts, expected, "{rule}: every day, from the one `from` falls on, empty ones too");
    assert_eq!(days[0].counts, ConversionCounts::default().with(ConversionState::Delivered, 1), "{rule}");
    assert_eq!((days[1].counts, days[2].counts), Default::default(), "{rule}: empty days");
    assert_eq!(days[3].counts, ConversionCounts::default().with(ConversionState::Owed, 2), "{rule}: today");
    let until_noon = store.daily(midnight, midnight + DAY / 2).await.unwrap();
    assert_eq!(until_noon.len(), 1, "{rule}: `until` ends the last day");
    assert_eq!(until_noon[0].counts.owed, 2, "{rule}: the whole of the last day is counted");
}

pub(super) async fn causes_are_counted_most_frequent_first(store: &impl TokenStore, t: SystemTime) {
    let rule = "causes are counted most frequent first";
    let (forbidden, unknown) =
        ("Sovendus answered 403", "Sovendus answered 422: «External product id not found.»");
    for (key, error) in (0..).zip([forbidden, unknown, forbidden, forbidden, unknown]) {
        let at = t + Duration::from_millis(u64::try_from(key).unwrap_or(0));
        let id = owed_for(store, (key, &format!("token-{key}"), "product-a"), None, at).await.id;
        settle_into(store, id, ConversionState::Parked, error, at).await;
    }
    let causes = store.causes(ConversionState::Parked, 10).await.unwrap();
    let counted: Vec<(&str, u64)> = causes.iter().map(|cause| (cause.reason.as_str(), cause.count)).collect();
    assert_eq!(counted, [(forbidden, 3), (unknown, 2)], "{rule}");
    assert_eq!(store.causes(ConversionState::Parked, 1).await.unwrap().len(), 1, "{rule}: at most the limit");
    assert!(store.causes(ConversionState::Dead, 10).await.unwrap().is_empty(), "{rule}: by state");
}

pub(super) async fn a_conversion_is_found_by_its_id_or_token(store: &impl TokenStore, t: SystemTime) {
    let rule = "a conversion is found by its ID or its token";
    let owed = owed_for(store, (1, "token-1", "product-a"), Some("order-1"), t).await;
    let found = store.find_token(&"token-1".parse().expect("a token")).await.unwrap();
    assert_eq!(found.as_ref(), Some(&owed), "{rule}");
    assert_eq!(store.get(owed.id).await.unwrap(), Some(owed), "{rule}: by ID");
    assert_eq!(store.get(ConversionId::random()).await.unwrap(), None, "{rule}: an unknown ID");
    assert_eq!(
        store.find_token(&"token-2".parse().expect("a token")).await.unwrap(),
        None,
        "{rule}: unknown"
    );
}

pub(super) async fn one_parked_conversion_is_retried(store: &impl TokenStore, t: SystemTime) {
    let rule = "one parked conversion is retried";
    let ms = |n: u64| t + Duration::from_millis(n);
    let parked = owed_for(store, (1, "token-1", "product-a"), None, t).await.id;
    let other = owed_for(store, (2, "token-2", "product-a"), None, ms(1)).await.id;
    let owed = owed_for(store, (3, "token-3", "product-a"), None, ms(2)).await.id;
    settle_into(store, parked, ConversionState::Parked, "403", t).await;
    settle_into(store, other, ConversionState::Parked, "403", ms(1)).await;
    settle_into(store, owed, ConversionState::Owed, "503", ms(2)).await;
    assert!(!store.retry_parked_one(ConversionId::random(), t).await.unwrap(), "{rule}: an unknown one");
    assert!(!store.retry_parked_one(owed, t).await.unwrap(), "{rule}: an owed one");
    assert!(store.retry_parked_one(parked, t + MINUTE).await.unwrap(), "{rule}");
    let claimed = claim_ids(store, t + MINUTE, 10, lease(t + 2 * MINUTE)).await;
    assert_eq!(claimed, [parked], "{rule}: that one only, due at once");
    assert_eq!(store.counts().await.unwrap().parked, 2, "{rule}: still parked");
    // Retried again while a delivery holds it: due when that lease runs out, never before.
    assert!(store.retry_parked_one(parked, t + MINUTE).await.unwrap(), "{rule}: still parked while held");
    assert!(claim_ids(store, t + MINUTE, 10, lease(t + 3 * MINUTE)).await.is_empty(), "{rule}: held");
    assert_eq!(
        claim_ids(store, t + 2 * MINUTE, 10, lease(t + 3 * MINUTE)).await,
        [parked],
        "{rule}: then due"
    );
}

pub(super) async fn a_conversion_shows_its_lease_and_last_calls(store: &impl TokenStore, t: SystemTime) {
    let rule = "a conversion shows its lease and its last calls";
    let owed = owed_for(store, (1, "token-1", "product-a"), Some("order-1"), t).await;
    assert_eq!((owed.held_until, owed.calls.len()), (None, 0), "{rule}: taken without a lease");
    let second = Duration::from_secs(1);
    // Twelve deliveries that each called, one that gave it back uncalled: the last ten calls.
    for n in 0..13_u32 {
        let at = t + second * n;
        let held = lease(at + MINUTE);
        let claimed = store.claim(at, 1, held).await.unwrap();
        assert_eq!(claimed.len(), 1, "{rule}: due at {n} s");
        assert_eq!(claimed[0].held_until, Some(at + MINUTE), "{rule}: claimed");
        if n == 0 {
            let listed = store.list(&ListQuery::new(ConversionState::Owed)).await.unwrap();
            assert_eq!(listed[0].held_until, Some(at + MINUTE), "{rule}: listed while held");
        }
        let settlement =
            Settlement::new(ConversionState::Owed, n + 1, Some(at + second), Some("503".to_owned()), at);
        let settlement = if n == 12 { Settlement { attempted_at: None, ..settlement } } else { settlement };
        assert!(store.settle(owed.id, held.id, settlement).await.unwrap(), "{rule}");
    }
    let found = store.find_token(&owed.token).await.unwrap().expect("found");
    let last_ten: Vec<SystemTime> = (2..12).map(|n| t + second * n).collect();
    assert_eq!((found.held_until, found.calls), (None, last_ten), "{rule}: settled");
}
