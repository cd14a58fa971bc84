//! `GET /v1/account`, `POST /v1/account`: the merchant's own settings, per mode: which
//! origins may embed its checkout, which rails are switched on, and whether sessions may be
//! paid in another currency at a quote.

use axum::{Extension, Json, body::Bytes, extract::State};
use serde::Serialize;
use serde_json::Value;

use super::{
    Caller,
    body::{json_object, rails},
};
use crate::{
    api::openapi::{PostErrors, ReadErrors, UpdateAccountParams},
    embed::{MAX_ORIGINS, parse_origin},
    http::error::ApiError,
    startup::AppState,
};

/// Fields `POST /v1/account` accepts.
pub(crate) const UPDATE_FIELDS: [&str; 3] = [
    "embed_origins",
    "payment_method_types",
    "currency_conversion",
];

/// `account`: the merchant behind the key.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AccountObject {
    /// `mer_…`
    pub id: String,
    /// Always `account`.
    #[schema(value_type = String)]
    pub object: &'static str,
    pub name: String,
    /// Origins allowed to frame the hosted checkout (`Malipo.open`/`Malipo.mount`) in
    /// the key's mode, e.g. `https://lodge.example`. Empty: nobody may. Each mode has
    /// its own list: a test key never changes who may frame live checkouts.
    pub embed_origins: Vec<String>,
    /// The rails switched on for the key's mode (`["mpesa", "airtel"]`); `null`: every
    /// rail this Malipo has on. A new session offers only these (and only those of its
    /// own `payment_method_types`); sessions made before a change keep their list.
    #[schema(value_type = Option<Vec<crate::api::openapi::PaymentMethodType>>)]
    pub payment_method_types: Option<Vec<&'static str>>,
    /// Whether a session may be paid on a rail that takes another currency than its
    /// price's (a USD price paid from a KES wallet), at a quote the shopper sees first.
    /// `false`: only rails in the session's own currency are offered. Default `true`.
    pub currency_conversion: bool,
}

async fn account(state: &AppState, caller: &Caller) -> Result<AccountObject, ApiError> {
    let merchant = state
        .store
        .merchant(&caller.merchant_id)
        .await?
        .ok_or(ApiError::InvalidApiKey)?;
    Ok(AccountObject {
        id: merchant.id.to_string(),
        object: "account",
        name: merchant.name,
        embed_origins: state
            .store
            .embed_origins(&caller.merchant_id, caller.mode)
            .await?,
        payment_method_types: state
            .store
            .merchant_rails(&caller.merchant_id, caller.mode)
            .await?
            .map(|list| list.iter().map(|r| r.as_str()).collect()),
        currency_conversion: state
            .store
            .conversion(&caller.merchant_id, caller.mode)
            .await?,
    })
}

/// The merchant behind the key.
#[utoipa::path(get, path = "/v1/account", tag = "account",
    responses(
        (status = 200, description = "The account", body = AccountObject),
        ReadErrors,
    )
)]
pub async fn retrieve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<AccountObject>, ApiError> {
    Ok(Json(account(&state, &caller).await?))
}

/// Change the merchant's settings for the key's mode (which origins may embed the
/// checkout, which rails are on, whether other currencies are taken at a quote).
#[utoipa::path(post, path = "/v1/account", tag = "account",
    request_body = UpdateAccountParams,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the POST safe to retry: the first answer is replayed")),
    responses(
        (status = 200, description = "Updated", body = AccountObject),
        PostErrors,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<AccountObject>, ApiError> {
    let obj = json_object(&body, &UPDATE_FIELDS)?;
    // Everything is checked before anything is written.
    let methods = obj
        .get("payment_method_types")
        .map(|v| rails(Some(v), "payment_method_types"))
        .transpose()?;
    let conversion = match obj.get("currency_conversion") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(on)) => Some(*on),
        Some(_) => {
            return Err(ApiError::invalid(
                "parameter_invalid",
                "currency_conversion",
                "currency_conversion must be true or false.",
            ));
        }
    };
    // `null` leaves the origins as they are.
    let origins = obj
        .get("embed_origins")
        .filter(|v| !v.is_null())
        .map(parse_origins)
        .transpose()?;
    state
        .store
        .update_account(
            &caller.merchant_id,
            caller.mode,
            origins.as_deref(),
            methods.as_ref().map(|m| m.as_deref()),
            conversion,
        )
        .await?;
    if let Some(on) = conversion {
        tracing::info!(
            mode = caller.mode.as_str(),
            on,
            "currency conversion switched"
        );
    }
    if let Some(methods) = &methods {
        tracing::info!(mode = caller.mode.as_str(), rails = ?methods, "rails switched on updated");
    }
    if let Some(origins) = &origins {
        tracing::info!(count = origins.len(), "embed origins updated");
    }
    Ok(Json(account(&state, &caller).await?))
}

/// Checks a JSON list of origins; all or nothing.
pub fn parse_origins(list: &Value) -> Result<Vec<String>, ApiError> {
    let invalid = |message: String| ApiError::invalid("invalid_origin", "embed_origins", message);
    let Value::Array(items) = list else {
        return Err(invalid("embed_origins must be an array of origins.".into()));
    };
    if items.len() > MAX_ORIGINS {
        return Err(invalid(format!(
            "At most {MAX_ORIGINS} origins may embed the checkout."
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let origin = item.as_str().and_then(parse_origin).ok_or_else(|| {
            invalid(format!(
                "{item} is not an origin: use https://host[:port] (http:// for localhost only), \
                 with no path."
            ))
        })?;
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(out)
}
