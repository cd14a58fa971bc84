//! The embeddable checkout: `GET /v1/checkout.js`, and who may frame the hosted page.
//!
//! A merchant lists the origins allowed to embed its checkout (`POST /v1/account`,
//! `malipo merchant embed-origins`). Every `/pay/{id}` response carries
//! `Content-Security-Policy: frame-ancestors <those origins>` (or `'none'`), so the
//! browser refuses to show the page inside anyone else's site. In the frame, the page
//! talks to the script by `postMessage`, always to the embedding origin it was given
//! and only after the server checked that origin against the list.

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use base64::Engine;
use sha2::{Digest, Sha384};

use crate::startup::AppState;

/// The script, as served.
pub const CHECKOUT_JS: &str = include_str!("checkout.js");
/// Most origins one merchant may allow.
pub const MAX_ORIGINS: usize = 10;

/// The Subresource Integrity value of [`CHECKOUT_JS`] (`sha384-…`), for
/// `<script integrity=…>`.
pub fn integrity() -> String {
    let digest = Sha384::digest(CHECKOUT_JS.as_bytes());
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// An origin as the browser writes it: `https://host[:port]`, or `http://` for
/// localhost and loopback addresses (development). No path, query or credentials.
pub fn parse_origin(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw.trim()).ok()?;
    let host = url.host_str()?;
    // Plain host names and addresses only: no wildcards or other CSP syntax.
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c))
    {
        return None;
    }
    let local = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && local);
    let bare = matches!(url.path(), "" | "/")
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    (scheme_ok && bare).then(|| url.origin().ascii_serialization())
}

/// The CSP `frame-ancestors` directive for a list of (already parsed) origins.
pub fn frame_ancestors(origins: &[String]) -> String {
    if origins.is_empty() {
        "frame-ancestors 'none'".into()
    } else {
        format!("frame-ancestors {}", origins.join(" "))
    }
}

/// `/v1/checkout.js`: public, cacheable by anyone (CORS `*`, so `integrity` works
/// cross-origin).
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/checkout.js", get(checkout_js))
}

/// The embeddable checkout script (`Malipo.open`, `Malipo.mount`). Public, immutable:
/// pin it with the `integrity` hash the README shows.
#[utoipa::path(get, path = "/v1/checkout.js", tag = "checkout", security(()),
    responses((status = 200, description = "The script", content_type = "text/javascript", body = String))
)]
pub async fn checkout_js() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            // The v1 script is frozen: merchants pin its integrity hash, so a change
            // would break every embedding page. Changes ship under a new versioned path,
            // which lets this one be cached for a year.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
        ],
        CHECKOUT_JS,
    )
        .into_response()
}

/// A fresh CSP nonce for one page response (128 random bits).
#[derive(Debug, Clone)]
pub struct CspNonce(pub String);

