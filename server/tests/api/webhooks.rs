//! Webhooks end to end: endpoints through the API, events written with the state change,
//! signed deliveries to a real HTTP receiver, retries, restarts, rotation, redelivery.
//!
//! Signatures are checked here with an HMAC-SHA256 written from the RFC 2104 definition
//! over plain SHA-256, not with the crate's own `webhooks::signature`.

use crate::helpers::{
    Db, TestApp, accept, prompts, spawn_app_with, test_config, test_db, wait_for,
};
use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use malipo::{domain::SessionId, merchants, startup::Application};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

/// HMAC-SHA256 (RFC 2104), independent of the `hmac` crate.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> String {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    let outer = Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_independent_hmac_matches_rfc_4231() {
    // RFC 4231 test case 2.
    assert_eq!(
        hmac_sha256(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

/// The `v1` signatures in a `Malipo-Signature` header, and its timestamp.
fn parse_signature(header: &str) -> (i64, Vec<String>) {
    let mut t = 0;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse().unwrap(),
            Some(("v1", v)) => v1.push(v.to_owned()),
            _ => panic!("unexpected part {part:?} in {header:?}"),
        }
    }
    (t, v1)
}

/// True when one of the header's `v1` is HMAC(secret, "t.body") and t is within 300 s.
fn signed_by(header: &str, body: &[u8], secret: &str) -> bool {
    let (t, v1) = parse_signature(header);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(body);
    let expected = hmac_sha256(secret.as_bytes(), &msg);
    (now - t).abs() <= 300 && v1.contains(&expected)
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    signature: String,
    body: Bytes,
    /// What the receiver answered.
    status: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A merchant's webhook receiver on a real port: answers 500 to the first `fail_first`
/// requests, then 200.
#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    fail_first: Arc<AtomicUsize>,
}

impl Receiver {
    fn new(fail_first: usize) -> Self {
        Receiver {
            got: Arc::default(),
            fail_first: Arc::new(AtomicUsize::new(fail_first)),
        }
    }

    /// Serves on `listener` until the returned handle is aborted.
    fn serve(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        async fn hook(
            State(r): State<Receiver>,
            headers: HeaderMap,
            body: Bytes,
        ) -> axum::http::StatusCode {
            let failing = r
                .fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            let status = if failing { 500 } else { 200 };
            r.got.lock().unwrap().push(Received {
                signature: headers
                    .get("malipo-signature")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default(),
                body,
                status,
            });
            axum::http::StatusCode::from_u16(status).unwrap()
        }
        let app = Router::new()
            .route("/hooks", post(hook))
            .with_state(self.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        })
    }

    async fn start(&self) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        (url, self.serve(listener))
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Requests answered 200, as parsed events.
    fn delivered(&self) -> Vec<Value> {
        self.received()
            .iter()
            .filter(|r| r.status == 200)
            .map(Received::json)
            .collect()
    }
}

/// A test merchant with its secret key.
struct Merchant {
    key: String,
}

async fn merchant(app: &TestApp, name: &str) -> Merchant {
    let created = merchants::create(&app.store, name).await.unwrap();
    use secrecy::ExposeSecret;
    Merchant {
        key: created.test_secret_key.expose_secret().to_owned(),
    }
}

