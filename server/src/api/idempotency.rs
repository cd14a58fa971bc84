//! `Idempotency-Key` on POST: the first response (status and body) is stored and replayed
//! for the same key and request; the same key with a different request → 422
//! `idempotency_key_reused`; while the first is still running → 409
//! `idempotency_key_in_use`. Responses that failed on our side (5xx) are not stored, so
//! a retry runs again. Keys live at least 7 days.

use axum::{
    body::{Body, Bytes, to_bytes},
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

use super::{Caller, MAX_BODY};
use crate::{
    http::error::ApiError,
    startup::AppState,
    store::{IdempotencyBegin, KeyScope},
    time::now_ms,
};

/// How long a claim holds before another request may take it over (a crashed process
/// must not block the key forever). A running request extends it every
/// [`EXTEND_EVERY`], however long it takes.
const CLAIM_MS: i64 = 60_000;
const EXTEND_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

/// What is stored for replay: the answer with any webhook signing secret (`whsec_…`)
/// blanked. A replay says `whsec_redacted`; a merchant who lost the first answer rotates
/// the secret (`POST /v1/webhook_endpoints/{id}/rotate_secret`).
pub fn redact_secrets(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.find("whsec_") {
        out.push_str(&rest[..at]);
        out.push_str("whsec_redacted");
        let after = &rest[at + "whsec_".len()..];
        let end = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// SHA-256 over method, path and the body. A JSON body is hashed in canonical form
/// (keys sorted, no whitespace) so the same parameters re-sent with other spacing or key
/// order count as the same request.
pub fn request_hash(method: &Method, path: &str, body: &[u8]) -> String {
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_vec(&v).ok());
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(canonical.as_deref().unwrap_or(body));
    hex::encode(h.finalize())
}

fn parse_key(value: &HeaderValue) -> Option<&str> {
    let key = value.to_str().ok()?;
    (1..=255)
        .contains(&key.len())
        .then_some(key)
        .filter(|k| k.bytes().all(|b| b.is_ascii_graphic()))
}

pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(raw_key) = req.headers().get("idempotency-key").cloned() else {
        return next.run(req).await;
    };
    let Some(key) = parse_key(&raw_key) else {
        return ApiError::Invalid {
            code: "invalid_idempotency_key",
            message: "Idempotency-Key must be 1 to 255 printable ASCII characters.".into(),
            param: None,
        }
        .into_response();
    };
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return ApiError::Internal(anyhow::anyhow!(
            "idempotency check ran before authentication"
        ))
        .into_response();
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return ApiError::RequestTooLarge.into_response();
    };
    let hash = request_hash(&parts.method, parts.uri.path(), &bytes);
    let scope = KeyScope {
        merchant_id: &caller.merchant_id,
        mode: caller.mode,
        key,
    };

    match state
        .store
        .idempotency_begin(scope, &hash, now_ms(), CLAIM_MS)
        .await
    {
        Err(e) => ApiError::from(e).into_response(),
        Ok(IdempotencyBegin::Mismatch) => ApiError::IdempotencyKeyReused.into_response(),
        Ok(IdempotencyBegin::InFlight) => ApiError::IdempotencyKeyInUse.into_response(),
        Ok(IdempotencyBegin::Replay { status, body }) => {
            let mut res = Response::new(Body::from(body));
            *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            res
        }
        Ok(IdempotencyBegin::Started { claim }) => {
            // Hold the claim for as long as the request runs: a slow request must not
            // lose its key to a retry that would run the work a second time.
            let run = next.run(Request::from_parts(parts, Body::from(bytes)));
            let extend = async {
                let mut tick = tokio::time::interval(EXTEND_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match state
                        .store
                        .idempotency_extend(scope, &claim, now_ms() + CLAIM_MS)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!("idempotency claim lost while running"),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not extend an idempotency claim")
                        }
                    }
                }
            };
            let res = tokio::select! {
                res = run => res,
                () = extend => unreachable!("the extend loop never ends"),
            };
            let (res_parts, res_body) = res.into_parts();
            let res_bytes: Bytes = match to_bytes(res_body, usize::MAX).await {
                Ok(b) => b,
                Err(e) => {
                    let _ = state.store.idempotency_abandon(scope, &claim).await;
                    return ApiError::Internal(anyhow::anyhow!("reading response: {e}"))
                        .into_response();
                }
            };
            let stored = if res_parts.status.is_server_error() {
                state.store.idempotency_abandon(scope, &claim).await
            } else {
                let text = redact_secrets(&String::from_utf8_lossy(&res_bytes));
                state
                    .store
                    .idempotency_finish(scope, &claim, res_parts.status.as_u16(), &text)
                    .await
            };
            match stored {
                Ok(true) => {}
                Ok(false) => tracing::error!("idempotency claim was taken over; answer not stored"),
                // The work is done; only the replay record is missing. A retry would
                // redo it, so say so loudly.
                Err(e) => tracing::error!(error = %e, "could not record idempotent response"),
            }
            Response::from_parts(res_parts, Body::from(res_bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_json_spacing_and_key_order_but_not_values() {
        let a = request_hash(
            &Method::POST,
            "/v1/x",
            br#"{"amount":100,"currency":"KES"}"#,
        );
        let b = request_hash(
            &Method::POST,
            "/v1/x",
            b"{ \"currency\": \"KES\",\n \"amount\": 100 }",
        );
        let c = request_hash(
            &Method::POST,
            "/v1/x",
            br#"{"amount":101,"currency":"KES"}"#,
        );
        let d = request_hash(
            &Method::POST,
            "/v1/y",
            br#"{"amount":100,"currency":"KES"}"#,
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn stored_answers_never_keep_a_signing_secret() {
        assert_eq!(
            redact_secrets(r#"{"secret":"whsec_Ab12cD","url":"x","s2":"whsec_Q"}"#),
            r#"{"secret":"whsec_redacted","url":"x","s2":"whsec_redacted"}"#
        );
        assert_eq!(redact_secrets("no secrets"), "no secrets");
        assert_eq!(redact_secrets("whsec_"), "whsec_redacted");
    }

    #[test]
    fn keys_are_bounded_printable_ascii() {
        assert_eq!(
            parse_key(&HeaderValue::from_static("order-42")),
            Some("order-42")
        );
        assert!(parse_key(&HeaderValue::from_static("")).is_none());
        assert!(parse_key(&HeaderValue::from_static("has space")).is_none());
        assert!(parse_key(&HeaderValue::from_str(&"k".repeat(256)).unwrap()).is_none());
    }
}
