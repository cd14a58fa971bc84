//! The hosted checkout page, `/pay/{id}`.

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::{Language, NotFound, PageTitle, Unavailable, countdown::Countdown, live::LiveStatus};
use crate::{
    i18n::{Locale, Requested},
    model::{CheckoutState, CheckoutView, LiveState, failure_message, retry_hint},
};

/// Loads the checkout page's data. A public endpoint like every server function: it
/// only ever returns what the page itself shows, for an id the caller already has.
#[server]
pub async fn load_checkout(
    id: String,
    embed: Option<String>,
) -> Result<Option<CheckoutView>, ServerFnError> {
    use crate::service::SharedPageService;
    let service = use_context::<SharedPageService>()
        .ok_or_else(|| ServerFnError::new("page service not in context"))?;
    // The request's language (put in context by the server for each page).
    let wanted = use_context::<Requested>().unwrap_or_default().locale;
    service
        .checkout_view(&id, embed.as_deref(), wanted)
        .await
        .map_err(|_| ServerFnError::new("checkout temporarily unavailable"))
}

/// `/pay/{id}`: the session's summary, or the not-found page.
#[component]
pub fn CheckoutPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    // Only codes the page knows; anything else in the URL is ignored.
    let error = query.read_untracked().get("error").filter(|e| {
        [
            "invalid_phone",
            "confirm_no_sms",
            "phone_limit",
            "session_limit",
            "ip_limit",
            "form_expired",
            "not_payable",
            "quote_changed",
            "card_unavailable",
            "rail_unavailable",
            "operator_down",
            "unavailable",
        ]
        .contains(&e.as_str())
    });
    // Seconds until a limited shopper may try again (digits only, at most a day).
    let retry_after = query
        .read_untracked()
        .get("retry_after")
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|s| *s <= 86_400);
    // A receipt check's problem: shown by the check's own form, not the pay form's.
    let rescue_error = query.read_untracked().get("error").filter(|e| {
        [
            "rescue_code",
            "rescue_limit",
            "rescue_none",
            "rescue_wait",
            "rescue_unavailable",
        ]
        .contains(&e.as_str())
    });
    let embed = query.read_untracked().get("embed");
    let checkout = Resource::new_blocking(
        move || (params.read().get("id").unwrap_or_default(), embed.clone()),
        |(id, embed)| load_checkout(id, embed),
    );
    view! {
        <Suspense>
            {move || {
                let error = error.clone();
                let rescue_error = rescue_error.clone();
                Suspend::new(async move {
                match checkout.await {
                    Ok(Some(view)) => {
                        view! { <Checkout view error=error.clone() retry_after rescue_error /> }.into_any()
                    }
                    Ok(None) => view! { <NotFound /> }.into_any(),
                    Err(_) => view! { <Unavailable /> }.into_any(),
                }
            })
            }}
        </Suspense>
    }
}

