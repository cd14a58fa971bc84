//! The HTTP surface: each area exposes a `router()`, merged here with the layers every
//! response gets.

mod callbacks;
mod card;
mod compress;
pub mod error;
mod health;
pub mod locale;
mod pages;
mod pay;
mod paypal;
pub mod serve;

use axum::{
    Router,
    extract::MatchedPath,
    http::{HeaderName, HeaderValue, Request, header},
};
use std::time::Duration;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::startup::AppState;

/// The Subresource Integrity value of Malipo's card script (`/card.js`).
pub fn card_js_integrity() -> String {
    card::CARD_JS_INTEGRITY.clone()
}

/// Malipo's card script, as served.
pub fn card_js() -> &'static str {
    card::CARD_JS
}

/// The whole application router.
///
/// Each `Router::layer` call wraps every route in a box of its own, which each request
/// clones (every box inside it too) and whose future it boxes again, so the layers
/// every answer gets are given as one stack ([`tower::ServiceBuilder`]): one box per
/// route, not one per layer.
pub fn router(state: AppState) -> Router {
    // HSTS only when Malipo is served over https (never on a plain-http test server).
    let hsts = state.config.public_url.starts_with("https://");
    let trace = || {
        TraceLayer::new_for_http()
            .make_span_with(request_span as fn(&Request<axum::body::Body>) -> tracing::Span)
            .on_response(DefaultOnResponse::new().level(Level::INFO))
    };
    let house = move |res| house_headers(res, hsts);
    Router::new()
        .merge(health::router())
        .merge(crate::metrics::router())
        .merge(crate::api::router(&state))
        .merge(crate::sandbox::router())
        .merge(callbacks::router())
        .merge(pay::router())
        .merge(card::router())
        .merge(paypal::router())
        .merge(crate::embed::router())
        .merge(crate::dashboard::router())
        .merge(
            pages::router(&state)
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    crate::embed::frame_policy,
                ))
                // Rendering a page must not hang. Only pages: cutting a write midway (a
                // push, a callback, an idempotent POST) would leave it half-known.
                .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    REQUEST_TIMEOUT,
                )),
        )
        .layer(
            tower::ServiceBuilder::new()
                .layer(trace())
                // Pages, assets and API answers (a "busy" one too) are compressed for
                // clients that ask, when big enough to gain from it.
                .layer(compress::CompressLayer::new())
                .map_response(house)
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    front_door,
                )),
        )
        // Event streams are never compressed (each line must leave as it is written),
        // so they are served outside that layer: its body type, held for a stream's
        // whole life, is ≈ 6 kB per waiting page even when it compresses nothing. They
        // are outside the front door too: never shed, and bodiless.
        .merge(
            pay::events_router().layer(
                tower::ServiceBuilder::new()
                    .layer(trace())
                    .map_response(house),
            ),
        )
        .with_state(state)
}

/// A request's log span (the request log line at its end, with `merchant` filled in
/// by the key check).
fn request_span(req: &Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!(
        "http",
        method = %req.method(),
        route = route_template(req),
        merchant = tracing::field::Empty,
    )
}

/// What a request's log line names: the matched route's template
/// (`/callbacks/mpesa/{attempt}/{token}`), never the raw path, which carries callback
/// tokens, session ids (capabilities) and phone numbers. Unmatched paths are not logged.
fn route_template<B>(req: &Request<B>) -> &str {
    req.extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str)
}

/// The front door, one layer (each layer costs every request a boxed future and a
/// copy of the service below it): while the database is slow, the API and the pay
/// forms answer "busy" at once instead of joining a queue ([`crate::shed`]); and a
/// request's body must arrive within the header timeout too: a client that sends
/// headers, then trickles its body, would otherwise hold a connection place for ever
/// (hyper's header-read timeout stops at the headers).
async fn front_door(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let deadline = Duration::from_secs(state.config.header_read_timeout_secs);
    // The body first, even when the answer will be "busy": closing a connection with
    // unread data makes the kernel reset it, which can wipe the answer before the
    // client reads it.
    let req = match whole_body(deadline, req).await {
        Ok(req) => req,
        Err(refused) => return refused,
    };
    if let Some(busy) = crate::shed::refusal(&state, &req) {
        return busy;
    }
    next.run(req).await
}

/// The headers every answer carries unless its route set its own.
static HOUSE_HEADERS: [(HeaderName, HeaderValue); 6] = [
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    // Checkout URLs are capabilities: never leak them to other sites.
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
    ),
    (
        HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex, nofollow"),
    ),
    // Answers are private unless a route says otherwise (assets, checkout.js): hosted
    // pages and API answers carry capabilities and secrets.
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    // Only when Malipo is served over https (never on a plain-http test server).
    (
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    ),
];

/// Adds [`HOUSE_HEADERS`] to an answer.
fn house_headers(mut res: axum::response::Response, hsts: bool) -> axum::response::Response {
    let headers = res.headers_mut();
    headers.reserve(HOUSE_HEADERS.len());
    for (name, value) in &HOUSE_HEADERS {
        if (hsts || name != header::STRICT_TRANSPORT_SECURITY) && !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    res
}

/// Largest request body any route takes (each route has its own, smaller, limit).
const MAX_ANY_BODY: usize = 1024 * 1024;

/// Reads the whole request body within `deadline` before the route sees it: 408 if it
/// does not come in time, 413 past [`MAX_ANY_BODY`]. Bodiless requests pass straight on.
async fn whole_body(
    deadline: Duration,
    req: Request<axum::body::Body>,
) -> Result<Request<axum::body::Body>, axum::response::Response> {
    use axum::response::IntoResponse;
    let empty = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_none_or(|v| v == "0")
        && !req.headers().contains_key(header::TRANSFER_ENCODING);
    if empty {
        return Ok(req);
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, MAX_ANY_BODY)).await {
        Ok(Ok(bytes)) => Ok(Request::from_parts(parts, axum::body::Body::from(bytes))),
        Ok(Err(_)) => Err(axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response()),
        Err(_) => Err(axum::http::StatusCode::REQUEST_TIMEOUT.into_response()),
    }
}

/// The longest a page may take to start its response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a browser may reuse `/pkg` assets before revalidating.
pub(crate) const ASSET_MAX_AGE: Duration = Duration::from_secs(3600);
