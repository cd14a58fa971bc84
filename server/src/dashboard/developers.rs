//! Developers: API keys (create, roll with an overlap, revoke; a secret shown once),
//! webhook endpoints (a signing secret shown once) and the origins that may embed the
//! checkout, for the mode the switch at the top shows.

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{Redirect, Response},
    routing::{get, post},
};
use leptos::prelude::*;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{
    CsrfForm, DashForm, Signed, Web,
    auth::{nav, needs_reauth},
    forbidden, store_failed,
    views::{Csrf, FormError, Notice, document, message_page},
};
use crate::{
    accounts::Permission,
    domain::{ApiKeyKind, WebhookEndpointId, ids::KeyId},
    startup::AppState,
    store::SignedIn,
    time::{format_utc, now_ms},
};

/// How long a rolled secret key keeps working beside its successor.
pub const ROLL_OVERLAP_MS: i64 = 24 * 3600 * 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard/developers", get(page))
        .route("/dashboard/developers/keys", post(create_key))
        .route("/dashboard/developers/keys/{id}/roll", post(roll_key))
        .route("/dashboard/developers/keys/{id}/revoke", post(revoke_key))
        .route("/dashboard/developers/webhooks", post(add_endpoint))
        .route(
            "/dashboard/developers/webhooks/{id}/delete",
            post(delete_endpoint),
        )
        .route("/dashboard/developers/origins", post(set_origins))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PageQuery {
    done: String,
}

async fn page(
    State(state): State<AppState>,
    web: Web,
    signed: Signed,
    axum::extract::Query(q): axum::extract::Query<PageQuery>,
) -> Response {
    render(&state, &web, &signed, None, notice_for(&q.done), None).await
}

fn notice_for(done: &str) -> Option<String> {
    Some(
        match done {
            "revoked" => "Key revoked: requests with it are refused from now on.",
            "deleted" => "Endpoint deleted.",
            "origins" => "Embed origins saved.",
            _ => return None,
        }
        .to_owned(),
    )
}

/// A secret shown once, on the page that made it.
struct Revealed {
    what: &'static str,
    value: String,
}

