//! `POST/GET /v1/webhook_endpoints`, `GET/DELETE /v1/webhook_endpoints/{id}`,
//! `POST /v1/webhook_endpoints/{id}/rotate_secret`.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Serialize;
use serde_json::Value;

use super::{
    Caller,
    body::{json_object, missing, optional_json_object, text, whole_number},
};
use crate::{
    api::openapi::{CreateEndpointParams, ErrorBody, PostErrors, ReadErrors, RotateSecretParams},
    domain::WebhookEndpointId,
    http::error::ApiError,
    resources::{EventType, List, WebhookEndpointObject},
    startup::AppState,
    store::EndpointRecord,
    time::now_ms,
    webhooks::{self, DEFAULT_ROTATION_OVERLAP_SECS, EndpointError},
};

impl From<EndpointError> for ApiError {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::InvalidUrl => ApiError::invalid(
                "invalid_url",
                "url",
                "url must be an absolute https URL on a public host (test mode also allows http:// and local or private addresses).",
            ),
            EndpointError::UnknownEvent(t) => {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                ApiError::invalid(
                    "unknown_event_type",
                    "enabled_events",
                    format!(
                        "{t:?} is not an event type; use \"*\" or any of {}.",
                        known.join(", ")
                    ),
                )
            }
            EndpointError::NoEvents => ApiError::invalid(
                "parameter_invalid",
                "enabled_events",
                "enabled_events must list at least one event type, or \"*\".",
            ),
            EndpointError::TooMany => ApiError::EndpointLimitReached,
            EndpointError::InvalidOverlap => ApiError::invalid(
                "parameter_invalid",
                "expires_in",
                format!(
                    "expires_in must be whole seconds from 0 to {}.",
                    webhooks::MAX_ROTATION_OVERLAP_SECS
                ),
            ),
            EndpointError::NotFound => ApiError::WebhookEndpointNotFound,
            EndpointError::Store(e) => e.into(),
        }
    }
}

/// Fields accepted by create and rotate.
pub(crate) const CREATE_FIELDS: [&str; 3] = ["url", "enabled_events", "description"];
pub(crate) const ROTATE_FIELDS: [&str; 1] = ["expires_in"];

/// Register a webhook endpoint. The answer holds its signing `secret`, shown only here.
#[utoipa::path(post, path = "/v1/webhook_endpoints", tag = "webhooks",
    request_body = CreateEndpointParams,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the POST safe to retry: the first answer is replayed")),
    responses(
        (status = 201, description = "Created; `secret` is shown once", body = WebhookEndpointObject),
        PostErrors,
        (status = 409, description = "Already 16 endpoints in this mode (`endpoint_limit_reached`), or a request with this Idempotency-Key is still running (`idempotency_key_in_use`)", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<WebhookEndpointObject>), ApiError> {
    let obj = json_object(&body, &CREATE_FIELDS)?;
    let url = text(&obj, "url", 2048, true)?.unwrap_or_default();
    let description = text(&obj, "description", 200, false)?.unwrap_or_default();
    let events = match obj.get("enabled_events") {
        None | Some(Value::Null) => return Err(missing("enabled_events")),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(ApiError::invalid(
                    "parameter_invalid",
                    "enabled_events",
                    "enabled_events must be an array of strings.",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(ApiError::invalid(
                "parameter_invalid",
                "enabled_events",
                "enabled_events must be an array of strings.",
            ));
        }
    };
    let now = now_ms();
    let endpoint = webhooks::create_endpoint(
        &state.store,
        &caller.merchant_id,
        caller.mode,
        &url,
        &events,
        &description,
        now,
    )
    .await?;
    tracing::info!(endpoint = %endpoint.id, "webhook endpoint created");
    Ok((
        StatusCode::CREATED,
        Json(WebhookEndpointObject::with_secret(&endpoint, now)),
    ))
}

/// The merchant's endpoints in the key's mode.
#[utoipa::path(get, path = "/v1/webhook_endpoints", tag = "webhooks",
    responses(
        (status = 200, description = "Every endpoint (no secrets)", body = List<WebhookEndpointObject>),
        ReadErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<List<WebhookEndpointObject>>, ApiError> {
    let now = now_ms();
    let endpoints = state
        .store
        .endpoints(&caller.merchant_id, caller.mode)
        .await?;
    Ok(Json(List::new(
        endpoints
            .iter()
            .map(|e| WebhookEndpointObject::new(e, now))
            .collect(),
        false,
    )))
}

/// One endpoint (without its secret).
#[utoipa::path(get, path = "/v1/webhook_endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "we_…")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookEndpointObject),
        ReadErrors,
        (status = 404, description = "No such endpoint (`webhook_endpoint_not_found`)", body = ErrorBody),
    )
)]
pub async fn retrieve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<WebhookEndpointObject>, ApiError> {
    let endpoint = owned_endpoint(&state, &caller, &id).await?;
    Ok(Json(WebhookEndpointObject::new(&endpoint, now_ms())))
}

