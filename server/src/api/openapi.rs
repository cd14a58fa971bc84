//! The API reference: an OpenAPI 3.1 document generated from the handlers'
//! `#[utoipa::path]` annotations and the response types' `ToSchema` derives, served at
//! `GET /v1/openapi.json`. The routes themselves are registered from the same
//! annotations (`utoipa_axum::routes!`), so a documented path is a served path.

use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::{
        ObjectBuilder, Type,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

use crate::http::error::ERROR_CODES;

/// `{"error": {...}}`: every 4xx and 5xx answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, with a stable `code` to branch on.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    #[schema(schema_with = error_code)]
    pub code: String,
    /// For people: may change wording at any time.
    pub message: String,
    /// The request field at fault, for 400s about one field (`customer.phone`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

fn error_code() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ERROR_CODES.iter().copied()))
        .description(Some("Stable, snake_case; see the README's error table."))
        .build()
}

/// The error answers every POST of the API can give (beside its own 404/409s).
#[derive(utoipa::IntoResponses)]
#[allow(
    dead_code,
    reason = "documentation of responses; ApiError builds the bodies"
)]
pub enum PostErrors {
    #[response(
        status = 400,
        description = "Invalid request: `code` and `param` say what"
    )]
    Invalid(ErrorBody),
    #[response(
        status = 401,
        description = "Missing, unknown or revoked secret key (`invalid_api_key`)"
    )]
    Unauthorized(ErrorBody),
    #[response(
        status = 409,
        description = "A request with this Idempotency-Key is still running (`idempotency_key_in_use`)"
    )]
    InUse(ErrorBody),
    #[response(status = 413, description = "Body over 64 KiB (`request_too_large`)")]
    TooLarge(ErrorBody),
    #[response(
        status = 422,
        description = "Idempotency-Key reused with other parameters (`idempotency_key_reused`); for a checkout session, no payment method it allows can take its currency and amount (`payment_method_unavailable`)"
    )]
    Reused(ErrorBody),
    #[response(
        status = 503,
        description = "Database unavailable; retry with the same Idempotency-Key"
    )]
    Unavailable(ErrorBody),
}

/// The error answers every authenticated GET and DELETE can give (beside its own 404s).
#[derive(utoipa::IntoResponses)]
#[allow(
    dead_code,
    reason = "documentation of responses; ApiError builds the bodies"
)]
pub enum ReadErrors {
    #[response(
        status = 401,
        description = "Missing, unknown or revoked secret key (`invalid_api_key`)"
    )]
    Unauthorized(ErrorBody),
    #[response(
        status = 503,
        description = "Database unavailable; retry with the same Idempotency-Key"
    )]
    Unavailable(ErrorBody),
}

/// The shopper, for prefilling the page.
#[derive(Debug, ToSchema)]
#[allow(
    dead_code,
    reason = "documentation of the request body; parsed by hand"
)]
pub struct CustomerParams {
    /// Any usual form: `0712 345 678`, `+254712345678`; stored as international digits.
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// `POST /v1/checkout/sessions`.
#[derive(Debug, ToSchema)]
#[allow(
    dead_code,
    reason = "documentation of the request body; parsed by hand"
)]
pub struct CreateSessionParams {
    /// Integer minor units of `currency`: KES 1,500 is `150000`.
    #[schema(minimum = 1)]
    pub amount: i64,
    /// ISO 4217: KES, TZS, UGX, RWF, ZMW, GHS, CDF, MWK, USD, EUR, GBP.
    pub currency: String,
    /// The merchant's booking reference (≤ 64 characters).
    pub reference: String,
    /// What the shopper is paying for (≤ 200 characters).
    pub description: String,
    /// Absolute http(s) URL; `{CHECKOUT_SESSION_ID}` is replaced by the session id.
    pub success_url: String,
    /// Absolute http(s) URL; `{CHECKOUT_SESSION_ID}` is replaced by the session id.
    pub cancel_url: String,
    pub customer: Option<CustomerParams>,
    /// Up to 20 string pairs (keys ≤ 40, values ≤ 500 characters), returned untouched.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Seconds until the session expires: 60–86400, default 1800.
    pub expires_in: Option<i64>,
    /// Accepted for compatibility; use `reference`.
    pub client_reference_id: Option<String>,
    /// The rails the shopper may pay with (default: every rail that takes the currency
    /// and amount), narrowed to those switched on for the account in this mode. None of
    /// them able to take it: 422 `payment_method_unavailable`.
    #[schema(min_items = 1)]
    pub payment_method_types: Option<Vec<PaymentMethodType>>,
    /// A travel booking's services (up to 20): each a `description` (1–200 characters),
    /// a service `date` (`YYYY-MM-DD`) and, for transport, `from` and `to` (IATA code or
    /// town). Shown on the page; returned on the session, its payment
    /// and their webhooks.
    #[schema(max_items = 20)]
    pub line_items: Option<Vec<crate::domain::travel::LineItem>>,
    /// Who travels: `count` (1–999) and the `lead_name` as booked.
    pub travelers: Option<crate::domain::travel::Travelers>,
}

