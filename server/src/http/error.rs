//! The one error type of the JSON API: `{"error": {"code", "message", "param"?}}`, with a
//! stable snake_case `code` per variant. Internals are logged, never sent.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::store::StoreError;

/// Every `code` the merchant API may answer with (the OpenAPI document lists them; a
/// test checks the code uses no other).
pub const ERROR_CODES: &[&str] = &[
    "invalid_json",
    "parameter_missing",
    "parameter_invalid",
    "unknown_parameter",
    "invalid_amount",
    "unsupported_currency",
    "invalid_url",
    "invalid_phone",
    "invalid_email",
    "invalid_metadata",
    "invalid_line_items",
    "invalid_travelers",
    "invalid_expires_in",
    "invalid_idempotency_key",
    "invalid_origin",
    "invalid_payment_method_type",
    "payment_method_unavailable",
    "unknown_event_type",
    "endpoint_limit_reached",
    "invalid_api_key",
    "not_found",
    "session_not_found",
    "webhook_endpoint_not_found",
    "event_not_found",
    "payment_not_found",
    "refund_not_found",
    "payment_not_refundable",
    "refund_not_supported",
    "refund_exceeds_payment",
    "partial_refund_not_supported",
    "session_not_open",
    "payment_pending",
    "idempotency_key_in_use",
    "request_too_large",
    "rate_limited",
    "idempotency_key_reused",
    "database_unavailable",
    "busy",
    "internal_error",
];

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400, with the given `code` (`invalid_json`, `parameter_missing`, `invalid_amount`,
    /// `unsupported_currency`, `invalid_url`, `invalid_phone`, …) and the offending `param`.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        param: Option<String>,
    },
    /// 401 `invalid_api_key`: no `Authorization: Bearer sk_…`, or not a live key.
    #[error("invalid API key")]
    InvalidApiKey,
    /// 404 `not_found`: no such route.
    #[error("not found")]
    NotFound,
    /// 404 `session_not_found`: no such checkout session for this merchant and mode.
    #[error("checkout session not found")]
    SessionNotFound,
    /// 404 `webhook_endpoint_not_found`: no such endpoint for this merchant and mode.
    #[error("webhook endpoint not found")]
    WebhookEndpointNotFound,
    /// 404 `event_not_found`: no such event for this merchant and mode.
    #[error("event not found")]
    EventNotFound,
    /// 404 `payment_not_found`: no such payment for this merchant and mode.
    #[error("payment not found")]
    PaymentNotFound,
    /// 404 `refund_not_found`: no such refund for this merchant and mode.
    #[error("refund not found")]
    RefundNotFound,
    /// 409 `payment_not_refundable`: the payment did not succeed, so nothing was paid.
    #[error("payment not refundable")]
    PaymentNotRefundable,
    /// 422 `refund_not_supported`: the payment's rail has no refund Malipo can make
    /// (yet); the message says how to refund by hand.
    #[error("refund not supported on {0}")]
    RefundNotSupported(&'static str),
    /// 409 `session_not_open`: the session is complete or expired already.
    #[error("checkout session is not open")]
    SessionNotOpen,
    /// 409 `payment_pending`: a payment prompt is still on the shopper's phone.
    #[error("a payment is pending")]
    PaymentPending,
    /// 409 `idempotency_key_in_use`: a request with this key is still running.
    #[error("idempotency key in use")]
    IdempotencyKeyInUse,
    /// 409 `endpoint_limit_reached`: the mode already has the most webhook endpoints.
    #[error("webhook endpoint limit reached")]
    EndpointLimitReached,
    /// 429 `rate_limited`: too many of these requests; retry after the given seconds.
    #[error("rate limited")]
    RateLimited { retry_after: i64 },
    /// 413 `request_too_large`: the body is over 64 KiB.
    #[error("request too large")]
    RequestTooLarge,
    /// 422 `payment_method_unavailable`: of the rails the session (and the merchant's
    /// account) allow, none can take its currency and amount; the text says which.
    #[error("no payment method: {0}")]
    NoPaymentMethod(String),
    /// 422 `idempotency_key_reused`: the key was used with a different request.
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// 503 `database_unavailable`: the database did not answer; safe to retry.
    #[error("database unavailable")]
    DatabaseUnavailable(#[source] StoreError),
    /// 503 `busy`: the database is slow or saturated; nothing was done, retry after the
    /// given seconds (see [`crate::shed`]).
    #[error("busy")]
    Busy { retry_after: i64 },
    /// 500 `internal_error`: a bug; details are in the server log only.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A 400 about one parameter.
    pub fn invalid(code: &'static str, param: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code,
            message: message.into(),
            param: Some(param.to_owned()),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::InvalidApiKey => StatusCode::UNAUTHORIZED,
            ApiError::NotFound
            | ApiError::SessionNotFound
            | ApiError::WebhookEndpointNotFound
            | ApiError::EventNotFound
            | ApiError::PaymentNotFound
            | ApiError::RefundNotFound => StatusCode::NOT_FOUND,
            ApiError::PaymentNotRefundable => StatusCode::CONFLICT,
            ApiError::RefundNotSupported(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::SessionNotOpen
            | ApiError::PaymentPending
            | ApiError::IdempotencyKeyInUse
            | ApiError::EndpointLimitReached => StatusCode::CONFLICT,
            ApiError::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::IdempotencyKeyReused | ApiError::NoPaymentMethod(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { code, .. } => code,
            ApiError::InvalidApiKey => "invalid_api_key",
            ApiError::NotFound => "not_found",
            ApiError::SessionNotFound => "session_not_found",
            ApiError::WebhookEndpointNotFound => "webhook_endpoint_not_found",
            ApiError::EventNotFound => "event_not_found",
            ApiError::PaymentNotFound => "payment_not_found",
            ApiError::RefundNotFound => "refund_not_found",
            ApiError::PaymentNotRefundable => "payment_not_refundable",
            ApiError::RefundNotSupported(_) => "refund_not_supported",
            ApiError::SessionNotOpen => "session_not_open",
            ApiError::PaymentPending => "payment_pending",
            ApiError::IdempotencyKeyInUse => "idempotency_key_in_use",
            ApiError::EndpointLimitReached => "endpoint_limit_reached",
            ApiError::RequestTooLarge => "request_too_large",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Busy { .. } => "busy",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::NoPaymentMethod(_) => "payment_method_unavailable",
            ApiError::DatabaseUnavailable(_) => "database_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Invalid { message, .. } => message.clone(),
            ApiError::InvalidApiKey => {
                "Send your secret key as `Authorization: Bearer sk_test_…`.".into()
            }
            ApiError::NotFound => "No such resource.".into(),
            ApiError::SessionNotFound => "No such checkout session.".into(),
            ApiError::WebhookEndpointNotFound => "No such webhook endpoint.".into(),
            ApiError::EventNotFound => "No such event.".into(),
            ApiError::PaymentNotFound => "No such payment.".into(),
            ApiError::RefundNotFound => "No such refund.".into(),
            ApiError::PaymentNotRefundable => {
                "Only a payment that succeeded can be refunded: this one took no money.".into()
            }
            ApiError::RefundNotSupported(rail) => format!(
                "Malipo cannot refund {rail} payments yet. Return the money from your {rail} \
                 account's own portal (the payment's receipt identifies it), then note it here."
            ),
            ApiError::SessionNotOpen => "Only open checkout sessions can be changed.".into(),
            ApiError::PaymentPending => {
                "A payment prompt is on the shopper's phone and may still be paid. \
                 Retry once it settles (within about two minutes)."
                    .into()
            }
            ApiError::IdempotencyKeyInUse => {
                "A request with this Idempotency-Key is still being processed; retry shortly."
                    .into()
            }
            ApiError::EndpointLimitReached => format!(
                "A merchant may have at most {} webhook endpoints per mode; delete one first.",
                crate::webhooks::MAX_ENDPOINTS
            ),
            ApiError::RequestTooLarge => "The request body is larger than 64 KiB.".into(),
            ApiError::RateLimited { retry_after } => {
                format!("Too many of these requests; retry in {retry_after} s.")
            }
            ApiError::Busy { retry_after } => format!(
                "Malipo is busy right now (its database is slow); nothing was done. Retry in \
                 {retry_after} s."
            ),
            ApiError::IdempotencyKeyReused => {
                "This Idempotency-Key was used with different parameters.".into()
            }
            ApiError::NoPaymentMethod(why) => {
                format!("No payment method can take this session: {why}.")
            }
            ApiError::DatabaseUnavailable(_) => {
                "The database is not answering right now. Retry with the same Idempotency-Key."
                    .into()
            }
            ApiError::Internal(_) => "Something went wrong on our side. It has been logged.".into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(_) => ApiError::DatabaseUnavailable(e),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::DatabaseUnavailable(e) => tracing::error!(error = %e, "database unavailable"),
            ApiError::Internal(e) => tracing::error!(error = ?e, "internal error"),
            _ => {}
        }
        let mut error = json!({ "code": self.code(), "message": self.message() });
        if let ApiError::Invalid {
            param: Some(param), ..
        } = &self
        {
            error["param"] = json!(param);
        }
        if let ApiError::NoPaymentMethod(_) = &self {
            error["param"] = json!("payment_method_types");
        }
        let mut res = (self.status(), Json(json!({ "error": error }))).into_response();
        if let ApiError::RateLimited { retry_after } | ApiError::Busy { retry_after } = &self
            && let Ok(v) = axum::http::HeaderValue::from_str(&retry_after.to_string())
        {
            res.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        res
    }
}
