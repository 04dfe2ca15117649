//! The rules, one function each, named for what they check.

use super::*;

pub(super) async fn the_clock_moves_on(store: &impl TokenStore) {
    let rule = "the clock moves on";
    let first = store.now().await.expect("the store's clock");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = store.now().await.expect("the store's clock");
    let moved = second.duration_since(first).unwrap_or_default();
    assert!(moved >= Duration::from_millis(10), "{rule}: {first:?}, then {second:?} 20 ms later");
}

pub(super) async fn attribution_decides_which_click_is_kept(store: &impl TokenStore, t: SystemTime) {
    let rule = "attribution decides which click is kept";
    assert!(store.capture(1, landing("first", Attribution::LastClick, t, DAY)).await.unwrap(), "{rule}");
    assert!(store.capture(1, landing("second", Attribution::LastClick, t, DAY)).await.unwrap(), "{rule}");
    assert_eq!(captured_token(store, 1, t).await.as_deref(), Some("second"), "{rule}: last click");

    assert!(store.capture(2, landing("first", Attribution::FirstClick, t, MINUTE)).await.unwrap(), "{rule}");
    assert!(!store.capture(2, landing("second", Attribution::FirstClick, t, DAY)).await.unwrap(), "{rule}");
    assert_eq!(captured_token(store, 2, t).await.as_deref(), Some("first"), "{rule}: first click");
    let later = t + 2 * MINUTE;
    assert!(store.capture(2, landing("third", Attribution::FirstClick, later, DAY)).await.unwrap(), "{rule}");
    assert_eq!(
        captured_token(store, 2, later).await.as_deref(),
        Some("third"),
        "{rule}: expired first click"
    );
}

pub(super) async fn captures_expire_by_the_callers_clock(store: &impl TokenStore, t: SystemTime) {
    let rule = "captures expire by the caller's clock";
    store.capture(1, landing("token", Attribution::LastClick, t, MINUTE)).await.unwrap();
    assert_eq!(
        captured_token(store, 1, t + MINUTE - Duration::from_millis(1)).await.as_deref(),
        Some("token"),
        "{rule}"
    );
    assert_eq!(captured_token(store, 1, t + MINUTE).await, None, "{rule}");
    assert_eq!(captured_token(store, 2, t).await, None, "{rule}: nothing captured");
}

pub(super) async fn a_take_makes_the_capture_an_owed_conversion(store: &impl TokenStore, t: SystemTime) {
    let rule = "a take makes the capture an owed conversion";
    store.capture(1, landing("token", Attribution::LastClick, t, DAY)).await.unwrap();
    let new = order(t + MINUTE, Some("A-1"), None);
    let id = new.id;
    let Taken::Owed(owed) = store.take(1, new).await.unwrap() else { panic!("{rule}: taken") };
    let expected = Conversion {
        id,
        token: "token".parse().unwrap(),
        product: "product-a".parse().unwrap(),
        order: Some("A-1".parse().unwrap()),
        ordered_at: t + MINUTE,
        state: ConversionState::Owed,
        attempts: 0,
        next_attempt_at: Some(t + MINUTE),
        last_error: None,
        settled_at: None,
        calls: Vec::new(),
        held_until: None,
    };
    assert_eq!(owed, expected, "{rule}");
    assert_eq!(captured_token(store, 1, t + MINUTE).await, None, "{rule}: the capture is spent");
    let again = store.take(1, order(t + MINUTE, None, None)).await.unwrap();
    assert_eq!(again, Taken::AlreadyConverted(owed.id), "{rule}: once");
    assert_eq!(
        store.counts().await.unwrap(),
        ConversionCounts { owed: 1, ..ConversionCounts::default() },
        "{rule}"
    );
    assert_eq!(
        store.list(&crate::store::ListQuery::new(ConversionState::Owed).limit(10)).await.unwrap(),
        std::slice::from_ref(&expected),
        "{rule}: listed"
    );
    assert_eq!(store.find(&"A-1".parse().unwrap()).await.unwrap(), Some(expected), "{rule}: found by order");
    assert_eq!(store.find(&"A-2".parse().unwrap()).await.unwrap(), None, "{rule}: another order");
}

