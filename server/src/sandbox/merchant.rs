//! The sandbox merchant: "Maasai Mara Safaris", a booking site served on its own origin
//! (a second loopback port) at `/sandbox/merchant`.
//!
//! It does what a real merchant's site does, and nothing more: its server creates the
//! checkout session through Malipo's HTTP API with its own secret key; its page embeds
//! the checkout with one `<script src=…/v1/checkout.js integrity=…>` tag; and it marks a
//! booking paid only when a `checkout.session.completed` webhook arrives whose
//! `Malipo-Signature` it verified — never on the browser's word (`onSuccess`) or a
//! redirect alone. Bookings live in memory: this is a demonstration site.
//!
//! At start-up Malipo sets the merchant up as its owner would in a dashboard: a fresh
//! test secret key (older test ones revoked), its origin allowed to embed test-mode
//! checkouts, and a test webhook endpoint pointing here. The merchant is the one Malipo
//! flagged as the sandbox's own when it made it, never one found by name, and only its
//! test-mode settings are touched.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::esc;
use crate::{
    domain::{ApiKeyKind, Mode, ids::random_base62},
    merchants,
    store::{Store, StoreError},
    time::now_ms,
    webhooks::{self, signature},
};

/// The sandbox merchant's name in Malipo.
pub const MERCHANT_NAME: &str = "Maasai Mara Safaris";
/// What the demo sells, in KES minor units.
const PRICE_MINOR: i64 = 4_500_000;

/// One booking on the merchant's site.
#[derive(Debug, Clone, serde::Serialize)]
struct Booking {
    id: String,
    session_id: String,
    /// `awaiting_payment`, `paid` (a verified webhook said so) or `expired`.
    status: &'static str,
    /// Ids of the verified webhook events received for this booking, in order.
    events: Vec<String>,
}

struct Site {
    /// Malipo's base URL, for the API and the script tag.
    malipo_url: String,
    /// This site's own origin (`http://127.0.0.1:PORT`).
    origin: String,
    secret_key: SecretString,
    webhook_secret: SecretString,
    http: reqwest::Client,
    bookings: Mutex<HashMap<String, Booking>>,
}