#[component]
fn Checkout(
    view: CheckoutView,
    error: Option<String>,
    retry_after: Option<u32>,
    rescue_error: Option<String>,
) -> impl IntoView {
    let l = view.locale;
    let chosen = use_context::<Requested>().unwrap_or_default().chosen;
    let amount = view.amount_label();
    let title = l.page_title(&amount, &view.merchant_name);
    let state = match view.state {
        CheckoutState::Open => "open",
        CheckoutState::Paid => "paid",
        CheckoutState::Expired => "expired",
    };
    // Framed: the merchant's page moves on (onSuccess), not the frame.
    let embedded = view.embed_origin.is_some();
    let next_url = if embedded {
        String::new()
    } else {
        view.success_url.clone()
    };
    let methods = view
        .methods
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",");
    // Rails charging another currency: their amounts for the picker (`mpesa=KES 45,150`,
    // `|`-separated), their signed quotes for the form (`mpesa:TOKEN`, `,`-separated).
    let prices = view
        .quotes
        .iter()
        .map(|q| format!("{}={}", q.rail, q.amount_label))
        .collect::<Vec<_>>()
        .join("|");
    let quote_tokens = view
        .quotes
        .iter()
        .map(|q| format!("{}:{}", q.rail, q.token))
        .collect::<Vec<_>>()
        .join(",");
    // Each distinct quote once: several rails in one currency share it.
    let mut quote_lines: Vec<String> = Vec::new();
    for q in &view.quotes {
        if !quote_lines.contains(&q.label) {
            quote_lines.push(q.label.clone());
        }
    }
    let quotes = (view.state == CheckoutState::Open && !quote_lines.is_empty()).then(|| {
        view! {
            <ul class="quotes" aria-label=l.quotes_label()>
                {quote_lines.into_iter().map(|l| view! { <li class="quote">{l}</li> }).collect::<Vec<_>>()}
            </ul>
        }
    });
    // A form post's problem, in words: for the rail of the last attempt, else the form's.
    let error_words = error.as_ref().map(|code| {
        let rail = match &view.live {
            LiveState::Idle { rail, .. } | LiveState::Paid { rail, .. } => *rail,
            LiveState::Waiting { rail, .. } | LiveState::Unconfirmed { rail, .. } => Some(*rail),
            LiveState::Expired => None,
        }
        .or(view.methods.first().copied())
        .unwrap_or(crate::rail::RailId::Mpesa);
        // Numbers as where the rail's charged currency is spent.
        let currency = view
            .quotes
            .iter()
            .find(|q| q.rail == rail)
            .and_then(|q| q.amount_label.split(' ').next())
            .unwrap_or(view.currency.code())
            .to_owned();
        let words = failure_message(l, code, rail, &currency);
        match retry_after {
            Some(secs) => format!("{words} {}", retry_hint(l, secs)),
            None => words,
        }
    });
    // Paying in parts: the button says "Pay now" beside the part field, else names
    // what is left.
    let part_field = view
        .parts
        .as_ref()
        .and_then(|p| p.field.clone())
        .filter(|_| view.state == CheckoutState::Open);
    let to_pay = view
        .parts
        .as_ref()
        .map_or_else(|| amount.clone(), |p| p.remaining_label.clone());
    let live = view! {
        <LiveStatus
            session_id=view.id.clone()
            amount_label=to_pay
            parts=part_field.is_some()
            merchant_name=view.merchant_name.clone()
            success_url=next_url
            phone=view.phone.clone()
            form_token=view.form_token.clone()
            initial=view.live.with_words(l, view.currency.code())
            error=error
            error_words=error_words
            methods=methods
            prices=prices
            quotes=quote_tokens
            currency=view.currency.code().to_string()
            words=l.live_words().to_owned()
            lang=l.code().to_owned()
            lang_chosen=chosen
        />
    };
    // Without JavaScript: refresh while a prompt is waiting; go on to the merchant once
    // paid. (Outside the island: with scripting on, <noscript> is raw text and must not
    // be hydrated.)
    let no_js = match &view.live {
        LiveState::Waiting { .. } => Some(
            view! { <noscript><meta http-equiv="refresh" content="3" /></noscript> }.into_any(),
        ),
        LiveState::Paid { .. } if !embedded => {
            let content = format!(
                "{};url={}",
                super::live::REDIRECT_AFTER_SECS + 2,
                view.success_url
            );
            Some(
                view! { <noscript><meta http-equiv="refresh" content=content /></noscript> }
                    .into_any(),
            )
        }
        _ => None,
    };
    let unconfirmed = match &view.live {
        LiveState::Unconfirmed { rail, .. } => Some(*rail),
        _ => None,
    };
    let status = match view.state {
        // Past expiry but a prompt is still waiting: no countdown at zero beside it.
        CheckoutState::Open if view.seconds_left == 0 => ().into_any(),
        CheckoutState::Open => view! {
            <Countdown
                seconds_left=view.seconds_left
                expires_at_label=view.expires_at_label.clone()
                words=l.countdown_words().to_owned()
            />
        }
        .into_any(),
        CheckoutState::Paid => ().into_any(),
        // The last payment may have gone through: never say "nothing was charged".
        CheckoutState::Expired if unconfirmed.is_some() => {
            let rail = unconfirmed.unwrap_or(crate::rail::RailId::Mpesa);
            view! {
                <p class="notice notice-expired" data-live="unconfirmed" role="status">
                    {l.expired_unconfirmed(&view.expires_at_label, rail.label(), &view.merchant_name)}
                </p>
            }
            .into_any()
        }
        CheckoutState::Expired => view! {
            <p class="notice notice-expired" role="status">
                {l.expired_at(&view.expires_at_label, &view.merchant_name)}
            </p>
        }
        .into_any(),
    };
    let live = (view.state != CheckoutState::Expired).then_some(live);
    // The card option: its own form, outside the island. Without JavaScript it posts as
    // it is and the processor's own page takes the card; with it, Malipo's card script
    // (integrity-checked) mounts the processor's frames on the shopper's first tap.
    let card_quote = view
        .quotes
        .iter()
        .find(|q| q.rail == crate::rail::RailId::Card)
        .map(|q| format!("card:{}", q.token));
    // Shown unless a prompt is on the shopper's phone: while a card or PayPal payment
    // waits, its button goes back to it, and another one leaves it.
    let offered_too = view.state == CheckoutState::Open
        && !matches!(view.live, LiveState::Waiting { rail, .. } if rail.is_mobile_money());
    let card = view
        .card
        .clone()
        .filter(|_| offered_too)
        .map(|card| {
            let pay_label = l.card_pay(&card.amount_label);
            view! {
                <section class="card-pay" aria-label=l.card_section()>
                    <form
                        class="card-form"
                        method="post"
                        action=format!("/pay/{}/card", view.id)
                        data-session-js=card.session_js
                        data-unreachable=l.card_unreachable()
                        data-check-details=l.card_check_details()
                        data-not-available=l.card_not_available()
                    >
                        <input type="hidden" name="form_token" value=view.form_token.clone() />
                        {chosen.then(|| view! { <input type="hidden" name="lang" value=l.code() /> })}
                        {card_quote.map(|q| view! { <input type="hidden" name="quotes" value=q /> })}
                        <input type="hidden" name="card_session" value="" />
                        <div class="card-fields" hidden>
                            <div class="card-field" id="card-number" data-label=l.card_number()></div>
                            <div class="card-field" id="card-expiry" data-label=l.card_expiry()></div>
                            <div class="card-field" id="card-security-code" data-label=l.card_security_code()></div>
                        </div>
                        <p class="card-problem status-failed" role="alert" hidden></p>
                        <button class="button pay-card" type="submit" data-pay-label=pay_label.clone()>
                            {l.card_button(&card.amount_label)}
                        </button>
                        <p class="fine">{l.card_fine()}</p>
                    </form>
                    <script src="/card.js" integrity=card.script_integrity defer></script>
                </section>
            }
        });
    // PayPal: a plain form; our 303 sends the shopper to PayPal's approval page.
    let paypal_quote = view
        .quotes
        .iter()
        .find(|q| q.rail == crate::rail::RailId::Paypal)
        .map(|q| format!("paypal:{}", q.token));
    let paypal = view.paypal.clone().filter(|_| offered_too).map(|paypal| {
        view! {
            <section class="paypal-pay" aria-label=l.paypal_section()>
                <form method="post" action=format!("/pay/{}/paypal", view.id)>
                    <input type="hidden" name="form_token" value=view.form_token.clone() />
                    {chosen.then(|| view! { <input type="hidden" name="lang" value=l.code() /> })}
                    {paypal_quote.map(|q| view! { <input type="hidden" name="quotes" value=q /> })}
                    <button class="button pay-paypal" type="submit">
                        {l.paypal_button(&paypal.amount_label)}
                    </button>
                    <p class="fine">{l.paypal_fine()}</p>
                </form>
            </section>
        }
    });
    // "Paid already?": the receipt code, checked with the operator (no script needed).
    let rescue = view
        .rescue
        .clone()
        .filter(|_| view.state != CheckoutState::Paid)
        .map(|r| {
            let wallet = r.rail.label();
            let message = match (rescue_error.as_deref(), r.status.as_deref()) {
                (Some("rescue_code"), _) => Some(("rescue_code", l.rescue_code(wallet))),
                (Some("rescue_limit"), _) => Some(("rescue_limit", l.rescue_limit().to_owned())),
                (Some("rescue_none"), _) => Some(("rescue_none", l.rescue_none().to_owned())),
                (Some("rescue_wait"), _) => Some(("rescue_wait", l.rescue_wait().to_owned())),
                (Some(_), _) => Some(("rescue_unavailable", l.rescue_unavailable(wallet))),
                (None, Some("checking")) => Some(("checking", l.rescue_checking(wallet))),
                (None, Some("refused")) => Some(("refused", l.rescue_refused(wallet))),
                (None, Some("unanswered")) => {
                    Some(("unanswered", l.rescue_unavailable(wallet)))
                }
                _ => None,
            };
            let checking = r.status.as_deref() == Some("checking") && rescue_error.is_none();
            let open = message.is_some();
            let (code, words) = message.unzip();
            let action = match view.embed_origin.as_deref() {
                Some(o) => format!("/pay/{}/rescue?embed={}", view.id, url_escape(o)),
                None => format!("/pay/{}/rescue", view.id),
            };
            view! {
                // Without JavaScript: look again while the operator is asked.
                {checking.then(|| view! { <noscript><meta http-equiv="refresh" content="3" /></noscript> })}
                <section class="rescue" data-rescue=code>
                    <details open=open>
                        <summary>{l.rescue_summary()}</summary>
                        {words.map(|w| view! { <p class="rescue-status" role="status">{w}</p> })}
                        <form method="post" action=action>
                            <input type="hidden" name="form_token" value=view.form_token.clone() />
                            {chosen.then(|| view! { <input type="hidden" name="lang" value=l.code() /> })}
                            <label for="rescue-code">{l.rescue_label(wallet)}</label>
                            <input id="rescue-code" name="code" type="text" autocomplete="off" maxlength="200" required />
                            <button class="button" type="submit">{l.rescue_button()}</button>
                            <p class="fine">{l.rescue_fine(wallet)}</p>
                        </form>
                    </details>
                </section>
            }
        });
    // Pay Bill from the M-PESA menu: plain HTML, open at once when the last prompt
    // could not reach the phone.
    let paybill = view
        .paybill
        .clone()
        .filter(|_| view.state == CheckoutState::Open)
        .map(|p| {
            view! {
                <section class="paybill" data-paybill="true">
                    <details open=p.open>
                        <summary>{l.paybill_summary()}</summary>
                        <ol>
                            <li>{l.paybill_step_menu()}</li>
                            <li>{l.paybill_business()} " " <strong data-paybill="business">{p.business}</strong></li>
                            <li>{l.paybill_account()} " " <strong data-paybill="account">{p.account}</strong></li>
                            <li>{l.paybill_amount()} " " <strong data-paybill="amount">{p.amount_label}</strong></li>
                            <li>{l.paybill_pin()}</li>
                        </ol>
                    </details>
                </section>
            }
        });
    // "Ask someone to pay": plain links (WhatsApp, SMS) and the address to copy. Not
    // while a prompt waits on this shopper's phone, nor once it is over.
    let share = (view.state == CheckoutState::Open
        && !matches!(view.live, LiveState::Waiting { .. })
        && !view.share_url.is_empty())
    .then(|| {
        let message = url_escape(&l.share_message(&amount, &view.merchant_name, &view.share_url));
        view! {
            <section class="share" data-share="true">
                <details>
                    <summary>{l.share_summary()}</summary>
                    <p class="fine">{l.share_hint()}</p>
                    <p>
                        <a class="button" href=format!("https://wa.me/?text={message}") rel="noopener noreferrer" target="_blank">
                            {l.share_whatsapp()}
                        </a>
                        " "
                        <a class="button" href=format!("sms:?&body={message}")>{l.share_sms()}</a>
                    </p>
                    <label for="share-link">{l.share_link()}</label>
                    <input id="share-link" type="text" readonly value=view.share_url.clone() />
                </details>
            </section>
        }
    });
    let waiting = matches!(view.live, LiveState::Waiting { .. });
    let cancel = (view.state == CheckoutState::Open && !waiting).then(|| {
        view! {
            <a class="cancel" href=view.cancel_url.clone()>
                {l.cancel(&view.merchant_name)}
            </a>
        }
    });
    let refunded = view
        .refunded
        .clone()
        .map(|r| view! { <p class="refunded" data-refunded="true">{r}</p> });
    let progress =
        view.parts.as_ref().and_then(|p| p.progress.clone()).map(
            |p| view! { <p class="parts-progress" data-parts="progress" role="status">{p}</p> },
        );
    let overpaid = view
        .overpaid
        .clone()
        .map(|o| view! { <p class="refunded" data-overpaid="true">{o}</p> });
    // The part field belongs to the pay form (`form=`), outside the island: plain HTML.
    let part_field = part_field.map(|f| {
        view! {
            <section class="parts" data-parts="field">
                <p class="fine">{f.note}</p>
                <label for="part">{f.label}</label>
                <input id="part" name="part" form="pay-form" type="text" inputmode="numeric" autocomplete="off" maxlength="20" required value=f.value />
            </section>
        }
    });
    let support = view
        .support
        .clone()
        .map(|s| support_line(l.support(&view.merchant_name), s));
    let brand = brand_style(view.brand_color.clone());
    let trip = view.trip.clone().map(|t| trip_list(l, t));
    // The switcher: plain links (no script), keeping a framed page framed.
    let embed_param = view
        .embed_origin
        .as_deref()
        .map(|o| format!("&embed={}", url_escape(o)));
    view! {
        <PageTitle text=title />
        <Language locale=l />
        {brand}
        <main class="page checkout" data-page="checkout" data-state=state data-session=view.id.clone()>
            {(!view.livemode).then(|| view! {
                <p class="test-banner" role="note" data-test-mode="true">
                    <strong>{l.test_mode()}</strong>
                    " · " {l.test_mode_note()}
                </p>
            })}
            <header class="merchant">
                {view.logo_url.clone().map(|src| view! { <img class="logo" src=src alt="" height="40" /> })}
                <p class="merchant-name">{view.merchant_name.clone()}</p>
            </header>
            <section class="summary" aria-label=l.summary_label()>
                <p class="description">{view.description.clone()}</p>
                <p class="amount">{amount}</p>
                <p class="reference">{l.reference(&view.reference)}</p>
                {trip}
                {quotes}
                {status}
                {progress}
                {refunded}
                {overpaid}
            </section>
            {no_js}
            {part_field}
            {live}
            {paybill}
            {rescue}
            {card}
            {paypal}
            {share}
            {cancel}
            {view.embed_origin.as_deref().map(|origin| super::embed::bridge(origin, &view.id))}
            {support}
            <footer class="footer">
                <p>{l.footer()}</p>
                <nav class="languages" aria-label=l.languages()>
                    {Locale::ALL
                        .into_iter()
                        .map(|other| {
                            let href = format!(
                                "?lang={}{}",
                                other.code(),
                                embed_param.clone().unwrap_or_default()
                            );
                            let current = (other == l).then_some("true");
                            view! {
                                <a href=href hreflang=other.code() lang=other.code() aria-current=current>
                                    {other.name()}
                                </a>
                                " "
                            }
                        })
                        .collect::<Vec<_>>()}
                </nav>
            </footer>
        </main>
    }
}

