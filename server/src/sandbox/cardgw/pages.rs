//! What the sandbox card gateway serves to browsers: `session.js` and the card-field
//! frames (Hosted Session), the issuer's 3-D Secure challenge page, and the hosted
//! payment page for shoppers without JavaScript (Hosted Checkout). Every page carries
//! its own strict CSP; the frames may be framed only by the checkout's origin, and talk
//! to it only with `postMessage` pinned to that origin.

use axum::{
    Form, Json, Router,
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{CHALLENGE_CODE, CardGateway, parse_card};
use crate::{connectors::card::wire::decimal, domain::ids::random_base62, sandbox::esc};

pub fn router() -> Router<CardGateway> {
    Router::new()
        .route(
            "/form/version/{version}/merchant/{merchant}/session.js",
            get(session_js),
        )
        .route("/form/frames/{field}", get(frame))
        .route("/form/session/{session}/field", post(field))
        .route("/form/session/{session}/complete", post(complete))
        .route("/acs/challenge", post(challenge))
        .route("/acs/challenge/{id}", post(challenge_answer))
        .route(
            "/checkout/pay/{session}",
            get(checkout_page).post(checkout_pay),
        )
        .route("/checkout/complete/{session}", post(checkout_complete))
}

/// The card fields the frames collect, with their labels and input hints.
const FIELDS: [(&str, &str, &str, &str); 3] = [
    ("number", "Card number", "cc-number", "4242 4242 4242 4242"),
    ("expiry", "Expiry (MM/YY)", "cc-exp", "12/30"),
    ("securityCode", "Security code", "cc-csc", "123"),
];

/// A page with its own nonce-based CSP (`frame_ancestors`: who may frame it; its forms
/// post only to the gateway and the checkout's origin).
fn page(
    gw: &CardGateway,
    title: &str,
    body: &str,
    script: Option<&str>,
    frame_ancestors: &str,
) -> Response {
    let nonce = random_base62(22);
    let script = script
        .map(|s| format!("<script nonce=\"{nonce}\">{s}</script>"))
        .unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style nonce=\"{nonce}\">{STYLE}</style></head><body>{body}{script}</body></html>",
        esc(title)
    );
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; form-action 'self' {}; frame-ancestors {frame_ancestors}; \
         base-uri 'none'",
        gw.config.checkout_origin
    );
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

const STYLE: &str = "body{font:16px/1.4 system-ui,sans-serif;margin:0;padding:12px;color:#1a1a1a}\
    input{font:inherit;width:100%;box-sizing:border-box;padding:10px;border:1px solid #888;border-radius:6px}\
    input[aria-invalid=true]{border-color:#b00020}.err{color:#b00020;margin:4px 0 0;font-size:14px}\
    button{font:inherit;padding:10px 16px;border-radius:6px;border:0;background:#1f5fbf;color:#fff;margin:8px 8px 0 0}\
    button.secondary{background:#eee;color:#1a1a1a}label{display:block;margin:10px 0 4px}\
    .bank{max-width:420px;margin:0 auto}.frame{padding:0}.frame body{padding:0}";

async fn session_js(
    State(gw): State<CardGateway>,
    Path((_, merchant)): Path<(String, String)>,
) -> Response {
    if merchant != gw.config.merchant_id {
        return StatusCode::NOT_FOUND.into_response();
    }
    let js = SESSION_JS.replace("__GATEWAY__", &gw.config.origin);
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        js,
    )
        .into_response()
}

