//! The shopper's side of paying, around the hosted page:
//! - `POST /pay/{id}/{rail}` (form: `phone`, and `quotes` where a rail charges another
//!   currency; rail `mpesa`, …) starts the push and answers 303 back to
//!   the page, so it works without JavaScript and a reload never re-posts (an embedded
//!   page posts `?embed=<origin>` and is sent back in embed mode);
//! - `GET /pay/{id}/events`: server-sent events, one line per change of the payment's
//!   live state (see `app::model::LiveState::encode`).

use axum::{
    Form, Router,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{
        IntoResponse, Redirect, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use futures_util::stream;
use serde::Deserialize;
use std::{convert::Infallible, net::SocketAddr, time::Duration};

use crate::{
    checkout::{prefill_candidates, resolve_phone},
    connectors::RailId,
    domain::{SessionId, phone::mask},
    payments::{Limit, PayError},
    resources::PaymentRefusalObject,
    startup::AppState,
    time::now_ms,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/pay/{id}/{rail}", post(pay))
        .route("/pay/{id}/rescue", post(rescue))
}

/// The "I paid, here is the code" form.
#[derive(Deserialize)]
struct RescueForm {
    #[serde(default)]
    form_token: String,
    /// The receipt code, or the whole confirmation SMS.
    #[serde(default)]
    code: String,
    #[serde(default)]
    lang: Option<String>,
}

/// `POST /pay/{id}/rescue`: checks the shopper's receipt code with the operator (see
/// `payments::rescue`), then back to the page: `?rescue=checking`, or `?error=rescue_…`.
async fn rescue(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Query(query): Query<EmbedQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Form(form): Form<RescueForm>,
) -> Response {
    let Some(sid) = SessionId::parse(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if cross_site(&headers, &state.config.public_url) {
        return cross_site_refusal(&uri, &headers);
    }
    let kept: Vec<String> = query
        .back_param()
        .into_iter()
        .chain(super::locale::back_param(form.lang.as_deref()))
        .collect();
    let back = |outcome: &str| {
        let params = kept.iter().map(String::as_str).chain([outcome]);
        Redirect::to(&format!(
            "/pay/{sid}?{}",
            params.collect::<Vec<_>>().join("&")
        ))
        .into_response()
    };
    if !state.checkout.form_token_ok(&sid, &form.form_token) {
        return back("error=form_expired");
    }
    let client = crate::limits::client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    if state.pay_limiter.check(client, now_ms()).is_err() {
        return back("error=ip_limit");
    }
    // At most 200 characters are read: a pasted SMS is shorter.
    let text: String = form.code.chars().take(200).collect();
    match state.payments.rescue(&sid, &text).await {
        Ok(_) => back("rescue=checking"),
        Err(crate::payments::rescue::RescueError::SessionNotFound) => {
            StatusCode::NOT_FOUND.into_response()
        }
        Err(e) => {
            if let crate::payments::rescue::RescueError::Store(err) = &e {
                tracing::error!(error = %err, "a receipt check failed");
            }
            back(&format!("error={}", e.code()))
        }
    }
}

/// The event stream, apart: it is served outside the compression layer (see
/// [`super::router`]).
pub fn events_router() -> Router<AppState> {
    Router::new().route("/pay/{id}/events", get(events))
}

#[derive(Deserialize)]
struct EmbedQuery {
    embed: Option<String>,
}

impl EmbedQuery {
    /// `embed=…` for the way back to the page, still embedded if it was (the page
    /// re-checks the origin).
    fn back_param(&self) -> Option<String> {
        self.embed
            .as_deref()
            .and_then(crate::embed::parse_origin)
            .map(|o| {
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("embed", &o)
                    .finish()
            })
    }
}

/// The event stream's language (`?lang=sw`): failure lines carry their words in it.
#[derive(Deserialize)]
struct EventsQuery {
    lang: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct PayForm {
    #[serde(default)]
    phone: String,
    /// The card processor's session the frames filled (cards, with JavaScript).
    #[serde(default)]
    pub(super) card_session: Option<String>,
    /// The shopper ticked "No M-PESA confirmation SMS came" for an unconfirmed push.
    #[serde(default)]
    no_sms: Option<String>,
    /// The page's form token (see `CheckoutService::form_token`).
    #[serde(default)]
    pub(super) form_token: String,
    /// The language the shopper chose on the page, carried back to it (a framed page
    /// may have no cookie).
    #[serde(default)]
    pub(super) lang: Option<String>,
    /// The shopper's choice of rail on a page offering several (radio buttons); the
    /// path's rail is the page's default.
    #[serde(default)]
    rail: Option<String>,
    /// The quotes the page showed, one per rail charging another currency than the
    /// price's: `mpesa:TOKEN,airtel:TOKEN` (see `fx::Quote::token`).
    #[serde(default)]
    quotes: String,
    /// Paying in parts: the amount to pay now, in major units of the price's currency
    /// (`250,000`); absent or empty: all that is left.
    #[serde(default)]
    part: Option<String>,
}

impl PayForm {
    /// The quote the page showed for `rail`, if any.
    pub(super) fn quote_for(&self, rail: RailId) -> Option<&str> {
        self.quotes
            .split(',')
            .filter_map(|q| q.split_once(':'))
            .find(|(r, _)| *r == rail.as_str())
            .map(|(_, token)| token)
    }
}

/// True when the browser says the post came from another site. Browsers send
/// `Sec-Fetch-Site` on form posts, and it decides. `Origin` counts when it names a
/// site: our own pages send `Origin: null` (their `Referrer-Policy: no-referrer` makes
/// browsers hide it), so `null` says nothing. Proxy browsers (Opera Mini) may send
/// neither; then the form token alone decides.
pub(super) fn cross_site(headers: &HeaderMap, public_url: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match header("origin") {
        None | Some("null") => false,
        Some(origin) => {
            let ours = crate::embed::parse_origin(public_url);
            // The page's own address as this request reached us (a proxy may serve it
            // under another name than the public URL's).
            let host = header("host").map(|h| h.to_ascii_lowercase());
            let authority = origin
                .split_once("://")
                .map(|(_, a)| a.to_ascii_lowercase());
            ours.as_deref() != Some(origin) && (host.is_none() || authority != host)
        }
    }
}

async fn pay(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, rail)): Path<(String, String)>,
    Query(query): Query<EmbedQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Form(form): Form<PayForm>,
) -> Response {
    let (Some(sid), Some(path_rail)) = (SessionId::parse(&id), RailId::parse(&rail)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let rail = match form.rail.as_deref() {
        None | Some("") => path_rail,
        Some(chosen) => match RailId::parse(chosen) {
            Some(r) => r,
            None => return StatusCode::NOT_FOUND.into_response(),
        },
    };
    if cross_site(&headers, &state.config.public_url) {
        return cross_site_refusal(&uri, &headers);
    }
    let embed = query.back_param();
    let lang = super::locale::back_param(form.lang.as_deref());
    let back_after = |error: Option<&str>, retry_after: Option<i64>| {
        let mut params: Vec<String> = embed.iter().chain(lang.iter()).cloned().collect();
        params.extend(error.map(|e| format!("error={e}")));
        params.extend(retry_after.map(|s| format!("retry_after={s}")));
        let url = if params.is_empty() {
            format!("/pay/{sid}")
        } else {
            format!("/pay/{sid}?{}", params.join("&"))
        };
        Redirect::to(&url).into_response()
    };
    let back = |error: Option<&str>| back_after(error, None);
    if !state.checkout.form_token_ok(&sid, &form.form_token) {
        return back(Some("form_expired"));
    }
    let now = now_ms();
    // Read once for the masked prefill and for refusal events.
    let (session, latest) = match (
        state.store.session(&sid).await,
        state.store.latest_attempt(&sid).await,
    ) {
        (Ok(Some(s)), Ok(latest)) => (s, latest),
        (Ok(None), _) => return StatusCode::NOT_FOUND.into_response(),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "starting payment failed");
            return back(Some("unavailable"));
        }
    };
    let refuse = async |limit: Limit, payer: Option<String>, retry_after: Option<i64>| {
        // Announced once a minute per session and limit: hammering must not turn
        // every refused request into a write and a webhook.
        if state
            .refusals
            .first(format!("{sid}:{}", limit.as_str()), now)
        {
            let refusal = PaymentRefusalObject {
                object: "payment_refusal",
                checkout_session: sid.to_string(),
                reason: limit.as_str(),
                payer,
                retry_after,
                created: now / 1000,
                livemode: session.mode == crate::domain::Mode::Live,
            };
            if let Err(e) = state.store.record_refusal(&sid, &refusal, now).await {
                tracing::warn!(error = %e, "recording a refusal failed");
            }
        }
        tracing::info!(session = %sid, limit = limit.as_str(), "pay request refused by a limit");
        back_after(Some(limit.as_str()), retry_after)
    };
    let client = crate::limits::client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    if let Err(retry_after) = state.pay_limiter.check(client, now) {
        return refuse(Limit::Ip, None, Some(retry_after)).await;
    }
    let Some(phone) = resolve_phone(&form.phone, &prefill_candidates(&session, latest.as_ref()))
    else {
        return back(Some("invalid_phone"));
    };
    let part = match form
        .part
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        None => None,
        Some(text) => match crate::domain::money::parse_major(text, session.amount.currency()) {
            Some(minor) => Some(minor),
            None => return back(Some("invalid_part")),
        },
    };
    super::locale::remember(&state, &sid, &uri, &headers, form.lang.as_deref());
    let no_sms = form.no_sms.as_deref().is_some_and(|v| !v.is_empty());
    match state
        .payments
        .start_at_quote(&sid, rail, &phone, no_sms, form.quote_for(rail), part)
        .await
    {
        Err(PayError::Limited { limit, retry_after }) => {
            let payer = state
                .payments
                .payer_country(
                    &session.merchant_id,
                    session.mode,
                    rail,
                    session.amount.currency(),
                )
                .and_then(|country| crate::domain::phone::Msisdn::parse(&phone, country))
                .map(|m| mask(m.as_str()));
            refuse(limit, payer, retry_after).await
        }
        Ok(_) | Err(PayError::SessionNotOpen) => back(None),
        Err(PayError::SessionNotFound) => StatusCode::NOT_FOUND.into_response(),
        Err(PayError::InvalidPhone) => back(Some("invalid_phone")),
        Err(PayError::PreviousUnconfirmed) => back(Some("confirm_no_sms")),
        Err(PayError::NotPayable) => back(Some("not_payable")),
        Err(PayError::InvalidPart) => back(Some("invalid_part")),
        // The page, reloaded, shows the new quote.
        Err(PayError::QuoteChanged) => back(Some("quote_changed")),
        Err(PayError::RailNotConfigured) => back(Some("rail_unavailable")),
        Err(PayError::OperatorDown) => back(Some("operator_down")),
        Err(PayError::ProcessorUnavailable) => back(Some("unavailable")),
        Err(PayError::Store(e)) => {
            tracing::error!(error = %e, "starting payment failed");
            back(Some("unavailable"))
        }
    }
}

