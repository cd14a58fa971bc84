//! The hosted pages. Components here render on the server; only `#[island]`s hydrate.

pub mod checkout;
mod countdown;
mod embed;
mod live;

use leptos::prelude::*;
use leptos_meta::Title;

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
    view! {
        <PageTitle text="Checkout not found · Malipo" />
        <main class="page page-message" data-page="not-found">
            <h1>"We can't find this checkout"</h1>
            <p>
                "The link may be mistyped, incomplete or from another shop. "
                "Go back to the shop you came from and start the payment again."
            </p>
            <p class="fine">"No money has been taken."</p>
        </main>
    }
}

/// Shown, with a 503, when the checkout cannot be loaded right now (database down).
#[component]
pub fn Unavailable() -> impl IntoView {
    set_status(503);
    view! {
        <PageTitle text="Try again in a minute · Malipo" />
        <main class="page page-message" data-page="unavailable">
            <h1>"We can't load this checkout right now"</h1>
            <p>"Nothing has been charged. Please try again in a minute."</p>
            <p>
                <a class="button" href="">
                    "Try again"
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
