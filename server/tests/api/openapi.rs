//! The API reference against the API: every `/v1` answer the server gives in a run
//! through every route (successes and errors) must be a documented status whose
//! documented schema the body satisfies — no missing required field, no undocumented
//! field, no value of the wrong type or outside its enum.

use crate::helpers::{Db, spawn_app_with};
use malipo::merchants;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// Resolves `#/components/schemas/X`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            let target = &doc["components"]["schemas"][name];
            assert!(!target.is_null(), "dangling $ref {r}");
            resolve(doc, target)
        }
        None => schema,
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

/// A JSON Schema subset (what utoipa emits), strict about undocumented properties.
pub(crate) fn check(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let s = resolve(doc, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = s[key].as_array() {
            let errors: Vec<String> = options
                .iter()
                .filter_map(|o| check(doc, o, v, at).err())
                .collect();
            return if errors.len() < options.len() {
                Ok(())
            } else {
                Err(format!("{at}: matches none of {key}: {errors:?}"))
            };
        }
    }
    if let Some(all) = s["allOf"].as_array() {
        for o in all {
            check(doc, o, v, at)?;
        }
    }
    match &s["type"] {
        Value::String(t) if !type_ok(t, v) => return Err(format!("{at}: {v} is not {t}")),
        Value::Array(ts) if !ts.iter().any(|t| type_ok(t.as_str().unwrap_or(""), v)) => {
            return Err(format!("{at}: {v} is none of {ts:?}"));
        }
        _ => {}
    }
    if let Some(values) = s["enum"].as_array()
        && !values.contains(v)
    {
        return Err(format!("{at}: {v} not in enum"));
    }
    if let (Some(obj), Some(props)) = (v.as_object(), s["properties"].as_object()) {
        for req in s["required"].as_array().into_iter().flatten() {
            let req = req.as_str().unwrap();
            if !obj.contains_key(req) {
                return Err(format!("{at}: required {req} missing"));
            }
        }
        for (k, val) in obj {
            match props.get(k) {
                Some(p) => check(doc, p, val, &format!("{at}.{k}"))?,
                None => return Err(format!("{at}: undocumented property {k}")),
            }
        }
    }
    if let (Some(obj), Some(extra)) = (v.as_object(), s.get("additionalProperties"))
        && extra.is_object()
        && s.get("properties").is_none()
    {
        for (k, val) in obj {
            check(doc, extra, val, &format!("{at}.{k}"))?;
        }
    }
    if let (Some(items), Some(list)) = (s.get("items"), v.as_array()) {
        for (i, item) in list.iter().enumerate() {
            check(doc, items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_answer_matches_the_document() {
    let app = spawn_app_with(Db::Sqlite, |_| {}).await;
    let doc: Value = app
        .client
        .get(format!("{}/v1/openapi.json", app.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["servers"][0]["url"], app.addr.as_str());

    let key = merchants::create(&app.store, "Reference Lodge")
        .await
        .unwrap()
        .test_secret_key
        .expose_secret()
        .to_owned();
    let mut covered = std::collections::BTreeSet::new();
    // Sends a request and checks the answer against the document's operation.
    let mut call =
        async |method: &str, template: &str, path: &str, body: Option<Value>, auth: bool| {
            let mut req = app
                .client
                .request(method.parse().unwrap(), format!("{}{path}", app.addr));
            if auth {
                req = req.bearer_auth(&key);
            }
            if let Some(b) = body {
                req = req.json(&b);
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let value: Value = res.json().await.unwrap();
            let op = &doc["paths"][template][method.to_lowercase()];
            assert!(op.is_object(), "{method} {template} is not documented");
            let documented = &op["responses"][status.to_string()];
            assert!(
                documented.is_object(),
                "{method} {template}: status {status} undocumented: {value}"
            );
            let schema = &documented["content"]["application/json"]["schema"];
            if let Err(e) = check(&doc, schema, &value, "body") {
                panic!("{method} {template} → {status}: {e}\n{value:#}");
            }
            covered.insert(format!("{method} {template}"));
            value
        };

    let session = call(
        "POST",
        "/v1/checkout/sessions",
        "/v1/checkout/sessions",
        Some(json!({
            "amount": 150000, "currency": "KES", "reference": "REF-1", "description": "Safari",
            "success_url": "https://lodge.example/ok?cs={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://lodge.example/no",
            "customer": {"phone": "0712 345 678"}, "metadata": {"booking": "B-1"},
        })),
        true,
    )
    .await;
    let sid = session["id"].as_str().unwrap().to_owned();
    call(
        "POST",
        "/v1/checkout/sessions",
        "/v1/checkout/sessions",
        Some(json!({"amount": "x"})),
        true,
    )
    .await;
    call(
        "POST",
        "/v1/checkout/sessions",
        "/v1/checkout/sessions",
        Some(json!({})),
        false,
    )
    .await;
    call(
        "GET",
        "/v1/checkout/sessions/{id}",
        &format!("/v1/checkout/sessions/{sid}"),
        None,
        true,
    )
    .await;
    call(
        "GET",
        "/v1/checkout/sessions/{id}",
        "/v1/checkout/sessions/cs_nope",
        None,
        true,
    )
    .await;
    call(
        "POST",
        "/v1/checkout/sessions/{id}/expire",
        &format!("/v1/checkout/sessions/{sid}/expire"),
        None,
        true,
    )
    .await;
    call(
        "POST",
        "/v1/checkout/sessions/{id}/expire",
        &format!("/v1/checkout/sessions/{sid}/expire"),
        None,
        true,
    )
    .await;

    let endpoint = call("POST", "/v1/webhook_endpoints", "/v1/webhook_endpoints",
        Some(json!({"url": "https://lodge.example/hooks", "enabled_events": ["*"], "description": "main"})), true).await;
    let we = endpoint["id"].as_str().unwrap().to_owned();
    call(
        "POST",
        "/v1/webhook_endpoints",
        "/v1/webhook_endpoints",
        Some(json!({"url": "nope", "enabled_events": ["*"]})),
        true,
    )
    .await;
    call(
        "GET",
        "/v1/webhook_endpoints",
        "/v1/webhook_endpoints",
        None,
        true,
    )
    .await;
    call(
        "GET",
        "/v1/webhook_endpoints/{id}",
        &format!("/v1/webhook_endpoints/{we}"),
        None,
        true,
    )
    .await;
    call(
        "POST",
        "/v1/webhook_endpoints/{id}/rotate_secret",
        &format!("/v1/webhook_endpoints/{we}/rotate_secret"),
        Some(json!({"expires_in": 60})),
        true,
    )
    .await;
    call(
        "GET",
        "/v1/webhook_endpoints/{id}",
        &format!("/v1/webhook_endpoints/{we}"),
        None,
        true,
    )
    .await;

    // A second session expiring after the endpoint exists gives an event with deliveries.
    let s2 = call(
        "POST",
        "/v1/checkout/sessions",
        "/v1/checkout/sessions",
        Some(json!({
        "amount": 5000, "currency": "KES", "reference": "REF-2", "description": "Bus",
        "success_url": "https://bus.example/ok", "cancel_url": "https://bus.example/no"})),
        true,
    )
    .await;
    call(
        "POST",
        "/v1/checkout/sessions/{id}/expire",
        &format!(
            "/v1/checkout/sessions/{}/expire",
            s2["id"].as_str().unwrap()
        ),
        None,
        true,
    )
    .await;
    let events = call("GET", "/v1/events", "/v1/events?limit=5", None, true).await;
    let evt = events["data"][0]["id"].as_str().unwrap().to_owned();
    call("GET", "/v1/events", "/v1/events?limit=500", None, true).await;
    call(
        "GET",
        "/v1/events/{id}",
        &format!("/v1/events/{evt}"),
        None,
        true,
    )
    .await;
    call("GET", "/v1/events/{id}", "/v1/events/evt_nope", None, true).await;
    // The delivery to lodge.example fails here (no network): attempts with errors.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    call(
        "GET",
        "/v1/events/{id}/deliveries",
        &format!("/v1/events/{evt}/deliveries"),
        None,
        true,
    )
    .await;
    call(
        "POST",
        "/v1/events/{id}/redeliver",
        &format!("/v1/events/{evt}/redeliver"),
        None,
        true,
    )
    .await;

    call("GET", "/v1/account", "/v1/account", None, true).await;
    call(
        "POST",
        "/v1/account",
        "/v1/account",
        Some(json!({"embed_origins": ["https://lodge.example"]})),
        true,
    )
    .await;
    call(
        "POST",
        "/v1/account",
        "/v1/account",
        Some(json!({"embed_origins": ["ftp://x"]})),
        true,
    )
    .await;
    call(
        "DELETE",
        "/v1/webhook_endpoints/{id}",
        &format!("/v1/webhook_endpoints/{we}"),
        None,
        true,
    )
    .await;
    call(
        "DELETE",
        "/v1/webhook_endpoints/{id}",
        &format!("/v1/webhook_endpoints/{we}"),
        None,
        true,
    )
    .await;

    // Refunds: of a payment that succeeded (a USD session paid with the sandbox
    // PayPal), then what is refused.
    let usd = call(
        "POST",
        "/v1/checkout/sessions",
        "/v1/checkout/sessions",
        Some(
            json!({"amount": 35000, "currency": "USD", "reference": "REF-2",
            "description": "Balloon", "success_url": "https://lodge.example/ok",
            "cancel_url": "https://lodge.example/no"}),
        ),
        true,
    )
    .await;
    let usd = usd["id"].as_str().unwrap().to_owned();
    let approve = crate::paypal::location(&crate::paypal::press_paypal(&app, &usd).await);
    let back = crate::paypal::location(
        &crate::paypal::on_paypal(&app, &approve, "buyer@example.com", true).await,
    );
    app.client.get(&back).send().await.unwrap();
    let payment = crate::paypal::latest(&app, &usd).await.id.to_string();
    let refund = call(
        "POST",
        "/v1/refunds",
        "/v1/refunds",
        Some(json!({"payment": payment, "amount": 1000, "reason": "goodwill"})),
        true,
    )
    .await;
    assert_eq!(refund["status"], "succeeded", "{refund}");
    let re = refund["id"].as_str().unwrap().to_owned();
    for body in [
        json!({"payment": payment, "amount": 999_999}),
        json!({"payment": "pa_000000000000000000000000"}),
        json!({"amount": 5}),
    ] {
        call("POST", "/v1/refunds", "/v1/refunds", Some(body), true).await;
    }
    call(
        "GET",
        "/v1/refunds/{id}",
        &format!("/v1/refunds/{re}"),
        None,
        true,
    )
    .await;
    call(
        "GET",
        "/v1/refunds/{id}",
        "/v1/refunds/re_000000000000000000000000",
        None,
        true,
    )
    .await;
    call(
        "GET",
        "/v1/refunds",
        &format!("/v1/refunds?payment={payment}"),
        None,
        true,
    )
    .await;
    call(
        "GET",
        "/v1/refunds",
        "/v1/refunds?payment=pa_000000000000000000000000",
        None,
        true,
    )
    .await;

    // The two public documents: no key, and the documented content types.
    for (path, media) in [
        ("/v1/checkout.js", "text/javascript"),
        ("/v1/openapi.json", "application/json"),
    ] {
        let op = &doc["paths"][path]["get"];
        assert_eq!(op["security"], json!([{}]), "{path} needs no key");
        assert!(
            op["responses"]["200"]["content"][media].is_object(),
            "{path}"
        );
        let res = app
            .client
            .get(format!("{}{path}", app.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(media)
        );
        covered.insert(format!("GET {path}"));
    }

    // Every documented operation was exercised.
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert_eq!(covered, documented);
}

#[test]
fn the_checker_refuses_what_it_should() {
    let doc = malipo::api::openapi_document("https://pay.example");
    let error = json!({"$ref": "#/components/schemas/ErrorBody"});
    let ok =
        json!({"error": {"code": "session_not_found", "message": "No such checkout session."}});
    assert_eq!(check(&doc, &error, &ok, "body"), Ok(()));
    for bad in [
        json!({"error": {"code": "made_up_code", "message": "x"}}),
        json!({"error": {"code": "not_found"}}),
        json!({"error": {"code": "not_found", "message": "x", "extra": 1}}),
        json!({"error": {"code": "not_found", "message": 5}}),
        json!({"error": {"code": "not_found", "message": "x", "param": 3}}),
    ] {
        assert!(check(&doc, &error, &bad, "body").is_err(), "{bad}");
    }
    let list = json!({"$ref": "#/components/schemas/List_WebhookEndpointObject"});
    let bad_item = json!({"object": "list", "has_more": false, "data": [{"id": "we_1"}]});
    assert!(check(&doc, &list, &bad_item, "body").is_err());
}