/// `PaymentSession`: mounts one frame per field in the elements `configure` names, and
/// on `updateSessionFromForm('card')` has each frame send its field to the gateway, then
/// completes the session and calls `formSessionUpdate` with the outcome (the card's
/// brand and masked number, or the fields in error). The page never sees a digit.
const SESSION_JS: &str = r#"(function () {
  "use strict";
  var GATEWAY = "__GATEWAY__";
  var config = null, frames = {}, answers = null;
  function done(response) {
    var cb = config && config.callbacks && config.callbacks.formSessionUpdate;
    if (cb) cb(response);
  }
  function complete() {
    var errors = {}, bad = false;
    Object.keys(answers).forEach(function (f) {
      if (answers[f] !== "stored") { errors[f] = "invalid"; bad = true; }
    });
    if (bad) { done({ status: "fields_in_error", errors: errors }); return; }
    fetch(GATEWAY + "/form/session/" + encodeURIComponent(config.session) + "/complete", { method: "POST", mode: "cors" })
      .then(function (r) { return r.json(); })
      .then(done, function () { done({ status: "request_timeout" }); });
  }
  window.addEventListener("message", function (ev) {
    if (ev.origin !== GATEWAY || !answers || !ev.data || typeof ev.data.field !== "string") return;
    if (!(ev.data.field in answers)) return;
    answers[ev.data.field] = ev.data.type;
    if (Object.keys(answers).every(function (f) { return answers[f] !== null; })) complete();
  });
  window.PaymentSession = {
    configure: function (c) {
      config = c;
      var fields = (c.fields && c.fields.card) || {};
      Object.keys(fields).forEach(function (name) {
        var target = document.querySelector(fields[name]);
        if (!target) return;
        var frame = document.createElement("iframe");
        frame.src = GATEWAY + "/form/frames/" + encodeURIComponent(name) + "?session=" + encodeURIComponent(c.session);
        frame.title = target.getAttribute("data-label") || name;
        frame.className = "gateway-field";
        target.textContent = "";
        target.appendChild(frame);
        frames[name] = frame;
      });
      var ready = c.callbacks && c.callbacks.initialized;
      if (ready) ready({ status: "ok" });
    },
    updateSessionFromForm: function () {
      answers = {};
      Object.keys(frames).forEach(function (name) { answers[name] = null; });
      Object.keys(frames).forEach(function (name) {
        frames[name].contentWindow.postMessage({ type: "submit" }, GATEWAY);
      });
    }
  };
})();
"#;

#[derive(Deserialize)]
struct FrameQuery {
    session: String,
}

/// One card field, in a document of the gateway's origin: the checkout's page cannot
/// read it. On the parent's "submit" it checks the field (a number failing Luhn is
/// refused here), sends it to the gateway itself, and tells the parent only whether it
/// was stored.
async fn frame(
    State(gw): State<CardGateway>,
    Path(field): Path<String>,
    Query(q): Query<FrameQuery>,
) -> Response {
    let Some((name, label, autocomplete, hint)) = FIELDS.iter().find(|f| f.0 == field) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Written into the frame's script: letters and digits only.
    if q.session.is_empty()
        || q.session.len() > 64
        || !q.session.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    let body = format!(
        "<label for=\"f\">{label}</label><input id=\"f\" autocomplete=\"{autocomplete}\" \
         inputmode=\"numeric\" placeholder=\"{hint}\" aria-describedby=\"e\">\
         <p class=\"err\" id=\"e\" role=\"alert\"></p>"
    );
    let script = FRAME_JS
        .replace("__PARENT__", &gw.config.checkout_origin)
        .replace("__FIELD__", name)
        .replace("__SESSION__", &q.session);
    page(&gw, label, &body, Some(&script), &gw.config.checkout_origin)
}

const FRAME_JS: &str = r#"(function () {
  "use strict";
  var PARENT = "__PARENT__", FIELD = "__FIELD__", SESSION = "__SESSION__";
  var input = document.getElementById("f"), err = document.getElementById("e");
  function luhn(digits) {
    if (!/^\d{12,19}$/.test(digits)) return false;
    var sum = 0;
    for (var i = 0; i < digits.length; i++) {
      var d = +digits[digits.length - 1 - i];
      if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
      sum += d;
    }
    return sum % 10 === 0;
  }
  function tell(type) { parent.postMessage({ type: type, field: FIELD }, PARENT); }
  function refuse(words) { err.textContent = words; input.setAttribute("aria-invalid", "true"); tell("invalid"); }
  window.addEventListener("message", function (ev) {
    if (ev.origin !== PARENT || !ev.data || ev.data.type !== "submit") return;
    var value = input.value.replace(/[\s-]/g, "");
    if (FIELD === "number" && !luhn(value)) { refuse("This card number is not valid."); return; }
    if (FIELD === "expiry" && !/^(0[1-9]|1[0-2])\/?\d\d$/.test(value)) { refuse("Use MM/YY."); return; }
    if (FIELD === "securityCode" && !/^\d{3,4}$/.test(value)) { refuse("3 or 4 digits."); return; }
    if (FIELD === "expiry" && value.indexOf("/") < 0) value = value.slice(0, 2) + "/" + value.slice(2);
    err.textContent = ""; input.removeAttribute("aria-invalid");
    fetch("/form/session/" + encodeURIComponent(SESSION) + "/field", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ field: FIELD, value: value })
    }).then(function (r) { tell(r.ok ? "stored" : "invalid"); }, function () { tell("invalid"); });
  });
})();"#;

#[derive(Deserialize)]
struct FieldBody {
    field: String,
    value: String,
}