/// A rail, as `payment_method_types` names it.
#[derive(Debug, Clone, Copy, ToSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code, reason = "documentation; RailId is the type the code uses")]
pub enum PaymentMethodType {
    /// Safaricom M-PESA, Kenya (KES).
    Mpesa,
    /// MTN MoMo, Uganda, Rwanda or Zambia.
    MtnMomo,
    /// Airtel Money, Kenya, Uganda, Tanzania, Rwanda, Zambia.
    Airtel,
    /// Mixx by Yas (Tigo Pesa), Tanzania (TZS).
    Tigo,
    /// Vodacom M-Pesa, Tanzania (TZS).
    Vodacom,
    /// Cards (Visa, Mastercard, …) through the configured MPGS processor.
    Card,
}

/// `POST /v1/webhook_endpoints`.
#[derive(Debug, ToSchema)]
#[allow(
    dead_code,
    reason = "documentation of the request body; parsed by hand"
)]
pub struct CreateEndpointParams {
    /// `https://…` (`http://` allowed in test mode).
    pub url: String,
    /// Event types, or `["*"]` for all: `checkout.session.completed`,
    /// `checkout.session.expired`, `payment.succeeded`, `payment.failed`.
    pub enabled_events: Vec<String>,
    pub description: Option<String>,
}

/// `POST /v1/webhook_endpoints/{id}/rotate_secret` (the body may be empty).
#[derive(Debug, ToSchema)]
#[allow(
    dead_code,
    reason = "documentation of the request body; parsed by hand"
)]
pub struct RotateSecretParams {
    /// Seconds the old secret keeps signing too: 0–604800, default 86400.
    pub expires_in: Option<i64>,
}

/// `POST /v1/account`.
#[derive(Debug, ToSchema)]
#[allow(
    dead_code,
    reason = "documentation of the request body; parsed by hand"
)]
pub struct UpdateAccountParams {
    /// Origins allowed to frame the checkout in the key's mode (replaces that mode's
    /// list): `https://host[:port]`, or `http://localhost:PORT`; at most 10.
    pub embed_origins: Option<Vec<String>>,
    /// The rails switched on for the key's mode (replaces that mode's list); `null`:
    /// every rail this Malipo has on.
    #[schema(min_items = 1)]
    pub payment_method_types: Option<Vec<PaymentMethodType>>,
    /// Whether sessions in the key's mode may be paid on rails in another currency, at
    /// a quote the shopper sees first (`false`: only rails in the session's currency).
    pub currency_conversion: Option<bool>,
}

/// `POST /v1/refunds`'s body.
#[derive(Debug, ToSchema)]
#[allow(
    dead_code,
    reason = "documentation of the request body; parsed by hand"
)]
pub struct CreateRefundParams {
    /// The payment to refund (`pa_…`): one that succeeded.
    pub payment: String,
    /// How much, in the minor units of the currency the payment was charged in (for a
    /// payment at a quote, the converted one); default: all that is left (what it paid,
    /// less earlier refunds that did not fail).
    pub amount: Option<i64>,
    /// The currency `amount` is in, to be sure: refused unless it is the payment's.
    pub currency: Option<String>,
    /// Why, for the merchant's own records.
    pub reason: Option<String>,
}