async fn api(
    app: &TestApp,
    m: &Merchant,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method.parse().unwrap(), format!("{}{path}", app.addr))
        .bearer_auth(&m.key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn new_session(app: &TestApp, m: &Merchant) -> String {
    let (status, s) = api(
        app,
        m,
        "POST",
        "/v1/checkout/sessions",
        Some(json!({
            "amount": 150000, "currency": "KES", "reference": "MARA-0042",
            "description": "Maasai Mara 3-day safari",
            "success_url": "https://lodge.example/paid?cs={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://lodge.example/cancelled",
        })),
    )
    .await;
    assert_eq!(status, 201, "{s}");
    s["id"].as_str().unwrap().to_owned()
}

async fn register(app: &TestApp, m: &Merchant, url: &str, events: Value) -> (String, String) {
    let (status, e) = api(
        app,
        m,
        "POST",
        "/v1/webhook_endpoints",
        Some(json!({ "url": url, "enabled_events": events })),
    )
    .await;
    assert_eq!(status, 201, "{e}");
    (
        e["id"].as_str().unwrap().to_owned(),
        e["secret"].as_str().unwrap().to_owned(),
    )
}

/// Pays a session through the sandbox handset.
async fn pay(app: &TestApp, session: &str) {
    let sid = SessionId::parse(session).unwrap();
    app.payments.start_mpesa(&sid, "0708374149").await.unwrap();
    let shown = prompts(&app.client, &app.addr, "254708374149").await;
    accept(
        &app.client,
        &app.addr,
        "254708374149",
        shown[0]["id"].as_str().unwrap(),
    )
    .await;
}

#[tokio::test]
async fn a_payment_sends_signed_ordered_events_to_the_endpoint() {
    for db in [Db::Sqlite, Db::Postgres] {
        let app = spawn_app_with(db, |_| {}).await;
        let m = merchant(&app, "Mara Serena").await;
        let receiver = Receiver::new(0);
        let (url, _server) = receiver.start().await;
        let (_, secret) = register(&app, &m, &url, json!(["*"])).await;
        assert!(secret.starts_with("whsec_"));
        let session = new_session(&app, &m).await;
        pay(&app, &session).await;

        let got = wait_for("two events", 15, async || {
            let d = receiver.delivered();
            (d.len() >= 2).then_some(d)
        })
        .await;
        let types: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            ["payment.succeeded", "checkout.session.completed"],
            "{db:?}"
        );
        let seqs: Vec<i64> = got
            .iter()
            .map(|e| e["sequence"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 2]);
        for r in receiver.received() {
            assert!(
                signed_by(&r.signature, &r.body, &secret),
                "{db:?}: bad signature"
            );
            assert!(!signed_by(&r.signature, &r.body, "whsec_wrong"));
            // Any change to the body breaks the signature.
            let mut tampered = r.body.to_vec();
            tampered[10] ^= 1;
            assert!(!signed_by(&r.signature, &tampered, &secret));
        }
        // Each body is what the reference's `webhooks` section says, object included.
        let doc = malipo::api::openapi_document(&app.addr);
        for event in &got {
            let hook = &doc["webhooks"][event["type"].as_str().unwrap()]["post"];
            let schema = &hook["requestBody"]["content"]["application/json"]["schema"];
            crate::openapi::check(&doc, schema, event, "event").unwrap();
            let object = if event["type"].as_str().unwrap().starts_with("payment.") {
                "PaymentObject"
            } else {
                "CheckoutSessionObject"
            };
            let schema = json!({ "$ref": format!("#/components/schemas/{object}") });
            crate::openapi::check(&doc, &schema, &event["data"]["object"], "data.object").unwrap();
        }
        let completed = &got[1];
        assert_eq!(completed["object"], "event");
        assert_eq!(completed["livemode"], false);
        assert!(completed["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(completed["data"]["object"]["id"], session.as_str());
        assert_eq!(completed["data"]["object"]["status"], "complete");
        assert_eq!(completed["data"]["object"]["payment_status"], "paid");
        let payment = &got[0]["data"]["object"];
        assert_eq!(payment["object"], "payment");
        assert_eq!(payment["status"], "succeeded");
        assert_eq!(payment["checkout_session"], session.as_str());
        assert_eq!(payment["receipt"].as_str().map(str::len), Some(10));

        // The events API returns the same events, newest first, with the same ids.
        let (status, list) = api(&app, &m, "GET", "/v1/events", None).await;
        assert_eq!(status, 200);
        let ids: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                got[1]["id"].as_str().unwrap(),
                got[0]["id"].as_str().unwrap()
            ]
        );
        let (_, one) = api(&app, &m, "GET", &format!("/v1/events/{}", ids[0]), None).await;
        assert_eq!(one, got[1], "GET /v1/events/{{id}} is the delivered body");
    }
}