/// The merchant's colour, only as a 7-character `#rrggbb` (the CSS variable the
/// stylesheet already uses), in a style block carrying this response's nonce.
pub(super) fn brand_style(color: Option<String>) -> Option<impl IntoView> {
    color
        .filter(|c| {
            c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit())
        })
        .map(|c| {
            let nonce = leptos::nonce::use_nonce();
            view! { <style nonce=nonce>{format!(":root{{--brand:{c}}}")}</style> }
        })
}

/// The trip, compactly: one line per service, then who travels.
pub(super) fn trip_list(l: Locale, t: crate::model::TripView) -> impl IntoView {
    view! {
        <ul class="trip" aria-label=l.trip_label() data-trip="true">
            {t.items.into_iter().map(|item| view! {
                <li>
                    {item.description}
                    {item.detail.map(|d| view! { <span class="fine">" · " {d}</span> })}
                </li>
            }).collect::<Vec<_>>()}
            {t.travelers.map(|who| view! { <li class="travelers">{who}</li> })}
        </ul>
    }
}

/// `s` percent-encoded for a query value.
fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How a stuck shopper reaches the merchant: links that open the phone's dialler, mail
/// app or WhatsApp.
pub(super) fn support_line(intro: String, s: crate::model::SupportView) -> impl IntoView {
    let phone = s.phone.map(|p| {
        let href = format!("tel:{p}");
        view! { " " <a href=href>{p}</a> }
    });
    let whatsapp = s.whatsapp.map(|w| {
        let href = format!("https://wa.me/{w}");
        view! { " " <a href=href>"WhatsApp"</a> }
    });
    let email = s.email.map(|e| {
        let href = format!("mailto:{e}");
        view! { " " <a href=href>{e}</a> }
    });
    view! {
        <p class="support fine" data-support="true">
            {intro}
            {phone}
            {whatsapp}
            {email}
        </p>
    }
}
