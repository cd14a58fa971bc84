//! The shopper's language on the hosted pages: read from the request (`?lang=`, the
//! `malipo_lang` cookie, `Accept-Language`; see [`app::i18n`]), kept in a cookie when
//! the shopper chose it with the switcher, and said in `Vary` so a cache never hands
//! one language's page to another's reader.

use axum::http::{HeaderMap, HeaderValue, Uri, header};

use app::i18n::{COOKIE, Locale, Requested, requested};

/// How long a chosen language is remembered: a year.
const COOKIE_MAX_AGE_SECS: u32 = 365 * 24 * 3600;

/// The `lang` query parameter, if the request has one.
pub fn query_lang(uri: &Uri) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == "lang")
        .map(|(_, v)| v.into_owned())
}

/// The language cookie's value, if the request carries it.
fn cookie_lang(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// What the request asks for, and whether the shopper chose it (query or cookie)
/// rather than the browser.
pub fn from_request(uri: &Uri, headers: &HeaderMap) -> Requested {
    let query = query_lang(uri);
    let cookie = cookie_lang(headers);
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let locale = requested(query.as_deref(), cookie, accept);
    let chosen = query.as_deref().and_then(Locale::parse).is_some()
        || cookie.and_then(Locale::parse).is_some();
    Requested { locale, chosen }
}

/// The language for an answer with no merchant to ask (a busy page, a refusal).
pub fn for_request(uri: &Uri, headers: &HeaderMap) -> Locale {
    from_request(uri, headers).locale.unwrap_or(Locale::En)
}

/// On a page's answer: `Vary: Accept-Language, Cookie`, and the cookie when the
/// request chose a language with `?lang=` (so the next page, and the no-JS form's
/// return, speak it too).
pub fn finish(headers: &mut HeaderMap, query: Option<&str>, https: bool) {
    headers.append(
        header::VARY,
        HeaderValue::from_static("accept-language, cookie"),
    );
    if let Some(locale) = query.and_then(Locale::parse) {
        let secure = if https { "; Secure" } else { "" };
        let cookie = format!(
            "{COOKIE}={}; Path=/pay; Max-Age={COOKIE_MAX_AGE_SECS}; HttpOnly; SameSite=Lax{secure}",
            locale.code()
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

/// Keeps the language the shopper pays in on the session, for their receipt: the
/// form's chosen one, else the request's. In the background and best effort: the
/// prompt never waits for it, and a failed write costs the receipt's language (the
/// merchant's default is used), never the payment.
pub fn remember(
    state: &crate::startup::AppState,
    sid: &crate::domain::SessionId,
    uri: &Uri,
    headers: &HeaderMap,
    form_lang: Option<&str>,
) {
    let Some(locale) = form_lang
        .and_then(Locale::parse)
        .or_else(|| from_request(uri, headers).locale)
    else {
        return;
    };
    let (store, sid) = (state.store.clone(), sid.clone());
    tokio::spawn(async move {
        if let Err(e) = store.set_session_locale(&sid, locale.code()).await {
            tracing::warn!(error = %e, "keeping the shopper's language failed");
        }
    });
}

/// `lang=sw` for a redirect back to the page, when the posted form carried a language.
pub fn back_param(lang: Option<&str>) -> Option<String> {
    lang.and_then(Locale::parse)
        .map(|l| format!("lang={}", l.code()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, cookie: Option<&str>, accept: Option<&str>) -> Requested {
        let mut headers = HeaderMap::new();
        if let Some(c) = cookie {
            headers.insert(header::COOKIE, HeaderValue::from_str(c).unwrap());
        }
        if let Some(a) = accept {
            headers.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_str(a).unwrap());
        }
        from_request(&uri.parse().unwrap(), &headers)
    }

    #[test]
    fn a_choice_is_the_query_or_the_cookie_never_the_browser() {
        let sw = Some(Locale::Sw);
        assert_eq!(
            req("/pay/x?lang=sw", Some("malipo_lang=fr"), Some("en")),
            Requested {
                locale: sw,
                chosen: true
            }
        );
        assert_eq!(
            req("/pay/x", Some("a=b; malipo_lang=sw"), Some("fr")),
            Requested {
                locale: sw,
                chosen: true
            }
        );
        assert_eq!(
            req("/pay/x?lang=xx", None, Some("sw-KE")),
            Requested {
                locale: sw,
                chosen: false
            }
        );
        assert_eq!(
            req("/pay/x", Some("malipo_lang=de"), Some("de")),
            Requested {
                locale: None,
                chosen: false
            }
        );
    }

    #[test]
    fn the_cookie_is_set_only_for_a_language_asked_by_query() {
        let mut h = HeaderMap::new();
        finish(&mut h, Some("sw"), true);
        let cookie = h.get(header::SET_COOKIE).unwrap().to_str().unwrap();
        assert!(cookie.starts_with("malipo_lang=sw; Path=/pay;"), "{cookie}");
        assert!(cookie.ends_with("; Secure"), "{cookie}");
        assert_eq!(h.get(header::VARY).unwrap(), "accept-language, cookie");
        let mut h = HeaderMap::new();
        finish(&mut h, Some("<script>"), false);
        assert!(h.get(header::SET_COOKIE).is_none());
        assert_eq!(back_param(Some("fr")).as_deref(), Some("lang=fr"));
        assert_eq!(back_param(Some("fr&x=1")), None);
    }
}