#[tokio::test]
async fn a_receiver_failing_three_times_gets_the_event_on_the_fourth_try() {
    let app = spawn_app_with(Db::Sqlite, |_| {}).await;
    let m = merchant(&app, "Flaky Lodge").await;
    let receiver = Receiver::new(3);
    let (url, _server) = receiver.start().await;
    let (_, secret) = register(&app, &m, &url, json!(["checkout.session.expired"])).await;
    let session = new_session(&app, &m).await;
    let (status, _) = api(
        &app,
        &m,
        "POST",
        &format!("/v1/checkout/sessions/{session}/expire"),
        None,
    )
    .await;
    assert_eq!(status, 200);

    let got = wait_for("a successful delivery", 15, async || {
        let d = receiver.delivered();
        (!d.is_empty()).then_some(d)
    })
    .await;
    let all = receiver.received();
    assert_eq!(all.len(), 4, "three failures then one success");
    let ids: Vec<Value> = all.iter().map(|r| r.json()["id"].clone()).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "every try carries the same event id"
    );
    assert!(
        all.iter()
            .all(|r| signed_by(&r.signature, &r.body, &secret))
    );
    assert_eq!(got[0]["type"], "checkout.session.expired");

    // Every attempt is on record: status, latency, error. (The worker records the
    // success just after the receiver answered: read it once it has.)
    let path = format!("/v1/events/{}/deliveries", got[0]["id"].as_str().unwrap());
    let deliveries = wait_for("the success on record", 5, async || {
        let (_, deliveries) = api(&app, &m, "GET", &path, None).await;
        (deliveries["data"][0]["status"] == "succeeded").then_some(deliveries)
    })
    .await;
    let d = &deliveries["data"][0];
    assert_eq!(d["status"], "succeeded");
    assert_eq!(d["attempt_count"], 4);
    let codes: Vec<i64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 500, 500, 200]);
    assert_eq!(
        d["attempts"][0]["error"], "http_status",
        "a coarse class, never a raw error chain"
    );
    assert!(d["attempts"][3]["error"].is_null());
    // Backoff: the tries are spread out, not fired back to back.
    let at: Vec<i64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attempted_at"].as_i64().unwrap())
        .collect();
    assert!(at[3] - at[0] >= 150, "{at:?}");
}

