//! Priced in one currency, paid in another: the page shows each rail's quote, the push
//! goes out at the quote the shopper saw (never at one they did not), and the merchant
//! reads both amounts, the rate and its source on the payment, the session and the
//! webhooks.

use crate::helpers::{Db, TestApp, accept, prompts, spawn_app, spawn_app_with, wait_for};
use malipo::{
    domain::{Money, SessionId, money::Currency},
    fx::{Decimal, Quote, Rate, RateSource},
    merchants,
};
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

/// A merchant, its test key, and a USD 350 session of theirs (`methods`: its
/// `payment_method_types`).
async fn usd_session(app: &TestApp, methods: Value) -> (String, String, SessionId) {
    let created = merchants::create(&app.store, "Serengeti Balloons")
        .await
        .unwrap();
    let key = created.test_secret_key.expose_secret().to_owned();
    let (status, s) = call(
        app,
        &key,
        "/v1/checkout/sessions",
        Some(
            json!({"amount": 35_000, "currency": "USD", "reference": "BAL-350",
            "description": "Balloon safari", "success_url": "https://balloons.example/ok",
            "cancel_url": "https://balloons.example/no", "payment_method_types": methods}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_owned();
    let sid = SessionId::parse(&id).unwrap();
    (key, id, sid)
}

/// The `quotes` field of the page's pay form.
fn quotes_field(page: &str) -> String {
    let at = page
        .find("name=\"quotes\" value=\"")
        .expect("the form carries its quotes");
    let rest = &page[at + "name=\"quotes\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_dollar_price_is_paid_with_mpesa_in_shillings_at_the_quote_shown() {
    let app = spawn_app().await;
    let (key, id, sid) = usd_session(&app, Value::Null).await;
    let page = app.page(&id).await;
    // The sandbox's fixed rate: 129.00 KES per USD; whole shillings on M-PESA.
    assert!(
        page.contains("USD 350 = KES 45,150 at 129.00 KES per USD, valid until "),
        "{page}"
    );
    assert!(
        page.contains("M-PESA<!> · KES 45,150") || page.contains("M-PESA · KES 45,150"),
        "the picker shows it: {page}"
    );
    // Tanzania's wallets at 2,450 TZS per USD.
    assert!(page.contains("USD 350 = TZS 857,500 at 2450.00 TZS per USD"));
    let quotes = quotes_field(&page);
    assert!(
        quotes.contains("mpesa:KES~4515000~USD~KES~129.00~sandbox~"),
        "{quotes}"
    );

    let res = app
        .post_pay_form(
            &id,
            "",
            &[
                ("phone", "0712 345 678"),
                ("rail", "mpesa"),
                ("quotes", &quotes),
            ],
        )
        .await;
    assert_eq!(location(&res), format!("/pay/{id}"));
    let attempt = app
        .store
        .pending_attempt(&sid)
        .await
        .unwrap()
        .expect("pushed");
    assert_eq!(
        attempt.amount,
        Money::new(4_515_000, Currency::Kes).unwrap()
    );
    let quote = attempt.quote.clone().expect("stored on the attempt");
    assert_eq!(quote.source, Money::new(35_000, Currency::Usd).unwrap());
    assert_eq!(quote.rate_source, RateSource::Sandbox);
    // The handset is asked for the shillings.
    let prompt = prompts(&app.client, &app.addr, "254712345678").await;
    assert_eq!(prompt.len(), 1);
    assert!(
        prompt[0].to_string().contains("45,150") || prompt[0].to_string().contains("45150"),
        "{prompt:?}"
    );
    accept(
        &app.client,
        &app.addr,
        "254712345678",
        prompt[0]["id"].as_str().unwrap(),
    )
    .await;
    let paid = wait_for("the session paid", 20, async || {
        let (_, s) = call(&app, &key, &format!("/v1/checkout/sessions/{id}"), None).await;
        (s["payment_status"] == "paid").then_some(s)
    })
    .await;
    // The merchant reads the price, what was charged, and the quote.
    assert_eq!(
        (paid["amount"].as_i64(), paid["currency"].as_str()),
        (Some(35_000), Some("USD"))
    );
    let payment = &paid["payment"];
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["rail"], "mpesa");
    assert_eq!(
        (payment["amount"].as_i64(), payment["currency"].as_str()),
        (Some(4_515_000), Some("KES"))
    );
    let q = &payment["quote"];
    assert_eq!(q["object"], "quote");
    assert_eq!(
        (q["amount"].as_i64(), q["currency"].as_str()),
        (Some(35_000), Some("USD"))
    );
    assert_eq!(
        (
            q["converted_amount"].as_i64(),
            q["converted_currency"].as_str()
        ),
        (Some(4_515_000), Some("KES"))
    );
    assert_eq!(
        (q["rate"].as_str(), q["rate_pair"].as_str()),
        (Some("129.00"), Some("USD/KES"))
    );
    assert_eq!(q["rate_source"], "sandbox");
    assert_eq!(
        q["expires_at"].as_i64().unwrap() - q["created"].as_i64().unwrap(),
        900
    );
    // And so do the webhooks' events.
    for kind in ["payment.succeeded", "checkout.session.completed"] {
        let (_, events) = call(&app, &key, &format!("/v1/events?type={kind}"), None).await;
        let object = &events["data"][0]["data"]["object"];
        let quote = if kind == "payment.succeeded" {
            &object["quote"]
        } else {
            &object["payment"]["quote"]
        };
        assert_eq!(quote["converted_amount"], 4_515_000, "{kind}: {events}");
        assert_eq!(quote["rate"], "129.00", "{kind}");
    }
}

#[tokio::test]
async fn a_push_never_goes_out_at_a_rate_the_shopper_did_not_see() {
    let app = spawn_app().await;
    let (_, id, sid) = usd_session(&app, json!(["mpesa"])).await;
    let merchant = app.store.session(&sid).await.unwrap().unwrap().merchant_id;
    let key = app.store.instance_secret("fx_quote_key").await.unwrap();
    let key = key.expose_secret().as_bytes();
    let price = Money::new(35_000, Currency::Usd).unwrap();
    let now = malipo::time::now_ms();
    let at = |rate: &str, created: i64| {
        let rate = Rate {
            base: Currency::Usd,
            quote: Currency::Kes,
            value: Decimal::parse(rate).unwrap(),
        };
        Quote::make(
            price,
            Currency::Kes,
            100,
            rate,
            RateSource::Sandbox,
            created,
            900_000,
        )
        .unwrap()
    };
    let pay = async |quotes: &str| {
        let res = app
            .post_pay_form(&id, "", &[("phone", "0712 345 678"), ("quotes", quotes)])
            .await;
        location(&res)
    };
    let changed = format!("/pay/{id}?error=quote_changed");
    // No quote, a forged one (a better rate, signed with the wrong key), one for another
    // session: nothing is sent.
    assert_eq!(pay("").await, changed);
    let forged = at("100.00", now).token(b"not the key", sid.as_str(), "mpesa");
    assert_eq!(pay(&format!("mpesa:{forged}")).await, changed);
    let elsewhere = at("129.00", now).token(key, "cs_other", "mpesa");
    assert_eq!(pay(&format!("mpesa:{elsewhere}")).await, changed);
    // Expired, and the rate has moved since (the merchant set 130): not taken unseen.
    app.store
        .set_rate(
            &merchant,
            malipo::domain::Mode::Test,
            &Rate {
                base: Currency::Usd,
                quote: Currency::Kes,
                value: Decimal::parse("130").unwrap(),
            },
            now,
        )
        .await
        .unwrap();
    let stale = at("129.00", now - 3_600_000).token(key, sid.as_str(), "mpesa");
    assert_eq!(pay(&format!("mpesa:{stale}")).await, changed);
    assert!(app.store.pending_attempt(&sid).await.unwrap().is_none());
    assert!(
        prompts(&app.client, &app.addr, "254712345678")
            .await
            .is_empty()
    );
    // The page now shows the new quote, from the merchant's table, and says why.
    let page = app
        .client
        .get(format!("{}{changed}", app.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("USD 350 = KES 45,500 at 130 KES per USD"),
        "{page}"
    );
    assert!(
        page.contains("The exchange rate for M-PESA changed"),
        "{page}"
    );
    // A quote still valid is a promise: kept, though the rate has moved.
    let seen = at("129.00", now);
    let token = seen.token(key, sid.as_str(), "mpesa");
    assert_eq!(
        pay(&format!("airtel:x,mpesa:{token}")).await,
        format!("/pay/{id}")
    );
    let attempt = app
        .store
        .pending_attempt(&sid)
        .await
        .unwrap()
        .expect("pushed");
    assert_eq!(
        attempt.amount,
        Money::new(4_515_000, Currency::Kes).unwrap()
    );
    assert_eq!(attempt.quote, Some(seen));
}

#[tokio::test]
async fn an_expired_quote_on_the_same_terms_is_made_again() {
    let app = spawn_app().await;
    let (_, id, sid) = usd_session(&app, json!(["mpesa"])).await;
    let key = app.store.instance_secret("fx_quote_key").await.unwrap();
    let now = malipo::time::now_ms();
    let rate = Rate {
        base: Currency::Usd,
        quote: Currency::Kes,
        value: Decimal::parse("129.00").unwrap(),
    };
    let price = Money::new(35_000, Currency::Usd).unwrap();
    let old = Quote::make(
        price,
        Currency::Kes,
        100,
        rate,
        RateSource::Sandbox,
        now - 3_600_000,
        900_000,
    )
    .unwrap();
    let token = old.token(key.expose_secret().as_bytes(), sid.as_str(), "mpesa");
    let res = app
        .post_pay_form(
            &id,
            "",
            &[
                ("phone", "0712 345 678"),
                ("quotes", &format!("mpesa:{token}")),
            ],
        )
        .await;
    assert_eq!(location(&res), format!("/pay/{id}"));
    let attempt = app
        .store
        .pending_attempt(&sid)
        .await
        .unwrap()
        .expect("pushed");
    let quote = attempt.quote.expect("a quote");
    assert!(quote.same_terms(&old));
    assert!(quote.expires_at > now, "made again, valid: {quote:?}");
}

#[tokio::test]
async fn a_merchant_can_switch_conversion_off() {
    let app = spawn_app().await;
    let (key, id, _) = usd_session(&app, Value::Null).await;
    let (status, a) = call(&app, &key, "/v1/account", None).await;
    assert_eq!((status, &a["currency_conversion"]), (200, &json!(true)));
    let (status, e) = call(
        &app,
        &key,
        "/v1/account",
        Some(json!({"currency_conversion": "no"})),
    )
    .await;
    assert_eq!(
        (
            status,
            e["error"]["code"].as_str(),
            e["error"]["param"].as_str()
        ),
        (400, Some("parameter_invalid"), Some("currency_conversion"))
    );
    let (status, a) = call(
        &app,
        &key,
        "/v1/account",
        Some(json!({"currency_conversion": false})),
    )
    .await;
    assert_eq!(
        (status, &a["currency_conversion"]),
        (200, &json!(false)),
        "{a}"
    );
    // No rail takes dollars as they are: an open session offers nothing now, and a new
    // one for M-PESA is refused.
    let page = app.page(&id).await;
    assert!(!page.contains("name=\"quotes\""), "{page}");
    assert!(crate::helpers::shown(&page, "unpayable"), "{page}");
    let (status, e) = call(
        &app,
        &key,
        "/v1/checkout/sessions",
        Some(
            json!({"amount": 35_000, "currency": "USD", "reference": "B", "description": "B",
            "success_url": "https://b.example/ok", "cancel_url": "https://b.example/no",
            "payment_method_types": ["mpesa"]}),
        ),
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (422, Some("payment_method_unavailable")),
        "{e}"
    );
    // A shilling price is untouched by it.
    let (status, _) = call(
        &app,
        &key,
        "/v1/checkout/sessions",
        Some(
            json!({"amount": 150_000, "currency": "KES", "reference": "K", "description": "K",
            "success_url": "https://b.example/ok", "cancel_url": "https://b.example/no"}),
        ),
    )
    .await;
    assert_eq!(status, 201);
}

/// A rates provider on its own port: `rates`, or a 503 when `None`; counts requests.
async fn provider(
    rates: Option<Value>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = axum::Router::new().route(
        "/latest",
        axum::routing::get(
            move |q: axum::extract::Query<std::collections::HashMap<String, String>>| {
                counter.fetch_add(1, Ordering::SeqCst);
                let rates = rates.clone();
                async move {
                    match rates {
                        Some(r) if q.get("base").map(String::as_str) == Some("USD") => (
                            axum::http::StatusCode::OK,
                            axum::Json(json!({"base": "USD", "rates": r})),
                        ),
                        Some(_) => (
                            axum::http::StatusCode::OK,
                            axum::Json(json!({"base": q.get("base"), "rates": {}})),
                        ),
                        None => (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            axum::Json(json!({})),
                        ),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}/latest?app_id=secret123"), hits)
}

#[tokio::test]
async fn rates_come_from_the_configured_provider_cached_and_never_guessed() {
    use std::sync::atomic::Ordering;
    let (url, hits) = provider(Some(json!({"KES": 131.5, "TZS": "2500"}))).await;
    let app = spawn_app_with(Db::Sqlite, |c| c.fx.test_provider_url = url).await;
    let (_, id, _) = usd_session(&app, Value::Null).await;
    let page = app.page(&id).await;
    assert!(
        page.contains("USD 350 = KES 46,025 at 131.5 KES per USD"),
        "{page}"
    );
    assert!(
        page.contains("USD 350 = TZS 875,000 at 2500 TZS per USD"),
        "{page}"
    );
    assert!(quotes_field(&page).contains("~provider~"));
    let asked = hits.load(Ordering::SeqCst);
    app.page(&id).await;
    assert_eq!(hits.load(Ordering::SeqCst), asked, "answers are cached");

    // A provider that is down: no quote, so nothing can take a dollar price; and it is
    // not asked again on every request.
    let (url, hits) = provider(None).await;
    let app = spawn_app_with(Db::Sqlite, |c| c.fx.test_provider_url = url).await;
    let created = merchants::create(&app.store, "Down Lodge").await.unwrap();
    let key = created.test_secret_key.expose_secret().to_owned();
    for _ in 0..3 {
        let (status, e) = call(
            &app,
            &key,
            "/v1/checkout/sessions",
            Some(
                json!({"amount": 35_000, "currency": "USD", "reference": "D",
                "description": "D", "success_url": "https://d.example/ok",
                "cancel_url": "https://d.example/no", "payment_method_types": ["mpesa", "tigo"]}),
            ),
        )
        .await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (422, Some("payment_method_unavailable")),
            "{e}"
        );
    }
    // Asked once per base it tried (USD, then KES and TZS for the rate read backwards),
    // not once per request.
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}
