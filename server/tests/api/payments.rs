//! The payment engine end to end: Malipo's engine and real Daraja connector against the
//! sandbox Daraja and handset, over real HTTP, with real callbacks.

use crate::helpers::{
    Db, TestApp, accept, attempt_with_token, open_kes_session, prompts, seed_session, spawn_app,
    test_config, test_db, wait_for,
};
use malipo::{
    domain::SessionId,
    startup::Application,
    store::{AttemptRecord, AttemptStatus, PaymentStatus, SessionStatus, Store},
};
use serde_json::json;
use std::time::Duration;

/// Daraja's success callback body for a push.
fn success_callback(request_id: &str, receipt: &str, amount: f64, phone: i64) -> serde_json::Value {
    json!({"Body": {"stkCallback": {
        "MerchantRequestID": "1", "CheckoutRequestID": request_id, "ResultCode": 0, "ResultDesc": "ok",
        "CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": amount}, {"Name": "MpesaReceiptNumber", "Value": receipt},
            {"Name": "PhoneNumber", "Value": phone}]}}}})
}

async fn settled(store: &Store, attempt: &AttemptRecord, secs: u64) -> AttemptRecord {
    wait_for("the attempt to settle", secs, async || {
        store
            .attempt(&attempt.id)
            .await
            .unwrap()
            .filter(|a| a.status.is_final())
    })
    .await
}

async fn new_session(app: &TestApp) -> SessionId {
    let (_, id) = seed_session(app, "Mara Serena", 900).await;
    SessionId::parse(&id).unwrap()
}

#[tokio::test]
async fn paying_on_the_handset_settles_by_callback_with_the_receipt() {
    let app = spawn_app().await;
    let sid = new_session(&app).await;
    let attempt = app
        .payments
        .start_mpesa(&sid, "0708 374 149")
        .await
        .unwrap();
    assert_eq!(attempt.status, AttemptStatus::Pending);
    assert_eq!(attempt.payer.as_deref(), Some("254708374149"));
    assert!(
        attempt
            .operator_request_id
            .as_deref()
            .is_some_and(|r| r.starts_with("ws_CO_"))
    );

    // A double tap returns the same attempt and sends no second push.
    let again = app
        .payments
        .start_mpesa(&sid, "+254708374149")
        .await
        .unwrap();
    assert_eq!(again.id, attempt.id);
    let shown = prompts(&app.client, &app.addr, "254708374149").await;
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["merchant"], "Mara Serena");
    assert_eq!(shown[0]["amount_label"], "KES 1,500");

    // The live page is pushed the change (not left to its periodic re-check).
    let mut changes = app.payments.subscribe();
    accept(
        &app.client,
        &app.addr,
        "254708374149",
        shown[0]["id"].as_str().unwrap(),
    )
    .await;
    let pushed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if changes.recv().await.unwrap() == sid.as_str() {
                return;
            }
        }
    })
    .await;
    assert!(
        pushed.is_ok(),
        "the callback's settlement is broadcast to live pages"
    );
    let done = settled(&app.store, &attempt, 5).await;
    assert_eq!(done.status, AttemptStatus::Succeeded);
    assert_eq!(
        done.operator_receipt.as_ref().map(String::len),
        Some(10),
        "receipt from the callback"
    );
    let session = app.store.session(&sid).await.unwrap().unwrap();
    assert_eq!(
        (session.status, session.payment_status),
        (SessionStatus::Complete, PaymentStatus::Paid)
    );
    let events = app.store.session_events(sid.as_str()).await.unwrap();
    let succeeded: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "attempt.succeeded")
        .collect();
    assert_eq!(succeeded.len(), 1);
    assert_eq!(succeeded[0].detail["source"], "callback");
}

