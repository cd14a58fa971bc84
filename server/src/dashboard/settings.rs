//! Settings: the business name, brand colour, and the support contacts the hosted page
//! shows, because a shopper who is stuck needs to reach the merchant; and the ways to pay
//! (rails) its checkouts offer in each mode.

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{Redirect, Response},
    routing::get,
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
    accounts::{Permission, normalize_email},
    connectors::RailId,
    merchants::parse_name,
    startup::AppState,
    store::{MerchantProfile, StoreError},
    time::now_ms,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard/settings", get(page).post(save))
        .route("/dashboard/settings/rails", axum::routing::post(save_rails))
        .route(
            "/dashboard/settings/logo",
            axum::routing::post(save_logo).layer(axum::extract::DefaultBodyLimit::max(64 * 1024)),
        )
        .route("/logos/{digest}", get(logo))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SettingsForm {
    csrf: String,
    name: String,
    support_phone: String,
    support_email: String,
    support_whatsapp: String,
    brand_color: String,
    /// The page's language when the shopper's browser asks for none Malipo speaks.
    default_locale: String,
    /// The logo's digest, as stored (never read from a form).
    #[serde(skip)]
    logo: Option<String>,
}

/// The largest logo taken: it loads with the page on 2G.
const LOGO_MAX_BYTES: usize = 16 * 1024;
/// The largest side of a PNG logo, in pixels.
const LOGO_MAX_SIDE: u32 = 1024;

