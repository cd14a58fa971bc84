//! A travel booking's trip on the session: accepted, checked, shown on the page in the
//! shopper's language, and returned on the session and its payment.

use crate::helpers::{TestApp, spawn_app};
use malipo::merchants;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

fn body(travel: Value) -> Value {
    let mut b = json!({
        "amount": 40_000_000,
        "currency": "KES",
        "reference": "SAF-0417",
        "description": "Northern circuit safari, 5 days",
        "success_url": "https://safari.example/paid",
        "cancel_url": "https://safari.example/booking",
    });
    for (k, v) in travel.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

async fn post(app: &TestApp, key: &str, body: &Value) -> (u16, Value) {
    let res = app
        .client
        .post(format!("{}/v1/checkout/sessions", app.addr))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

/// `GET path` with the merchant's key, as JSON.
async fn get_json(app: &TestApp, key: &str, path: &str) -> Value {
    let res = app
        .client
        .get(format!("{}{path}", app.addr))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    res.json().await.unwrap()
}

/// `GET path` as a browser would, as text.
async fn get_text(app: &TestApp, path: &str) -> String {
    let res = app
        .client
        .get(format!("{}{path}", app.addr))
        .send()
        .await
        .unwrap();
    res.text().await.unwrap()
}

fn trip() -> Value {
    json!({
        "line_items": [
            {"description": "Flight Nairobi to Kilimanjaro", "date": "2026-12-20", "from": "NBO", "to": "JRO"},
            {"description": "4 nights, Ngorongoro Crater Lodge, full board", "date": "2026-12-20"},
            {"description": "Park fees"}
        ],
        "travelers": {"count": 2, "lead_name": "Amina Otieno"}
    })
}

#[tokio::test]
async fn the_trip_is_kept_shown_and_returned() {
    let app = spawn_app().await;
    let m = merchants::create(&app.store, "Kilima Safaris")
        .await
        .unwrap();
    let key = m.test_secret_key.expose_secret().to_owned();
    let (status, session) = post(&app, &key, &body(trip())).await;
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["line_items"], trip()["line_items"]);
    assert_eq!(session["travelers"], trip()["travelers"]);
    let id = session["id"].as_str().unwrap();

    // Read back as stored.
    let read: Value = get_json(&app, &key, &format!("/v1/checkout/sessions/{id}")).await;
    assert_eq!(read["line_items"], trip()["line_items"]);
    assert_eq!(read["travelers"]["lead_name"], "Amina Otieno");

    // The page lists it compactly, in the shopper's language.
    let page = app.page(id).await;
    assert!(page.contains(r#"aria-label="Your trip""#), "{page}");
    assert!(page.contains("Flight Nairobi to Kilimanjaro"));
    assert!(page.contains("NBO → JRO · 20 Dec 2026"), "{page}");
    assert!(page.contains("2 travellers · Amina Otieno"));
    let sw = get_text(&app, &format!("/pay/{id}?lang=sw")).await;
    assert!(sw.contains("Wasafiri 2 · Amina Otieno"), "{sw}");
    assert!(sw.contains("NBO → JRO · 20 Des 2026"), "{sw}");
    let fr = get_text(&app, &format!("/pay/{id}?lang=fr")).await;
    assert!(fr.contains("2 voyageurs · Amina Otieno"), "{fr}");
    assert!(fr.contains("20 déc. 2026"), "{fr}");

    // A session without a trip says so plainly.
    let (_, plain) = post(&app, &key, &body(json!({}))).await;
    assert_eq!(plain["line_items"], json!([]));
    assert_eq!(plain["travelers"], Value::Null);
    let page = app.page(plain["id"].as_str().unwrap()).await;
    assert!(!page.contains("data-trip"));
}

#[tokio::test]
async fn a_paid_trips_payment_carries_it_and_so_does_its_webhook_event() {
    let app = spawn_app().await;
    let m = merchants::create(&app.store, "Coast Bus").await.unwrap();
    let key = m.test_secret_key.expose_secret().to_owned();
    let travel = json!({
        "line_items": [{"description": "Seat 14B, Nairobi to Mombasa", "date": "2026-12-24", "from": "Nairobi", "to": "Mombasa"}],
        "travelers": {"count": 1}
    });
    let mut b = body(travel.clone());
    b["amount"] = json!(150_000);
    let (_, session) = post(&app, &key, &b).await;
    let id = session["id"].as_str().unwrap();
    crate::pages::pay(&app.store, id).await;
    let read: Value = get_json(&app, &key, &format!("/v1/checkout/sessions/{id}")).await;
    assert_eq!(
        read["payment"]["line_items"], travel["line_items"],
        "{read}"
    );
    assert_eq!(read["payment"]["travelers"], travel["travelers"]);
    // The events (what webhooks deliver): the payment's and the session's carry it.
    let events: Value = get_json(&app, &key, "/v1/events").await;
    let of = |kind: &str| {
        events["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {events}"))
            .clone()
    };
    assert_eq!(
        of("payment.succeeded")["data"]["object"]["line_items"],
        travel["line_items"]
    );
    assert_eq!(
        of("checkout.session.completed")["data"]["object"]["travelers"],
        travel["travelers"]
    );
}

#[tokio::test]
async fn a_bad_trip_is_refused_by_name_and_nothing_is_written() {
    let app = spawn_app().await;
    let m = merchants::create(&app.store, "Kilima Safaris")
        .await
        .unwrap();
    let key = m.test_secret_key.expose_secret().to_owned();
    let item = |extra: Value| {
        let mut i = json!({"description": "Flight"});
        for (k, v) in extra.as_object().unwrap() {
            i[k] = v.clone();
        }
        json!({"line_items": [i]})
    };
    let cases = [
        (
            json!({"line_items": "flight"}),
            "invalid_line_items",
            "line_items",
        ),
        (
            json!({"line_items": [{"date": "2026-12-20"}]}),
            "invalid_line_items",
            "line_items[0].description",
        ),
        (
            json!({"line_items": [{"description": ""}]}),
            "invalid_line_items",
            "line_items[0].description",
        ),
        (
            item(json!({"date": "2026-02-30"})),
            "invalid_line_items",
            "line_items[0].date",
        ),
        (
            item(json!({"date": "20/12/2026"})),
            "invalid_line_items",
            "line_items[0].date",
        ),
        (
            item(json!({"from": "NBO", "to": "x".repeat(61)})),
            "invalid_line_items",
            "line_items[0].to",
        ),
        (
            item(json!({"description": "Lodge\u{202E}gnikoob"})),
            "invalid_line_items",
            "line_items[0].description",
        ),
        (
            item(json!({"price": 100})),
            "unknown_parameter",
            "line_items[0].price",
        ),
        (
            json!({"line_items": vec![json!({"description": "x"}); 21]}),
            "invalid_line_items",
            "line_items",
        ),
        (
            json!({"travelers": {"count": 0}}),
            "invalid_travelers",
            "travelers.count",
        ),
        (
            json!({"travelers": {"count": 2.5}}),
            "invalid_travelers",
            "travelers.count",
        ),
        (
            json!({"travelers": {"count": 2, "lead_name": 7}}),
            "invalid_travelers",
            "travelers.lead_name",
        ),
        (
            json!({"travelers": {"count": 2, "passport": "A1"}}),
            "unknown_parameter",
            "travelers.passport",
        ),
        (json!({"travelers": [2]}), "invalid_travelers", "travelers"),
    ];
    for (travel, code, param) in cases {
        let (status, v) = post(&app, &key, &body(travel.clone())).await;
        assert_eq!(status, 400, "{travel}: {v}");
        assert_eq!(v["error"]["code"], code, "{travel}: {v}");
        assert_eq!(v["error"]["param"], param, "{travel}: {v}");
    }
    assert_eq!(
        app.store
            .count_sessions(&m.merchant.id, malipo::domain::Mode::Test)
            .await
            .unwrap(),
        0,
        "nothing was written"
    );
}

#[tokio::test]
async fn a_paid_session_has_a_receipt_in_the_shoppers_language() {
    let app = spawn_app().await;
    let m = merchants::create(&app.store, "Kilima Safaris")
        .await
        .unwrap();
    let key = m.test_secret_key.expose_secret().to_owned();
    let mut b = body(trip());
    b["amount"] = json!(150_000);
    let (_, session) = post(&app, &key, &b).await;
    let id = session["id"].as_str().unwrap();
    let receipt = |lang: &'static str| {
        let url = format!("{}/pay/{id}/receipt?lang={lang}", app.addr);
        let client = app.client.clone();
        async move {
            let res = client.get(url).send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    // Not paid yet: no receipt.
    let (status, _) = receipt("en").await;
    assert_eq!(status, 404);

    crate::pages::pay(&app.store, id).await;
    let (status, html) = receipt("en").await;
    assert_eq!(status, 200, "{html}");
    for shown in [
        "Payment receipt",
        "Kilima Safaris",
        "KES 1,500",
        "M-PESA",
        "NLJ7RT61SV",
        "SAF-0417",
        "Flight Nairobi to Kilimanjaro",
        "2 travellers · Amina Otieno",
        "EAT",
        "TEST MODE",
    ] {
        assert!(html.contains(shown), "{shown} missing: {html}");
    }
    let (_, sw) = receipt("sw").await;
    assert!(sw.contains(r#"<html lang="sw""#), "{sw}");
    for shown in [
        "Risiti ya malipo",
        "Nambari ya muamala",
        "Umemlipa",
        "Wasafiri 2",
    ] {
        assert!(sw.contains(shown), "{shown} missing: {sw}");
    }
    // No script of its own: a receipt prints as it is.
    assert!(!sw.contains("<leptos-island"), "{sw}");
}

#[tokio::test]
async fn the_receipt_is_mailed_once_in_the_language_the_shopper_paid_in() {
    let app = spawn_app().await;
    let m = merchants::create(&app.store, "Kilima Safaris")
        .await
        .unwrap();
    let key = m.test_secret_key.expose_secret().to_owned();
    let mut b = body(trip());
    b["amount"] = json!(150_000);
    b["customer"] = json!({"email": "amina@example.com"});
    let (_, session) = post(&app, &key, &b).await;
    let id = session["id"].as_str().unwrap();
    // The shopper uses the page in Swahili (a bad number: nothing starts, the
    // language is kept).
    let res = app
        .post_pay_form(id, "", &[("phone", "12"), ("lang", "sw")])
        .await;
    assert_eq!(res.status(), 303);
    crate::pages::pay(&app.store, id).await;
    // The server's own mailer sends it (the sandbox mailbox, as no SMTP is set).
    let mut mail = None;
    for _ in 0..100 {
        let box_ = app.store.sandbox_mail(10).await.unwrap();
        if let Some(m) = box_.into_iter().find(|m| m.to == "amina@example.com") {
            mail = Some(m);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mail = mail.expect("the receipt was mailed");
    assert_eq!(
        mail.subject,
        "[TEST] Risiti: KES 1,500 zimelipwa kwa Kilima Safaris"
    );
    for line in [
        "Risiti ya malipo",
        "Umemlipa: Kilima Safaris",
        "Nambari ya muamala: NLJ7RT61SV",
        "- Flight Nairobi to Kilimanjaro · NBO → JRO · 20 Des 2026",
        "- Wasafiri 2 · Amina Otieno",
        &format!("/pay/{id}/receipt"),
    ] {
        assert!(mail.body.contains(line), "{line} missing: {}", mail.body);
    }
    // Once: another pass finds nothing due.
    let mailer = malipo::mail::Mailer::Sandbox(app.store.clone());
    let again = malipo::receipts::mail_once(&app.store, &app.checkout, &mailer, &app.addr)
        .await
        .unwrap();
    assert_eq!(again, 0);
    let count = app
        .store
        .sandbox_mail(50)
        .await
        .unwrap()
        .iter()
        .filter(|m| m.to == "amina@example.com")
        .count();
    assert_eq!(count, 1);
}
