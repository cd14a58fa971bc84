//! MTN MoMo end to end: the real MTN connector against the sandbox MTN over real HTTP
//! (its wire habits), and the engine paying UGX sessions through it: the hosted page's
//! form, the handset, callbacks (lost, duplicated, forged), the status GET, a restart.

use crate::helpers::{Db, TestApp, accept, prompts, spawn_app_with, wait_for};
use malipo::{
    config::MtnConfig,
    connectors::{
        Connector, ConnectorError, RailId, RailOutcome,
        mtn::{
            MtnMomo, reference_id,
            wire::{Party, RequestToPay},
        },
    },
    domain::{AttemptId, Money, SessionId, money::Currency},
    store::{AttemptRecord, AttemptStatus, PaymentStatus, Store},
};
use secrecy::ExposeSecret;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server whose sandbox runs at 5 % of MTN's documented delays (the 3-minute late
/// callback comes after 9 s).
async fn app() -> TestApp {
    spawn_app_with(Db::Sqlite, |c| c.sandbox_delay_percent = 5).await
}

/// Test mode's MTN settings as the server uses them (its API key is per install).
async fn settings(app: &TestApp) -> MtnConfig {
    MtnConfig {
        api_key: app
            .store
            .instance_secret("sandbox_mtn_api_key")
            .await
            .unwrap(),
        ..MtnConfig::default()
    }
}

async fn connector(app: &TestApp) -> MtnMomo {
    MtnMomo::new(format!("{}/sandbox/mtn", app.addr), &settings(app).await).unwrap()
}

fn request(phone: &str, currency: &str) -> RequestToPay {
    RequestToPay {
        amount: "75000".into(),
        currency: currency.into(),
        external_id: "pa_test".into(),
        payer: Party {
            party_id_type: "MSISDN".into(),
            party_id: phone.into(),
        },
        payer_message: "Murchison Falls Lodge".into(),
        payee_note: "NILE-0042".into(),
    }
}

fn new_reference() -> String {
    reference_id(&AttemptId::generate())
}

