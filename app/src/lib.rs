//! Malipo's hosted checkout pages: the shell, routes, pages, islands and the DTOs they
//! share with the server.
//!
//! # Layout
//! - [`money`]: currencies (ISO 4217 exponents) and amount formatting, shared by the
//!   server's domain types and the pages, so "KES 1,500" reads the same everywhere.
//! - [`model`]: the wasm-safe view models the server hands to pages.
//! - [`pages`]: the checkout page, the not-found page and the islands they hydrate.
//! - `service` (server only): the trait the server implements so that server functions
//!   reach the store without this crate depending on it.
//!
//! The pages are rendered on the server and hydrated as **islands**: only the small
//! interactive parts ship as WASM, which keeps a first load on 2G under the page budget
//! and leaves a page that works in full with JavaScript off.
#![forbid(unsafe_code)]

pub mod i18n;
pub mod model;
pub mod money;
pub mod operators;
pub mod pages;
pub mod rail;
#[cfg(feature = "ssr")]
pub mod service;

use leptos::prelude::*;
use leptos_meta::{MetaTags, provide_meta_context};
use leptos_router::{
    SsrMode,
    components::{Route, Router, Routes},
    path,
};

/// The built stylesheet, when the server has it (in the render context): inlined into
/// every page's head, so the first paint needs only the HTML's round trip (on 2G, a
/// linked stylesheet costs a second one: about 2 s). Under 1 kB brotli.
#[derive(Debug, Clone)]
pub struct InlineCss(pub std::sync::Arc<str>);

/// The import map that pins the islands' module to its Subresource Integrity hash
/// (`{"integrity": {"/pkg/malipo.js": "sha384-…"}}`), when the server has the built
/// site: a changed `malipo.js` is then refused by the browser (the page still works, as
/// without JavaScript).
#[derive(Debug, Clone)]
pub struct ModuleIntegrity(pub std::sync::Arc<str>);

/// The import map, before any module is loaded (with this response's CSP nonce).
#[component]
fn ImportMap() -> impl IntoView {
    use_context::<ModuleIntegrity>().map(|ModuleIntegrity(map)| {
        let nonce = leptos::nonce::use_nonce();
        view! { <script type="importmap" nonce=nonce inner_html=map.to_string()></script> }
    })
}

/// The page's styles: inline (with this response's CSP nonce) when known, else linked.
#[component]
fn Stylesheet() -> impl IntoView {
    match use_context::<InlineCss>() {
        Some(InlineCss(css)) => {
            let nonce = leptos::nonce::use_nonce();
            view! { <style nonce=nonce inner_html=css.to_string()></style> }.into_any()
        }
        None => view! { <link rel="stylesheet" href="/pkg/malipo.css" /> }.into_any(),
    }
}

/// The HTML document around every page. Rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        // `lang` is the page's (`pages::Language`), added by leptos_meta.
        <html>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light" />
                // Checkout pages are capabilities, and a test "Paid" page must never be
                // found and taken for proof of a real payment.
                <meta name="robots" content="noindex, nofollow" />
                <Stylesheet />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <ImportMap />
                <HydrationScripts options islands=true />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The routes of the hosted pages. Anything else is the not-found page with a 404.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Router>
            <Routes fallback=pages::NotFound>
                // Async: the whole page (and its status code) is decided before the first
                // byte, so a shopper with JavaScript off gets a complete document.
                <Route
                    path=path!("/pay/:id")
                    view=pages::checkout::CheckoutPage
                    ssr=SsrMode::Async
                />
                <Route
                    path=path!("/pay/:id/receipt")
                    view=pages::receipt::ReceiptPage
                    ssr=SsrMode::Async
                />
            </Routes>
        </Router>
    }
}

/// Entry point of the WASM bundle: hydrates the islands, and nothing else.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // No console_error_panic_hook: its panic formatting costs kilobytes on every
    // shopper's first load, and islands do not panic in normal operation.
    leptos::mount::hydrate_islands();
}