#[tokio::test]
async fn deliveries_resume_after_a_server_restart_and_a_receiver_outage() {
    let db = test_db(Db::Sqlite).await;
    let site = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = test_config(&db.url, site.path().into());
        // Slow enough that the server is stopped mid-schedule.
        c.webhooks.retry_base_ms = 300;
        c.webhooks.retry_max_ms = 600;
        c
    };
    // The receiver's port is reserved but nothing answers on it yet: it is "down".
    let parked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = parked.local_addr().unwrap().port();
    drop(parked);
    let url = format!("http://127.0.0.1:{port}/hooks");

    let first = Application::build(config()).await.unwrap();
    let store = first.state().store.clone();
    let addr = format!("http://127.0.0.1:{}", first.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(first.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let created = merchants::create(&store, "Outage Camp").await.unwrap();
    use secrecy::ExposeSecret;
    let key = created.test_secret_key.expose_secret().to_owned();
    let call = async |addr: &str, method: &str, path: &str, body: Value| -> Value {
        client
            .request(method.parse().unwrap(), format!("{addr}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let endpoint = call(
        &addr,
        "POST",
        "/v1/webhook_endpoints",
        json!({"url": url, "enabled_events": ["*"]}),
    )
    .await;
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    let mut expired = Vec::new();
    for _ in 0..3 {
        let s = call(&addr, "POST", "/v1/checkout/sessions", json!({
            "amount": 5000, "currency": "KES", "reference": "BUS-7", "description": "Nairobi–Mombasa bus",
            "success_url": "https://bus.example/ok", "cancel_url": "https://bus.example/no"})).await;
        let id = s["id"].as_str().unwrap().to_owned();
        call(
            &addr,
            "POST",
            &format!("/v1/checkout/sessions/{id}/expire"),
            Value::Null,
        )
        .await;
        expired.push(id);
    }
    // Let a few attempts fail against the dead port, then stop the server mid-schedule.
    let failed_once = wait_for("failed attempts", 10, async || {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_delivery_attempts")
            .fetch_one(store.pool())
            .await
            .ok()?;
        (n >= 3).then_some(n)
    })
    .await;
    assert!(failed_once >= 3);
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();

    // The receiver comes back, then the server does.
    let receiver = Receiver::new(0);
    let _server = receiver.serve(
        tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
            .await
            .unwrap(),
    );
    let second = Application::build(config()).await.unwrap();
    tokio::spawn(second.run_until(std::future::pending()));

    let got = wait_for("all three events", 20, async || {
        let d = receiver.delivered();
        (d.len() >= 3).then_some(d)
    })
    .await;
    let mut sessions: Vec<String> = got
        .iter()
        .map(|e| e["data"]["object"]["id"].as_str().unwrap().to_owned())
        .collect();
    sessions.sort();
    expired.sort();
    assert_eq!(sessions, expired, "every event arrives, none twice");
    assert!(
        receiver
            .received()
            .iter()
            .all(|r| signed_by(&r.signature, &r.body, &secret))
    );
}

#[tokio::test]
async fn a_rotated_secret_overlaps_then_only_the_new_one_signs() {
    let app = spawn_app_with(Db::Sqlite, |_| {}).await;
    let m = merchant(&app, "Rotating Tours").await;
    let receiver = Receiver::new(0);
    let (url, _server) = receiver.start().await;
    let (id, old) = register(&app, &m, &url, json!(["checkout.session.expired"])).await;

    let (status, rotated) = api(
        &app,
        &m,
        "POST",
        &format!("/v1/webhook_endpoints/{id}/rotate_secret"),
        Some(json!({"expires_in": 3600})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["previous_secret_expires_at"].as_i64().is_some());
    // The secret is shown once: reading the endpoint does not reveal it.
    let (_, read) = api(
        &app,
        &m,
        "GET",
        &format!("/v1/webhook_endpoints/{id}"),
        None,
    )
    .await;
    assert!(read.get("secret").is_none(), "{read}");

    let expire = async |session: &str| {
        let (status, _) = api(
            &app,
            &m,
            "POST",
            &format!("/v1/checkout/sessions/{session}/expire"),
            None,
        )
        .await;
        assert_eq!(status, 200);
    };
    let s1 = new_session(&app, &m).await;
    expire(&s1).await;
    let first = wait_for("the first event", 10, async || {
        receiver.received().first().cloned()
    })
    .await;
    assert_eq!(
        parse_signature(&first.signature).1.len(),
        2,
        "both secrets sign during the overlap"
    );
    assert!(signed_by(&first.signature, &first.body, &old));
    assert!(signed_by(&first.signature, &first.body, &new));

    // Rotating again with no overlap: only the newest secret signs.
    let (_, rotated) = api(
        &app,
        &m,
        "POST",
        &format!("/v1/webhook_endpoints/{id}/rotate_secret"),
        Some(json!({"expires_in": 0})),
    )
    .await;
    let newest = rotated["secret"].as_str().unwrap().to_owned();
    let s2 = new_session(&app, &m).await;
    expire(&s2).await;
    let second = wait_for("the second event", 10, async || {
        receiver.received().get(1).cloned()
    })
    .await;
    assert_eq!(parse_signature(&second.signature).1.len(), 1);
    assert!(signed_by(&second.signature, &second.body, &newest));
    assert!(!signed_by(&second.signature, &second.body, &new));
    assert!(!signed_by(&second.signature, &second.body, &old));
}

#[tokio::test]
async fn redelivery_sends_the_same_event_again() {
    let app = spawn_app_with(Db::Sqlite, |_| {}).await;
    let m = merchant(&app, "Redeliver Safaris").await;
    let receiver = Receiver::new(0);
    let (url, _server) = receiver.start().await;
    register(&app, &m, &url, json!(["checkout.session.expired"])).await;
    let session = new_session(&app, &m).await;
    api(
        &app,
        &m,
        "POST",
        &format!("/v1/checkout/sessions/{session}/expire"),
        None,
    )
    .await;
    let first = wait_for("the event", 10, async || {
        receiver.delivered().first().cloned()
    })
    .await;
    let event = first["id"].as_str().unwrap();

    let (status, deliveries) = api(
        &app,
        &m,
        "POST",
        &format!("/v1/events/{event}/redeliver"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{deliveries}");
    let again = wait_for("the redelivery", 10, async || {
        receiver.delivered().get(1).cloned()
    })
    .await;
    assert_eq!(again, first, "same id, same body");
    // The receiver answered before the worker logged it: wait for the log.
    wait_for("the second attempt on record", 10, async || {
        let (_, d) = api(
            &app,
            &m,
            "GET",
            &format!("/v1/events/{event}/deliveries"),
            None,
        )
        .await;
        (d["data"][0]["attempt_count"] == 2 && d["data"][0]["status"] == "succeeded").then_some(())
    })
    .await;
}

#[tokio::test]
async fn endpoints_are_validated_scoped_and_deletable() {
    let app = spawn_app_with(Db::Sqlite, |_| {}).await;
    let m = merchant(&app, "Careful Camp").await;
    let other = merchant(&app, "Other Camp").await;
    let bad = [
        (
            json!({"url": "not a url", "enabled_events": ["*"]}),
            "invalid_url",
        ),
        (
            json!({"url": "javascript:alert(1)", "enabled_events": ["*"]}),
            "invalid_url",
        ),
        (
            json!({"url": "https://a.example/h", "enabled_events": ["payment.exploded"]}),
            "unknown_event_type",
        ),
        (
            json!({"url": "https://a.example/h", "enabled_events": []}),
            "parameter_invalid",
        ),
        (json!({"url": "https://a.example/h"}), "parameter_missing"),
        (
            json!({"url": "https://a.example/h", "enabled_events": ["*"], "secret": "mine"}),
            "unknown_parameter",
        ),
    ];
    for (body, code) in bad {
        let (status, e) = api(
            &app,
            &m,
            "POST",
            "/v1/webhook_endpoints",
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}"
        );
    }
    let (_, list) = api(&app, &m, "GET", "/v1/webhook_endpoints", None).await;
    assert_eq!(list["data"], json!([]), "nothing half-written");

    let receiver = Receiver::new(0);
    let (url, _server) = receiver.start().await;
    let (id, _) = register(&app, &m, &url, json!(["*"])).await;
    let (status, _) = api(
        &app,
        &other,
        "GET",
        &format!("/v1/webhook_endpoints/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "another merchant cannot see it");
    let (status, _) = api(
        &app,
        &other,
        "DELETE",
        &format!("/v1/webhook_endpoints/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "nor delete it");
    let (_, list) = api(&app, &m, "GET", "/v1/webhook_endpoints", None).await;
    assert_eq!(list["data"][0]["id"], id.as_str());
    assert!(list["data"][0].get("secret").is_none());

    let (status, deleted) = api(
        &app,
        &m,
        "DELETE",
        &format!("/v1/webhook_endpoints/{id}"),
        None,
    )
    .await;
    assert_eq!((status, &deleted["deleted"]), (200, &json!(true)));
    let (status, e) = api(
        &app,
        &m,
        "DELETE",
        &format!("/v1/webhook_endpoints/{id}"),
        None,
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("webhook_endpoint_not_found"))
    );

    // Events still happen and are listed, but nothing is sent to a deleted endpoint.
    let session = new_session(&app, &m).await;
    api(
        &app,
        &m,
        "POST",
        &format!("/v1/checkout/sessions/{session}/expire"),
        None,
    )
    .await;
    let (_, events) = api(
        &app,
        &m,
        "GET",
        "/v1/events?type=checkout.session.expired",
        None,
    )
    .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(receiver.received().is_empty());
    let (_, none) = api(&app, &other, "GET", "/v1/events", None).await;
    assert_eq!(none["data"], json!([]), "events are per merchant");
    let (status, e) = api(&app, &m, "GET", "/v1/events?limit=0", None).await;
    assert_eq!((status, e["error"]["param"].as_str()), (400, Some("limit")));
}

#[tokio::test]
async fn events_page_newest_first() {
    let app = spawn_app_with(Db::Sqlite, |_| {}).await;
    let m = merchant(&app, "Paging Lines").await;
    for _ in 0..5 {
        let s = new_session(&app, &m).await;
        api(
            &app,
            &m,
            "POST",
            &format!("/v1/checkout/sessions/{s}/expire"),
            None,
        )
        .await;
    }
    let (_, all) = api(&app, &m, "GET", "/v1/events?limit=100", None).await;
    let all: Vec<String> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all.len(), 5);
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/events?limit=2&starting_after={a}"),
            None => "/v1/events?limit=2".into(),
        };
        let (_, page) = api(&app, &m, "GET", &path, None).await;
        let ids: Vec<String> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        seen.extend(ids.clone());
        if page["has_more"] != json!(true) {
            break;
        }
        after = ids.last().cloned();
    }
    assert_eq!(seen, all);
}

#[tokio::test]
async fn a_replayed_answer_never_carries_the_signing_secret() {
    let app = spawn_app_with(Db::Sqlite, |_| {}).await;
    let m = merchant(&app, "Replay Lodge").await;
    let create = async || {
        let res = app
            .client
            .post(format!("{}/v1/webhook_endpoints", app.addr))
            .bearer_auth(&m.key)
            .header("idempotency-key", "endpoint-1")
            .json(&json!({"url": "https://lodge.example/hooks", "enabled_events": ["*"]}))
            .send()
            .await
            .unwrap();
        let replayed = res.headers().get("idempotent-replayed").is_some();
        (replayed, res.json::<Value>().await.unwrap())
    };
    let (replayed, first) = create().await;
    assert!(!replayed);
    let secret = first["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() > 20);
    let (replayed, again) = create().await;
    assert!(replayed);
    assert_eq!(
        again["id"], first["id"],
        "the same endpoint, not a second one"
    );
    assert_eq!(again["secret"], "whsec_redacted");
    // Nor is it kept anywhere for replay.
    let stored: Vec<String> = sqlx::query("SELECT response_body FROM idempotency_keys")
        .fetch_all(app.store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| sqlx::Row::get(r, "response_body"))
        .collect();
    assert!(stored.iter().all(|b| !b.contains(&secret)));
}

#[tokio::test]
async fn deliveries_never_reach_private_addresses_unless_allowed() {
    // No allow-list: a test endpoint may be registered on loopback, but Malipo never
    // connects to it, and the log says only "blocked".
    let app = spawn_app_with(Db::Sqlite, |c| c.webhooks.allow_hosts.clear()).await;
    let m = merchant(&app, "Scanner Lodge").await;
    let receiver = Receiver::new(0);
    let (url, _server) = receiver.start().await;
    register(&app, &m, &url, json!(["*"])).await;
    // A name that resolves to loopback is refused at connect time too.
    let by_name = url.replace("127.0.0.1", "localhost");
    register(&app, &m, &by_name, json!(["*"])).await;
    let session = new_session(&app, &m).await;
    api(
        &app,
        &m,
        "POST",
        &format!("/v1/checkout/sessions/{session}/expire"),
        None,
    )
    .await;
    let (_, events) = api(&app, &m, "GET", "/v1/events", None).await;
    let event = events["data"][0]["id"].as_str().unwrap().to_owned();
    let errors = wait_for("both deliveries tried", 10, async || {
        let (_, d) = api(
            &app,
            &m,
            "GET",
            &format!("/v1/events/{event}/deliveries"),
            None,
        )
        .await;
        let errors: Vec<Value> = d["data"]
            .as_array()?
            .iter()
            .filter_map(|x| x["attempts"].get(0).map(|a| a["error"].clone()))
            .collect();
        (errors.len() == 2).then_some(errors)
    })
    .await;
    assert_eq!(errors, [json!("blocked"), json!("blocked")]);
    assert!(
        receiver.delivered().is_empty(),
        "nothing reached the receiver"
    );
}

#[tokio::test]
async fn redelivery_is_rate_limited_per_merchant() {
    let app = spawn_app_with(Db::Sqlite, |_| {}).await;
    let m = merchant(&app, "Eager Lodge").await;
    let other = merchant(&app, "Calm Lodge").await;
    let mut events = Vec::new();
    for who in [&m, &other] {
        let session = new_session(&app, who).await;
        api(
            &app,
            who,
            "POST",
            &format!("/v1/checkout/sessions/{session}/expire"),
            None,
        )
        .await;
        let (_, list) = api(&app, who, "GET", "/v1/events", None).await;
        events.push(list["data"][0]["id"].as_str().unwrap().to_owned());
    }
    let path = |e: &str| format!("/v1/events/{e}/redeliver");
    for _ in 0..malipo::api::REDELIVERIES_PER_MINUTE {
        assert_eq!(api(&app, &m, "POST", &path(&events[0]), None).await.0, 200);
    }
    let res = app
        .client
        .post(format!("{}{}", app.addr, path(&events[0])))
        .bearer_auth(&m.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let wait: i64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another merchant is not held back by this one.
    assert_eq!(
        api(&app, &other, "POST", &path(&events[1]), None).await.0,
        200
    );
}

#[tokio::test]
async fn signing_secrets_are_sealed_at_rest_and_need_their_key() {
    let db = test_db(Db::Sqlite).await;
    let site = tempfile::tempdir().unwrap();
    let config = || test_config(&db.url, site.path().into());
    let receiver = Receiver::new(0);
    let (url, _server) = receiver.start().await;

    let first = Application::build(config()).await.unwrap();
    let store = first.state().store.clone();
    let addr = format!("http://127.0.0.1:{}", first.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(first.run_until(async move {
        let _ = stopped.await;
    }));
    let created = merchants::create(&store, "Sealed Lodge").await.unwrap();
    use secrecy::ExposeSecret;
    let key = created.test_secret_key.expose_secret().to_owned();
    let client = reqwest::Client::new();
    let endpoint: Value = client
        .post(format!("{addr}/v1/webhook_endpoints"))
        .bearer_auth(&key)
        .json(&json!({"url": url, "enabled_events": ["*"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    // The stopped server closed its pool: look with a connection of our own.
    let store = malipo::store::Store::connect(&secrecy::SecretString::from(db.url.clone()), 1)
        .await
        .unwrap();

    // Nothing in the database is readable without the key: not the signing secret, not
    // the per-install secrets (pay-form key, sandbox consumer secret).
    let stored: String = sqlx::query_scalar("SELECT secret FROM webhook_endpoints")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(stored.starts_with("sealed:v1:") && !stored.contains(&secret));
    let install: Vec<String> = sqlx::query_scalar("SELECT value FROM instance_secrets")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(install.len() >= 2);
    assert!(install.iter().all(|v| v.starts_with("sealed:v1:")));

    // Another key: start-up refuses, names both keys, and changes nothing.
    let mut wrong = config();
    wrong.master_key = secrecy::SecretString::from("22".repeat(32));
    let err = match Application::build(wrong).await {
        Ok(_) => panic!("started with the wrong master key"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("sealed with master key"), "{err}");
    let after: String = sqlx::query_scalar("SELECT secret FROM webhook_endpoints")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(after, stored);

    // A secret stored in clear (before sealing existed) is sealed at the next start and
    // still signs.
    sqlx::query("UPDATE webhook_endpoints SET secret = $1")
        .bind(&secret)
        .execute(store.pool())
        .await
        .unwrap();
    let second = Application::build(config()).await.unwrap();
    let addr = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until(std::future::pending()));
    let resealed: String = sqlx::query_scalar("SELECT secret FROM webhook_endpoints")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(resealed.starts_with("sealed:v1:") && !resealed.contains(&secret));
    let session: Value = client
        .post(format!("{addr}/v1/checkout/sessions"))
        .bearer_auth(&key)
        .json(&json!({"amount": 5000, "currency": "KES", "description": "Game drive", "reference": "GD-1",
            "success_url": "https://lodge.example/ok", "cancel_url": "https://lodge.example/no"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = session["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{session}"));
    client
        .post(format!("{addr}/v1/checkout/sessions/{sid}/expire"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let got = wait_for("the expiry event", 10, async || {
        receiver.received().into_iter().next()
    })
    .await;
    assert!(signed_by(&got.signature, &got.body, &secret));
    // A rotation keeps both secrets sealed.
    let rotated: Value = client
        .post(format!(
            "{addr}/v1/webhook_endpoints/{endpoint_id}/rotate_secret"
        ))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_secret = rotated["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{rotated}"));
    let (now, before): (String, String) =
        sqlx::query_as("SELECT secret, previous_secret FROM webhook_endpoints")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(now.starts_with("sealed:v1:") && !now.contains(new_secret));
    assert!(before.starts_with("sealed:v1:") && !before.contains(&secret));
}

/// A receiver that accepts connections and never answers; counts them.
async fn black_hole() -> (String, Arc<AtomicUsize>) {
    let (base, accepted) = crate::helpers::silent_peer(true).await;
    (format!("{base}/hooks"), accepted)
}

/// An open session of `merchant` in `mode`, expired at once: one event to deliver.
async fn expired_session(
    app: &TestApp,
    merchant: &malipo::domain::MerchantId,
    mode: malipo::domain::Mode,
) {
    use malipo::domain::{Money, money::Currency};
    let session = app
        .checkout
        .create(crate::helpers::open_session(
            merchant,
            mode,
            Money::new(150_000, Currency::Kes).unwrap(),
        ))
        .await
        .unwrap();
    app.store
        .expire_session(&session.id, malipo::time::now_ms(), "merchant")
        .await
        .unwrap();
}

#[tokio::test]
async fn one_merchants_dead_endpoints_never_delay_anyone_else() {
    use malipo::domain::Mode;
    // Posts that hang for 30 s, and no breaker: only the fair shares keep others moving.
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.webhooks.timeout_secs = 30;
        c.webhooks.breaker_failures = 1_000;
    })
    .await;
    let (dead, accepted) = black_hole().await;
    let a = merchants::create(&app.store, "Dead Endpoint Tours")
        .await
        .unwrap()
        .merchant
        .id;
    for _ in 0..10 {
        malipo::webhooks::create_endpoint(&app.store, &a, Mode::Test, &dead, &["*".into()], "", 1)
            .await
            .unwrap();
    }
    // Forty test-mode deliveries that will hang: more than every slot there is.
    for _ in 0..4 {
        expired_session(&app, &a, Mode::Test).await;
    }
    wait_for("the first hanging posts", 10, async || {
        (accepted.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;

    // Another merchant in test mode, and one in live mode (its endpoint stands for a
    // public one: the API only takes https on public hosts for live).
    let receiver = Receiver::new(0);
    let (url, _server) = receiver.start().await;
    let c = merchants::create(&app.store, "Punctual Ferries")
        .await
        .unwrap()
        .merchant
        .id;
    malipo::webhooks::create_endpoint(&app.store, &c, Mode::Test, &url, &["*".into()], "", 1)
        .await
        .unwrap();
    let b = merchants::create(&app.store, "Live Lodge")
        .await
        .unwrap()
        .merchant
        .id;
    let live = malipo::webhooks::create_endpoint(
        &app.store,
        &b,
        Mode::Live,
        "https://lodge.example/hooks",
        &["*".into()],
        "",
        1,
    )
    .await
    .unwrap();
    sqlx::query("UPDATE webhook_endpoints SET url = $1 WHERE id = $2")
        .bind(&url)
        .bind(live.id.as_str())
        .execute(app.store.pool())
        .await
        .unwrap();
    expired_session(&app, &c, Mode::Test).await;
    expired_session(&app, &b, Mode::Live).await;

    // Both arrive at once, not after the hanging posts time out.
    let got = wait_for("the other merchants' events", 5, async || {
        let d = receiver.delivered();
        (d.len() >= 2).then_some(d)
    })
    .await;
    let mut modes: Vec<bool> = got
        .iter()
        .map(|e| e["livemode"].as_bool().unwrap())
        .collect();
    modes.sort();
    assert_eq!(modes, [false, true]);
    // The dead endpoints hold no more than their merchant's share of the test slots.
    let in_flight = accepted.load(Ordering::SeqCst);
    assert!(in_flight <= 2, "{in_flight} hanging posts at once");
}

#[tokio::test]
async fn an_endpoint_that_keeps_timing_out_has_its_circuit_opened() {
    use malipo::domain::Mode;
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.webhooks.timeout_secs = 1;
        c.webhooks.breaker_failures = 3;
        c.webhooks.breaker_cooldown_secs = 60;
    })
    .await;
    let (dead, accepted) = black_hole().await;
    let a = merchants::create(&app.store, "Timeout Safaris")
        .await
        .unwrap()
        .merchant
        .id;
    malipo::webhooks::create_endpoint(&app.store, &a, Mode::Test, &dead, &["*".into()], "", 1)
        .await
        .unwrap();
    for _ in 0..6 {
        expired_session(&app, &a, Mode::Test).await;
    }
    // Retries come every 100–400 ms here: without a breaker the endpoint would see dozens
    // of posts in these seconds. It sees the ones that opened the circuit, then none.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let posts = accepted.load(Ordering::SeqCst);
    assert!((3..=4).contains(&posts), "{posts} posts to a dead endpoint");
    // Its deliveries wait out the cool-down, still pending.
    let now = malipo::time::now_ms();
    let waits: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, next_attempt_at FROM webhook_deliveries")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    assert_eq!(waits.len(), 6);
    assert!(waits.iter().all(|(s, _)| s == "pending"));
    assert!(
        waits.iter().filter(|(_, at)| *at > now + 45_000).count() >= 2,
        "the ones never tried are held for the cool-down: {waits:?}"
    );
    // New events while the circuit is open are held too, never posted.
    for _ in 0..3 {
        expired_session(&app, &a, Mode::Test).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), posts);
    let later: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at > $1",
    )
    .bind(now + 45_000)
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert!(later >= 5, "{later} held");
}
