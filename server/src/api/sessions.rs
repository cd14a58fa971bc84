//! `POST /v1/checkout/sessions`, `GET /v1/checkout/sessions/{id}`,
//! `POST /v1/checkout/sessions/{id}/expire`.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
};
use serde_json::Value;
use std::collections::BTreeMap;

use super::{
    Caller,
    body::{json_object, missing, rails, text, whole_number},
};
use crate::{
    api::openapi::{CreateSessionParams, ErrorBody, PostErrors, ReadErrors},
    checkout::{CreateError, CreateSession, DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN, MIN_EXPIRES_IN},
    domain::{
        Money, SessionId,
        money::{CURRENCIES, Currency, MoneyError},
        phone::{Country, Msisdn},
        travel::{LineItem, MAX_LINE_ITEMS, MAX_TRAVELERS, Travel, Travelers, parse_date},
    },
    http::error::ApiError,
    resources::CheckoutSessionObject,
    startup::AppState,
    store::{Expiry, SessionRecord},
    time::now_ms,
};

pub(crate) const FIELDS: [&str; 13] = [
    "amount",
    "currency",
    "reference",
    "description",
    "success_url",
    "cancel_url",
    "customer",
    "metadata",
    "expires_in",
    "client_reference_id",
    "payment_method_types",
    "line_items",
    "travelers",
];

/// Create a checkout session.
#[utoipa::path(post, path = "/v1/checkout/sessions", tag = "checkout",
    request_body = CreateSessionParams,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the POST safe to retry: the first answer is replayed")),
    responses(
        (status = 201, description = "Created", body = CheckoutSessionObject),
        PostErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<CheckoutSessionObject>), ApiError> {
    let req = parse_create(&caller, &body)?;
    let session = state.checkout.create(req).await.map_err(|e| match e {
        CreateError::InvalidUrl { param } => ApiError::invalid(
            "invalid_url",
            param,
            format!("{param} must be an absolute http(s) URL."),
        ),
        CreateError::InsecureLiveUrl { param } => ApiError::invalid(
            "invalid_url",
            param,
            format!("{param} must be an https:// URL in live mode."),
        ),
        CreateError::NoPaymentMethod(why) => ApiError::NoPaymentMethod(why),
        CreateError::Store(e) => e.into(),
    })?;
    tracing::info!(session = %session.id, amount = %session.amount, "checkout session created");
    Ok((
        StatusCode::CREATED,
        Json(session_object(&state, &session, now_ms()).await?),
    ))
}

/// Retrieve a checkout session: how the merchant confirms payment.
#[utoipa::path(get, path = "/v1/checkout/sessions/{id}", tag = "checkout",
    params(("id" = String, Path, description = "cs_…")),
    responses(
        (status = 200, description = "The session", body = CheckoutSessionObject),
        ReadErrors,
        (status = 404, description = "No such session for this merchant and mode (`session_not_found`)", body = ErrorBody),
    )
)]
pub async fn retrieve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<CheckoutSessionObject>, ApiError> {
    let session = owned_session(&state, &caller, &id).await?;
    Ok(Json(session_object(&state, &session, now_ms()).await?))
}

