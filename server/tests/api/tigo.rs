//! Mixx by Yas (Tigo Pesa) end to end: the real connector against the sandbox over real
//! HTTP, and the engine paying TZS sessions: the push acknowledged synchronously, the
//! callback to the one merchant URL believed only for an unguessable ReferenceID and the
//! right amount, answered in Tigo's words, and — with no status query — a payment whose
//! callback never comes left `unknown` for reconciliation.

use crate::helpers::{Db, TestApp, accept, prompts, spawn_app_with, wait_for};
use malipo::{
    connectors::RailId,
    domain::{AttemptId, Money, SessionId, money::Currency},
    store::{AttemptRecord, AttemptStatus, PaymentStatus, Store},
};
use serde_json::{Value, json};

async fn app() -> TestApp {
    spawn_app_with(Db::Sqlite, |c| {
        c.sandbox_delay_percent = 5;
        // Minutes in a test: unknown after 2 s, left for reconciliation after 4 s.
        c.payments.unknown_after_ms = 2_000;
        c.payments.reconcile_after_ms = 4_000;
    })
    .await
}

/// The merchant's callback URL at Tigo, with its secret key (derived from this
/// install's sandbox password).
async fn callback_url(app: &TestApp) -> String {
    let tigo = malipo::config::TigoConfig {
        password: app
            .store
            .instance_secret("sandbox_tigo_password")
            .await
            .unwrap(),
        ..malipo::config::TigoConfig::default()
    };
    format!("{}/callbacks/tigo/{}", app.addr, tigo.callback_key())
}

async fn tzs_session(app: &TestApp, name: &str) -> SessionId {
    crate::helpers::session_for(app, name, Money::new(5_000_000, Currency::Tzs).unwrap()).await
}

async fn settled(store: &Store, id: &AttemptId, secs: u64) -> AttemptRecord {
    crate::helpers::settled_attempt(store, id, secs).await
}