#[tokio::test]
async fn fifty_concurrent_taps_send_one_push() {
    let app = spawn_app().await;
    let sid = new_session(&app).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let payments = app.payments.clone();
        let sid = sid.clone();
        tasks.push(tokio::spawn(async move {
            payments.start_mpesa(&sid, "0712345678").await.unwrap().id
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    assert_eq!(ids.len(), 1, "every tap got the same attempt");
    assert_eq!(
        prompts(&app.client, &app.addr, "254712345678").await.len(),
        1,
        "exactly one STK push"
    );
}

#[tokio::test]
async fn a_lost_callback_is_settled_by_the_poller() {
    let app = spawn_app().await;
    let sid = new_session(&app).await;
    let attempt = app
        .payments
        .start_mpesa(&sid, "0700 000 404")
        .await
        .unwrap();
    let shown = prompts(&app.client, &app.addr, "254700000404").await;
    let mut changes = app.payments.subscribe();
    accept(
        &app.client,
        &app.addr,
        "254700000404",
        shown[0]["id"].as_str().unwrap(),
    )
    .await;
    // No callback will come; the first query is due 5 s after the push.
    let done = settled(&app.store, &attempt, 12).await;
    assert_eq!(
        changes.try_recv().ok().as_deref(),
        Some(sid.as_str()),
        "the poller's settlement is broadcast too"
    );
    assert_eq!(done.status, AttemptStatus::Succeeded);
    assert_eq!(
        done.operator_receipt, None,
        "the query does not carry the receipt"
    );
    let events = app.store.session_events(sid.as_str()).await.unwrap();
    let e = events
        .iter()
        .find(|e| e.kind == "attempt.succeeded")
        .unwrap();
    assert_eq!(e.detail["source"], "query");
}

#[tokio::test]
async fn duplicate_callbacks_settle_once_and_failures_leave_the_session_open() {
    let app = spawn_app().await;
    let dup_session = new_session(&app).await;
    let dup = app
        .payments
        .start_mpesa(&dup_session, "0700000202")
        .await
        .unwrap();
    let shown = prompts(&app.client, &app.addr, "254700000202").await;
    accept(
        &app.client,
        &app.addr,
        "254700000202",
        shown[0]["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        settled(&app.store, &dup, 5).await.status,
        AttemptStatus::Succeeded
    );
    tokio::time::sleep(Duration::from_millis(1_800)).await; // the second copy arrives
    let events = app
        .store
        .session_events(dup_session.as_str())
        .await
        .unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "attempt.succeeded")
            .count(),
        1
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "session.completed")
            .count(),
        1
    );

    let poor = new_session(&app).await;
    let broke = app.payments.start_mpesa(&poor, "0700000001").await.unwrap();
    let done = settled(&app.store, &broke, 8).await;
    assert_eq!(done.status, AttemptStatus::Failed);
    assert_eq!(done.failure_code.as_deref(), Some("insufficient_funds"));
    let s = app.store.session(&poor).await.unwrap().unwrap();
    assert_eq!(s.status, SessionStatus::Open, "the shopper can try again");
    // And trying again sends a new push.
    let retry = app.payments.start_mpesa(&poor, "0708374149").await.unwrap();
    assert_ne!(retry.id, broke.id);
    assert_eq!(retry.status, AttemptStatus::Pending);
}

#[tokio::test]
async fn forged_and_mismatched_callbacks_change_nothing() {
    let app = spawn_app().await;
    let sid = new_session(&app).await;
    let attempt = app.payments.start_mpesa(&sid, "0712345678").await.unwrap();
    let request_id = attempt.operator_request_id.clone().unwrap();
    let body = |amount: f64, phone: i64| success_callback(&request_id, "FORGED1234", amount, phone);
    let forged = app
        .client
        .post(format!(
            "{}/callbacks/mpesa/{}/not-the-token",
            app.addr, attempt.id
        ))
        .json(&body(1500.0, 254712345678))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 404);
    let unknown = app
        .client
        .post(format!(
            "{}/callbacks/mpesa/pa_000000000000000000000000/x",
            app.addr
        ))
        .json(&body(1500.0, 254712345678))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        app.store
            .attempt(&attempt.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        AttemptStatus::Pending
    );

    // With the right token, a "success" whose amount or phone does not match the attempt
    // is not believed (the query decides); a matching one settles it.
    let other = new_session(&app).await;
    let planted = attempt_with_token(
        &app.store,
        &other,
        "known-token",
        None,
        malipo::time::now_ms(),
    )
    .await;
    let planted_request = "ws_CO_planted";
    assert!(
        app.store
            .set_operator_request_id(&planted.id, planted_request, 1)
            .await
            .unwrap()
    );
    let cb =
        |amount: f64, phone: i64| success_callback(planted_request, "QKJ4ABC123", amount, phone);
    let url = format!("{}/callbacks/mpesa/{}/known-token", app.addr, planted.id);
    for wrong in [cb(1.0, 254712345678), cb(1500.0, 254799999999)] {
        let res = app.client.post(&url).json(&wrong).send().await.unwrap();
        assert_eq!(res.status(), 200, "Daraja is told it was received");
        let a = app.store.attempt(&planted.id).await.unwrap().unwrap();
        assert_eq!(
            a.status,
            AttemptStatus::Pending,
            "a mismatched success is not believed"
        );
        assert!(a.next_poll_at.is_some(), "the query will decide");
    }
    let res = app
        .client
        .post(&url)
        .json(&cb(1500.0, 254712345678))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let a = app.store.attempt(&planted.id).await.unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Succeeded);
    assert_eq!(a.operator_receipt.as_deref(), Some("QKJ4ABC123"));
    let bad_body = app.client.post(&url).body("not json").send().await.unwrap();
    assert_eq!(bad_body.status(), 400);
    let s = app.store.session(&sid).await.unwrap().unwrap();
    assert_eq!(
        s.payment_status,
        PaymentStatus::Unpaid,
        "the other session is untouched"
    );
}

