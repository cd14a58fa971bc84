//! The store's contract, run on SQLite and on PostgreSQL alike.

use crate::helpers::{Db, TestStore, test_store};
use malipo::{
    domain::{
        MerchantId, Mode, Money, SessionId,
        keys::{SecretKey, hash_token},
        money::Currency,
    },
    merchants,
    store::{
        AttemptOutcome, AttemptRecord, AttemptStatus, Backend, EventFilter, Expiry, MerchantRecord,
        NewApiKey, NewAttempt, NewSession, PaymentStatus, SessionRecord, SessionStatus,
    },
};
use secrecy::ExposeSecret;
use std::collections::BTreeMap;

/// Generates `sqlite::name` and `postgres::name` tests from one `async fn name(TestStore)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() {
                super::$name(super::test_store(super::Db::Sqlite).await).await
            })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                super::$name(super::test_store(super::Db::Postgres).await).await
            })*
        }
    };
}

on_both_backends!(
    parallel_rescues_never_pass_the_cap_together,
    a_paybill_payment_waits_for_mpesa_before_it_settles,
    parts_add_up_and_an_overpayment_is_recorded,
    merchant_and_keys_round_trip,
    merchant_insert_is_all_or_nothing,
    session_round_trips_with_its_created_event,
    a_session_is_written_with_its_created_event_or_not_at_all,
    expiring_a_session_happens_once,
    racing_finalisations_have_exactly_one_winner,
    late_success_still_completes_an_expired_session,
    a_second_payment_is_a_duplicate_to_refund,
    an_unknown_outcome_stays_open_and_is_surfaced,
    a_pending_payment_blocks_expiry_and_a_closed_session_takes_no_attempt,
    callbacks_are_kept_append_only,
    failed_attempt_leaves_the_session_open,
    operator_ids_are_unique_per_rail,
    a_session_has_one_pending_attempt_at_most,
    due_polls_are_listed_and_rescheduled,
    a_due_poll_is_taken_by_one_poller_until_its_lease_ends,
    the_event_log_is_append_only,
    migrations_are_idempotent,
    events_and_deliveries_commit_with_the_state_change,
    a_failed_outbox_write_undoes_the_state_change,
    redelivery_survives_concurrent_writers,
    an_idempotency_claim_belongs_to_its_holder,
    a_redelivery_during_a_post_is_not_swallowed,
    due_deliveries_take_turns_by_merchant_and_endpoint,
    due_polls_take_turns_by_merchant,
    sessions_are_read_with_their_latest_attempts_in_bulk,
);

fn new_session(merchant_id: &MerchantId, expires_at: i64) -> NewSession {
    let mut metadata = BTreeMap::new();
    metadata.insert("booking".to_string(), "B-77".to_string());
    NewSession {
        merchant_id: merchant_id.clone(),
        mode: Mode::Test,
        amount: Money::new(250_000, Currency::Tzs).unwrap(),
        reference: "ZNZ-8841".into(),
        description: "Stone Town → Nungwi transfer".into(),
        success_url: "https://ferry.example/ok".into(),
        cancel_url: "https://ferry.example/cancel".into(),
        customer_phone: Some("255712345678".into()),
        customer_email: None,
        metadata,
        expires_at,
        payment_method_types: None,
        travel: None,
    }
}

async fn merchant(store: &TestStore) -> MerchantId {
    merchants::create(store, "Zanzibar Ferries")
        .await
        .unwrap()
        .merchant
        .id
}

fn new_attempt(session_id: &SessionId) -> NewAttempt {
    NewAttempt {
        credit_minor: None,
        session_id: session_id.clone(),
        quote: None,
        rail: malipo::connectors::RailId::Mpesa,
        amount: Money::new(250_000, Currency::Tzs).unwrap(),
        payer: Some("255712345678".into()),
        callback_token_hash: Some(hash_token("cb-token")),
        next_poll_at: Some(1_000),
    }
}

/// A merchant, an open session of theirs and one pending attempt on it.
async fn session_with_attempt(
    store: &TestStore,
    expires_at: i64,
) -> (SessionRecord, AttemptRecord) {
    let m = merchant(store).await;
    let session = store
        .insert_session(&new_session(&m, expires_at), 1_000)
        .await
        .unwrap();
    let attempt = store
        .insert_attempt(&new_attempt(&session.id), 1_000)
        .await
        .unwrap()
        .expect("an open session takes an attempt");
    (session, attempt)
}

async fn merchant_and_keys_round_trip(store: TestStore) {
    let created = merchants::create(&store, "Serengeti Lodge").await.unwrap();
    let fetched = store.merchant(&created.merchant.id).await.unwrap().unwrap();
    assert_eq!(fetched, created.merchant);

    let secret = created.test_secret_key.expose_secret();
    let key = SecretKey::parse(secret).unwrap();
    let (owner, mode) = store
        .merchant_by_secret_hash(&key.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((owner.id, mode), (created.merchant.id.clone(), Mode::Test));
    assert!(
        store
            .merchant_by_secret_hash(&hash_token("sk_test_wrong"))
            .await
            .unwrap()
            .is_none()
    );

    let keys = store.api_keys(&created.merchant.id).await.unwrap();
    assert_eq!(keys.len(), 2);
    for k in &keys {
        assert!(
            !k.masked.contains(&secret[8..]),
            "listing must not reveal the key"
        );
        assert!(k.masked.contains('…'));
    }
    let by_name = store
        .merchant_by_name("Serengeti Lodge")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_name.id, created.merchant.id);
}

async fn merchant_insert_is_all_or_nothing(store: TestStore) {
    let merchant = MerchantRecord {
        id: MerchantId::generate(),
        name: "Half Written".into(),
        created_at: 1,
    };
    let dup = || NewApiKey {
        kind: malipo::domain::ApiKeyKind::Secret,
        mode: Mode::Test,
        masked: "sk_test_…dupe".into(),
        secret_hash: Some(hash_token("same")),
        token: None,
    };
    let err = store
        .insert_merchant(&merchant, &[dup(), dup()])
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    assert!(
        store.merchant(&merchant.id).await.unwrap().is_none(),
        "nothing half-written"
    );
}