async fn render(
    state: &AppState,
    web: &Web,
    signed: &Signed,
    revealed: Option<Revealed>,
    notice: Option<String>,
    error: Option<(String, &'static str)>,
) -> Response {
    let session = &signed.0;
    let mode = session.mode;
    let loaded = async {
        let keys = state.store.api_keys(&session.merchant.id).await?;
        let endpoints = state.store.endpoints(&session.merchant.id, mode).await?;
        let origins = state
            .store
            .embed_origins(&session.merchant.id, mode)
            .await?;
        Ok::<_, crate::store::StoreError>((keys, endpoints, origins))
    };
    let (keys, endpoints, origins) = match loaded.await {
        Ok(v) => v,
        Err(e) => return store_failed(e),
    };
    let now = now_ms();
    let manage_keys = signed.may(Permission::ManageKeys);
    let manage_hooks = signed.may(Permission::ManageWebhooks);
    let resend = signed.may(Permission::ResendWebhooks);
    let key_rows = keys
        .into_iter()
        .filter(|k| k.mode == mode)
        .map(|k| {
            let state_label = match k.revoked_at {
                None => "active".to_owned(),
                Some(at) if at > now => format!("rolled: works until {} UTC", format_utc(at)),
                Some(at) => format!("revoked {}", format_utc(at)),
            };
            let usable = k.revoked_at.is_none_or(|at| at > now);
            let rollable = k.revoked_at.is_none();
            let secret = k.kind == ApiKeyKind::Secret;
            let roll = format!("/dashboard/developers/keys/{}/roll", k.id);
            let revoke = format!("/dashboard/developers/keys/{}/revoke", k.id);
            let csrf = web.csrf.clone();
            view! {
                <tr data-key=k.id.clone()>
                    <td><code>{k.masked.clone()}</code></td>
                    <td>{k.kind.as_str()}</td>
                    <td>{format_utc(k.created_at)}</td>
                    <td>{state_label}</td>
                    <td>{(manage_keys && usable).then(|| view! {
                        {(secret && rollable).then(|| view! {
                            <form method="post" action=roll.clone() class="inline">
                                <Csrf token=csrf.clone() />
                                <button type="submit" class="link">"Roll"</button>
                            </form>
                            " · "
                        })}
                        <form method="post" action=revoke.clone() class="inline">
                            <Csrf token=csrf.clone() />
                            <button type="submit" class="link">"Revoke"</button>
                        </form>
                    })}</td>
                </tr>
            }
        })
        .collect_view();
    let endpoint_rows = endpoints
        .into_iter()
        .map(|e| {
            let delete = format!("/dashboard/developers/webhooks/{}/delete", e.id);
            let csrf = web.csrf.clone();
            view! {
                <tr>
                    <td>{e.url.clone()}</td>
                    <td>{e.enabled_events.join(", ")}</td>
                    <td>{e.description.clone()}</td>
                    <td>{format_utc(e.created_at)}</td>
                    <td>{manage_hooks.then(|| view! {
                        <form method="post" action=delete class="inline">
                            <Csrf token=csrf />
                            <button type="submit" class="link">"Delete"</button>
                        </form>
                    })}</td>
                </tr>
            }
        })
        .collect_view();
    let origins_text = origins.join("\n");
    let body = view! {
        <h1>{format!("Developers · {} mode", mode.as_str())}</h1>
        <Notice notice />
        <FormError error />
        {revealed.map(|r| view! {
            <section class="card">
                <h2>{format!("Your new {}", r.what)}</h2>
                <p data-code="shown_once">"Copy it now: it is shown only this once, and Malipo keeps only its hash."</p>
                <pre data-secret=r.value.clone()>{r.value.clone()}</pre>
            </section>
        })}
        <section class="card">
            <h2>"API keys"</h2>
            <table><thead><tr><th>"Key"</th><th>"Kind"</th><th>"Created (UTC)"</th><th>"State"</th><th></th></tr></thead>
            <tbody>{key_rows}</tbody></table>
            {manage_keys.then(|| view! {
                <form method="post" action="/dashboard/developers/keys" class="inline">
                    <Csrf token=web.csrf.clone() />
                    <input type="hidden" name="kind" value="secret" />
                    <button type="submit">"Create a secret key"</button>
                </form>
                " "
                <form method="post" action="/dashboard/developers/keys" class="inline">
                    <Csrf token=web.csrf.clone() />
                    <input type="hidden" name="kind" value="publishable" />
                    <button type="submit">"Create a publishable key"</button>
                </form>
                <p class="hint">"Rolling a secret key makes a new one; the old one keeps working for 24 hours, so you can deploy the new one without downtime."</p>
            })}
        </section>
        <section class="card">
            <h2>"Webhook endpoints"</h2>
            <table><thead><tr><th>"URL"</th><th>"Events"</th><th>"Description"</th><th>"Created (UTC)"</th><th></th></tr></thead>
            <tbody>{endpoint_rows}</tbody></table>
            {resend.then(|| view! { <p><a href="/dashboard/mass/resend">"Resend every failed delivery…"</a></p> })}
            {manage_hooks.then(|| view! {
                <form method="post" action="/dashboard/developers/webhooks">
                    <Csrf token=web.csrf.clone() />
                    <label for="url">"Endpoint URL"</label>
                    <input id="url" type="text" name="url" placeholder="https://your-site.example/malipo/webhooks" required />
                    <label for="events">"Events (comma-separated, or * for all)"</label>
                    <input id="events" type="text" name="events" value="*" />
                    <label for="description">"Description"</label>
                    <input id="description" type="text" name="description" maxlength="200" />
                    <button type="submit">"Add the endpoint"</button>
                </form>
            })}
        </section>
        <section class="card">
            <h2>"Embed origins"</h2>
            <p class="hint">"Sites allowed to show the checkout in an iframe (checkout.js), one origin per line: https://host[:port]."</p>
            <form method="post" action="/dashboard/developers/origins">
                <Csrf token=web.csrf.clone() />
                <textarea name="origins" rows="4" aria-label="Embed origins" readonly=!manage_hooks>{origins_text}</textarea>
                {manage_hooks.then(|| view! { <button type="submit">"Save origins"</button> })}
            </form>
        </section>
    };
    web.page(
        StatusCode::OK,
        document(
            "Developers",
            Some(nav(session, web, "developers")),
            body.into_any(),
        ),
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KeyForm {
    csrf: String,
    kind: String,
}

async fn create_key(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    DashForm(form): DashForm<KeyForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    if !signed.may(Permission::ManageKeys) {
        return forbidden(&web, "manage API keys");
    }
    let kind = match form.kind.as_str() {
        "secret" => ApiKeyKind::Secret,
        "publishable" => ApiKeyKind::Publishable,
        _ => {
            return web.page(
                StatusCode::BAD_REQUEST,
                message_page(
                    "Unknown kind",
                    "parameter_invalid",
                    "A key is secret or publishable.",
                    Some(("/dashboard/developers", "Back")),
                ),
            );
        }
    };
    // A live secret key moves money (refunds through the API): only those who may.
    if kind == ApiKeyKind::Secret
        && signed.0.mode == crate::domain::Mode::Live
        && !signed.may(Permission::ManageLiveKeys)
    {
        return forbidden(&web, "create live secret keys");
    }
    if let Some(r) = needs_reauth(&signed, "/dashboard/developers") {
        return r;
    }
    let session = &signed.0;
    match crate::merchants::create_key(&state.store, &session.merchant.id, kind, session.mode).await
    {
        Ok((id, key)) => {
            signed
                .audit(
                    &state,
                    &web,
                    "key.created",
                    &format!("{id} ({} {})", kind.as_str(), session.mode.as_str()),
                )
                .await;
            let revealed = Revealed {
                what: if kind == ApiKeyKind::Secret {
                    "secret key"
                } else {
                    "publishable key"
                },
                value: key.token.expose_secret().to_owned(),
            };
            render(&state, &web, &signed, Some(revealed), None, None).await
        }
        Err(e) => store_failed(e),
    }
}

/// An unrevoked key of this merchant in this mode.
async fn owned_key(
    state: &AppState,
    session: &SignedIn,
    id: &str,
) -> Result<Option<crate::store::ApiKeyRecord>, Response> {
    // Still working: unrevoked, or rolled and in its overlap.
    let now = now_ms();
    match state.store.api_keys(&session.merchant.id).await {
        Ok(keys) => Ok(keys.into_iter().find(|k| {
            k.id == id && k.mode == session.mode && k.revoked_at.is_none_or(|at| at > now)
        })),
        Err(e) => Err(store_failed(e)),
    }
}

fn no_key(web: &Web) -> Response {
    web.page(
        StatusCode::NOT_FOUND,
        message_page(
            "No such key",
            "key_not_found",
            "There is no such active key in this mode.",
            Some(("/dashboard/developers", "Back")),
        ),
    )
}

async fn roll_key(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    Path(id): Path<String>,
    DashForm(form): DashForm<CsrfForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    if !signed.may(Permission::ManageKeys) {
        return forbidden(&web, "manage API keys");
    }
    if signed.0.mode == crate::domain::Mode::Live && !signed.may(Permission::ManageLiveKeys) {
        return forbidden(&web, "roll live secret keys");
    }
    if let Some(r) = needs_reauth(&signed, "/dashboard/developers") {
        return r;
    }
    let session = &signed.0;
    let old = match owned_key(&state, session, &id).await {
        Ok(Some(k)) if k.kind == ApiKeyKind::Secret && k.revoked_at.is_none() => k,
        Ok(_) => return no_key(&web),
        Err(r) => return r,
    };
    let Some(old_id) = KeyId::parse(&old.id) else {
        return no_key(&web);
    };
    let until = now_ms() + ROLL_OVERLAP_MS;
    match state
        .store
        .expire_api_key(&session.merchant.id, &old_id, until)
        .await
    {
        Ok(true) => {}
        Ok(false) => return no_key(&web),
        Err(e) => return store_failed(e),
    }
    match crate::merchants::create_key(
        &state.store,
        &session.merchant.id,
        ApiKeyKind::Secret,
        session.mode,
    )
    .await
    {
        Ok((new_id, key)) => {
            signed
                .audit(
                    &state,
                    &web,
                    "key.rolled",
                    &format!(
                        "{} → {new_id}; the old one works until {} UTC",
                        old.id,
                        format_utc(until)
                    ),
                )
                .await;
            let revealed = Revealed {
                what: "secret key",
                value: key.token.expose_secret().to_owned(),
            };
            render(
                &state,
                &web,
                &signed,
                Some(revealed),
                Some(format!(
                    "{} keeps working until {} UTC.",
                    old.masked,
                    format_utc(until)
                )),
                None,
            )
            .await
        }
        Err(e) => store_failed(e),
    }
}

async fn revoke_key(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    Path(id): Path<String>,
    DashForm(form): DashForm<CsrfForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    if !signed.may(Permission::ManageKeys) {
        return forbidden(&web, "manage API keys");
    }
    let session = &signed.0;
    match owned_key(&state, session, &id).await {
        Ok(Some(_)) => {}
        Ok(None) => return no_key(&web),
        Err(r) => return r,
    }
    match crate::merchants::revoke_key(&state.store, &id).await {
        Ok(()) => {
            signed.audit(&state, &web, "key.revoked", &id).await;
            web.finish(Redirect::to("/dashboard/developers?done=revoked"))
        }
        Err(crate::merchants::KeyError::Store(e)) => store_failed(e),
        Err(_) => no_key(&web),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EndpointForm {
    csrf: String,
    url: String,
    events: String,
    description: String,
}

async fn add_endpoint(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    DashForm(form): DashForm<EndpointForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    if !signed.may(Permission::ManageWebhooks) {
        return forbidden(&web, "manage webhook endpoints");
    }
    if let Some(r) = needs_reauth(&signed, "/dashboard/developers") {
        return r;
    }
    let session = &signed.0;
    let events: Vec<String> = form
        .events
        .split(',')
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    let now = now_ms();
    match crate::webhooks::create_endpoint(
        &state.store,
        &session.merchant.id,
        session.mode,
        form.url.trim(),
        &events,
        form.description.trim(),
        now,
    )
    .await
    {
        Ok(endpoint) => {
            signed
                .audit(
                    &state,
                    &web,
                    "webhook_endpoint.created",
                    &format!("{} {}", endpoint.id, endpoint.url),
                )
                .await;
            let revealed = Revealed {
                what: "endpoint's signing secret",
                value: endpoint.secret.expose_secret().to_owned(),
            };
            render(&state, &web, &signed, Some(revealed), None, None).await
        }
        Err(crate::webhooks::EndpointError::Store(e)) => store_failed(e),
        Err(e) => {
            let msg = e.to_string();
            render(
                &state,
                &web,
                &signed,
                None,
                None,
                Some((msg, "parameter_invalid")),
            )
            .await
        }
    }
}

async fn delete_endpoint(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    Path(id): Path<String>,
    DashForm(form): DashForm<CsrfForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    if !signed.may(Permission::ManageWebhooks) {
        return forbidden(&web, "manage webhook endpoints");
    }
    let session = &signed.0;
    let Some(id) = WebhookEndpointId::parse(&id) else {
        return web.page(
            StatusCode::NOT_FOUND,
            message_page(
                "No such endpoint",
                "webhook_endpoint_not_found",
                "There is no such endpoint.",
                Some(("/dashboard/developers", "Back")),
            ),
        );
    };
    match state.store.endpoint(&id).await {
        Ok(Some(e)) if e.merchant_id == session.merchant.id && e.mode == session.mode => {}
        Ok(_) => {
            return web.page(
                StatusCode::NOT_FOUND,
                message_page(
                    "No such endpoint",
                    "webhook_endpoint_not_found",
                    "There is no such endpoint.",
                    Some(("/dashboard/developers", "Back")),
                ),
            );
        }
        Err(e) => return store_failed(e),
    }
    match state.store.delete_endpoint(&id, now_ms()).await {
        Ok(_) => {
            signed
                .audit(&state, &web, "webhook_endpoint.deleted", id.as_str())
                .await;
            web.finish(Redirect::to("/dashboard/developers?done=deleted"))
        }
        Err(e) => store_failed(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OriginsForm {
    csrf: String,
    origins: String,
}

async fn set_origins(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    DashForm(form): DashForm<OriginsForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    if !signed.may(Permission::ManageWebhooks) {
        return forbidden(&web, "change embed origins");
    }
    if let Some(r) = needs_reauth(&signed, "/dashboard/developers") {
        return r;
    }
    let session = &signed.0;
    let list: Vec<serde_json::Value> = form
        .origins
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(serde_json::Value::from)
        .collect();
    let origins = match crate::api::account::parse_origins(&serde_json::Value::Array(list)) {
        Ok(o) => o,
        Err(_) => {
            let msg = format!(
                "Each line must be an origin: https://host[:port] (http:// for localhost only), with no path; at most {}.",
                crate::embed::MAX_ORIGINS
            );
            return render(
                &state,
                &web,
                &signed,
                None,
                None,
                Some((msg, "invalid_origin")),
            )
            .await;
        }
    };
    if let Err(e) = state
        .store
        .set_embed_origins(&session.merchant.id, session.mode, &origins)
        .await
    {
        return store_failed(e);
    }
    signed
        .audit(&state, &web, "embed_origins.set", &origins.join(" "))
        .await;
    web.finish(Redirect::to("/dashboard/developers?done=origins"))
}
