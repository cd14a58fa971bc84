//! The merchant API: checkout sessions, auth, errors, idempotency.

use crate::helpers::{Db, TestApp, spawn_app, spawn_app_on};
use malipo::{domain::Mode, merchants};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

struct Merchant {
    id: malipo::domain::MerchantId,
    key: String,
}

async fn merchant(app: &TestApp, name: &str) -> Merchant {
    let created = merchants::create(&app.store, name).await.unwrap();
    Merchant {
        id: created.merchant.id,
        key: created.test_secret_key.expose_secret().to_owned(),
    }
}

fn body() -> Value {
    json!({
        "amount": 150000,
        "currency": "KES",
        "reference": "MARA-0042",
        "description": "Maasai Mara 3-day safari",
        "success_url": "https://lodge.example/booking/MARA-0042/paid?s={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://lodge.example/booking/MARA-0042",
        "customer": { "phone": "0712 345 678", "email": "amina@example.com" },
        "metadata": { "booking_id": "B-77" },
    })
}

async fn post(
    app: &TestApp,
    key: &str,
    path: &str,
    body: &Value,
    idem: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = app
        .client
        .post(format!("{}{path}", app.addr))
        .bearer_auth(key)
        .json(body);
    if let Some(k) = idem {
        req = req.header("Idempotency-Key", k);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    let res = app
        .client
        .get(format!("{}{path}", app.addr))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn create_then_retrieve_a_session() {
    let app = spawn_app().await;
    let m = merchant(&app, "Mara Serena").await;
    let (status, _, s) = post(&app, &m.key, "/v1/checkout/sessions", &body(), None).await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap();
    assert!(id.starts_with("cs_"));
    assert_eq!(s["object"], "checkout.session");
    assert_eq!(s["url"], format!("{}/pay/{id}", app.addr));
    assert_eq!(
        (s["status"].as_str(), s["payment_status"].as_str()),
        (Some("open"), Some("unpaid"))
    );
    assert_eq!(
        (s["amount"].as_i64(), s["currency"].as_str()),
        (Some(150000), Some("KES"))
    );
    assert_eq!(s["customer"]["phone"], "254712345678", "phone normalised");
    assert_eq!(s["metadata"]["booking_id"], "B-77");
    assert_eq!(s["livemode"], false);
    let ttl = s["expires_at"].as_i64().unwrap() - s["created"].as_i64().unwrap();
    assert!(
        (1799..=1800).contains(&ttl),
        "default 30 minutes, got {ttl}"
    );

    let (status, fetched) = get(&app, &m.key, &format!("/v1/checkout/sessions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, s);

    // And the shopper's page exists.
    let page = app
        .client
        .get(format!("{}/pay/{id}", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn wrong_or_missing_keys_get_401() {
    let app = spawn_app().await;
    for auth in [
        None,
        Some("Bearer sk_test_00000000000000000000000000000000"),
        Some("Bearer nonsense"),
        Some("Basic abc"),
    ] {
        let mut req = app
            .client
            .post(format!("{}/v1/checkout/sessions", app.addr))
            .json(&body());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401, "{auth:?}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_api_key");
    }
}

#[tokio::test]
async fn another_merchants_session_is_not_found() {
    let app = spawn_app().await;
    let a = merchant(&app, "Lodge A").await;
    let b = merchant(&app, "Lodge B").await;
    let (_, _, s) = post(&app, &a.key, "/v1/checkout/sessions", &body(), None).await;
    let id = s["id"].as_str().unwrap();
    for path in [
        format!("/v1/checkout/sessions/{id}"),
        "/v1/checkout/sessions/cs_nope".into(),
    ] {
        let (status, v) = get(&app, &b.key, &path).await;
        assert_eq!(status, 404);
        assert_eq!(v["error"]["code"], "session_not_found");
    }
    let (status, _, v) = post(
        &app,
        &b.key,
        &format!("/v1/checkout/sessions/{id}/expire"),
        &json!({}),
        None,
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("session_not_found"))
    );
}

#[tokio::test]
async fn bad_input_gets_a_stable_code_and_writes_nothing() {
    let app = spawn_app().await;
    let m = merchant(&app, "Strict Lodge").await;
    let with = |k: &str, v: Value| {
        let mut b = body();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = body();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(Value, &str, Option<&str>)> = vec![
        (with("amount", json!(0)), "invalid_amount", Some("amount")),
        (with("amount", json!(-5)), "invalid_amount", Some("amount")),
        (
            with("amount", json!(1500.5)),
            "invalid_amount",
            Some("amount"),
        ),
        (
            with("amount", json!("150000")),
            "invalid_amount",
            Some("amount"),
        ),
        (without("amount"), "parameter_missing", Some("amount")),
        (
            with("currency", json!("XYZ")),
            "unsupported_currency",
            Some("currency"),
        ),
        (without("currency"), "parameter_missing", Some("currency")),
        (without("reference"), "parameter_missing", Some("reference")),
        // What the shopper reads must be what it says: no bidi overrides or
        // zero-width characters (Trojan Source).
        (
            with("description", json!("Safari \u{202E}00.05 SEK")),
            "parameter_invalid",
            Some("description"),
        ),
        (
            with("description", json!("Lodge\u{2067} deposit")),
            "parameter_invalid",
            Some("description"),
        ),
        (
            with("reference", json!("MARA\u{200B}-1")),
            "parameter_invalid",
            Some("reference"),
        ),
        (
            with("reference", json!("\u{FEFF}MARA-1")),
            "parameter_invalid",
            Some("reference"),
        ),
        (
            with("reference", json!("x".repeat(65))),
            "parameter_invalid",
            Some("reference"),
        ),
        (
            with("description", json!(42)),
            "parameter_invalid",
            Some("description"),
        ),
        (
            with("success_url", json!("javascript:alert(1)")),
            "invalid_url",
            Some("success_url"),
        ),
        (
            with("cancel_url", json!("/relative")),
            "invalid_url",
            Some("cancel_url"),
        ),
        (
            with("customer", json!({"phone": "12345"})),
            "invalid_phone",
            Some("customer.phone"),
        ),
        (
            with("customer", json!({"email": "not-an-email"})),
            "invalid_email",
            Some("customer.email"),
        ),
        (
            with("customer", json!({"pin": "1234"})),
            "unknown_parameter",
            Some("customer.pin"),
        ),
        (
            with("metadata", json!({"n": 1})),
            "invalid_metadata",
            Some("metadata.n"),
        ),
        (
            with("expires_in", json!(10)),
            "invalid_expires_in",
            Some("expires_in"),
        ),
        (
            with("expires_in", json!(86401)),
            "invalid_expires_in",
            Some("expires_in"),
        ),
        (
            with("colour", json!("red")),
            "unknown_parameter",
            Some("colour"),
        ),
        (json!([1, 2]), "invalid_json", None),
    ];
    for (b, code, param) in cases {
        let (status, _, v) = post(&app, &m.key, "/v1/checkout/sessions", &b, None).await;
        assert_eq!(status, 400, "{code}: {v}");
        assert_eq!(v["error"]["code"], code, "{v}");
        assert_eq!(v["error"]["param"].as_str(), param, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let res = app
        .client
        .post(format!("{}/v1/checkout/sessions", app.addr))
        .bearer_auth(&m.key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_json"
    );
    assert_eq!(
        app.store.count_sessions(&m.id, Mode::Test).await.unwrap(),
        0,
        "nothing half-written"
    );
}

#[tokio::test]
async fn expire_closes_an_open_session_once() {
    let app = spawn_app().await;
    let m = merchant(&app, "Expiring Lodge").await;
    let (_, _, s) = post(&app, &m.key, "/v1/checkout/sessions", &body(), None).await;
    let path = format!("/v1/checkout/sessions/{}/expire", s["id"].as_str().unwrap());
    let (status, _, v) = post(&app, &m.key, &path, &json!({}), None).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("expired")));
    let (status, _, v) = post(&app, &m.key, &path, &json!({}), None).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("session_not_open"))
    );
    let events = app
        .store
        .session_events(s["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "session.expired")
            .count(),
        1
    );
    assert_eq!(events.last().unwrap().detail["reason"], "merchant");
}

#[tokio::test]
async fn idempotency_replays_refuses_reuse_and_scopes_per_merchant() {
    let app = spawn_app().await;
    let m = merchant(&app, "Idem Lodge").await;
    let (s1, h1, first) = post(
        &app,
        &m.key,
        "/v1/checkout/sessions",
        &body(),
        Some("order-42"),
    )
    .await;
    assert_eq!(s1, 201);
    assert!(h1.get("idempotent-replayed").is_none());
    let (s2, h2, again) = post(
        &app,
        &m.key,
        "/v1/checkout/sessions",
        &body(),
        Some("order-42"),
    )
    .await;
    assert_eq!((s2, &again), (201, &first), "the first response, replayed");
    assert_eq!(h2["idempotent-replayed"], "true");

    let mut changed = body();
    changed["amount"] = json!(150001);
    let (s3, _, v) = post(
        &app,
        &m.key,
        "/v1/checkout/sessions",
        &changed,
        Some("order-42"),
    )
    .await;
    assert_eq!(
        (s3, v["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );

    // Errors are replayed too: the same bad request gets the same answer, no new work.
    let mut bad = body();
    bad["currency"] = json!("XYZ");
    let (s4, _, e1) = post(&app, &m.key, "/v1/checkout/sessions", &bad, Some("bad-1")).await;
    let (s5, h5, e2) = post(&app, &m.key, "/v1/checkout/sessions", &bad, Some("bad-1")).await;
    assert_eq!((s4, s5), (400, 400));
    assert_eq!(e1, e2);
    assert_eq!(h5["idempotent-replayed"], "true");

    // Another merchant's identical key is their own.
    let other = merchant(&app, "Other Lodge").await;
    let (s6, _, theirs) = post(
        &app,
        &other.key,
        "/v1/checkout/sessions",
        &body(),
        Some("order-42"),
    )
    .await;
    assert_eq!(s6, 201);
    assert_ne!(theirs["id"], first["id"]);

    let res = app
        .client
        .post(format!("{}/v1/checkout/sessions", app.addr))
        .bearer_auth(&m.key)
        .header("Idempotency-Key", "x".repeat(256))
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_idempotency_key"
    );
    assert_eq!(
        app.store.count_sessions(&m.id, Mode::Test).await.unwrap(),
        1
    );
}

async fn fifty_concurrent_posts_create_one_session(db: Db) {
    let app = spawn_app_on(db).await;
    let m = merchant(&app, "Busy Lodge").await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let client = app.client.clone();
        let url = format!("{}/v1/checkout/sessions", app.addr);
        let key = m.key.clone();
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", "double-tap")
                .json(&body())
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (status, v) = t.await.unwrap();
        match status {
            201 => {
                ids.insert(v["id"].as_str().unwrap().to_owned());
            }
            409 => assert_eq!(v["error"]["code"], "idempotency_key_in_use"),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(ids.len(), 1, "every success is the same session");
    assert_eq!(
        app.store.count_sessions(&m.id, Mode::Test).await.unwrap(),
        1,
        "exactly one session"
    );
    // After the dust settles, a retry replays it.
    let (status, h, v) = post(
        &app,
        &m.key,
        "/v1/checkout/sessions",
        &body(),
        Some("double-tap"),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(h["idempotent-replayed"], "true");
    assert!(ids.contains(v["id"].as_str().unwrap()));
}

#[tokio::test]
async fn fifty_concurrent_posts_create_one_session_on_sqlite() {
    fifty_concurrent_posts_create_one_session(Db::Sqlite).await;
}

#[tokio::test]
async fn fifty_concurrent_posts_create_one_session_on_postgres() {
    fifty_concurrent_posts_create_one_session(Db::Postgres).await;
}

#[tokio::test]
async fn the_sweeper_expires_sessions_on_time_and_tells_live_pages() {
    let app = spawn_app().await;
    let m = merchant(&app, "Sweep Lodge").await;
    let (_, _, s) = post(&app, &m.key, "/v1/checkout/sessions", &body(), None).await;
    let mut changes = app.payments.subscribe();
    let (_, id) = crate::helpers::seed_session(&app, "Due Lodge", 1).await;
    // The background sweeper (every 2 s) expires it and tells open pages.
    let told = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if changes.recv().await.unwrap() == id {
                return;
            }
        }
    })
    .await;
    assert!(told.is_ok(), "live pages hear about the expiry");
    let sid = malipo::domain::SessionId::parse(&id).unwrap();
    let due = app.store.session(&sid).await.unwrap().unwrap();
    assert_eq!(due.status, malipo::store::SessionStatus::Expired);
    let events = app.store.session_events(&id).await.unwrap();
    let expiries: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "session.expired")
        .collect();
    assert_eq!(expiries.len(), 1, "expired once");
    assert_eq!(expiries[0].detail["reason"], "timeout");
    // Sweeping again changes nothing.
    assert!(
        !malipo::sweeper::sweep_once(&app.store)
            .await
            .unwrap()
            .contains(&sid)
    );
    // The 30-minute one is untouched.
    let (_, open) = get(
        &app,
        &m.key,
        &format!("/v1/checkout/sessions/{}", s["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(open["status"], "open");
}

#[tokio::test]
async fn unknown_api_routes_are_json_404s() {
    let app = spawn_app().await;
    let m = merchant(&app, "Route Lodge").await;
    let (status, v) = get(&app, &m.key, "/v1/nothing/here").await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "not_found");
}