pub(super) async fn an_expired_capture_is_not_taken(store: &impl TokenStore, t: SystemTime) {
    let rule = "an expired capture is not taken";
    store.capture(1, landing("token", Attribution::LastClick, t, MINUTE)).await.unwrap();
    assert_eq!(store.take(1, order(t + MINUTE, None, None)).await.unwrap(), Taken::NoCapture, "{rule}");
    assert_eq!(store.counts().await.unwrap(), ConversionCounts::default(), "{rule}");
}

pub(super) async fn a_token_is_converted_once(store: &impl TokenStore, t: SystemTime) {
    let rule = "a token is converted once";
    // Another visitor landed with the same token (a shared link) before the order.
    store.capture(2, landing("token", Attribution::LastClick, t, DAY)).await.unwrap();
    let first = owed(store, 1, "token", t).await;
    assert_eq!(captured_token(store, 2, t).await, None, "{rule}: a converted token is no longer captured");
    let taken = store.take(2, order(t, None, None)).await.unwrap();
    assert_eq!(taken, Taken::AlreadyConverted(first.id), "{rule}");
    assert_eq!(captured_token(store, 2, t).await, None, "{rule}: the capture is spent");
    // The same landing again (a bookmark, a reload), on the same visitor and on another; and
    // the visitor's next order.
    for key in [1, 2] {
        let kept = store.capture(key, landing("token", Attribution::LastClick, t, DAY)).await.unwrap();
        assert!(!kept, "{rule}: a converted token is not captured again");
        let taken = store.take(key, order(t, None, None)).await.unwrap();
        assert_eq!(taken, Taken::AlreadyConverted(first.id), "{rule}: the spent capture says so");
    }
    assert_eq!(store.take(9, order(t, None, None)).await.unwrap(), Taken::NoCapture, "{rule}: no capture");
    // Nor does it replace a live capture under last click.
    store.capture(3, landing("fresh", Attribution::LastClick, t, DAY)).await.unwrap();
    assert!(!store.capture(3, landing("token", Attribution::LastClick, t, DAY)).await.unwrap(), "{rule}");
    assert_eq!(captured_token(store, 3, t).await.as_deref(), Some("fresh"), "{rule}: the live capture stays");
    assert_eq!(store.counts().await.unwrap().owed, 1, "{rule}");
}

pub(super) async fn a_kept_capture_is_owed_once(store: &impl TokenStore, t: SystemTime) {
    let rule = "a kept capture is owed once";
    // The order kept its capture, and a crash came before the take: the capture is still there
    // (and another visitor's capture of the same link).
    store.capture(1, landing("token", Attribution::LastClick, t, DAY)).await.unwrap();
    store.capture(2, landing("token", Attribution::LastClick, t, DAY)).await.unwrap();
    let Taken::Owed(owed) = store.owe(capture("token"), order(t, Some("A-1"), None)).await.unwrap() else {
        panic!("{rule}: a kept capture is owed");
    };
    assert_eq!((owed.state, owed.order.as_ref().map(OrderRef::as_str)), (ConversionState::Owed, Some("A-1")));
    let again = store.owe(capture("token"), order(t, Some("A-1"), None)).await.unwrap();
    assert_eq!(again, Taken::AlreadyConverted(owed.id), "{rule}: owed twice");
    assert_eq!(captured_token(store, 1, t).await, None, "{rule}: the capture left in place is spent");
    let taken = store.take(1, order(t, None, None)).await.unwrap();
    assert_eq!(taken, Taken::AlreadyConverted(owed.id), "{rule}: and converts nothing");
    // Nor does a spent capture keep a new click out under first click.
    let fresh = landing("fresh", Attribution::FirstClick, t, DAY);
    assert!(store.capture(2, fresh).await.unwrap(), "{rule}: a spent capture does not win");
    assert_eq!(captured_token(store, 2, t).await.as_deref(), Some("fresh"), "{rule}");
    assert_eq!(claim_ids(store, t, 10, lease(t + MINUTE)).await, [owed.id], "{rule}: due at once");
    let found = store.find(&"A-1".parse().expect("a valid order reference")).await.unwrap();
    assert_eq!(found.map(|conversion| conversion.id), Some(owed.id), "{rule}: found by its order");
}