/// Expire an open session, so it can no longer be paid.
#[utoipa::path(post, path = "/v1/checkout/sessions/{id}/expire", tag = "checkout",
    params(("id" = String, Path, description = "cs_…"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the POST safe to retry: the first answer is replayed")),
    responses(
        (status = 200, description = "Expired", body = CheckoutSessionObject),
        PostErrors,
        (status = 404, description = "No such session (`session_not_found`)", body = ErrorBody),
        (status = 409, description = "Complete or expired already (`session_not_open`), a payment prompt is still on the shopper's phone (`payment_pending`), or a request with this Idempotency-Key is still running (`idempotency_key_in_use`)", body = ErrorBody),
    )
)]
pub async fn expire(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<CheckoutSessionObject>, ApiError> {
    let session = owned_session(&state, &caller, &id).await?;
    let now = now_ms();
    match state
        .store
        .expire_session(&session.id, now, "merchant")
        .await?
    {
        Expiry::Expired => {}
        Expiry::NotOpen => return Err(ApiError::SessionNotOpen),
        Expiry::PaymentPending => return Err(ApiError::PaymentPending),
    }
    // Open pages and the webhook worker both want to know.
    state.payments.changed(&session.id);
    let session = state
        .store
        .session(&session.id)
        .await?
        .ok_or(ApiError::SessionNotFound)?;
    Ok(Json(session_object(&state, &session, now).await?))
}

/// A session of this merchant in this mode; anyone else's reads as not found.
async fn owned_session(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<SessionRecord, ApiError> {
    let id = SessionId::parse(id).ok_or(ApiError::SessionNotFound)?;
    match state.store.session(&id).await? {
        Some(s) if s.merchant_id == caller.merchant_id && s.mode == caller.mode => Ok(s),
        _ => Err(ApiError::SessionNotFound),
    }
}

/// The session as the API shows it, with the payment that paid it.
pub async fn session_object(
    state: &AppState,
    s: &SessionRecord,
    now: i64,
) -> Result<CheckoutSessionObject, ApiError> {
    let paid_by = match s.payment_status {
        crate::store::PaymentStatus::Paid => state.store.paying_attempt(&s.id).await?,
        crate::store::PaymentStatus::Unpaid => None,
    };
    Ok(CheckoutSessionObject::new(&state.config.public_url, s, now).with_payment(paid_by.as_ref()))
}

/// Validates the whole request before anything is written.
fn parse_create(caller: &Caller, body: &[u8]) -> Result<CreateSession, ApiError> {
    let obj = json_object(body, &FIELDS)?;

    let currency = match obj.get("currency") {
        None | Some(Value::Null) => return Err(missing("currency")),
        Some(Value::String(code)) => Currency::parse(code).ok_or_else(|| {
            let supported: Vec<&str> = CURRENCIES.iter().map(|c| c.code()).collect();
            ApiError::invalid(
                "unsupported_currency",
                "currency",
                format!(
                    "{code:?} is not supported; use one of {}.",
                    supported.join(", ")
                ),
            )
        })?,
        Some(_) => {
            return Err(ApiError::invalid(
                "unsupported_currency",
                "currency",
                "currency must be an ISO 4217 code.",
            ));
        }
    };
    let amount = match obj.get("amount") {
        None | Some(Value::Null) => return Err(missing("amount")),
        Some(Value::Number(n)) => whole_number(n).ok_or_else(|| {
            ApiError::invalid(
                "invalid_amount",
                "amount",
                "amount must be a whole number of minor units (KES 1,500 is 150000).",
            )
        })?,
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_amount",
                "amount",
                "amount must be a number of minor units, not a string.",
            ));
        }
    };
    let amount = Money::new(amount, currency).map_err(|e| {
        let message = match e {
            MoneyError::NotPositive => "amount must be greater than zero.",
            MoneyError::TooLarge => "amount is larger than Malipo accepts.",
        };
        ApiError::invalid("invalid_amount", "amount", message)
    })?;

    let reference = text(&obj, "reference", 64, true)?.unwrap_or_default();
    let description = text(&obj, "description", 200, true)?.unwrap_or_default();
    let success_url = text(&obj, "success_url", 2048, true)?.unwrap_or_default();
    let cancel_url = text(&obj, "cancel_url", 2048, true)?.unwrap_or_default();

    let (customer_phone, customer_email) = match obj.get("customer") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(c)) => {
            if let Some(k) = c.keys().find(|k| !["phone", "email"].contains(&k.as_str())) {
                return Err(ApiError::invalid(
                    "unknown_parameter",
                    &format!("customer.{k}"),
                    format!("Unknown parameter customer.{k}."),
                ));
            }
            let home = match currency {
                Currency::Tzs => Country::Tanzania,
                Currency::Ugx => Country::Uganda,
                Currency::Rwf => Country::Rwanda,
                Currency::Zmw => Country::Zambia,
                _ => Country::Kenya,
            };
            let phone = match c.get("phone") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) => Some(
                    Msisdn::parse(p, home)
                        .ok_or_else(|| {
                            ApiError::invalid(
                                "invalid_phone",
                                "customer.phone",
                                "customer.phone is not a mobile number (e.g. +254712345678 or 0712 345 678).",
                            )
                        })?
                        .to_string(),
                ),
                Some(_) => return Err(ApiError::invalid("invalid_phone", "customer.phone", "customer.phone must be a string.")),
            };
            let email = match c.get("email") {
                None | Some(Value::Null) => None,
                Some(Value::String(e)) if is_plausible_email(e) => Some(e.trim().to_owned()),
                Some(_) => {
                    return Err(ApiError::invalid(
                        "invalid_email",
                        "customer.email",
                        "customer.email is not an email address.",
                    ));
                }
            };
            (phone, email)
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "parameter_invalid",
                "customer",
                "customer must be an object.",
            ));
        }
    };

    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => {
            if m.len() > 20 {
                return Err(ApiError::invalid(
                    "invalid_metadata",
                    "metadata",
                    "metadata holds at most 20 keys.",
                ));
            }
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let Value::String(v) = v else {
                    return Err(ApiError::invalid(
                        "invalid_metadata",
                        &format!("metadata.{k}"),
                        "metadata values must be strings.",
                    ));
                };
                if k.is_empty() || k.chars().count() > 40 || v.chars().count() > 500 {
                    return Err(ApiError::invalid(
                        "invalid_metadata",
                        &format!("metadata.{k}"),
                        "metadata keys are 1–40 characters, values at most 500.",
                    ));
                }
                out.insert(k.clone(), v.clone());
            }
            out
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_metadata",
                "metadata",
                "metadata must be an object of strings.",
            ));
        }
    };

    let expires_in = match obj.get("expires_in") {
        None | Some(Value::Null) => DEFAULT_EXPIRES_IN,
        Some(Value::Number(n)) => match whole_number(n) {
            Some(s) if (MIN_EXPIRES_IN..=MAX_EXPIRES_IN).contains(&s) => s,
            _ => return Err(bad_expiry()),
        },
        Some(_) => return Err(bad_expiry()),
    };

    let payment_method_types = rails(obj.get("payment_method_types"), "payment_method_types")?;
    let travel = Travel {
        line_items: line_items(obj.get("line_items"))?,
        travelers: travelers(obj.get("travelers"))?,
    }
    .non_empty();

    Ok(CreateSession {
        merchant_id: caller.merchant_id.clone(),
        mode: caller.mode,
        amount,
        reference,
        description,
        success_url,
        cancel_url,
        customer_phone,
        customer_email,
        metadata,
        expires_in_secs: expires_in,
        payment_method_types,
        travel,
    })
}

