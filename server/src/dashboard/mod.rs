//! The merchant's dashboard, under `/dashboard`: server-rendered Leptos pages with plain
//! HTML forms (no JavaScript at all, so nothing to hydrate and nothing to break on a
//! slow phone), behind sign-in sessions kept in the database.
//!
//! # Who may call what
//! - Sign-up, sign-in, the mailed links and "forgot password" are public; each is
//!   throttled (see [`crate::accounts`]) and none says whether an address has an account.
//! - Every other page needs a full sign-in session ([`Signed`]): a cookie holding a
//!   random token whose hash is a live row of `user_sessions`. Each action checks the
//!   session's role against the permission table ([`crate::accounts::Role::may`]).
//! - Every form carries a CSRF token bound to a per-browser cookie (an HMAC under a
//!   per-install key), and a POST is refused when the browser says it came from another
//!   site (`Origin`, `Sec-Fetch-Site`).
//! - Sensitive actions ask for the password (or a TOTP code) again when it was last
//!   given more than ten minutes ago.
//! - Owners and admins of a merchant that takes live payments must have two-factor
//!   sign-in on before anything else.

mod auth;
mod credentials;
mod developers;
mod mailbox;
pub mod mass;
mod mass_refund;
mod payments;
mod settings;
mod team;
mod views;

use axum::{
    Router,
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::net::SocketAddr;

use crate::{
    accounts::{Permission, REAUTH_WINDOW_MS, SESSION_IDLE_MS},
    domain::keys::hash_token,
    startup::AppState,
    store::SignedIn,
    time::now_ms,
};

/// The dashboard's styles (no inline styles: the pages' CSP allows only `'self'`).
const DASHBOARD_CSS: &str = include_str!("../../../style/dashboard.css");

/// Every dashboard page's Content-Security-Policy: no script at all, styles from here.
const DASHBOARD_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/dashboard", get(home))
        .route(
            "/dashboard/style.css",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=3600"),
                    ],
                    DASHBOARD_CSS,
                )
            }),
        )
        .merge(auth::router())
        .merge(payments::router())
        .merge(team::router())
        .merge(settings::router())
        .merge(credentials::router())
        .merge(developers::router())
        .merge(mailbox::router())
        .merge(mass::router())
        .layer(axum::middleware::map_response(dashboard_headers))
}

async fn dashboard_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(DASHBOARD_CSP));
    headers
        .entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    // The dashboard's own forms carry its origin (`no-referrer`, the hosted pages'
    // policy, makes a browser send `Origin: null`); other sites still learn nothing.
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    response
}

async fn home(signed: Option<Signed>) -> Redirect {
    match signed {
        Some(_) => Redirect::to("/dashboard/payments"),
        None => Redirect::to("/dashboard/sign-in"),
    }
}

// --- cookies ------------------------------------------------------------------------

/// Whether cookies get `Secure` and the `__Host-` prefix (served over https).
fn https(state: &AppState) -> bool {
    state.config.public_url.starts_with("https://")
}

fn session_cookie_name(state: &AppState) -> &'static str {
    if https(state) {
        "__Host-malipo_session"
    } else {
        "malipo_session"
    }
}

fn csrf_cookie_name(state: &AppState) -> &'static str {
    if https(state) {
        "__Host-malipo_csrf"
    } else {
        "malipo_csrf"
    }
}