#[tokio::test]
async fn a_tzs_session_is_paid_with_mixx_by_yas_and_the_callback_is_answered_in_tigos_words() {
    let app = app().await;
    let sid = tzs_session(&app, "Serengeti Camp").await;
    let page = app.page(&sid).await;
    assert!(page.contains("Mixx by Yas"), "{page}");
    let res = app
        .post_pay_form(
            sid.as_str(),
            "",
            &[("phone", "0713 100 001"), ("rail", "tigo")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let attempt = app.store.pending_attempt(&sid).await.unwrap().unwrap();
    assert_eq!(attempt.rail, RailId::Tigo);
    assert_eq!(attempt.payer.as_deref(), Some("255713100001"));
    let reference = attempt.operator_request_id.clone().unwrap();
    assert!(reference.starts_with("MLP"), "{reference}");
    let id = crate::helpers::first_prompt(&app.client, &app.addr, "255713100001").await;
    assert_eq!(id, reference);
    let shown = prompts(&app.client, &app.addr, "255713100001").await;
    assert!(
        shown[0]["text"]
            .as_str()
            .unwrap()
            .contains("Weka PIN yako ya Mixx by Yas"),
        "{}",
        shown[0]["text"]
    );
    let receipt = accept(&app.client, &app.addr, "255713100001", &id).await;
    let done = settled(&app.store, &attempt.id, 10).await;
    assert_eq!(done.status, AttemptStatus::Succeeded);
    assert_eq!(done.operator_receipt.as_deref(), Some(receipt.as_str()));
    let s = app.store.session(&sid).await.unwrap().unwrap();
    assert_eq!(s.payment_status, PaymentStatus::Paid);

    // The callback is answered BILLER-30-0000-S, echoing the ReferenceID; a second one is
    // a no-op.
    let again = json!({"Status": true, "Description": "Success", "MFSTransactionID": receipt,
        "ReferenceID": reference, "Amount": "50000"});
    let res = app
        .client
        .post(callback_url(&app).await)
        .json(&again)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ack: Value = res.json().await.unwrap();
    assert_eq!(ack["ResponseCode"], "BILLER-30-0000-S");
    assert_eq!(ack["ReferenceID"], reference.as_str());
}

#[tokio::test]
async fn forged_failed_and_lost_callbacks() {
    let app = app().await;
    // Tigo's callbacks are unsigned: without the URL's secret key, even the right
    // ReferenceID and amount are refused (the ReferenceID may be seen by the payer).
    let sid0 = tzs_session(&app, "Keyless Camp").await;
    let first = app
        .payments
        .start(&sid0, RailId::Tigo, "0713 100 003", false)
        .await
        .unwrap();
    let forged = json!({"Status": true, "Description": "Success", "MFSTransactionID": "FAKE0",
        "ReferenceID": first.operator_request_id.clone().unwrap(), "Amount": "50000"});
    for url in [
        format!("{}/callbacks/tigo", app.addr),
        format!("{}/callbacks/tigo/not-the-key", app.addr),
    ] {
        let res = app.client.post(&url).json(&forged).send().await.unwrap();
        assert_eq!(res.status(), 400, "{url}");
        let ack: Value = res.json().await.unwrap();
        assert_eq!(ack["ResponseCode"], "BILLER-30-3030-E");
    }
    let a = app.store.attempt(&first.id).await.unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Pending);

    // With the key: a ReferenceID never given out is refused; the wrong amount settles
    // nothing.
    let sid = tzs_session(&app, "Forged Camp").await;
    let attempt = app
        .payments
        .start(&sid, RailId::Tigo, "0713 100 002", false)
        .await
        .unwrap();
    let reference = attempt.operator_request_id.clone().unwrap();
    let url = callback_url(&app).await;
    for (reference, amount, status) in [
        ("MLP000000000000000000000000", "50000", 400),
        (reference.as_str(), "1", 200),
    ] {
        let res = app
            .client
            .post(&url)
            .json(
                &json!({"Status": true, "Description": "Success", "MFSTransactionID": "FAKE1",
                "ReferenceID": reference, "Amount": amount}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{reference} {amount}");
    }
    let a = app.store.attempt(&attempt.id).await.unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Pending, "nothing believed");
    assert_eq!(a.operator_receipt, None);

    // Failures come by callback, in words.
    for (phone, status, code) in [
        (
            "0713 000 113",
            AttemptStatus::Failed,
            Some("insufficient_funds"),
        ),
        ("0713 000 102", AttemptStatus::Failed, Some("wrong_pin")),
        (
            "0713 000 105",
            AttemptStatus::Failed,
            Some("not_registered"),
        ),
    ] {
        let sid = tzs_session(&app, "Failing Camp").await;
        let attempt = app
            .payments
            .start(&sid, RailId::Tigo, phone, false)
            .await
            .unwrap();
        let done = settled(&app.store, &attempt.id, 10).await;
        assert_eq!(
            (done.status, done.failure_code.as_deref()),
            (status, code),
            "{phone}"
        );
    }

    // No callback and no status query: unknown, then left for reconciliation; a late
    // callback would still settle it.
    let sid = tzs_session(&app, "Silent Camp").await;
    let attempt = app
        .payments
        .start(&sid, RailId::Tigo, "0713 000 140", false)
        .await
        .unwrap();
    crate::helpers::approve_first(&app.client, &app.addr, "255713000140").await;
    let unknown = wait_for("the attempt to be unknown", 15, async || {
        app.store
            .attempt(&attempt.id)
            .await
            .unwrap()
            .filter(|a| a.status == AttemptStatus::Unknown)
    })
    .await;
    assert_eq!(unknown.status, AttemptStatus::Unknown);
    let s = app.store.session(&sid).await.unwrap().unwrap();
    assert_eq!(s.payment_status, PaymentStatus::Unpaid);
}

#[tokio::test]
async fn a_pending_tigo_payment_survives_a_restart() {
    let done = crate::helpers::pay_across_a_restart(
        RailId::Tigo,
        Money::new(5_000_000, Currency::Tzs).unwrap(),
        "0713 100 009",
        "255713100009",
    )
    .await;
    assert_eq!(done.status, AttemptStatus::Succeeded);
}
