//! Refunds through the API: whole or in part, never beyond what was paid (even when
//! requests race), idempotent, with `refund.*` events; a rail Malipo cannot refund yet
//! says so, and a payment that took no money cannot be refunded.

use crate::helpers::{Db, TestApp, approve_first, spawn_app_with, wait_for};
use crate::paypal::{app, latest, location, on_paypal, press_paypal, session};
use serde_json::{Value, json};

/// A USD 350 session paid with PayPal: the merchant's key, the session, the payment id.
async fn paid(app: &TestApp) -> (String, String, String) {
    let (key, id) = session(app, 35_000, "USD").await;
    let approve = location(&press_paypal(app, &id).await);
    let back = location(&on_paypal(app, &approve, "buyer@example.com", true).await);
    app.client.get(&back).send().await.unwrap();
    let payment = latest(app, &id).await.id.to_string();
    (key, id, payment)
}

async fn refund(app: &TestApp, key: &str, body: Value, idempotency: &str) -> (u16, Value) {
    let res = app
        .client
        .post(format!("{}/v1/refunds", app.addr))
        .bearer_auth(key)
        .header("idempotency-key", idempotency)
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn get(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    let res = app
        .client
        .get(format!("{}{path}", app.addr))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn a_payment_is_refunded_in_part_then_the_rest_and_never_beyond() {
    let app = app().await;
    let (key, _, payment) = paid(&app).await;
    let (status, first) = refund(
        &app,
        &key,
        json!({"payment": payment, "amount": 10_000, "reason": "one night cancelled"}),
        "refund-a",
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["status"], "succeeded");
    assert_eq!(
        (first["amount"].clone(), first["currency"].clone()),
        (json!(10_000), json!("USD"))
    );
    assert!(
        first["receipt"].as_str().is_some_and(|r| !r.is_empty()),
        "{first}"
    );
    assert_eq!(first["payment"], payment.as_str());
    // The same key is the same refund, not a second one.
    let (_, again) = refund(
        &app,
        &key,
        json!({"payment": payment, "amount": 10_000, "reason": "one night cancelled"}),
        "refund-a",
    )
    .await;
    assert_eq!(again["id"], first["id"]);
    // More than is left: refused, with what is.
    let (status, err) = refund(
        &app,
        &key,
        json!({"payment": payment, "amount": 30_000}),
        "refund-b",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "refund_exceeds_payment");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("USD 250"),
        "{err}"
    );
    // No amount: all that is left.
    let (status, rest) = refund(&app, &key, json!({"payment": payment}), "refund-c").await;
    assert_eq!(status, 201, "{rest}");
    assert_eq!(
        (rest["amount"].clone(), rest["status"].clone()),
        (json!(25_000), json!("succeeded"))
    );
    let (status, err) = refund(&app, &key, json!({"payment": payment}), "refund-d").await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "refund_exceeds_payment");

    let (status, list) = get(&app, &key, &format!("/v1/refunds?payment={payment}")).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let (status, one) = get(
        &app,
        &key,
        &format!("/v1/refunds/{}", first["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!((status, one["id"].clone()), (200, first["id"].clone()));
    // The merchant hears of each.
    let (_, events) = get(&app, &key, "/v1/events?type=refund.succeeded").await;
    assert_eq!(events["data"].as_array().unwrap().len(), 2, "{events}");
    assert_eq!(events["data"][0]["data"]["object"]["object"], "refund");
    // Another merchant sees none of it.
    let (other, _) = session(&app, 35_000, "USD").await;
    assert_eq!(
        get(
            &app,
            &other,
            &format!("/v1/refunds/{}", first["id"].as_str().unwrap())
        )
        .await
        .0,
        404
    );
    let (status, err) = refund(&app, &other, json!({"payment": payment}), "refund-e").await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (404, json!("payment_not_found"))
    );
}

#[tokio::test]
async fn racing_refunds_never_add_up_to_more_than_was_paid() {
    for db in [Db::Sqlite, Db::Postgres] {
        racing_refunds(spawn_app_with(db, |c| c.sandbox_delay_percent = 5).await).await;
    }
}

async fn racing_refunds(app: TestApp) {
    let (key, _, payment) = paid(&app).await;
    // Six refunds of USD 200 of a USD 350 payment at once: one fits.
    let tries = (0..6).map(|i| {
        let (app, key, payment) = (&app, key.clone(), payment.clone());
        async move {
            refund(
                app,
                &key,
                json!({"payment": payment, "amount": 20_000}),
                &format!("race-{i}"),
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(tries).await;
    let made: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(made.len(), 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|(s, _)| *s != 201)
            .all(|(s, b)| *s == 400 && b["error"]["code"] == "refund_exceeds_payment"),
        "{answers:?}"
    );
}

#[tokio::test]
async fn only_money_that_came_in_is_refunded_and_only_where_malipo_can() {
    let app = app().await;
    // A payment that took nothing (PayPal declined it).
    let (key, id) = session(&app, 35_000, "USD").await;
    let approve = location(&press_paypal(&app, &id).await);
    let back = location(&on_paypal(&app, &approve, "declined@example.com", true).await);
    app.client.get(&back).send().await.unwrap();
    let failed = latest(&app, &id).await.id.to_string();
    let (status, err) = refund(&app, &key, json!({"payment": failed}), "r-1").await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (409, json!("payment_not_refundable"))
    );
    // Bad input, nothing written.
    for (body, code) in [
        (json!({}), "parameter_missing"),
        (json!({"payment": "cs_x"}), "parameter_invalid"),
        (json!({"payment": failed, "amount": -5}), "invalid_amount"),
        (json!({"payment": failed, "amount": "5"}), "invalid_amount"),
        (json!({"payment": failed, "extra": 1}), "unknown_parameter"),
        (
            json!({"payment": failed, "currency": "KES"}),
            "parameter_invalid",
        ),
        (
            json!({"payment": failed, "currency": "XYZ"}),
            "unsupported_currency",
        ),
    ] {
        let (status, err) = refund(&app, &key, body.clone(), &format!("bad-{body}")).await;
        assert_eq!(
            (status, err["error"]["code"].clone()),
            (400, json!(code)),
            "{body}"
        );
    }
}

/// A KES 1,500 session paid with M-PESA from `phone` (answered on the sandbox handset):
/// the merchant's key, the session, the payment id.
async fn paid_by_mpesa(app: &TestApp, phone: &str) -> (String, String, String) {
    paid_on(app, "mpesa", 150_000, "KES", phone).await
}

/// A session of `amount` `currency` paid on mobile-money `rail` from `phone` (answered on
/// the sandbox handset): the merchant's key, the session, the payment id.
async fn paid_on(
    app: &TestApp,
    rail: &str,
    amount: i64,
    currency: &str,
    phone: &str,
) -> (String, String, String) {
    let (key, id) = session(app, amount, currency).await;
    let local = format!("0{}", &phone[3..]);
    let res = app
        .post_pay_form(&id, "", &[("phone", &local), ("rail", rail)])
        .await;
    assert_eq!(res.status(), 303);
    approve_first(&app.client, &app.addr, phone).await;
    let paid = wait_for("the payment to settle", 20, async || {
        let a = latest(app, &id).await;
        (a.status == malipo::store::AttemptStatus::Succeeded).then_some(a)
    })
    .await;
    assert_eq!(paid.rail.as_str(), rail);
    (key, id, paid.id.to_string())
}

/// Waits for refund `id` to leave `pending`; the refund as it is then.
async fn settled_refund(app: &TestApp, key: &str, id: &str) -> Value {
    wait_for("the refund's result", 20, async || {
        let (_, r) = get(app, key, &format!("/v1/refunds/{id}")).await;
        (r["status"] != "pending").then_some(r)
    })
    .await
}

#[tokio::test]
async fn an_m_pesa_payment_is_reversed_whole_and_its_result_comes_by_callback() {
    let app = app().await;
    let (key, session_id, payment) = paid_by_mpesa(&app, "254708374149").await;
    // A reversal returns all of a payment: part of it is refused, with what would do.
    let (status, err) = refund(
        &app,
        &key,
        json!({"payment": payment, "amount": 50_000}),
        "m-1",
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (400, json!("partial_refund_not_supported")),
        "{err}"
    );
    assert!(
        err["error"]["message"].as_str().unwrap().contains("150000"),
        "{err}"
    );
    // The whole of it: taken by Daraja, pending until its result comes to the refund's
    // own callback URL.
    let (status, taken) = refund(&app, &key, json!({"payment": payment}), "m-2").await;
    assert_eq!(status, 201, "{taken}");
    assert_eq!(taken["amount"], 150_000);
    let made = settled_refund(&app, &key, taken["id"].as_str().unwrap()).await;
    assert_eq!(made["status"], "succeeded", "{made}");
    assert!(
        made["receipt"].as_str().is_some_and(|r| r.len() == 10),
        "the reversal's own M-PESA receipt: {made}"
    );
    // The merchant hears of it, and Daraja's result is kept with the payment.
    let (_, events) = get(&app, &key, "/v1/events?type=refund.succeeded").await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1, "{events}");
    let kept: Vec<(String, String)> = sqlx::query_as(
        "SELECT rail, body FROM operator_callbacks WHERE attempt_id = $1 ORDER BY id",
    )
    .bind(&payment)
    .fetch_all(app.store.pool())
    .await
    .unwrap();
    assert!(
        kept.iter()
            .any(|(rail, body)| rail == "mpesa:refund" && body.contains("OriginalTransactionID")),
        "{kept:?}"
    );
    // Nothing is left to reverse.
    let (status, err) = refund(&app, &key, json!({"payment": payment}), "m-3").await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (400, json!("refund_exceeds_payment"))
    );
    // The shopper's page says so.
    let page = app.page(&session_id).await;
    assert!(page.contains("refunded"), "{page}");
    // A result posted with a wrong token, or for another rail, is nothing of ours.
    let forged = format!(
        "{}/callbacks/mpesa/{}/not-the-token",
        app.addr,
        taken["id"].as_str().unwrap()
    );
    let res = app.client.post(&forged).body("{}").send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_reversal_whose_result_is_lost_is_sent_again_and_never_made_twice() {
    let app = app().await;
    // This number's reversal results are never delivered.
    let (key, _, payment) = paid_by_mpesa(&app, "254700000405").await;
    let (status, taken) = refund(&app, &key, json!({"payment": payment}), "l-1").await;
    assert_eq!(status, 201, "{taken}");
    let id = taken["id"].as_str().unwrap().to_owned();
    let attempt = malipo::domain::AttemptId::parse(&payment).unwrap();
    let receipt = app
        .store
        .attempt(&attempt)
        .await
        .unwrap()
        .unwrap()
        .operator_receipt
        .unwrap();
    let original = app
        .store
        .sandbox_paid_by_receipt(malipo::connectors::RailId::Mpesa, &receipt)
        .await
        .unwrap()
        .unwrap();
    let reversals = async || {
        app.store
            .sandbox_refunds_of(malipo::connectors::RailId::Mpesa, &original.id)
            .await
            .unwrap()
    };
    wait_for("Daraja to reverse it", 10, async || {
        reversals().await.first().filter(|r| r.decided).cloned()
    })
    .await;
    let (_, still) = get(&app, &key, &format!("/v1/refunds/{id}")).await;
    assert_eq!(still["status"], "pending", "{still}");
    // Five minutes on, the refund is sent again, as the same refund.
    sqlx::query("UPDATE refunds SET updated_at = updated_at - 600000 WHERE id = $1")
        .bind(&id)
        .execute(app.store.pool())
        .await
        .unwrap();
    assert_eq!(app.payments.redrive_refunds().await.unwrap(), 1);
    // Daraja reversed the payment once: the second reversal is refused as "already
    // reversed" (its result lost as well, so the refund is still pending).
    let second = wait_for("the second reversal's result", 10, async || {
        reversals().await.get(1).filter(|r| r.decided).cloned()
    })
    .await;
    let made = reversals().await;
    assert_eq!(made[0].result_code.as_deref(), Some("0"));
    assert_eq!(second.result_code.as_deref(), Some("R000001"));
    assert!(second.receipt.is_none(), "no money moved the second time");
    // When that result does reach Malipo, the refund is made: the money went back once.
    let url = format!(
        "{}/callbacks/mpesa/{id}/{}",
        app.addr,
        app.store.derived_token("refund-callback", &id)
    );
    // Sent twice, a refusal posted now may be of the second send while the first went
    // through: it decides nothing (a person checks). Nor does a queue time-out notice.
    for noise in [
        json!({"Result": {"ResultType": 0, "ResultCode": 1, "ResultDesc": "The balance is insufficient for the transaction.",
            "OriginatorConversationID": "x", "ConversationID": "y", "TransactionID": "Z"}}),
        json!({"Result": {"ResultType": 1, "ResultCode": "SVC0403", "ResultDesc": "Queue timeout",
            "OriginatorConversationID": "x", "ConversationID": "y", "TransactionID": ""}}),
    ] {
        let res = app.client.post(&url).json(&noise).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let (_, still) = get(&app, &key, &format!("/v1/refunds/{id}")).await;
        assert_eq!(still["status"], "pending", "{noise}: {still}");
    }
    let body = malipo::sandbox::operators::daraja::reversal_result(&second);
    let res = app.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (_, done) = get(&app, &key, &format!("/v1/refunds/{id}")).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // The same result again changes nothing.
    let res = app.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (_, events) = get(&app, &key, "/v1/events?type=refund.succeeded").await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1, "{events}");
}

#[tokio::test]
async fn a_reversal_daraja_refuses_fails_and_frees_the_amount() {
    let app = app().await;
    let (key, _, payment) = paid_by_mpesa(&app, "254700000111").await;
    let (status, taken) = refund(&app, &key, json!({"payment": payment}), "f-1").await;
    assert_eq!(status, 201, "{taken}");
    let failed = settled_refund(&app, &key, taken["id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["failure_code"], "1", "{failed}");
    let (_, events) = get(&app, &key, "/v1/events?type=refund.failed").await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1, "{events}");
    // Nothing went back, so the payment can be refunded again (once the paybill has
    // the money).
    let (status, again) = refund(&app, &key, json!({"payment": payment}), "f-2").await;
    assert_eq!(status, 201, "{again}");
}

#[tokio::test]
async fn an_airtel_payment_is_refunded_whole_at_once_and_only_once() {
    let app = app().await;
    let (key, session_id, payment) = paid_on(&app, "airtel", 150_000, "KES", "254733100041").await;
    let (status, err) = refund(
        &app,
        &key,
        json!({"payment": payment, "amount": 100}),
        "a-1",
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (400, json!("partial_refund_not_supported"))
    );
    let (status, made) = refund(&app, &key, json!({"payment": payment}), "a-2").await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        made["status"], "succeeded",
        "Airtel answers at once: {made}"
    );
    assert!(
        made["receipt"]
            .as_str()
            .is_some_and(|r| r.starts_with("MP")),
        "{made}"
    );
    let (status, err) = refund(&app, &key, json!({"payment": payment}), "a-3").await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (400, json!("refund_exceeds_payment"))
    );
    assert!(app.page(&session_id).await.contains("refunded"));
    // A refund Airtel refuses fails at once, and frees the amount.
    let (key, _, payment) = paid_on(&app, "airtel", 150_000, "KES", "254733000130").await;
    let (status, refused) = refund(&app, &key, json!({"payment": payment}), "a-4").await;
    assert_eq!(status, 201, "{refused}");
    assert_eq!(refused["status"], "failed", "{refused}");
    assert_eq!(refused["failure_code"], "ESB000001", "{refused}");
}

#[tokio::test]
async fn a_vodacom_payment_is_reversed_in_part_and_a_resent_reversal_is_the_same_one() {
    let app = app().await;
    // TZS 50,000 from a Vodacom number: half of it back, then the rest.
    let (key, _, payment) = paid_on(&app, "vodacom", 5_000_000, "TZS", "255754100041").await;
    let (status, half) = refund(
        &app,
        &key,
        json!({"payment": payment, "amount": 2_500_000}),
        "v-1",
    )
    .await;
    assert_eq!(status, 201, "{half}");
    assert_eq!(half["status"], "succeeded", "answered at once: {half}");
    let receipt = half["receipt"].as_str().unwrap().to_owned();
    // Its answer lost and sent again: Vodacom refuses the duplicate, and its status
    // query says the first one was made — the same refund, not a second.
    let id = half["id"].as_str().unwrap();
    sqlx::query(
        "UPDATE refunds SET status = 'pending', operator_refund_id = NULL, \
         updated_at = updated_at - 600000 WHERE id = $1",
    )
    .bind(id)
    .execute(app.store.pool())
    .await
    .unwrap();
    assert_eq!(app.payments.redrive_refunds().await.unwrap(), 1);
    let (_, again) = get(&app, &key, &format!("/v1/refunds/{id}")).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(again["receipt"], receipt.as_str(), "{again}");
    let (status, rest) = refund(&app, &key, json!({"payment": payment}), "v-2").await;
    assert_eq!(status, 201, "{rest}");
    assert_eq!(
        (rest["amount"].clone(), rest["status"].clone()),
        (json!(2_500_000), json!("succeeded"))
    );
    // Vodacom refuses a reversal the merchant's account cannot cover.
    let (key, _, payment) = paid_on(&app, "vodacom", 5_000_000, "TZS", "255754000130").await;
    let (_, refused) = refund(&app, &key, json!({"payment": payment}), "v-3").await;
    assert_eq!(
        (refused["status"].clone(), refused["failure_code"].clone()),
        (json!("failed"), json!("INS-2006")),
        "{refused}"
    );
}

#[tokio::test]
async fn an_mtn_payment_is_refunded_in_part_through_disbursement_and_confirmed_by_callback() {
    let app = app().await;
    // UGX 75,000 from an MTN Uganda number.
    let (key, _, payment) = paid_on(&app, "mtn_momo", 75_000, "UGX", "256770123100").await;
    let (status, taken) = refund(
        &app,
        &key,
        json!({"payment": payment, "amount": 25_000, "reason": "one seat"}),
        "t-1",
    )
    .await;
    assert_eq!(status, 201, "{taken}");
    let made = settled_refund(&app, &key, taken["id"].as_str().unwrap()).await;
    assert_eq!(made["status"], "succeeded", "{made}");
    assert!(
        made["receipt"].as_str().is_some_and(|r| !r.is_empty()),
        "{made}"
    );
    // Sent again (its answer lost): the same X-Reference-Id, so MTN's 409 and its status
    // GET — the same refund.
    let id = made["id"].as_str().unwrap();
    sqlx::query(
        "UPDATE refunds SET status = 'pending', updated_at = updated_at - 600000 WHERE id = $1",
    )
    .bind(id)
    .execute(app.store.pool())
    .await
    .unwrap();
    assert_eq!(app.payments.redrive_refunds().await.unwrap(), 1);
    let again = settled_refund(&app, &key, id).await;
    assert_eq!(
        (again["status"].clone(), again["receipt"].clone()),
        (json!("succeeded"), made["receipt"].clone())
    );
    let (status, rest) = refund(&app, &key, json!({"payment": payment}), "t-2").await;
    assert_eq!(
        (status, rest["amount"].clone()),
        (201, json!(50_000)),
        "{rest}"
    );
    // MTN refuses a refund its Disbursement account cannot cover.
    let (key, _, payment) = paid_on(&app, "mtn_momo", 75_000, "UGX", "256770123480").await;
    let (_, taken) = refund(&app, &key, json!({"payment": payment}), "t-3").await;
    let refused = settled_refund(&app, &key, taken["id"].as_str().unwrap()).await;
    assert_eq!(
        (refused["status"].clone(), refused["failure_code"].clone()),
        (json!("failed"), json!("NOT_ENOUGH_FUNDS")),
        "{refused}"
    );
}