/// A cookie's value from the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, path `/`, Secure over https.
fn set_cookie(state: &AppState, name: &str, value: &str, max_age_secs: Option<i64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if https(state) {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age_secs {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

// --- the request's context ----------------------------------------------------------

/// What every dashboard handler knows about the request: the client's address, the
/// browser's CSRF cookie (made if missing) and the token forms must carry.
pub(crate) struct Web {
    pub ip: String,
    pub user_agent: Option<String>,
    /// The CSRF token for this browser's forms.
    pub csrf: String,
    /// A new CSRF cookie to set, when the browser had none.
    new_csrf_cookie: Option<HeaderValue>,
    session_cookie: Option<String>,
}

impl FromRequestParts<AppState> for Web {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let ip = crate::limits::client_ip(peer, &parts.headers, &state.config.trusted_proxies)
            .to_string();
        let (browser, new_csrf_cookie) = match cookie(&parts.headers, csrf_cookie_name(state)) {
            Some(value) => (value, None),
            None => {
                let value = crate::domain::ids::random_base62(32);
                let header = set_cookie(state, csrf_cookie_name(state), &value, None);
                (value, Some(header))
            }
        };
        let csrf = csrf_token(state, &browser).await;
        Ok(Web {
            ip,
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            csrf,
            new_csrf_cookie,
            session_cookie: cookie(&parts.headers, session_cookie_name(state)),
        })
    }
}

/// HMAC-SHA-256 of the browser's CSRF cookie under the install's CSRF key.
async fn csrf_token(state: &AppState, browser: &str) -> String {
    let key = match state.accounts.csrf_key().await {
        Ok(key) => key,
        // No key, no valid token: every form is refused until the store answers.
        Err(_) => return String::from("unavailable"),
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose_secret().as_bytes())
        .expect("HMAC takes any key length");
    mac.update(b"malipo-dashboard-csrf:");
    mac.update(browser.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Why a form was refused before reading it.
pub(crate) struct CsrfRefused;

impl Web {
    /// Checks a POST: the form's token matches this browser's, and the browser does not
    /// say the request came from another site.
    pub fn check(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        token: &str,
    ) -> Result<(), CsrfRefused> {
        if self.new_csrf_cookie.is_some() || self.csrf == "unavailable" {
            return Err(CsrfRefused);
        }
        let same = token.len() == self.csrf.len()
            && token
                .bytes()
                .zip(self.csrf.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return Err(CsrfRefused);
        }
        if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
            && !matches!(site, "same-origin" | "none")
        {
            return Err(CsrfRefused);
        }
        // A browser that keeps the referrer to itself may say `Origin: null`: then it
        // must say the request is same-origin.
        let same_site = headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"same-origin");
        if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            let ours = origin == state.config.public_url.trim_end_matches('/');
            if !(ours || (origin == "null" && same_site)) {
                return Err(CsrfRefused);
            }
        }
        Ok(())
    }

    /// Adds the CSRF cookie (when new) to a response.
    pub fn finish(&self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        if let Some(cookie) = &self.new_csrf_cookie {
            response
                .headers_mut()
                .append(header::SET_COOKIE, cookie.clone());
        }
        response
    }

    /// A page with this request's cookie.
    pub fn page(&self, status: StatusCode, html: String) -> Response {
        self.finish((status, axum::response::Html(html)))
    }

    /// The 403 page for a refused form.
    pub fn refused(&self) -> Response {
        self.page(
            StatusCode::FORBIDDEN,
            views::message_page(
                "Form refused",
                "csrf_failed",
                "This form has expired or was sent from another site. Go back, reload the \
                 page and try again.",
                None,
            ),
        )
    }
}

/// A form whose only field is its CSRF token (buttons that act: sign out, revoke…).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(crate) struct CsrfForm {
    pub csrf: String,
}

/// A form body, or a 400 page (`parameter_invalid`) for one that does not parse (a field
/// given twice, a wrong content type): never half-read.
pub(crate) struct DashForm<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for DashForm<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(DashForm(value)),
            Err(_) => Err((
                StatusCode::BAD_REQUEST,
                axum::response::Html(views::message_page(
                    "Form not understood",
                    "parameter_invalid",
                    "This form arrived incomplete or with a field given twice. Go back and send it again.",
                    None,
                )),
            )
                .into_response()),
        }
    }
}

/// Sets the session cookie for a new sign-in and redirects.
fn signed_in_redirect(state: &AppState, web: &Web, token: &SecretString, to: &str) -> Response {
    let mut response = web.finish(Redirect::to(to));
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            state,
            session_cookie_name(state),
            token.expose_secret(),
            None,
        ),
    );
    response
}

