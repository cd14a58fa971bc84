//! Checkout sessions: creating them and showing them to shoppers.

use std::collections::BTreeMap;

use app::{
    i18n::Locale,
    model::{CheckoutState, CheckoutView, LiveState, QuoteView},
    service::{BoxFuture, PageService, ServiceUnavailable},
};

use crate::{
    connectors::{RailId, Registry},
    domain::phone::{local_form, mask},
    domain::{MerchantId, Mode, Money, SessionId},
    store::{
        AttemptRecord, AttemptStatus, NewSession, PaymentStatus, SessionRecord, SessionStatus,
        Store, StoreError,
    },
    time::{eat_label, now_ms},
};

/// Shortest and longest time a session may stay open, in seconds.
pub const MIN_EXPIRES_IN: i64 = 60;
pub const MAX_EXPIRES_IN: i64 = 24 * 3600;
/// Default lifetime of a session: long enough to find the phone and top up.
pub const DEFAULT_EXPIRES_IN: i64 = 30 * 60;

/// What a caller asks for; validated by [`CheckoutService::create`]'s callers.
#[derive(Debug, Clone)]
pub struct CreateSession {
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub amount: Money,
    pub reference: String,
    pub description: String,
    pub success_url: String,
    pub cancel_url: String,
    /// The shopper's phone, to prefill the page (international digits).
    pub customer_phone: Option<String>,
    pub customer_email: Option<String>,
    /// Up to 20 string pairs the merchant gets back untouched.
    pub metadata: BTreeMap<String, String>,
    pub expires_in_secs: i64,
    /// The rails the shopper may pay with (`payment_method_types`), narrowed further to
    /// those the merchant switched on for the mode; `None`: every rail that takes it.
    pub payment_method_types: Option<Vec<RailId>>,
    /// The trip a travel booking pays for (`line_items`, `travelers`).
    pub travel: Option<crate::domain::travel::Travel>,
}