#[tokio::test]
async fn a_pending_attempt_survives_a_restart() {
    let db = test_db(Db::Sqlite).await;
    let site = tempfile::tempdir().unwrap();
    // A fixed free port, so the callback URL given to Daraja stays valid across restarts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = || {
        let mut c = test_config(&db.url, site.path().into());
        c.listen = format!("127.0.0.1:{port}").parse().unwrap();
        c
    };
    let addr = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let first = Application::build(config()).await.unwrap();
    let store = first.state().store.clone();
    let checkout = first.state().checkout.clone();
    let payments = first.state().payments.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(first.run_until(async move {
        let _ = stopped.await;
    }));
    let (_, session) = open_kes_session(&store, &checkout, "Restart Lodge", 900).await;
    // The callback for this number is lost: only the poller can settle it.
    let attempt = payments
        .start_mpesa(&session.id, "0700000404")
        .await
        .unwrap();
    assert_eq!(attempt.status, AttemptStatus::Pending);
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();

    // Down. The shopper answers the prompt (the sandbox remembers it) once we are back.
    let second = Application::build(config()).await.unwrap();
    let store = second.state().store.clone();
    tokio::spawn(second.run_until(std::future::pending()));
    let shown = prompts(&client, &addr, "254700000404").await;
    assert_eq!(shown.len(), 1, "the pending push survived the restart");
    accept(
        &client,
        &addr,
        "254700000404",
        shown[0]["id"].as_str().unwrap(),
    )
    .await;
    let done = settled(&store, &attempt, 15).await;
    assert_eq!(done.status, AttemptStatus::Succeeded);
    let s = store.session(&session.id).await.unwrap().unwrap();
    assert_eq!(s.payment_status, PaymentStatus::Paid);
}

/// A planted attempt (see `helpers::attempt_with_token`) that already knows its
/// CheckoutRequestID and is due for a status query now. It is due only once it has the
/// id, so the background poller never sees it without one.
async fn attempt_due_with_request_id(
    app: &TestApp,
    sid: &SessionId,
    token: &str,
    created_at: i64,
    request_id: &str,
) -> AttemptRecord {
    let now = malipo::time::now_ms();
    let attempt = attempt_with_token(&app.store, sid, token, None, created_at).await;
    app.store
        .set_operator_request_id(&attempt.id, request_id, now)
        .await
        .unwrap();
    app.store
        .reschedule_poll(&attempt.id, now, now)
        .await
        .unwrap();
    attempt
}