/// The hosted pages' Content-Security-Policy, with this response's nonce, who may frame
/// it, and the card processor (`card`: the session's mode's, as (origin, `session.js`
/// URL)).
/// Scripts: our own files, inline scripts carrying the nonce (the island loader, the
/// embed bridge) and the card processor's `session.js`; WASM may compile; nothing else
/// runs. Styles: our own, and the inlined stylesheet carrying the nonce. Frames: only
/// the processor's card fields. Forms post only to us and the processor (its hosted
/// page, for shoppers without JavaScript), and land (after our 303) only on the
/// `redirects` origins besides (PayPal's approval page); fetches go only to us and the
/// processor.
pub fn page_policy(
    nonce: &str,
    origins: &[String],
    card: &[(String, String)],
    redirects: &[String],
) -> String {
    // Scripts: the processor's `session.js` itself, not its whole origin.
    let scripts = card
        .iter()
        .map(|(_, script)| format!(" {script}"))
        .collect::<String>();
    let card = card
        .iter()
        .map(|(origin, _)| origin.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let with_card = |base: &str| {
        if card.is_empty() {
            base.to_owned()
        } else {
            format!("{base} {card}")
        }
    };
    let forms = redirects
        .iter()
        .fold(with_card("'self'"), |acc, origin| format!("{acc} {origin}"));
    format!(
        "default-src 'self'; script-src 'self'{scripts} 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; connect-src {}; \
         frame-src {}; form-action {forms}; {}; base-uri 'none'; object-src 'none'",
        with_card("'self'"),
        if card.is_empty() {
            "'none'".to_owned()
        } else {
            card.clone()
        },
        frame_ancestors(origins)
    )
}

/// Sets the hosted pages' CSP: a nonce per response (given to the renderer through the
/// request's extensions) and, on `/pay/{id}`, `frame-ancestors` from the merchant's
/// allowed origins for the session's mode; everything else keeps `'none'`. Also reads
/// the shopper's language for the renderer, and says what the page varies with
/// ([`crate::http::locale`]).
pub async fn frame_policy(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let session = req
        .uri()
        .path()
        .strip_prefix("/pay/")
        .filter(|rest| !rest.contains('/'))
        .map(str::to_owned);
    let nonce = crate::domain::ids::random_base62(22);
    req.extensions_mut().insert(CspNonce(nonce.clone()));
    let lang = crate::http::locale::query_lang(req.uri());
    let is_page = req.uri().path().starts_with("/pay/");
    let requested = crate::http::locale::from_request(req.uri(), req.headers());
    req.extensions_mut().insert(requested);
    let mut response = next.run(req).await;
    // Pages only: an asset's answer (`/pkg`, the icon) must stay cacheable by any
    // shared cache, and sets no cookie.
    if is_page {
        crate::http::locale::finish(
            response.headers_mut(),
            lang.as_deref(),
            state.config.public_url.starts_with("https://"),
        );
    }
    let (origins, mode) = match session {
        Some(id) => match state.store.embed_origins_for_session(&id).await {
            Ok(Some((origins, mode, merchant))) => (origins, Some((mode, merchant))),
            Ok(None) => (Vec::new(), None),
            Err(e) => {
                tracing::warn!(error = %e, "embed origins unavailable; refusing frames");
                (Vec::new(), None)
            }
        },
        None => (Vec::new(), None),
    };
    // The card processor of the session's own mode only (a live page never names the
    // test sandbox's); no session, no processor.
    let card = mode
        .as_ref()
        .map(|(mode, merchant)| state.payments.card_sources(merchant, *mode))
        .unwrap_or_default();
    // Likewise PayPal's approval page: the PayPal form's 303 lands there.
    let redirects: Vec<String> = mode
        .as_ref()
        .and_then(|(mode, merchant)| state.payments.paypal_origin(merchant, *mode))
        .into_iter()
        .collect();
    if let Ok(value) = HeaderValue::from_str(&page_policy(&nonce, &origins, &card, &redirects)) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_and_checked() {
        assert_eq!(
            parse_origin("https://Lodge.Example/").as_deref(),
            Some("https://lodge.example")
        );
        assert_eq!(
            parse_origin("https://lodge.example:8443").as_deref(),
            Some("https://lodge.example:8443")
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:4000").as_deref(),
            Some("http://127.0.0.1:4000")
        );
        assert_eq!(
            parse_origin("http://localhost:4000").as_deref(),
            Some("http://localhost:4000")
        );
        for bad in [
            "http://lodge.example",
            "https://lodge.example/book",
            "https://lodge.example/?x=1",
            "javascript:alert(1)",
            "*",
            "https://*.example",
            "https://u:p@lodge.example",
            "'self'",
        ] {
            assert_eq!(parse_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn frame_ancestors_default_to_none() {
        assert_eq!(frame_ancestors(&[]), "frame-ancestors 'none'");
        assert_eq!(
            frame_ancestors(&["https://a.example".into(), "http://localhost:3001".into()]),
            "frame-ancestors https://a.example http://localhost:3001"
        );
    }

    #[test]
    fn integrity_is_a_sha384_of_the_script() {
        let i = integrity();
        assert!(i.starts_with("sha384-") && i.len() == 7 + 64, "{i}");
    }
}