/// A raw HTTP/1.1 exchange, byte for byte (to send what a client library would not).
async fn raw(addr: &str, request: &str) -> String {
    let host = addr.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn the_sandbox_speaks_mtns_wire_and_the_connector_reads_it() {
    let app = app().await;
    let mtn = settings(&app).await;
    let basic = base64_basic(&mtn.api_user, mtn.api_key.expose_secret());
    let key = mtn.subscription_key.expose_secret();

    // A bodyless POST without Content-Length: MTN's gateway answers 411, in HTML.
    let answer = raw(
        &app.addr,
        &format!(
            "POST /sandbox/mtn/collection/token/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {basic}\r\n\
             Ocp-Apim-Subscription-Key: {key}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 411"), "{answer}");
    assert!(answer.contains("<h2>Length Required</h2>"));

    // Wrong subscription key, wrong API key: 401, each in its own shape.
    let token_url = format!("{}/sandbox/mtn/collection/token/", app.addr);
    let res = app
        .client
        .post(&token_url)
        .header("Authorization", format!("Basic {basic}"))
        .header("Ocp-Apim-Subscription-Key", "wrong")
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["statusCode"], 401);
    let res = app
        .client
        .post(&token_url)
        .basic_auth(&mtn.api_user, Some("wrong"))
        .header("Ocp-Apim-Subscription-Key", key)
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "login_failed");
    // The token: expires_in is a number.
    let token: Value = app
        .client
        .post(&token_url)
        .basic_auth(&mtn.api_user, Some(mtn.api_key.expose_secret()))
        .header("Ocp-Apim-Subscription-Key", key)
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["expires_in"], 3600);
    let bearer = token["access_token"].as_str().unwrap().to_owned();

    // 202 with an empty body; the same X-Reference-Id again is 409.
    let pay_url = format!("{}/sandbox/mtn/collection/v1_0/requesttopay", app.addr);
    let reference = new_reference();
    let post = |reference: String, env: &'static str, currency: &'static str| {
        let client = app.client.clone();
        let (url, bearer, key) = (pay_url.clone(), bearer.clone(), key.to_owned());
        async move {
            client
                .post(url)
                .bearer_auth(bearer)
                .header("Ocp-Apim-Subscription-Key", key)
                .header("X-Reference-Id", reference)
                .header("X-Target-Environment", env)
                .json(&request("256772000111", currency))
                .send()
                .await
                .unwrap()
        }
    };
    let res = post(reference.clone(), "mtnuganda", "UGX").await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["content-length"], "0");
    assert!(res.bytes().await.unwrap().is_empty());
    let res = post(reference.clone(), "mtnuganda", "UGX").await;
    assert_eq!(res.status(), 409);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "RESOURCE_ALREADY_EXIST"
    );
    // Not a UUID v4; MTN's sandbox environment takes EUR only; an unknown environment.
    assert_eq!(
        post("not-a-uuid".into(), "mtnuganda", "UGX").await.status(),
        400
    );
    let res = post(new_reference(), "sandbox", "UGX").await;
    assert_eq!(res.status(), 500);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "INVALID_CURRENCY"
    );
    assert_eq!(post(new_reference(), "sandbox", "EUR").await.status(), 202);
    let res = post(new_reference(), "mtnkenya", "UGX").await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "NOT_ALLOWED_TARGET_ENVIRONMENT"
    );

    // The status GET: always 200; an unknown reference is 404.
    let status = |reference: &str| {
        let url = format!("{pay_url}/{reference}");
        let client = app.client.clone();
        let (bearer, key) = (bearer.clone(), key.to_owned());
        async move {
            client
                .get(url)
                .bearer_auth(bearer)
                .header("Ocp-Apim-Subscription-Key", key)
                .header("X-Target-Environment", "mtnuganda")
                .send()
                .await
                .unwrap()
        }
    };
    let pending: Value = status(&reference).await.json().await.unwrap();
    assert_eq!(pending["status"], "PENDING");
    assert_eq!(pending["amount"], "75000");
    assert!(pending.get("financialTransactionId").is_none());
    assert_eq!(status(&new_reference()).await.status(), 404);

    // The connector: a retried push (409) is taken as sent; a wrong currency is refused
    // with MTN's code; the handset shows MTN's prompt, which pays.
    let c = connector(&app).await;
    c.request_to_pay(&reference, &request("256772000111", "UGX"), "")
        .await
        .unwrap();
    match c
        .request_to_pay(&new_reference(), &request("256772000111", "KES"), "")
        .await
    {
        Err(ConnectorError::Rejected { code, .. }) => assert_eq!(code, "INVALID_CURRENCY"),
        other => panic!("{other:?}"),
    }
    let shown = prompts(&app.client, &app.addr, "256772000111").await;
    assert_eq!(shown.len(), 2);
    assert_eq!(shown[0]["network"], "MTN");
    assert_eq!(shown[0]["pin_digits"], 5);
    assert!(
        shown[0]["text"]
            .as_str()
            .unwrap()
            .contains("Murchison Falls Lodge wants UGX 75,000"),
        "{}",
        shown[0]["text"]
    );
    let short = app
        .client
        .post(format!(
            "{}/sandbox/phones/256772000111/prompts/{reference}/accept",
            app.addr
        ))
        .json(&serde_json::json!({"pin": "1234"}))
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), 400, "MoMo's PIN has five digits");
    let receipt = accept(&app.client, &app.addr, "256772000111", &reference).await;
    assert!(receipt.bytes().all(|b| b.is_ascii_digit()), "{receipt}");
    assert_eq!(
        c.status(&reference, Currency::Ugx).await.unwrap(),
        RailOutcome::Succeeded
    );
    let paid: Value = status(&reference).await.json().await.unwrap();
    assert_eq!(paid["financialTransactionId"], receipt.as_str());
}

fn base64_basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

