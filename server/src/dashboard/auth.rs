//! Signing up, in and out; the mailed links (confirm the address, reset the password);
//! two-factor set-up; re-authentication; the test/live switch; the audit log.

use axum::{
    Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{Redirect, Response},
    routing::{get, post},
};
use leptos::prelude::*;
use secrecy::SecretString;
use serde::Deserialize;

use super::{
    CsrfForm, DashForm, Signed, Web, forbidden, reauth_redirect, signed_in_redirect,
    signed_out_redirect, store_failed,
    views::{Csrf, FormError, Nav, Notice, document, message_page},
};
use crate::{
    accounts::{AccountError, Permission},
    domain::{Mode, keys::hash_token},
    startup::AppState,
    store::SignedIn,
    time::now_ms,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard/sign-in", get(sign_in_page).post(sign_in))
        .route(
            "/dashboard/sign-in/two-factor",
            get(second_factor_page).post(second_factor),
        )
        .route("/dashboard/sign-up", get(sign_up_page).post(sign_up))
        .route("/dashboard/sign-out", post(sign_out))
        .route("/dashboard/verify/{token}", get(verify_page).post(verify))
        .route(
            "/dashboard/verify-again",
            get(verify_again_page).post(verify_again),
        )
        .route("/dashboard/forgot", get(forgot_page).post(forgot))
        .route("/dashboard/reset/{token}", get(reset_page).post(reset))
        .route("/dashboard/security", get(security))
        .route("/dashboard/security/two-factor", post(start_two_factor))
        .route(
            "/dashboard/security/two-factor/confirm",
            post(confirm_two_factor),
        )
        .route("/dashboard/security/sign-out-others", post(sign_out_others))
        .route("/dashboard/reauth", get(reauth_page).post(reauth))
        .route("/dashboard/mode", post(switch_mode))
        .route("/dashboard/audit", get(audit))
}

/// The frame of a signed-in page.
pub(crate) fn nav(session: &SignedIn, web: &Web, section: &'static str) -> Nav {
    Nav {
        merchant: session.merchant.name.clone(),
        email: session.user.email.clone(),
        role: session.role.as_str(),
        mode: session.mode,
        csrf: web.csrf.clone(),
        section,
        may_view_audit: session.role.may(Permission::ViewAudit),
    }
}