#[tokio::test]
async fn a_push_whose_answer_is_lost_stays_pending_and_a_callback_still_settles_it() {
    // Daraja unreachable: the push's outcome is unknown, so nothing is marked failed.
    let db = test_db(Db::Sqlite).await;
    let site = tempfile::tempdir().unwrap();
    let mut config = test_config(&db.url, site.path().into());
    config.rails.mpesa.base_url = "http://127.0.0.1:9".into();
    let app = Application::build(config).await.unwrap();
    let store = app.state().store.clone();
    let checkout = app.state().checkout.clone();
    let payments = app.state().payments.clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let (_, session) = open_kes_session(&store, &checkout, "Offline Lodge", 900).await;
    let attempt = payments
        .start_mpesa(&session.id, "0712345678")
        .await
        .unwrap();
    assert_eq!(
        attempt.status,
        AttemptStatus::Pending,
        "unknown is not failed"
    );
    assert_eq!(attempt.operator_request_id, None);

    // Daraja did send the prompt, and its callback arrives with the attempt's token.
    let app = spawn_app().await;
    let sid = new_session(&app).await;
    let planted = attempt_with_token(
        &app.store,
        &sid,
        "lost-answer",
        Some(malipo::time::now_ms()),
        malipo::time::now_ms(),
    )
    .await;
    let callback = success_callback("ws_CO_lost_answer", "QLOST12345", 1500.0, 254712345678);
    let res = app
        .client
        .post(format!(
            "{}/callbacks/mpesa/{}/lost-answer",
            app.addr, planted.id
        ))
        .json(&callback)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let a = app.store.attempt(&planted.id).await.unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Succeeded, "the money is not lost");
    assert_eq!(a.operator_request_id.as_deref(), Some("ws_CO_lost_answer"));
    assert_eq!(a.operator_receipt.as_deref(), Some("QLOST12345"));
}

#[tokio::test]
async fn an_unconfirmed_push_becomes_unknown_never_failed() {
    let app = spawn_app().await;
    let sid = new_session(&app).await;
    let now = malipo::time::now_ms();
    let recent = attempt_with_token(&app.store, &sid, "lost-answer", Some(now), now).await;
    app.payments.poll_due().await.unwrap();
    assert_eq!(
        app.store.attempt(&recent.id).await.unwrap().unwrap().status,
        AttemptStatus::Pending
    );

    let other = new_session(&app).await;
    let old = attempt_with_token(
        &app.store,
        &other,
        "lost-answer",
        Some(now - malipo::payments::UNCONFIRMED_PUSH_MS - 1_000),
        now - malipo::payments::UNCONFIRMED_PUSH_MS - 1_000,
    )
    .await;
    app.payments.poll_due().await.unwrap();
    let a = app.store.attempt(&old.id).await.unwrap().unwrap();
    assert_eq!(
        a.status,
        AttemptStatus::Unknown,
        "the shopper may have paid"
    );
    assert_eq!(a.failure_code, None);
    assert_eq!(a.next_poll_at, None, "no CheckoutRequestID: nothing to ask");
    assert_eq!(
        app.store.session(&other).await.unwrap().unwrap().status,
        SessionStatus::Open,
        "the shopper can retry"
    );
    // The page says we could not confirm, not "nothing was charged".
    let page = app.page(&other).await;
    assert!(crate::helpers::shown(&page, "unconfirmed"), "{page}");
    assert!(
        !crate::helpers::shown(&page, "failed") && !crate::helpers::shown(&page, "expired"),
        "never \"nothing was charged\": {page}"
    );
    // The merchant is told it needs reconciling.
    let events = app.store.session_events(other.as_str()).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "attempt.needs_reconciliation")
    );

    // Another push to the same phone needs the shopper's word that no SMS came.
    let again = app.payments.start_mpesa(&other, "0712345678").await;
    assert!(
        matches!(again, Err(malipo::payments::PayError::PreviousUnconfirmed)),
        "{again:?}"
    );
    assert!(
        prompts(&app.client, &app.addr, "254712345678")
            .await
            .is_empty(),
        "no second prompt without it"
    );
    let form = app
        .post_pay_form(other.as_str(), "", &[("phone", "0712345678")])
        .await;
    assert_eq!(form.status(), 303);
    let location = form.headers()["location"].to_str().unwrap();
    assert!(location.ends_with("?error=confirm_no_sms"), "{location}");
    let confirmed = app
        .payments
        .start_mpesa_confirming(&other, "0712345678", true)
        .await
        .unwrap();
    assert_eq!(confirmed.status, AttemptStatus::Pending);
    assert_eq!(
        prompts(&app.client, &app.addr, "254712345678").await.len(),
        1
    );

    // The lost push's callback still settles the unknown attempt, late: the session is
    // paid once, and the merchant learns of the second payment as a duplicate if both
    // go through.
    let callback = success_callback("ws_CO_lost_unknown", "QUNKNOWN01", 1500.0, 254712345678);
    let res = app
        .client
        .post(format!(
            "{}/callbacks/mpesa/{}/lost-answer",
            app.addr, old.id
        ))
        .json(&callback)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let a = app.store.attempt(&old.id).await.unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Succeeded);
    assert_eq!(a.late_from, Some(AttemptStatus::Unknown));
    assert_eq!(
        app.store
            .session(&other)
            .await
            .unwrap()
            .unwrap()
            .payment_status,
        PaymentStatus::Paid
    );
}

