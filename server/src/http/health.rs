//! `/healthz`: the process is up. `/readyz`: it can reach its database (and, to this
//! machine or the metrics token, each operator's circuits).

use axum::{
    Json, Router,
    extract::{ConnectInfo, State},
    http::HeaderMap,
    routing::get,
};
use serde_json::{Value, json};
use std::net::SocketAddr;

use super::error::ApiError;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    // Busy: the pool probe just found the database slow; ready all the same (answering
    // at once, without queueing for a connection), and saying so.
    let load = if state.pressure.busy() && !state.pressure.failed() {
        "busy"
    } else {
        state.store.ping().await?;
        "ok"
    };
    let mut body = json!({
        "status": "ready",
        "database": state.store.backend().as_str(),
        "load": load,
    });
    // Which operators this server has and whose circuit is open would tell anyone when
    // a rail is down; a load balancer needs only the status. So they are shown to the
    // callers `/metrics` serves: this machine (not through a proxy), or its token.
    if crate::metrics::allowed(&state, peer, &headers) {
        body["operators"] = json!(state.payments.operator_states());
    }
    Ok(Json(body))
}