async fn events(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(sid) = SessionId::parse(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let locale = query
        .lang
        .as_deref()
        .and_then(app::i18n::Locale::parse)
        .unwrap_or(app::i18n::Locale::En);
    let currency = match state.store.session(&sid).await {
        Ok(Some(session)) => session.amount.currency(),
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let client = crate::limits::client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    let (guard, rx) = match state.live.open(&sid, client).await {
        Ok(Ok(opened)) => opened,
        // Over a cap: the page still works (its form and the no-JS refresh need no
        // stream), so refuse plainly and let the browser retry later.
        Ok(Err(refused)) => {
            tracing::info!(?refused, "event stream refused by a limit");
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(axum::http::header::RETRY_AFTER, "30")],
            )
                .into_response();
        }
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let follow = Follow {
        _guard: guard,
        rx,
        last: None,
        done: false,
        words: Box::new(move |line: &str| {
            app::model::LiveState::decode(line).map_or_else(
                || line.to_owned(),
                |s| s.with_words(locale, currency.code()),
            )
        }),
    };
    let stream = stream::unfold(follow, |mut f| async move {
        loop {
            if f.done {
                return None;
            }
            let line = f.rx.borrow_and_update().clone();
            if let Some((line, is_final)) = line
                && f.last.as_deref() != Some(line.as_str())
            {
                f.done = is_final;
                f.last = Some(line.clone());
                let data = (f.words)(&line);
                return Some((Ok::<_, Infallible>(Event::default().data(data)), f));
            }
            // Wait for the hub to publish a change (it reads the database once per
            // change, for every stream of the session).
            if f.rx.changed().await.is_err() {
                return None;
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

struct Follow {
    /// Holds this stream's place in the hub's caps until the client goes away.
    _guard: crate::live::StreamGuard,
    rx: tokio::sync::watch::Receiver<crate::live::Line>,
    last: Option<String>,
    done: bool,
    /// The line as this stream's page reads it: a failure with its words in the page's
    /// language.
    words: Box<dyn Fn(&str) -> String + Send>,
}

/// The answer to a form posted from another site, in the request's language.
pub(super) fn cross_site_refusal(uri: &axum::http::Uri, headers: &HeaderMap) -> Response {
    let locale = super::locale::for_request(uri, headers);
    (StatusCode::FORBIDDEN, locale.cross_site()).into_response()
}