/// The image's content type when `bytes` is a PNG (of sane size), a JPEG or a WebP; SVG
/// and everything else are refused (an SVG can carry script).
fn logo_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() > LOGO_MAX_BYTES {
        return None;
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.get(12..16) == Some(b"IHDR") {
        let side = |at: usize| {
            bytes
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let (w, h) = (side(16)?, side(20)?);
        return ((1..=LOGO_MAX_SIDE).contains(&w) && (1..=LOGO_MAX_SIDE).contains(&h))
            .then_some("image/png");
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some("image/jpeg");
    }
    if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    None
}

/// A phone number in international form (`+` and 9 to 15 digits; spaces and dashes
/// dropped), or `None` for anything else.
fn international(text: &str) -> Option<String> {
    let t: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    let digits = t.strip_prefix('+')?;
    ((9..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0'))
    .then(|| format!("+{digits}"))
}

/// WCAG contrast ratio of white text on `#rrggbb`.
fn contrast_with_white(hex: &str) -> Option<f64> {
    let h = hex.strip_prefix('#')?;
    if h.len() != 6 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let channel = |i: usize| {
        let v = f64::from(u8::from_str_radix(&h[i..i + 2], 16).ok()?) / 255.0;
        Some(if v <= 0.039_28 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        })
    };
    let l = 0.2126 * channel(0)? + 0.7152 * channel(2)? + 0.0722 * channel(4)?;
    Some(1.05 / (l + 0.05))
}

/// Checks the form: the profile, or what is wrong (field, message).
fn parse(form: &SettingsForm) -> Result<(String, MerchantProfile), (String, &'static str)> {
    let name = parse_name(&form.name).map_err(|_| {
        (
            "Enter a business name of 1 to 100 characters.".to_owned(),
            "invalid_name",
        )
    })?;
    let optional = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let support_phone = optional(&form.support_phone)
        .map(|p| {
            international(&p).ok_or((
                "Enter the support phone in international form, e.g. +254 712 345 678.".to_owned(),
                "invalid_phone",
            ))
        })
        .transpose()?;
    let support_whatsapp = optional(&form.support_whatsapp)
        .map(|p| {
            international(&p)
                .map(|p| p.trim_start_matches('+').to_owned())
                .ok_or((
                    "Enter the WhatsApp number in international form, e.g. +254 712 345 678."
                        .to_owned(),
                    "invalid_phone",
                ))
        })
        .transpose()?;
    let support_email = optional(&form.support_email)
        .map(|e| {
            normalize_email(&e).ok_or((
                "Enter a valid support email address.".to_owned(),
                "invalid_email",
            ))
        })
        .transpose()?;
    let brand_color = optional(&form.brand_color)
        .map(|c| {
            let c = c.to_lowercase();
            match contrast_with_white(&c) {
                Some(ratio) if ratio >= 4.5 => Ok(c),
                Some(_) => Err(("That colour is too light for white text on it (contrast under 4.5:1): choose a darker one.".to_owned(), "invalid_color")),
                None => Err(("Enter the brand colour as #rrggbb.".to_owned(), "invalid_color")),
            }
        })
        .transpose()?;
    let default_locale = match form.default_locale.trim() {
        "" => app::i18n::Locale::En,
        code => app::i18n::Locale::ALL
            .into_iter()
            .find(|l| l.code() == code)
            .ok_or((
                "Choose one of the page's languages.".to_owned(),
                "invalid_locale",
            ))?,
    };
    Ok((
        name,
        MerchantProfile {
            support_phone,
            support_email,
            support_whatsapp,
            brand_color,
            logo: None,
            default_locale: default_locale.code().to_owned(),
        },
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SavedQuery {
    saved: String,
}

/// A rail as the Settings page shows it for the mode at the top.
struct RailRow {
    rail: RailId,
    /// This server has it on in this mode.
    available: bool,
    /// The business takes payments with it.
    on: bool,
}

/// Every rail, for the merchant in the session's mode.
async fn rail_rows(state: &AppState, signed: &Signed) -> Result<Vec<RailRow>, StoreError> {
    let session = &signed.0;
    let chosen = state
        .store
        .merchant_rails(&session.merchant.id, session.mode)
        .await?;
    Ok(RailId::ALL
        .into_iter()
        .map(|rail| {
            let available = state
                .payments
                .rail_on(&session.merchant.id, rail, session.mode);
            RailRow {
                rail,
                available,
                on: available && chosen.as_ref().is_none_or(|list| list.contains(&rail)),
            }
        })
        .collect())
}

async fn page(
    State(state): State<AppState>,
    web: Web,
    signed: Signed,
    axum::extract::Query(q): axum::extract::Query<SavedQuery>,
) -> Response {
    let session = &signed.0;
    let profile = match state.store.merchant_profile(&session.merchant.id).await {
        Ok(p) => p,
        Err(e) => return store_failed(e),
    };
    let form = SettingsForm {
        csrf: String::new(),
        name: session.merchant.name.clone(),
        support_phone: profile.support_phone.unwrap_or_default(),
        support_email: profile.support_email.unwrap_or_default(),
        support_whatsapp: profile
            .support_whatsapp
            .map(|w| format!("+{w}"))
            .unwrap_or_default(),
        brand_color: profile.brand_color.unwrap_or_default(),
        default_locale: profile.default_locale,
        logo: profile.logo,
    };
    let rails = match rail_rows(&state, &signed).await {
        Ok(r) => r,
        Err(e) => return store_failed(e),
    };
    let notice = match q.saved.as_str() {
        "1" => Some("Saved. The hosted page shows it from now on.".to_owned()),
        "rails" => Some("Saved. New checkouts offer the rails switched on.".to_owned()),
        "logo" => Some("Saved. The hosted page shows the logo from now on.".to_owned()),
        _ => None,
    };
    render(&web, &signed, &form, &rails, notice, None)
}

fn render(
    web: &Web,
    signed: &Signed,
    form: &SettingsForm,
    rails: &[RailRow],
    notice: Option<String>,
    error: Option<(String, &'static str)>,
) -> Response {
    let may = signed.may(Permission::ManageSettings);
    let may_rails = signed.may(Permission::ManageRails);
    let mode = signed.0.mode;
    let rail_items = rails
        .iter()
        .map(|r| {
            let id = format!("rail_{}", r.rail.as_str());
            view! {
                <div class="check" data-rail=r.rail.as_str() data-on=r.on.to_string()>
                    <input id=id.clone() type="checkbox" name=id.clone() value="on" checked=r.on disabled=!may_rails || !r.available />
                    <label for=id>{r.rail.label()}
                        {(!r.available).then(|| format!(" — not set up on this server in {} mode", mode.as_str()))}</label>
                </div>
            }
        })
        .collect_view();
    let body = view! {
        <h1>"Settings"</h1>
        <Notice notice />
        <FormError error />
        <form method="post" action="/dashboard/settings" class="card">
            <Csrf token=web.csrf.clone() />
            <label for="name">"Business name (shown to shoppers)"</label>
            <input id="name" type="text" name="name" value=form.name.clone() maxlength="100" required disabled=!may />
            <h2>"Support contacts on the payment page"</h2>
            <p class="hint">"A shopper who is stuck (a prompt that never came, money taken twice) needs to reach you. What you fill in here is shown under every payment page, as links."</p>
            <label for="support_phone">"Phone"</label>
            <input id="support_phone" type="text" name="support_phone" value=form.support_phone.clone() placeholder="+254 712 345 678" disabled=!may />
            <label for="support_whatsapp">"WhatsApp"</label>
            <input id="support_whatsapp" type="text" name="support_whatsapp" value=form.support_whatsapp.clone() placeholder="+254 712 345 678" disabled=!may />
            <label for="support_email">"Email"</label>
            <input id="support_email" type="email" name="support_email" value=form.support_email.clone() disabled=!may />
            <h2>"Brand"</h2>
            <label for="brand_color">"Brand colour (#rrggbb, dark enough for white text)"</label>
            <input id="brand_color" type="text" name="brand_color" value=form.brand_color.clone() placeholder="#0b6e4f" disabled=!may />
            <h2>"Language"</h2>
            <p class="hint">"The payment page speaks the shopper's language when their browser asks for English, Kiswahili or French, and offers the others as links. This is the one it speaks when the browser asks for none of them."</p>
            <label for="default_locale">"Payment page language"</label>
            <select id="default_locale" name="default_locale" disabled=!may>
                {app::i18n::Locale::ALL.into_iter().map(|l| view! {
                    <option value=l.code() selected=form.default_locale == l.code()>{l.name()}</option>
                }).collect_view()}
            </select>
            {may.then(|| view! { <button type="submit">"Save"</button> })}
        </form>
        <form method="post" action="/dashboard/settings/logo" enctype="multipart/form-data" class="card">
            <Csrf token=web.csrf.clone() />
            <h2>"Logo"</h2>
            {form.logo.clone().map(|d| view! { <p><img class="logo" src=format!("/logos/{d}") alt="Your logo" height="40" data-logo=d /></p> })}
            <p class="hint">"Shown above your name on the payment page. PNG, JPEG or WebP, at most 16 KB and 1024 px a side: shoppers on 2G load it with the page."</p>
            <label for="logo">"Logo file"</label>
            <input id="logo" type="file" name="logo" accept="image/png,image/jpeg,image/webp" disabled=!may />
            {may.then(|| view! { <button type="submit">"Upload the logo"</button> })}
            {(may && form.logo.is_some()).then(|| view! { <button type="submit" name="remove" value="1" class="danger">"Remove the logo"</button> })}
        </form>
        <form method="post" action="/dashboard/settings/rails" class="card">
            <Csrf token=web.csrf.clone() />
            <h2>{format!("Ways to pay ({} mode)", mode.as_str())}</h2>
            <p class="hint">{if mode == crate::domain::Mode::Live {
                "What your live checkouts offer. Switching live rails needs your password from the last 10 minutes; only owners may."
            } else {
                "What your test checkouts offer (the switch at the top changes the mode). Only owners may change it."
            }}</p>
            {rail_items}
            {may_rails.then(|| view! { <button type="submit">"Save the ways to pay"</button> })}
        </form>
        {may_rails.then(|| view! {
            <section class="card">
                <h2>"Live credentials"</h2>
                <p class="hint">"Your own operator accounts (your paybill, your MTN MoMo, Airtel or PayPal app) for live payments: sealed when saved, never shown again."</p>
                <p><a href="/dashboard/settings/credentials">"Set up live credentials"</a></p>
            </section>
        })}
    };
    web.page(
        StatusCode::OK,
        document(
            "Settings",
            Some(nav(&signed.0, web, "settings")),
            body.into_any(),
        ),
    )
}

async fn save(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    DashForm(form): DashForm<SettingsForm>,
) -> Response {
    if web.check(&state, &headers, &form.csrf).is_err() {
        return web.refused();
    }
    if !signed.may(Permission::ManageSettings) {
        return forbidden(&web, "change settings");
    }
    // What shoppers are told to call: a stolen session must not change it quietly.
    if let Some(r) = super::auth::needs_reauth(&signed, "/dashboard/settings") {
        return r;
    }
    let session = &signed.0;
    let (name, profile) = match parse(&form) {
        Ok(v) => v,
        Err(e) => {
            let rails = match rail_rows(&state, &signed).await {
                Ok(r) => r,
                Err(e) => return store_failed(e),
            };
            let mut form = form;
            form.logo = state
                .store
                .merchant_profile(&session.merchant.id)
                .await
                .ok()
                .and_then(|p| p.logo);
            let mut r = render(&web, &signed, &form, &rails, None, Some(e));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            return r;
        }
    };
    let before = match state.store.merchant_profile(&session.merchant.id).await {
        Ok(p) => p,
        Err(e) => return store_failed(e),
    };
    if let Err(e) = state
        .store
        .set_merchant_profile(&session.merchant.id, &name, &profile)
        .await
    {
        return store_failed(e);
    }
    signed.audit(&state, &web, "settings.changed",
            &format!(
                "name {:?} → {name:?}; phone {:?} → {:?}; whatsapp {:?} → {:?}; email {:?} → {:?}; colour {:?} → {:?}; language {:?} → {:?}",
                session.merchant.name,
                before.support_phone,
                profile.support_phone,
                before.support_whatsapp,
                profile.support_whatsapp,
                before.support_email,
                profile.support_email,
                before.brand_color,
                profile.brand_color,
                before.default_locale,
                profile.default_locale
            )).await;
    web.finish(Redirect::to("/dashboard/settings?saved=1"))
}

/// `POST /dashboard/settings/rails`: the rails this business takes payments with, in the
/// mode at the top (`rail_{id}=on` for each switched on). Live mode's need a recent
/// password: switching a live rail on sends real shoppers' money to it.
async fn save_rails(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    DashForm(form): DashForm<std::collections::HashMap<String, String>>,
) -> Response {
    let csrf = form.get("csrf").map(String::as_str).unwrap_or_default();
    if web.check(&state, &headers, csrf).is_err() {
        return web.refused();
    }
    if !signed.may(Permission::ManageRails) {
        return forbidden(&web, "switch rails on or off");
    }
    let session = &signed.0;
    if session.mode == crate::domain::Mode::Live
        && let Some(r) = super::auth::needs_reauth(&signed, "/dashboard/settings")
    {
        return r;
    }
    let rows = match rail_rows(&state, &signed).await {
        Ok(r) => r,
        Err(e) => return store_failed(e),
    };
    let chosen: Vec<RailId> = rows
        .iter()
        .filter(|r| {
            r.available
                && form
                    .get(&format!("rail_{}", r.rail.as_str()))
                    .is_some_and(|v| v == "on")
        })
        .map(|r| r.rail)
        .collect();
    if chosen.is_empty() {
        let mut r = render(
            &web,
            &signed,
            &profile_form(&state, &signed).await,
            &rows,
            None,
            Some((
                "Switch on at least one way to pay: a checkout with none cannot be paid.".into(),
                "no_rails",
            )),
        );
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    }
    // Every rail the server has on: stored as "every rail", so one set up later is
    // offered too.
    let every = rows.iter().filter(|r| r.available).count() == chosen.len();
    let before: Vec<&str> = rows
        .iter()
        .filter(|r| r.on)
        .map(|r| r.rail.as_str())
        .collect();
    if let Err(e) = state
        .store
        .update_account(
            &session.merchant.id,
            session.mode,
            None,
            Some((!every).then_some(chosen.as_slice())),
            None,
        )
        .await
    {
        return store_failed(e);
    }
    let after: Vec<&str> = chosen.iter().map(|r| r.as_str()).collect();
    signed
        .audit(
            &state,
            &web,
            "rails.changed",
            &format!(
                "{} mode: {} → {}",
                session.mode.as_str(),
                before.join(","),
                after.join(",")
            ),
        )
        .await;
    web.finish(Redirect::to("/dashboard/settings?saved=rails"))
}

/// `POST /dashboard/settings/logo` (multipart): a new logo, or `remove`.
async fn save_logo(
    State(state): State<AppState>,
    web: Web,
    headers: HeaderMap,
    signed: Signed,
    mut multipart: axum::extract::Multipart,
) -> Response {
    let (mut csrf, mut file, mut remove) = (String::new(), None::<Vec<u8>>, false);
    let unreadable = |web: &Web| {
        web.page(
            StatusCode::BAD_REQUEST,
            super::views::message_page(
                "Upload not understood",
                "invalid_logo",
                "The upload arrived incomplete or too large (a logo is at most 16 KB). Go back and try again.",
                Some(("/dashboard/settings", "Back to settings")),
            ),
        )
    };
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => match field.name().unwrap_or_default() {
                "csrf" => csrf = field.text().await.unwrap_or_default(),
                "remove" => remove = true,
                "logo" => match field.bytes().await {
                    Ok(b) if !b.is_empty() => file = Some(b.to_vec()),
                    Ok(_) => {}
                    Err(_) => return unreadable(&web),
                },
                _ => {}
            },
            Ok(None) => break,
            Err(_) => return unreadable(&web),
        }
    }
    if web.check(&state, &headers, &csrf).is_err() {
        return web.refused();
    }
    if !signed.may(Permission::ManageSettings) {
        return forbidden(&web, "change settings");
    }
    if let Some(r) = super::auth::needs_reauth(&signed, "/dashboard/settings") {
        return r;
    }
    let session = &signed.0;
    let logo = match (&file, remove) {
        (_, true) => None,
        (Some(bytes), false) => match logo_type(bytes) {
            Some(kind) => Some((kind, bytes.as_slice())),
            None => {
                let rails = rail_rows(&state, &signed).await.unwrap_or_default();
                let mut r = render(
                    &web,
                    &signed,
                    &profile_form(&state, &signed).await,
                    &rails,
                    None,
                    Some((
                        "That is not a logo Malipo takes: a PNG (at most 1024 px a side), JPEG or WebP, at most 16 KB.".into(),
                        "invalid_logo",
                    )),
                );
                *r.status_mut() = StatusCode::BAD_REQUEST;
                return r;
            }
        },
        (None, false) => return web.finish(Redirect::to("/dashboard/settings")),
    };
    let digest = match state
        .store
        .set_merchant_logo(&session.merchant.id, logo, now_ms())
        .await
    {
        Ok(d) => d,
        Err(e) => return store_failed(e),
    };
    signed
        .audit(
            &state,
            &web,
            "settings.logo_changed",
            &match (&digest, logo) {
                (Some(d), Some((kind, bytes))) => format!("{kind}, {} bytes, {d}", bytes.len()),
                _ => "removed".to_owned(),
            },
        )
        .await;
    web.finish(Redirect::to("/dashboard/settings?saved=logo"))
}

/// `GET /logos/{digest}`: a merchant's logo, for its hosted page. A new logo is a new
/// digest, so this one may be kept for good.
async fn logo(
    State(state): State<AppState>,
    axum::extract::Path(digest): axum::extract::Path<String>,
) -> Response {
    use axum::{http::header, response::IntoResponse};
    if digest.len() != 40 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match state.store.merchant_logo(&digest).await {
        Ok(Some(l)) => (
            [
                (header::CONTENT_TYPE, l.content_type),
                (
                    header::CACHE_CONTROL,
                    "public, max-age=31536000, immutable".to_owned(),
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'".to_owned(),
                ),
            ],
            l.bytes,
        )
            .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => store_failed(e),
    }
}

/// The profile form as stored (to show the page again).
async fn profile_form(state: &AppState, signed: &Signed) -> SettingsForm {
    let profile = state
        .store
        .merchant_profile(&signed.0.merchant.id)
        .await
        .unwrap_or_default();
    SettingsForm {
        csrf: String::new(),
        name: signed.0.merchant.name.clone(),
        support_phone: profile.support_phone.unwrap_or_default(),
        support_email: profile.support_email.unwrap_or_default(),
        support_whatsapp: profile
            .support_whatsapp
            .map(|w| format!("+{w}"))
            .unwrap_or_default(),
        brand_color: profile.brand_color.unwrap_or_default(),
        default_locale: profile.default_locale,
        logo: profile.logo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_colours_are_checked() {
        assert_eq!(
            international("+254 712-345 678").as_deref(),
            Some("+254712345678")
        );
        assert_eq!(international("0712345678"), None);
        assert_eq!(international("+0712345678"), None);
        assert!(contrast_with_white("#0b6e4f").unwrap() >= 4.5);
        assert!(contrast_with_white("#ffff00").unwrap() < 4.5);
        assert_eq!(contrast_with_white("green"), None);
    }
}
