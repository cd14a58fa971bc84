//! Paying with PayPal through the sandbox PayPal (Orders v2 on its own origin), driven
//! over HTTP as the shopper's browser would: Malipo's 303 to PayPal's approval page, the
//! test buyer's Approve or Cancel there, the way back. Paid at the quote the page showed
//! (PayPal takes no KES), by the return's capture or — for a shopper who never comes
//! back — by PayPal's signed webhook; declined and held captures; forged webhooks
//! refused; refunds.

use crate::helpers::{Db, TestApp, spawn_app_with, wait_for};
use malipo::{
    connectors::{
        ConnectorError,
        paypal::{Paypal, webhook},
    },
    domain::{Money, SessionId, money::Currency},
    merchants,
    store::AttemptStatus,
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// An app whose sandbox runs at a twentieth of real time (webhooks in ~75 ms, a held
/// capture released in 3 s).
pub(crate) async fn app() -> TestApp {
    spawn_app_with(Db::Sqlite, |c| c.sandbox_delay_percent = 5).await
}

/// A merchant's key and a session of theirs, priced `amount` in `currency`.
pub(crate) async fn session(app: &TestApp, amount: i64, currency: &str) -> (String, String) {
    let created = merchants::create(&app.store, "Serengeti Balloons")
        .await
        .unwrap();
    let key = created.test_secret_key.expose_secret().to_owned();
    let s: Value = app
        .client
        .post(format!("{}/v1/checkout/sessions", app.addr))
        .bearer_auth(&key)
        .json(
            &json!({"amount": amount, "currency": currency, "reference": "BALLOON-7",
            "description": "Balloon safari", "success_url": "https://lodge.example/ok",
            "cancel_url": "https://lodge.example/no"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (key, s["id"].as_str().unwrap().to_owned())
}

pub(crate) fn paypal_url(app: &TestApp) -> String {
    app.paypal_url.clone().expect("the sandbox PayPal runs")
}

/// The PayPal form's hidden `quotes` value on the page, if it has one.
fn paypal_quote(page: &str) -> Option<String> {
    let form = page
        .split("action=\"/pay/")
        .find(|f| f.split('"').next().is_some_and(|a| a.ends_with("/paypal")))?;
    let form = form.split("</form>").next()?;
    form.split("name=\"quotes\" value=\"")
        .nth(1)?
        .split('"')
        .next()
        .map(str::to_owned)
}

/// Presses "Pay with PayPal" on the page: Malipo's answer (a 303 to PayPal, or back).
pub(crate) async fn press_paypal(app: &TestApp, id: &str) -> reqwest::Response {
    let page = app.page(id).await;
    let sid = SessionId::parse(id).unwrap();
    let token = app.checkout.form_token(&sid);
    let mut form = vec![("form_token".to_owned(), token)];
    if let Some(q) = paypal_quote(&page) {
        form.push(("quotes".to_owned(), q));
    }
    app.client
        .post(format!("{}/pay/{id}/paypal", app.addr))
        .form(&form)
        .send()
        .await
        .unwrap()
}

pub(crate) fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// On PayPal's page, as `email`: Approve (`approve`) or Cancel. PayPal's answer.
pub(crate) async fn on_paypal(
    app: &TestApp,
    approve_url: &str,
    email: &str,
    approve: bool,
) -> reqwest::Response {
    let page = app
        .client
        .get(approve_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Approve and pay"), "{page}");
    let order = approve_url.split("token=").nth(1).unwrap();
    app.client
        .post(format!("{}/checkoutnow", paypal_url(app)))
        .form(&[
            ("token", order),
            ("email", email),
            ("password", "sandbox-buyer"),
            ("action", if approve { "approve" } else { "cancel" }),
        ])
        .send()
        .await
        .unwrap()
}

pub(crate) async fn session_object(app: &TestApp, key: &str, id: &str) -> Value {
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

pub(crate) async fn latest(app: &TestApp, id: &str) -> malipo::store::AttemptRecord {
    app.store
        .latest_attempt(&SessionId::parse(id).unwrap())
        .await
        .unwrap()
        .expect("an attempt")
}

#[tokio::test]
async fn approved_on_paypal_pays_in_dollars_at_the_quote_shown() {
    let app = app().await;
    let (key, id) = session(&app, 150_000, "KES").await;
    // KES 1,500 at the sandbox's 129.00 KES per USD: USD 11.63 (rounded up).
    let page = app.page(&id).await;
    let button = page.split("class=\"button pay-paypal\">").nth(1).unwrap();
    assert!(
        button.starts_with("Pay with PayPal · USD 11.63</button>"),
        "{page}"
    );
    assert!(paypal_quote(&page).is_some_and(|q| q.starts_with("paypal:")));
    let res = press_paypal(&app, &id).await;
    assert_eq!(res.status(), 303);
    let approve = location(&res);
    assert!(
        approve.starts_with(&format!("{}/checkoutnow?token=", paypal_url(&app))),
        "{approve}"
    );
    // A second press (a double tap) goes back to the same order.
    assert_eq!(location(&press_paypal(&app, &id).await), approve);
    // The page's CSP lets the form land on PayPal's origin, and nowhere else new.
    let csp = app
        .client
        .get(format!("{}/pay/{id}", app.addr))
        .send()
        .await
        .unwrap()
        .headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains(&paypal_url(&app)), "{csp}");

    let back = on_paypal(&app, &approve, "buyer@example.com", true).await;
    assert_eq!(back.status(), 303);
    let return_url = location(&back);
    assert!(
        return_url.starts_with(&format!("{}/pay/{id}/paypal/return/", app.addr)),
        "{return_url}"
    );
    assert!(return_url.contains("?token=") && return_url.contains("&PayerID="));
    let res = app.client.get(&return_url).send().await.unwrap();
    assert_eq!(location(&res), format!("/pay/{id}"));

    let s = session_object(&app, &key, &id).await;
    assert_eq!(s["payment_status"], "paid", "{s}");
    let payment = &s["payment"];
    assert_eq!(payment["rail"], "paypal");
    assert_eq!(
        (payment["amount"].clone(), payment["currency"].clone()),
        (json!(1163), json!("USD"))
    );
    let quote = &payment["quote"];
    assert_eq!(
        (quote["amount"].clone(), quote["currency"].clone()),
        (json!(150_000), json!("KES")),
        "{payment}"
    );
    assert_eq!(quote["converted_amount"], 1163);
    assert_eq!(quote["rate"], "129.00");
    let capture = latest(&app, &id)
        .await
        .operator_receipt
        .expect("the capture id");
    let page = app.page(&id).await;
    assert!(page.contains(&capture), "the receipt on the page");
    // The return URL is a capability: another token opens nothing.
    let forged = return_url
        .split('?')
        .next()
        .unwrap()
        .rsplit_once('/')
        .unwrap()
        .0
        .to_owned()
        + "/not-the-token";
    assert_eq!(app.client.get(&forged).send().await.unwrap().status(), 404);
    // PayPal's word came twice more (the approval, the capture), signed; nothing changed.
    let attempt = latest(&app, &id).await;
    let events = wait_for("PayPal's webhooks", 10, async || {
        let events = app.store.callbacks(&attempt.id).await.unwrap();
        (events.len() >= 2).then_some(events)
    })
    .await;
    assert!(events.iter().any(|e| e.contains("CHECKOUT.ORDER.APPROVED")));
    assert!(
        events
            .iter()
            .any(|e| e.contains("PAYMENT.CAPTURE.COMPLETED"))
    );
    assert_eq!(latest(&app, &id).await.status, AttemptStatus::Succeeded);
}

#[tokio::test]
async fn cancelled_on_paypal_is_back_on_the_page_with_nothing_charged() {
    let app = app().await;
    let (key, id) = session(&app, 35_000, "USD").await;
    let approve = location(&press_paypal(&app, &id).await);
    let back = on_paypal(&app, &approve, "", false).await;
    let cancel_url = location(&back);
    assert!(
        cancel_url.starts_with(&format!("{}/pay/{id}/paypal/cancel/", app.addr)),
        "{cancel_url}"
    );
    let res = app.client.get(&cancel_url).send().await.unwrap();
    assert_eq!(location(&res), format!("/pay/{id}"));
    assert_eq!(latest(&app, &id).await.status, AttemptStatus::Cancelled);
    let page = app.page(&id).await;
    assert!(
        page.contains("You cancelled the PayPal payment. Nothing was charged."),
        "{page}"
    );
    assert_eq!(
        session_object(&app, &key, &id).await["payment_status"],
        "unpaid"
    );
    // Another way to pay is open at once: a new PayPal order.
    let again = location(&press_paypal(&app, &id).await);
    assert_ne!(again, approve);
}

#[tokio::test]
async fn a_shopper_who_never_comes_back_is_paid_by_the_webhook() {
    let app = app().await;
    let (key, id) = session(&app, 35_000, "USD").await;
    let approve = location(&press_paypal(&app, &id).await);
    let stays = on_paypal(&app, &approve, "gone@example.com", true).await;
    assert_eq!(stays.status(), 200, "the browser stays on PayPal");
    assert!(
        stays
            .text()
            .await
            .unwrap()
            .contains("You can close this window")
    );
    // Only PayPal's signed CHECKOUT.ORDER.APPROVED tells Malipo; Malipo captures.
    let s = wait_for("paid by the webhook", 20, async || {
        let s = session_object(&app, &key, &id).await;
        (s["payment_status"] == "paid").then_some(s)
    })
    .await;
    assert_eq!(s["payment"]["amount"], 35_000);
    let attempt = latest(&app, &id).await;
    let events = app.store.callbacks(&attempt.id).await.unwrap();
    assert!(
        events.iter().any(|e| e.contains("CHECKOUT.ORDER.APPROVED")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_declined_capture_fails_and_a_held_one_waits_for_paypal() {
    let app = app().await;
    // Declined at capture: nothing taken; the page says so, in PayPal's words.
    let (_, id) = session(&app, 35_000, "USD").await;
    let approve = location(&press_paypal(&app, &id).await);
    let back = location(&on_paypal(&app, &approve, "declined@example.com", true).await);
    app.client.get(&back).send().await.unwrap();
    let attempt = latest(&app, &id).await;
    assert_eq!(attempt.status, AttemptStatus::Failed);
    assert_eq!(attempt.failure_code.as_deref(), Some("payment_declined"));
    assert!(
        app.page(&id)
            .await
            .contains("PayPal declined the way you chose to pay")
    );

    // Held (PENDING_REVIEW): waiting, then paid when PayPal completes it.
    for (email, paid) in [("pending@example.com", true), ("denied@example.com", false)] {
        let (key, id) = session(&app, 35_000, "USD").await;
        let approve = location(&press_paypal(&app, &id).await);
        let back = location(&on_paypal(&app, &approve, email, true).await);
        app.client.get(&back).send().await.unwrap();
        assert_eq!(
            latest(&app, &id).await.status,
            AttemptStatus::Pending,
            "{email}"
        );
        assert!(
            app.page(&id)
                .await
                .contains("Waiting for PayPal to confirm your payment")
        );
        let attempt = wait_for("PayPal's verdict", 30, async || {
            let a = latest(&app, &id).await;
            (a.status != AttemptStatus::Pending).then_some(a)
        })
        .await;
        if paid {
            assert_eq!(attempt.status, AttemptStatus::Succeeded);
            assert_eq!(
                session_object(&app, &key, &id).await["payment_status"],
                "paid"
            );
        } else {
            assert_eq!(attempt.status, AttemptStatus::Failed);
            assert_eq!(attempt.failure_code.as_deref(), Some("payment_declined"));
        }
    }
}

#[tokio::test]
async fn choosing_mobile_money_leaves_an_unapproved_paypal_order() {
    let app = app().await;
    let (_, id) = session(&app, 150_000, "KES").await;
    let approve = location(&press_paypal(&app, &id).await);
    // Back on the page, the shopper pays with M-PESA instead.
    let res = app.post_pay_form(&id, "", &[("phone", "0708374149")]).await;
    assert_eq!(res.status(), 303);
    let attempt = latest(&app, &id).await;
    assert_eq!(attempt.rail, malipo::connectors::RailId::Mpesa);
    // The PayPal attempt was closed; approving it now takes nothing.
    let back = location(&on_paypal(&app, &approve, "buyer@example.com", true).await);
    app.client.get(&back).send().await.unwrap();
    let order = approve.split("token=").nth(1).unwrap();
    let paypal = app
        .store
        .attempt_by_operator_request_id(malipo::connectors::RailId::Paypal, order)
        .await
        .unwrap()
        .unwrap();
    let paypal = app.store.attempt(&paypal).await.unwrap().unwrap();
    assert_eq!(paypal.status, AttemptStatus::Cancelled);
    // Nothing captured it: the order stays approved (PayPal voids it in time).
    let order = Paypal::new(paypal_url(&app), &app.paypal)
        .unwrap()
        .order(order)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order["status"], "APPROVED", "{order}");
}

#[tokio::test]
async fn forged_webhooks_are_refused_and_fetch_nothing_elsewhere() {
    let app = app().await;
    let url = format!("{}/callbacks/paypal", app.addr);
    let body = json!({"event_type": "CHECKOUT.ORDER.APPROVED", "resource_type": "checkout-order",
        "resource": {"id": "5O190127TN364715T"}})
    .to_string();
    let cert = format!(
        "{}{}CERT-malipo-sandbox-0001",
        paypal_url(&app),
        webhook::CERT_PATH
    );
    let (peer, hits) = crate::helpers::silent_peer(false).await;
    for (cert_url, sig) in [
        // A signature that is not PayPal's.
        (cert.clone(), "AAAA"),
        // A certificate from anywhere but PayPal's host: never fetched.
        (format!("{peer}{}CERT-1", webhook::CERT_PATH), "AAAA"),
    ] {
        let res = app
            .client
            .post(&url)
            .header("content-type", "application/json")
            .header(
                webhook::TRANSMISSION_ID,
                "b2384410-f8d2-11e6-8d5d-2d7f6a9d8a43",
            )
            .header(
                webhook::TRANSMISSION_TIME,
                malipo::sandbox::paypal::rfc3339(malipo::time::now_ms()),
            )
            .header(webhook::TRANSMISSION_SIG, sig)
            .header(webhook::CERT_URL, cert_url)
            .header(webhook::AUTH_ALGO, "SHA256withRSA")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    // Unsigned.
    let res = app.client.post(&url).body(body).send().await.unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn a_capture_is_refunded_in_part_then_in_full_and_never_beyond() {
    let app = app().await;
    let (_, id) = session(&app, 35_000, "USD").await;
    let approve = location(&press_paypal(&app, &id).await);
    let back = location(&on_paypal(&app, &approve, "buyer@example.com", true).await);
    app.client.get(&back).send().await.unwrap();
    let capture = latest(&app, &id).await.operator_receipt.unwrap();
    let paypal = Paypal::new(paypal_url(&app), &app.paypal).unwrap();
    let usd = |minor| Money::new(minor, Currency::Usd).unwrap();
    let part = paypal
        .refund(&capture, Some(usd(10_000)), "refund-1")
        .await
        .unwrap();
    assert_eq!(part.status, "COMPLETED");
    // The same request id is the same refund.
    assert_eq!(
        paypal
            .refund(&capture, Some(usd(10_000)), "refund-1")
            .await
            .unwrap(),
        part
    );
    match paypal.refund(&capture, Some(usd(30_000)), "refund-2").await {
        Err(ConnectorError::Rejected { code, .. }) => assert_eq!(code, "REFUND_AMOUNT_EXCEEDED"),
        other => panic!("{other:?}"),
    }
    let rest = paypal.refund(&capture, None, "refund-3").await.unwrap();
    assert_eq!(rest.status, "COMPLETED");
    let order = paypal
        .order(
            latest(&app, &id)
                .await
                .operator_request_id
                .as_deref()
                .unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        order["purchase_units"][0]["payments"]["captures"][0]["status"],
        "REFUNDED"
    );
}
