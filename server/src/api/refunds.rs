//! `POST /v1/refunds`, `GET /v1/refunds/{id}`, `GET /v1/refunds?payment=pa_…`: money of
//! a payment that succeeded, returned to its payer on its own rail.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
};
use serde_json::Value;
use std::collections::HashMap;

use super::{
    Caller,
    body::{json_object, missing, text, whole_number},
};
use crate::{
    api::openapi::{CreateRefundParams, ErrorBody, PostErrors, ReadErrors},
    domain::{AttemptId, Mode, ids::RefundId, money::Currency},
    http::error::ApiError,
    payments::{RefundAsk, RefundError},
    resources::{List, RefundObject},
    startup::AppState,
    store::RefundRecord,
};

pub(crate) const FIELDS: [&str; 4] = ["payment", "amount", "currency", "reason"];

/// Refund a payment, whole or in part.
#[utoipa::path(post, path = "/v1/refunds", tag = "refunds",
    request_body = CreateRefundParams,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the POST safe to retry: the first answer is replayed (send one: a refund retried without it is a second refund)")),
    responses(
        (status = 201, description = "Sent: `succeeded`, `failed` (the operator refused; nothing was returned), or `pending` (the operator confirms later)", body = RefundObject),
        PostErrors,
        (status = 404, description = "No such payment for this merchant and mode (`payment_not_found`)", body = ErrorBody),
        (status = 409, description = "The payment did not succeed (`payment_not_refundable`), or a request with this Idempotency-Key is still running (`idempotency_key_in_use`)", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<RefundObject>), ApiError> {
    let obj = json_object(&body, &FIELDS)?;
    let payment = match obj.get("payment") {
        None | Some(Value::Null) => return Err(missing("payment")),
        Some(Value::String(p)) if AttemptId::parse(p).is_some() => p.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                "parameter_invalid",
                "payment",
                "payment must be a payment id (pa_…).",
            ));
        }
    };
    let amount = match obj.get("amount") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(whole_number(n).filter(|a| *a > 0).ok_or_else(|| {
            ApiError::invalid(
                "invalid_amount",
                "amount",
                "amount must be a whole, positive number of the payment's minor units.",
            )
        })?),
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_amount",
                "amount",
                "amount must be a number of minor units, not a string.",
            ));
        }
    };
    let currency = match obj.get("currency") {
        None | Some(Value::Null) => None,
        Some(Value::String(code)) => Some(Currency::parse(code).ok_or_else(|| {
            ApiError::invalid(
                "unsupported_currency",
                "currency",
                format!("{code:?} is not a currency Malipo knows."),
            )
        })?),
        Some(_) => {
            return Err(ApiError::invalid(
                "unsupported_currency",
                "currency",
                "currency must be an ISO 4217 code.",
            ));
        }
    };
    let reason = text(&obj, "reason", 500, false)?;
    // Checked before the handler already (`api::idempotency`); kept on the refund, so a
    // retry whose first answer was never stored is still the same refund.
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    let refund = state
        .payments
        .refund_payment(
            &caller.merchant_id,
            caller.mode,
            RefundAsk {
                payment: &payment,
                amount,
                currency,
                reason: reason.as_deref().filter(|r| !r.is_empty()),
                idempotency_key: key,
            },
        )
        .await
        .map_err(|e| match e {
            RefundError::NotFound => ApiError::PaymentNotFound,
            RefundError::NotPaid | RefundError::PartOfOpenSession => {
                ApiError::PaymentNotRefundable
            }
            RefundError::NotSupported(rail) => ApiError::RefundNotSupported(rail),
            RefundError::Currency(charged) => ApiError::invalid(
                "parameter_invalid",
                "currency",
                format!(
                    "The payment was charged in {}: a refund's amount is in its minor units.",
                    charged.code()
                ),
            ),
            RefundError::Exceeds {
                available,
                currency,
            } => ApiError::invalid(
                "refund_exceeds_payment",
                "amount",
                match crate::domain::Money::new(available, currency) {
                    Ok(left) => format!(
                        "That is more than is left to refund: at most {left} ({available} minor units)."
                    ),
                    Err(_) => "Nothing is left to refund of this payment.".to_owned(),
                },
            ),
            RefundError::WholeUnits(currency) => ApiError::invalid(
                "invalid_amount",
                "amount",
                format!(
                    "This rail moves whole {} only: the amount must be a whole number of them, in minor units.",
                    currency.code()
                ),
            ),
            RefundError::PartialNotSupported(paid, currency) => ApiError::invalid(
                "partial_refund_not_supported",
                "amount",
                match crate::domain::Money::new(paid, currency) {
                    Ok(all) => format!(
                        "This rail refunds only the whole payment: leave out amount, or send {paid} ({all})."
                    ),
                    Err(_) => "This rail refunds only the whole payment: leave out amount.".to_owned(),
                },
            ),
            RefundError::Store(e) => e.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(RefundObject::new(&refund, caller.mode == Mode::Live)),
    ))
}

/// Retrieve a refund.
#[utoipa::path(get, path = "/v1/refunds/{id}", tag = "refunds",
    params(("id" = String, Path, description = "re_…")),
    responses(
        (status = 200, description = "The refund", body = RefundObject),
        ReadErrors,
        (status = 404, description = "No such refund for this merchant and mode (`refund_not_found`)", body = ErrorBody),
    )
)]
pub async fn retrieve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<RefundObject>, ApiError> {
    let id = RefundId::parse(&id).ok_or(ApiError::RefundNotFound)?;
    let refund = state
        .store
        .refund(&id)
        .await?
        .ok_or(ApiError::RefundNotFound)?;
    if !owned(&state, &caller, &refund).await? {
        return Err(ApiError::RefundNotFound);
    }
    Ok(Json(RefundObject::new(&refund, caller.mode == Mode::Live)))
}

/// A payment's refunds, oldest first.
#[utoipa::path(get, path = "/v1/refunds", tag = "refunds",
    params(("payment" = String, Query, description = "The payment's refunds (pa_…)")),
    responses(
        (status = 200, description = "All of them", body = List<RefundObject>),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
        ReadErrors,
        (status = 404, description = "No such payment for this merchant and mode (`payment_not_found`)", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<List<RefundObject>>, ApiError> {
    if let Some(unknown) = query.keys().find(|k| k.as_str() != "payment") {
        return Err(ApiError::invalid(
            "unknown_parameter",
            unknown,
            format!("Unknown parameter {unknown}."),
        ));
    }
    let payment = query.get("payment").ok_or_else(|| missing("payment"))?;
    let id = AttemptId::parse(payment).ok_or(ApiError::PaymentNotFound)?;
    let attempt = state
        .store
        .attempt(&id)
        .await?
        .ok_or(ApiError::PaymentNotFound)?;
    match state.store.session(&attempt.session_id).await? {
        Some(s) if s.merchant_id == caller.merchant_id && s.mode == caller.mode => {}
        _ => return Err(ApiError::PaymentNotFound),
    }
    let live = caller.mode == Mode::Live;
    let refunds = state.store.refunds_of(&id).await?;
    Ok(Json(List::new(
        refunds.iter().map(|r| RefundObject::new(r, live)).collect(),
        false,
    )))
}

/// Whether `refund` is the caller's (its session's merchant and mode).
async fn owned(state: &AppState, caller: &Caller, refund: &RefundRecord) -> Result<bool, ApiError> {
    Ok(state
        .store
        .session(&refund.session_id)
        .await?
        .is_some_and(|s| s.merchant_id == caller.merchant_id && s.mode == caller.mode))
}