/// Why the sandbox merchant could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("merchant: {0}")]
    Merchant(#[from] merchants::MerchantError),
    #[error("key: {0}")]
    Key(#[from] merchants::KeyError),
    #[error("webhook endpoint: {0}")]
    Endpoint(#[from] webhooks::EndpointError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Sets the merchant up in Malipo and returns the site's router.
pub async fn site(
    store: &Store,
    malipo_url: &str,
    origin: &str,
) -> Result<axum::Router, SetupError> {
    let merchant = match store.sandbox_merchant().await? {
        Some(m) => m,
        None => {
            let m = merchants::create(store, MERCHANT_NAME).await?.merchant;
            store.mark_sandbox_merchant(&m.id).await?;
            m
        }
    };
    // A fresh key per start (this site keeps it in memory only); older test ones are
    // revoked. Live keys are never touched.
    for key in store.api_keys(&merchant.id).await? {
        if key.kind == ApiKeyKind::Secret && key.mode == Mode::Test && key.revoked_at.is_none() {
            merchants::revoke_key(store, &key.id).await?;
        }
    }
    let (_, key) =
        merchants::create_key(store, &merchant.id, ApiKeyKind::Secret, Mode::Test).await?;
    store
        .set_embed_origins(&merchant.id, Mode::Test, &[origin.to_owned()])
        .await?;
    let hook_url = format!("{origin}/sandbox/merchant/webhooks");
    let endpoint = match store
        .endpoints(&merchant.id, Mode::Test)
        .await?
        .into_iter()
        .find(|e| e.url == hook_url)
    {
        // The secret the merchant saved when it registered this endpoint.
        Some(e) => e,
        None => {
            webhooks::create_endpoint(
                store,
                &merchant.id,
                Mode::Test,
                &hook_url,
                &["*".into()],
                "sandbox merchant site",
                now_ms(),
            )
            .await?
        }
    };
    let site = Arc::new(Site {
        malipo_url: malipo_url.to_owned(),
        origin: origin.to_owned(),
        secret_key: key.token,
        webhook_secret: endpoint.secret,
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?,
        bookings: Mutex::new(HashMap::new()),
    });
    Ok(Router::new()
        .route("/sandbox/merchant", get(page))
        .route("/sandbox/merchant/bookings", post(book))
        .route("/sandbox/merchant/bookings/{id}", get(booking))
        .route("/sandbox/merchant/webhooks", post(webhook))
        .route("/sandbox/merchant/return", get(returned))
        .route("/sandbox/merchant/forge", get(forge))
        .with_state(site))
}

async fn page(State(site): State<Arc<Site>>) -> Html<String> {
    Html(
        PAGE.replace("__MALIPO__", &esc(&site.malipo_url))
            .replace("__INTEGRITY__", &crate::embed::integrity()),
    )
}

/// Creates a booking and its checkout session, server to server with the secret key.
/// From the page's script (no body) it answers JSON for the embed; from the plain HTML
/// form (JavaScript off) it sends the shopper to the hosted page: the redirect flow.
async fn book(State(site): State<Arc<Site>>, headers: HeaderMap) -> Response {
    let from_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let booking_id = format!("SAF-{}", random_base62(6).to_uppercase());
    let res = site
        .http
        .post(format!("{}/v1/checkout/sessions", site.malipo_url))
        .bearer_auth(site.secret_key.expose_secret())
        // A retried booking request must not open a second session.
        .header("Idempotency-Key", format!("booking-{booking_id}"))
        .json(&json!({
            "amount": PRICE_MINOR,
            "currency": "KES",
            "reference": booking_id,
            "description": "Maasai Mara 3-day safari",
            "success_url": format!("{}/sandbox/merchant/return?session={{CHECKOUT_SESSION_ID}}", site.origin),
            "cancel_url": format!("{}/sandbox/merchant", site.origin),
            "metadata": { "booking": booking_id },
        }))
        .send()
        .await;
    let session: Value = match res {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
        Ok(r) => {
            tracing::warn!(status = %r.status(), "sandbox merchant: session create refused");
            return (StatusCode::BAD_GATEWAY, "Malipo refused the session").into_response();
        }
        Err(e) => {
            tracing::warn!(error = %e, "sandbox merchant: Malipo unreachable");
            return (StatusCode::BAD_GATEWAY, "Malipo unreachable").into_response();
        }
    };
    let Some(session_id) = session["id"].as_str() else {
        return (StatusCode::BAD_GATEWAY, "no session id").into_response();
    };
    let booking = Booking {
        id: booking_id.clone(),
        session_id: session_id.to_owned(),
        status: "awaiting_payment",
        events: Vec::new(),
    };
    if let Ok(mut all) = site.bookings.lock() {
        all.insert(booking_id, booking.clone());
    }
    match session["url"].as_str() {
        Some(url) if from_form => axum::response::Redirect::to(url).into_response(),
        _ => Json(json!({ "booking": booking, "url": session["url"] })).into_response(),
    }
}

async fn booking(State(site): State<Arc<Site>>, Path(id): Path<String>) -> Response {
    match site.bookings.lock().ok().and_then(|b| b.get(&id).cloned()) {
        Some(b) => Json(b).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The webhook receiver: verify, de-duplicate by event id, then act.
async fn webhook(State(site): State<Arc<Site>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = headers
        .get(signature::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let now = now_ms() / 1000;
    if let Err(e) = signature::verify(
        header,
        &body,
        site.webhook_secret.expose_secret(),
        now,
        signature::DEFAULT_TOLERANCE_SECS,
    ) {
        tracing::warn!(error = %e, "sandbox merchant: webhook refused");
        return (StatusCode::BAD_REQUEST, "bad signature").into_response();
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad JSON").into_response();
    };
    let event_id = event["id"].as_str().unwrap_or_default().to_owned();
    let kind = event["type"].as_str().unwrap_or_default();
    let object = &event["data"]["object"];
    let session_id = match kind {
        "checkout.session.completed" | "checkout.session.expired" => object["id"].as_str(),
        _ => object["checkout_session"].as_str(),
    }
    .unwrap_or_default();
    if let Ok(mut all) = site.bookings.lock()
        && let Some(b) = all.values_mut().find(|b| b.session_id == session_id)
    {
        if b.events.contains(&event_id) {
            return StatusCode::OK.into_response(); // a duplicate: already handled
        }
        b.events.push(event_id);
        match kind {
            "checkout.session.completed" if object["payment_status"] == "paid" => {
                b.status = "paid";
            }
            "checkout.session.expired" if b.status != "paid" => b.status = "expired",
            _ => {}
        }
    }
    StatusCode::OK.into_response()
}

/// The redirect flow's landing page: the merchant confirms with the API, never with
/// the redirect alone (anyone can type this URL).
async fn returned(
    State(site): State<Arc<Site>>,
    Query(q): Query<HashMap<String, String>>,
) -> Html<String> {
    let session = q.get("session").cloned().unwrap_or_default();
    let confirmed = match crate::domain::SessionId::parse(&session) {
        Some(id) => site
            .http
            .get(format!("{}/v1/checkout/sessions/{id}", site.malipo_url))
            .bearer_auth(site.secret_key.expose_secret())
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success()),
        None => None,
    };
    let paid = match confirmed {
        Some(r) => r
            .json::<Value>()
            .await
            .is_ok_and(|s| s["payment_status"] == "paid"),
        None => false,
    };
    let text = if paid {
        "Paid — your safari is booked. See you in the Mara!"
    } else {
        "We have not received your payment yet."
    };
    Html(format!(
        "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>Booking · Maasai Mara Safaris</title><main><h1>Maasai Mara Safaris</h1>\
         <p id=\"return-status\" data-paid=\"{paid}\">{}</p></main>",
        esc(text)
    ))
}

/// A hostile page for the tests: framed into the merchant's page, it posts a forged
/// "success" to its parent from the wrong origin.
async fn forge(Query(q): Query<HashMap<String, String>>) -> Response {
    let session = q
        .get("session")
        .filter(|s| crate::domain::SessionId::parse(s).is_some())
        .cloned()
        .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!(
            "<!doctype html><script>parent.postMessage({{source:\"malipo\",type:\"success\",\
             sessionId:\"{session}\"}},\"*\");document.title=\"forged\";</script>"
        ),
    )
        .into_response()
}

const PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Maasai Mara 3-day safari — Book &amp; pay</title>
<style>
body{font:16px/1.4 system-ui,sans-serif;margin:0;color:#1d1d1b;background:#f7f3ea}
main{max-width:560px;margin:0 auto;padding:16px}
h1{font-size:1.4rem;margin:.2em 0}.price{font-size:1.3rem;font-weight:700}
button{font:inherit;padding:.7em 1.2em;border:0;border-radius:8px;background:#b5451b;color:#fff;margin:.3em .3em .3em 0}
#booking-status{padding:.6em;border-radius:8px;background:#fff}
[data-state=paid]{background:#dff3e3!important}
</style>
<script src="__MALIPO__/v1/checkout.js" integrity="__INTEGRITY__" crossorigin="anonymous"></script>
</head><body><main>
<p>Maasai Mara Safaris</p>
<h1>Maasai Mara 3-day safari — Book &amp; pay</h1>
<p>Three days in the Mara: game drives at dawn and dusk, two nights in a tented camp, all meals.</p>
<p class="price">KES 45,000</p>
<form id="book-form" method="post" action="/sandbox/merchant/bookings">
<button id="book" type="submit">Book &amp; pay</button>
</form>
<button id="book-inline" type="button">Book &amp; pay on this page</button>
<p id="booking-status" data-state="none" role="status">Not booked yet.</p>
<p>Booking <strong id="booking-ref">—</strong> · onSuccess calls: <span id="success-calls">0</span></p>
<div id="inline"></div>
</main>
<script>
(function(){
  var status = document.getElementById("booking-status");
  var calls = 0, current = null;
  function show(state, text){ status.setAttribute("data-state", state); status.textContent = text; }
  function watch(){
    // The page is told by its own server, which believes only the signed webhook.
    fetch("/sandbox/merchant/bookings/" + current.id).then(function(r){ return r.json(); }).then(function(b){
      if (b.status === "paid") show("paid", "Paid — booking " + b.id + " confirmed (webhook " + b.events[b.events.length-1] + ").");
      else setTimeout(watch, 500);
    });
  }
  var handlers = {
    onSuccess: function(e){
      calls += 1; document.getElementById("success-calls").textContent = calls;
      if (!current || e.sessionId !== current.session_id) return;
      show("confirming", "Payment received — confirming your booking…");
      watch();
    },
    onCancel: function(){ show("cancelled", "Payment cancelled. Your booking is not confirmed."); },
    onClose: function(){ if (status.getAttribute("data-state") === "waiting") show("closed", "Checkout closed."); }
  };
  function book(inline){
    show("booking", "Creating your booking…");
    fetch("/sandbox/merchant/bookings", {method: "POST"}).then(function(r){
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function(res){
      current = res.booking;
      document.getElementById("booking-ref").textContent = current.id;
      show("waiting", "Waiting for payment…");
      var opts = {sessionId: current.session_id, onSuccess: handlers.onSuccess,
                  onCancel: handlers.onCancel, onClose: handlers.onClose};
      if (inline) Malipo.mount("#inline", opts); else Malipo.open(opts);
    }).catch(function(e){ show("error", "Could not create the booking: " + e.message); });
  }
  // With JavaScript the checkout opens over the page; without, the form posts and the
  // shopper is sent to the hosted page and back (the redirect flow).
  document.getElementById("book-form").addEventListener("submit", function(e){ e.preventDefault(); book(false); });
  document.getElementById("book-inline").addEventListener("click", function(){ book(true); });
})();
</script>
</body></html>
"##;