pub(super) async fn voiding_stops_what_is_not_delivered(store: &impl TokenStore, t: SystemTime) {
    let rule = "voiding stops what is not delivered";
    let ms = Duration::from_millis;
    let owed_one = owed(store, 1, "owed", t).await;
    let (dead, held, delivered) = (
        owed(store, 2, "dead", t + ms(1)).await,
        owed(store, 3, "held", t + ms(2)).await,
        owed(store, 4, "delivered", t + ms(3)).await,
    );
    let (silent, heard) =
        (owed(store, 5, "silent", t + ms(4)).await, owed(store, 6, "heard", t + ms(5)).await);
    let voided = store.void(owed_one.id, t).await.unwrap();
    assert!(
        matches!(&voided, VoidOutcome::Voided(c) if c.state == ConversionState::Voided && c.settled_at == Some(t)),
        "{rule}: an owed one is voided, now: {voided:?}"
    );
    let first = lease(t + MINUTE);
    assert_eq!(
        claim_ids(store, t + ms(5), 10, first).await,
        [dead.id, held.id, delivered.id, silent.id, heard.id],
        "{rule}: not claimed"
    );
    assert!(store.settle(dead.id, first.id, settlement(ConversionState::Dead, None, t)).await.unwrap());
    let ok = Settlement { last_error: None, ..settlement(ConversionState::Delivered, None, t + ms(5)) };
    assert!(store.settle(delivered.id, first.id, ok.clone()).await.unwrap());
    assert!(matches!(store.void(dead.id, t).await.unwrap(), VoidOutcome::Voided(_)), "{rule}: a dead one");
    assert!(
        matches!(store.void(delivered.id, t).await.unwrap(), VoidOutcome::Delivered(c) if c.settled_at == Some(t + ms(5))),
        "{rule}: a delivered one says when"
    );
    assert!(
        matches!(store.void(owed_one.id, t).await.unwrap(), VoidOutcome::AlreadyVoided(_)),
        "{rule}: twice"
    );
    assert_eq!(store.void(ConversionId::random(), t).await.unwrap(), VoidOutcome::NotFound, "{rule}");

    // Under a live lease a void waits for the delivery: its call may be out, or its 200 unrecorded.
    for conversion in [&held, &silent, &heard] {
        let sending = store.void(conversion.id, t + ms(10)).await.unwrap();
        assert!(
            matches!(&sending, VoidOutcome::Sending(c) if c.id == conversion.id),
            "{rule}: not while a live lease holds it: {sending:?}"
        );
    }
    assert!(
        matches!(store.void(held.id, t + ms(20)).await.unwrap(), VoidOutcome::Sending(_)),
        "{rule}: asked again, still waiting"
    );
    assert!(
        !store.renew(held.id, Lease { until: t + 2 * MINUTE, ..first }).await.unwrap(),
        "{rule}: a void ends the lease's renewals: the delivery starts no further attempt"
    );
    // The delivery it waited for settles without a 200: voided, as the void asked.
    let retry = settlement(ConversionState::Owed, Some(t + 2 * MINUTE), t + MINUTE);
    assert!(store.settle(held.id, first.id, retry.clone()).await.unwrap(), "{rule}: its delivery settles");
    let settled = store.void(held.id, t + MINUTE).await.unwrap();
    assert!(
        matches!(&settled, VoidOutcome::AlreadyVoided(c) if c.settled_at == Some(t + ms(10))),
        "{rule}: voided once its delivery settled, as of the void: {settled:?}"
    );
    assert!(!store.settle(held.id, first.id, retry).await.unwrap(), "{rule}: its old lease settles nothing");
    // The delivery it waited for heard a 200: the truth, delivered.
    assert!(store.settle(heard.id, first.id, ok.clone()).await.unwrap(), "{rule}: a 200 under the void");
    assert!(
        matches!(store.void(heard.id, t + MINUTE).await.unwrap(), VoidOutcome::Delivered(_)),
        "{rule}: then it says delivered"
    );
    // A lease (quarantine included) run out, its delivery never settled: its holder is gone.
    let gone = store.void(silent.id, t + 2 * MINUTE).await.unwrap();
    assert!(matches!(gone, VoidOutcome::Voided(_)), "{rule}: a lease run out unsettled: {gone:?}");
    assert!(
        !store.settle(silent.id, first.id, ok.clone()).await.unwrap(),
        "{rule}: once it said voided, no 200 is recorded over it"
    );
    assert!(claim_ids(store, t + DAY, 10, lease(t + DAY + MINUTE)).await.is_empty(), "{rule}: never due");
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (counts.owed, counts.dead, counts.voided, counts.delivered),
        (0, 0, 4, 2),
        "{rule}: {counts:?}"
    );
    assert_eq!(
        store.list(&crate::store::ListQuery::new(ConversionState::Voided).limit(10)).await.unwrap().len(),
        4,
        "{rule}: listed"
    );
    assert_eq!(store.purge(t + MINUTE, t + MINUTE).await.unwrap(), 6, "{rule}: voided ones are purged too");
}