#[tokio::test]
async fn a_success_after_a_timeout_is_never_dropped() {
    // Daraja answers 1037 "DS timeout", and the payment then completes: the success
    // callback must settle the attempt, pay the session and tell the merchant.
    let app = spawn_app().await;
    let sid = new_session(&app).await;
    let now = malipo::time::now_ms();
    let attempt = attempt_with_token(&app.store, &sid, "late-token", None, now).await;
    app.store
        .set_operator_request_id(&attempt.id, "ws_CO_late", now)
        .await
        .unwrap();
    let url = format!("{}/callbacks/mpesa/{}/late-token", app.addr, attempt.id);
    let timeout = json!({"Body": {"stkCallback": {
        "MerchantRequestID": "1", "CheckoutRequestID": "ws_CO_late", "ResultCode": 1037,
        "ResultDesc": "DS timeout user cannot be reached"}}});
    let res = app.client.post(&url).json(&timeout).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let a = app.store.attempt(&attempt.id).await.unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Expired);
    let success = success_callback("ws_CO_late", "QLATE12345", 1500.0, 254712345678);
    let res = app.client.post(&url).json(&success).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let a = app.store.attempt(&attempt.id).await.unwrap().unwrap();
    assert_eq!(
        a.status,
        AttemptStatus::Succeeded,
        "the money is not dropped"
    );
    assert_eq!(a.operator_receipt.as_deref(), Some("QLATE12345"));
    assert_eq!(a.late_from, Some(AttemptStatus::Expired));
    let s = app.store.session(&sid).await.unwrap().unwrap();
    assert_eq!(
        (s.status, s.payment_status),
        (SessionStatus::Complete, PaymentStatus::Paid)
    );
    let kinds: Vec<String> = app
        .store
        .events(
            &s.merchant_id,
            malipo::domain::Mode::Test,
            &Default::default(),
            100,
        )
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "payment.failed",
            "payment.succeeded",
            "checkout.session.completed"
        ]
    );
    // Both raw bodies are kept, as sent.
    let kept = app.store.callbacks(&attempt.id).await.unwrap();
    assert_eq!(kept.len(), 2);
    assert!(kept[0].contains("1037") && kept[1].contains("QLATE12345"));
    // A replay of the success changes nothing more.
    app.client.post(&url).json(&success).send().await.unwrap();
    let s2 = app.store.session_events(sid.as_str()).await.unwrap();
    assert_eq!(
        s2.iter().filter(|e| e.kind == "attempt.succeeded").count(),
        1
    );
}

