//! `/healthz`: the process is up. `/readyz`: it can reach its database.

use axum::{Json, Router, extract::State, routing::get};
use serde_json::{Value, json};

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

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    // Busy: the pool probe just found the database slow; ready all the same (answering
    // at once, without queueing for a connection), and saying so.
    if state.pressure.busy() && !state.pressure.failed() {
        return Ok(Json(json!({
            "status": "ready",
            "database": state.store.backend().as_str(),
            "load": "busy",
            "operators": state.payments.operator_states(),
        })));
    }
    state.store.ping().await?;
    let load = "ok";
    Ok(Json(json!({
        "status": "ready",
        "database": state.store.backend().as_str(),
        "load": load,
        "operators": state.payments.operator_states(),
    })))
}