pub(super) async fn concurrent_takes_make_one_conversion<S: TokenStore>(store: Arc<S>, t: SystemTime) {
    let rule = "concurrent takes make one conversion";
    store.capture(1, landing("token", Attribution::LastClick, t, DAY)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.spawn(async move { store.take(1, order(t, None, None)).await.expect("take") });
    }
    let taken = tasks.join_all().await;
    assert_eq!(taken.iter().filter(|taken| matches!(taken, Taken::Owed(_))).count(), 1, "{rule}: {taken:?}");
    let others = taken.iter().filter(|taken| matches!(taken, Taken::AlreadyConverted(_))).count();
    assert_eq!(others, 15, "{rule}: the others learn it is converted: {taken:?}");
    assert_eq!(store.counts().await.unwrap().owed, 1, "{rule}");
}

pub(super) async fn a_conversion_taken_with_a_lease_is_claimed_once_it_runs_out(
    store: &impl TokenStore,
    t: SystemTime,
) {
    let rule = "a conversion taken with a lease is claimed once it runs out";
    store.capture(1, landing("token", Attribution::LastClick, t, DAY)).await.unwrap();
    let held = lease(t + MINUTE);
    let Taken::Owed(owed) = store.take(1, order(t, None, Some(held))).await.unwrap() else {
        panic!("{rule}")
    };
    assert!(claim_ids(store, t, 10, lease(t + 2 * MINUTE)).await.is_empty(), "{rule}: held");
    assert!(store.renew(owed.id, held).await.unwrap(), "{rule}: the taker holds it");
    assert_eq!(claim_ids(store, t + MINUTE, 10, lease(t + 2 * MINUTE)).await, [owed.id], "{rule}: run out");
}

pub(super) async fn claims_take_what_is_due_the_earliest_first(store: &impl TokenStore, t: SystemTime) {
    let rule = "claims take what is due, the earliest first";
    let ids: Vec<ConversionId> = [
        owed(store, 1, "first", t).await.id,
        owed(store, 2, "second", t + MINUTE).await.id,
        owed(store, 3, "third", t + 2 * MINUTE).await.id,
    ]
    .into();
    let held = lease(t + 10 * MINUTE);
    assert_eq!(claim_ids(store, t + MINUTE, 10, held).await, ids[..2], "{rule}: due ones");
    assert!(claim_ids(store, t + MINUTE, 10, lease(t + 10 * MINUTE)).await.is_empty(), "{rule}: leased");
    assert_eq!(claim_ids(store, t + 5 * MINUTE, 1, lease(t + 15 * MINUTE)).await, ids[2..], "{rule}: limit");
    let again: HashSet<ConversionId> =
        claim_ids(store, t + 10 * MINUTE, 10, lease(t + 20 * MINUTE)).await.into_iter().collect();
    let expected: HashSet<ConversionId> = ids[..2].iter().copied().collect();
    assert_eq!(again, expected, "{rule}: claimed again once their lease ran out (a crashed delivery)");
}

pub(super) async fn concurrent_claims_share_out_each_conversion_once<S: TokenStore>(
    store: Arc<S>,
    t: SystemTime,
) {
    let rule = "concurrent claims share out each conversion once";
    for key in 0..20 {
        owed(&*store, key, &format!("token-{key}"), t).await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.spawn(async move { claim_ids(&*store, t, 5, lease(t + MINUTE)).await });
    }
    let claimed: Vec<ConversionId> = tasks.join_all().await.into_iter().flatten().collect();
    let distinct: HashSet<ConversionId> = claimed.iter().copied().collect();
    assert_eq!((claimed.len(), distinct.len()), (20, 20), "{rule}");
}