#[tokio::test]
async fn an_answer_that_never_becomes_final_is_left_for_reconciliation() {
    // Daraja accepted the push, but its query never gives a final answer (here: the
    // sandbox's CheckoutRequestID is one it never issued, so it answers an error code).
    let app = spawn_app().await;
    let sid = new_session(&app).await;
    let now = malipo::time::now_ms();
    let started = now - malipo::payments::UNKNOWN_AFTER_MS - 1_000;
    let attempt = attempt_due_with_request_id(&app, &sid, "t", started, "ws_CO_never_final").await;
    app.payments.poll_due().await.unwrap();
    let a = app.store.attempt(&attempt.id).await.unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Unknown);
    assert!(a.next_poll_at.is_some(), "still asked about");

    let other = new_session(&app).await;
    let old = now - malipo::payments::RECONCILE_AFTER_MS - 1_000;
    let stale = attempt_due_with_request_id(&app, &other, "t2", old, "ws_CO_never_final_2").await;
    app.payments.poll_due().await.unwrap();
    let a = app.store.attempt(&stale.id).await.unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Unknown);
    assert_eq!(a.next_poll_at, None, "asking is capped");
    let s = app.store.session(&other).await.unwrap().unwrap();
    let kinds: Vec<String> = app
        .store
        .events(
            &s.merchant_id,
            malipo::domain::Mode::Test,
            &Default::default(),
            100,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"payment.unknown".to_string()), "{kinds:?}");
}

#[tokio::test]
async fn a_stored_success_that_failed_to_apply_is_applied_again() {
    // The callback was kept, then applying it failed midway (the database refused, the
    // process died): Daraja never sends it again, so Malipo re-drives what it kept.
    let app = spawn_app().await;
    let sid = new_session(&app).await;
    let now = malipo::time::now_ms();
    let attempt = attempt_with_token(&app.store, &sid, "redrive", None, now).await;
    app.store
        .set_operator_request_id(&attempt.id, "ws_CO_redrive", now)
        .await
        .unwrap();
    assert!(
        app.store
            .finalize_attempt(
                &attempt.id,
                AttemptStatus::Expired,
                &malipo::store::AttemptOutcome {
                    failure_code: Some("no_response".into()),
                    ..Default::default()
                },
                "callback",
                now,
            )
            .await
            .unwrap()
    );
    let body = success_callback("ws_CO_redrive", "QREDRIVE01", 1500.0, 254712345678);
    app.store
        .record_callback("mpesa", &attempt.id, body.to_string().as_bytes(), now)
        .await
        .unwrap();
    assert_eq!(app.payments.redrive_callbacks().await.unwrap(), 1);
    let a = app.store.attempt(&attempt.id).await.unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Succeeded);
    assert_eq!(a.operator_receipt.as_deref(), Some("QREDRIVE01"));
    assert_eq!(
        app.store
            .session(&sid)
            .await
            .unwrap()
            .unwrap()
            .payment_status,
        PaymentStatus::Paid
    );
    // Applied once: a second pass finds nothing to do.
    assert_eq!(app.payments.redrive_callbacks().await.unwrap(), 0);
}

