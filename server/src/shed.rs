//! Shedding load instead of queueing (the December 2018 lesson: M-PESA's customers waited
//! with no answer behind a slow database). A probe takes a connection from the database
//! pool every [`PROBE_EVERY`]; when, twice in a row, the pool had no idle connection left
//! and taking one waited longer than `[limits] busy_wait_ms` (the database is slow to give
//! connections back), this instance is *busy* for [`BUSY_HOLD_MS`] and, until a probe is
//! fast again:
//!
//! - the merchant API answers `503 busy` with `Retry-After` at once, having done nothing;
//! - a shopper's pay form answers "Busy right now — this tap sent nothing" (true: no push
//!   was sent now), and the hosted page "Busy right now";
//! - operators' callbacks, the pages' event streams (served from memory), health and
//!   metrics are never shed: an operator's word is never refused for load.
//!
//! `/readyz` says `"load": "busy"` (still 200: every instance shares the database, and
//! taking them all out of the balancer would turn slowness into an outage).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    extract::Request,
    http::{Method, StatusCode, header},
    response::{Html, IntoResponse, Response},
};

use crate::{http::error::ApiError, startup::AppState, store::Store};

/// How often the probe takes a connection.
pub const PROBE_EVERY: Duration = Duration::from_millis(200);
/// How long one slow probe keeps the instance busy.
pub const BUSY_HOLD_MS: i64 = 3_000;
/// What `Retry-After` says, in seconds.
pub const RETRY_AFTER_SECS: i64 = 5;

/// Whether the database is too slow to take more work just now. Cheap to read.
#[derive(Debug)]
pub struct Pressure {
    /// Monotonic (a wall-clock step never keeps the instance busy): ms since `base`.
    base: Instant,
    busy_until: AtomicU64,
    /// The last probe got no connection at all (not merely a slow one): `/readyz` then
    /// asks the database itself instead of answering "busy".
    failed: AtomicBool,
    threshold: Duration,
}

impl Pressure {
    pub fn new(threshold: Duration) -> Pressure {
        Pressure {
            base: Instant::now(),
            busy_until: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            threshold,
        }
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// Whether this instance sheds work now.
    pub fn busy(&self) -> bool {
        self.now() < self.busy_until.load(Ordering::Relaxed)
    }

    /// Whether the last probe got no connection at all (the database may be down).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn mark_busy(&self) {
        self.busy_until
            .store(self.now() + BUSY_HOLD_MS as u64, Ordering::Relaxed);
    }
}

/// Probes the pool until aborted.
pub async fn run_probe(store: Store, pressure: Arc<Pressure>) {
    let mut was_busy = false;
    let mut slow_in_a_row = 0u32;
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        // Only a pool with nothing idle can make anyone wait: a slow probe on a pool
        // with connections to spare is this machine's CPU, not the database.
        let saturated = store.pool_saturated();
        let started = Instant::now();
        let taken = tokio::time::timeout(pressure.threshold, store.pool_sample()).await;
        pressure
            .failed
            .store(matches!(taken, Ok(Err(_))), Ordering::Relaxed);
        let failed = matches!(taken, Ok(Err(_)));
        let slow =
            failed || (saturated && (taken.is_err() || started.elapsed() > pressure.threshold));
        slow_in_a_row = if slow { slow_in_a_row + 1 } else { 0 };
        if slow_in_a_row >= 2 {
            pressure.mark_busy();
        }
        let busy = pressure.busy();
        if busy != was_busy {
            if busy {
                tracing::warn!(
                    threshold_ms = pressure.threshold.as_millis() as u64,
                    "database slow to give a connection: shedding API calls and pay forms"
                );
            } else {
                tracing::info!("database answering again: taking work");
            }
            was_busy = busy;
        }
    }
}

/// What a request is, for shedding.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// The merchant API (`/v1/…`).
    Api,
    /// A shopper's pay form (`POST /pay/{id}/{rail}`): nothing is charged if refused.
    PayForm,
    /// The hosted page (`GET /pay/{id}`).
    Page,
    /// Everything else: never shed.
    Other,
}

fn kind(method: &Method, path: &str) -> Kind {
    // The embed script is a static file on merchants' storefronts: never shed.
    if path.starts_with("/v1/") && path != "/v1/checkout.js" {
        return Kind::Api;
    }
    let Some(rest) = path.strip_prefix("/pay/") else {
        return Kind::Other;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match (method, parts.as_slice()) {
        (&Method::GET, [_]) => Kind::Page,
        // Not the event stream (memory) nor the card script's endpoints' reads.
        (&Method::POST, [_, rail]) if crate::connectors::RailId::parse(rail).is_some() => {
            Kind::PayForm
        }
        _ => Kind::Other,
    }
}

/// The shopper's page while busy: tiny, no script, honest about what happened, in the
/// request's language.
fn busy_page(charged_nothing: bool, locale: app::i18n::Locale) -> Response {
    let esc = crate::sandbox::esc;
    let line = esc(if charged_nothing {
        locale.busy_tap()
    } else {
        locale.busy()
    });
    let html = format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title></head><body>\
         <h1>{title}</h1><p data-code=\"busy\">{line}</p>\
         <p><a href=\"\">{}</a></p></body></html>",
        locale.code(),
        esc(locale.try_again()),
        title = esc(locale.busy_title()),
    );
    let mut res = (StatusCode::SERVICE_UNAVAILABLE, Html(html)).into_response();
    res.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(RETRY_AFTER_SECS),
    );
    res.headers_mut().insert(
        header::CONTENT_LANGUAGE,
        header::HeaderValue::from_static(locale.code()),
    );
    res
}

/// While busy, the answer to sheddable work (given at once, without a connection from
/// the pool); `None` lets the request through. Called by the front-door layer
/// (`http::front_door`) once it has read the request's body.
pub fn refusal(state: &AppState, req: &Request) -> Option<Response> {
    if !state.pressure.busy() {
        return None;
    }
    let locale = || crate::http::locale::for_request(req.uri(), req.headers());
    match kind(req.method(), req.uri().path()) {
        Kind::Api => Some(
            ApiError::Busy {
                retry_after: RETRY_AFTER_SECS,
            }
            .into_response(),
        ),
        Kind::PayForm => Some(busy_page(true, locale())),
        Kind::Page => Some(busy_page(false, locale())),
        Kind::Other => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_api_pay_forms_and_pages_are_shed() {
        assert_eq!(kind(&Method::POST, "/v1/checkout/sessions"), Kind::Api);
        assert_eq!(kind(&Method::GET, "/v1/checkout/sessions/cs_1"), Kind::Api);
        assert_eq!(kind(&Method::GET, "/v1/checkout.js"), Kind::Other);
        assert_eq!(kind(&Method::POST, "/pay/cs_1/mpesa"), Kind::PayForm);
        assert_eq!(kind(&Method::GET, "/pay/cs_1"), Kind::Page);
        for (m, p) in [
            (Method::GET, "/pay/cs_1/events"),
            (Method::POST, "/callbacks/mpesa/pa_1/tok"),
            (Method::POST, "/callbacks/airtel"),
            (Method::GET, "/readyz"),
            (Method::GET, "/metrics"),
            (Method::POST, "/pay/cs_1/card/session"),
            (Method::GET, "/dashboard"),
        ] {
            assert_eq!(kind(&m, p), Kind::Other, "{p}");
        }
    }
}