/// A frame's field, from the frame itself (same origin).
async fn field(
    State(gw): State<CardGateway>,
    Path(session): Path<String>,
    Json(body): Json<FieldBody>,
) -> StatusCode {
    if !FIELDS.iter().any(|f| f.0 == body.field) || body.value.len() > 32 {
        return StatusCode::BAD_REQUEST;
    }
    if gw.set_field(&session, &body.field, &body.value) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

/// `session.js` completes the session once every frame stored its field: the card's
/// brand and masked number, or which fields are in error. Only the checkout's origin may
/// read the answer.
async fn complete(State(gw): State<CardGateway>, Path(session): Path<String>) -> Response {
    let answer = match gw.complete_session(&session) {
        Ok((brand, number)) => json!({
            "status": "ok",
            "session": {"id": session, "updateStatus": "SUCCESS"},
            "sourceOfFunds": {"provided": {"card": {"brand": brand, "number": number}}},
        }),
        Err(fields) => {
            let errors: serde_json::Map<String, Value> = fields
                .into_iter()
                .map(|f| (f.to_owned(), Value::from("invalid")))
                .collect();
            json!({"status": "fields_in_error", "errors": errors})
        }
    };
    let mut response = Json(answer).into_response();
    if let Ok(origin) = HeaderValue::from_str(&gw.config.checkout_origin) {
        response
            .headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

#[derive(Deserialize)]
struct ChallengeForm {
    creq: String,
}

/// The issuer's challenge (the ACS): enter the code, or cancel.
async fn challenge(State(gw): State<CardGateway>, Form(f): Form<ChallengeForm>) -> Response {
    let known = gw
        .lock()
        .challenges
        .get(&f.creq)
        .is_some_and(|c| c.created.elapsed() < super::SESSION_TTL);
    if !known {
        return (StatusCode::NOT_FOUND, "This verification has expired.").into_response();
    }
    challenge_page(&gw, &f.creq)
}

fn challenge_page(gw: &CardGateway, id: &str) -> Response {
    let body = format!(
        "<main class=\"bank\" data-page=\"acs\"><h1>Sandbox Bank</h1>\
         <p>Verify this card payment. We sent a code to your phone (sandbox: the code is \
         <strong>{CHALLENGE_CODE}</strong>).</p>\
         <form method=\"post\" action=\"/acs/challenge/{id}\">\
         <label for=\"code\">Verification code</label>\
         <input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\">\
         <button name=\"action\" value=\"verify\">Verify</button>\
         <button class=\"secondary\" name=\"action\" value=\"cancel\">Cancel</button></form></main>",
        id = esc(id)
    );
    page(
        gw,
        "Verify your payment · Sandbox Bank",
        &body,
        None,
        "'none'",
    )
}

#[derive(Deserialize)]
struct ChallengeAnswer {
    #[serde(default)]
    code: String,
    #[serde(default)]
    action: String,
}

/// The shopper's answer: the right code passes, anything else fails; then back to where
/// the payment started (an auto-posting form, with a button without JavaScript).
async fn challenge_answer(
    State(gw): State<CardGateway>,
    Path(id): Path<String>,
    Form(a): Form<ChallengeAnswer>,
) -> Response {
    let passed = a.action == "verify" && a.code.trim() == CHALLENGE_CODE;
    let Some((url, order, txn)) = gw.decide_challenge(&id, passed) else {
        return (StatusCode::NOT_FOUND, "This verification has expired.").into_response();
    };
    let recommendation = if passed { "PROCEED" } else { "DO_NOT_PROCEED" };
    auto_post(
        &gw,
        &url,
        &[
            ("order.id", &order),
            ("transaction.id", &txn),
            ("response.gatewayRecommendation", recommendation),
        ],
    )
}

/// A form that posts `fields` to `url` on load, with a Continue button for browsers
/// without JavaScript.
fn auto_post(gw: &CardGateway, url: &str, fields: &[(&str, &str)]) -> Response {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(k),
                esc(v)
            )
        })
        .collect();
    let body = format!(
        "<main class=\"bank\"><p>Returning to the shop…</p><form id=\"back\" method=\"post\" \
         action=\"{}\">{inputs}<button>Continue</button></form></main>",
        esc(url)
    );
    page(
        gw,
        "Returning to the shop",
        &body,
        Some("document.getElementById('back').submit();"),
        "'none'",
    )
}

/// The hosted payment page (no JavaScript needed): the gateway's own card form.
async fn checkout_page(State(gw): State<CardGateway>, Path(session): Path<String>) -> Response {
    checkout_form(&gw, &session, &[])
}