#[tokio::test]
async fn an_unconfirmed_payment_holds_a_new_push_on_another_session_too() {
    // "Go back to the shop and start again" makes a new session; the number's earlier
    // unknown payment at the same shop still needs the shopper's word.
    let app = spawn_app().await;
    let first = new_session(&app).await;
    let now = malipo::time::now_ms();
    let stuck = attempt_with_token(&app.store, &first, "stuck", None, now).await;
    app.store
        .mark_unknown(&stuck.id, "no answer", None, now)
        .await
        .unwrap();
    let merchant = app
        .store
        .session(&first)
        .await
        .unwrap()
        .unwrap()
        .merchant_id;
    let again = app
        .checkout
        .create(crate::helpers::open_session(
            &merchant,
            malipo::domain::Mode::Test,
            malipo::domain::Money::new(150_000, malipo::domain::money::Currency::Kes).unwrap(),
        ))
        .await
        .unwrap();
    assert!(matches!(
        app.payments.start_mpesa(&again.id, "0712345678").await,
        Err(malipo::payments::PayError::PreviousUnconfirmed)
    ));
    // Another shop's session is not held.
    let elsewhere = new_session(&app).await;
    assert!(
        app.payments
            .start_mpesa(&elsewhere, "0712345678")
            .await
            .is_ok()
    );
}

/// `n` test-mode attempts due for a status query a minute ago, each on its own
/// merchant's session, with operator ids `{prefix}{i}`.
async fn due_test_attempts(app: &TestApp, n: usize, prefix: &str) {
    let now = malipo::time::now_ms();
    for i in 0..n {
        let (_, session) = open_kes_session(
            &app.store,
            &app.checkout,
            &format!("Lodge {prefix}{i}"),
            900,
        )
        .await;
        let a = attempt_with_token(
            &app.store,
            &session.id,
            "t",
            Some(now - 60_000),
            now - 60_000,
        )
        .await;
        app.store
            .set_operator_request_id(&a.id, &format!("{prefix}{i}"), now)
            .await
            .unwrap();
    }
}

/// An engine over `test` (and `live`, if given) Daraja connectors.
fn engine(
    app: &TestApp,
    test: malipo::connectors::mpesa::Daraja,
    live: Option<std::sync::Arc<malipo::connectors::mpesa::Daraja>>,
) -> malipo::payments::Payments {
    use malipo::{connectors::Registry, domain::Mode};
    let mut rails = Registry::new().with(Mode::Test, std::sync::Arc::new(test));
    if let Some(live) = live {
        rails = rails.with(Mode::Live, live);
    }
    malipo::payments::Payments::new(
        app.store.clone(),
        rails,
        app.addr.clone(),
        malipo::config::LimitsConfig::default(),
        malipo::config::PaymentsConfig::default(),
    )
}

#[tokio::test]
async fn a_hung_test_operator_never_delays_live_status_queries() {
    use malipo::{
        connectors::mpesa::{Daraja, PushParams},
        domain::{Mode, Money, money::Currency},
    };
    use std::sync::Arc;
    let app = spawn_app().await;
    // Test mode's operator takes connections and never answers (each query waits out
    // the connector's 15 s timeout); live mode's is this server's sandbox Daraja,
    // standing in for Safaricom.
    let (hung_url, _) = crate::helpers::silent_peer(true).await;
    let live = Arc::new(Daraja::new(format!("{}/sandbox/daraja", app.addr), &app.mpesa).unwrap());
    let payments = engine(
        &app,
        Daraja::new(hung_url, &app.mpesa).unwrap(),
        Some(live.clone()),
    );

    // Twenty test-mode attempts due first, each asking the hung operator.
    due_test_attempts(&app, 20, "ws_CO_hung_").await;
    let now = malipo::time::now_ms();
    // Then one live attempt: pushed to the live operator, paid on the handset; its
    // callback goes nowhere, so only a status query can settle it.
    let merchant = malipo::merchants::create(&app.store, "Live Safaris")
        .await
        .unwrap();
    let session = app
        .checkout
        .create(crate::helpers::open_session(
            &merchant.merchant.id,
            Mode::Live,
            Money::new(150_000, Currency::Kes).unwrap(),
        ))
        .await
        .unwrap();
    let pushed = live
        .stk_push(
            &PushParams {
                amount: 1_500,
                phone: "254708374149".into(),
                callback_url: format!("{}/callbacks/mpesa/pa_lost/lost", app.addr),
                account_reference: "LIVE-1".into(),
                description: "Game drive".into(),
            },
            now,
        )
        .await
        .unwrap();
    let shown = prompts(&app.client, &app.addr, "254708374149").await;
    accept(
        &app.client,
        &app.addr,
        "254708374149",
        shown[0]["id"].as_str().unwrap(),
    )
    .await;
    let attempt = attempt_with_token(&app.store, &session.id, "l", Some(now), now).await;
    app.store
        .set_operator_request_id(&attempt.id, &pushed.checkout_request_id, now)
        .await
        .unwrap();

    tokio::spawn(payments.run_poller());
    // Mixed in one sequential loop, the live query would wait behind twenty 15 s
    // timeouts; in its own lane it is asked at once.
    let done = settled(&app.store, &attempt, 5).await;
    assert_eq!(done.status, AttemptStatus::Succeeded);
}