#[tokio::test]
async fn scripted_numbers_answer_as_mtns_sandbox_does() {
    let app = app().await;
    let c = connector(&app).await;
    let send = async |phone: &str| {
        let reference = new_reference();
        c.request_to_pay(&reference, &request(phone, "UGX"), "")
            .await
            .unwrap();
        reference
    };
    let rejected = send("256770123451").await;
    let not_found = send("256770123455").await;
    let stuck = send("256770123454").await;
    let unknown_code = send("256770123464").await;
    // 2 s and 1 s at 5 %.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        c.status(&rejected, Currency::Ugx).await.unwrap(),
        RailOutcome::Cancelled
    );
    assert_eq!(
        c.status(&not_found, Currency::Ugx).await.unwrap(),
        RailOutcome::Failed {
            code: malipo::connectors::FailureCode::NotRegistered
        }
    );
    assert!(matches!(
        c.status(&unknown_code, Currency::Ugx).await.unwrap(),
        RailOutcome::Unknown { raw } if raw == "TRANSFERTYPE_UNKNOWN"
    ));
    assert_eq!(
        c.status(&stuck, Currency::Ugx).await.unwrap(),
        RailOutcome::Pending
    );
    // On the wire: the observed bare-string reason, the schema's object, CREATED.
    let raw_status = |reference: String| {
        let app = &app;
        async move {
            let store = &app.store;
            store
                .sandbox_request(RailId::MtnMomo, &reference)
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert_eq!(
        raw_status(rejected).await.result_code.as_deref(),
        Some("APPROVAL_REJECTED")
    );
    let mtn = settings(&app).await;
    let bearer: Value = app
        .client
        .post(format!("{}/sandbox/mtn/collection/token/", app.addr))
        .basic_auth(&mtn.api_user, Some(mtn.api_key.expose_secret()))
        .header(
            "Ocp-Apim-Subscription-Key",
            mtn.subscription_key.expose_secret(),
        )
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let get = async |reference: &str| -> Value {
        app.client
            .get(format!(
                "{}/sandbox/mtn/collection/v1_0/requesttopay/{reference}",
                app.addr
            ))
            .bearer_auth(bearer["access_token"].as_str().unwrap())
            .header(
                "Ocp-Apim-Subscription-Key",
                mtn.subscription_key.expose_secret(),
            )
            .header("X-Target-Environment", "mtnuganda")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    assert_eq!(get(&not_found).await["reason"]["code"], "PAYER_NOT_FOUND");
    assert_eq!(get(&stuck).await["status"], "CREATED");
}

/// A UGX 75,000 session of a new merchant.
async fn ugx_session(app: &TestApp, name: &str) -> SessionId {
    crate::helpers::session_for(app, name, Money::new(75_000, Currency::Ugx).unwrap()).await
}

async fn settled(store: &Store, id: &AttemptId, secs: u64) -> AttemptRecord {
    crate::helpers::settled_attempt(store, id, secs).await
}

#[tokio::test]
async fn a_ugx_session_is_paid_with_mtn_momo_from_the_hosted_page() {
    let app = app().await;
    let sid = ugx_session(&app, "Murchison Falls Lodge").await;
    let page = app.page(&sid).await;
    assert!(page.contains("MTN MoMo phone number"), "{page}");
    assert!(page.contains(&format!(r#"action="/pay/{sid}/mtn_momo""#)));
    assert!(page.contains("0772 123 456"), "a Ugandan example");

    let token = app.checkout.form_token(&sid);
    let res = app
        .client
        .post(format!("{}/pay/{sid}/mtn_momo", app.addr))
        .form(&[("form_token", token.as_str()), ("phone", "0772 000 222")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let attempt = app.store.pending_attempt(&sid).await.unwrap().unwrap();
    assert_eq!(attempt.rail, RailId::MtnMomo);
    assert_eq!(attempt.payer.as_deref(), Some("256772000222"));
    // The X-Reference-Id is known before the push is sent.
    assert_eq!(
        attempt.operator_request_id.as_deref(),
        Some(reference_id(&attempt.id).as_str())
    );
    let shown = prompts(&app.client, &app.addr, "256772000222").await;
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["amount_label"], "UGX 75,000");
    let receipt = accept(
        &app.client,
        &app.addr,
        "256772000222",
        shown[0]["id"].as_str().unwrap(),
    )
    .await;
    let done = settled(&app.store, &attempt.id, 10).await;
    assert_eq!(done.status, AttemptStatus::Succeeded);
    assert_eq!(done.operator_receipt.as_deref(), Some(receipt.as_str()));
    let session = app.store.session(&sid).await.unwrap().unwrap();
    assert_eq!(session.payment_status, PaymentStatus::Paid);
    // Settled by MTN's callback (no reference id in it: the URL's token tied it).
    let callbacks = app.store.callbacks(&attempt.id).await.unwrap();
    assert_eq!(callbacks.len(), 1);
    let body: Value = serde_json::from_str(&callbacks[0]).unwrap();
    assert_eq!(body["status"], "SUCCESSFUL");
    assert!(body.get("referenceId").is_none());
}

#[tokio::test]
async fn each_failure_reads_as_its_code_and_leaves_the_session_open() {
    let app = app().await;
    let cases = [
        (
            "0770 123 451",
            AttemptStatus::Cancelled,
            "cancelled_by_user",
        ),
        ("0770 123 452", AttemptStatus::Expired, "no_response"),
        ("0770 123 455", AttemptStatus::Failed, "not_registered"),
        ("0770 123 462", AttemptStatus::Failed, "operator_busy"),
        ("0770 123 465", AttemptStatus::Failed, "insufficient_funds"),
        ("0770 123 466", AttemptStatus::Failed, "wallet_limit"),
        ("0770 123 450", AttemptStatus::Failed, "operator_error"),
    ];
    for (phone, status, code) in cases {
        let sid = ugx_session(&app, "Kampala Coaches").await;
        let attempt = app
            .payments
            .start(&sid, RailId::MtnMomo, phone, false)
            .await
            .unwrap();
        let done = settled(&app.store, &attempt.id, 10).await;
        assert_eq!(done.status, status, "{phone}");
        assert_eq!(done.failure_code.as_deref(), Some(code), "{phone}");
        let session = app.store.session(&sid).await.unwrap().unwrap();
        assert_eq!(session.payment_status, PaymentStatus::Unpaid, "{phone}");
    }
}

#[tokio::test]
async fn lost_and_duplicated_callbacks_settle_once_and_an_unknown_code_stays_open() {
    let app = app().await;
    // Lost: the status GET settles it.
    let sid = ugx_session(&app, "Lost Lodge").await;
    let lost = app
        .payments
        .start(&sid, RailId::MtnMomo, "0770123470", false)
        .await
        .unwrap();
    crate::helpers::approve_first(&app.client, &app.addr, "256770123470").await;
    let done = settled(&app.store, &lost.id, 20).await;
    assert_eq!(done.status, AttemptStatus::Succeeded);
    assert!(app.store.callbacks(&lost.id).await.unwrap().is_empty());

    // Twice (3 min apart at 100 %, 9 s here): one success, one event.
    let sid = ugx_session(&app, "Twice Lodge").await;
    let twice = app
        .payments
        .start(&sid, RailId::MtnMomo, "0770123471", false)
        .await
        .unwrap();
    crate::helpers::approve_first(&app.client, &app.addr, "256770123471").await;
    wait_for("both callbacks", 20, async || {
        let n = app.store.callbacks(&twice.id).await.unwrap().len();
        (n == 2).then_some(())
    })
    .await;
    let done = app.store.attempt(&twice.id).await.unwrap().unwrap();
    assert_eq!(done.status, AttemptStatus::Succeeded);
    let events = app.store.session_events(sid.as_str()).await.unwrap();
    let succeeded = events
        .iter()
        .filter(|e| e.kind == "attempt.succeeded")
        .count();
    assert_eq!(succeeded, 1, "{events:?}");

    // A reason Malipo does not know: kept open (pending), never failed.
    let sid = ugx_session(&app, "Odd Lodge").await;
    let odd = app
        .payments
        .start(&sid, RailId::MtnMomo, "0770123464", false)
        .await
        .unwrap();
    wait_for("the odd callback", 10, async || {
        (!app.store.callbacks(&odd.id).await.unwrap().is_empty()).then_some(())
    })
    .await;
    let a = app.store.attempt(&odd.id).await.unwrap().unwrap();
    assert!(!a.status.is_final(), "{:?}", a.status);
}

#[tokio::test]
async fn forged_callbacks_change_nothing() {
    let app = app().await;
    let sid = ugx_session(&app, "Forged Lodge").await;
    let attempt = app
        .payments
        .start(&sid, RailId::MtnMomo, "0772000333", false)
        .await
        .unwrap();
    let success = serde_json::json!({"financialTransactionId":"123456789","externalId": attempt.id.to_string(),
        "amount":"75000","currency":"UGX","payer":{"partyIdType":"MSISDN","partyId":"256772000333"},
        "status":"SUCCESSFUL"});
    for path in [
        format!("/callbacks/mtn_momo/{}/not-the-token", attempt.id),
        format!("/callbacks/mpesa/{}/not-the-token", attempt.id),
    ] {
        let res = app
            .client
            .post(format!("{}{path}", app.addr))
            .json(&success)
            .send()
            .await
            .unwrap();
        // As for any unknown URL: nothing tells a prober the attempt exists.
        assert_eq!(res.status(), 404, "{path}");
    }
    // Nothing changed: the prompt is still waiting on the phone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = app.store.attempt(&attempt.id).await.unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Pending);
}

#[tokio::test]
async fn a_pending_mtn_payment_survives_a_restart() {
    // Its callback is lost: only the status GET can settle it.
    let done = crate::helpers::pay_across_a_restart(
        RailId::MtnMomo,
        Money::new(75_000, Currency::Ugx).unwrap(),
        "0770123470",
        "256770123470",
    )
    .await;
    assert_eq!(done.status, AttemptStatus::Succeeded);
}

#[tokio::test]
async fn the_connector_never_sends_a_currency_its_environment_does_not_take() {
    let app = app().await;
    let c = connector(&app).await;
    assert!(
        c.capabilities()
            .accepts(Money::new(75_000, Currency::Ugx).unwrap())
    );
    assert!(
        !c.capabilities()
            .accepts(Money::new(150_000, Currency::Kes).unwrap())
    );
    // A KES session is not payable with MTN, so the engine refuses before any push.
    let (_, kes) = crate::helpers::seed_session(&app, "Nairobi Lodge", 900).await;
    let sid = SessionId::parse(&kes).unwrap();
    assert!(
        app.payments
            .start(&sid, RailId::MtnMomo, "0772000444", false)
            .await
            .is_err()
    );
    assert!(
        prompts(&app.client, &app.addr, "256772000444")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn one_api_user_serves_uganda_and_rwanda_each_in_its_own_environment() {
    // The default test settings name mtnuganda and mtnrwanda: a RWF session is paid in
    // mtnrwanda (the sandbox charges in the environment's currency), a UGX one in
    // mtnuganda.
    let app = app().await;
    let rwf = crate::helpers::session_for(
        &app,
        "Kigali Lodge",
        Money::new(50_000, Currency::Rwf).unwrap(),
    )
    .await;
    let attempt = app
        .payments
        .start(&rwf, RailId::MtnMomo, "0788 100 051", false)
        .await
        .unwrap();
    assert_eq!(attempt.payer.as_deref(), Some("250788100051"));
    let shown = crate::helpers::first_prompt(&app.client, &app.addr, "250788100051").await;
    let prompt = prompts(&app.client, &app.addr, "250788100051").await;
    assert_eq!(prompt[0]["currency"], "RWF");
    accept(&app.client, &app.addr, "250788100051", &shown).await;
    let done = settled(&app.store, &attempt.id, 10).await;
    assert_eq!(done.status, AttemptStatus::Succeeded);
    let c = connector(&app).await;
    assert_eq!(
        c.status(
            attempt.operator_request_id.as_deref().unwrap(),
            Currency::Rwf
        )
        .await
        .unwrap(),
        RailOutcome::Succeeded
    );
}
