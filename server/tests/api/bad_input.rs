//! The bad-input corpus: malformed, hostile and oversized inputs to the merchant API and
//! to the operator callback route. Each must get a clear 4xx (never a 5xx) and leave
//! nothing written half-way.

use crate::helpers::{TestApp, attempt_with_token, seed_session, spawn_app};
use malipo::{domain::SessionId, store::AttemptStatus};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// Counts of every table a request could write to.
async fn footprint(app: &TestApp) -> Vec<i64> {
    let mut out = Vec::new();
    for table in [
        "checkout_sessions",
        "payment_attempts",
        "payment_events",
        "events",
        "webhook_deliveries",
        "idempotency_keys",
    ] {
        let n: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(app.store.pool())
            .await
            .map(|r| sqlx::Row::get(&r, "n"))
            .unwrap();
        out.push(n);
    }
    out
}

#[tokio::test]
async fn hostile_session_requests_get_a_4xx_and_write_nothing() {
    let app = spawn_app().await;
    let created = malipo::merchants::create(&app.store, "Corpus Lodge")
        .await
        .unwrap();
    let key = created.test_secret_key.expose_secret().to_owned();
    let base = json!({
        "amount": 150000, "currency": "KES", "reference": "C-1", "description": "Safari",
        "success_url": "https://lodge.example/ok", "cancel_url": "https://lodge.example/no",
    });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b.to_string()
    };
    let mut corpus: Vec<String> = vec![
        String::new(),
        "null".into(),
        "[]".into(),
        "\"text\"".into(),
        "{".into(),
        "{\"amount\": 1".into(),
        "\u{feff}{}".into(),
        String::from_utf8_lossy(b"{\"amount\":\xff}").into_owned(),
    ];
    for amount in [
        json!(0),
        json!(-1),
        json!(1.5),
        json!("150000"),
        json!(1e30),
        json!(i64::MAX),
        json!(true),
        json!(null),
        json!([150000]),
        json!({"value": 1}),
    ] {
        corpus.push(with("amount", amount));
    }
    for currency in [
        json!("KESS"),
        json!(""),
        json!(404),
        json!("XXX"),
        json!(null),
    ] {
        corpus.push(with("currency", currency));
    }
    for (field, value) in [
        ("reference", json!("R".repeat(65))),
        ("reference", json!("")),
        ("reference", json!("MARA\u{202e}1")),
        ("description", json!("d".repeat(201))),
        ("description", json!("line\u{0}break")),
        ("success_url", json!("javascript:alert(1)")),
        ("success_url", json!("//evil.example")),
        (
            "cancel_url",
            json!(format!("https://x.example/{}", "p".repeat(3000))),
        ),
        ("customer", json!({"phone": "not a phone"})),
        ("customer", json!({"phone": "0".repeat(40)})),
        ("customer", json!({"email": "nobody"})),
        ("customer", json!("0712345678")),
        ("metadata", json!({"k": 1})),
        (
            "metadata",
            json!(
                (0..21)
                    .map(|i| (format!("k{i}"), json!("v")))
                    .collect::<serde_json::Map<_, _>>()
            ),
        ),
        ("expires_in", json!(59)),
        ("expires_in", json!(86_401)),
        ("expires_in", json!("900")),
        ("unexpected", json!(1)),
    ] {
        corpus.push(with(field, value));
    }
    // Over the 64 KiB body limit.
    corpus.push(with("description", json!("x".repeat(70_000))));

    let before = footprint(&app).await;
    for (i, body) in corpus.iter().enumerate() {
        let res = app
            .client
            .post(format!("{}/v1/checkout/sessions", app.addr))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .header("idempotency-key", format!("corpus-{i}"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let answer: Value = res.json().await.unwrap_or(Value::Null);
        assert!(
            (400..500).contains(&status),
            "{status} for {}",
            body.chars().take(120).collect::<String>()
        );
        assert!(
            answer["error"]["code"]
                .as_str()
                .is_some_and(|c| !c.is_empty()),
            "a stable code for {}: {answer}",
            body.chars().take(120).collect::<String>()
        );
    }
    // Refusals are replayed answers at most (idempotency keys of 4xx are kept, as Stripe
    // does), never a session, attempt, event or delivery.
    let after = footprint(&app).await;
    assert_eq!(
        before[..5],
        after[..5],
        "nothing written but the idempotency records"
    );
}

#[tokio::test]
async fn hostile_callback_bodies_never_settle_anything_or_fail_loudly() {
    let app = spawn_app().await;
    let (_, session) = seed_session(&app, "Corpus Camp", 900).await;
    let sid = SessionId::parse(&session).unwrap();
    let attempt =
        attempt_with_token(&app.store, &sid, "corpus", None, malipo::time::now_ms()).await;
    app.store
        .set_operator_request_id(&attempt.id, "ws_CO_corpus", 1)
        .await
        .unwrap();
    let cb = |result: Value, items: Value| {
        json!({"Body": {"stkCallback": {"MerchantRequestID": "1", "CheckoutRequestID": "ws_CO_corpus",
            "ResultCode": result, "ResultDesc": "x", "CallbackMetadata": {"Item": items}}}})
        .to_string()
    };
    let item = |amount: Value, receipt: Value, phone: Value| {
        json!([{"Name": "Amount", "Value": amount}, {"Name": "MpesaReceiptNumber", "Value": receipt},
               {"Name": "PhoneNumber", "Value": phone}])
    };
    let corpus: Vec<String> = vec![
        String::new(),
        "{".into(),
        "[]".into(),
        "{\"Body\": null}".into(),
        "{\"Body\": {\"stkCallback\": {}}}".into(),
        String::from_utf8_lossy(b"{\"Body\":\xfe}").into_owned(),
        cb(json!({"nested": 0}), json!([])),
        cb(json!("0"), json!("not a list")),
        // "Success" with the wrong amount, phone, or no receipt: not believed.
        cb(
            json!(0),
            item(json!(1), json!("QFAKE00001"), json!(254712345678_i64)),
        ),
        cb(
            json!(0),
            item(json!(-1500), json!("QFAKE00002"), json!(254712345678_i64)),
        ),
        cb(
            json!(0),
            item(json!("1500"), json!("QFAKE00003"), json!("254799999999")),
        ),
        cb(
            json!(0),
            item(json!(1500.0), json!(null), json!(254712345678_i64)),
        ),
        cb(
            json!(0),
            item(
                json!(1e308),
                json!("Q".repeat(10_000)),
                json!(254712345678_i64),
            ),
        ),
        cb(
            json!(0),
            item(json!(1500.0), json!("QFAKE00004"), json!(1e20)),
        ),
        cb(json!(0), json!([{"Name": "Amount"}])),
        // A code nobody knows: kept open, not failed.
        cb(json!(987_654), json!([])),
        cb(json!("drop table"), json!([])),
        // Over the 64 KiB callback limit.
        format!("{{\"pad\":\"{}\"}}", "p".repeat(70_000)),
    ];
    let url = format!("{}/callbacks/mpesa/{}/corpus", app.addr, attempt.id);
    for body in &corpus {
        let res = app
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert!(
            status == 200 || (400..500).contains(&status),
            "{status} for {}",
            body.chars().take(100).collect::<String>()
        );
        let a = app.store.attempt(&attempt.id).await.unwrap().unwrap();
        assert_eq!(
            a.status,
            AttemptStatus::Pending,
            "unchanged by {}",
            body.chars().take(100).collect::<String>()
        );
    }
    let s = app.store.session(&sid).await.unwrap().unwrap();
    assert_eq!(s.payment_status, malipo::store::PaymentStatus::Unpaid);
    // Every body under the limit was kept as evidence; the oversized one was not read.
    assert_eq!(
        app.store.callbacks(&attempt.id).await.unwrap().len(),
        corpus.len() - 1
    );
}