/// A pass takes attempts as its query slots free up, not its whole batch at once: while
/// this instance's eight queries hang on a slow operator, the other twelve due attempts
/// stay free for another instance to ask about. (A store of its own: a running app's
/// poller would take them too.)
#[tokio::test]
async fn a_pass_takes_only_the_attempts_it_has_query_slots_for() {
    use malipo::{checkout::CheckoutService, connectors::mpesa::Daraja, domain::Mode};
    let store = crate::helpers::test_store(Db::Sqlite).await;
    let store = store.store.clone();
    let checkout = CheckoutService::new(store.clone(), "http://127.0.0.1:9".into());
    let now = malipo::time::now_ms();
    for i in 0..20 {
        let (_, session) = open_kes_session(&store, &checkout, &format!("Lodge {i}"), 900).await;
        let a =
            attempt_with_token(&store, &session.id, "t", Some(now - 60_000), now - 60_000).await;
        store
            .set_operator_request_id(&a.id, &format!("ws_CO_slow_{i}"), now)
            .await
            .unwrap();
    }
    let (hung_url, _) = crate::helpers::silent_peer(true).await;
    let hung = Daraja::new(hung_url, &malipo::config::MpesaConfig::default()).unwrap();
    let payments = malipo::payments::Payments::new(
        store.clone(),
        malipo::connectors::Registry::new().with(Mode::Test, std::sync::Arc::new(hung)),
        "http://127.0.0.1:9".into(),
        malipo::config::LimitsConfig::default(),
        malipo::config::PaymentsConfig::default(),
    );
    let pass = tokio::spawn(async move { payments.poll_lane(Mode::Test).await });
    let leased = async || -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM payment_attempts WHERE next_poll_at > $1")
            .bind(malipo::time::now_ms())
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    wait_for("the pass to take its first attempts", 5, async || {
        (leased().await > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(leased().await, 8, "one per query slot");
    let free = store
        .attempts_due_for_poll(malipo::time::now_ms(), Mode::Test, 50)
        .await
        .unwrap();
    assert_eq!(free.len(), 12, "the rest are another instance's to take");
    pass.abort();
}

#[tokio::test]
async fn an_operator_that_keeps_failing_queries_is_paused() {
    use malipo::{connectors::mpesa::Daraja, domain::Mode};
    use std::sync::atomic::Ordering;
    let app = spawn_app().await;
    // An operator that hangs up on every request, and counts them.
    let (rude_url, asked) = crate::helpers::silent_peer(false).await;
    let payments = engine(&app, Daraja::new(rude_url, &app.mpesa).unwrap(), None);
    due_test_attempts(&app, 20, "ws_CO_rude_").await;
    // Four passes a second apart: each would ask about all twenty attempts again. After
    // a handful of failures in a row the lane stops asking for its cool-down (30 s).
    for _ in 0..4 {
        payments.poll_lane(Mode::Test).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    let n = asked.load(Ordering::SeqCst);
    assert!((5..=12).contains(&n), "{n} requests to a failing operator");
    // The attempts' schedule still runs: they are open, polled again later.
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payment_attempts WHERE status = 'pending' AND next_poll_at IS NOT NULL",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(open, 20);
}