async fn session_round_trips_with_its_created_event(store: TestStore) {
    let m = merchant(&store).await;
    let created = store
        .insert_session(&new_session(&m, 9_000_000), 1_000)
        .await
        .unwrap();
    let fetched = store.session(&created.id).await.unwrap().unwrap();
    assert_eq!(fetched, created);
    assert_eq!(fetched.status, SessionStatus::Open);
    assert_eq!(fetched.payment_status, PaymentStatus::Unpaid);
    assert_eq!(fetched.amount.minor(), 250_000);
    assert_eq!(fetched.amount.currency(), Currency::Tzs);
    assert_eq!(
        fetched.metadata.get("booking").map(String::as_str),
        Some("B-77")
    );
    assert_eq!(fetched.description, "Stone Town → Nungwi transfer");

    let (page, name) = store.session_for_page(&created.id).await.unwrap().unwrap();
    assert_eq!(
        (page.id, name.as_str()),
        (created.id.clone(), "Zanzibar Ferries")
    );

    let events = store.session_events(created.id.as_str()).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "session.created");
    assert_eq!(
        (
            events[0].attempt_id.as_deref(),
            events[0].from_status.as_deref(),
            events[0].to_status.as_deref(),
            events[0].created_at
        ),
        (None, None, Some("open"), 1_000)
    );
    assert_eq!(events[0].detail["amount"], 250_000);
    assert_eq!(events[0].detail["currency"], "TZS");
    assert_eq!(events[0].detail["expires_at"], 9_000_000);
    assert!(
        store
            .session(&SessionId::generate())
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_session_is_written_with_its_created_event_or_not_at_all(store: TestStore) {
    let m = merchant(&store).await;
    refuse_inserts(&store, "payment_events").await;
    let refused = store
        .insert_session(&new_session(&m, 9_000_000), 1_000)
        .await;
    assert!(refused.is_err(), "the event could not be written");
    let count = || async {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) AS n FROM checkout_sessions")
            .fetch_one(store.pool())
            .await
            .unwrap();
        n
    };
    assert_eq!(count().await, 0, "nothing half-written");

    // The connection whose statements failed was closed, not pooled: the next sessions
    // are written and seen from every connection.
    sqlx::query(match store.backend() {
        Backend::Sqlite => "DROP TRIGGER payment_events_refuse",
        Backend::Postgres => "DROP TRIGGER payment_events_refuse ON payment_events",
    })
    .execute(store.pool())
    .await
    .unwrap();
    for _ in 0..3 {
        store
            .insert_session(&new_session(&m, 9_000_000), 1_000)
            .await
            .unwrap();
    }
    let seen = futures_util::future::join_all((0..5).map(|_| count())).await;
    assert_eq!(seen, [3; 5]);
}

async fn expiring_a_session_happens_once(store: TestStore) {
    let m = merchant(&store).await;
    let due = store
        .insert_session(&new_session(&m, 5_000), 1_000)
        .await
        .unwrap();
    let later = store
        .insert_session(&new_session(&m, 50_000), 1_000)
        .await
        .unwrap();
    assert_eq!(
        store.sessions_due_to_expire(10_000, 100).await.unwrap(),
        vec![due.id.clone()]
    );

    assert_eq!(
        store
            .expire_session(&due.id, 10_000, "timeout")
            .await
            .unwrap(),
        Expiry::Expired
    );
    assert_eq!(
        store
            .expire_session(&due.id, 10_001, "timeout")
            .await
            .unwrap(),
        Expiry::NotOpen,
        "second expiry is a no-op"
    );
    assert_eq!(
        store.session(&due.id).await.unwrap().unwrap().status,
        SessionStatus::Expired
    );
    assert!(
        store
            .sessions_due_to_expire(10_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.session(&later.id).await.unwrap().unwrap().status,
        SessionStatus::Open
    );

    let kinds: Vec<String> = store
        .session_events(due.id.as_str())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["session.created", "session.expired"]);
}

async fn racing_finalisations_have_exactly_one_winner(store: TestStore) {
    let (session, attempt) = session_with_attempt(&store, 9_000_000).await;
    assert_eq!(attempt.status, AttemptStatus::Pending);

    // A callback saying "paid" and a poll saying "failed" (and their duplicates) race.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.store.clone();
        let id = attempt.id.clone();
        tasks.push(tokio::spawn(async move {
            let (to, outcome) = if i % 2 == 0 {
                (
                    AttemptStatus::Succeeded,
                    AttemptOutcome {
                        operator_receipt: Some("NLJ7RT61SV".into()),
                        ..Default::default()
                    },
                )
            } else {
                (
                    AttemptStatus::Failed,
                    AttemptOutcome {
                        failure_code: Some("insufficient_funds".into()),
                        ..Default::default()
                    },
                )
            };
            let won = store
                .finalize_attempt(
                    &id,
                    to,
                    &outcome,
                    if i % 2 == 0 { "callback" } else { "query" },
                    2_000 + i,
                )
                .await
                .unwrap();
            (won, to)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (won, to) = t.await.unwrap();
        if won {
            winners.push(to);
        }
    }
    // The operator's success outranks any failure verdict: whatever the order, the
    // attempt ends succeeded, through exactly one success and at most one failure before.
    let successes = winners
        .iter()
        .filter(|w| **w == AttemptStatus::Succeeded)
        .count();
    let failures = winners.len() - successes;
    assert_eq!(successes, 1, "exactly one success wins: {winners:?}");
    assert!(failures <= 1, "at most one failure before it: {winners:?}");
    let final_attempt = store.attempt(&attempt.id).await.unwrap().unwrap();
    assert_eq!(final_attempt.status, AttemptStatus::Succeeded);
    assert_eq!(
        final_attempt.late_from,
        (failures == 1).then_some(AttemptStatus::Failed),
        "a success after a failure is recorded as late"
    );
    assert!(final_attempt.finalized_at.is_some());
    assert_eq!(
        final_attempt.next_poll_at, None,
        "a final attempt is never polled again"
    );

    let session = store.session(&session.id).await.unwrap().unwrap();
    assert_eq!(
        (session.status, session.payment_status),
        (SessionStatus::Complete, PaymentStatus::Paid)
    );

    let events = store.session_events(session.id.as_str()).await.unwrap();
    let count = |kind: &str| events.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count("attempt.succeeded"), 1);
    assert_eq!(count("attempt.failed"), failures);
    assert_eq!(count("session.completed"), 1);
    // One webhook event per transition, plus the completion.
    let outbox = store
        .events(
            &session.merchant_id,
            Mode::Test,
            &EventFilter::default(),
            100,
        )
        .await
        .unwrap();
    // In the order the transitions happened (the racers' clocks are made up, so the
    // per-session sequence, not the time, orders them).
    let mut outbox = outbox;
    outbox.sort_by_key(|e| e.sequence);
    let kinds: Vec<&str> = outbox.iter().map(|e| e.kind.as_str()).collect();
    if failures == 1 {
        assert_eq!(
            kinds,
            [
                "payment.failed",
                "payment.succeeded",
                "checkout.session.completed"
            ]
        );
    } else {
        assert_eq!(kinds, ["payment.succeeded", "checkout.session.completed"]);
    }
}

fn receipt(r: &str) -> AttemptOutcome {
    AttemptOutcome {
        operator_receipt: Some(r.into()),
        ..Default::default()
    }
}

fn failure(code: &str) -> AttemptOutcome {
    AttemptOutcome {
        failure_code: Some(code.into()),
        ..Default::default()
    }
}

async fn late_success_still_completes_an_expired_session(store: TestStore) {
    let (session, attempt) = session_with_attempt(&store, 5_000).await;
    // The prompt timed out (Daraja 1037), then the session's time ran out.
    assert!(
        store
            .finalize_attempt(
                &attempt.id,
                AttemptStatus::Expired,
                &failure("no_response"),
                "callback",
                5_500
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .expire_session(&session.id, 6_000, "timeout")
            .await
            .unwrap(),
        Expiry::Expired
    );
    // Then M-PESA says the money came after all.
    assert!(
        store
            .finalize_attempt(
                &attempt.id,
                AttemptStatus::Succeeded,
                &receipt("QKJ4ABC123"),
                "callback",
                7_000
            )
            .await
            .unwrap(),
        "the operator's success is never dropped"
    );
    let s = store.session(&session.id).await.unwrap().unwrap();
    assert_eq!(
        (s.status, s.payment_status),
        (SessionStatus::Complete, PaymentStatus::Paid),
        "money is never lost"
    );
    let a = store.attempt(&attempt.id).await.unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Succeeded);
    assert_eq!(a.operator_receipt.as_deref(), Some("QKJ4ABC123"));
    assert_eq!(a.late_from, Some(AttemptStatus::Expired));
    assert!(!a.duplicate);
    let outbox = store
        .events(&s.merchant_id, Mode::Test, &EventFilter::default(), 100)
        .await
        .unwrap();
    let kinds: Vec<&str> = outbox.iter().rev().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "payment.failed",
            "checkout.session.expired",
            "payment.succeeded",
            "checkout.session.completed"
        ]
    );
    let succeeded = outbox[1].object().unwrap();
    assert_eq!(succeeded.data.object["late"], true);
    // A success is final: a later failure changes nothing.
    assert!(
        !store
            .finalize_attempt(
                &attempt.id,
                AttemptStatus::Failed,
                &failure("wrong_pin"),
                "query",
                8_000
            )
            .await
            .unwrap()
    );
}

