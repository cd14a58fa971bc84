//! The sandbox mailbox: the mail a test install without SMTP would have sent. It exists
//! only when no SMTP server is configured, which live mode refuses (start-up fails), so
//! a live install never shows anyone's sign-in links on a page. Like the sandbox
//! operators, it is for an install on a developer's machine.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use leptos::prelude::*;

use super::{store_failed, views::document};
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/sandbox/mailbox", get(mailbox))
}

async fn mailbox(
    State(state): State<AppState>,
    web: super::Web,
    headers: axum::http::HeaderMap,
) -> Response {
    // Only for the machine it runs on: a test install reachable from elsewhere must not
    // show its sign-in and reset links to the world. A reverse proxy on the same machine
    // makes every visitor look local: a request that came through one (it says so) is
    // not shown the mailbox either.
    let local = !crate::limits::came_through_proxy(&headers)
        && web
            .ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !state.accounts.mailer().is_sandbox() || !local {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mail = match state.store.sandbox_mail(50).await {
        Ok(m) => m,
        Err(e) => return store_failed(e),
    };
    let items = mail
        .into_iter()
        .map(|m| {
            view! {
                <article class="card" data-to=m.to.clone()>
                    <h2>{m.subject}</h2>
                    <p class="hint">"To " {m.to.clone()} " · " {crate::time::format_utc(m.created_at)} " UTC"</p>
                    <div class="mail">{m.body}</div>
                </article>
            }
        })
        .collect_view();
    let body = view! {
        <h1>"Sandbox mailbox"</h1>
        <p class="hint">"This test install has no SMTP server ([mail] smtp_url), so the mail it sends is kept here, newest first. Live mode does not start without SMTP."</p>
        {items}
    };
    axum::response::Html(document("Sandbox mailbox", None, body.into_any())).into_response()
}