/// The HTTP status for an account error shown on a form.
pub(crate) fn status_of(e: &AccountError) -> StatusCode {
    match e {
        AccountError::WrongPassword | AccountError::WrongCode => StatusCode::UNAUTHORIZED,
        AccountError::Unverified | AccountError::NoMembership => StatusCode::FORBIDDEN,
        AccountError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        AccountError::BadLink => StatusCode::GONE,
        AccountError::Store(_) | AccountError::Other(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

pub(crate) fn shown(e: &AccountError) -> (String, &'static str) {
    if matches!(e, AccountError::Store(_) | AccountError::Other(_)) {
        tracing::error!(error = %e, "dashboard account request failed");
        return (
            "Something went wrong on our side. Try again in a minute.".into(),
            e.code(),
        );
    }
    (e.to_string(), e.code())
}

// --- sign in ------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct DoneQuery {
    done: String,
}

fn done_notice(done: &str) -> Option<String> {
    Some(
        match done {
            "signed_out" => "You are signed out.",
            "password_reset" => {
                "Your password was changed and every session was ended. Sign in with the new one."
            }
            "expired" => "Your session ended. Sign in again.",
            _ => return None,
        }
        .into(),
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SignInForm {
    csrf: String,
    email: String,
    password: String,
}

fn sign_in_view(
    web: &Web,
    email: &str,
    error: Option<(String, &'static str)>,
    notice: Option<String>,
) -> String {
    let unverified = error
        .as_ref()
        .is_some_and(|(_, c)| *c == "email_unverified");
    let body = view! {
        <section class="card narrow">
            <h1>"Sign in"</h1>
            <Notice notice />
            <FormError error />
            {unverified.then(|| view! { <p><a href="/dashboard/verify-again">"Send the confirmation link again"</a></p> })}
            <form method="post" action="/dashboard/sign-in">
                <Csrf token=web.csrf.clone() />
                <label for="email">"Email"</label>
                <input id="email" type="email" name="email" value=email.to_owned() autocomplete="username" required />
                <label for="password">"Password"</label>
                <input id="password" type="password" name="password" autocomplete="current-password" required />
                <button type="submit">"Sign in"</button>
            </form>
            <p><a href="/dashboard/forgot">"Forgot your password?"</a></p>
            <p>"New to Malipo? " <a href="/dashboard/sign-up">"Create an account"</a></p>
        </section>
    };
    document("Sign in", None, body.into_any())
}

async fn sign_in_page(web: Web, signed: Option<Signed>, Query(q): Query<DoneQuery>) -> Response {
    if signed.is_some() {
        return web.finish(Redirect::to("/dashboard/payments"));
    }
    web.page(
        StatusCode::OK,
        sign_in_view(&web, "", None, done_notice(&q.done)),
    )
}

async fn sign_in(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    DashForm(form): DashForm<SignInForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    match state
        .accounts
        .sign_in(
            &form.email,
            SecretString::from(form.password),
            &web.ip,
            web.user_agent.as_deref(),
        )
        .await
    {
        Ok(started) => {
            let to = if started.needs_second_factor {
                "/dashboard/sign-in/two-factor"
            } else {
                "/dashboard/payments"
            };
            signed_in_redirect(&state, &web, &started.token, to)
        }
        Err(e) => web.page(
            status_of(&e),
            sign_in_view(&web, &form.email, Some(shown(&e)), None),
        ),
    }
}

/// The session of a browser that gave its password and owes a second factor.
async fn half_signed(state: &AppState, web: &Web) -> Option<SignedIn> {
    let token = web.session_cookie.as_deref()?;
    state
        .store
        .signed_in(
            &hash_token(token),
            now_ms(),
            crate::accounts::SECOND_FACTOR_TTL_MS,
        )
        .await
        .ok()
        .flatten()
        .filter(|s| !s.full)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CodeForm {
    csrf: String,
    code: String,
}

fn second_factor_view(web: &Web, error: Option<(String, &'static str)>) -> String {
    let body = view! {
        <section class="card narrow">
            <h1>"Two-factor sign-in"</h1>
            <p>"Enter the 6-digit code from your authenticator app, or one of your recovery codes."</p>
            <FormError error />
            <form method="post" action="/dashboard/sign-in/two-factor">
                <Csrf token=web.csrf.clone() />
                <label for="code">"Code"</label>
                <input id="code" type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required />
                <button type="submit">"Continue"</button>
            </form>
        </section>
    };
    document("Two-factor sign-in", None, body.into_any())
}

async fn second_factor_page(State(state): State<AppState>, web: Web) -> Response {
    if half_signed(&state, &web).await.is_none() {
        return web.finish(Redirect::to("/dashboard/sign-in"));
    }
    web.page(StatusCode::OK, second_factor_view(&web, None))
}

async fn second_factor(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    DashForm(form): DashForm<CodeForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    let Some(session) = half_signed(&state, &web).await else {
        return web.finish(Redirect::to("/dashboard/sign-in?done=expired"));
    };
    match state
        .accounts
        .second_factor(&session, &form.code, &web.ip)
        .await
    {
        Ok(token) => signed_in_redirect(&state, &web, &token, "/dashboard/payments"),
        Err(e) => web.page(status_of(&e), second_factor_view(&web, Some(shown(&e)))),
    }
}

async fn sign_out(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    DashForm(form): DashForm<CsrfForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    if let Some(token) = &web.session_cookie
        && let Err(e) = state
            .store
            .revoke_user_session(&hash_token(token), now_ms())
            .await
    {
        return store_failed(e);
    }
    signed_out_redirect(&state, &web, "/dashboard/sign-in?done=signed_out")
}

// --- sign up and the confirmation link ----------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct SignUpForm {
    csrf: String,
    business: String,
    email: String,
    password: String,
}

fn sign_up_view(
    web: &Web,
    business: &str,
    email: &str,
    error: Option<(String, &'static str)>,
) -> String {
    let body = view! {
        <section class="card narrow">
            <h1>"Create your Malipo account"</h1>
            <FormError error />
            <form method="post" action="/dashboard/sign-up">
                <Csrf token=web.csrf.clone() />
                <label for="business">"Business name"</label>
                <input id="business" type="text" name="business" value=business.to_owned() maxlength="100" required />
                <label for="email">"Email"</label>
                <input id="email" type="email" name="email" value=email.to_owned() autocomplete="username" required />
                <label for="password">"Password"</label>
                <input id="password" type="password" name="password" autocomplete="new-password" minlength="12" required />
                <p class="hint">"At least 12 characters. A few unrelated words make a strong password."</p>
                <button type="submit">"Create account"</button>
            </form>
            <p>"Have an account? " <a href="/dashboard/sign-in">"Sign in"</a></p>
        </section>
    };
    document("Create your account", None, body.into_any())
}

async fn sign_up_page(web: Web) -> Response {
    web.page(StatusCode::OK, sign_up_view(&web, "", "", None))
}

fn check_mail_page(state: &AppState, email: &str) -> String {
    let sandbox = state.accounts.mailer().is_sandbox();
    let body = view! {
        <section class="card narrow">
            <h1>"Check your mail"</h1>
            <p data-code="mail_sent">
                "If " <strong>{email.to_owned()}</strong>
                " can receive it, a mail with a link is on its way. The link works once."
            </p>
            {sandbox.then(|| view! {
                <p class="hint">"This test install has no mail server: its mail is in the "
                    <a href="/sandbox/mailbox">"sandbox mailbox"</a> "."</p>
            })}
            <p><a href="/dashboard/sign-in">"Back to sign-in"</a></p>
        </section>
    };
    document("Check your mail", None, body.into_any())
}

async fn sign_up(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    DashForm(form): DashForm<SignUpForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    match state
        .accounts
        .sign_up(
            &form.business,
            &form.email,
            SecretString::from(form.password),
            &web.ip,
        )
        .await
    {
        Ok(()) => web.page(StatusCode::OK, check_mail_page(&state, form.email.trim())),
        Err(e) => web.page(
            status_of(&e),
            sign_up_view(&web, &form.business, &form.email, Some(shown(&e))),
        ),
    }
}

fn link_expired(web: &Web, again: (&str, &str)) -> Response {
    web.page(
        StatusCode::GONE,
        message_page(
            "Link expired",
            "link_expired",
            "This link has expired or was used already.",
            Some(again),
        ),
    )
}

/// The confirmation page for a link: the account's password and a button (mail scanners
/// follow links; only a person presses, and only the one who signed up knows the
/// password).
fn verify_view(web: &Web, token: &str, error: Option<(String, &'static str)>) -> String {
    let action = format!("/dashboard/verify/{token}");
    let body = view! {
        <section class="card narrow">
            <h1>"Confirm your email address"</h1>
            <FormError error />
            <form method="post" action=action>
                <Csrf token=web.csrf.clone() />
                <label for="password">"The password you chose when signing up"</label>
                <input id="password" type="password" name="password" autocomplete="current-password" required />
                <button type="submit">"Confirm my address"</button>
            </form>
            <p class="hint">"Forgot it? " <a href="/dashboard/forgot">"Reset your password"</a> ": that confirms the address too."</p>
        </section>
    };
    document("Confirm your address", None, body.into_any())
}

async fn verify_page(
    State(state): State<AppState>,
    web: Web,
    Path(token): Path<String>,
) -> Response {
    match state.accounts.verification_link_ok(&token).await {
        Ok(true) => {}
        Ok(false) => return link_expired(&web, ("/dashboard/verify-again", "Send a new link")),
        Err(e) => return store_failed(e),
    }
    web.page(StatusCode::OK, verify_view(&web, &token, None))
}

async fn verify(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    Path(token): Path<String>,
    DashForm(form): DashForm<ResetForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    match state
        .accounts
        .verify_email(
            &token,
            SecretString::from(form.password),
            &web.ip,
            web.user_agent.as_deref(),
        )
        .await
    {
        Ok(started) => {
            let to = if started.needs_second_factor {
                "/dashboard/sign-in/two-factor"
            } else {
                "/dashboard/security?welcome=1"
            };
            signed_in_redirect(&state, &web, &started.token, to)
        }
        Err(AccountError::BadLink) => {
            link_expired(&web, ("/dashboard/verify-again", "Send a new link"))
        }
        Err(e) => web.page(status_of(&e), verify_view(&web, &token, Some(shown(&e)))),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EmailForm {
    csrf: String,
    email: String,
}

fn email_form_view(
    web: &Web,
    title: &str,
    text: &str,
    action: &str,
    button: &str,
    error: Option<(String, &'static str)>,
) -> String {
    let body = view! {
        <section class="card narrow">
            <h1>{title.to_owned()}</h1>
            <p>{text.to_owned()}</p>
            <FormError error />
            <form method="post" action=action.to_owned()>
                <Csrf token=web.csrf.clone() />
                <label for="email">"Email"</label>
                <input id="email" type="email" name="email" autocomplete="username" required />
                <button type="submit">{button.to_owned()}</button>
            </form>
            <p><a href="/dashboard/sign-in">"Back to sign-in"</a></p>
        </section>
    };
    document(title, None, body.into_any())
}

const VERIFY_AGAIN: (&str, &str, &str, &str) = (
    "Confirm your address",
    "Enter the address you signed up with and we will send a new confirmation link to it.",
    "/dashboard/verify-again",
    "Send the link",
);

async fn verify_again_page(web: Web) -> Response {
    let (t, x, a, b) = VERIFY_AGAIN;
    web.page(StatusCode::OK, email_form_view(&web, t, x, a, b, None))
}

async fn verify_again(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    DashForm(form): DashForm<EmailForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    match state
        .accounts
        .resend_verification(&form.email, &web.ip)
        .await
    {
        Ok(()) => web.page(StatusCode::OK, check_mail_page(&state, form.email.trim())),
        Err(e) => {
            let (t, x, a, b) = VERIFY_AGAIN;
            web.page(
                status_of(&e),
                email_form_view(&web, t, x, a, b, Some(shown(&e))),
            )
        }
    }
}

// --- password reset -----------------------------------------------------------------

const FORGOT: (&str, &str, &str, &str) = (
    "Reset your password",
    "Enter your account's email address. If it has a Malipo account, we send a reset link to that address, and only to it.",
    "/dashboard/forgot",
    "Send the reset link",
);

async fn forgot_page(web: Web) -> Response {
    let (t, x, a, b) = FORGOT;
    web.page(StatusCode::OK, email_form_view(&web, t, x, a, b, None))
}

/// Reads only `email` from the form: any other field (a phone number, a date of birth,
/// another address) is ignored, so nothing in a request can send the link elsewhere.
async fn forgot(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    DashForm(form): DashForm<EmailForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    match state.accounts.forgot_password(&form.email, &web.ip).await {
        Ok(()) => web.page(StatusCode::OK, check_mail_page(&state, form.email.trim())),
        Err(e) => {
            let (t, x, a, b) = FORGOT;
            web.page(
                status_of(&e),
                email_form_view(&web, t, x, a, b, Some(shown(&e))),
            )
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResetForm {
    csrf: String,
    password: String,
}

fn reset_view(web: &Web, token: &str, error: Option<(String, &'static str)>) -> String {
    let action = format!("/dashboard/reset/{token}");
    let body = view! {
        <section class="card narrow">
            <h1>"Choose a new password"</h1>
            <FormError error />
            <form method="post" action=action>
                <Csrf token=web.csrf.clone() />
                <label for="password">"New password"</label>
                <input id="password" type="password" name="password" autocomplete="new-password" minlength="12" required />
                <p class="hint">"Saving it signs you out everywhere."</p>
                <button type="submit">"Save the new password"</button>
            </form>
        </section>
    };
    document("Choose a new password", None, body.into_any())
}

async fn reset_page(
    State(state): State<AppState>,
    web: Web,
    Path(token): Path<String>,
) -> Response {
    match state.accounts.reset_link_ok(&token).await {
        Ok(true) => web.page(StatusCode::OK, reset_view(&web, &token, None)),
        Ok(false) => link_expired(&web, ("/dashboard/forgot", "Ask for a new link")),
        Err(e) => store_failed(e),
    }
}

async fn reset(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    Path(token): Path<String>,
    DashForm(form): DashForm<ResetForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    match state
        .accounts
        .reset_password(&token, SecretString::from(form.password), &web.ip)
        .await
    {
        Ok(()) => signed_out_redirect(&state, &web, "/dashboard/sign-in?done=password_reset"),
        Err(AccountError::BadLink) => {
            link_expired(&web, ("/dashboard/forgot", "Ask for a new link"))
        }
        Err(e) => web.page(status_of(&e), reset_view(&web, &token, Some(shown(&e)))),
    }
}

// --- security: two-factor and sessions ----------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct SecurityQuery {
    required: String,
    welcome: String,
    done: String,
}

async fn security(
    State(state): State<AppState>,
    web: Web,
    Signed(session): Signed,
    Query(q): Query<SecurityQuery>,
) -> Response {
    let sessions = match state.store.user_sessions(&session.user.id, now_ms()).await {
        Ok(s) => s,
        Err(e) => return store_failed(e),
    };
    let unused_codes = match state.store.unused_recovery_codes(&session.user.id).await {
        Ok(n) => n,
        Err(e) => return store_failed(e),
    };
    let notice = if q.required == "1" {
        Some("Owners and admins of an account that takes live payments must turn on two-factor sign-in first.".to_owned())
    } else if q.welcome == "1" {
        Some("Your address is confirmed and you are signed in. Protect the account with two-factor sign-in now.".to_owned())
    } else if q.done == "others" {
        Some("Every other session was signed out.".to_owned())
    } else {
        None
    };
    let enabled = session.user.totp_enabled;
    let current = session.token_hash.clone();
    let rows = sessions
        .into_iter()
        .map(|s| {
            let this = s.token_hash == current;
            view! {
                <tr>
                    <td>{crate::time::format_utc(s.created_at)}</td>
                    <td>{s.ip.unwrap_or_default()}</td>
                    <td>{s.user_agent.unwrap_or_default()}</td>
                    <td>{this.then_some("this browser")}</td>
                </tr>
            }
        })
        .collect_view();
    let body = view! {
        <h1>"Security"</h1>
        <Notice notice />
        <section class="card">
            <h2>"Two-factor sign-in"</h2>
            {if enabled {
                view! {
                    <p data-code="two_factor_on">"On. Signing in asks for a code from your authenticator app."</p>
                    <p class="hint">{format!("{unused_codes} unused recovery codes left.")}</p>
                }.into_any()
            } else {
                view! {
                    <p data-code="two_factor_off">"Off. Turn it on so a stolen password is not enough to sign in."</p>
                    <form method="post" action="/dashboard/security/two-factor">
                        <Csrf token=web.csrf.clone() />
                        <button type="submit">"Set up two-factor sign-in"</button>
                    </form>
                }.into_any()
            }}
        </section>
        <section class="card">
            <h2>"Where you are signed in"</h2>
            <table>
                <thead><tr><th>"Since (UTC)"</th><th>"Address"</th><th>"Browser"</th><th></th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <form method="post" action="/dashboard/security/sign-out-others">
                <Csrf token=web.csrf.clone() />
                <button type="submit" class="danger">"Sign out everywhere else"</button>
            </form>
        </section>
    };
    web.page(
        StatusCode::OK,
        document(
            "Security",
            Some(nav(&session, &web, "security")),
            body.into_any(),
        ),
    )
}

fn two_factor_setup_view(
    web: &Web,
    session: &SignedIn,
    secret: &str,
    svg: &str,
    error: Option<(String, &'static str)>,
) -> String {
    // Group the secret in fours for typing by hand.
    let grouped = secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let body = view! {
        <h1>"Set up two-factor sign-in"</h1>
        <section class="card">
            <p>"1. Scan this code with an authenticator app (Google Authenticator, Microsoft Authenticator, Aegis, 1Password…)."</p>
            <div class="qr" inner_html=svg.to_owned()></div>
            <p>"Cannot scan it? Enter this key by hand: " <code data-secret=secret.to_owned()>{grouped}</code></p>
            <p>"2. Enter the 6-digit code the app shows."</p>
            <FormError error />
            <form method="post" action="/dashboard/security/two-factor/confirm">
                <Csrf token=web.csrf.clone() />
                <label for="code">"Code"</label>
                <input id="code" type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required />
                <button type="submit">"Turn on two-factor sign-in"</button>
            </form>
        </section>
    };
    document(
        "Set up two-factor sign-in",
        Some(nav(session, web, "security")),
        body.into_any(),
    )
}

async fn start_two_factor(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    DashForm(form): DashForm<CsrfForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    let session = &signed.0;
    if session.user.totp_enabled {
        return web.finish(Redirect::to("/dashboard/security"));
    }
    // Turning it on is where a thief with a stolen session would lock the owner out.
    if let Some(r) = needs_reauth(&signed, "/dashboard/security") {
        return r;
    }
    match state.accounts.start_totp(&session.user).await {
        Ok(setup) => web.page(
            StatusCode::OK,
            two_factor_setup_view(&web, session, &setup.secret, &setup.svg, None),
        ),
        Err(e) => store_failed(e),
    }
}

async fn confirm_two_factor(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    Signed(session): Signed,
    DashForm(form): DashForm<CodeForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    if session.user.totp_enabled {
        return web.finish(Redirect::to("/dashboard/security"));
    }
    match state
        .accounts
        .confirm_totp(&session, &form.code, &web.ip)
        .await
    {
        Ok(codes) => {
            let items = codes
                .into_iter()
                .map(|c| view! { <li>{c}</li> })
                .collect_view();
            let body = view! {
                <h1>"Two-factor sign-in is on"</h1>
                <section class="card">
                    <p data-code="two_factor_on">"Keep these recovery codes somewhere safe, away from your phone. Each works once, in place of a code, if you lose the phone. They are shown only now."</p>
                    <ul class="codes" data-recovery-codes="10">{items}</ul>
                    <p><a class="button" href="/dashboard/payments">"I have saved them"</a></p>
                </section>
            };
            web.page(
                StatusCode::OK,
                document(
                    "Recovery codes",
                    Some(nav(&session, &web, "security")),
                    body.into_any(),
                ),
            )
        }
        Err(e) => match state.accounts.start_totp(&session.user).await {
            Ok(setup) => web.page(
                status_of(&e),
                two_factor_setup_view(&web, &session, &setup.secret, &setup.svg, Some(shown(&e))),
            ),
            Err(e) => store_failed(e),
        },
    }
}

async fn sign_out_others(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    DashForm(form): DashForm<CsrfForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    let session = &signed.0;
    let now = now_ms();
    match state
        .store
        .revoke_user_sessions(&session.user.id, Some(&session.token_hash), now)
        .await
    {
        Ok(n) => {
            signed
                .audit(
                    &state,
                    &web,
                    "signed_out_everywhere",
                    &format!("{n} sessions ended"),
                )
                .await;
            web.finish(Redirect::to("/dashboard/security?done=others"))
        }
        Err(e) => store_failed(e),
    }
}

// --- re-authentication --------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct NextQuery {
    next: String,
}

/// Only a dashboard path may be gone back to (no open redirect).
fn safe_next(next: &str) -> &str {
    if next.starts_with("/dashboard/")
        && !next.starts_with("//")
        && !next.contains(['\\', '\r', '\n'])
    {
        next
    } else {
        "/dashboard/payments"
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ReauthForm {
    csrf: String,
    next: String,
    password: String,
    code: String,
}

fn reauth_view(
    web: &Web,
    session: &SignedIn,
    next: &str,
    error: Option<(String, &'static str)>,
) -> String {
    let totp = session.user.totp_enabled;
    let body = view! {
        <section class="card narrow">
            <h1>"Confirm it is you"</h1>
            <p>"This action needs your password"{totp.then_some(", or a code from your authenticator app")}"."</p>
            <FormError error />
            <form method="post" action="/dashboard/reauth">
                <Csrf token=web.csrf.clone() />
                <input type="hidden" name="next" value=next.to_owned() />
                <label for="password">"Password"</label>
                <input id="password" type="password" name="password" autocomplete="current-password" />
                {totp.then(|| view! {
                    <label for="code">"Or a 6-digit code"</label>
                    <input id="code" type="text" name="code" inputmode="numeric" autocomplete="one-time-code" />
                })}
                <button type="submit">"Continue"</button>
            </form>
        </section>
    };
    document(
        "Confirm it is you",
        Some(nav(session, web, "")),
        body.into_any(),
    )
}

async fn reauth_page(web: Web, Signed(session): Signed, Query(q): Query<NextQuery>) -> Response {
    web.page(
        StatusCode::OK,
        reauth_view(&web, &session, safe_next(&q.next), None),
    )
}

async fn reauth(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    Signed(session): Signed,
    DashForm(form): DashForm<ReauthForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    let next = safe_next(&form.next).to_owned();
    match state
        .accounts
        .reauthenticate(&session, SecretString::from(form.password), &form.code)
        .await
    {
        Ok(()) => web.finish(Redirect::to(&next)),
        Err(e) => web.page(
            status_of(&e),
            reauth_view(&web, &session, &next, Some(shown(&e))),
        ),
    }
}

// --- the test/live switch -----------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct ModeForm {
    csrf: String,
    mode: String,
}

async fn switch_mode(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    Signed(session): Signed,
    DashForm(form): DashForm<ModeForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    let mode = match form.mode.as_str() {
        "live" => Mode::Live,
        "test" => Mode::Test,
        _ => {
            return web.page(
                StatusCode::BAD_REQUEST,
                message_page(
                    "Unknown mode",
                    "parameter_invalid",
                    "Mode must be test or live.",
                    Some(("/dashboard/payments", "Back")),
                ),
            );
        }
    };
    if let Err(e) = state
        .store
        .set_session_mode(&session.token_hash, mode)
        .await
    {
        return store_failed(e);
    }
    web.finish(Redirect::to("/dashboard/payments"))
}

// --- the audit log ------------------------------------------------------------------

async fn audit(State(state): State<AppState>, web: Web, signed: Signed) -> Response {
    if !signed.may(Permission::ViewAudit) {
        return forbidden(&web, "read the audit log");
    }
    let session = &signed.0;
    let entries = match state.store.audit_log(&session.merchant.id, 500).await {
        Ok(e) => e,
        Err(e) => return store_failed(e),
    };
    let rows = entries
        .into_iter()
        .map(|e| {
            view! {
                <tr>
                    <td>{crate::time::format_utc(e.at)}</td>
                    <td>{e.actor}</td>
                    <td><code>{e.action}</code></td>
                    <td>{e.detail}</td>
                    <td>{e.ip.unwrap_or_default()}</td>
                </tr>
            }
        })
        .collect_view();
    let body = view! {
        <h1>"Audit log"</h1>
        <p class="hint">"Every sensitive action on this account: who, what, when (UTC) and from where. The newest 500."</p>
        <table>
            <thead><tr><th>"When"</th><th>"Who"</th><th>"What"</th><th>"Detail"</th><th>"From"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    };
    web.page(
        StatusCode::OK,
        document(
            "Audit log",
            Some(nav(session, &web, "audit")),
            body.into_any(),
        ),
    )
}

/// Needs a recent password or code before `next` can be done.
pub(crate) fn needs_reauth(signed: &Signed, next: &str) -> Option<Response> {
    (!signed.recently_authenticated()).then(|| reauth_redirect(next))
}
