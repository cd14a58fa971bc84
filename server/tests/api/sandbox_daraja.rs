//! The real Daraja connector against the sandbox Daraja, over real HTTP, with a real
//! callback receiver.

use crate::helpers::{TestApp, prompts, seed_session, spawn_app, wait_for};
use malipo::{
    config::MpesaConfig,
    connectors::{
        FailureCode, RailOutcome,
        mpesa::{ConnectorError, Daraja, PushParams, wire::CallbackEnvelope},
    },
    time::now_ms,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Duration;

/// Where the sandbox's callbacks for a test go: this server's own callback route for an
/// attempt the test planted (the sandbox posts nowhere else), which keeps every body.
struct Received {
    store: malipo::store::Store,
    attempt: malipo::domain::AttemptId,
}

impl Received {
    /// Every callback body received so far, oldest first.
    async fn all(&self) -> Vec<Value> {
        self.store
            .callbacks(&self.attempt)
            .await
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect()
    }
}

async fn callback_receiver(app: &TestApp) -> (String, Received) {
    let (_, session) = seed_session(app, "Callback Lodge", 900).await;
    let attempt = app
        .store
        .insert_attempt(
            &malipo::store::NewAttempt {
                credit_minor: None,
                session_id: malipo::domain::SessionId::parse(&session).unwrap(),
                quote: None,
                rail: malipo::connectors::RailId::Mpesa,
                amount: malipo::domain::Money::new(150_000, malipo::domain::money::Currency::Kes)
                    .unwrap(),
                payer: None,
                callback_token_hash: Some(malipo::domain::keys::hash_token("cb-token")),
                next_poll_at: None,
            },
            now_ms(),
        )
        .await
        .unwrap()
        .unwrap();
    let url = format!("{}/callbacks/mpesa/{}/cb-token", app.addr, attempt.id);
    (
        url,
        Received {
            store: app.store.clone(),
            attempt: attempt.id,
        },
    )
}

fn daraja(app: &TestApp, config: &MpesaConfig) -> Daraja {
    Daraja::new(format!("{}/sandbox/daraja", app.addr), config).unwrap()
}

fn push(phone: &str, callback_url: &str) -> PushParams {
    PushParams {
        amount: 1500,
        phone: phone.into(),
        callback_url: callback_url.into(),
        account_reference: "MARA-0042".into(),
        description: "Mara Serena Safari Lodge".into(),
    }
}

#[tokio::test]
async fn push_prompt_accept_query_and_callback() {
    let app = spawn_app().await;
    let (cb_url, received) = callback_receiver(&app).await;
    let d = daraja(&app, &app.mpesa);
    let accepted = d
        .stk_push(&push("254708374149", &cb_url), now_ms())
        .await
        .unwrap();
    assert_eq!(accepted.response_code, "0");
    assert!(accepted.checkout_request_id.starts_with("ws_CO_"));
    assert_eq!(
        d.stk_query(&accepted.checkout_request_id, now_ms())
            .await
            .unwrap(),
        RailOutcome::Pending
    );

    let shown = prompts(&app.client, &app.addr, "254708374149").await;
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["id"], accepted.checkout_request_id.as_str());
    assert_eq!(
        shown[0]["merchant"], "Mara Serena S",
        "TransactionDesc cut to 13 characters"
    );
    assert_eq!(shown[0]["amount_label"], "KES 1,500");
    assert_eq!(shown[0]["account_reference"], "MARA-0042");

    let url = format!(
        "{}/sandbox/phones/254708374149/prompts/{}/accept",
        app.addr, accepted.checkout_request_id
    );
    let bad = app
        .client
        .post(&url)
        .json(&json!({"pin": "12"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let ok: Value = app
        .client
        .post(&url)
        .json(&json!({"pin": "4321"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let receipt = ok["receipt"].as_str().unwrap().to_owned();
    assert_eq!(receipt.len(), 10);
    let again = app
        .client
        .post(&url)
        .json(&json!({"pin": "4321"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400, "a prompt is answered once");
    assert!(
        prompts(&app.client, &app.addr, "254708374149")
            .await
            .is_empty()
    );

    assert_eq!(
        d.stk_query(&accepted.checkout_request_id, now_ms())
            .await
            .unwrap(),
        RailOutcome::Succeeded
    );
    let body = wait_for("the callback", 10, async || {
        received.all().await.first().cloned()
    })
    .await;
    let cb = serde_json::from_value::<CallbackEnvelope>(body)
        .unwrap()
        .body
        .stk_callback;
    assert_eq!(cb.checkout_request_id, accepted.checkout_request_id);
    assert_eq!(cb.result_code, "0");
    let paid = cb.paid_details();
    assert_eq!(paid.amount, Some(1500));
    assert_eq!(paid.receipt.as_deref(), Some(receipt.as_str()));
    assert_eq!(paid.phone.as_deref(), Some("254708374149"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(received.all().await.len(), 1, "delivered once");
}

#[tokio::test]
async fn declining_on_the_handset_cancels() {
    let app = spawn_app().await;
    let (cb_url, received) = callback_receiver(&app).await;
    let d = daraja(&app, &app.mpesa);
    let accepted = d
        .stk_push(&push("254712345678", &cb_url), now_ms())
        .await
        .unwrap();
    let url = format!(
        "{}/sandbox/phones/254712345678/prompts/{}/decline",
        app.addr, accepted.checkout_request_id
    );
    assert_eq!(app.client.post(&url).send().await.unwrap().status(), 200);
    assert_eq!(
        d.stk_query(&accepted.checkout_request_id, now_ms())
            .await
            .unwrap(),
        RailOutcome::Cancelled
    );
    let body = wait_for("the callback", 10, async || {
        received.all().await.first().cloned()
    })
    .await;
    assert_eq!(body["Body"]["stkCallback"]["ResultCode"], 1032);
    assert!(
        body["Body"]["stkCallback"]
            .get("CallbackMetadata")
            .is_none()
    );
}

#[tokio::test]
async fn scripted_numbers_fail_on_their_own() {
    let app = spawn_app().await;
    let (cb_url, received) = callback_receiver(&app).await;
    let d = daraja(&app, &app.mpesa);
    let cases = [
        (
            "254700000001",
            RailOutcome::Failed {
                code: FailureCode::InsufficientFunds,
            },
            1,
        ),
        (
            "254700002001",
            RailOutcome::Failed {
                code: FailureCode::WrongPin,
            },
            2001,
        ),
        (
            "254700001025",
            RailOutcome::Failed {
                code: FailureCode::PushNotDelivered,
            },
            1025,
        ),
        (
            "254700001001",
            RailOutcome::Failed {
                code: FailureCode::SubscriberBusy,
            },
            1001,
        ),
        ("254700001032", RailOutcome::Cancelled, 1032),
    ];
    let mut ids = Vec::new();
    for (phone, _, _) in &cases {
        ids.push(
            d.stk_push(&push(phone, &cb_url), now_ms())
                .await
                .unwrap()
                .checkout_request_id,
        );
    }
    for ((phone, want, code), id) in cases.iter().zip(&ids) {
        let got = wait_for(phone, 10, async || {
            let o = d.stk_query(id, now_ms()).await.unwrap();
            (o != RailOutcome::Pending).then_some(o)
        })
        .await;
        assert_eq!(&got, want, "{phone}");
        let cb = wait_for("its callback", 10, async || {
            received
                .all()
                .await
                .into_iter()
                .find(|b| b["Body"]["stkCallback"]["CheckoutRequestID"] == id.as_str())
        })
        .await;
        assert_eq!(cb["Body"]["stkCallback"]["ResultCode"], *code, "{phone}");
    }
}

#[tokio::test]
async fn lost_and_duplicated_callbacks_and_a_slow_query() {
    let app = spawn_app().await;
    let (cb_url, received) = callback_receiver(&app).await;
    let d = daraja(&app, &app.mpesa);
    let mut ids = Vec::new();
    for phone in ["254700000404", "254700000202", "254700000102"] {
        let id = d
            .stk_push(&push(phone, &cb_url), now_ms())
            .await
            .unwrap()
            .checkout_request_id;
        let url = format!("{}/sandbox/phones/{phone}/prompts/{id}/accept", app.addr);
        assert_eq!(
            app.client
                .post(&url)
                .json(&json!({"pin": "1234"}))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        ids.push(id);
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let all = received.all().await;
    let count = |id: &str| {
        all.iter()
            .filter(|b| b["Body"]["stkCallback"]["CheckoutRequestID"] == id)
            .count()
    };
    assert_eq!(count(&ids[0]), 0, "lost callback");
    assert_eq!(count(&ids[1]), 2, "duplicated callback");
    assert_eq!(count(&ids[2]), 1);
    // The lost one is still known to the query; the slow one still says "processing".
    assert_eq!(
        d.stk_query(&ids[0], now_ms()).await.unwrap(),
        RailOutcome::Succeeded
    );
    assert_eq!(
        d.stk_query(&ids[2], now_ms()).await.unwrap(),
        RailOutcome::Pending
    );
}

#[tokio::test]
async fn bad_requests_get_darajas_error_codes() {
    let app = spawn_app().await;
    let d = daraja(&app, &app.mpesa);
    match d
        .stk_push(&push("254201234567", "https://m.example/cb"), now_ms())
        .await
    {
        Err(ConnectorError::Rejected { code, message, .. }) => {
            assert_eq!(code, "400.002.02");
            assert!(message.contains("PhoneNumber"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let wrong_passkey = MpesaConfig {
        passkey: SecretString::from("not-the-passkey"),
        ..app.mpesa.clone()
    };
    match daraja(&app, &wrong_passkey)
        .stk_push(&push("254708374149", "https://m.example/cb"), now_ms())
        .await
    {
        Err(ConnectorError::Rejected { message, .. }) => {
            assert!(message.contains("Password"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let wrong_secret = MpesaConfig {
        consumer_secret: SecretString::from("nope"),
        ..app.mpesa.clone()
    };
    // The published default secret opens nothing: each install makes its own.
    for config in [wrong_secret, MpesaConfig::default()] {
        assert!(matches!(
            daraja(&app, &config)
                .stk_push(&push("254708374149", "https://m.example/cb"), now_ms())
                .await,
            Err(ConnectorError::BadResponse { status: 400, .. })
        ));
    }
    // Without a token Daraja answers 404.001.03.
    let res = app
        .client
        .post(format!(
            "{}/sandbox/daraja/mpesa/stkpush/v1/processrequest",
            app.addr
        ))
        .bearer_auth("forged")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.json::<Value>().await.unwrap()["errorCode"],
        "404.001.03"
    );
}

#[tokio::test]
async fn the_handset_page_answers_prompts_with_forms() {
    let app = spawn_app().await;
    let (cb_url, _received) = callback_receiver(&app).await;
    let d = daraja(&app, &app.mpesa);
    let page = |q: &str| {
        let url = format!("{}/sandbox/phone/254722000111{q}", app.addr);
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let idle = page("").await;
    assert!(
        idle.contains("No prompts") && idle.contains(r#"http-equiv="refresh""#),
        "{idle}"
    );
    assert!(idle.contains("254700000001"), "lists the scripted numbers");

    let mut p = push("254722000111", &cb_url);
    p.description = "<b>Tsavo</b>".into();
    let first = d.stk_push(&p, now_ms()).await.unwrap().checkout_request_id;
    let second = d
        .stk_push(&push("254722000111", &cb_url), now_ms())
        .await
        .unwrap()
        .checkout_request_id;
    let shown = page("").await;
    assert!(
        shown.contains("Safaricom · M-PESA") && shown.contains("Do you want to pay KES 1,500"),
        "{shown}"
    );
    assert!(
        shown.contains("&lt;b&gt;Tsavo&lt;/b&gt;") && !shown.contains("<b>Tsavo</b>"),
        "escaped"
    );
    assert!(
        !shown.contains(r#"http-equiv="refresh""#),
        "no refresh while a prompt is up"
    );

    let accept = |id: &str, pin: &str| {
        let url = format!(
            "{}/sandbox/phone/254722000111/prompts/{id}/accept",
            app.addr
        );
        let client = app.client.clone();
        let pin = pin.to_owned();
        async move { client.post(url).form(&[("pin", pin)]).send().await.unwrap() }
    };
    let bad = accept(&first, "12").await;
    assert_eq!(bad.status(), 303);
    let to = bad.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        to,
        format!("/sandbox/phone/254722000111?error=invalid_pin&prompt={first}")
    );
    assert!(
        page(&to["/sandbox/phone/254722000111".len()..])
            .await
            .contains("The M-PESA PIN is 4 digits."),
        "the operator's own PIN rule"
    );
    let ok = accept(&first, "2468").await;
    let to = ok.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/sandbox/phone/254722000111?paid="), "{to}");
    assert!(
        page(&to["/sandbox/phone/254722000111".len()..])
            .await
            .contains("Confirmed. You have paid")
    );
    assert_eq!(
        d.stk_query(&first, now_ms()).await.unwrap(),
        RailOutcome::Succeeded
    );

    let declined = app
        .client
        .post(format!(
            "{}/sandbox/phone/254722000111/prompts/{second}/decline",
            app.addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        declined.headers()["location"],
        "/sandbox/phone/254722000111?cancelled=1"
    );
    assert_eq!(
        d.stk_query(&second, now_ms()).await.unwrap(),
        RailOutcome::Cancelled
    );
}

#[tokio::test]
async fn callbacks_only_ever_go_to_this_servers_own_callback_routes() {
    let app = spawn_app().await;
    let d = daraja(&app, &app.mpesa);
    let (own, received) = callback_receiver(&app).await;
    // Anything else is refused as Daraja refuses a bad field: the sandbox cannot be
    // made to POST to the cloud metadata service, an internal host, or another site.
    for url in [
        "https://m.example/cb".to_string(),
        "http://169.254.169.254/latest/meta-data".to_string(),
        "http://127.0.0.1:9/callbacks/mpesa/x/y".to_string(),
        format!("{}/sandbox/daraja/oauth/v1/generate", app.addr),
        format!("{}/callbacks/../v1/account", app.addr),
        format!("{own}?next=https://evil.example"),
        format!("{own}{}", "a".repeat(600)),
    ] {
        match d.stk_push(&push("254708374149", &url), now_ms()).await {
            Err(ConnectorError::Rejected { code, message, .. }) => {
                assert_eq!(code, "400.002.02", "{url}");
                assert!(message.contains("CallBackURL"), "{url}: {message}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    assert!(
        prompts(&app.client, &app.addr, "254708374149")
            .await
            .is_empty()
    );
    // Its own route is fine.
    d.stk_push(&push("254708374149", &own), now_ms())
        .await
        .unwrap();
    assert!(
        received.all().await.is_empty(),
        "nothing sent before an answer"
    );
}

#[tokio::test]
async fn a_phone_holds_a_bounded_number_of_waiting_prompts_and_old_ones_are_forgotten() {
    let app = spawn_app().await;
    let d = daraja(&app, &app.mpesa);
    let (own, _received) = callback_receiver(&app).await;
    let cap = malipo::sandbox::PENDING_PER_PHONE;
    for _ in 0..cap {
        d.stk_push(&push("254722000999", &own), now_ms())
            .await
            .unwrap();
    }
    match d.stk_push(&push("254722000999", &own), now_ms()).await {
        // Daraja's answer for a subscriber it cannot lock: nothing reached the phone.
        Err(ConnectorError::Rejected { code, .. }) => assert_eq!(code, "500.001.1001"),
        other => panic!("{other:?}"),
    }
    // Decided pushes whose callbacks are done are purged after an hour; pending ones
    // and those with a callback still due are kept.
    let shown = prompts(&app.client, &app.addr, "254722000999").await;
    let id = shown[0]["id"].as_str().unwrap();
    let decline = format!(
        "{}/sandbox/phones/254722000999/prompts/{id}/decline",
        app.addr
    );
    app.client.post(&decline).send().await.unwrap();
    wait_for("the callback to go", 5, async || {
        app.store
            .sandbox_request(malipo::connectors::RailId::Mpesa, id)
            .await
            .unwrap()
            .filter(|p| p.callback_at.is_none())
    })
    .await;
    let later = now_ms() + malipo::sandbox::worker::KEEP_DECIDED_MS + 1;
    assert_eq!(app.store.sandbox_purge(later, later).await.unwrap(), 1);
    assert!(
        app.store
            .sandbox_request(malipo::connectors::RailId::Mpesa, id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        app.store
            .sandbox_pending_count("254722000999")
            .await
            .unwrap(),
        cap - 1
    );
}

#[tokio::test]
async fn sandbox_delays_scale_so_nobody_waits_a_real_minute() {
    // At 5 %, the "no answer" number's 12 s is 0.6 s: the engine sees Daraja's 1037 at
    // once, as a merchant's test suite wants.
    let app = crate::helpers::spawn_app_with(crate::helpers::Db::Sqlite, |c| {
        c.sandbox_delay_percent = 5;
    })
    .await;
    let (_, id) = seed_session(&app, "Quick Lodge", 900).await;
    let sid = malipo::domain::SessionId::parse(&id).unwrap();
    let attempt = app.payments.start_mpesa(&sid, "0700001037").await.unwrap();
    let settled = wait_for("the scripted no-answer", 5, async || {
        app.store
            .attempt(&attempt.id)
            .await
            .unwrap()
            .filter(|a| a.status.is_final())
    })
    .await;
    assert_eq!(settled.failure_code.as_deref(), Some("no_response"));
}