/// The `webhooks` section: one POST per event type, as Malipo sends it.
pub fn webhooks() -> serde_json::Value {
    use crate::resources::EventType;
    let mut out = serde_json::Map::new();
    for kind in EventType::ALL {
        let summary = match kind {
            EventType::CheckoutSessionCompleted => "The session is paid: confirm the booking.",
            EventType::CheckoutSessionExpired => "The session expired unpaid.",
            EventType::PaymentSucceeded => "A payment attempt brought the money in.",
            EventType::PaymentFailed => {
                "A payment attempt failed, was cancelled or timed out; the shopper may retry."
            }
            EventType::PaymentDuplicate => {
                "A payment brought money in for a session that was already paid: refund it."
            }
            EventType::PaymentUnknown => {
                "Malipo could not learn a payment's outcome: the shopper may have paid. \
                 Reconcile it; a later payment.succeeded or payment.failed settles it."
            }
            EventType::PaymentRefused => {
                "A pay request was refused by an abuse limit; the object is a payment_refusal."
            }
            EventType::RefundSucceeded => {
                "A refund went through: the money is back with the payer; the object is a refund."
            }
            EventType::RefundFailed => {
                "The operator refused a refund: nothing was returned; the object is a refund."
            }
        };
        out.insert(
            kind.as_str().to_owned(),
            serde_json::json!({ "post": {
                "summary": summary,
                "description": "Sent to every endpoint subscribed to this type. Verify                     `Malipo-Signature` on the raw body, answer any 2xx within 10 s, and                     de-duplicate by `id`: anything else is retried with exponential backoff                     and jitter for 5 days, with the same id and body.",
                "parameters": [{
                    "name": "Malipo-Signature", "in": "header", "required": true,
                    "schema": { "type": "string" },
                    "description": "`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>`,                         one `v1` per active secret (two during a rotation's overlap).",
                }],
                "requestBody": { "required": true, "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/EventObject" } } } },
                "responses": { "2XX": { "description": "Acknowledged." } },
                "security": [],
            }}),
        );
    }
    serde_json::Value::Object(out)
}

/// Text a shopper reads (`reference`, `description`): no control characters, and none
/// of the invisible or direction-changing ones (see `api::body::is_spoofing_char`).
/// Required text also needs one visible character (it is trimmed, then must be
/// non-empty).
const TEXT_CHAR: &str =
    r"[^\u0000-\u001F\u007F-\u009F\u200B-\u200F\u202A-\u202E\u2066-\u2069\uFEFF]";
const TEXT_VISIBLE: &str =
    r"[^\s\u0000-\u001F\u007F-\u009F\u200B-\u200F\u202A-\u202E\u2066-\u2069\uFEFF]";
/// An absolute http(s) URL on a host name (no `xn--` labels: those must be valid
/// punycode), the form every parser here accepts.
/// (Live mode also wants `https` and a public host; see each field.)
const URL: &str = r"^https?://([A-Za-z0-9]+(-[A-Za-z0-9]+)*\.)*[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~!$&'()*+,;=:@%{}/-]*)?(\?[A-Za-z0-9._~!$&'()*+,;=:@%{}/?-]*)?$";
/// A mobile number in international form, of a country Malipo's rails serve (local forms
/// such as `0712 345 678` are accepted too, read in the currency's country).
const PHONE: &str = r"^\+?(254[17]|255[67]|2567|2507|260[79])[0-9]{8}$";
const EMAIL: &str = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$";
/// An origin that may embed the checkout.
const ORIGIN: &str = r"^(https://([A-Za-z0-9]+(-[A-Za-z0-9]+)*\.)*[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*(:[1-9][0-9]{0,3})?|http://localhost:[1-9][0-9]{0,3})$";
/// What `Idempotency-Key` may be: 1–255 printable ASCII characters, no spaces.
pub const IDEMPOTENCY_KEY: &str = "^[!-~]{1,255}$";

fn text_pattern(visible_required: bool) -> String {
    if visible_required {
        format!("^{TEXT_CHAR}*{TEXT_VISIBLE}{TEXT_CHAR}*$")
    } else {
        format!("^{TEXT_CHAR}*$")
    }
}

