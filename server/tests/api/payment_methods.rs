//! Which rails may take a payment: a session's `payment_method_types`, narrowed to the
//! rails the merchant switched on for the mode (`POST /v1/account`); the page offers
//! only those, and a rail outside them starts nothing.

use crate::helpers::{TestApp, spawn_app};
use malipo::{connectors::RailId, merchants, payments::PayError};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

async fn call(app: &TestApp, key: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let req = match body {
        Some(b) => app.client.post(format!("{}{path}", app.addr)).json(&b),
        None => app.client.get(format!("{}{path}", app.addr)),
    };
    let res = req.bearer_auth(key).send().await.unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

fn session(currency: &str, amount: i64, methods: Value) -> Value {
    json!({"amount": amount, "currency": currency, "reference": "PM-1", "description": "Safari",
        "success_url": "https://lodge.example/ok", "cancel_url": "https://lodge.example/no",
        "payment_method_types": methods})
}

#[tokio::test]
async fn a_session_offers_only_its_payment_method_types() {
    let app = spawn_app().await;
    let created = merchants::create(&app.store, "Narrow Lodge").await.unwrap();
    let key = created.test_secret_key.expose_secret().to_owned();
    let (status, s) = call(
        &app,
        &key,
        "/v1/checkout/sessions",
        Some(session("KES", 150_000, json!(["airtel", "airtel"]))),
    )
    .await;
    assert_eq!(status, 201, "{s}");
    assert_eq!(
        s["payment_method_types"],
        json!(["airtel"]),
        "repeats count once"
    );
    let id = s["id"].as_str().unwrap().to_owned();
    let page = app.page(&id).await;
    assert!(page.contains("Airtel Money"), "{page}");
    assert!(!page.contains("value=\"mpesa\""), "M-PESA is not offered");
    // A shopper (or a forged form) choosing M-PESA starts nothing.
    let sid = malipo::domain::SessionId::parse(&id).unwrap();
    let refused = app
        .payments
        .start(&sid, RailId::Mpesa, "0712 345 678", false)
        .await;
    assert!(
        matches!(refused, Err(PayError::RailNotConfigured)),
        "{refused:?}"
    );
    let res = app
        .post_pay_form(&id, "", &[("phone", "0712 345 678"), ("rail", "mpesa")])
        .await;
    assert_eq!(res.status(), 303);
    assert!(app.store.pending_attempt(&sid).await.unwrap().is_none());
    // Without a list: every rail that takes the currency.
    let (_, all) = call(
        &app,
        &key,
        "/v1/checkout/sessions",
        Some(session("KES", 150_000, Value::Null)),
    )
    .await;
    assert_eq!(all["payment_method_types"], Value::Null);

    // Refused before anything is written: unknown names, an empty list, a rail that
    // cannot take the currency.
    for (methods, status, code) in [
        (json!(["visa"]), 400, "invalid_payment_method_type"),
        (json!([]), 400, "invalid_payment_method_type"),
        (json!("mpesa"), 400, "invalid_payment_method_type"),
        (
            json!(["tigo", "vodacom"]),
            422,
            "payment_method_unavailable",
        ),
    ] {
        let (got, e) = call(
            &app,
            &key,
            "/v1/checkout/sessions",
            Some(session("KES", 150_000, methods.clone())),
        )
        .await;
        assert_eq!(
            (got, e["error"]["code"].as_str()),
            (status, Some(code)),
            "{methods}: {e}"
        );
        assert_eq!(e["error"]["param"], "payment_method_types");
    }
    // M-PESA takes whole shillings only: KES 1,500.50 leaves nothing.
    let (got, e) = call(
        &app,
        &key,
        "/v1/checkout/sessions",
        Some(session("KES", 150_050, json!(["mpesa"]))),
    )
    .await;
    assert_eq!(
        (got, e["error"]["code"].as_str()),
        (422, Some("payment_method_unavailable"))
    );
}

#[tokio::test]
async fn the_account_switches_rails_on_per_mode() {
    let app = spawn_app().await;
    let created = merchants::create(&app.store, "Switch Lodge").await.unwrap();
    let test_key = created.test_secret_key.expose_secret().to_owned();
    let (_, live) = merchants::create_key(
        &app.store,
        &created.merchant.id,
        malipo::domain::ApiKeyKind::Secret,
        malipo::domain::Mode::Live,
    )
    .await
    .unwrap();
    let live_key = live.token.expose_secret().to_owned();
    let (status, a) = call(
        &app,
        &test_key,
        "/v1/account",
        Some(json!({"payment_method_types": ["mpesa", "tigo"]})),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["payment_method_types"], json!(["mpesa", "tigo"]));
    let (_, live) = call(&app, &live_key, "/v1/account", None).await;
    assert_eq!(
        live["payment_method_types"],
        Value::Null,
        "live mode is its own"
    );
    // A bad list changes nothing, not even the other field sent with it.
    let (status, e) = call(
        &app,
        &test_key,
        "/v1/account",
        Some(json!({"payment_method_types": ["cash"], "embed_origins": ["https://lodge.example"]})),
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("invalid_payment_method_type"))
    );
    let (_, a) = call(&app, &test_key, "/v1/account", None).await;
    assert_eq!(a["embed_origins"], json!([]));

    // New sessions get the account's rails, narrowed by their own list.
    let create = async |methods: Value| {
        call(
            &app,
            &test_key,
            "/v1/checkout/sessions",
            Some(session("KES", 150_000, methods)),
        )
        .await
    };
    let (_, s) = create(Value::Null).await;
    assert_eq!(s["payment_method_types"], json!(["mpesa", "tigo"]));
    let (_, s) = create(json!(["airtel", "mpesa"])).await;
    assert_eq!(s["payment_method_types"], json!(["mpesa"]));
    let (status, e) = create(json!(["airtel"])).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (422, Some("payment_method_unavailable"))
    );
    // The account's list on a KES session: only M-PESA can take it.
    let sid = malipo::domain::SessionId::parse(s["id"].as_str().unwrap()).unwrap();
    let record = app.store.session(&sid).await.unwrap().unwrap();
    assert_eq!(app.checkout.methods(&record), vec![RailId::Mpesa]);

    // Back to every rail.
    let (_, a) = call(
        &app,
        &test_key,
        "/v1/account",
        Some(json!({"payment_method_types": null})),
    )
    .await;
    assert_eq!(a["payment_method_types"], Value::Null);
    let (_, s) = create(Value::Null).await;
    assert_eq!(s["payment_method_types"], Value::Null);
}
