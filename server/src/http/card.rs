//! Paying by card, around the hosted page (the card itself never comes here):
//! - `GET /card.js`: Malipo's own script for the card option (served with SRI on the
//!   page): on the shopper's first tap it asks for a processor session, loads the
//!   processor's `session.js` and mounts its frames; on the second it has the frames send
//!   the card to the processor and posts the form with the processor's session id only.
//! - `POST /pay/{id}/card/session`: a processor session for the frames.
//! - `POST /pay/{id}/card` (form: `card_session` from the frames, or nothing without
//!   JavaScript; `quotes`): 303 to the processor's hosted page, a page sending the
//!   shopper to the issuer's 3-D Secure challenge, or 303 back to the checkout page.
//! - `GET|POST /pay/{id}/card/return/{attempt}/{token}`: back from the processor or the
//!   issuer; 303 to the checkout page, which shows how it ended.

use axum::{
    Form, Json, Router,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use std::{net::SocketAddr, sync::LazyLock};

use super::pay::{PayForm, cross_site};
use crate::{
    domain::{SessionId, ids::random_base62},
    payments::{CardNext, PayError},
    startup::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/card.js", get(card_js))
        .route("/pay/{id}/card", post(pay_card))
        .route("/pay/{id}/card/session", post(card_session))
        .route(
            "/pay/{id}/card/return/{attempt}/{token}",
            get(returned).post(returned),
        )
}

/// Malipo's card script, as served.
pub const CARD_JS: &str = include_str!("card.js");

/// Its Subresource Integrity value (`sha384-…`), for the page's `<script integrity>`.
pub static CARD_JS_INTEGRITY: LazyLock<String> =
    LazyLock::new(|| crate::tamper::sri(CARD_JS.as_bytes()));

async fn card_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        CARD_JS,
    )
        .into_response()
}

/// Where a refused card request sends the shopper: the page, saying why.
pub(super) fn back(sid: &SessionId, error: Option<&str>) -> Response {
    back_in(sid, error, None)
}

/// [`back`] from a form that carried the shopper's chosen language (`lang`).
pub(super) fn back_in(sid: &SessionId, error: Option<&str>, lang: Option<&str>) -> Response {
    let params: Vec<String> = error
        .map(|e| format!("error={e}"))
        .into_iter()
        .chain(super::locale::back_param(lang))
        .collect();
    let url = if params.is_empty() {
        format!("/pay/{sid}")
    } else {
        format!("/pay/{sid}?{}", params.join("&"))
    };
    Redirect::to(&url).into_response()
}

pub(super) fn error_code(e: &PayError) -> Option<&'static str> {
    Some(match e {
        PayError::SessionNotOpen => return None,
        PayError::NotPayable => "not_payable",
        PayError::InvalidPart => "invalid_part",
        PayError::QuoteChanged => "quote_changed",
        PayError::RailNotConfigured => "rail_unavailable",
        PayError::OperatorDown => "operator_down",
        PayError::Limited { limit, .. } => limit.as_str(),
        PayError::ProcessorUnavailable => "card_unavailable",
        PayError::InvalidPhone | PayError::PreviousUnconfirmed => "unavailable",
        PayError::SessionNotFound => "unavailable",
        PayError::Store(e) => {
            tracing::error!(error = %e, "payment failed");
            "unavailable"
        }
    })
}

/// The checks every card (and PayPal) request passes: a page of ours (same site, its
/// form token), within the per-address limit.
pub(super) fn checked(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    sid: &SessionId,
    form_token: &str,
) -> Result<(), &'static str> {
    if cross_site(headers, &state.config.public_url) {
        return Err("cross_site");
    }
    if !state.checkout.form_token_ok(sid, form_token) {
        return Err("form_expired");
    }
    let client = crate::limits::client_ip(peer.ip(), headers, &state.config.trusted_proxies);
    state
        .pay_limiter
        .check(client, crate::time::now_ms())
        .map_err(|_| "ip_limit")
}