pub(super) async fn only_the_holder_renews_and_settles(store: &impl TokenStore, t: SystemTime) {
    let rule = "only the holder renews and settles";
    let id = owed(store, 1, "token", t).await.id;
    let held = lease(t + MINUTE);
    assert_eq!(claim_ids(store, t, 1, held).await, [id], "{rule}");
    let other = lease(t + 5 * MINUTE);
    assert!(!store.renew(id, other).await.unwrap(), "{rule}: another lease");
    let owed_again = settlement(ConversionState::Owed, Some(t), t);
    assert!(!store.settle(id, other.id, owed_again).await.unwrap(), "{rule}: another lease");
    assert_eq!(store.counts().await.unwrap().owed, 1, "{rule}: unchanged");
    let delivered = settlement(ConversionState::Delivered, None, t);
    assert!(store.renew(id, Lease { until: t + 3 * MINUTE, ..held }).await.unwrap(), "{rule}: the holder");
    assert!(claim_ids(store, t + 2 * MINUTE, 1, other).await.is_empty(), "{rule}: renewed");
    assert!(store.settle(id, held.id, delivered).await.unwrap(), "{rule}: the holder");
    assert!(
        !store.settle(id, held.id, settlement(ConversionState::Owed, Some(t), t)).await.unwrap(),
        "{rule}: ended"
    );
}

pub(super) async fn a_200_is_recorded_whatever_the_lease(store: &impl TokenStore, t: SystemTime) {
    let rule = "a 200 is recorded whatever the lease";
    let id = owed(store, 1, "token", t).await.id;
    let (first, second) = (lease(t + MINUTE), lease(t + 3 * MINUTE));
    assert_eq!(claim_ids(store, t, 1, first).await, [id], "{rule}");
    // The first delivery's lease ran out while Sovendus answered it; a second took over.
    assert_eq!(claim_ids(store, t + 2 * MINUTE, 1, second).await, [id], "{rule}");
    let delivered = settlement(ConversionState::Delivered, None, t + 2 * MINUTE);
    assert!(store.settle(id, first.id, delivered.clone()).await.unwrap(), "{rule}: the late 200");
    assert_eq!(store.counts().await.unwrap().delivered, 1, "{rule}: delivered");
    // It ends the later delivery: that one's outcome changes nothing, and nothing is due again.
    let failed = settlement(ConversionState::Owed, Some(t + 3 * MINUTE), t + 2 * MINUTE);
    assert!(!store.settle(id, second.id, failed).await.unwrap(), "{rule}: the later delivery");
    assert!(!store.renew(id, second).await.unwrap(), "{rule}: no lease left to renew");
    assert!(claim_ids(store, t + DAY, 10, lease(t + 2 * DAY)).await.is_empty(), "{rule}: never due again");
    // A second 200 changes nothing either: the first is the one recorded.
    assert!(!store.settle(id, second.id, delivered.clone()).await.unwrap(), "{rule}: delivered once");
    assert_eq!(store.counts().await.unwrap().delivered, 1, "{rule}");

    // The later delivery's failure settled first, then the earlier one's 200: recorded.
    let id = owed(store, 2, "token-2", t).await.id;
    let (first, second) = (lease(t + MINUTE), lease(t + 3 * MINUTE));
    assert_eq!(claim_ids(store, t, 1, first).await, [id], "{rule}");
    assert_eq!(claim_ids(store, t + 2 * MINUTE, 1, second).await, [id], "{rule}");
    let failed = settlement(ConversionState::Owed, Some(t + 3 * MINUTE), t + 2 * MINUTE);
    assert!(store.settle(id, second.id, failed).await.unwrap(), "{rule}");
    assert!(store.settle(id, first.id, delivered).await.unwrap(), "{rule}: a late 200 recorded");
    assert_eq!(store.counts().await.unwrap().delivered, 2, "{rule}: a late 200 recorded");
}