/// Why a session could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A redirect URL that is not an absolute http(s) URL (`javascript:` and friends
    /// would turn the page's links into script).
    #[error("{param} must be an absolute http(s) URL")]
    InvalidUrl { param: &'static str },
    /// Live mode sends real shoppers on with the merchant's booking: https only.
    #[error("{param} must be an https URL in live mode")]
    InsecureLiveUrl { param: &'static str },
    /// Of the rails asked for (by the session and the merchant's account), none can
    /// take this currency and amount.
    #[error("no payment method left: {0}")]
    NoPaymentMethod(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Accepts absolute `https://` URLs, and `http://` ones (merchants test on localhost).
pub fn parse_redirect_url(param: &'static str, raw: &str) -> Result<String, CreateError> {
    let url = url::Url::parse(raw.trim()).map_err(|_| CreateError::InvalidUrl { param })?;
    let ok =
        matches!(url.scheme(), "https" | "http") && url.host_str().is_some_and(|h| !h.is_empty());
    if !ok || raw.len() > 2048 {
        return Err(CreateError::InvalidUrl { param });
    }
    Ok(url.into())
}

/// Sessions, over the store.
#[derive(Clone)]
pub struct CheckoutService {
    store: Store,
    public_url: String,
    /// Keys the pay form's token (see [`CheckoutService::form_token`]).
    form_key: std::sync::Arc<secrecy::SecretString>,
    /// The rails, for which can take a session (what the page offers).
    rails: Registry,
    /// Quotes for rails in another currency than the price's; `None`: none offered.
    fx: Option<crate::fx::Quoter>,
}

impl CheckoutService {
    /// With a random form key, good for this process only; the server uses
    /// [`CheckoutService::with_form_key`] with the install's stored one.
    pub fn new(store: Store, public_url: String) -> Self {
        let key = crate::domain::ids::random_base62(43);
        Self {
            store,
            public_url,
            form_key: std::sync::Arc::new(key.into()),
            rails: Registry::new(),
            fx: None,
        }
    }

    /// Offers the rails of `rails` on the pages.
    pub fn with_rails(mut self, rails: Registry) -> Self {
        self.rails = rails;
        self
    }

    /// Offers rails in another currency than the price's, at `quoter`'s quotes.
    pub fn with_fx(mut self, quoter: crate::fx::Quoter) -> Self {
        self.fx = Some(quoter);
        self
    }

    /// The rails that can take `session` as it is: those whose capabilities accept its
    /// currency and amount, in `RailId` order. (Whether a rail is switched on in the
    /// session's mode is told when the shopper pays: "not switched on for this shop
    /// yet".)
    pub fn methods(&self, session: &SessionRecord) -> Vec<RailId> {
        self.offered(session)
            .filter(|rail| {
                self.rails
                    .describing(&session.merchant_id, *rail, session.mode)
                    .is_some_and(|c| payable(c.capabilities(), session))
            })
            .collect()
    }

    /// The rails the session may be paid with, by its own list, in `RailId` order.
    fn offered(&self, session: &SessionRecord) -> impl Iterator<Item = RailId> {
        let allowed = session.payment_method_types.clone();
        RailId::ALL
            .into_iter()
            .filter(move |rail| allowed.as_ref().is_none_or(|list| list.contains(rail)))
    }

    /// What the page offers: each rail that can take `session`, with the quote it
    /// charges at when it takes another currency than the price's (`None`: the price).
    pub async fn offers(
        &self,
        session: &SessionRecord,
        now: i64,
    ) -> Result<Vec<(RailId, Option<crate::fx::Quote>)>, StoreError> {
        let mut out = Vec::new();
        for rail in self.offered(session) {
            let Some(connector) = self
                .rails
                .describing(&session.merchant_id, rail, session.mode)
            else {
                continue;
            };
            let caps = connector.capabilities();
            if payable(caps, session) {
                out.push((rail, None));
            } else if caps.country(session.amount.currency()).is_none()
                && session.received_minor == 0
                && let Some(fx) = &self.fx
                && let Some(quote) = fx.quote(session, caps, now).await?
            {
                out.push((rail, Some(quote)));
            }
        }
        Ok(out)
    }

    /// The rails a new session may be paid with: those asked for, narrowed to those the
    /// merchant switched on in the mode (`None`: no narrowing at all). Refused when that
    /// leaves none that can take the amount.
    async fn allowed_rails(&self, req: &CreateSession) -> Result<Option<Vec<RailId>>, CreateError> {
        let account = self
            .store
            .merchant_rails(&req.merchant_id, req.mode)
            .await?;
        let allowed: Vec<RailId> = match (&req.payment_method_types, &account) {
            (None, None) => return Ok(None),
            (Some(asked), None) => asked.clone(),
            (None, Some(on)) => on.clone(),
            (Some(asked), Some(on)) => asked.iter().copied().filter(|r| on.contains(r)).collect(),
        };
        // On in the session's own mode, and able to take the amount (as it is, or at a
        // quote in a currency it takes).
        let mut payable = false;
        for rail in &allowed {
            let Some(connector) = self.rails.for_merchant(&req.merchant_id, *rail, req.mode) else {
                continue;
            };
            let caps = connector.capabilities();
            payable = caps.takes(req.amount)
                || match &self.fx {
                    Some(fx) if caps.country(req.amount.currency()).is_none() => fx
                        .quote_price(&req.merchant_id, req.mode, req.amount, caps, now_ms())
                        .await?
                        .is_some(),
                    _ => false,
                };
            if payable {
                break;
            }
        }
        if !payable {
            let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
            let why = if names.is_empty() {
                "none of payment_method_types is switched on for this account in this mode \
                 (its payment_method_types, POST /v1/account)"
                    .to_owned()
            } else {
                format!(
                    "none of {} is on in this mode and can take {}, as it is or at a quote \
                     (each rail's currencies and amount rules are in the README's Rails \
                     table; rates in its Currencies section)",
                    names.join(", "),
                    req.amount
                )
            };
            return Err(CreateError::NoPaymentMethod(why));
        }
        Ok(Some(allowed))
    }

    /// Uses `key` (the same on every instance, across restarts) for form tokens.
    pub fn with_form_key(mut self, key: secrecy::SecretString) -> Self {
        self.form_key = std::sync::Arc::new(key);
        self
    }

    /// The pay form's token for a session: HMAC-SHA256 of its id under the install's
    /// key. A page of ours carries it in a hidden field (no JavaScript needed, and it
    /// works on proxy browsers that send no `Origin`); a form on another site cannot
    /// know it, so a cross-site POST starts nothing.
    pub fn form_token(&self, id: &SessionId) -> String {
        use hmac::Mac;
        use secrecy::ExposeSecret;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(self.form_key.expose_secret().as_bytes())
                .expect("HMAC takes any key length");
        mac.update(b"pay-form:");
        mac.update(id.as_str().as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Whether `token` is the session's form token (compared in constant time).
    pub fn form_token_ok(&self, id: &SessionId, token: &str) -> bool {
        crate::connectors::shared::same(&self.form_token(id), token)
    }

    /// The hosted page URL of a session.
    pub fn page_url(&self, id: &SessionId) -> String {
        format!("{}/pay/{id}", self.public_url)
    }

    pub async fn create(&self, req: CreateSession) -> Result<SessionRecord, CreateError> {
        let success_url = parse_redirect_url("success_url", &req.success_url)?;
        let cancel_url = parse_redirect_url("cancel_url", &req.cancel_url)?;
        if req.mode == Mode::Live {
            for (param, url) in [("success_url", &success_url), ("cancel_url", &cancel_url)] {
                if !url.starts_with("https://") {
                    return Err(CreateError::InsecureLiveUrl { param });
                }
            }
        }
        let payment_method_types = self.allowed_rails(&req).await?;
        let now = now_ms();
        // Callers validate against MIN/MAX_EXPIRES_IN; the CLI may go lower for testing.
        let expires_in = req.expires_in_secs.clamp(1, MAX_EXPIRES_IN);
        self.store
            .insert_session(
                &NewSession {
                    merchant_id: req.merchant_id,
                    mode: req.mode,
                    amount: req.amount,
                    reference: req.reference,
                    description: req.description,
                    success_url,
                    cancel_url,
                    customer_phone: req.customer_phone,
                    customer_email: req.customer_email,
                    metadata: req.metadata,
                    expires_at: now + expires_in * 1000,
                    payment_method_types,
                    travel: req.travel,
                },
                now,
            )
            .await
            .map_err(CreateError::from)
    }
}

/// A redirect URL with `{CHECKOUT_SESSION_ID}` filled in, wherever it stands: URLs are
/// stored normalised, which percent-encodes the braces in a path (`%7B…%7D`) but not in
/// a query.
fn with_session_id(url: &str, session: &SessionRecord) -> String {
    url.replace("{CHECKOUT_SESSION_ID}", session.id.as_str())
        .replace("%7BCHECKOUT_SESSION_ID%7D", session.id.as_str())
}

/// `success_url` with `{CHECKOUT_SESSION_ID}` filled in.
pub fn success_url(session: &SessionRecord) -> String {
    with_session_id(&session.success_url, session)
}

/// `cancel_url` with `{CHECKOUT_SESSION_ID}` filled in.
pub fn cancel_url(session: &SessionRecord) -> String {
    with_session_id(&session.cancel_url, session)
}

/// The payment's live state from the session and its latest attempt. A prompt that
/// can still be answered keeps the page waiting even past the session's expiry, and an
/// attempt whose outcome is unknown is never shown as "nothing was charged".
pub fn live_state(session: &SessionRecord, latest: Option<&AttemptRecord>, now: i64) -> LiveState {
    if session.payment_status == PaymentStatus::Paid {
        let paid = latest.filter(|a| a.status == AttemptStatus::Succeeded);
        return LiveState::Paid {
            rail: paid.map(|a| a.rail),
            receipt: paid.and_then(shown_receipt),
        };
    }
    let masked = |a: &AttemptRecord| a.payer.as_deref().map(mask).unwrap_or_default();
    match latest {
        Some(a) if a.status == AttemptStatus::Pending => {
            return LiveState::Waiting {
                rail: a.rail,
                payer_masked: masked(a),
                seconds_left: (a.rail.prompt_secs() - (now - a.created_at) / 1000).max(0),
            };
        }
        Some(a) if a.status == AttemptStatus::Unknown => {
            return LiveState::Unconfirmed {
                rail: a.rail,
                payer_masked: masked(a),
            };
        }
        _ => {}
    }
    if session.status == SessionStatus::Expired || session.expires_at <= now {
        return LiveState::Expired;
    }
    match latest {
        // A part was paid: the form again, for the rest (no failure).
        Some(a) if a.status == AttemptStatus::Succeeded => LiveState::Idle {
            failure: None,
            rail: Some(a.rail),
        },
        Some(a) => LiveState::Idle {
            failure: a.failure_code.clone().or_else(|| Some("failed".into())),
            rail: Some(a.rail),
        },
        None => LiveState::Idle {
            failure: None,
            rail: None,
        },
    }
}

/// The numbers the page may prefill, best first: the last one tried, then the
/// merchant's `customer.phone`.
pub fn prefill_candidates(session: &SessionRecord, latest: Option<&AttemptRecord>) -> Vec<String> {
    latest
        .and_then(|a| a.payer.clone())
        .into_iter()
        .chain(session.customer_phone.clone())
        .collect()
}

/// The number a posted phone field means: typed digits as they are, or, for the masked
/// prefill (`0712•••678`), the stored number it masks.
pub fn resolve_phone(input: &str, candidates: &[String]) -> Option<String> {
    let input = input.trim();
    if !input.contains('•') {
        return Some(input.to_owned());
    }
    candidates
        .iter()
        .find(|c| mask(&local_form(c)) == input)
        .cloned()
}

/// The support contacts the page shows, if the merchant gave any.
fn support_view(p: &crate::store::MerchantProfile) -> Option<app::model::SupportView> {
    (p.support_phone.is_some() || p.support_email.is_some() || p.support_whatsapp.is_some()).then(
        || app::model::SupportView {
            phone: p.support_phone.clone(),
            email: p.support_email.clone(),
            whatsapp: p.support_whatsapp.clone(),
        },
    )
}

/// The trip as the page lists it, in `locale`.
fn trip_view(travel: &crate::domain::travel::Travel, locale: Locale) -> app::model::TripView {
    let items = travel
        .line_items
        .iter()
        .map(|item| {
            let route = match (&item.from, &item.to) {
                (Some(from), Some(to)) => Some(format!("{from} → {to}")),
                (Some(from), None) => Some(format!("{from} →")),
                (None, Some(to)) => Some(format!("→ {to}")),
                (None, None) => None,
            };
            let date = item
                .date
                .as_deref()
                .and_then(crate::domain::travel::parse_date)
                .map(|(y, m, d)| crate::time::date_label(y, m, d, locale));
            let detail: Vec<String> = route.into_iter().chain(date).collect();
            app::model::TripItemView {
                description: item.description.clone(),
                detail: (!detail.is_empty()).then(|| detail.join(" · ")),
            }
        })
        .collect();
    let travelers = travel.travelers.as_ref().map(|t| {
        let count = if t.count == 1 {
            locale.travelers_one().to_owned()
        } else {
            locale.travelers_many(&t.count.to_string())
        };
        match &t.lead_name {
            Some(name) => format!("{count} · {name}"),
            None => count,
        }
    });
    app::model::TripView { items, travelers }
}

/// "Refunded to the payer" when all the payment went back, "KES 500 refunded to the
/// payer" for part of it, in `locale`.
fn refunded_label(
    locale: Locale,
    refunded: i64,
    paid_by: Option<&AttemptRecord>,
) -> Option<String> {
    if refunded <= 0 {
        return None;
    }
    let attempt = paid_by?;
    Some(if refunded >= attempt.amount.minor() {
        locale.refunded_all().to_owned()
    } else {
        locale.refunded_part(&crate::domain::money::format_amount(
            refunded,
            attempt.amount.currency(),
        ))
    })
}

/// What is left to pay on `session` (its price once nothing is).
pub fn to_pay(session: &SessionRecord) -> Money {
    Money::new(session.remaining_minor(), session.amount.currency()).unwrap_or(session.amount)
}

/// Whether a rail can take what is left of `session` in its own currency: in one
/// payment, or in parts when it limits what one payment may be.
fn payable(caps: &crate::connectors::Capabilities, session: &SessionRecord) -> bool {
    let rest = to_pay(session);
    caps.accepts(rest) || (caps.takes(rest) && caps.most(rest.currency()).is_some())
}

/// What a shopper sees, decided from the record and the clock: a session past its
/// expiry reads as expired even before the sweeper has marked it.
pub fn checkout_view(
    session: &SessionRecord,
    merchant_name: String,
    latest: Option<&AttemptRecord>,
    methods: Vec<RailId>,
    now: i64,
    locale: Locale,
) -> CheckoutView {
    let live = live_state(session, latest, now);
    let state = if session.payment_status == PaymentStatus::Paid {
        CheckoutState::Paid
    } else if matches!(live, LiveState::Waiting { .. }) {
        // The PIN can still be typed: the page waits, whatever the clock says.
        CheckoutState::Open
    } else if session.status == SessionStatus::Expired || session.expires_at <= now {
        CheckoutState::Expired
    } else {
        CheckoutState::Open
    };
    CheckoutView {
        id: session.id.to_string(),
        merchant_name,
        description: session.description.clone(),
        reference: session.reference.clone(),
        amount_minor: session.amount.minor(),
        currency: session.amount.currency(),
        state,
        expires_at_ms: session.expires_at,
        seconds_left: ((session.expires_at - now) / 1000).max(0),
        expires_at_label: eat_label(session.expires_at, locale),
        cancel_url: cancel_url(session),
        success_url: success_url(session),
        live,
        methods,
        quotes: Vec::new(),
        card: None,
        paypal: None,
        support: None,
        brand_color: None,
        logo_url: None,
        refunded: None,
        // Masked: the page (and the server function's answer) never carries a full
        // number; a masked value posted back stands for the number it masks.
        phone: prefill_candidates(session, latest)
            .first()
            .map(|p| mask(&local_form(p)))
            .unwrap_or_default(),
        form_token: String::new(),
        livemode: session.mode == Mode::Live,
        embed_origin: None,
        trip: session.travel.as_ref().map(|t| trip_view(t, locale)),
        rescue: None,
        parts: None,
        overpaid: None,
        paybill: None,
        share_url: String::new(),
        locale,
    }
}

/// The parts view of `session` (`None` while nothing came and one payment on the first
/// offered rail, limited to `most`, can take the price).
pub fn parts_view(
    session: &SessionRecord,
    state: CheckoutState,
    rail: Option<(RailId, Option<i64>)>,
    merchant: &str,
    locale: Locale,
) -> Option<app::model::PartsView> {
    let currency = session.amount.currency();
    let money = |minor: i64| {
        Money::new(minor, currency)
            .map(|m| m.to_string())
            .unwrap_or_default()
    };
    let received = session.received_minor;
    let remaining = session.remaining_minor();
    let progress = match state {
        CheckoutState::Paid => return None,
        CheckoutState::Expired if received > 0 => {
            Some(locale.parts_expired(&money(received), merchant))
        }
        CheckoutState::Expired => return None,
        CheckoutState::Open if received > 0 => {
            Some(locale.parts_progress(&money(received), &money(remaining)))
        }
        CheckoutState::Open => None,
    };
    let field = match rail {
        Some((rail, Some(most))) if state == CheckoutState::Open && remaining > most => {
            let unit = 10i64.pow(currency.exponent());
            Some(app::model::PartField {
                note: locale.parts_note(rail.label(), &money(most)),
                label: locale.part_label(currency.code()),
                value: (most / unit).to_string(),
            })
        }
        _ => None,
    };
    (progress.is_some() || field.is_some()).then(|| app::model::PartsView {
        progress,
        remaining_label: money(remaining),
        field,
    })
}

/// What a paid attempt shows as its receipt: the operator's, or for a card its brand
/// and last four digits (`Visa ···· 4242`), nothing more.
fn shown_receipt(a: &AttemptRecord) -> Option<String> {
    match a.rail {
        RailId::Card => a
            .rail_data
            .as_ref()
            .and_then(|d| d["card"]["label"].as_str().map(str::to_owned)),
        _ => a.operator_receipt.clone(),
    }
}

/// The payer as a receipt shows it: a mobile-money number, masked.
fn shown_payer(a: &AttemptRecord) -> Option<String> {
    a.payer
        .as_deref()
        .filter(|_| a.rail.is_mobile_money())
        .map(mask)
}

/// The page's language: the request's, else the merchant's default, else English.
fn page_locale(wanted: Option<Locale>, profile: &crate::store::MerchantProfile) -> Locale {
    wanted
        .or_else(|| Locale::parse(&profile.default_locale))
        .unwrap_or(Locale::En)
}

impl CheckoutService {
    /// The Pay Bill instructions, while the session can be paid with M-PESA from a
    /// connector whose menu payments reach us (its C2B URLs registered); open at once
    /// when the last prompt could not reach the phone. The account number is given out
    /// here, on the first page that offers it.
    async fn paybill_view(
        &self,
        session: &SessionRecord,
        view: &CheckoutView,
        latest: Option<&AttemptRecord>,
    ) -> Result<Option<app::model::PaybillView>, StoreError> {
        if view.state != CheckoutState::Open || !view.methods.contains(&RailId::Mpesa) {
            return Ok(None);
        }
        let Some(connector) =
            self.rails
                .for_merchant(&session.merchant_id, RailId::Mpesa, session.mode)
        else {
            return Ok(None);
        };
        let Some(business) = connector.paybill().map(str::to_owned) else {
            return Ok(None);
        };
        // In the wallet's own currency only (a quoted price is paid by prompt).
        if connector
            .capabilities()
            .country(session.amount.currency())
            .is_none()
        {
            return Ok(None);
        }
        let Some(account) = self.store.pay_code(&session.id).await? else {
            return Ok(None);
        };
        let unreachable = latest.is_some_and(|a| {
            a.rail == RailId::Mpesa
                && matches!(
                    a.failure_code.as_deref(),
                    Some("push_not_delivered" | "no_response")
                )
        });
        Ok(Some(app::model::PaybillView {
            business,
            account,
            amount_label: to_pay(session).to_string(),
            open: unreachable,
        }))
    }

    /// What went back to the payer of `paying`, in words, once any did.
    async fn refunded(
        &self,
        paying: &AttemptRecord,
        locale: Locale,
    ) -> Result<Option<String>, StoreError> {
        let refunded: i64 = self
            .store
            .refunds_of(&paying.id)
            .await?
            .iter()
            .filter(|r| r.status == crate::store::RefundStatus::Succeeded)
            .map(|r| r.amount.minor())
            .sum();
        Ok(refunded_label(locale, refunded, Some(paying)))
    }

    /// The rescue form, while the session's last payment is not confirmed on a rail that
    /// can look payments up by receipt (with the newest check of the last ten minutes).
    async fn rescue_view(
        &self,
        session: &SessionRecord,
        latest: Option<&AttemptRecord>,
        now: i64,
    ) -> Result<Option<app::model::RescueView>, StoreError> {
        let Some(attempt) = latest.filter(|a| {
            matches!(a.status, AttemptStatus::Pending | AttemptStatus::Unknown)
                && session.payment_status == PaymentStatus::Unpaid
                && a.payer.is_some()
                && now - a.created_at < crate::payments::rescue::RESCUE_WITHIN_MS
        }) else {
            return Ok(None);
        };
        let looks_up = self
            .rails
            .for_merchant(&session.merchant_id, attempt.rail, session.mode)
            .is_some_and(|c| c.looks_up_receipts());
        if !looks_up {
            return Ok(None);
        }
        let status = self
            .store
            .latest_rescue(&session.id)
            .await?
            .filter(|r| r.attempt_id == attempt.id && now - r.created_at < 600_000)
            .map(|r| {
                // No answer within two minutes: said as such (the shopper may ask again).
                if r.status == "checking" && now - r.created_at > 120_000 {
                    "unanswered".to_owned()
                } else {
                    r.status
                }
            })
            .filter(|s| s != "confirmed");
        Ok(Some(app::model::RescueView {
            rail: attempt.rail,
            status,
        }))
    }

    /// The receipt of a paid session (see [`PageService::receipt_view`]), in `wanted`,
    /// else the merchant's default language.
    pub async fn receipt(
        &self,
        id: &SessionId,
        wanted: Option<Locale>,
    ) -> Result<Option<app::model::ReceiptView>, StoreError> {
        let Some((session, merchant_name)) = self.store.session_for_page(id).await? else {
            return Ok(None);
        };
        if session.payment_status != PaymentStatus::Paid {
            return Ok(None);
        }
        let Some(paying) = self.store.paying_attempt(&session.id).await? else {
            return Ok(None);
        };
        let profile = self.store.merchant_profile(&session.merchant_id).await?;
        let locale = page_locale(wanted, &profile);
        let refunded = self.refunded(&paying, locale).await?;
        // Paid in parts: every payment that counted (not a duplicate to refund).
        let counted: Vec<_> = self
            .store
            .session_attempts(&session.id)
            .await?
            .into_iter()
            .filter(|a| a.status == AttemptStatus::Succeeded && !a.duplicate)
            .collect();
        let parts = if counted.len() > 1 {
            counted
                .iter()
                .map(|a| app::model::ReceiptPartView {
                    amount_label: a.amount.to_string(),
                    rail_label: a.rail.label().to_owned(),
                    receipt: shown_receipt(a),
                    payer: shown_payer(a),
                    paid_at_label: eat_label(a.finalized_at.unwrap_or(a.updated_at), locale),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Some(app::model::ReceiptView {
            id: session.id.to_string(),
            merchant_name,
            logo_url: profile.logo.as_ref().map(|d| format!("/logos/{d}")),
            brand_color: profile.brand_color.clone(),
            description: session.description.clone(),
            reference: session.reference.clone(),
            trip: session.travel.as_ref().map(|t| trip_view(t, locale)),
            amount_label: session.amount.to_string(),
            charged_label: (paying.amount.currency() != session.amount.currency())
                .then(|| paying.amount.to_string()),
            rail_label: paying.rail.label().to_owned(),
            receipt: shown_receipt(&paying),
            payer: shown_payer(&paying),
            paid_at_label: eat_label(paying.finalized_at.unwrap_or(paying.updated_at), locale),
            refunded,
            parts,
            support: support_view(&profile),
            livemode: session.mode == Mode::Live,
            locale,
        }))
    }
}

impl PageService for CheckoutService {
    fn receipt_view<'a>(
        &'a self,
        session_id: &'a str,
        wanted: Option<Locale>,
    ) -> BoxFuture<'a, Result<Option<app::model::ReceiptView>, ServiceUnavailable>> {
        Box::pin(async move {
            let Some(id) = SessionId::parse(session_id) else {
                return Ok(None);
            };
            self.receipt(&id, wanted).await.map_err(|e| {
                tracing::error!(error = %e, "loading a receipt failed");
                ServiceUnavailable
            })
        })
    }

    fn checkout_view<'a>(
        &'a self,
        session_id: &'a str,
        embed: Option<&'a str>,
        wanted: Option<Locale>,
    ) -> BoxFuture<'a, Result<Option<CheckoutView>, ServiceUnavailable>> {
        Box::pin(async move {
            // Malformed ids never reach the database.
            let Some(id) = SessionId::parse(session_id) else {
                return Ok(None);
            };
            let loaded = async {
                let Some((session, name)) = self.store.session_for_page(&id).await? else {
                    return Ok(None);
                };
                let latest = self.store.latest_attempt(&id).await?;
                let now = now_ms();
                let open = session.status == SessionStatus::Open
                    && session.payment_status == PaymentStatus::Unpaid;
                // Quotes only for a page that can still be paid.
                let offers = if open {
                    self.offers(&session, now).await?
                } else {
                    self.methods(&session)
                        .into_iter()
                        .map(|r| (r, None))
                        .collect()
                };
                // Mobile money in the picker; the card on its own form.
                let methods = offers
                    .iter()
                    .map(|(rail, _)| *rail)
                    .filter(|r| r.is_mobile_money())
                    .collect();
                let profile = self.store.merchant_profile(&session.merchant_id).await?;
                let locale = page_locale(wanted, &profile);
                let mut view = checkout_view(&session, name, latest.as_ref(), methods, now, locale);
                view.support = support_view(&profile);
                view.brand_color = profile.brand_color.clone();
                view.logo_url = profile.logo.as_ref().map(|d| format!("/logos/{d}"));
                if session.payment_status == PaymentStatus::Paid
                    && let Some(paying) = self.store.paying_attempt(&session.id).await?
                {
                    // The payment that paid the session (not a duplicate the merchant
                    // refunded, which leaves this one standing).
                    view.refunded = self.refunded(&paying, locale).await?;
                }
                view.quotes = offers
                    .iter()
                    .filter_map(|(rail, quote)| {
                        let quote = quote.as_ref()?;
                        Some(QuoteView {
                            rail: *rail,
                            amount_label: quote.target.to_string(),
                            label: quote.label(locale),
                            token: self.fx.as_ref()?.token(quote, &session, *rail),
                        })
                    })
                    .collect();
                let first = view.methods.first().map(|&rail| {
                    let most = self
                        .rails
                        .describing(&session.merchant_id, rail, session.mode)
                        .and_then(|c| c.capabilities().most(session.amount.currency()));
                    (rail, most)
                });
                view.parts = parts_view(&session, view.state, first, &view.merchant_name, locale);
                view.overpaid = latest
                    .as_ref()
                    .and_then(|a| a.overpaid_minor)
                    .filter(|_| session.payment_status == PaymentStatus::Paid)
                    .and_then(|o| Money::new(o, session.amount.currency()).ok())
                    .map(|o| locale.overpaid(&o.to_string(), &view.merchant_name));
                view.paybill = self.paybill_view(&session, &view, latest.as_ref()).await?;
                view.form_token = self.form_token(&id);
                view.share_url = self.page_url(&id);
                view.rescue = self.rescue_view(&session, latest.as_ref(), now).await?;
                view.card = offers
                    .iter()
                    .find(|(rail, _)| *rail == RailId::Card)
                    .and_then(|(_, quote)| {
                        let card = self.rails.for_merchant(
                            &session.merchant_id,
                            RailId::Card,
                            session.mode,
                        )?;
                        let mpgs = card.card_processor()?;
                        Some(app::model::CardView {
                            amount_label: quote
                                .as_ref()
                                .map_or(to_pay(&session), |q| q.target)
                                .to_string(),
                            session_js: mpgs.session_js_url(),
                            script_integrity: crate::http::card_js_integrity(),
                        })
                    });
                view.paypal =
                    offers
                        .iter()
                        .find(|(rail, _)| *rail == RailId::Paypal)
                        .map(|(_, quote)| app::model::PaypalView {
                            amount_label: quote
                                .as_ref()
                                .map_or(to_pay(&session), |q| q.target)
                                .to_string(),
                        });
                // Embedded only for an origin the merchant allows; any other claim is
                // ignored (and the browser refuses the frame anyway, by CSP).
                if let Some(origin) = embed.and_then(crate::embed::parse_origin) {
                    let allowed = self
                        .store
                        .embed_origins(&session.merchant_id, session.mode)
                        .await?;
                    if allowed.contains(&origin) {
                        view.embed_origin = Some(origin);
                        // Framed: the processor's and PayPal's pages refuse frames;
                        // cards and PayPal are paid on the hosted page itself.
                        view.card = None;
                        view.paypal = None;
                    }
                }
                Ok::<_, StoreError>(Some(view))
            };
            match loaded.await {
                Ok(view) => Ok(view),
                Err(e) => {
                    tracing::error!(error = %e, "loading checkout page failed");
                    Err(ServiceUnavailable)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Currency;

    #[test]
    fn both_redirects_fill_the_session_id() {
        let mut s = session(SessionStatus::Open, false, i64::MAX);
        // As stored: normalised by `parse_redirect_url`.
        s.success_url = parse_redirect_url(
            "success_url",
            "https://m.example/ok?cs={CHECKOUT_SESSION_ID}",
        )
        .unwrap();
        s.cancel_url = parse_redirect_url(
            "cancel_url",
            "https://m.example/book/{CHECKOUT_SESSION_ID}/cancel",
        )
        .unwrap();
        let view = checkout_view(&s, "M".into(), None, vec![], 0, Locale::En);
        assert_eq!(
            view.success_url,
            format!("https://m.example/ok?cs={}", s.id)
        );
        assert_eq!(
            view.cancel_url,
            format!("https://m.example/book/{}/cancel", s.id)
        );
    }

    fn session(status: SessionStatus, paid: bool, expires_at: i64) -> SessionRecord {
        SessionRecord {
            id: SessionId::generate(),
            merchant_id: MerchantId::generate(),
            mode: Mode::Test,
            amount: Money::new(150_000, Currency::Kes).unwrap(),
            reference: "MARA-1".into(),
            description: "Safari".into(),
            status,
            payment_status: if paid {
                PaymentStatus::Paid
            } else {
                PaymentStatus::Unpaid
            },
            success_url: "https://m.example/ok".into(),
            cancel_url: "https://m.example/cancel".into(),
            customer_phone: None,
            customer_email: None,
            metadata: BTreeMap::new(),
            expires_at,
            created_at: 0,
            updated_at: 0,
            payment_method_types: None,
            travel: None,
            received_minor: 0,
        }
    }

    #[test]
    fn only_http_redirects_are_accepted() {
        assert!(parse_redirect_url("success_url", "https://lodge.example/paid?b=1").is_ok());
        assert!(parse_redirect_url("success_url", "http://127.0.0.1:8080/ok").is_ok());
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "/relative",
            "https://",
            "ftp://x.example/",
        ] {
            assert!(parse_redirect_url("cancel_url", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn state_follows_payment_then_clock() {
        let now = 1_000_000;
        let open = checkout_view(
            &session(SessionStatus::Open, false, now + 90_500),
            "M".into(),
            None,
            vec![],
            now,
            Locale::En,
        );
        assert_eq!(open.state, CheckoutState::Open);
        assert_eq!(open.seconds_left, 90);
        let late = checkout_view(
            &session(SessionStatus::Open, false, now),
            "M".into(),
            None,
            vec![],
            now,
            Locale::En,
        );
        assert_eq!(
            late.state,
            CheckoutState::Expired,
            "past expiry reads as expired"
        );
        assert_eq!(late.seconds_left, 0);
        let paid = checkout_view(
            &session(SessionStatus::Complete, true, now - 1),
            "M".into(),
            None,
            vec![],
            now,
            Locale::En,
        );
        assert_eq!(paid.state, CheckoutState::Paid, "paid wins over expiry");
        assert_eq!(open.amount_label(), "KES 1,500");
    }
}
