//! Refunds through the API: whole or in part, never beyond what was paid (even when
//! requests race), idempotent, with `refund.*` events; a rail Malipo cannot refund yet
//! says so, and a payment that took no money cannot be refunded.

use crate::helpers::{Db, TestApp, approve_first, spawn_app_with};
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
    // An M-PESA payment: Malipo cannot refund that rail yet, and says how to.
    let (key, id) = session(&app, 150_000, "KES").await;
    let res = app.post_pay_form(&id, "", &[("phone", "0708374149")]).await;
    assert_eq!(res.status(), 303);
    approve_first(&app.client, &app.addr, "254708374149").await;
    let paid = crate::helpers::wait_for("M-PESA to settle", 20, async || {
        let a = latest(&app, &id).await;
        (a.status == malipo::store::AttemptStatus::Succeeded).then_some(a)
    })
    .await;
    let (status, err) = refund(&app, &key, json!({"payment": paid.id.to_string()}), "r-2").await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (422, json!("refund_not_supported")),
        "{err}"
    );
    assert!(err["error"]["message"].as_str().unwrap().contains("M-PESA"));
}