/// [`checked`] for a form post: the answer to a refused one (`None`: go on). A
/// cross-site post is refused outright (403); any other goes back to the page, saying
/// why.
pub(super) fn form_refused(
    state: &AppState,
    peer: SocketAddr,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    sid: &SessionId,
    form: &PayForm,
) -> Option<Response> {
    match checked(state, peer, headers, sid, &form.form_token) {
        Ok(()) => None,
        Err("cross_site") => Some(super::pay::cross_site_refusal(uri, headers)),
        Err(code) => Some(back_in(sid, Some(code), form.lang.as_deref())),
    }
}

async fn pay_card(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Form(form): Form<PayForm>,
) -> Response {
    let Some(sid) = SessionId::parse(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(refused) = form_refused(&state, peer, &uri, &headers, &sid, &form) {
        return refused;
    }
    let lang = form.lang.as_deref();
    super::locale::remember(&state, &sid, &uri, &headers, lang);
    let locale = lang
        .and_then(app::i18n::Locale::parse)
        .unwrap_or_else(|| super::locale::for_request(&uri, &headers));
    let card_session = form.card_session.as_deref().filter(|s| !s.is_empty());
    match state
        .payments
        .start_card(
            &sid,
            card_session,
            form.quote_for(crate::connectors::RailId::Card),
        )
        .await
    {
        Ok(CardNext::Redirect(url)) => Redirect::to(&url).into_response(),
        Ok(CardNext::Challenge { acs_url, creq }) => challenge_page(&acs_url, &creq, locale),
        Ok(CardNext::Page) => back_in(&sid, None, lang),
        Err(PayError::SessionNotFound) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => back_in(&sid, error_code(&e), lang),
    }
}

#[derive(Deserialize)]
struct SessionRequest {
    form_token: String,
}

/// A processor session for the frames, as JSON: `{"session": "SESSION…"}`.
async fn card_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(req): Json<SessionRequest>,
) -> Response {
    let Some(sid) = SessionId::parse(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Err(code) = checked(&state, peer, &headers, &sid, &req.form_token) {
        let status = if code == "ip_limit" {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::FORBIDDEN
        };
        return (status, Json(serde_json::json!({"error": code}))).into_response();
    }
    // Each one is a call to the processor: a few per checkout, not one per request.
    if let Err(retry_after) = state
        .card_sessions
        .check_key(sid.to_string(), crate::time::now_ms())
    {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after.to_string())],
            Json(serde_json::json!({"error": "session_limit"})),
        )
            .into_response();
    }
    match state.payments.card_session(&sid).await {
        Ok(session) => Json(serde_json::json!({"session": session})).into_response(),
        Err(e) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({"error": error_code(&e).unwrap_or("session_not_open")})),
        )
            .into_response(),
    }
}

/// Back from the processor's hosted page or the issuer: settle, then the page.
async fn returned(
    State(state): State<AppState>,
    Path((id, attempt, token)): Path<(String, String, String)>,
) -> Response {
    let Some(sid) = SessionId::parse(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match state.payments.card_returned(&attempt, &token).await {
        Ok(paid) if paid == sid => back(&sid, None),
        Ok(_) | Err(crate::payments::CallbackError::Forbidden) => {
            StatusCode::NOT_FOUND.into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "settling a card return failed");
            back(&sid, Some("unavailable"))
        }
    }
}

/// A page that sends the shopper's browser to the issuer's challenge: a form posting the
/// `creq` (on its own with JavaScript; a button without). Its CSP lets the form go only
/// to the issuer's origin.
fn challenge_page(acs_url: &str, creq: &str, locale: app::i18n::Locale) -> Response {
    let Some(acs_origin) = url::Url::parse(acs_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http"))
        .map(|u| u.origin().ascii_serialization())
    else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let esc = crate::sandbox::esc;
    let nonce = random_base62(22);
    let html = format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/pkg/malipo.css\"></head>\
         <body><main class=\"page\" data-page=\"card-challenge\"><p>{}</p>\
         <form id=\"acs\" method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"creq\" value=\"{}\">\
         <button class=\"button\">{}</button></form></main>\
         <script nonce=\"{nonce}\">document.getElementById('acs').submit();</script></body></html>",
        esc(locale.challenge_title()),
        esc(locale.challenge_body()),
        esc(acs_url),
        esc(creq),
        esc(locale.challenge_button()),
        lang = locale.code(),
    );
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; \
         form-action {acs_origin}; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut response = Html(html).into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
