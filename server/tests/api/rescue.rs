//! "I paid, but the page didn't notice": a shopper's receipt code is checked with
//! M-PESA (Transaction Status, which the sandbox Daraja speaks) before anything is
//! believed, and only a full match settles the payment.

use crate::helpers::{TestApp, approve_first, wait_for};
use crate::paypal::{app, latest, session};
use malipo::store::AttemptStatus;

/// A KES 1,500 session whose push from `phone` was answered on the handset: the
/// merchant's key, the session and the receipt the shopper's SMS shows.
async fn answered(app: &TestApp, phone: &str) -> (String, String, String) {
    let (key, id) = session(app, 150_000, "KES").await;
    let local = format!("0{}", &phone[3..]);
    let res = app.post_pay_form(&id, "", &[("phone", &local)]).await;
    assert_eq!(res.status(), 303);
    let receipt = approve_first(&app.client, &app.addr, phone).await;
    (key, id, receipt)
}

/// Posts the rescue form; the `Location` it answers with.
async fn rescue(app: &TestApp, id: &str, code: &str) -> String {
    let sid = malipo::domain::SessionId::parse(id).unwrap();
    let res = app
        .client
        .post(format!("{}/pay/{id}/rescue", app.addr))
        .form(&[
            ("form_token", app.checkout.form_token(&sid).as_str()),
            ("code", code),
            ("lang", "sw"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    res.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_payment_the_page_never_heard_of_is_rescued_by_its_receipt_code() {
    let app = app().await;
    // This number pays, but the callback is lost and the query says "still processing".
    let (_, id, receipt) = answered(&app, "254700000406").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(latest(&app, &id).await.status, AttemptStatus::Pending);
    // The page offers the check while the payment is not confirmed.
    let page = app.page(&id).await;
    assert!(
        page.contains(r#"action="/pay/"#) && page.contains("/rescue"),
        "{page}"
    );

    // The shopper pastes the whole SMS.
    let sms = format!("{receipt} Confirmed. Ksh1,500.00 sent to SANDBOX for account X");
    let back = rescue(&app, &id, &sms).await;
    assert!(back.ends_with("rescue=checking"), "{back}");
    assert!(
        back.contains("lang=sw"),
        "the chosen language goes back: {back}"
    );
    let paid = wait_for("M-PESA's answer to settle it", 10, async || {
        let a = latest(&app, &id).await;
        (a.status == AttemptStatus::Succeeded).then_some(a)
    })
    .await;
    assert_eq!(paid.operator_receipt.as_deref(), Some(receipt.as_str()));
    let page = app.page(&id).await;
    assert!(page.contains(r#"data-state="paid""#), "{page}");
    // The check is on record, decided once.
    let check = app
        .store
        .latest_rescue(&paid.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(check.status, "confirmed");
}

#[tokio::test]
async fn nothing_is_believed_without_a_matching_answer_from_mpesa() {
    let app = app().await;
    let (_, id, _) = answered(&app, "254700000406").await;
    // A code M-PESA does not know: refused by M-PESA's answer, said on the page.
    let back = rescue(&app, &id, "QZZZZ99999").await;
    assert!(back.ends_with("rescue=checking"), "{back}");
    let sid = malipo::domain::SessionId::parse(&id).unwrap();
    wait_for("M-PESA's answer", 10, async || {
        let r = app.store.latest_rescue(&sid).await.unwrap().unwrap();
        (r.status == "refused").then_some(())
    })
    .await;
    assert_eq!(latest(&app, &id).await.status, AttemptStatus::Pending);
    let page = app
        .client
        .get(format!("{}{back}", app.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"data-rescue="refused""#), "{page}");
    assert!(
        page.contains("M-PESA haina malipo yenye nambari hii"),
        "{page}"
    );

    // A real payment of the same amount to the same shortcode, but from another number
    // (its callback lost too, so it is on no attempt): M-PESA confirms the payment,
    // not this attempt's; refused.
    let (_, _, elsewhere) = answered(&app, "254700000404").await;
    rescue(&app, &id, &elsewhere).await;
    let decided = async |app: &TestApp| {
        wait_for("M-PESA's answer", 10, async || {
            let r = app.store.latest_rescue(&sid).await.unwrap().unwrap();
            (r.status != "checking").then_some(r)
        })
        .await
    };
    let check = decided(&app).await;
    assert_eq!(check.status, "refused");
    assert!(
        check
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("another number"),
        "{check:?}"
    );
    // A receipt already on another payment pays nothing twice (refused unasked).
    let (_, other, recorded) = answered(&app, "254700000408").await;
    wait_for("the other payment to settle", 10, async || {
        (latest(&app, &other).await.status == AttemptStatus::Succeeded).then_some(())
    })
    .await;
    rescue(&app, &id, &recorded).await;
    let check = decided(&app).await;
    assert_eq!(check.status, "refused");
    assert!(
        check
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("another attempt"),
        "{check:?}"
    );
    assert_eq!(latest(&app, &id).await.status, AttemptStatus::Pending);

    // No code at all: said at once, nothing asked.
    let back = rescue(&app, &id, "I paid yesterday").await;
    assert!(back.contains("error=rescue_code"), "{back}");
    // A forged answer (wrong token) is refused and changes nothing.
    let res = app
        .client
        .post(format!("{}/callbacks/mpesa/{}/forged", app.addr, check.id))
        .body(r#"{"Result":{"ResultType":0,"ResultCode":0}}"#)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    // At most five checks an hour per session (three above, and two more).
    for _ in 0..2 {
        rescue(&app, &id, "QYYYY88888").await;
    }
    let back = rescue(&app, &id, "QYYYY88888").await;
    assert!(back.contains("error=rescue_limit"), "{back}");
}

#[tokio::test]
async fn a_cross_site_or_stale_form_checks_nothing() {
    let app = app().await;
    let (_, id, receipt) = answered(&app, "254700000406").await;
    let res = app
        .client
        .post(format!("{}/pay/{id}/rescue", app.addr))
        .header("sec-fetch-site", "cross-site")
        .form(&[("form_token", "x"), ("code", receipt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .client
        .post(format!("{}/pay/{id}/rescue", app.addr))
        .form(&[("form_token", "stale"), ("code", receipt.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .contains("error=form_expired")
    );
    let sid = malipo::domain::SessionId::parse(&id).unwrap();
    assert!(app.store.latest_rescue(&sid).await.unwrap().is_none());
}
