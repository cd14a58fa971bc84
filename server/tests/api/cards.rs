//! Paying by card through the sandbox card gateway (an MPGS-style processor on its own
//! origin), driven over HTTP as the shopper's browser would: the card frames' requests go
//! to the gateway, never to Malipo; Malipo gets the processor's session id only. With 3-D
//! Secure (frictionless, challenge passed or failed), declines, and the hosted page for
//! shoppers without JavaScript — including one who never comes back.

use crate::helpers::{TestApp, spawn_app, wait_for};
use malipo::{
    connectors::card::Mpgs,
    domain::{Money, SessionId, money::Currency},
    merchants,
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// A merchant's key and a KES 1,500 session of theirs.
async fn kes_session(app: &TestApp) -> (String, String, SessionId) {
    let created = merchants::create(&app.store, "Amboseli Cards")
        .await
        .unwrap();
    let key = created.test_secret_key.expose_secret().to_owned();
    let s: Value = app
        .client
        .post(format!("{}/v1/checkout/sessions", app.addr))
        .bearer_auth(&key)
        .json(
            &json!({"amount": 150_000, "currency": "KES", "reference": "CARD-1",
            "description": "Game drive", "success_url": "https://lodge.example/ok",
            "cancel_url": "https://lodge.example/no"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = s["id"].as_str().unwrap().to_owned();
    (key, id.clone(), SessionId::parse(&id).unwrap())
}

fn gateway(app: &TestApp) -> String {
    app.card_url.clone().expect("the sandbox card gateway runs")
}

/// What the page's card script does: a processor session from Malipo, then each field
/// typed into its frame and sent to the gateway by the frame, then the session completed.
async fn fill_frames(app: &TestApp, id: &str, number: &str, expiry: &str, cvv: &str) -> String {
    let sid = SessionId::parse(id).unwrap();
    let res = app
        .client
        .post(format!("{}/pay/{id}/card/session", app.addr))
        .json(&json!({"form_token": app.checkout.form_token(&sid)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let session = res.json::<Value>().await.unwrap()["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let gw = gateway(app);
    for (field, value) in [
        ("number", number),
        ("expiry", expiry),
        ("securityCode", cvv),
    ] {
        let res = app
            .client
            .post(format!("{gw}/form/session/{session}/field"))
            .json(&json!({"field": field, "value": value}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "{field}");
    }
    let done: Value = app
        .client
        .post(format!("{gw}/form/session/{session}/complete"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "ok", "{done}");
    session
}

/// Posts the card form as the page's script does (with the processor's session).
async fn pay(app: &TestApp, id: &str, card_session: Option<&str>) -> reqwest::Response {
    let sid = SessionId::parse(id).unwrap();
    let token = app.checkout.form_token(&sid);
    let mut form = vec![("form_token", token.as_str())];
    if let Some(s) = card_session {
        form.push(("card_session", s));
    }
    app.client
        .post(format!("{}/pay/{id}/card", app.addr))
        .form(&form)
        .send()
        .await
        .unwrap()
}

async fn session_object(app: &TestApp, key: &str, id: &str) -> Value {
    app.client
        .get(format!("{}/v1/checkout/sessions/{id}", app.addr))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn form_action_and_fields(html: &str) -> (String, Vec<(String, String)>) {
    let action = html
        .split("action=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a form")
        .replace("&amp;", "&");
    let fields = html
        .split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|r| {
            let name = r.split('"').next().unwrap().to_owned();
            let value = r
                .split("value=\"")
                .nth(1)
                .and_then(|v| v.split('"').next())
                .unwrap()
                .to_owned();
            (name, value)
        })
        .collect();
    (action, fields)
}

#[tokio::test]
async fn a_card_with_frictionless_3ds_pays_and_malipo_sees_only_brand_and_last4() {
    let app = spawn_app().await;
    let (key, id, _) = kes_session(&app).await;
    // The page offers the card with the processor's script and Malipo's own, with SRI.
    let page = app.page(&id).await;
    assert!(page.contains("class=\"card-form\""), "{page}");
    assert!(page.contains(&format!(
        "{}/form/version/73/merchant/TESTMALIPO/session.js",
        gateway(&app)
    )));
    assert!(
        page.contains("src=\"/card.js\" integrity=\"sha384-"),
        "{page}"
    );
    let card_session = fill_frames(&app, &id, "4242 4242 4242 4242", "12/30", "123").await;
    let res = pay(&app, &id, Some(&card_session)).await;
    assert_eq!(res.headers()["location"], format!("/pay/{id}"));
    let s = session_object(&app, &key, &id).await;
    assert_eq!(s["payment_status"], "paid", "{s}");
    assert_eq!(s["payment"]["rail"], "card");
    assert_eq!(
        s["payment"]["card"],
        json!({"brand": "VISA", "last4": "4242"})
    );
    assert_eq!(s["payment"]["amount"], 150_000);
    // The page shows the brand and last four digits, nothing more.
    let page = app.page(&id).await;
    assert!(page.contains("Visa ···· 4242"), "{page}");
    assert!(!page.contains("424242"));
    // Refunded in part: a REFUND on the order at the processor.
    let refund: Value = app
        .client
        .post(format!("{}/v1/refunds", app.addr))
        .bearer_auth(&key)
        .header("idempotency-key", "card-refund-1")
        .json(&json!({"payment": s["payment"]["id"], "amount": 50_000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refund["status"], "succeeded", "{refund}");
    assert_eq!(
        (refund["amount"].clone(), refund["currency"].clone()),
        (json!(50_000), json!("KES"))
    );
}

#[tokio::test]
async fn a_3ds_challenge_passed_pays_and_failed_does_not() {
    let app = spawn_app().await;
    for (code, paid) in [("1234", true), ("0000", false)] {
        let (key, id, _) = kes_session(&app).await;
        let card_session = fill_frames(&app, &id, "4000000000003220", "12/30", "123").await;
        let res = pay(&app, &id, Some(&card_session)).await;
        assert_eq!(res.status(), 200);
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains(&format!("form-action {}", gateway(&app))),
            "{csp}"
        );
        let html = res.text().await.unwrap();
        let (acs, fields) = form_action_and_fields(&html);
        assert_eq!(acs, format!("{}/acs/challenge", gateway(&app)));
        // The issuer's page, at the gateway's origin.
        let challenge = app
            .client
            .post(&acs)
            .form(&fields)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(challenge.contains("Verification code"), "{challenge}");
        let answer_url = format!(
            "{}{}",
            gateway(&app),
            challenge
                .split("action=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        );
        let back = app
            .client
            .post(&answer_url)
            .form(&[("code", code), ("action", "verify")])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let (return_url, fields) = form_action_and_fields(&back);
        assert!(
            return_url.starts_with(&format!("{}/pay/{id}/card/return/", app.addr)),
            "{return_url}"
        );
        let res = app
            .client
            .post(&return_url)
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["location"], format!("/pay/{id}"));
        let s = session_object(&app, &key, &id).await;
        if paid {
            assert_eq!(s["payment_status"], "paid", "{s}");
        } else {
            assert_eq!(s["payment_status"], "unpaid");
            let page = app.page(&id).await;
            assert!(
                page.contains("data-reason=\"authentication_failed\""),
                "{page}"
            );
            assert!(page.contains("Your bank could not confirm it was you"));
        }
        // The return URL is a capability: another token opens nothing.
        let forged = return_url.rsplit_once('/').unwrap().0.to_owned() + "/not-the-token";
        assert_eq!(app.client.get(&forged).send().await.unwrap().status(), 404);
    }
}

#[tokio::test]
async fn declines_read_as_the_bank_said() {
    let app = spawn_app().await;
    for (number, expiry, reason) in [
        ("4000000000000002", "12/30", "card_declined"),
        ("4000000000009995", "12/30", "insufficient_funds"),
        // MPGS's test table: 05/39 declines.
        ("5111111111111118", "05/39", "card_declined"),
    ] {
        let (key, id, _) = kes_session(&app).await;
        let card_session = fill_frames(&app, &id, number, expiry, "100").await;
        pay(&app, &id, Some(&card_session)).await;
        let s = session_object(&app, &key, &id).await;
        assert_eq!(s["payment_status"], "unpaid", "{number}");
        let page = app.page(&id).await;
        assert!(
            page.contains(&format!("data-reason=\"{reason}\"")),
            "{number}: {page}"
        );
    }
}

#[tokio::test]
async fn without_javascript_the_processors_page_takes_the_card() {
    let app = spawn_app().await;
    let (key, id, _) = kes_session(&app).await;
    let res = pay(&app, &id, None).await;
    assert_eq!(res.status(), 303);
    let hosted = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        hosted.starts_with(&format!("{}/checkout/pay/SESSION", gateway(&app))),
        "{hosted}"
    );
    let page = app
        .client
        .get(&hosted)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("KES 1,500"), "{page}");
    // A number failing Luhn is refused on the processor's page.
    let again = app
        .client
        .post(&hosted)
        .form(&[
            ("number", "4242424242424241"),
            ("expiry", "12/30"),
            ("securityCode", "123"),
            ("action", "pay"),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("aria-invalid=\"true\"")
    );
    let res = app
        .client
        .post(&hosted)
        .form(&[
            ("number", "4242424242424242"),
            ("expiry", "12/30"),
            ("securityCode", "123"),
            ("action", "pay"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let back = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.contains("resultIndicator="), "{back}");
    let res = app.client.get(&back).send().await.unwrap();
    assert_eq!(res.headers()["location"], format!("/pay/{id}"));
    let s = session_object(&app, &key, &id).await;
    assert_eq!(s["payment_status"], "paid", "{s}");
    assert_eq!(s["payment"]["card"]["last4"], "4242");
}

#[tokio::test]
async fn a_shopper_who_never_comes_back_is_settled_by_the_order() {
    let app = spawn_app().await;
    let (key, id, _) = kes_session(&app).await;
    let hosted = pay(&app, &id, None).await.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .post(&hosted)
        .form(&[
            ("number", "5111111111111118"),
            ("expiry", "01/39"),
            ("securityCode", "100"),
            ("action", "pay"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        303,
        "paid at the processor; the shopper closes the tab"
    );
    wait_for("the poller to find the order paid", 30, async || {
        let s = session_object(&app, &key, &id).await;
        (s["payment_status"] == "paid").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_card_left_for_mobile_money_never_blocks_it_and_a_late_payment_still_counts() {
    let app = spawn_app().await;
    let (key, id, sid) = kes_session(&app).await;
    // To the processor's page (no JavaScript)…
    let hosted = pay(&app, &id, None).await.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    // …submitted again: back to the same page, no second attempt.
    let again = pay(&app, &id, None).await;
    assert_eq!(again.headers()["location"].to_str().unwrap(), hosted);
    // The shopper turns to M-PESA instead: the card attempt (nothing sent on it) is
    // closed, and the push goes out.
    let res = app
        .post_pay_form(&id, "", &[("phone", "0712 345 678")])
        .await;
    assert_eq!(res.headers()["location"], format!("/pay/{id}"));
    let pending = app
        .store
        .pending_attempt(&sid)
        .await
        .unwrap()
        .expect("a push");
    assert_eq!(pending.rail, malipo::connectors::RailId::Mpesa);
    // Then pays on the processor's page after all (another tab): its return still
    // records the money, late.
    let res = app
        .client
        .post(&hosted)
        .form(&[
            ("number", "4242424242424242"),
            ("expiry", "12/30"),
            ("securityCode", "123"),
            ("action", "pay"),
        ])
        .send()
        .await
        .unwrap();
    let back = res.headers()["location"].to_str().unwrap().to_owned();
    app.client.get(&back).send().await.unwrap();
    let s = session_object(&app, &key, &id).await;
    assert_eq!(s["payment_status"], "paid", "{s}");
    assert_eq!(s["payment"]["rail"], "card");
}

#[tokio::test]
async fn a_checkout_gets_a_bounded_number_of_processor_sessions() {
    let app = spawn_app().await;
    let (_, id, sid) = kes_session(&app).await;
    let ask = async || {
        app.client
            .post(format!("{}/pay/{id}/card/session", app.addr))
            .json(&json!({"form_token": app.checkout.form_token(&sid)}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    for _ in 0..malipo::payments::CARD_SESSIONS_PER_CHECKOUT {
        assert_eq!(ask().await, 200);
    }
    assert_eq!(
        ask().await,
        429,
        "no more calls to the processor for this checkout"
    );
    // Without the page's form token, none at all.
    let (_, other, _) = kes_session(&app).await;
    let res = app
        .client
        .post(format!("{}/pay/{other}/card/session", app.addr))
        .json(&json!({"form_token": "forged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn the_connector_refunds_and_voids_at_the_processor() {
    let app = spawn_app().await;
    let (_, id, _) = kes_session(&app).await;
    let card_session = fill_frames(&app, &id, "5111111111111118", "01/39", "100").await;
    let mpgs = Mpgs::new(
        gateway(&app),
        "TESTMALIPO".into(),
        app.store
            .instance_secret("sandbox_card_api_password")
            .await
            .unwrap(),
    )
    .unwrap();
    let kes = |minor| Money::new(minor, Currency::Kes).unwrap();
    let paid = mpgs
        .pay("ord-1", "pay", &card_session, kes(150_000), None)
        .await
        .unwrap();
    assert_eq!(
        paid.outcome,
        malipo::connectors::RailOutcome::Succeeded,
        "{paid:?}"
    );
    // Sent again, the same transaction: the same answer, no second charge.
    let again = mpgs
        .pay("ord-1", "pay", &card_session, kes(150_000), None)
        .await
        .unwrap();
    assert_eq!(again.receipt, paid.receipt);
    mpgs.refund("ord-1", "refund-1", kes(50_000)).await.unwrap();
    let order = mpgs.order("ord-1").await.unwrap().expect("the order");
    assert_eq!(
        (order.status.as_str(), order.refunded),
        ("PARTIALLY_REFUNDED", Some(kes(50_000)))
    );
    // No more than was captured.
    let too_much = mpgs.refund("ord-1", "refund-2", kes(100_001)).await;
    assert!(
        matches!(
            too_much,
            Err(malipo::connectors::ConnectorError::Rejected { .. })
        ),
        "{too_much:?}"
    );
    // An authorisation voided.
    let card_session = fill_frames(&app, &id, "5111111111111118", "01/39", "100").await;
    mpgs.authorize("ord-2", "auth", &card_session, kes(150_000), None)
        .await
        .unwrap();
    mpgs.void("ord-2", "void", "auth").await.unwrap();
    assert_eq!(
        mpgs.order("ord-2")
            .await
            .unwrap()
            .expect("the order")
            .status,
        "CANCELLED"
    );
    // An order the processor never saw: nothing was ever charged on it.
    assert!(mpgs.order("ord-none").await.unwrap().is_none());
    // Wrong credentials are refused.
    let wrong = Mpgs::new(gateway(&app), "TESTMALIPO".into(), "nope".to_owned().into()).unwrap();
    assert!(wrong.order("ord-1").await.is_err());
}

#[tokio::test]
async fn the_card_frames_are_the_gateways_and_the_page_lets_only_it_in() {
    let app = spawn_app().await;
    let (_, id, _) = kes_session(&app).await;
    let res = app
        .client
        .get(format!("{}/pay/{id}", app.addr))
        .send()
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let gw = gateway(&app);
    // Scripts: the processor's session.js itself, not its whole origin.
    assert!(
        csp.contains(&format!(
            "script-src 'self' {gw}/form/version/73/merchant/TESTMALIPO/session.js 'nonce-"
        )),
        "{csp}"
    );
    assert!(csp.contains(&format!("connect-src 'self' {gw};")), "{csp}");
    assert!(csp.contains(&format!("frame-src {gw};")), "{csp}");
    // Forms go to us and the processor, and land (after a 303) on PayPal's page too.
    let paypal = app.paypal_url.clone().unwrap();
    assert!(
        csp.contains(&format!("form-action 'self' {gw} {paypal};")),
        "{csp}"
    );
    // A live page never names the test sandbox's processor (no live card rail here:
    // no processor at all).
    let merchant = malipo::merchants::create(&app.store, "Live Lodge")
        .await
        .unwrap();
    let live = app
        .checkout
        .create(crate::helpers::open_session(
            &merchant.merchant.id,
            malipo::domain::Mode::Live,
            Money::new(150_000, Currency::Kes).unwrap(),
        ))
        .await
        .unwrap();
    let res = app
        .client
        .get(format!("{}/pay/{}", app.addr, live.id))
        .send()
        .await
        .unwrap();
    let live_csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        !live_csp.contains(&gw) && live_csp.contains("frame-src 'none'"),
        "{live_csp}"
    );
    // A frame may be framed only by Malipo's own origin.
    let frame = app
        .client
        .get(format!("{gw}/form/frames/number?session=SESSIONX"))
        .send()
        .await
        .unwrap();
    let frame_csp = frame.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        frame_csp.contains(&format!("frame-ancestors {}", app.addr)),
        "{frame_csp}"
    );
    // Malipo's card script is served as its integrity value says.
    let js = app
        .client
        .get(format!("{}/card.js", app.addr))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    use base64::Engine;
    use sha2::Digest;
    let sri = format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(&js))
    );
    assert!(app.page(&id).await.contains(&sri));
}
