//! Vodacom M-Pesa Tanzania end to end: the real connector against the sandbox over real
//! HTTP (RSA-sealed bearers, sessions that go live late, the `Origin` header), and the
//! engine paying TZS sessions through a payment call that answers only once the shopper
//! has: the page waits at once, the call's answer settles the attempt, a lost or
//! ambiguous answer is settled by `queryTransactionStatus`, and so is a restart mid-call.

use crate::helpers::{Db, TestApp, accept, prompts, spawn_app_with};
use malipo::{
    config::VodacomConfig,
    connectors::{RailId, vodacom::seal},
    domain::{AttemptId, Money, SessionId, money::Currency},
    store::{AttemptRecord, AttemptStatus, PaymentStatus, Store},
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

async fn app() -> TestApp {
    spawn_app_with(Db::Sqlite, |c| {
        c.sandbox_delay_percent = 5;
        c.payments.unknown_after_ms = 20_000;
        c.payments.reconcile_after_ms = 40_000;
    })
    .await
}

async fn tzs_session(app: &TestApp, name: &str) -> SessionId {
    crate::helpers::session_for(app, name, Money::new(5_000_000, Currency::Tzs).unwrap()).await
}

async fn settled(store: &Store, id: &AttemptId, secs: u64) -> AttemptRecord {
    crate::helpers::settled_attempt(store, id, secs).await
}

fn base(app: &TestApp) -> String {
    format!("{}/sandbox/vodacom/openapi/ipg/v2/vodacomTZN", app.addr)
}

fn bearer(secret: &str) -> String {
    let key = VodacomConfig::default().key().unwrap();
    format!("Bearer {}", seal(&key, secret).unwrap())
}

#[tokio::test]
async fn a_tzs_session_is_paid_with_vodacom_mpesa_off_the_request_path() {
    let app = app().await;
    let sid = tzs_session(&app, "Ngorongoro Lodge").await;
    let page = app.page(&sid).await;
    assert!(page.contains("Vodacom M-Pesa"), "{page}");
    // The form answers at once (the payment call is still waiting for the shopper).
    let res = app
        .post_pay_form(
            sid.as_str(),
            "",
            &[("phone", "0754 100 001"), ("rail", "vodacom")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let attempt = app.store.pending_attempt(&sid).await.unwrap().unwrap();
    assert_eq!(attempt.rail, RailId::Vodacom);
    assert_eq!(attempt.payer.as_deref(), Some("255754100001"));
    assert_eq!(
        attempt.operator_request_id.as_deref(),
        Some(attempt.id.as_str()),
        "the ThirdPartyConversationID is ours, known before the call"
    );
    // The session goes live (1.5 s at this scale), then the prompt arrives.
    let id = crate::helpers::first_prompt(&app.client, &app.addr, "255754100001").await;
    assert_eq!(id, attempt.id.as_str());
    let shown = prompts(&app.client, &app.addr, "255754100001").await;
    assert!(
        shown[0]["text"]
            .as_str()
            .unwrap()
            .contains("namba ya siri ya M-Pesa"),
        "{}",
        shown[0]["text"]
    );
    assert_eq!(shown[0]["operator"], "vodacom");
    let receipt = accept(&app.client, &app.addr, "255754100001", &id).await;
    let done = settled(&app.store, &attempt.id, 10).await;
    assert_eq!(done.status, AttemptStatus::Succeeded);
    assert_eq!(done.operator_receipt.as_deref(), Some(receipt.as_str()));
    let s = app.store.session(&sid).await.unwrap().unwrap();
    assert_eq!(s.payment_status, PaymentStatus::Paid);

    // Vodacom sends no callback: anything posted as one is refused.
    let res = app
        .client
        .post(format!("{}/callbacks/vodacom", app.addr))
        .json(&json!({"output_ResponseCode": "INS-0"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
}

#[tokio::test]
async fn failures_lost_answers_and_time_outs() {
    let app = app().await;
    let pay = async |phone: &str| {
        let sid = tzs_session(&app, "Kilimanjaro Treks").await;
        app.payments
            .start(&sid, RailId::Vodacom, phone, false)
            .await
            .unwrap()
    };
    // The call's answer is the outcome, by INS code.
    for (phone, status, code) in [
        (
            "0754 000 113",
            AttemptStatus::Failed,
            Some("insufficient_funds"),
        ),
        (
            "0754 000 102",
            AttemptStatus::Failed,
            Some("operator_error"),
        ),
        (
            "0754 000 105",
            AttemptStatus::Failed,
            Some("not_registered"),
        ),
    ] {
        let attempt = pay(phone).await;
        assert_eq!(
            attempt.status,
            AttemptStatus::Pending,
            "{phone}: the page waits"
        );
        let done = settled(&app.store, &attempt.id, 15).await;
        assert_eq!(
            (done.status, done.failure_code.as_deref()),
            (status, code),
            "{phone}"
        );
    }

    // "Overloaded" (503) is no proof that nothing reached the phone: not a failure; the
    // status query is asked (and knows nothing of it, so it ends unknown in time).
    let busy = pay("0754 000 116").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let a = app.store.attempt(&busy.id).await.unwrap().unwrap();
    assert_eq!(
        (a.status, a.failure_code),
        (AttemptStatus::Pending, None),
        "still open, for the status query to settle"
    );

    // Declined on the handset: INS-5.
    let attempt = pay("0754 100 002").await;
    let id = crate::helpers::first_prompt(&app.client, &app.addr, "255754100002").await;
    let res = app
        .client
        .post(format!(
            "{}/sandbox/phones/255754100002/prompts/{id}/decline",
            app.addr
        ))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let done = settled(&app.store, &attempt.id, 10).await;
    assert_eq!(done.status, AttemptStatus::Cancelled);

    // The call's answer lost (the gateway's 504), and lost with a lagging status
    // query: the query settles both.
    for (typed, phone) in [
        ("0754 000 140", "255754000140"),
        ("0754 000 150", "255754000150"),
    ] {
        let attempt = pay(typed).await;
        let receipt = crate::helpers::approve_first(&app.client, &app.addr, phone).await;
        let done = settled(&app.store, &attempt.id, 20).await;
        assert_eq!(done.status, AttemptStatus::Succeeded, "{typed}");
        assert_eq!(done.operator_receipt.as_deref(), Some(receipt.as_str()));
    }

    // Nobody answers: the call says INS-9 (ambiguous), the query says Expired.
    let attempt = pay("0754 100 003").await;
    let done = settled(&app.store, &attempt.id, 20).await;
    assert_eq!(
        (done.status, done.failure_code.as_deref()),
        (AttemptStatus::Expired, Some("no_response"))
    );
}

#[tokio::test]
async fn the_sandbox_speaks_the_openapi_sessions_and_codes() {
    let app = app().await;
    let api_key = app
        .store
        .instance_secret("sandbox_vodacom_api_key")
        .await
        .unwrap();
    let session_url = format!("{}/getSession/", base(&app));
    let get_session = async |auth: &str, origin: Option<&str>| {
        let mut req = app.client.get(&session_url).header("authorization", auth);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap())
    };
    // No Origin header; a bearer not sealed with the key; the wrong API key.
    let (status, body) = get_session(&bearer(api_key.expose_secret()), None).await;
    assert_eq!(
        (status, body["output_ResponseCode"].as_str()),
        (400, Some("INS-20"))
    );
    let (status, body) = get_session("Bearer bm90IHNlYWxlZA==", Some("*")).await;
    assert_eq!(
        (status, body["output_ResponseCode"].as_str()),
        (401, Some("INS-2"))
    );
    let (status, _) = get_session(&bearer("malipo-sandbox-vodacom-api-key"), Some("*")).await;
    assert_eq!(status, 401, "the published default opens nothing");
    let (status, body) = get_session(&bearer(api_key.expose_secret()), Some("*")).await;
    assert_eq!(
        (status, body["output_ResponseCode"].as_str()),
        (200, Some("INS-0"))
    );
    let session = body["output_SessionID"].as_str().unwrap().to_owned();

    // A new session is refused until it is live (30 s, 1.5 s at this scale).
    let query = async |session: &str, reference: &str| {
        let res = app
            .client
            .get(format!("{}/queryTransactionStatus/", base(&app)))
            .header("authorization", bearer(session))
            .header("origin", "*")
            .query(&[
                ("input_QueryReference", reference),
                ("input_ServiceProviderCode", "000000"),
                ("input_ThirdPartyConversationID", "q1"),
                ("input_Country", "TZN"),
            ])
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap())
    };
    let (status, body) = query(&session, "att_nothing").await;
    assert_eq!(
        (status, body["output_ResponseCode"].as_str()),
        (401, Some("INS-2"))
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_700)).await;
    let (status, body) = query(&session, "att_nothing").await;
    assert_eq!(
        (status, body["output_ResponseCode"].as_str()),
        (400, Some("INS-23")),
        "live now; the payment is unknown to it"
    );

    // A payment is validated field by field, and its id is used once.
    let pay = async |body: Value| {
        let res = app
            .client
            .post(format!("{}/c2bPayment/singleStage/", base(&app)))
            .header("authorization", bearer(&session))
            .header("origin", "*")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap())
    };
    let good = json!({"input_Amount": "5000", "input_Country": "TZN", "input_Currency": "TZS",
        "input_CustomerMSISDN": "255754000105", "input_ServiceProviderCode": "000000",
        "input_TransactionReference": "BK1", "input_ThirdPartyConversationID": "t1",
        "input_PurchasedItemsDesc": "Safari"});
    for (field, value, status, code) in [
        ("input_ServiceProviderCode", "999999", 400, "INS-13"),
        ("input_Amount", "50.5", 400, "INS-15"),
        ("input_TransactionReference", "", 400, "INS-17"),
        ("input_ThirdPartyConversationID", "has/slash", 400, "INS-19"),
        ("input_CustomerMSISDN", "0754000105", 400, "INS-2051"),
        ("input_Currency", "KES", 400, "INS-21"),
    ] {
        let mut body = good.clone();
        body[field] = json!(value);
        let (got, answer) = pay(body).await;
        assert_eq!(
            (got, answer["output_ResponseCode"].as_str()),
            (status, Some(code)),
            "{field}={value}"
        );
    }
    // The scripted "not registered" number: refused at once, INS-2051.
    let (status, answer) = pay(good.clone()).await;
    assert_eq!(
        (status, answer["output_ResponseCode"].as_str()),
        (400, Some("INS-2051"))
    );
    // A payment that waits: its id again is a duplicate (INS-10, 409).
    let mut waiting = good.clone();
    waiting["input_CustomerMSISDN"] = json!("255754100777");
    waiting["input_ThirdPartyConversationID"] = json!("t2");
    let first = tokio::spawn({
        let pay_url = format!("{}/c2bPayment/singleStage/", base(&app));
        let client = app.client.clone();
        let auth = bearer(&session);
        let body = waiting.clone();
        async move {
            client
                .post(pay_url)
                .header("authorization", auth)
                .header("origin", "*")
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    crate::helpers::first_prompt(&app.client, &app.addr, "255754100777").await;
    let (status, answer) = pay(waiting).await;
    assert_eq!(
        (status, answer["output_ResponseCode"].as_str()),
        (409, Some("INS-10"))
    );
    let (status, answer) = query(&session, "t2").await;
    assert_eq!(
        (status, answer["output_ResponseTransactionStatus"].as_str()),
        (200, Some("Pending"))
    );
    // Unanswered, it times out: the call says INS-9 (408), the query Expired.
    assert_eq!(first.await.unwrap(), 408);
    let (_, answer) = query(&session, "t2").await;
    assert_eq!(answer["output_ResponseTransactionStatus"], "Expired");
}

#[tokio::test]
async fn a_pending_vodacom_payment_survives_a_restart_mid_call() {
    let done = crate::helpers::pay_across_a_restart(
        RailId::Vodacom,
        Money::new(5_000_000, Currency::Tzs).unwrap(),
        "0754 100 009",
        "255754100009",
    )
    .await;
    assert_eq!(done.status, AttemptStatus::Succeeded);
}