fn checkout_form(gw: &CardGateway, session: &str, errors: &[&str]) -> Response {
    let checkout = gw.checkout(session);
    let Some(c) = checkout else {
        return (StatusCode::NOT_FOUND, "This payment page has expired.").into_response();
    };
    let amount = c.amount.to_string();
    let inputs: String = FIELDS
        .iter()
        .map(|(name, label, autocomplete, hint)| {
            let invalid = errors.contains(name);
            format!(
                "<label for=\"{name}\">{label}</label><input id=\"{name}\" name=\"{name}\" \
                 autocomplete=\"{autocomplete}\" inputmode=\"numeric\" placeholder=\"{hint}\" \
                 required{}>{}",
                if invalid {
                    " aria-invalid=\"true\""
                } else {
                    ""
                },
                if invalid {
                    "<p class=\"err\" role=\"alert\">Check this field.</p>"
                } else {
                    ""
                }
            )
        })
        .collect();
    let body = format!(
        "<main class=\"bank\" data-page=\"hosted-checkout\"><h1>Pay {merchant}</h1>\
         <p class=\"amount\">{amount}</p><form method=\"post\">{inputs}\
         <button name=\"action\" value=\"pay\">Pay {amount}</button>\
         <button class=\"secondary\" name=\"action\" value=\"cancel\" formnovalidate>Cancel</button>\
         </form><p>Sandbox card gateway · the card is typed here, never on the shop's page.</p></main>",
        merchant = esc(&c.merchant_name),
    );
    page(gw, &format!("Pay {amount}"), &body, None, "'none'")
}

#[derive(Deserialize)]
struct CheckoutForm {
    #[serde(default)]
    number: String,
    #[serde(default)]
    expiry: String,
    #[serde(default, rename = "securityCode")]
    security_code: String,
    #[serde(default)]
    action: String,
}

/// The hosted page's form: the card is checked and stored in the session, authenticated
/// (a challenge shows the issuer's page), paid, and the shopper sent back with the
/// `resultIndicator`.
async fn checkout_pay(
    State(gw): State<CardGateway>,
    Path(session): Path<String>,
    Form(f): Form<CheckoutForm>,
) -> Response {
    let Some(c) = gw.checkout(&session) else {
        return (StatusCode::NOT_FOUND, "This payment page has expired.").into_response();
    };
    if f.action == "cancel" {
        return Redirect::to(&with_indicator(&c.return_url, "cancelled")).into_response();
    }
    let card = match parse_card(&f.number, &f.expiry, &f.security_code) {
        Ok(card) => card,
        Err(errors) => return checkout_form(&gw, &session, &errors),
    };
    if let Some(s) = gw.lock().sessions.get_mut(&session) {
        s.card = Some(card);
    }
    let order = json!({"amount": decimal(c.amount), "currency": c.amount.currency().code()});
    gw.run(
        &c.order_id,
        "3ds",
        &json!({"apiOperation": "INITIATE_AUTHENTICATION", "session": {"id": session}, "order": order}),
    );
    let (_, auth) = gw.run(
        &c.order_id,
        "3ds-payer",
        &json!({"apiOperation": "AUTHENTICATE_PAYER", "session": {"id": session}, "order": order,
            "authentication": {"redirectResponseUrl": format!("{}/checkout/complete/{session}", gw.config.origin)}}),
    );
    if let Some(creq) =
        auth["authentication"]["redirect"]["customizedHtml"]["3ds2"]["cReq"].as_str()
    {
        return challenge_page(&gw, creq);
    }
    finish_checkout(&gw, &session)
}

/// Back from the issuer (or straight after a frictionless authentication): pays, and
/// sends the shopper back to the shop.
async fn checkout_complete(State(gw): State<CardGateway>, Path(session): Path<String>) -> Response {
    finish_checkout(&gw, &session)
}

fn finish_checkout(gw: &CardGateway, session: &str) -> Response {
    let Some(c) = gw.checkout(session) else {
        return (StatusCode::NOT_FOUND, "This payment page has expired.").into_response();
    };
    let (_, paid) = gw.run(
        &c.order_id,
        "pay",
        &json!({"apiOperation": "PAY", "session": {"id": session},
            "order": {"amount": decimal(c.amount), "currency": c.amount.currency().code()},
            "authentication": {"transactionId": "3ds-payer"}, "sourceOfFunds": {"type": "CARD"}}),
    );
    let indicator = if paid["result"] == "SUCCESS" {
        c.success_indicator.clone()
    } else {
        random_base62(16)
    };
    Redirect::to(&with_indicator(&c.return_url, &indicator)).into_response()
}

fn with_indicator(url: &str, indicator: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}resultIndicator={indicator}&sessionVersion=1")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_frame_script_pins_its_parent() {
        assert!(super::FRAME_JS.contains("ev.origin !== PARENT"));
        assert!(super::FRAME_JS.contains("postMessage({ type: type, field: FIELD }, PARENT)"));
        assert!(super::SESSION_JS.contains("ev.origin !== GATEWAY"));
    }
}
