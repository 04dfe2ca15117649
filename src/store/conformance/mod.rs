//! The rules every [`TokenStore`] keeps, as a suite a store's tests run: the crate runs it on
//! each of its stores, and a store of yours can run it too (feature `conformance`).
//!
//! [`check`] takes a function making a fresh, empty store, and runs every rule of each role
//! ([`captures`], [`conversions`], [`outbox`], [`inspection`]) on a store of its own, panicking with the rule's name when one is broken. Times are given to the store,
//! never waited for (but for 20 ms to see the store's own clock move), so the suite takes well
//! under a second on a store in memory.
//!
//! ```
//! use tower_sovendus::store::{MokaTokenStore, conformance};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! conformance::check(|| async { MokaTokenStore::new(1_000) }).await;
//! # }
//! ```

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, SystemTime},
};

use super::{
    Capture, Conversion, ConversionCounts, ConversionId, ConversionState, Lease, LeaseId, NewCapture,
    NewConversion, Settlement, Taken, TokenKey, TokenStore, VoidOutcome,
    records::{from_millis, to_millis, to_the_millisecond},
};
use crate::{config::Attribution, ids::OrderRef};

mod listing;
mod rules;

use self::{listing::*, rules::*};

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Runs every rule of every role, each on a fresh store from `new_store`.
pub async fn check<S, F, Fut>(mut new_store: F)
where
    S: TokenStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    captures(&mut new_store).await;
    conversions(&mut new_store).await;
    outbox(&mut new_store).await;
    inspection(&mut new_store).await;
}

/// The rules of [`CaptureStore`](super::CaptureStore). The captures' rules see conversions
/// through a take, so the store takes orders too.
pub async fn captures<S, F, Fut>(mut new_store: F)
where
    S: TokenStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    let t = to_the_millisecond(SystemTime::now());
    attribution_decides_which_click_is_kept(&new_store().await, t).await;
    captures_expire_by_the_callers_clock(&new_store().await, t).await;
}

/// The rules of [`ConversionStore`](super::ConversionStore).
pub async fn conversions<S, F, Fut>(mut new_store: F)
where
    S: TokenStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    let t = to_the_millisecond(SystemTime::now());
    a_take_makes_the_capture_an_owed_conversion(&new_store().await, t).await;
    an_expired_capture_is_not_taken(&new_store().await, t).await;
    a_token_is_converted_once(&new_store().await, t).await;
    a_kept_capture_is_owed_once(&new_store().await, t).await;
    voiding_stops_what_is_not_delivered(&new_store().await, t).await;
    concurrent_takes_make_one_conversion(Arc::new(new_store().await), t).await;
    purging_removes_old_settled_conversions_only(&new_store().await, t).await;
    records_keep_every_field(&new_store().await, t).await;
}

/// The rules of [`Outbox`](super::Outbox).
pub async fn outbox<S, F, Fut>(mut new_store: F)
where
    S: TokenStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    the_clock_moves_on(&new_store().await).await;
    let t = to_the_millisecond(SystemTime::now());
    a_conversion_taken_with_a_lease_is_claimed_once_it_runs_out(&new_store().await, t).await;
    claims_take_what_is_due_the_earliest_first(&new_store().await, t).await;
    concurrent_claims_share_out_each_conversion_once(Arc::new(new_store().await), t).await;
    only_the_holder_renews_and_settles(&new_store().await, t).await;
    settlements_decide_what_comes_next(&new_store().await, t).await;
    a_200_is_recorded_whatever_the_lease(&new_store().await, t).await;
}

/// The rules of [`Inspection`](super::Inspection).
pub async fn inspection<S, F, Fut>(mut new_store: F)
where
    S: TokenStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    let t = to_the_millisecond(SystemTime::now());
    parked_conversions_wake_at_once(&new_store().await, t).await;
    a_dead_conversion_can_be_revived(&new_store().await, t).await;
    lists_page_by_cursor_in_either_order(&new_store().await, t).await;
    counts_per_day_agree_with_counts(&new_store().await, t).await;
    causes_are_counted_most_frequent_first(&new_store().await, t).await;
    a_conversion_is_found_by_its_id_or_token(&new_store().await, t).await;
    one_parked_conversion_is_retried(&new_store().await, t).await;
    a_conversion_shows_its_lease_and_last_calls(&new_store().await, t).await;
}

/// The capture of token `token` for the primary product.
fn capture(token: &str) -> Capture {
    Capture {
        token: token.parse().expect("a valid token"),
        product: "product-a".parse().expect("a valid product"),
    }
}

fn landing(token: &str, attribution: Attribution, at: SystemTime, ttl: Duration) -> NewCapture {
    NewCapture { capture: capture(token), attribution, at, ttl }
}

fn lease(until: SystemTime) -> Lease {
    Lease { id: LeaseId::random(), until }
}

fn order(ordered_at: SystemTime, order: Option<&str>, lease: Option<Lease>) -> NewConversion {
    NewConversion {
        id: ConversionId::random(),
        order: order.map(|order| order.parse().expect("a valid order reference")),
        ordered_at,
        lease,
    }
}

async fn captured_token(store: &impl TokenStore, key: TokenKey, now: SystemTime) -> Option<String> {
    let captured = store.captured(key, now).await.expect("captured");
    captured.map(|capture| capture.token.as_str().to_owned())
}

/// Captures `token` under `key` and takes it at `at`: the owed conversion.
async fn owed(store: &impl TokenStore, key: TokenKey, token: &str, at: SystemTime) -> Conversion {
    assert!(store.capture(key, landing(token, Attribution::LastClick, at, DAY)).await.expect("capture"));
    match store.take(key, order(at, None, None)).await.expect("take") {
        Taken::Owed(owed) => owed,
        other => panic!("a fresh capture is taken into an owed conversion, not {other:?}"),
    }
}

async fn claim_ids(
    store: &impl TokenStore,
    now: SystemTime,
    limit: usize,
    lease: Lease,
) -> Vec<ConversionId> {
    let claimed = store.claim(now, limit, lease).await.expect("claim");
    claimed.into_iter().map(|conversion| conversion.id).collect()
}

fn settlement(state: ConversionState, next: Option<SystemTime>, at: SystemTime) -> Settlement {
    Settlement::new(state, 1, next, Some("503".to_owned()), at)
}
