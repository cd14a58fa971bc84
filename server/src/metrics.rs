//! `GET /metrics`: the process's figures in Prometheus's text format, for an operator's
//! scraper. Counters and histograms are kept as things happen (one process-wide set, as
//! Prometheus clients do); gauges that describe a state (queues, breakers, streams, the
//! database pool) are read when scraped.
//!
//! Who may read it: a scraper on this machine (a loopback peer whose request came
//! through no proxy), or one presenting `[metrics] token` as a bearer token. Anyone else
//! gets `404`: volumes per rail are the merchants' business.

use std::{sync::LazyLock, time::Instant};

use axum::{
    Router,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use secrecy::ExposeSecret;

use crate::{connectors::RailId, domain::Mode, startup::AppState};

/// Every figure, registered once.
pub struct Metrics {
    registry: Registry,
    started: IntCounterVec,
    settled: IntCounterVec,
    callback_seconds: HistogramVec,
    poller_lag_ms: IntGaugeVec,
    webhook_failures: IntCounterVec,
    webhook_queue: IntGaugeVec,
    breakers: IntGaugeVec,
    streams: IntGauge,
    pool: IntGaugeVec,
    pool_wait_seconds: prometheus::Histogram,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some("malipo".into()), None).expect("a valid metrics prefix");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("registered once");
            h
        };
        let streams = IntGauge::new("sse_streams_open", "Hosted pages' event streams open.")
            .expect("valid metric");
        registry
            .register(Box::new(streams.clone()))
            .expect("registered once");
        let pool_wait_seconds = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "db_pool_wait_seconds",
                "How long taking a database connection from the pool waited (sampled at each \
                 scrape).",
            )
            .buckets(vec![0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(pool_wait_seconds.clone()))
            .expect("registered once");
        Metrics {
            started: counter(
                "payments_started_total",
                "Payment attempts started, by rail.",
                &["rail"],
            ),
            settled: counter(
                "payments_settled_total",
                "Payment attempts that reached a final status (or became unknown), by rail \
                 and outcome.",
                &["rail", "outcome"],
            ),
            callback_seconds: histogram(
                "callback_to_settled_seconds",
                "From an operator's callback arriving to its payment settled (or the callback \
                 refused), by rail.",
                &["rail"],
                vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            ),
            poller_lag_ms: gauge(
                "poller_lag_milliseconds",
                "How late the status poller's last pass took its most overdue attempt, by mode.",
                &["mode"],
            ),
            webhook_failures: counter(
                "webhook_failures_total",
                "Webhook posts that failed, by class (timeout, connect_failed, http_status, \
                 blocked, redirect_refused, request_failed).",
                &["class"],
            ),
            webhook_queue: gauge(
                "webhook_queue_depth",
                "Webhook deliveries waiting to be posted (pending), by mode.",
                &["mode"],
            ),
            breakers: gauge(
                "operator_breaker_state",
                "Each operator's circuits (pushes, status queries), by rail, mode and whose \
                 credentials: 0 closed, 1 open, 2 half-open (one probe).",
                &["circuit", "rail", "mode", "credentials"],
            ),
            streams,
            pool: gauge(
                "db_pool_connections",
                "Database pool connections, by state (idle, in_use).",
                &["state"],
            ),
            pool_wait_seconds,
            registry,
        }
    }
}

/// An attempt started on `rail`.
pub fn started(rail: RailId) {
    METRICS.started.with_label_values(&[rail.as_str()]).inc();
}

/// An attempt on `rail` reached `outcome` (its final status, or `unknown`).
pub fn settled(rail: RailId, outcome: &str) {
    METRICS
        .settled
        .with_label_values(&[rail.as_str(), outcome])
        .inc();
}

/// A callback for `rail` was handled, `since` it arrived.
pub fn callback_handled(rail: RailId, since: Instant) {
    METRICS
        .callback_seconds
        .with_label_values(&[rail.as_str()])
        .observe(since.elapsed().as_secs_f64());
}

/// The poller's pass in `mode` took an attempt due `lag_ms` ago at the most.
pub fn poller_lag(mode: Mode, lag_ms: i64) {
    METRICS
        .poller_lag_ms
        .with_label_values(&[mode.as_str()])
        .set(lag_ms.max(0));
}

/// A webhook post failed with `class`.
pub fn webhook_failed(class: &str) {
    METRICS.webhook_failures.with_label_values(&[class]).inc();
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Whether this request may read the figures (and `/readyz`'s operators): a loopback
/// peer not behind a proxy, or the configured token.
pub(crate) fn allowed(state: &AppState, peer: std::net::SocketAddr, headers: &HeaderMap) -> bool {
    let token = state.config.metrics.token.expose_secret();
    if !token.is_empty() {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if crate::connectors::shared::same(presented, token) {
            return true;
        }
    }
    // A reverse proxy on this machine makes every visitor look local: a request that
    // came through one (it says so, or the proxy is one of ours) is not served.
    let proxied = crate::limits::came_through_proxy(headers)
        || state.config.trusted_proxies.contains(&peer.ip());
    peer.ip().is_loopback() && !proxied
}

async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !allowed(&state, peer, &headers) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let m = &*METRICS;
    // The states, as they are now.
    m.streams.set(state.live.open_streams() as i64);
    for ((circuit, rail, mode, own), s) in state.payments.breaker_states() {
        let whose = if own { "merchant" } else { "server" };
        m.breakers
            .with_label_values(&[circuit, rail.as_str(), mode.as_str(), whose])
            .set(s);
    }
    let waited = Instant::now();
    match state.store.pool_sample().await {
        Ok((size, idle)) => {
            m.pool_wait_seconds.observe(waited.elapsed().as_secs_f64());
            m.pool.with_label_values(&["idle"]).set(idle as i64);
            m.pool
                .with_label_values(&["in_use"])
                .set((size as i64 - idle as i64).max(0));
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the database pool gave no connection"),
    }
    for mode in [Mode::Test, Mode::Live] {
        match state.store.webhook_queue_depth(mode).await {
            Ok(n) => m.webhook_queue.with_label_values(&[mode.as_str()]).set(n),
            Err(e) => tracing::warn!(error = %e, "metrics: webhook queue depth unavailable"),
        }
    }
    let mut body = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&m.registry.gather(), &mut body) {
        tracing::error!(error = %e, "metrics: encoding failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response()
}