/// Clears the session cookie and redirects.
fn signed_out_redirect(state: &AppState, web: &Web, to: &str) -> Response {
    let mut response = web.finish(Redirect::to(to));
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, session_cookie_name(state), "", Some(0)),
    );
    response
}

// --- signed-in requests -------------------------------------------------------------

/// A request from a person fully signed in (second factor given if they have one).
/// Without one, the handler is not run: the browser goes to the sign-in page. Owners
/// and admins of a live merchant without two-factor sign-in go to set it up first.
pub(crate) struct Signed(pub SignedIn);

/// Paths a signed-in person may use before setting up a required second factor.
const TWO_FACTOR_SETUP_PATHS: [&str; 5] = [
    "/dashboard/security",
    "/dashboard/reauth",
    "/dashboard/security/two-factor",
    "/dashboard/security/two-factor/confirm",
    "/dashboard/sign-out",
];

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_sign_in = || Redirect::to("/dashboard/sign-in").into_response();
        let Some(token) = cookie(&parts.headers, session_cookie_name(state)) else {
            return Err(to_sign_in());
        };
        let session = match state
            .store
            .signed_in(&hash_token(&token), now_ms(), SESSION_IDLE_MS)
            .await
        {
            Ok(Some(session)) => session,
            Ok(None) => return Err(to_sign_in()),
            Err(e) => {
                tracing::error!(error = %e, "dashboard session lookup failed");
                return Err(unavailable());
            }
        };
        if !session.full {
            return Err(Redirect::to("/dashboard/sign-in/two-factor").into_response());
        }
        if session.role.needs_two_factor_for_live()
            && !session.user.totp_enabled
            && !TWO_FACTOR_SETUP_PATHS.contains(&parts.uri.path())
        {
            let live = session.mode == crate::domain::Mode::Live
                || state
                    .store
                    .merchant_is_live(&session.merchant.id)
                    .await
                    .unwrap_or(true);
            if live {
                return Err(Redirect::to("/dashboard/security?required=1").into_response());
            }
        }
        tracing::Span::current().record("merchant", session.merchant.id.as_str());
        Ok(Signed(session))
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Signed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Signed as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

impl Signed {
    /// Whether the person's role allows `permission`.
    pub fn may(&self, permission: Permission) -> bool {
        self.0.role.may(permission)
    }

    /// Records `what` (with `detail`) in the business's audit log: this person, now,
    /// from this browser's address. The action stands even if the record cannot be
    /// written (the failure is logged).
    pub async fn audit(&self, state: &AppState, web: &Web, what: &str, detail: &str) {
        let session = &self.0;
        if let Err(e) = state
            .store
            .audit(
                Some(&session.merchant.id),
                Some(&session.user.id),
                &session.user.email,
                what,
                detail,
                Some(&web.ip),
                now_ms(),
            )
            .await
        {
            tracing::warn!(error = %e, %what, "audit record not written");
        }
    }

    /// Whether a password or code was given within the re-authentication window.
    pub fn recently_authenticated(&self) -> bool {
        now_ms() - self.0.reauth_at < REAUTH_WINDOW_MS
    }
}

/// The page for a role that may not do something.
fn forbidden(web: &Web, what: &str) -> Response {
    web.page(
        StatusCode::FORBIDDEN,
        views::message_page(
            "Not allowed",
            "forbidden",
            &format!("Your role does not allow you to {what}. Ask an owner of this account."),
            Some(("/dashboard/payments", "Back to payments")),
        ),
    )
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::response::Html(views::message_page(
            "Try again",
            "unavailable",
            "The dashboard cannot reach its database just now. Try again in a minute.",
            None,
        )),
    )
        .into_response()
}

/// Sends the browser to re-authenticate, then back to `next` (a dashboard path).
fn reauth_redirect(next: &str) -> Response {
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    Redirect::to(&format!("/dashboard/reauth?next={next}")).into_response()
}

/// A store failure on a dashboard page: logged, and "try again" shown.
fn store_failed(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "dashboard request failed");
    unavailable()
}
