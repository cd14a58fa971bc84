//! Airtel Money end to end: the real Airtel connector against the sandbox Airtel over
//! real HTTP, and the engine paying KES and UGX sessions through it: callbacks to the one
//! portal URL, signed (and refused when the signature is wrong), only ever a cue to ask
//! Airtel; the enquiry settles.

use crate::helpers::{Db, TestApp, accept, prompts, spawn_app_with};
use malipo::{
    config::AirtelConfig,
    connectors::{
        Connector, ConnectorError, InitiateRequest, QueryRequest, RailId, RailOutcome,
        airtel::{Airtel, callback_hash},
    },
    domain::{AttemptId, Money, SessionId, money::Currency, phone::Msisdn},
    store::{AttemptRecord, AttemptStatus, PaymentStatus, Store},
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

async fn app() -> TestApp {
    spawn_app_with(Db::Sqlite, |c| c.sandbox_delay_percent = 5).await
}

async fn settings(app: &TestApp) -> AirtelConfig {
    AirtelConfig {
        client_secret: app
            .store
            .instance_secret("sandbox_airtel_client_secret")
            .await
            .unwrap(),
        ..AirtelConfig::default()
    }
}

async fn connector(app: &TestApp) -> Airtel {
    Airtel::new(format!("{}/sandbox/airtel", app.addr), &settings(app).await).unwrap()
}

async fn session(app: &TestApp, name: &str, amount: Money) -> SessionId {
    crate::helpers::session_for(app, name, amount).await
}

fn kes() -> Money {
    Money::new(150_000, Currency::Kes).unwrap()
}

fn ugx() -> Money {
    Money::new(75_000, Currency::Ugx).unwrap()
}

async fn settled(store: &Store, id: &AttemptId, secs: u64) -> AttemptRecord {
    crate::helpers::settled_attempt(store, id, secs).await
}

async fn push(
    c: &Airtel,
    id: &AttemptId,
    phone: &str,
    amount: Money,
) -> Result<(), ConnectorError> {
    let country = c.capabilities().country(amount.currency()).unwrap();
    let payer = Msisdn::parse(phone, country).unwrap();
    c.initiate(
        InitiateRequest {
            attempt_id: id,
            amount,
            payer: &payer,
            reference: "MARA-0042",
            description: "Mara Camp",
            callback_url: "",
        },
        0,
    )
    .await
    .map(|_| ())
}

#[tokio::test]
async fn the_sandbox_speaks_airtels_wire_and_the_connector_reads_it() {
    let app = app().await;
    let airtel = settings(&app).await;
    // The token: JSON client credentials; expires_in "180", a string.
    let token: Value = app
        .client
        .post(format!("{}/sandbox/airtel/auth/oauth2/token", app.addr))
        .json(&json!({"client_id": airtel.client_id, "client_secret": airtel.client_secret.expose_secret(),
            "grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["expires_in"], "180");
    let bad = app
        .client
        .post(format!("{}/sandbox/airtel/auth/oauth2/token", app.addr))
        .json(&json!({"client_id": airtel.client_id, "client_secret": "wrong", "grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);

    // The msisdn goes without its country code; with it, Airtel refuses.
    let bearer = token["access_token"].as_str().unwrap();
    let raw = app
        .client
        .post(format!("{}/sandbox/airtel/merchant/v1/payments/", app.addr))
        .bearer_auth(bearer)
        .header("X-Country", "KE")
        .header("X-Currency", "KES")
        .json(&json!({"reference": "R", "subscriber": {"country": "KE", "currency": "KES", "msisdn": "254733000999"},
            "transaction": {"amount": 1500, "country": "KE", "currency": "KES", "id": "x-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["status"]["result_code"], "ESB000036");
    // X-Country and the currency must agree.
    let mismatch = app
        .client
        .get(format!(
            "{}/sandbox/airtel/standard/v1/payments/x",
            app.addr
        ))
        .bearer_auth(bearer)
        .header("X-Country", "KE")
        .header("X-Currency", "UGX")
        .send()
        .await
        .unwrap();
    assert_eq!(mismatch.status(), 400);

    let c = connector(&app).await;
    let id = AttemptId::generate();
    push(&c, &id, "0733 000 999", kes()).await.unwrap();
    // The same transaction id again is Airtel's ESB000041: taken as already sent.
    push(&c, &id, "0733 000 999", kes()).await.unwrap();
    let q = c
        .query(
            QueryRequest {
                operator_request_id: id.as_str(),
                started_at: 0,
                amount: kes(),
            },
            0,
        )
        .await
        .unwrap();
    assert_eq!(q.outcome, RailOutcome::Pending, "TIP");
    // Msisdn Not Found: refused at the request, nothing on a phone.
    match push(&c, &AttemptId::generate(), "0733 000 105", kes()).await {
        Err(ConnectorError::Rejected { code, message, .. }) => {
            assert_eq!(code, "DP00800001005");
            assert_eq!(message, "Msisdn Not Found");
        }
        other => panic!("{other:?}"),
    }
    // The handset shows Airtel's prompt; the enquiry then says TS with Airtel's id.
    let shown = prompts(&app.client, &app.addr, "254733000999").await;
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["network"], "Airtel");
    assert!(
        shown[0]["text"]
            .as_str()
            .unwrap()
            .contains("Enter your Airtel Money PIN"),
        "{}",
        shown[0]["text"]
    );
    let receipt = accept(&app.client, &app.addr, "254733000999", id.as_str()).await;
    let q = c
        .query(
            QueryRequest {
                operator_request_id: id.as_str(),
                started_at: 0,
                amount: kes(),
            },
            0,
        )
        .await
        .unwrap();
    assert_eq!(q.outcome, RailOutcome::Succeeded);
    assert_eq!(q.receipt.as_deref(), Some(receipt.as_str()));
}

#[tokio::test]
async fn kes_and_ugx_sessions_are_paid_with_airtel_confirmed_by_enquiry() {
    let app = app().await;
    for (amount, typed, phone) in [
        (kes(), "0733 100 001", "254733100001"),
        (ugx(), "0750 100 002", "256750100002"),
    ] {
        let sid = session(&app, "Airtel Lodge", amount).await;
        let page = app.page(&sid).await;
        // Offered beside the currency's other rail, as a radio button (no JavaScript
        // needed); the shopper's choice travels in the form's `rail` field.
        assert!(
            page.contains(r#"name="rail" value="airtel""#),
            "offered for {amount}: {page}"
        );
        let res = app
            .post_pay_form(sid.as_str(), "", &[("phone", typed), ("rail", "airtel")])
            .await;
        assert_eq!(res.status(), 303);
        let attempt = app.store.pending_attempt(&sid).await.unwrap().unwrap();
        assert_eq!(attempt.rail, RailId::Airtel);
        assert_eq!(attempt.payer.as_deref(), Some(phone));
        let receipt = crate::helpers::approve_first(&app.client, &app.addr, phone).await;
        let done = settled(&app.store, &attempt.id, 10).await;
        assert_eq!(done.status, AttemptStatus::Succeeded, "{phone}");
        assert_eq!(done.operator_receipt.as_deref(), Some(receipt.as_str()));
        let s = app.store.session(&sid).await.unwrap().unwrap();
        assert_eq!(s.payment_status, PaymentStatus::Paid);
        // Airtel's signed callback reached the portal URL and was kept.
        let kept = app.store.callbacks(&attempt.id).await.unwrap();
        assert_eq!(kept.len(), 1, "{phone}");
        assert!(kept[0].contains("\"hash\""));
    }
}

#[tokio::test]
async fn failures_lost_and_badly_signed_callbacks() {
    let app = app().await;
    let cases = [
        ("0733 000 102", AttemptStatus::Failed, Some("wrong_pin")),
        (
            "0733 000 107",
            AttemptStatus::Failed,
            Some("insufficient_funds"),
        ),
        ("0733 000 103", AttemptStatus::Failed, Some("wallet_limit")),
        (
            "0733 000 108",
            AttemptStatus::Cancelled,
            Some("cancelled_by_user"),
        ),
        // Refused at the request: no wallet there, so the page suggests another.
        (
            "0733 000 105",
            AttemptStatus::Failed,
            Some("not_registered"),
        ),
    ];
    for (typed, status, code) in cases {
        let sid = session(&app, "Failing Lodge", kes()).await;
        let attempt = app
            .payments
            .start(&sid, RailId::Airtel, typed, false)
            .await
            .unwrap();
        let done = settled(&app.store, &attempt.id, 15).await;
        assert_eq!(done.status, status, "{typed}");
        assert_eq!(done.failure_code.as_deref(), code, "{typed}");
    }
    // The callback is lost, or comes with a wrong hash (refused): the enquiry settles.
    for phone in ["254733000140", "254733000150"] {
        let sid = session(&app, "Quiet Lodge", kes()).await;
        let attempt = app
            .payments
            .start(&sid, RailId::Airtel, phone, false)
            .await
            .unwrap();
        crate::helpers::approve_first(&app.client, &app.addr, phone).await;
        let done = settled(&app.store, &attempt.id, 20).await;
        assert_eq!(done.status, AttemptStatus::Succeeded, "{phone}");
        assert!(
            app.store.callbacks(&attempt.id).await.unwrap().is_empty(),
            "nothing unauthentic was kept"
        );
    }
}

#[tokio::test]
async fn a_portal_callback_is_never_believed_on_its_own() {
    let app = app().await;
    let sid = session(&app, "Forged Lodge", kes()).await;
    let attempt = app
        .payments
        .start(&sid, RailId::Airtel, "0733 000 777", false)
        .await
        .unwrap();
    let tx = json!({"id": attempt.id.to_string(), "message": "Paid", "status_code": "TS", "airtel_money_id": "MP1.2.3"});
    let url = format!("{}/callbacks/airtel", app.addr);
    // Unsigned, or signed with the wrong key: refused.
    for hash in [
        None,
        Some(callback_hash("not-the-key", tx.to_string().as_bytes())),
    ] {
        let mut body = json!({ "transaction": tx });
        if let Some(h) = hash {
            body["hash"] = json!(h);
        }
        let res = app.client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 401);
    }
    // Correctly signed (the key leaked, say): kept, but Airtel is asked, and says the
    // prompt is still waiting.
    let key = settings(&app).await.callback_key;
    let signed = json!({ "transaction": tx, "hash": callback_hash(key.expose_secret(), tx.to_string().as_bytes()) });
    let res = app.client.post(&url).json(&signed).send().await.unwrap();
    assert_eq!(res.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let a = app.store.attempt(&attempt.id).await.unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Pending, "not believed");
    assert_eq!(app.store.callbacks(&attempt.id).await.unwrap().len(), 1);
    // An id Malipo never gave out is refused, and changes nothing.
    let stranger = json!({"id": "pa_nobody", "message": "Paid", "status_code": "TS"});
    let body = json!({ "transaction": stranger, "hash": callback_hash(key.expose_secret(), stranger.to_string().as_bytes()) });
    assert_eq!(
        app.client
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Rails without a portal URL have none.
    let res = app
        .client
        .post(format!("{}/callbacks/mpesa", app.addr))
        .json(&signed)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_pending_airtel_payment_survives_a_restart() {
    let done =
        crate::helpers::pay_across_a_restart(RailId::Airtel, ugx(), "0750 100 009", "256750100009")
            .await;
    assert_eq!(done.status, AttemptStatus::Succeeded);
    assert!(done.operator_receipt.is_some(), "from the enquiry");
}