pub(super) async fn settlements_decide_what_comes_next(store: &impl TokenStore, t: SystemTime) {
    let rule = "settlements decide what comes next";
    let states =
        [ConversionState::Owed, ConversionState::Parked, ConversionState::Dead, ConversionState::Delivered];
    let mut ids = Vec::new();
    for (key, state) in (0..).zip(states) {
        let id = owed(store, key, &format!("token-{key}"), t).await.id;
        let held = lease(t + MINUTE);
        assert_eq!(claim_ids(store, t, 1, held).await, [id], "{rule}");
        let next = (!state.is_settled()).then_some(t + 30 * MINUTE);
        assert!(store.settle(id, held.id, settlement(state, next, t + MINUTE)).await.unwrap(), "{rule}");
        ids.push(id);
    }
    let counts = ConversionCounts { owed: 1, parked: 1, dead: 1, delivered: 1, voided: 0 };
    assert_eq!(store.counts().await.unwrap(), counts, "{rule}");
    assert!(claim_ids(store, t + 29 * MINUTE, 10, lease(t + DAY)).await.is_empty(), "{rule}: not due yet");
    let due: HashSet<ConversionId> =
        claim_ids(store, t + 30 * MINUTE, 10, lease(t + DAY)).await.into_iter().collect();
    assert_eq!(due, ids[..2].iter().copied().collect(), "{rule}: owed and parked");
    for (state, id) in states.into_iter().zip(&ids) {
        let listed = store.list(&crate::store::ListQuery::new(state).limit(10)).await.unwrap();
        assert_eq!(
            listed.iter().map(|conversion| conversion.id).collect::<Vec<_>>(),
            [*id],
            "{rule}: {state}"
        );
        let settled_at = state.is_settled().then_some(t + MINUTE);
        assert_eq!((listed[0].attempts, listed[0].settled_at), (1, settled_at), "{rule}: {state}");
        assert_eq!(listed[0].last_error.as_deref(), Some("503"), "{rule}: {state}");
    }
}

pub(super) async fn parked_conversions_wake_at_once(store: &impl TokenStore, t: SystemTime) {
    let rule = "parked conversions wake at once";
    let id = owed(store, 1, "token", t).await.id;
    // Due a millisecond later: of two due at once, which a claim of one takes is up to the IDs.
    owed(store, 2, "other", t + Duration::from_millis(1)).await;
    let held = lease(t + MINUTE);
    assert_eq!(claim_ids(store, t, 1, held).await, [id], "{rule}");
    let parked = settlement(ConversionState::Parked, Some(t + DAY), t);
    assert!(store.settle(id, held.id, parked).await.unwrap(), "{rule}");
    assert_eq!(store.retry_parked(t + MINUTE).await.unwrap(), 1, "{rule}: one parked");
    let claimed = claim_ids(store, t + MINUTE, 10, lease(t + 2 * MINUTE)).await;
    assert!(claimed.contains(&id), "{rule}: due at once");
}

pub(super) async fn a_dead_conversion_can_be_revived(store: &impl TokenStore, t: SystemTime) {
    let rule = "a dead conversion can be revived";
    let id = owed(store, 1, "token", t).await.id;
    let other = owed(store, 2, "other", t + Duration::from_millis(1)).await.id;
    let held = lease(t + MINUTE);
    assert_eq!(claim_ids(store, t, 1, held).await, [id], "{rule}");
    assert!(store.settle(id, held.id, settlement(ConversionState::Dead, None, t)).await.unwrap(), "{rule}");
    assert!(!store.retry_dead(other, t + MINUTE).await.unwrap(), "{rule}: an owed one is not dead");
    // Parked (due a day later), then claimed then and delivered: neither is dead.
    for (state, due) in
        [(ConversionState::Parked, t + Duration::from_millis(1)), (ConversionState::Delivered, t + DAY)]
    {
        let held = lease(due + MINUTE);
        assert_eq!(claim_ids(store, due, 1, held).await, [other], "{rule}");
        let next = (state == ConversionState::Parked).then_some(t + DAY);
        assert!(store.settle(other, held.id, settlement(state, next, t)).await.unwrap(), "{rule}");
        assert!(!store.retry_dead(other, t + MINUTE).await.unwrap(), "{rule}: a {state} one is not dead");
    }
    assert!(!store.retry_dead(ConversionId::random(), t + MINUTE).await.unwrap(), "{rule}: an unknown one");
    assert!(store.retry_dead(id, t + MINUTE).await.unwrap(), "{rule}");
    assert!(!store.retry_dead(id, t + MINUTE).await.unwrap(), "{rule}: once");
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.owed, counts.dead, counts.delivered), (1, 0, 1), "{rule}: {counts:?}");
    let listed = store.list(&crate::store::ListQuery::new(ConversionState::Owed).limit(10)).await.unwrap();
    let revived = listed.iter().find(|conversion| conversion.id == id).expect("listed owed");
    assert_eq!((revived.attempts, revived.settled_at), (1, None), "{rule}: attempts kept, not settled");
    assert_eq!(revived.next_attempt_at, Some(t + MINUTE), "{rule}: due when revived");
    assert!(claim_ids(store, t + MINUTE, 10, lease(t + 2 * MINUTE)).await.contains(&id), "{rule}: claimed");
    assert_eq!(
        store.purge(t + DAY, t + DAY).await.unwrap(),
        1,
        "{rule}: the delivered one, not the revived one"
    );
}

