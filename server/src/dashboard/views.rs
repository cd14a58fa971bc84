//! The dashboard's page frames and forms, as Leptos views rendered to HTML on the server
//! (no islands: nothing here ships to the browser but HTML and one stylesheet).

use leptos::prelude::*;

use crate::domain::Mode;

/// What the frame of a signed-in page shows.
#[derive(Clone)]
pub struct Nav {
    pub merchant: String,
    pub email: String,
    pub role: &'static str,
    pub mode: Mode,
    pub csrf: String,
    /// Which section is open (`payments`, `security`, `audit`…).
    pub section: &'static str,
    pub may_view_audit: bool,
}

/// A whole document.
pub fn document(title: &str, nav: Option<Nav>, body: AnyView) -> String {
    let title = format!("{title} · Malipo dashboard");
    let live = nav.as_ref().is_some_and(|n| n.mode == Mode::Live);
    let page = view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="robots" content="noindex, nofollow" />
                <title>{title}</title>
                <link rel="stylesheet" href="/dashboard/style.css" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
            </head>
            <body class:live=live>
                {nav.map(|n| view! { <NavBar nav=n /> })}
                <main>{body}</main>
            </body>
        </html>
    };
    page.to_html()
}

#[component]
fn NavBar(nav: Nav) -> impl IntoView {
    let (mode_label, other, other_label) = match nav.mode {
        Mode::Test => ("Test mode", "live", "Switch to live"),
        Mode::Live => ("Live mode", "test", "Switch to test"),
    };
    let current = |s: &'static str| (nav.section == s).then_some("page");
    view! {
        <header class="bar">
            <strong class="brand">"Malipo"</strong>
            <span class="merchant">{nav.merchant.clone()}</span>
            <span class="mode" data-mode=nav.mode.as_str()>{mode_label}</span>
            <form method="post" action="/dashboard/mode" class="inline">
                <input type="hidden" name="csrf" value=nav.csrf.clone() />
                <input type="hidden" name="mode" value=other />
                <button type="submit" class="link">{other_label}</button>
            </form>
            <nav>
                <a href="/dashboard/payments" aria-current=current("payments")>"Payments"</a>
                <a href="/dashboard/developers" aria-current=current("developers")>"Developers"</a>
                <a href="/dashboard/team" aria-current=current("team")>"Team"</a>
                <a href="/dashboard/settings" aria-current=current("settings")>"Settings"</a>
                <a href="/dashboard/security" aria-current=current("security")>"Security"</a>
                {nav.may_view_audit.then(|| view! {
                    <a href="/dashboard/audit" aria-current=current("audit")>"Audit log"</a>
                })}
            </nav>
            <span class="who">{nav.email.clone()} " · " {nav.role}</span>
            <form method="post" action="/dashboard/sign-out" class="inline">
                <input type="hidden" name="csrf" value=nav.csrf.clone() />
                <button type="submit" class="link">"Sign out"</button>
            </form>
        </header>
    }
}

/// A page with one message (and its stable code), for refusals and confirmations.
pub fn message_page(title: &str, code: &str, text: &str, link: Option<(&str, &str)>) -> String {
    let body = view! {
        <section class="card narrow">
            <h1>{title.to_owned()}</h1>
            <p data-code=code.to_owned()>{text.to_owned()}</p>
            {link.map(|(href, label)| view! { <p><a href=href.to_owned()>{label.to_owned()}</a></p> })}
        </section>
    };
    document(title, None, body.into_any())
}

/// The hidden CSRF field every form carries.
#[component]
pub fn Csrf(token: String) -> impl IntoView {
    view! { <input type="hidden" name="csrf" value=token /> }
}

/// An error line above a form, with its stable code.
#[component]
pub fn FormError(error: Option<(String, &'static str)>) -> impl IntoView {
    error.map(|(text, code)| view! { <p class="error" role="alert" data-code=code>{text}</p> })
}

/// A notice line above a form.
#[component]
pub fn Notice(notice: Option<String>) -> impl IntoView {
    notice.map(|text| view! { <p class="notice" role="status">{text}</p> })
}
