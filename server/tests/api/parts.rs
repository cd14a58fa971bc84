//! Paying in parts (a booking above M-PESA's KES 250,000 per payment, from several
//! phones) and paying from the M-PESA menu (Pay Bill) when the prompt cannot reach the
//! phone: the session counts what it received, completes at its price, and records
//! what went beyond it as owed back.

use crate::helpers::{approve_first, wait_for};
use crate::paypal::{app, latest, session, session_object};
use malipo::store::AttemptStatus;
use serde_json::{Value, json};

/// What the page shows between `data-paybill="{which}">` and the next `<`.
fn paybill_field(page: &str, which: &str) -> Option<String> {
    let marker = format!(r#"data-paybill="{which}">"#);
    let rest = page.split(&marker).nth(1)?;
    Some(rest.split('<').next()?.to_owned())
}

#[tokio::test]
async fn a_kes_400000_booking_is_paid_in_two_parts_from_two_phones() {
    let app = app().await;
    let (key, id) = session(&app, 40_000_000, "KES").await;
    // M-PESA takes at most KES 250,000 a payment: the page asks what to pay now.
    let page = app.page(&id).await;
    assert!(page.contains(r#"data-parts="field""#), "{page}");
    assert!(
        page.contains(r#"form="pay-form""#) && page.contains(r#"value="250000""#),
        "{page}"
    );
    assert!(page.contains(r#"id="pay-form""#), "{page}");
    // More than is left, or more than one payment may be: refused, nothing sent.
    let res = app
        .post_pay_form(&id, "", &[("phone", "0712000401"), ("part", "300,000")])
        .await;
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .contains("error=invalid_part")
    );
    let res = app
        .post_pay_form(&id, "", &[("phone", "0712000401"), ("part", "nothing")])
        .await;
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .contains("error=invalid_part")
    );
    let sid = malipo::domain::SessionId::parse(&id).unwrap();
    assert!(app.store.latest_attempt(&sid).await.unwrap().is_none());

    // The first part, from the traveller's phone.
    app.post_pay_form(&id, "", &[("phone", "0712000401"), ("part", "250,000")])
        .await;
    approve_first(&app.client, &app.addr, "254712000401").await;
    wait_for("the first part", 10, async || {
        (latest(&app, &id).await.status == AttemptStatus::Succeeded).then_some(())
    })
    .await;
    let object = session_object(&app, &key, &id).await;
    assert_eq!(object["status"], "open");
    assert_eq!(object["payment_status"], "unpaid");
    assert_eq!(object["amount_received"], 25_000_000);
    let page = app.page(&id).await;
    assert!(
        page.contains("KES 250,000 received · KES 150,000 left to pay"),
        "{page}"
    );
    // A part of a booking still being paid is not refunded (the session counts it).
    let part = latest(&app, &id).await;
    let res = app
        .client
        .post(format!("{}/v1/refunds", app.addr))
        .bearer_auth(&key)
        .json(&json!({ "payment": part.id.as_str() }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    // What is left fits in one payment: no field, the button names it.
    assert!(!page.contains(r#"data-parts="field""#), "{page}");
    assert!(page.contains("Pay KES 150,000"), "{page}");

    // The rest, from a relative's phone.
    app.post_pay_form(&id, "", &[("phone", "0712000402")]).await;
    approve_first(&app.client, &app.addr, "254712000402").await;
    wait_for("the session to be paid", 10, async || {
        let o = session_object(&app, &key, &id).await;
        (o["payment_status"] == "paid").then_some(())
    })
    .await;
    let object = session_object(&app, &key, &id).await;
    assert_eq!(object["amount_received"], 40_000_000);
    assert_eq!(object["status"], "complete");
    // Its payment is the part that completed it, marked as a part.
    assert_eq!(object["payment"]["amount"], 15_000_000);
    assert_eq!(object["payment"]["part"], true);
    let second = latest(&app, &id).await;
    assert_eq!(second.amount.minor(), 15_000_000);
    assert_eq!((second.duplicate, second.overpaid_minor), (false, None));
    // Each part was a payment.succeeded event of its own.
    let events = app.store.session_events(&id).await.unwrap();
    let parts = events
        .iter()
        .filter(|e| e.kind == "session.part_paid")
        .count();
    assert_eq!(parts, 1, "{events:?}");

    // The receipt lists both parts: amount, rail, receipt, payer (masked) and date.
    let receipt_page = app
        .client
        .get(format!("{}/pay/{id}/receipt", app.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(receipt_page.contains("Paid in 2 parts"), "{receipt_page}");
    assert_eq!(receipt_page.matches(r#"data-part="true""#).count(), 2);
    for (part, amount) in [(&part, "KES 250,000"), (&second, "KES 150,000")] {
        let code = part.operator_receipt.as_deref().unwrap();
        assert!(receipt_page.contains(code), "{code}: {receipt_page}");
        assert!(receipt_page.contains(amount), "{amount}: {receipt_page}");
    }
    assert!(!receipt_page.contains("254712000401"), "payers are masked");
    // And so does the mail.
    let view = app.checkout.receipt(&sid, None).await.unwrap().unwrap();
    let mail = malipo::receipts::receipt_mail(&view, "amina@example.com", &app.addr, view.locale);
    assert!(mail.body.contains("Paid in 2 parts"), "{}", mail.body);
    for part in [&part, &second] {
        let code = part.operator_receipt.as_deref().unwrap();
        assert_eq!(mail.body.matches(code).count(), 1, "{}", mail.body);
    }
}

/// Pays the business number from `phone`'s M-PESA menu on the sandbox handset.
async fn pay_bill(
    app: &crate::helpers::TestApp,
    phone: &str,
    business: &str,
    account: &str,
    amount: &str,
) -> (u16, Value) {
    let res = app
        .client
        .post(format!("{}/sandbox/phones/{phone}/paybill", app.addr))
        .json(&json!({ "business": business, "account": account, "amount": amount, "pin": "1234" }))
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_shopper_the_prompt_cannot_reach_pays_by_paybill() {
    let app = app().await;
    let (key, id) = session(&app, 150_000, "KES").await;
    // The Pay Bill shows once Daraja took the C2B URLs (registered at start).
    let page = wait_for("the Pay Bill on the page", 10, async || {
        let page = app.page(&id).await;
        page.contains(r#"data-paybill="true""#).then_some(page)
    })
    .await;
    let business = paybill_field(&page, "business").unwrap();
    let account = paybill_field(&page, "account").unwrap();
    assert_eq!(business, "174379");
    assert_eq!(account.len(), 7, "{account}");
    assert_eq!(paybill_field(&page, "amount").unwrap(), "KES 1,500");
    // The same account number on every view.
    assert_eq!(
        paybill_field(&app.page(&id).await, "account").unwrap(),
        account
    );

    // Validation refuses what no open session takes: the shopper's money stays.
    let (status, body) = pay_bill(&app, "254712000501", &business, "NOSUCH9", "1500").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("rejected")),
        "{body}"
    );
    let (status, body) = pay_bill(&app, "254712000501", &business, &account, "2000").await;
    assert_eq!(status, 400, "more than is left: {body}");
    let sid = malipo::domain::SessionId::parse(&id).unwrap();
    assert!(app.store.latest_attempt(&sid).await.unwrap().is_none());

    // Less than the price (typed lower-case, as people do): a part, shown as such.
    let (status, body) = pay_bill(
        &app,
        "254712000501",
        &business,
        &account.to_lowercase(),
        "1000",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let first = body["receipt"].as_str().unwrap().to_owned();
    let page = wait_for("the part on the page", 10, async || {
        let page = app.page(&id).await;
        page.contains("KES 1,000 received · KES 500 left to pay")
            .then_some(page)
    })
    .await;
    assert_eq!(paybill_field(&page, "amount").unwrap(), "KES 500");
    // The rest, its confirmation delivered twice: settled once.
    let (status, body) = pay_bill(&app, "254700000202", &business, &account, "500").await;
    assert_eq!(status, 200, "{body}");
    wait_for("the session to be paid", 10, async || {
        let o = session_object(&app, &key, &id).await;
        (o["payment_status"] == "paid").then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let object = session_object(&app, &key, &id).await;
    assert_eq!(object["amount_received"], 150_000);
    let paid = latest(&app, &id).await;
    assert_eq!(paid.status, AttemptStatus::Succeeded);
    assert_eq!(paid.amount.minor(), 50_000);
    assert_ne!(paid.operator_receipt.as_deref(), Some(first.as_str()));
    let events = app.store.session_events(&id).await.unwrap();
    let settled = events
        .iter()
        .filter(|e| e.kind == "attempt.succeeded")
        .count();
    assert_eq!(
        settled, 2,
        "two payments, the repeated confirmation ignored: {events:?}"
    );
    let page = app.page(&id).await;
    assert!(page.contains(r#"data-state="paid""#), "{page}");
    assert!(!page.contains(r#"data-paybill="true""#), "{page}");

    // A confirmation M-PESA never made, even at the right URL (a leaked key): kept,
    // checked with M-PESA (Transaction Status), refused; the session is not paid by it.
    let (other_key, other) = session(&app, 150_000, "KES").await;
    let other_account = wait_for("the other session's Pay Bill", 10, async || {
        paybill_field(&app.page(&other).await, "account")
    })
    .await;
    let secret = app.store.instance_secret("paybill_url_key").await.unwrap();
    let key = {
        use hmac::Mac;
        use secrecy::ExposeSecret;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.expose_secret().as_bytes()).unwrap();
        mac.update(b"paybill:test:174379");
        mac.finalize().into_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let forged = json!({"TransactionType": "Pay Bill", "TransID": "QFO4GED123", "TransTime": "20261204101010",
        "TransAmount": "1500.00", "BusinessShortCode": "174379", "BillRefNumber": other_account,
        "MSISDN": "2547*****999", "FirstName": "Forger"});
    let res = app
        .client
        .post(format!("{}/callbacks/paybill/{key}/confirmation", app.addr))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "kept (the key is right)");
    // M-PESA (asked by Transaction Status) knows no such payment: counted, not settled
    // (refused after a few such answers, minutes apart: M-PESA may lag).
    let (status, misses, _) = wait_for("M-PESA's answer about it", 10, async || {
        app.store
            .paybill_status("QFO4GED123")
            .await
            .unwrap()
            .filter(|s| s.1 >= 1)
    })
    .await;
    assert_eq!((status.as_str(), misses >= 1), ("verifying", true));
    assert_eq!(
        session_object(&app, &other_key, &other).await["amount_received"],
        0
    );
    // An answer at the check's URL without its token is refused and changes nothing.
    let res = app
        .client
        .post(format!("{}/callbacks/mpesa/pb_QFO4GED123/{}", app.addr, "0".repeat(43)))
        .json(&json!({"Result": {"ResultType": 0, "ResultCode": 0, "ResultDesc": "ok", "TransactionID": "QFO4GED123"}}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    assert_eq!(
        app.store
            .paybill_status("QFO4GED123")
            .await
            .unwrap()
            .unwrap()
            .0,
        "verifying"
    );

    // A real payment whose confirmation never came (0700 000 404), confirmed by the
    // forger with another amount: M-PESA contradicts it, refused at once.
    let (status, body) = pay_bill(&app, "254700000404", &business, &other_account, "500").await;
    assert_eq!(status, 200, "{body}");
    let real = body["receipt"].as_str().unwrap().to_owned();
    let mut inflated = forged.clone();
    inflated["TransID"] = json!(real);
    let res = app
        .client
        .post(format!("{}/callbacks/paybill/{key}/confirmation", app.addr))
        .json(&inflated)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, _, detail) = wait_for("M-PESA's answer about the inflated one", 10, async || {
        app.store
            .paybill_status(&real)
            .await
            .unwrap()
            .filter(|s| s.0 != "verifying")
    })
    .await;
    assert_eq!(status, "refused");
    assert!(detail.unwrap().contains("another amount"));
    assert_eq!(
        session_object(&app, &other_key, &other).await["amount_received"],
        0
    );

    // A forged confirmation (a guessed URL) is a 404 and settles nothing.
    let res = app
        .client
        .post(format!("{}/callbacks/paybill/0123456789abcdef0123456789abcdef/confirmation", app.addr))
        .json(&json!({"TransID": "QAB1CD2EF3", "TransAmount": "1500.00", "BusinessShortCode": "174379", "BillRefNumber": account}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// A Pay Bill payment M-PESA has not confirmed is asked about again: settled when
/// M-PESA then confirms it; still asked about (never refused for good on an answer
/// that may be M-PESA lagging, or its error) while young; after a day left for a person,
/// `refused` if M-PESA answered without confirming it, `unverified` if it never
/// answered. Nothing settles without M-PESA's word.
#[tokio::test]
async fn a_paybill_payment_mpesa_has_not_answered_about_is_asked_again() {
    use malipo::{
        connectors::{PaybillPayment, RailId},
        domain::{Money, SessionId, money::Currency},
        store::PaybillRecorded,
        time::now_ms,
    };
    let app = app().await;
    let keep = async |id: &str, receipt: &str, amount: i64, at: i64| {
        let sid = SessionId::parse(id).unwrap();
        let account = app.store.pay_code(&sid).await.unwrap().unwrap();
        let p = PaybillPayment {
            receipt: receipt.into(),
            amount: Money::new(amount, Currency::Kes).unwrap(),
            business: "174379".into(),
            account,
            payer: Some("254700000404".into()),
            from_menu: true,
        };
        let kept = app
            .store
            .record_paybill(RailId::Mpesa, &p, Some(&sid), "{}", true, at)
            .await
            .unwrap();
        assert_eq!(kept, PaybillRecorded::Verifying);
    };
    let status = async |receipt: &str| app.store.paybill_status(receipt).await.unwrap().unwrap();
    let received = async |key: &str, id: &str| {
        session_object(&app, key, id).await["amount_received"]
            .as_i64()
            .unwrap()
    };
    let now = now_ms();

    // A genuine menu payment (its confirmation was kept; M-PESA's answer was lost).
    let (genuine_key, genuine) = session(&app, 150_000, "KES").await;
    let business = wait_for("the Pay Bill on the page", 10, async || {
        paybill_field(&app.page(&genuine).await, "business")
    })
    .await;
    let account = paybill_field(&app.page(&genuine).await, "account").unwrap();
    let (code, body) = pay_bill(&app, "254700000404", &business, &account, "1500").await;
    assert_eq!(code, 200, "{body}");
    let receipt = body["receipt"].as_str().unwrap().to_owned();
    keep(&genuine, &receipt, 150_000, now - 120_000).await;
    // Confirmations M-PESA never made: one two minutes old; two asked about for more
    // than a day, one M-PESA answered about without confirming it, one it never answered.
    let (recent_key, recent) = session(&app, 150_000, "KES").await;
    keep(&recent, "QNOANSWER2", 150_000, now - 120_000).await;
    let (denied_key, denied) = session(&app, 150_000, "KES").await;
    keep(&denied, "QNOANSWER1", 150_000, now - 25 * 3_600_000).await;
    app.store
        .paybill_missed("QNOANSWER1", "M-PESA did not confirm it (R000002)")
        .await
        .unwrap();
    let (silent_key, silent) = session(&app, 150_000, "KES").await;
    keep(&silent, "QNOANSWER3", 150_000, now - 25 * 3_600_000).await;

    app.payments.recheck_paybills().await.unwrap();
    // The genuine one: M-PESA confirms it now, and it settles.
    wait_for("the genuine payment to settle", 10, async || {
        (received(&genuine_key, &genuine).await == 150_000).then_some(())
    })
    .await;
    assert_eq!(status(&receipt).await.0, "settled");
    // Past a day: left for a person, never settled.
    assert_eq!(status("QNOANSWER1").await.0, "refused");
    assert_eq!(status("QNOANSWER3").await.0, "unverified");
    // The recent one: M-PESA did not confirm it; counted, still asked about, again
    // and again (M-PESA may lag behind its own confirmation, or fail inside).
    for asked in 1..=3 {
        wait_for("M-PESA's answer about the recent one", 10, async || {
            (status("QNOANSWER2").await.1 >= asked).then_some(())
        })
        .await;
        assert_eq!(status("QNOANSWER2").await.0, "verifying");
        app.store
            .paybill_checked("QNOANSWER2", now - 120_000)
            .await
            .unwrap();
        app.payments.recheck_paybills().await.unwrap();
    }
    wait_for("M-PESA's fourth answer", 10, async || {
        (status("QNOANSWER2").await.1 >= 4).then_some(())
    })
    .await;
    let (state, _, detail) = status("QNOANSWER2").await;
    assert_eq!(state, "verifying");
    assert!(detail.unwrap().contains("R000002"));
    for (key, id) in [
        (&recent_key, &recent),
        (&denied_key, &denied),
        (&silent_key, &silent),
    ] {
        assert_eq!(received(key, id).await, 0);
    }
}
