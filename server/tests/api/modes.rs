//! Test and live modes: keys pick the mode, objects never cross it, and live mode never
//! reaches a sandbox operator.

use crate::helpers::{Db, prompts, spawn_app_with};
use malipo::{
    domain::{ApiKeyKind, Mode},
    merchants,
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

#[tokio::test]
async fn live_and_test_objects_never_meet() {
    let app = spawn_app_with(Db::Sqlite, |_| {}).await;
    let created = merchants::create(&app.store, "Two Modes Safaris")
        .await
        .unwrap();
    let test_key = created.test_secret_key.expose_secret().to_owned();
    let (live_id, live) = merchants::create_key(
        &app.store,
        &created.merchant.id,
        ApiKeyKind::Secret,
        Mode::Live,
    )
    .await
    .unwrap();
    let live_key = live.token.expose_secret().to_owned();
    assert!(live_key.starts_with("sk_live_"));

    let call = async |key: &str, method: &str, path: &str, body: Option<Value>| {
        let mut req = app
            .client
            .request(method.parse().unwrap(), format!("{}{path}", app.addr))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        (
            res.status().as_u16(),
            res.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let session = json!({
        "amount": 150000, "currency": "KES", "reference": "LIVE-1", "description": "Safari",
        "success_url": "https://lodge.example/ok", "cancel_url": "https://lodge.example/no",
    });
    let (status, live_session) = call(
        &live_key,
        "POST",
        "/v1/checkout/sessions",
        Some(session.clone()),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(live_session["livemode"], true);
    // A live page carries no TEST MODE banner; a test one does.
    let page = |id: &str| {
        let url = format!("{}/pay/{id}", app.addr);
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert!(
        !page(live_session["id"].as_str().unwrap())
            .await
            .contains("data-test-mode")
    );
    // API answers are never cached (some carry secrets).
    let res = app
        .client
        .get(format!(
            "{}/v1/checkout/sessions/{}",
            app.addr,
            live_session["id"].as_str().unwrap()
        ))
        .bearer_auth(&live_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    // Live redirects carry real shoppers: https only (test mode allows http).
    for param in ["success_url", "cancel_url"] {
        let mut plain = session.clone();
        plain[param] = json!("http://lodge.example/back");
        let (status, err) = call(
            &live_key,
            "POST",
            "/v1/checkout/sessions",
            Some(plain.clone()),
        )
        .await;
        assert_eq!(
            (
                status,
                err["error"]["code"].as_str(),
                err["error"]["param"].as_str()
            ),
            (400, Some("invalid_url"), Some(param))
        );
        let (status, _) = call(&test_key, "POST", "/v1/checkout/sessions", Some(plain)).await;
        assert_eq!(status, 201);
    }
    let (_, test_session) = call(&test_key, "POST", "/v1/checkout/sessions", Some(session)).await;
    assert_eq!(test_session["livemode"], false);

    let live_path = format!(
        "/v1/checkout/sessions/{}",
        live_session["id"].as_str().unwrap()
    );
    let test_path = format!(
        "/v1/checkout/sessions/{}",
        test_session["id"].as_str().unwrap()
    );
    assert_eq!(call(&test_key, "GET", &live_path, None).await.0, 404);
    assert_eq!(call(&live_key, "GET", &test_path, None).await.0, 404);
    assert_eq!(call(&live_key, "GET", &live_path, None).await.0, 200);

    // Webhook endpoints and events are per mode too.
    let (status, _) = call(
        &live_key,
        "POST",
        "/v1/webhook_endpoints",
        Some(json!({"url": "http://127.0.0.1:9/h", "enabled_events": ["*"]})),
    )
    .await;
    assert_eq!(status, 400, "live endpoints must be https");
    let (status, endpoint) = call(
        &live_key,
        "POST",
        "/v1/webhook_endpoints",
        Some(json!({"url": "https://lodge.example/h", "enabled_events": ["*"]})),
    )
    .await;
    assert_eq!((status, &endpoint["livemode"]), (201, &json!(true)));
    let (_, test_list) = call(&test_key, "GET", "/v1/webhook_endpoints", None).await;
    assert_eq!(test_list["data"], json!([]));
    call(&test_key, "POST", &format!("{test_path}/expire"), None).await;
    let (_, live_events) = call(&live_key, "GET", "/v1/events", None).await;
    assert_eq!(
        live_events["data"],
        json!([]),
        "a test event is not a live event"
    );

    // Live mode has no M-PESA configured here, and never falls back to the sandbox.
    let res = app
        .post_pay_form(
            live_session["id"].as_str().unwrap(),
            "",
            &[("phone", "0708374149")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("?error=rail_unavailable"),
        "{:?}",
        res.headers()["location"]
    );
    assert!(
        prompts(&app.client, &app.addr, "254708374149")
            .await
            .is_empty()
    );
    assert!(
        app.store
            .latest_attempt(
                &malipo::domain::SessionId::parse(live_session["id"].as_str().unwrap()).unwrap()
            )
            .await
            .unwrap()
            .is_none()
    );

    // A revoked key stops working at once.
    merchants::revoke_key(&app.store, live_id.as_str())
        .await
        .unwrap();
    let (status, e) = call(&live_key, "GET", &live_path, None).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
}
