//! Settings → Live credentials: the business's own operator accounts (its paybill, its
//! MTN MoMo app, its PayPal app) for live payments, one form per rail. Owners only
//! ([`Permission::ManageRails`]), with a password from the last 10 minutes. Saved sealed
//! (see [`crate::credentials`]) and never shown again: the page shows a summary without
//! any secret, and changing one means entering all of them again.

use std::collections::BTreeMap;

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use leptos::prelude::*;
use serde::Deserialize;

use super::{
    DashForm, Signed, Web,
    auth::nav,
    forbidden, store_failed,
    views::{Csrf, FormError, Notice, document},
};
use crate::{
    accounts::Permission,
    connectors::RailId,
    credentials::{self, CredentialsError},
    startup::AppState,
    store::SavedCredentials,
    time::format_utc,
};

const PATH: &str = "/dashboard/settings/credentials";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, get(page))
        .route("/dashboard/settings/credentials/{rail}", post(save))
        .route(
            "/dashboard/settings/credentials/{rail}/remove",
            post(remove),
        )
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SavedQuery {
    saved: String,
    removed: String,
}

/// What the page says of one rail.
struct RailState {
    rail: RailId,
    /// The business's own, as saved (no value).
    own: Option<SavedCredentials>,
    /// Where they are used: `None`, this server has no live API for the rail.
    host: Option<String>,
    /// This server's own live credentials serve the rail for everybody.
    server: bool,
}

