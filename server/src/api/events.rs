//! `GET /v1/events`, `GET /v1/events/{id}`, `GET /v1/events/{id}/deliveries`,
//! `POST /v1/events/{id}/redeliver`.

use axum::{
    Extension, Json,
    extract::{Path, Query, State},
};
use std::collections::HashMap;

use super::Caller;
use crate::{
    api::openapi::{ErrorBody, PostErrors, ReadErrors},
    domain::{EventId, SessionId},
    http::error::ApiError,
    resources::{EventObject, EventType, List, WebhookDeliveryObject},
    startup::AppState,
    store::{EventFilter, StoredEvent},
    time::now_ms,
};

/// Default and largest page size.
const DEFAULT_LIMIT: i64 = 10;
pub(crate) const MAX_LIMIT: i64 = 100;

/// The merchant's events in the key's mode, newest first.
#[utoipa::path(get, path = "/v1/events", tag = "webhooks",
    params(
        ("limit" = Option<i64>, Query, description = "1–100, default 10"),
        ("starting_after" = Option<String>, Query, description = "An event id: the page after it"),
        ("type" = Option<String>, Query, description = "Only this event type"),
        ("checkout_session" = Option<String>, Query, description = "Only this session's events (cs_…)"),
    ),
    responses(
        (status = 200, description = "One page", body = List<EventObject>),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
        ReadErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<List<EventObject>>, ApiError> {
    const PARAMS: [&str; 4] = ["limit", "starting_after", "type", "checkout_session"];
    if let Some(unknown) = query.keys().find(|k| !PARAMS.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            "unknown_parameter",
            unknown,
            format!("Unknown parameter {unknown}."),
        ));
    }
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::invalid(
                    "parameter_invalid",
                    "limit",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}."),
                )
            })?,
    };
    let starting_after = match query.get("starting_after") {
        None => None,
        Some(id) => Some(EventId::parse(id).ok_or_else(|| {
            ApiError::invalid(
                "parameter_invalid",
                "starting_after",
                "starting_after must be an event id (evt_…).",
            )
        })?),
    };
    let kind = match query.get("type") {
        None => None,
        Some(t) => Some(
            EventType::parse(t)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "unknown_event_type",
                        "type",
                        format!("{t:?} is not an event type."),
                    )
                })?
                .as_str()
                .to_owned(),
        ),
    };
    let session_id = match query.get("checkout_session") {
        None => None,
        Some(id) => Some(
            SessionId::parse(id)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "parameter_invalid",
                        "checkout_session",
                        "checkout_session must be a checkout session id (cs_…).",
                    )
                })?
                .to_string(),
        ),
    };
    let filter = EventFilter {
        kind,
        session_id,
        starting_after,
    };
    let mut events = state
        .store
        .events(&caller.merchant_id, caller.mode, &filter, limit + 1)
        .await?;
    let has_more = events.len() as i64 > limit;
    events.truncate(usize::try_from(limit).unwrap_or(0));
    let data = events
        .iter()
        .map(StoredEvent::object)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(List::new(data, has_more)))
}

/// One event, exactly as delivered.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "evt_…")),
    responses(
        (status = 200, description = "The event", body = EventObject),
        ReadErrors,
        (status = 404, description = "No such event (`event_not_found`)", body = ErrorBody),
    )
)]
pub async fn retrieve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<EventObject>, ApiError> {
    let event = owned_event(&state, &caller, &id).await?;
    Ok(Json(event.object()?))
}

/// An event's deliveries, with every attempt (status, latency, error).
#[utoipa::path(get, path = "/v1/events/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "evt_…")),
    responses(
        (status = 200, description = "One delivery per endpoint", body = List<WebhookDeliveryObject>),
        ReadErrors,
        (status = 404, description = "No such event (`event_not_found`)", body = ErrorBody),
    )
)]
pub async fn deliveries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<List<WebhookDeliveryObject>>, ApiError> {
    let event = owned_event(&state, &caller, &id).await?;
    let deliveries = state.store.deliveries(&event.id).await?;
    Ok(Json(List::new(
        deliveries.iter().map(WebhookDeliveryObject::new).collect(),
        false,
    )))
}

/// Sends the event again, now, to every current endpoint that subscribes to it, and
/// answers with its deliveries. The event keeps its id, so receivers de-duplicate. At
/// most [`REDELIVERIES_PER_MINUTE`] per merchant and mode.
#[utoipa::path(post, path = "/v1/events/{id}/redeliver", tag = "webhooks",
    params(("id" = String, Path, description = "evt_…"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the POST safe to retry: the first answer is replayed")),
    responses(
        (status = 200, description = "Scheduled now; the event's deliveries", body = List<WebhookDeliveryObject>),
        PostErrors,
        (status = 404, description = "No such event (`event_not_found`)", body = ErrorBody),
        (status = 429, description = "More than 20 redeliveries a minute for this merchant and mode (`rate_limited`); `Retry-After` says when", body = ErrorBody),
    )
)]
pub async fn redeliver(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<List<WebhookDeliveryObject>>, ApiError> {
    let event = owned_event(&state, &caller, &id).await?;
    // Redelivery re-fires on demand: bounded, so it cannot be a load generator.
    state
        .redeliveries
        .check_key(
            (caller.merchant_id.to_string(), caller.mode.as_str()),
            now_ms(),
        )
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let scheduled = state.store.redeliver(&event, now_ms()).await?;
    tracing::info!(event = %event.id, scheduled, "event redelivery scheduled");
    state.webhooks.wake();
    let deliveries = state.store.deliveries(&event.id).await?;
    Ok(Json(List::new(
        deliveries.iter().map(WebhookDeliveryObject::new).collect(),
        false,
    )))
}

/// Redeliveries one merchant may ask for per minute, per mode.
pub const REDELIVERIES_PER_MINUTE: u32 = 20;

/// An event of this merchant in this mode; anyone else's reads as not found.
async fn owned_event(state: &AppState, caller: &Caller, id: &str) -> Result<StoredEvent, ApiError> {
    let id = EventId::parse(id).ok_or(ApiError::EventNotFound)?;
    match state.store.event(&id).await? {
        Some(e) if e.merchant_id == caller.merchant_id && e.mode == caller.mode => Ok(e),
        _ => Err(ApiError::EventNotFound),
    }
}