pub(super) async fn purging_removes_old_settled_conversions_only(store: &impl TokenStore, t: SystemTime) {
    let rule = "purging removes old settled conversions only";
    let mut settled = Vec::new();
    for (key, (state, at)) in (0..).zip([
        (ConversionState::Delivered, t),
        (ConversionState::Dead, t),
        (ConversionState::Delivered, t + DAY),
        (ConversionState::Owed, t),
    ]) {
        let conversion = owed(store, key, &format!("token-{key}"), t).await;
        let held = lease(at + MINUTE);
        assert_eq!(claim_ids(store, at, 1, held).await, [conversion.id], "{rule}");
        let next = (!state.is_settled()).then_some(t + 2 * DAY);
        store.settle(conversion.id, held.id, settlement(state, next, at)).await.unwrap();
        settled.push(conversion);
    }
    assert_eq!(store.purge(t + MINUTE, t + MINUTE).await.unwrap(), 2, "{rule}");
    let counts = ConversionCounts { owed: 1, delivered: 1, ..ConversionCounts::default() };
    assert_eq!(store.counts().await.unwrap(), counts, "{rule}");
    // A purged token can be taken again: it is no longer known.
    store.capture(1, landing(settled[0].token.as_str(), Attribution::LastClick, t + DAY, DAY)).await.unwrap();
    assert!(matches!(store.take(1, order(t + DAY, None, None)).await.unwrap(), Taken::Owed(_)), "{rule}");
}

pub(super) async fn records_keep_every_field(store: &impl TokenStore, t: SystemTime) {
    let rule = "records keep every field";
    let token = "a".repeat(256);
    let product = "p".repeat(128);
    let capture = Capture { token: token.parse().unwrap(), product: product.parse().unwrap() };
    let new = NewCapture { capture, attribution: Attribution::LastClick, at: t, ttl: DAY };
    store.capture(-7, new).await.unwrap();
    let order_ref = "Bestellung «Ä-1» / 2 \"x\" 'y'";
    let Taken::Owed(owed) = store.take(-7, order(t, Some(order_ref), None)).await.unwrap() else {
        panic!("{rule}")
    };
    assert_eq!((owed.token.as_str(), owed.product.as_str()), (token.as_str(), product.as_str()), "{rule}");
    let held = lease(t + MINUTE);
    claim_ids(store, t, 1, held).await;
    let error = "Sovendus answered 503: «Service unavailable»\n\"retry\"";
    let parked = Settlement {
        state: ConversionState::Parked,
        attempts: 7,
        next_attempt_at: Some(t + DAY),
        last_error: Some(error.to_owned()),
        at: t,
        attempted_at: Some(t),
    };
    assert!(store.settle(owed.id, held.id, parked).await.unwrap(), "{rule}");
    let found = store.find(&OrderRef::new(order_ref).unwrap()).await.unwrap().expect("found by its order");
    let expected = Conversion {
        state: ConversionState::Parked,
        attempts: 7,
        next_attempt_at: Some(t + DAY),
        last_error: Some(error.to_owned()),
        calls: vec![t],
        ..owed
    };
    assert_eq!(found, expected, "{rule}");
}