async fn parallel_rescues_never_pass_the_cap_together(store: TestStore) {
    use malipo::{connectors::RailId, store::RescueRecord};
    let (session, attempt) = session_with_attempt(&store, 9_000_000).await;
    let rescue = |n: usize| RescueRecord {
        id: format!("rs_cap{n:02}"),
        session_id: session.id.clone(),
        attempt_id: attempt.id.clone(),
        rail: RailId::Mpesa,
        receipt: format!("QCAP{n:06}"),
        status: "checking".into(),
        detail: None,
        created_at: 2_000 + n as i64,
    };
    // Ten requests at once (five connections), three allowed since 1,000.
    let tries = (0..10).map(|n| {
        let store = store.store.clone();
        let r = rescue(n);
        tokio::spawn(async move { store.insert_rescue_capped(&r, 1_000, 3).await.unwrap() })
    });
    let mut written = 0;
    for t in tries {
        written += usize::from(t.await.unwrap());
    }
    assert_eq!(written, 3);
    assert_eq!(store.count_rescues(&session.id, 1_000).await.unwrap(), 3);
    // Older ones do not count.
    assert!(
        store
            .insert_rescue_capped(&rescue(10), 2_011, 3)
            .await
            .unwrap()
    );
}

async fn a_paybill_payment_waits_for_mpesa_before_it_settles(store: TestStore) {
    use malipo::{
        connectors::{PaybillPayment, RailId},
        store::{PaybillClosed, PaybillRecorded},
    };
    let m = merchant(&store).await;
    let session = store
        .insert_session(&new_session(&m, 9_000_000), 1_000)
        .await
        .unwrap();
    let account = store.pay_code(&session.id).await.unwrap().unwrap();
    let menu_payment = |receipt: &str| PaybillPayment {
        receipt: receipt.into(),
        amount: Money::new(150_000, Currency::Tzs).unwrap(),
        business: "174379".into(),
        account: account.clone(),
        payer: Some("254712345678".into()),
        from_menu: true,
    };
    let kept = |receipt: &'static str| {
        let store = &store;
        async move {
            store
                .unmatched_paybill(10)
                .await
                .unwrap()
                .into_iter()
                .find(|u| u.0 == receipt)
                .map(|u| u.6)
        }
    };
    let record = async |receipt: &str, at: i64| {
        store
            .record_paybill(
                RailId::Mpesa,
                &menu_payment(receipt),
                Some(&session.id),
                "{}",
                true,
                at,
            )
            .await
            .unwrap()
    };

    // Kept and waiting for M-PESA's word: nothing counts towards the session yet.
    assert_eq!(
        record("QPBCHECK01", 2_000).await,
        PaybillRecorded::Verifying
    );
    assert_eq!(record("QPBCHECK01", 2_500).await, PaybillRecorded::Seen);
    assert_eq!(kept("QPBCHECK01").await.as_deref(), Some("verifying"));
    let s = store.session(&session.id).await.unwrap().unwrap();
    assert_eq!(s.received_minor, 0);

    // No answer yet: listed to be asked again once it is older than asked (every
    // minute while young, every ten minutes after); asking again moves it back.
    assert!(
        store
            .paybill_unanswered(2_000, 0, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.paybill_unanswered(62_000, 0, 0, 10).await.unwrap(),
        [("QPBCHECK01".to_string(), 2_000, 0)]
    );
    // No longer young: only when last asked before the slow cut-off.
    assert!(
        store
            .paybill_unanswered(62_000, 5_000, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .paybill_unanswered(62_000, 5_000, 3_000, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    store.paybill_checked("QPBCHECK01", 63_000).await.unwrap();
    assert!(
        store
            .paybill_unanswered(62_000, 0, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // M-PESA confirmed it: settled once, a part of the session.
    let settled = store
        .settle_verified_paybill("QPBCHECK01", 64_000)
        .await
        .unwrap();
    assert!(
        matches!(settled, Some(PaybillRecorded::Settled { ref session_id, .. }) if *session_id == session.id),
        "{settled:?}"
    );
    assert_eq!(
        store
            .settle_verified_paybill("QPBCHECK01", 65_000)
            .await
            .unwrap(),
        None
    );
    assert!(
        !store
            .close_paybill("QPBCHECK01", PaybillClosed::Refused, "late")
            .await
            .unwrap()
    );
    assert_eq!(
        store.paybill_missed("QPBCHECK01", "late").await.unwrap(),
        None
    );
    assert_eq!(
        kept("QPBCHECK01").await,
        None,
        "settled: no longer waiting for a person"
    );
    let s = store.session(&session.id).await.unwrap().unwrap();
    assert_eq!(s.received_minor, 150_000);

    // One M-PESA does not confirm: refused, kept for a person, never settled after.
    assert_eq!(
        record("QPBFORGED1", 70_000).await,
        PaybillRecorded::Verifying
    );
    // M-PESA's "no such payment" answers are counted first (it may lag)…
    assert_eq!(
        store.paybill_missed("QPBFORGED1", "R000002").await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .paybill_missed("QPBFORGED1", "R000002 again")
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        store.paybill_status("QPBFORGED1").await.unwrap(),
        Some(("verifying".into(), 2, Some("R000002 again".into())))
    );
    // …then it is refused.
    assert!(
        store
            .close_paybill("QPBFORGED1", PaybillClosed::Refused, "no such payment")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .settle_verified_paybill("QPBFORGED1", 71_000)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .paybill_unanswered(i64::MAX, 0, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(kept("QPBFORGED1").await.as_deref(), Some("refused"));
    // A person has it checked again (after fixing the initiator): verifying, from now.
    assert!(store.recheck_paybill("QPBFORGED1", 80_000).await.unwrap());
    assert!(!store.recheck_paybill("QPBFORGED1", 80_000).await.unwrap());
    assert!(
        !store.recheck_paybill("QPBCHECK01", 80_000).await.unwrap(),
        "settled"
    );
    assert_eq!(
        store.paybill_status("QPBFORGED1").await.unwrap().unwrap().1,
        0
    );
    assert_eq!(
        store
            .paybill_unanswered(i64::MAX, 79_000, 0, 10)
            .await
            .unwrap(),
        [("QPBFORGED1".to_string(), 80_000, 0)]
    );
    assert!(
        store
            .close_paybill("QPBFORGED1", PaybillClosed::Refused, "no such payment")
            .await
            .unwrap()
    );
    // One M-PESA could not be asked about: unverified, for a person.
    assert_eq!(
        record("QPBASKNONE", 72_000).await,
        PaybillRecorded::Verifying
    );
    assert!(
        store
            .close_paybill("QPBASKNONE", PaybillClosed::Unverified, "no initiator")
            .await
            .unwrap()
    );
    assert_eq!(kept("QPBASKNONE").await.as_deref(), Some("unverified"));
    let s = store.session(&session.id).await.unwrap().unwrap();
    assert_eq!(s.received_minor, 150_000);
}

async fn parts_add_up_and_an_overpayment_is_recorded(store: TestStore) {
    // TZS 2,500 in two parts of TZS 1,500: the second brings TZS 500 too many.
    let m = merchant(&store).await;
    let session = store
        .insert_session(&new_session(&m, 9_000_000), 1_000)
        .await
        .unwrap();
    let part = |at: i64| {
        let mut a = new_attempt(&session.id);
        a.amount = Money::new(150_000, Currency::Tzs).unwrap();
        a.credit_minor = Some(150_000);
        a.payer = Some(format!("25571234{at:04}"));
        a
    };
    let pay = async |at: i64, receipt_no: &str| {
        let a = store.insert_attempt(&part(at), at).await.unwrap().unwrap();
        assert!(
            store
                .finalize_attempt(
                    &a.id,
                    AttemptStatus::Succeeded,
                    &receipt(receipt_no),
                    "callback",
                    at + 1
                )
                .await
                .unwrap()
        );
        store.attempt(&a.id).await.unwrap().unwrap()
    };
    let first = pay(2_000, "QPART00001").await;
    let s = store.session(&session.id).await.unwrap().unwrap();
    assert_eq!(
        (s.status, s.payment_status, s.received_minor),
        (SessionStatus::Open, PaymentStatus::Unpaid, 150_000)
    );
    assert_eq!((first.duplicate, first.overpaid_minor), (false, None));
    let second = pay(3_000, "QPART00002").await;
    let s = store.session(&session.id).await.unwrap().unwrap();
    assert_eq!(
        (s.status, s.payment_status, s.received_minor),
        (SessionStatus::Complete, PaymentStatus::Paid, 300_000)
    );
    assert_eq!(
        (second.duplicate, second.overpaid_minor),
        (false, Some(50_000))
    );
    // The part that completed it is the session's payment; the overpayment waits for
    // a person (and a refund).
    assert_eq!(
        store.paying_attempt(&session.id).await.unwrap().unwrap().id,
        second.id
    );
    let waiting = store.attempts_to_reconcile(false, 10).await.unwrap();
    assert!(
        waiting.iter().any(|(a, _)| a.id == second.id),
        "{waiting:?}"
    );
    // Each part announced itself; the session once.
    let kinds: Vec<String> = store
        .session_events(session.id.as_str())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for kind in ["session.part_paid", "attempt.overpaid", "session.completed"] {
        assert_eq!(
            kinds.iter().filter(|k| *k == kind).count(),
            1,
            "{kind}: {kinds:?}"
        );
    }
}

async fn a_second_payment_is_a_duplicate_to_refund(store: TestStore) {
    let (session, first) = session_with_attempt(&store, 9_000_000).await;
    // The first push timed out on our side; the shopper paid with a second push...
    assert!(
        store
            .finalize_attempt(
                &first.id,
                AttemptStatus::Expired,
                &failure("no_response"),
                "callback",
                1_500
            )
            .await
            .unwrap()
    );
    let second = store
        .insert_attempt(&new_attempt(&session.id), 1_600)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .finalize_attempt(
                &second.id,
                AttemptStatus::Succeeded,
                &receipt("QSECOND001"),
                "callback",
                1_700
            )
            .await
            .unwrap()
    );
    // ...and then the first one's money arrives too.
    assert!(
        store
            .finalize_attempt(
                &first.id,
                AttemptStatus::Succeeded,
                &receipt("QFIRST0001"),
                "callback",
                1_800
            )
            .await
            .unwrap()
    );
    let a = store.attempt(&first.id).await.unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Succeeded);
    assert!(a.duplicate, "paid twice: the first is a duplicate");
    assert_eq!(a.late_from, Some(AttemptStatus::Expired));
    assert!(!store.attempt(&second.id).await.unwrap().unwrap().duplicate);
    let reconcile = store.attempts_to_reconcile(false, 100).await.unwrap();
    assert!(reconcile.iter().any(|(r, _)| r.id == first.id));
    let outbox = store
        .events(
            &session.merchant_id,
            Mode::Test,
            &EventFilter::default(),
            100,
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = outbox.iter().rev().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "payment.failed",
            "payment.succeeded",
            "checkout.session.completed",
            "payment.succeeded",
            "payment.duplicate"
        ],
        "one completion; the duplicate is announced for a refund"
    );
    let dup = outbox[0].object().unwrap();
    assert_eq!(dup.data.object["id"], first.id.as_str());
    assert_eq!(dup.data.object["duplicate"], true);
}

async fn an_unknown_outcome_stays_open_and_is_surfaced(store: TestStore) {
    let (session, attempt) = session_with_attempt(&store, 9_000_000).await;
    assert!(
        store
            .mark_unknown(&attempt.id, "no final answer", Some(5_000), 2_000)
            .await
            .unwrap()
    );
    let a = store.attempt(&attempt.id).await.unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Unknown);
    assert!(!a.status.is_final());
    assert_eq!(a.failure_code, None, "unknown is not a failure");
    assert_eq!(
        store
            .attempts_due_for_poll(5_000, Mode::Test, 10)
            .await
            .unwrap()
            .iter()
            .map(|a| a.id.clone())
            .collect::<Vec<_>>(),
        vec![attempt.id.clone()],
        "unknown attempts are still asked about"
    );
    // Not yet given up on: nothing for the merchant yet.
    let outbox = || async {
        store
            .events(
                &session.merchant_id,
                Mode::Test,
                &EventFilter::default(),
                100,
            )
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind.clone())
            .collect::<Vec<_>>()
    };
    assert!(outbox().await.is_empty());
    // Asking is over: left for reconciliation, and the merchant is told.
    assert!(
        store
            .mark_unknown(&attempt.id, "never answered", None, 900_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .attempts_due_for_poll(10_000_000, Mode::Test, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(outbox().await, ["payment.unknown"]);
    assert!(
        store
            .attempts_to_reconcile(false, 100)
            .await
            .unwrap()
            .iter()
            .any(|(r, _)| r.id == attempt.id)
    );
    // A person resolves it: it leaves the to-do list (once), its status unchanged.
    assert!(
        store
            .resolve_reconciliation(&attempt.id, "not on the statement", 900_500)
            .await
            .unwrap()
    );
    assert!(
        !store
            .resolve_reconciliation(&attempt.id, "again", 900_600)
            .await
            .unwrap()
    );
    let listed = store.attempts_to_reconcile(false, 100).await.unwrap();
    assert!(!listed.iter().any(|(r, _)| r.id == attempt.id));
    let all = store.attempts_to_reconcile(true, 100).await.unwrap();
    let (r, done) = all.iter().find(|(r, _)| r.id == attempt.id).unwrap();
    assert_eq!(r.status, AttemptStatus::Unknown);
    assert_eq!(done.as_ref().unwrap().note, "not on the statement");
    // An operator id learnt late (the push's answer came after all) resumes the asking;
    // without one, nothing to resume.
    assert!(!store.resume_polling(&attempt.id, 910_000).await.unwrap());
    assert!(
        store
            .set_operator_request_id(&attempt.id, "ws_CO_late_answer", 910_000)
            .await
            .unwrap()
    );
    assert!(store.resume_polling(&attempt.id, 910_000).await.unwrap());
    assert_eq!(
        store
            .attempts_due_for_poll(910_000, Mode::Test, 10)
            .await
            .unwrap()
            .len(),
        1,
        "asked about again"
    );
    // The session stays open for another try, and a later answer still settles it.
    assert_eq!(
        store.session(&session.id).await.unwrap().unwrap().status,
        SessionStatus::Open
    );
    assert!(
        store
            .finalize_attempt(
                &attempt.id,
                AttemptStatus::Succeeded,
                &receipt("QLATE00001"),
                "callback",
                950_000
            )
            .await
            .unwrap()
    );
    let a = store.attempt(&attempt.id).await.unwrap().unwrap();
    assert_eq!(a.late_from, Some(AttemptStatus::Unknown));
    // The operator's word replaces the person's resolution (a duplicate would be listed
    // again).
    let resolution: Option<i64> =
        sqlx::query_scalar("SELECT reconciled_at FROM payment_attempts WHERE id = $1")
            .bind(attempt.id.as_str())
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(resolution, None);
    assert_eq!(
        store
            .session(&session.id)
            .await
            .unwrap()
            .unwrap()
            .payment_status,
        PaymentStatus::Paid
    );
}

async fn a_pending_payment_blocks_expiry_and_a_closed_session_takes_no_attempt(store: TestStore) {
    let (session, attempt) = session_with_attempt(&store, 5_000).await;
    assert_eq!(
        store
            .expire_session(&session.id, 2_000, "merchant")
            .await
            .unwrap(),
        Expiry::PaymentPending,
        "the PIN can still be typed"
    );
    assert!(
        store
            .sessions_due_to_expire(6_000, 100)
            .await
            .unwrap()
            .is_empty(),
        "the sweeper waits for the attempt"
    );
    assert!(
        store
            .finalize_attempt(
                &attempt.id,
                AttemptStatus::Cancelled,
                &failure("cancelled_by_user"),
                "callback",
                6_500
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.sessions_due_to_expire(7_000, 100).await.unwrap(),
        vec![session.id.clone()]
    );
    assert_eq!(
        store
            .expire_session(&session.id, 7_000, "timeout")
            .await
            .unwrap(),
        Expiry::Expired
    );
    // The insert itself checks the session: no push for an expired session.
    assert!(
        store
            .insert_attempt(&new_attempt(&session.id), 7_100)
            .await
            .unwrap()
            .is_none()
    );
    // Nor for one whose time is up but which the sweeper has not marked yet.
    let m = merchant(&store).await;
    let lapsed = store
        .insert_session(&new_session(&m, 8_000), 1_000)
        .await
        .unwrap();
    assert!(
        store
            .insert_attempt(&new_attempt(&lapsed.id), 8_000)
            .await
            .unwrap()
            .is_none()
    );
}

async fn callbacks_are_kept_append_only(store: TestStore) {
    let (_, attempt) = session_with_attempt(&store, 9_000_000).await;
    store
        .record_callback("mpesa", &attempt.id, b"{\"Body\":1}", 2_000)
        .await
        .unwrap();
    store
        .record_callback("mpesa", &attempt.id, b"not json \xff", 2_001)
        .await
        .unwrap();
    assert_eq!(
        store.callbacks(&attempt.id).await.unwrap(),
        ["{\"Body\":1}", "not json \u{fffd}"]
    );
    for sql in [
        "UPDATE operator_callbacks SET body = 'x'",
        "DELETE FROM operator_callbacks",
    ] {
        assert!(
            sqlx::query(sql).execute(store.pool()).await.is_err(),
            "{sql}"
        );
    }
}

async fn failed_attempt_leaves_the_session_open(store: TestStore) {
    let (session, attempt) = session_with_attempt(&store, 9_000_000).await;
    let outcome = AttemptOutcome {
        failure_code: Some("cancelled_by_user".into()),
        failure_detail: Some("1032 Request cancelled by user".into()),
        ..Default::default()
    };
    assert!(
        store
            .finalize_attempt(
                &attempt.id,
                AttemptStatus::Cancelled,
                &outcome,
                "callback",
                2_000
            )
            .await
            .unwrap()
    );
    let s = store.session(&session.id).await.unwrap().unwrap();
    assert_eq!(
        (s.status, s.payment_status),
        (SessionStatus::Open, PaymentStatus::Unpaid),
        "the shopper can try again"
    );
    let a = store.attempt(&attempt.id).await.unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Cancelled);
    assert_eq!(
        a.failure_detail.as_deref(),
        Some("1032 Request cancelled by user")
    );
}

/// The live pages' sweep reads followed sessions in bulk: the same as reading each
/// session and its latest attempt one by one.
async fn sessions_are_read_with_their_latest_attempts_in_bulk(store: TestStore) {
    let m = merchant(&store).await;
    let none = store
        .insert_session(&new_session(&m, 9_000_000), 1_000)
        .await
        .unwrap();
    let (one, _) = session_with_attempt(&store, 9_000_000).await;
    // Two attempts: the first failed, the second (later) is the latest.
    let (two, first) = session_with_attempt(&store, 9_000_000).await;
    let fail = async |id: &malipo::domain::AttemptId, at: i64| {
        let failed = AttemptOutcome {
            failure_code: Some("insufficient_funds".into()),
            ..Default::default()
        };
        assert!(
            store
                .finalize_attempt(id, AttemptStatus::Failed, &failed, "callback", at)
                .await
                .unwrap()
        );
    };
    fail(&first.id, 1_500).await;
    let tied = store
        .insert_attempt(&new_attempt(&two.id), 2_000)
        .await
        .unwrap()
        .expect("a second try");
    fail(&tied.id, 2_000).await;
    // A third in the same millisecond as the second: the tie goes to the greater id, as
    // `latest_attempt` has it.
    let third = store
        .insert_attempt(&new_attempt(&two.id), 2_000)
        .await
        .unwrap()
        .expect("a third try");
    let second = store.latest_attempt(&two.id).await.unwrap().unwrap();
    assert!([&tied.id, &third.id].contains(&&second.id));
    let gone = SessionId::generate();
    let ids = [none.id.clone(), one.id.clone(), gone, two.id.clone()];
    let read = store.sessions_with_latest_attempts(&ids).await.unwrap();
    assert_eq!(read.len(), 3, "a missing session is left out");
    for (session, latest) in &read {
        assert_eq!(
            Some(session),
            store.session(&session.id).await.unwrap().as_ref()
        );
        assert_eq!(
            latest.as_ref(),
            store.latest_attempt(&session.id).await.unwrap().as_ref()
        );
    }
    let of = |id: &SessionId| read.iter().find(|(s, _)| &s.id == id).unwrap();
    assert!(of(&none.id).1.is_none());
    assert!(of(&one.id).1.is_some());
    assert_eq!(of(&two.id).1.as_ref().unwrap().id, second.id);
    assert!(
        store
            .sessions_with_latest_attempts(&[])
            .await
            .unwrap()
            .is_empty()
    );
}

async fn operator_ids_are_unique_per_rail(store: TestStore) {
    let (_, a) = session_with_attempt(&store, 9_000_000).await;
    let (_, b) = session_with_attempt(&store, 9_000_000).await;
    assert!(
        store
            .set_operator_request_id(&a.id, "ws_CO_191220191020363925", 1_500)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_operator_request_id(&a.id, "ws_CO_other", 1_600)
            .await
            .unwrap(),
        "set once"
    );
    let err = store
        .set_operator_request_id(&b.id, "ws_CO_191220191020363925", 1_700)
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
}

async fn a_session_has_one_pending_attempt_at_most(store: TestStore) {
    let (session, first) = session_with_attempt(&store, 9_000_000).await;
    let err = store
        .insert_attempt(&new_attempt(&session.id), 1_100)
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    assert_eq!(
        store
            .pending_attempt(&session.id)
            .await
            .unwrap()
            .map(|a| a.id),
        Some(first.id.clone())
    );
    let outcome = AttemptOutcome {
        failure_code: Some("wrong_pin".into()),
        ..Default::default()
    };
    assert!(
        store
            .finalize_attempt(
                &first.id,
                AttemptStatus::Failed,
                &outcome,
                "callback",
                1_200
            )
            .await
            .unwrap()
    );
    let second = store
        .insert_attempt(&new_attempt(&session.id), 1_300)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .latest_attempt(&session.id)
            .await
            .unwrap()
            .map(|a| a.id),
        Some(second.id)
    );
}

async fn due_polls_are_listed_and_rescheduled(store: TestStore) {
    let (_, a) = session_with_attempt(&store, 9_000_000).await;
    assert!(
        store
            .attempts_due_for_poll(999, Mode::Test, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store
        .attempts_due_for_poll(1_000, Mode::Test, 10)
        .await
        .unwrap();
    assert_eq!(
        due.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        vec![a.id.clone()]
    );
    assert!(store.reschedule_poll(&a.id, 16_000, 1_001).await.unwrap());
    assert!(
        store
            .attempts_due_for_poll(15_999, Mode::Test, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .attempts_due_for_poll(16_000, Mode::Test, 10)
        .await
        .unwrap();
    assert_eq!(again[0].poll_count, 1);
    assert!(
        store
            .attempts_due_for_poll(16_000, Mode::Live, 10)
            .await
            .unwrap()
            .is_empty(),
        "live queries are listed apart"
    );
}

/// What a poller does each pass: reads the due attempts, then takes those still due.
async fn claim_due(store: &TestStore, now: i64, lease_until: i64) -> Vec<AttemptRecord> {
    let due = store
        .attempts_due_for_poll(now, Mode::Test, 10)
        .await
        .unwrap();
    store
        .claim_attempts_for_poll(due, Mode::Test, now, lease_until)
        .await
        .unwrap()
}

async fn a_due_poll_is_taken_by_one_poller_until_its_lease_ends(store: TestStore) {
    let (_, a) = session_with_attempt(&store, 9_000_000).await;
    // Two instances' pollers at once: one takes it, until 61,000.
    let (first, second) = tokio::join!(
        claim_due(&store, 1_000, 61_000),
        claim_due(&store, 1_000, 61_000),
    );
    let taken = first.len() + second.len();
    assert_eq!(taken, 1, "one poller takes it");
    let held = claim_due(&store, 60_999, 120_000).await;
    assert!(held.is_empty(), "held while the lease lasts");
    // The poller that took it died: once the lease ends, another takes it, as it is now.
    let again = claim_due(&store, 61_000, 121_000).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, a.id);
    assert_eq!(again[0].next_poll_at, Some(121_000));
    // Asked, it is rescheduled as ever.
    assert!(store.reschedule_poll(&a.id, 130_000, 62_000).await.unwrap());
    let after = claim_due(&store, 130_000, 190_000).await;
    assert_eq!(after[0].poll_count, 1);
}

async fn due_polls_take_turns_by_merchant(store: TestStore) {
    // A has three attempts due before B's one: B's comes second, not fourth.
    let a = merchant(&store).await;
    let mut a_attempts = Vec::new();
    for i in 0..3 {
        let session = store
            .insert_session(&new_session(&a, 9_000_000), 1_000)
            .await
            .unwrap();
        let mut n = new_attempt(&session.id);
        n.next_poll_at = Some(1_000 + i);
        a_attempts.push(store.insert_attempt(&n, 1_000).await.unwrap().unwrap().id);
    }
    let b = merchant(&store).await;
    let session = store
        .insert_session(&new_session(&b, 9_000_000), 1_000)
        .await
        .unwrap();
    let mut n = new_attempt(&session.id);
    n.next_poll_at = Some(5_000);
    let b_attempt = store.insert_attempt(&n, 1_000).await.unwrap().unwrap().id;
    let due: Vec<_> = store
        .attempts_due_for_poll(10_000, Mode::Test, 3)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(
        due,
        [a_attempts[0].clone(), b_attempt, a_attempts[1].clone()]
    );
}

async fn the_event_log_is_append_only(store: TestStore) {
    let m = merchant(&store).await;
    let session = store
        .insert_session(&new_session(&m, 9_000_000), 1_000)
        .await
        .unwrap();
    let update = sqlx::query("UPDATE payment_events SET kind = 'forged' WHERE session_id = $1")
        .bind(session.id.as_str())
        .execute(store.pool())
        .await;
    assert!(update.is_err(), "UPDATE must be refused");
    let delete = sqlx::query("DELETE FROM payment_events WHERE session_id = $1")
        .bind(session.id.as_str())
        .execute(store.pool())
        .await;
    assert!(delete.is_err(), "DELETE must be refused");
    let events = store.session_events(session.id.as_str()).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "session.created");
}

async fn migrations_are_idempotent(store: TestStore) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn events_and_deliveries_commit_with_the_state_change(store: TestStore) {
    let (session, attempt) = session_with_attempt(&store, 9_000_000).await;
    let endpoint = malipo::webhooks::create_endpoint(
        &store,
        &session.merchant_id,
        Mode::Test,
        "https://ferry.example/hooks",
        &[
            "payment.succeeded".into(),
            "checkout.session.completed".into(),
        ],
        "",
        1_500,
    )
    .await
    .unwrap();
    // A live-mode endpoint of the same merchant must not get test events.
    malipo::webhooks::create_endpoint(
        &store,
        &session.merchant_id,
        Mode::Live,
        "https://ferry.example/live-hooks",
        &["*".into()],
        "",
        1_500,
    )
    .await
    .unwrap();
    let outcome = AttemptOutcome {
        operator_receipt: Some("NLJ7RT61SV".into()),
        ..Default::default()
    };
    assert!(
        store
            .finalize_attempt(
                &attempt.id,
                AttemptStatus::Succeeded,
                &outcome,
                "callback",
                2_000
            )
            .await
            .unwrap()
    );
    let events = store
        .events(
            &session.merchant_id,
            Mode::Test,
            &EventFilter::default(),
            10,
        )
        .await
        .unwrap();
    let seen: Vec<(&str, i64)> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.sequence))
        .collect();
    assert_eq!(
        seen,
        [("checkout.session.completed", 2), ("payment.succeeded", 1)],
        "newest first, ordered within the session"
    );
    let body = events[0].object().unwrap();
    assert_eq!(body.data.object["status"], "complete");
    assert_eq!(body.data.object["payment_status"], "paid");
    assert_eq!(
        events[1].object().unwrap().data.object["receipt"],
        "NLJ7RT61SV"
    );

    let due = store
        .due_deliveries(2_000, Mode::Test, 10, 10)
        .await
        .unwrap();
    assert_eq!(
        due.len(),
        2,
        "one delivery per event, test-mode endpoint only"
    );
    assert!(due.iter().all(|d| d.endpoint_id == endpoint.id));
    assert!(
        store
            .events(
                &session.merchant_id,
                Mode::Live,
                &EventFilter::default(),
                10
            )
            .await
            .unwrap()
            .is_empty(),
        "objects never cross modes"
    );

    // A claimed delivery is not due again until its lease ends, and one claim wins.
    assert!(store.claim_delivery(&due[0], 60_000).await.unwrap());
    assert!(!store.claim_delivery(&due[0], 60_000).await.unwrap());
    assert_eq!(
        store
            .due_deliveries(2_000, Mode::Test, 10, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .due_deliveries(60_000, Mode::Test, 10, 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

/// Makes every insert into `table` fail, as a full disk or a lost connection would.
async fn refuse_inserts(store: &TestStore, table: &str) {
    let statements = match store.backend() {
        Backend::Sqlite => vec![format!(
            "CREATE TRIGGER {table}_refuse BEFORE INSERT ON {table} \
             BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )],
        Backend::Postgres => vec![
            format!(
                "CREATE FUNCTION {table}_refuse() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'refused'; END $$"
            ),
            format!(
                "CREATE TRIGGER {table}_refuse BEFORE INSERT ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION {table}_refuse()"
            ),
        ],
    };
    for sql in statements {
        sqlx::query(&sql).execute(store.pool()).await.unwrap();
    }
}

async fn a_failed_outbox_write_undoes_the_state_change(store: TestStore) {
    let m = merchant(&store).await;
    let session = store
        .insert_session(&new_session(&m, 9_000_000), 1_000)
        .await
        .unwrap();
    // Make every event insert fail, as a full disk or a lost connection would.
    refuse_inserts(&store, "events").await;
    assert!(
        store
            .expire_session(&session.id, 2_000, "merchant")
            .await
            .is_err()
    );
    let after = store.session(&session.id).await.unwrap().unwrap();
    assert_eq!(
        after.status,
        SessionStatus::Open,
        "no change without its event"
    );
    let log = store.session_events(session.id.as_str()).await.unwrap();
    assert!(log.iter().all(|e| e.kind != "session.expired"));
}

async fn redelivery_survives_concurrent_writers(store: TestStore) {
    let m = merchant(&store).await;
    malipo::webhooks::create_endpoint(
        &store,
        &m,
        Mode::Test,
        "https://ferry.example/hooks",
        &["*".into()],
        "",
        1_000,
    )
    .await
    .unwrap();
    let session = store
        .insert_session(&new_session(&m, 9_000_000), 1_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .expire_session(&session.id, 2_000, "merchant")
            .await
            .unwrap(),
        Expiry::Expired
    );
    let event = store
        .events(&m, Mode::Test, &EventFilter::default(), 1)
        .await
        .unwrap()
        .remove(0);
    // Another writer commits all the while (as the delivery worker does).
    let writer = {
        let store = store.store.clone();
        let m = m.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                let origins = vec![format!("https://lodge{i}.example")];
                store
                    .set_embed_origins(&m, Mode::Test, &origins)
                    .await
                    .unwrap();
            }
        })
    };
    for i in 0..100 {
        let n = store.redeliver(&event, 3_000 + i).await.unwrap();
        assert_eq!(n, 1, "one endpoint, one delivery");
    }
    writer.await.unwrap();
    let due = store
        .due_deliveries(10_000, Mode::Test, 10, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1, "still one delivery, pending again");
}

async fn an_idempotency_claim_belongs_to_its_holder(store: TestStore) {
    use malipo::store::{IdempotencyBegin, KeyScope};
    let m = merchant(&store).await;
    let scope = KeyScope {
        merchant_id: &m,
        mode: Mode::Test,
        key: "order-42",
    };
    let IdempotencyBegin::Started { claim: first } = store
        .idempotency_begin(scope, "h", 0, 60_000)
        .await
        .unwrap()
    else {
        panic!("the first request claims the key")
    };
    // Still running at 50 s: it extends its lease, so a retry at 61 s waits.
    assert!(
        store
            .idempotency_extend(scope, &first, 110_000)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .idempotency_begin(scope, "h", 61_000, 60_000)
            .await
            .unwrap(),
        IdempotencyBegin::InFlight
    );
    // Had it died, its lease would lapse and a retry would take the key over...
    let IdempotencyBegin::Started { claim: second } = store
        .idempotency_begin(scope, "h", 111_000, 60_000)
        .await
        .unwrap()
    else {
        panic!("a lapsed claim is taken over")
    };
    assert_ne!(first, second);
    // ...and the first, waking late, can neither extend, finish nor abandon it.
    assert!(
        !store
            .idempotency_extend(scope, &first, 200_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .idempotency_finish(scope, &first, 200, "{\"stale\":true}")
            .await
            .unwrap()
    );
    assert!(!store.idempotency_abandon(scope, &first).await.unwrap());
    assert!(
        store
            .idempotency_finish(scope, &second, 201, "{\"ok\":true}")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .idempotency_begin(scope, "h", 112_000, 60_000)
            .await
            .unwrap(),
        IdempotencyBegin::Replay {
            status: 201,
            body: "{\"ok\":true}".into()
        }
    );
}

async fn a_redelivery_during_a_post_is_not_swallowed(store: TestStore) {
    use malipo::store::{DeliveryAttempt, DeliveryNext};
    let m = merchant(&store).await;
    malipo::webhooks::create_endpoint(
        &store,
        &m,
        Mode::Test,
        "https://ferry.example/hooks",
        &["*".into()],
        "",
        1_000,
    )
    .await
    .unwrap();
    let session = store
        .insert_session(&new_session(&m, 9_000_000), 1_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .expire_session(&session.id, 2_000, "merchant")
            .await
            .unwrap(),
        Expiry::Expired
    );
    let due = store
        .due_deliveries(3_000, Mode::Test, 10, 10)
        .await
        .unwrap()
        .remove(0);
    // A worker takes the delivery and posts it...
    assert!(store.claim_delivery(&due, 40_000).await.unwrap());
    // ...the merchant asks for a redelivery while the POST is under way...
    let event = store
        .events(&m, Mode::Test, &EventFilter::default(), 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(store.redeliver(&event, 3_500).await.unwrap(), 1);
    // ...and the first POST's success, recorded after, must not cancel it.
    store
        .record_delivery_attempt(
            &due.id,
            40_000,
            &DeliveryAttempt {
                attempted_at: 3_600,
                status_code: Some(200),
                latency_ms: 5,
                error: None,
            },
            DeliveryNext::Delivered,
        )
        .await
        .unwrap();
    let again = store
        .due_deliveries(4_000, Mode::Test, 10, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "the redelivery is still due");
    let log = store.deliveries(&event.id).await.unwrap();
    assert_eq!(log[0].attempt_count, 1, "the POST is on record");
}

async fn due_deliveries_take_turns_by_merchant_and_endpoint(store: TestStore) {
    let expired_events = async |name: &str, n: i64, at: i64| {
        let m = merchants::create(&store, name).await.unwrap().merchant.id;
        let endpoint = malipo::webhooks::create_endpoint(
            &store,
            &m,
            Mode::Test,
            "https://ferry.example/hooks",
            &["*".into()],
            "",
            1_000,
        )
        .await
        .unwrap();
        for i in 0..n {
            let session = store
                .insert_session(&new_session(&m, 9_000_000), 1_000)
                .await
                .unwrap();
            store
                .expire_session(&session.id, at + i, "merchant")
                .await
                .unwrap();
        }
        (m, endpoint.id)
    };
    // A has a backlog of four; B's one event came after all of them.
    let (a, a_endpoint) = expired_events("Backlog Buses", 4, 2_000).await;
    let (b, _) = expired_events("Punctual Ferries", 1, 5_000).await;
    let due = store
        .due_deliveries(10_000, Mode::Test, 2, 10)
        .await
        .unwrap();
    let order: Vec<&MerchantId> = due.iter().map(|d| &d.merchant_id).collect();
    assert_eq!(
        order,
        [&a, &b, &a],
        "B's first before A's second; at most two of A's endpoint"
    );
    assert!(due[0].next_attempt_at <= due[2].next_attempt_at);
    assert!(
        store
            .due_deliveries(10_000, Mode::Live, 2, 10)
            .await
            .unwrap()
            .is_empty(),
        "live work is listed apart"
    );
    // A's endpoint's circuit opens: its due deliveries wait, B's do not.
    assert_eq!(
        store
            .hold_endpoint_deliveries(&a_endpoint, 10_000, 70_000)
            .await
            .unwrap(),
        4
    );
    let due = store
        .due_deliveries(10_000, Mode::Test, 2, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].merchant_id, b);
    assert_eq!(
        store
            .due_deliveries(70_000, Mode::Test, 2, 10)
            .await
            .unwrap()
            .len(),
        3
    );
}