/// `line_items`: up to 20 services, each a description (1–200 characters) with, if
/// given, a `YYYY-MM-DD` date, a from and a to (1–60 characters each).
fn line_items(value: Option<&Value>) -> Result<Vec<LineItem>, ApiError> {
    let invalid =
        |param: &str, message: &str| ApiError::invalid("invalid_line_items", param, message);
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_LINE_ITEMS => items,
        Some(Value::Array(_)) => {
            return Err(invalid(
                "line_items",
                &format!("line_items holds at most {MAX_LINE_ITEMS} items."),
            ));
        }
        Some(_) => {
            return Err(invalid(
                "line_items",
                "line_items must be an array of objects.",
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(item) = item else {
            return Err(invalid(
                &format!("line_items[{i}]"),
                "Each line item must be an object.",
            ));
        };
        if let Some(k) = item
            .keys()
            .find(|k| !["description", "date", "from", "to"].contains(&k.as_str()))
        {
            return Err(ApiError::invalid(
                "unknown_parameter",
                &format!("line_items[{i}].{k}"),
                format!("Unknown parameter line_items[{i}].{k}."),
            ));
        }
        let field = |name: &str, max: usize| -> Result<Option<String>, ApiError> {
            match item.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(v)) if plain_text(v, max) => Ok(Some(v.trim().to_owned())),
                Some(_) => Err(invalid(
                    &format!("line_items[{i}].{name}"),
                    &format!("line_items[{i}].{name} must be text of 1 to {max} characters."),
                )),
            }
        };
        let description = field("description", 200)?.ok_or_else(|| {
            invalid(
                &format!("line_items[{i}].description"),
                "Each line item needs a description.",
            )
        })?;
        let date = field("date", 10)?;
        if let Some(d) = &date
            && parse_date(d).is_none()
        {
            return Err(invalid(
                &format!("line_items[{i}].date"),
                &format!("line_items[{i}].date must be a date as YYYY-MM-DD."),
            ));
        }
        let (from, to) = (field("from", 60)?, field("to", 60)?);
        out.push(LineItem {
            description,
            date,
            from,
            to,
        });
    }
    Ok(out)
}

/// 1 to `max` characters of visible text: no control characters, nothing invisible or
/// turning the text's direction (a shopper reads it on the page).
fn plain_text(s: &str, max: usize) -> bool {
    let s = s.trim();
    let n = s.chars().count();
    n > 0
        && n <= max
        && !s
            .chars()
            .any(|c| c.is_control() || super::body::is_spoofing_char(c))
}

/// `travelers`: `{"count": 1–999, "lead_name": "…"}` (the name optional, 1–100 characters).
fn travelers(value: Option<&Value>) -> Result<Option<Travelers>, ApiError> {
    let invalid =
        |param: &str, message: String| ApiError::invalid("invalid_travelers", param, message);
    let t = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(t)) => t,
        Some(_) => return Err(invalid("travelers", "travelers must be an object.".into())),
    };
    if let Some(k) = t
        .keys()
        .find(|k| !["count", "lead_name"].contains(&k.as_str()))
    {
        return Err(ApiError::invalid(
            "unknown_parameter",
            &format!("travelers.{k}"),
            format!("Unknown parameter travelers.{k}."),
        ));
    }
    let count = match t.get("count") {
        Some(Value::Number(n)) => whole_number(n)
            .filter(|c| (1..=i64::from(MAX_TRAVELERS)).contains(c))
            .and_then(|c| u32::try_from(c).ok()),
        _ => None,
    }
    .ok_or_else(|| {
        invalid(
            "travelers.count",
            format!("travelers.count must be a whole number from 1 to {MAX_TRAVELERS}."),
        )
    })?;
    let lead_name = match t.get("lead_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) if plain_text(n, 100) => Some(n.trim().to_owned()),
        Some(_) => {
            return Err(invalid(
                "travelers.lead_name",
                "travelers.lead_name must be text of 1 to 100 characters.".into(),
            ));
        }
    };
    Ok(Some(Travelers { count, lead_name }))
}

fn bad_expiry() -> ApiError {
    ApiError::invalid(
        "invalid_expires_in",
        "expires_in",
        format!("expires_in must be whole seconds from {MIN_EXPIRES_IN} to {MAX_EXPIRES_IN}."),
    )
}

/// Deliberately loose: one `@`, something on each side, a dot in the domain.
fn is_plausible_email(e: &str) -> bool {
    let e = e.trim();
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !e.contains(char::is_whitespace)
                && e.len() <= 254
                && !domain.contains('@')
        }
        None => false,
    }
}
