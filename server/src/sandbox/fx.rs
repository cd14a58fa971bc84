//! The sandbox's rates provider, `GET /sandbox/fx/rates?base=USD`: fixed, documented
//! rates (the README's Currencies section), in the shape most rate APIs answer
//! (`{"base": "USD", "rates": {"KES": "129.00", …}}`), so test mode converts over real HTTP
//! exactly as live mode does against a merchant's provider.

use axum::{
    Json, Router,
    extract::Query,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;

use crate::{domain::money::Currency, startup::AppState};

/// One `base` buys this much of each other currency. Only these three bases are quoted;
/// a rate the other way round (KES to USD) is the same rate, read backwards.
pub const RATES: [(Currency, &[(Currency, &str)]); 3] = [
    (
        Currency::Usd,
        &[
            (Currency::Kes, "129.00"),
            (Currency::Tzs, "2450.00"),
            (Currency::Ugx, "3700"),
            (Currency::Rwf, "1450"),
            (Currency::Zmw, "26.50"),
            (Currency::Eur, "0.92"),
            (Currency::Gbp, "0.79"),
        ],
    ),
    (
        Currency::Eur,
        &[
            (Currency::Kes, "140.00"),
            (Currency::Tzs, "2660.00"),
            (Currency::Ugx, "4020"),
            (Currency::Rwf, "1575"),
            (Currency::Zmw, "28.80"),
            (Currency::Usd, "1.087"),
            (Currency::Gbp, "0.86"),
        ],
    ),
    (
        Currency::Gbp,
        &[
            (Currency::Kes, "163.00"),
            (Currency::Tzs, "3100.00"),
            (Currency::Ugx, "4680"),
            (Currency::Rwf, "1835"),
            (Currency::Zmw, "33.50"),
            (Currency::Usd, "1.266"),
            (Currency::Eur, "1.163"),
        ],
    ),
];

pub fn router() -> Router<AppState> {
    Router::new().route("/sandbox/fx/rates", get(rates))
}

#[derive(Deserialize)]
struct RatesQuery {
    base: Option<String>,
}

async fn rates(Query(q): Query<RatesQuery>) -> Response {
    let Some(base) = q.base.as_deref().and_then(Currency::parse) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "invalid_base", "message": "Ask for ?base=USD (an ISO 4217 code)."})),
        )
            .into_response();
    };
    let rates: serde_json::Map<String, serde_json::Value> = RATES
        .iter()
        .find(|(b, _)| *b == base)
        .map(|(_, list)| {
            list.iter()
                .map(|(c, r)| (c.code().to_owned(), serde_json::Value::from(*r)))
                .collect()
        })
        .unwrap_or_default();
    Json(serde_json::json!({
        "base": base.code(),
        "source": "Malipo sandbox: fixed rates, not market rates",
        "rates": rates,
    }))
    .into_response()
}
