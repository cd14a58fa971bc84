//! The hosted pages. Components here render on the server; only `#[island]`s hydrate.

pub mod checkout;
mod countdown;
mod embed;
mod live;
pub mod receipt;

use leptos::prelude::*;
use leptos_meta::{Html, Title};

use crate::i18n::{Locale, Requested};

/// Sets the HTTP status of the page being rendered (server only; no-op in the browser).
fn set_status(_code: u16) {
    #[cfg(feature = "ssr")]
    if let (Some(res), Ok(status)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        http::StatusCode::from_u16(_code),
    ) {
        res.set_status(status);
    }
}

/// Says the page's language: `<html lang>` and `Content-Language` (server only for
/// the header).
#[component]
pub fn Language(locale: Locale) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.insert_header(
            http::header::CONTENT_LANGUAGE,
            http::HeaderValue::from_static(locale.code()),
        );
    }
    view! { <Html {..} lang=locale.code() /> }
}

/// The language of a page with no merchant to ask: the request's, else English.
fn request_locale() -> Locale {
    use_context::<Requested>()
        .and_then(|r| r.locale)
        .unwrap_or(Locale::En)
}

/// Escapes `&`, `<` and `>` for the server-rendered `<title>`.
///
/// leptos_meta 0.8 writes `<Title>` text into the document unescaped, so a merchant
/// called `</title><script>…` could inject script. The browser decodes the character
/// references inside `<title>`, so the shopper still reads the name as written.
pub fn escape_title(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's `<title>`, safe for any text.
#[component]
pub fn PageTitle(#[prop(into)] text: String) -> impl IntoView {
    view! { <Title text=escape_title(&text) /> }
}

/// Shown, with a 404, for any unknown path and for a checkout id that does not exist.
#[component]
pub fn NotFound() -> impl IntoView {
    set_status(404);
    let l = request_locale();
    view! {
        <PageTitle text=l.not_found_title() />
        <Language locale=l />
        <main class="page page-message" data-page="not-found">
            <h1>{l.not_found_heading()}</h1>
            <p>{l.not_found_body()}</p>
            <p class="fine">{l.not_found_fine()}</p>
        </main>
    }
}

/// Shown, with a 503, when the checkout cannot be loaded right now (database down).
#[component]
pub fn Unavailable() -> impl IntoView {
    set_status(503);
    let l = request_locale();
    view! {
        <PageTitle text=l.unavailable_title() />
        <Language locale=l />
        <main class="page page-message" data-page="unavailable">
            <h1>{l.unavailable_heading()}</h1>
            <p>{l.unavailable_body()}</p>
            <p>
                <a class="button" href="">
                    {l.try_again()}
                </a>
            </p>
        </main>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn titles_cannot_close_their_element() {
        assert_eq!(
            super::escape_title("</title><script>x</script> & Co"),
            "&lt;/title&gt;&lt;script&gt;x&lt;/script&gt; &amp; Co"
        );
    }
}