/// Writes into the generated document every constraint the hand-written parsers enforce
/// (ranges, enums, lengths, patterns, no unknown fields), so a request that matches the
/// document is one the server accepts. The schemathesis run in `scripts/test` holds the
/// two together.
pub fn constrain(doc: &mut serde_json::Value) {
    use crate::{
        checkout::{MAX_EXPIRES_IN, MIN_EXPIRES_IN},
        domain::{
            ids::RANDOM_LEN,
            money::{CURRENCIES, MAX_MINOR},
        },
        resources::EventType,
        webhooks::MAX_ROTATION_OVERLAP_SECS,
    };
    use serde_json::{Value, json};
    let currencies: Vec<&str> = CURRENCIES.iter().map(|c| c.code()).collect();
    let event_types: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    let mut subscribable = vec!["*"];
    subscribable.extend(&event_types);

    // Sets `schema`'s properties, keeping each one's description.
    let set = |doc: &mut Value, schema: &str, props: Value| {
        let s = &mut doc["components"]["schemas"][schema];
        s["additionalProperties"] = json!(false);
        for (name, mut constraint) in props.as_object().cloned().unwrap_or_default() {
            let p = &mut s["properties"][&name];
            if let Some(d) = p.get("description").cloned() {
                constraint["description"] = d;
            }
            *p = constraint;
        }
    };
    let text = |max: usize, required: bool| {
        json!({"type": "string", "minLength": usize::from(required), "maxLength": max,
               "pattern": text_pattern(required)})
    };
    let url = json!({"type": "string", "maxLength": 2048, "pattern": URL});
    let id_pattern = |prefix: &str| json!({"type": "string", "pattern": format!("^{prefix}[0-9A-Za-z]{{{RANDOM_LEN}}}$")});
    set(
        doc,
        "CreateSessionParams",
        json!({
            "amount": {"type": "integer", "minimum": 1, "maximum": MAX_MINOR},
            "currency": {"type": "string", "enum": currencies},
            "reference": text(64, true),
            "description": text(200, true),
            "success_url": url,
            "cancel_url": url,
            "customer": {"$ref": "#/components/schemas/CustomerParams"},
            "metadata": {"type": "object", "maxProperties": 20,
                "propertyNames": {"minLength": 1, "maxLength": 40},
                "additionalProperties": {"type": "string", "maxLength": 500}},
            "expires_in": {"type": "integer", "minimum": MIN_EXPIRES_IN, "maximum": MAX_EXPIRES_IN},
            "client_reference_id": {"type": "string", "maxLength": 200},
            "line_items": {"type": "array", "maxItems": crate::domain::travel::MAX_LINE_ITEMS,
                "items": {"$ref": "#/components/schemas/LineItem"}},
            "travelers": {"$ref": "#/components/schemas/Travelers"},
        }),
    );
    set(
        doc,
        "LineItem",
        json!({
            "description": text(200, true),
            "date": {"type": "string", "format": "date"},
            "from": text(60, true),
            "to": text(60, true),
        }),
    );
    set(
        doc,
        "Travelers",
        json!({
            "count": {"type": "integer", "minimum": 1, "maximum": crate::domain::travel::MAX_TRAVELERS},
            "lead_name": text(100, true),
        }),
    );
    set(
        doc,
        "CreateRefundParams",
        json!({
            "payment": id_pattern("pa_"),
            "amount": {"type": "integer", "minimum": 1, "maximum": MAX_MINOR},
            "currency": {"type": "string", "enum": currencies},
            "reason": text(500, false),
        }),
    );
    set(
        doc,
        "CustomerParams",
        json!({
            "phone": {"type": "string", "pattern": PHONE},
            "email": {"type": "string", "maxLength": 254, "pattern": EMAIL},
        }),
    );
    set(
        doc,
        "CreateEndpointParams",
        json!({
            "url": url,
            "enabled_events": {"type": "array", "minItems": 1,
                "items": {"type": "string", "enum": subscribable}},
            "description": text(200, false),
        }),
    );
    set(
        doc,
        "RotateSecretParams",
        json!({"expires_in": {"type": "integer", "minimum": 0, "maximum": MAX_ROTATION_OVERLAP_SECS}}),
    );
    set(
        doc,
        "UpdateAccountParams",
        json!({"embed_origins": {"type": "array", "maxItems": crate::embed::MAX_ORIGINS,
            "items": {"type": "string", "maxLength": 300, "pattern": ORIGIN}}}),
    );

    let id = |prefix: &str| json!({"type": "string", "pattern": format!("^{prefix}[0-9A-Za-z]{{{RANDOM_LEN}}}$")});
    let query = json!({
        "limit": {"type": "integer", "minimum": 1, "maximum": super::events::MAX_LIMIT},
        "starting_after": id("evt_"),
        "type": {"type": "string", "enum": event_types},
        "checkout_session": id("cs_"),
    });
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let Some(params) = op.get_mut("parameters").and_then(|p| p.as_array_mut()) else {
                continue;
            };
            for p in params {
                let name = p["name"].as_str().unwrap_or_default().to_owned();
                if name == "Idempotency-Key" {
                    p["schema"] = json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY});
                } else if path == "/v1/events" && p["in"] == "query" {
                    p["schema"] = query[&name].clone();
                } else if path == "/v1/refunds" && name == "payment" {
                    p["schema"] = id("pa_");
                } else if path == "/v1/refunds/{id}" && name == "id" {
                    p["schema"] = id("re_");
                }
            }
        }
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "secret_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A secret key: `Authorization: Bearer sk_test_…` or `sk_live_…`. \
                         The key's mode scopes every object.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Malipo merchant API",
        description = "Checkout sessions, webhooks and events for Malipo's hosted mobile-money \
            checkout. JSON over HTTPS; every POST accepts an `Idempotency-Key` header \
            (replayed answers carry `Idempotent-Replayed: true`). Webhooks are signed with \
            `Malipo-Signature: t=…,v1=…` (HMAC-SHA256 of `{t}.{body}`).",
    ),
    components(schemas(
        ErrorBody,
        crate::resources::PaymentObject,
        crate::resources::QuoteObject,
        crate::resources::CardObject,
        crate::resources::PaymentRefusalObject,
        crate::resources::RefundObject,
        crate::domain::travel::LineItem,
        crate::domain::travel::Travelers
    )),
    modifiers(&BearerAuth),
    security(("secret_key" = [])),
    tags(
        (name = "checkout", description = "Checkout sessions"),
        (name = "webhooks", description = "Webhook endpoints and events"),
        (name = "account", description = "The merchant's settings"),
        (name = "refunds", description = "Refunds of payments"),
    )
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> serde_json::Value {
        crate::api::openapi_document("https://pay.example")
    }

    #[test]
    fn describes_the_webhooks_malipo_sends() {
        let d = doc();
        let mut kinds: Vec<&String> = d["webhooks"].as_object().unwrap().keys().collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                "checkout.session.completed",
                "checkout.session.expired",
                "payment.duplicate",
                "payment.failed",
                "payment.refused",
                "payment.succeeded",
                "payment.unknown",
                "refund.failed",
                "refund.succeeded"
            ]
        );
        for (_, hook) in d["webhooks"].as_object().unwrap() {
            let schema = &hook["post"]["requestBody"]["content"]["application/json"]["schema"];
            let name = schema["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
            assert!(d["components"]["schemas"][name].is_object(), "{name}");
            assert_eq!(hook["post"]["parameters"][0]["name"], "Malipo-Signature");
        }
    }

    #[test]
    fn is_openapi_3_1_with_every_route() {
        let d = doc();
        assert!(d["openapi"].as_str().unwrap().starts_with("3.1"));
        let mut routes: Vec<String> = Vec::new();
        for (path, item) in d["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                routes.push(format!("{} {path}", method.to_uppercase()));
            }
        }
        routes.sort();
        assert_eq!(
            routes,
            [
                "DELETE /v1/webhook_endpoints/{id}",
                "GET /v1/account",
                "GET /v1/checkout.js",
                "GET /v1/checkout/sessions/{id}",
                "GET /v1/events",
                "GET /v1/events/{id}",
                "GET /v1/events/{id}/deliveries",
                "GET /v1/openapi.json",
                "GET /v1/refunds",
                "GET /v1/refunds/{id}",
                "GET /v1/webhook_endpoints",
                "GET /v1/webhook_endpoints/{id}",
                "POST /v1/account",
                "POST /v1/checkout/sessions",
                "POST /v1/checkout/sessions/{id}/expire",
                "POST /v1/events/{id}/redeliver",
                "POST /v1/refunds",
                "POST /v1/webhook_endpoints",
                "POST /v1/webhook_endpoints/{id}/rotate_secret",
            ]
        );
    }

    /// The fields each hand-written parser accepts are exactly the documented ones.
    #[test]
    fn request_bodies_match_the_parsers() {
        let d = doc();
        let props = |schema: &str| -> Vec<String> {
            let mut v: Vec<String> = d["components"]["schemas"][schema]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{schema} not in the document"))
                .keys()
                .cloned()
                .collect();
            v.sort();
            v
        };
        let sorted = |f: &[&str]| {
            let mut v: Vec<String> = f.iter().map(|s| s.to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(
            props("CreateSessionParams"),
            sorted(&crate::api::sessions::FIELDS)
        );
        assert_eq!(
            props("CreateEndpointParams"),
            sorted(&crate::api::webhook_endpoints::CREATE_FIELDS)
        );
        assert_eq!(
            props("RotateSecretParams"),
            sorted(&crate::api::webhook_endpoints::ROTATE_FIELDS)
        );
        assert_eq!(
            props("UpdateAccountParams"),
            sorted(&crate::api::account::UPDATE_FIELDS)
        );
        assert_eq!(
            props("CreateRefundParams"),
            sorted(&crate::api::refunds::FIELDS)
        );
    }

    /// The parsers' limits are in the document (schemathesis holds the rest together).
    #[test]
    fn states_the_parsers_constraints() {
        let d = doc();
        let session = &d["components"]["schemas"]["CreateSessionParams"];
        assert_eq!(session["additionalProperties"], false);
        assert_eq!(session["properties"]["amount"]["minimum"], 1);
        assert_eq!(
            session["properties"]["amount"]["maximum"],
            crate::domain::money::MAX_MINOR
        );
        assert_eq!(
            session["properties"]["currency"]["enum"]
                .as_array()
                .unwrap()
                .len(),
            crate::domain::money::CURRENCIES.len()
        );
        assert_eq!(session["properties"]["reference"]["maxLength"], 64);
        assert!(session["properties"]["description"]["description"].is_string());
        let events = &d["paths"]["/v1/events"]["get"]["parameters"];
        let limit = events
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(limit["schema"]["minimum"], 1);
        assert_eq!(limit["schema"]["maximum"], 100);
        let mut keys = 0;
        for item in d["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                assert!(op.get("parameters") != Some(&serde_json::Value::Null));
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["name"] == "Idempotency-Key" {
                        assert_eq!(p["schema"]["pattern"], IDEMPOTENCY_KEY);
                        keys += 1;
                    }
                }
            }
        }
        assert_eq!(keys, 7, "every POST takes an Idempotency-Key");
        // The text pattern refuses what `api::body::text` refuses.
        let pattern = text_pattern(true);
        assert!(pattern.contains(r"\u202A-\u202E") && pattern.contains(r"\u0000-\u001F"));
    }

    /// Every error code the API code can produce is a documented one.
    #[test]
    fn every_error_code_in_the_source_is_documented() {
        let sources = [
            include_str!("sessions.rs"),
            include_str!("webhook_endpoints.rs"),
            include_str!("events.rs"),
            include_str!("account.rs"),
            include_str!("refunds.rs"),
            include_str!("body.rs"),
            include_str!("idempotency.rs"),
            include_str!("../http/error.rs"),
        ];
        let mut found = Vec::new();
        for src in sources {
            for marker in ["ApiError::invalid(", "code: \""] {
                for (i, _) in src.match_indices(marker) {
                    let rest = &src[i + marker.len()..];
                    let rest = rest.trim_start().trim_start_matches('"');
                    let code: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !code.is_empty() {
                        found.push(code);
                    }
                }
            }
        }
        assert!(found.len() > 20, "the scan finds the codes: {found:?}");
        for code in &found {
            assert!(
                ERROR_CODES.contains(&code.as_str()),
                "undocumented error code {code}"
            );
        }
        let d = doc();
        let listed = &d["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"];
        assert_eq!(listed.as_array().unwrap().len(), ERROR_CODES.len());
    }
}