fn rail_states(state: &AppState, saved: Vec<SavedCredentials>) -> Vec<RailState> {
    RailId::ALL
        .into_iter()
        .map(|rail| RailState {
            rail,
            own: saved.iter().find(|s| s.rail == rail).cloned(),
            host: credentials::base_url(&state.config, rail).map(|url| {
                url::Url::parse(&url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or(url)
            }),
            server: state
                .payments
                .registry()
                .get(rail, crate::domain::Mode::Live)
                .is_some(),
        })
        .collect()
}

/// Where the operator's portal must send its callbacks, for the rails that have one
/// URL per app.
fn portal_hint(state: &AppState, rail: RailId) -> Option<String> {
    let base = &state.config.public_url;
    match rail {
        RailId::Airtel => Some(format!(
            "In Airtel's portal, set your app's callback URL to {base}/callbacks/airtel."
        )),
        RailId::Tigo => Some(format!(
            "Ask Tigo to send callbacks to {base}/callbacks/tigo/ followed by the callback_key you choose here."
        )),
        RailId::Paypal => Some(format!(
            "In your PayPal app, add a webhook to {base}/callbacks/paypal and enter its id as webhook_id."
        )),
        _ => None,
    }
}

async fn page(
    State(state): State<AppState>,
    web: Web,
    signed: Signed,
    axum::extract::Query(q): axum::extract::Query<SavedQuery>,
) -> Response {
    if !signed.may(Permission::ManageRails) {
        return forbidden(&web, "see or change live credentials");
    }
    let notice = RailId::parse(&q.saved)
        .map(|r| {
            format!(
                "Saved. Live {} payments now use your credentials.",
                r.label()
            )
        })
        .or_else(|| {
            RailId::parse(&q.removed).map(|r| {
                format!(
                    "Removed. Your live {} credentials are forgotten.",
                    r.label()
                )
            })
        });
    render(&state, &web, &signed, notice, None, StatusCode::OK).await
}

async fn render(
    state: &AppState,
    web: &Web,
    signed: &Signed,
    notice: Option<String>,
    error: Option<(RailId, String, &'static str)>,
    status: StatusCode,
) -> Response {
    let saved = match state.store.rail_credentials(&signed.0.merchant.id).await {
        Ok(s) => s,
        Err(e) => return store_failed(e),
    };
    let fresh = signed.recently_authenticated();
    let sections = rail_states(state, saved)
        .into_iter()
        .map(|r| {
            let rail = r.rail.as_str();
            let status = match (&r.own, r.server, &r.host) {
                (Some(own), _, _) => view! {
                    <p data-status="own">{format!(
                        "Your own, saved {} by {}: {}",
                        format_utc(own.updated_at),
                        own.set_by,
                        if own.summary.is_empty() { "(nothing that can be shown)" } else { &own.summary }
                    )}</p>
                }.into_any(),
                (None, true, _) => view! {
                    <p data-status="server">"This server's own live credentials serve it (set up by whoever runs Malipo). Yours, if saved, come first."</p>
                }.into_any(),
                (None, false, Some(_)) => view! {
                    <p data-status="none">"Not set up: live payments with it are off until you save credentials."</p>
                }.into_any(),
                (None, false, None) => view! {
                    <p data-status="unavailable">{format!(
                        "Not available on this server: whoever runs Malipo sets the live API's address first ([rails_live.{}] base_url).",
                        rail
                    )}</p>
                }.into_any(),
            };
            let error = error
                .as_ref()
                .filter(|(e, _, _)| *e == r.rail)
                .map(|(_, text, code)| (text.clone(), *code));
            let inputs = credentials::fields(r.rail)
                .into_iter()
                .map(|f| {
                    let id = format!("{rail}_{}", f.name);
                    let label = f.name.replace('_', " ");
                    view! {
                        <label for=id.clone()>{label}{f.secret.then_some(" (secret)")}</label>
                        <input id=id type=if f.secret { "password" } else { "text" } name=f.name
                            autocomplete="off" spellcheck="false" />
                    }
                })
                .collect_view();
            let form = r.host.as_ref().map(|host| {
                let action = format!("{PATH}/{rail}");
                view! {
                    <p class="hint">{format!("Used at {host}, for live payments only. ")}{portal_hint(state, r.rail)}</p>
                    <form method="post" action=action>
                        <Csrf token=web.csrf.clone() />
                        {inputs}
                        <button type="submit">{if r.own.is_some() { "Replace them" } else { "Save" }}</button>
                    </form>
                }
            });
            let remove = r.own.is_some().then(|| {
                let action = format!("{PATH}/{rail}/remove");
                view! {
                    <form method="post" action=action>
                        <Csrf token=web.csrf.clone() />
                        <button type="submit" class="danger">"Remove them"</button>
                    </form>
                }
            });
            view! {
                <section class="card" data-credentials=rail>
                    <h2>{r.rail.label()}</h2>
                    {status}
                    <FormError error />
                    {form}
                    {remove}
                </section>
            }
        })
        .collect_view();
    let body = view! {
        <h1>"Live credentials"</h1>
        <Notice notice />
        <p class="hint">"Your own operator accounts for live payments: your paybill's Daraja app, your MTN MoMo or Airtel app, your PayPal app. They are sealed as soon as they are saved and never shown again; to change one, enter them all again. Test mode always uses the sandbox. Empty fields keep their defaults."</p>
        {(!signed.0.user.totp_enabled).then(|| view! {
            <p class="notice" data-code="two_factor_required">"Saving live credentials needs two-factor sign-in: turn it on in "<a href="/dashboard/security">"Security"</a>" first."</p>
        })}
        {(!fresh).then(|| view! {
            <p class="notice" data-reauth="1">"Saving or removing credentials needs your password from the last 10 minutes: you will be asked for it first."</p>
        })}
        <p><a href="/dashboard/settings">"Back to settings"</a></p>
        {sections}
    };
    web.page(
        status,
        document(
            "Live credentials",
            Some(nav(&signed.0, web, "settings")),
            body.into_any(),
        ),
    )
}

/// The preamble of both posts: CSRF, the owner's permission, a recent password, a rail.
fn allowed(
    state: &AppState,
    web: &Web,
    headers: &HeaderMap,
    signed: &Signed,
    csrf: &str,
    rail: &str,
) -> Result<RailId, Box<Response>> {
    if web.check(state, headers, csrf).is_err() {
        return Err(Box::new(web.refused()));
    }
    if !signed.may(Permission::ManageRails) {
        return Err(Box::new(forbidden(web, "change live credentials")));
    }
    // Whoever can sign in as this owner can send the business's live money elsewhere:
    // a password alone is not enough.
    if !signed.0.user.totp_enabled {
        return Err(Box::new(web.page(
            StatusCode::FORBIDDEN,
            super::views::message_page(
                "Two-factor sign-in first",
                "two_factor_required",
                "Live credentials can be saved or removed only by an owner who signs in with a second factor. Turn it on in Security, then come back.",
                Some(("/dashboard/security", "Security")),
            ),
        )));
    }
    // Where real shoppers' money goes: a stolen session must not change it quietly.
    if let Some(r) = super::auth::needs_reauth(signed, PATH) {
        return Err(Box::new(r));
    }
    RailId::parse(rail).ok_or_else(|| Box::new(StatusCode::NOT_FOUND.into_response()))
}

/// `POST /dashboard/settings/credentials/{rail}`: every field of the rail's form.
async fn save(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    Path(rail): Path<String>,
    DashForm(mut form): DashForm<BTreeMap<String, String>>,
) -> Response {
    let csrf = form.remove("csrf").unwrap_or_default();
    let rail = match allowed(&state, &web, &headers, &signed, &csrf, &rail) {
        Ok(rail) => rail,
        Err(r) => return *r,
    };
    let merchant = &signed.0.merchant.id;
    let saved = credentials::save(
        &state.store,
        &state.config,
        state.payments.registry(),
        merchant,
        rail,
        form,
        &signed.0.user.email,
    )
    .await;
    let refused = |text: String, code: &'static str| (rail, text, code);
    match saved {
        Ok(summary) => {
            // The summary only: never a value.
            signed
                .audit(
                    &state,
                    &web,
                    "credentials.saved",
                    &format!("{rail}: {summary}"),
                )
                .await;
            web.finish(Redirect::to(&format!("{PATH}?saved={rail}")))
        }
        Err(CredentialsError::Store(e)) => store_failed(e),
        Err(e @ CredentialsError::Invalid(_)) => {
            render(
                &state,
                &web,
                &signed,
                None,
                Some(refused(e.to_string(), "invalid_credentials")),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(e @ CredentialsError::PaymentsOpen(_)) => {
            render(
                &state,
                &web,
                &signed,
                None,
                Some(refused(e.to_string(), "payments_open")),
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e @ CredentialsError::Unavailable(..)) => {
            render(
                &state,
                &web,
                &signed,
                None,
                Some(refused(e.to_string(), "rail_unavailable")),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RemoveForm {
    csrf: String,
}

/// `POST /dashboard/settings/credentials/{rail}/remove`.
async fn remove(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    Path(rail): Path<String>,
    DashForm(form): DashForm<RemoveForm>,
) -> Response {
    let rail = match allowed(&state, &web, &headers, &signed, &form.csrf, &rail) {
        Ok(rail) => rail,
        Err(r) => return *r,
    };
    match credentials::remove(
        &state.store,
        state.payments.registry(),
        &signed.0.merchant.id,
        rail,
    )
    .await
    {
        Ok(true) => {
            signed
                .audit(&state, &web, "credentials.removed", rail.as_str())
                .await;
            web.finish(Redirect::to(&format!("{PATH}?removed={rail}")))
        }
        Ok(false) => web.finish(Redirect::to(PATH)),
        Err(CredentialsError::Store(e)) => store_failed(e),
        Err(e) => {
            render(
                &state,
                &web,
                &signed,
                None,
                Some((rail, e.to_string(), "payments_open")),
                StatusCode::CONFLICT,
            )
            .await
        }
    }
}