/// The answer to a delete.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub id: String,
    /// Always `webhook_endpoint`.
    #[schema(value_type = String)]
    pub object: &'static str,
    /// Always true.
    pub deleted: bool,
}

/// Delete an endpoint; deliveries still pending to it are dropped.
#[utoipa::path(delete, path = "/v1/webhook_endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "we_…")),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        ReadErrors,
        (status = 404, description = "No such endpoint (`webhook_endpoint_not_found`)", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let endpoint = owned_endpoint(&state, &caller, &id).await?;
    if !state.store.delete_endpoint(&endpoint.id, now_ms()).await? {
        return Err(ApiError::WebhookEndpointNotFound);
    }
    tracing::info!(endpoint = %endpoint.id, "webhook endpoint deleted");
    Ok(Json(Deleted {
        id: endpoint.id.to_string(),
        object: "webhook_endpoint",
        deleted: true,
    }))
}

/// Replace the signing secret; the old one keeps signing for `expires_in` seconds.
#[utoipa::path(post, path = "/v1/webhook_endpoints/{id}/rotate_secret", tag = "webhooks",
    request_body(content = RotateSecretParams, description = "Optional; an empty body means the defaults"),
    params(("id" = String, Path, description = "we_…"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the POST safe to retry: the first answer is replayed")),
    responses(
        (status = 200, description = "Rotated; the new `secret` is shown once", body = WebhookEndpointObject),
        PostErrors,
        (status = 404, description = "No such endpoint (`webhook_endpoint_not_found`)", body = ErrorBody),
    )
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<WebhookEndpointObject>, ApiError> {
    let obj = optional_json_object(&body, &ROTATE_FIELDS)?;
    let overlap = match obj.get("expires_in") {
        None | Some(Value::Null) => DEFAULT_ROTATION_OVERLAP_SECS,
        Some(Value::Number(n)) => whole_number(n).ok_or(EndpointError::InvalidOverlap)?,
        Some(_) => return Err(EndpointError::InvalidOverlap.into()),
    };
    let endpoint = owned_endpoint(&state, &caller, &id).await?;
    let now = now_ms();
    let endpoint = webhooks::rotate_secret(&state.store, &endpoint.id, overlap, now).await?;
    tracing::info!(endpoint = %endpoint.id, overlap_secs = overlap, "webhook secret rotated");
    Ok(Json(WebhookEndpointObject::with_secret(&endpoint, now)))
}

/// An endpoint of this merchant in this mode; anyone else's reads as not found.
async fn owned_endpoint(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<EndpointRecord, ApiError> {
    let id = WebhookEndpointId::parse(id).ok_or(ApiError::WebhookEndpointNotFound)?;
    match state.store.endpoint(&id).await? {
        Some(e) if e.merchant_id == caller.merchant_id && e.mode == caller.mode => Ok(e),
        _ => Err(ApiError::WebhookEndpointNotFound),
    }
}
