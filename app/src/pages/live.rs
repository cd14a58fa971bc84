//! The live part of the checkout page: the pay form and the payment's status, worded
//! for the rail (its name and number format; the failure words are per failure code).
//!
//! Without JavaScript it is plain HTML: the form posts to `/pay/{id}/{rail}`, and while a
//! prompt is waiting the (server-only) page adds a `<noscript>` refresh. With JavaScript
//! this island follows `/pay/{id}/events` (server-sent events) and turns green the moment
//! the money is in, then sends the shopper on to the merchant.

use leptos::prelude::*;
#[cfg(feature = "hydrate")]
use std::time::Duration;

use super::countdown::clock_label;
use crate::{
    i18n::{LiveWords, around},
    model::{LiveState, split_words},
    rail::RailId,
};

/// Stands in a text for a value the page wraps in markup (see [`around`]).
const MARK: char = '\u{1}';
/// [`MARK`] as a value to fill in.
const MARK_STR: &str = "\u{1}";

/// Seconds the page waits on "Paid" before sending the shopper to the merchant.
pub const REDIRECT_AFTER_SECS: u64 = 3;

#[island]
pub fn LiveStatus(
    session_id: String,
    amount_label: String,
    merchant_name: String,
    success_url: String,
    phone: String,
    /// The pay form's hidden token (proves the post came from this page).
    form_token: String,
    /// The state when the page was rendered, in its wire form ([`LiveState::encode`]):
    /// island props are JSON-decoded in the browser, and a string keeps serde's enum
    /// machinery out of the WASM bundle.
    initial: String,
    /// A problem with the last form post (`invalid_phone`, …), from the query string.
    error: Option<String>,
    /// Its words, in the page's language (with a limit's "try again in …").
    error_words: Option<String>,
    /// The rails that can take this session, comma-separated (`mpesa`); the form is for
    /// the first. Empty: nothing here can take it, and no form shows.
    methods: String,
    /// What rails charging another currency than the price's charge, `|`-separated:
    /// `mpesa=KES 45,150|tigo=TZS 857,500`. A rail not listed charges the price.
    prices: String,
    /// Their signed quotes, posted back with the form (`mpesa:TOKEN,…`).
    quotes: String,
    /// The session's currency code (`KES`): how numbers are written where it is spent.
    currency: String,
    /// The island's texts in the page's language ([`crate::i18n::Locale::live_words`]).
    words: String,
    /// The page's language (`sw`): the event stream's failure words come in it.
    lang: String,
    /// The shopper chose the language (not the browser): the form carries it, so the
    /// page it returns to keeps it even where a framed page's cookie is lost.
    lang_chosen: bool,
    /// Paying in parts with a part field (outside the island, `form="pay-form"`): the
    /// button says "Pay now", the amount being the shopper's.
    parts: bool,
) -> impl IntoView {
    let w = LiveWords::parse(&words);
    let prices: Vec<(RailId, String)> = prices
        .split('|')
        .filter_map(|p| p.split_once('='))
        .filter_map(|(r, label)| Some((RailId::parse(r)?, label.to_owned())))
        .collect();
    let price_of = {
        let prices = prices.clone();
        move |rail: RailId| {
            prices
                .iter()
                .find(|(r, _)| *r == rail)
                .map(|(_, label)| label.clone())
        }
    };
    // Numbers are written as where the rail's currency is spent (a USD price paid in
    // KES takes Kenyan numbers).
    let currency_of = {
        let price_of = price_of.clone();
        let currency = currency.clone();
        move |rail: Option<RailId>| {
            rail.and_then(&price_of)
                .and_then(|label| label.split(' ').next().map(str::to_owned))
                .unwrap_or_else(|| currency.clone())
        }
    };
    // A failure reads `code\twords`: the server sends its words with it.
    let (state, set_state) = signal(LiveState::decode(&initial).unwrap_or(LiveState::Idle {
        failure: None,
        rail: None,
    }));
    let offered: Vec<RailId> = methods.split(',').filter_map(RailId::parse).collect();
    // The form is for the shopper's choice: the first rail offered until they pick
    // another, or type a number of another rail's network.
    let method = offered.first().copied();
    let chosen = RwSignal::new(method);
    let (_, number_example, _) = crate::operators::number_style(&currency_of(method));
    let (submitting, set_submitting) = signal(false);
    let (hydrated, set_hydrated) = signal(false);
    let (elapsed, set_elapsed) = signal(0_i64);

    Effect::new({
        let source = format!("/pay/{session_id}/events?lang={lang}");
        move |_| {
            set_hydrated.set(true);
            #[cfg(feature = "hydrate")]
            subscribe(&source, set_state, set_elapsed);
            #[cfg(not(feature = "hydrate"))]
            let _ = (&source, set_state, set_elapsed);
        }
    });
    #[cfg(feature = "hydrate")]
    {
        let success_url = success_url.clone();
        Effect::new(move |_| {
            // No URL: the page is framed and the embedding page moves on instead.
            if matches!(state.get(), LiveState::Paid { .. }) && !success_url.is_empty() {
                let url = success_url.clone();
                set_timeout(
                    move || {
                        if let Some(w) = web_sys::window() {
                            let _ = w.location().set_href(&url);
                        }
                    },
                    Duration::from_secs(REDIRECT_AFTER_SECS),
                );
            }
        });
    }

    // A part was paid (the form is back, with no failure): the page is read again for
    // what is left (the progress and the part field are the server's).
    #[cfg(feature = "hydrate")]
    Effect::new(move |was: Option<bool>| {
        let part = matches!(
            state.get(),
            LiveState::Idle {
                failure: None,
                rail: Some(_)
            }
        );
        if part
            && was == Some(false)
            && let Some(w) = web_sys::window()
        {
            let _ = w.location().reload();
        }
        part
    });

    // Words for the rail of what happened (the attempt's), else the form's.
    let rail = move || {
        match state.get() {
            LiveState::Waiting { rail, .. } | LiveState::Unconfirmed { rail, .. } => Some(rail),
            LiveState::Idle { rail, .. } | LiveState::Paid { rail, .. } => rail,
            LiveState::Expired => None,
        }
        .or(chosen.get())
        .unwrap_or(RailId::Mpesa)
    };
    let wallet = move || rail().label();
    // A card payment waits on the bank, and PayPal on PayPal: not on a phone.
    let card = move || rail() == RailId::Card;
    let away = move || !rail().is_mobile_money();
    // No rail can take the session: the form never shows, and names none. The path
    // names the default; the `rail` field, when sent, is the shopper's choice.
    let action = method.map_or(String::new(), |r| format!("/pay/{session_id}/{r}"));
    // A chosen language goes with it (a framed page may have no cookie).
    let receipt_url = if lang_chosen {
        format!("/pay/{session_id}/receipt?lang={lang}")
    } else {
        format!("/pay/{session_id}/receipt")
    };
    let phone_label = {
        let w = w.clone();
        move || {
            chosen
                .get()
                .map_or(w.phone_number(), |r| w.wallet_phone_number(r.label()))
        }
    };
    let picker = (offered.len() > 1).then(|| {
        let choices = offered
            .iter()
            .map(|&r| {
                let price = price_of(r).map(|p| format!(" · {p}"));
                view! {
                    <label class="method">
                        <input
                            type="radio"
                            name="rail"
                            value=r.as_str()
                            checked=Some(r) == method
                            prop:checked=move || chosen.get() == Some(r)
                            on:change=move |_| chosen.set(Some(r))
                        />
                        " " {r.label()} {price}
                    </label>
                }
            })
            .collect::<Vec<_>>();
        view! {
            <fieldset class="methods">
                <legend>{w.pay_with()}</legend>
                {choices}
            </fieldset>
        }
    });
    let typed = {
        let offered = offered.clone();
        move |ev: leptos::ev::Event| {
            let value = event_target_value(&ev);
            if let Some(r) =
                crate::operators::operator_typed(&value, &currency_of(chosen.get_untracked()))
                    .and_then(|op| op.rail())
                    .filter(|r| offered.contains(r))
            {
                chosen.set(Some(r));
            }
        }
    };
    // Every block is rendered once and shown or hidden by state: only attributes and
    // text change, which keeps the island's WASM small (no type-erased view switching).
    let waiting = move || matches!(state.get(), LiveState::Waiting { .. });
    let paid = move || matches!(state.get(), LiveState::Paid { .. });
    let expired = move || state.get() == LiveState::Expired;
    let unconfirmed = move || matches!(state.get(), LiveState::Unconfirmed { .. });
    // The form shows when idle, and when the last outcome is unknown (then with the
    // "no SMS came" box, so a second push is the shopper's informed choice).
    let idle_failure = move || match state.get() {
        LiveState::Idle { failure, .. } if method.is_some() => Some(failure),
        LiveState::Unconfirmed { .. } if method.is_some() => Some(None),
        // Waiting on the card's bank or on PayPal: the shopper may pay another way.
        LiveState::Waiting { rail, .. } if method.is_some() && !rail.is_mobile_money() => {
            Some(None)
        }
        _ => None,
    };
    let unpayable = move || method.is_none() && matches!(state.get(), LiveState::Idle { .. });
    let problem = {
        let error = error.clone();
        move || {
            idle_failure().and_then(|failure| {
                error
                    .clone()
                    .or(failure.map(|f| split_words(&f).0.to_owned()))
            })
        }
    };
    // The form post's problem's words, else the last attempt's (sent with its state).
    let problem_words = {
        let w = w.clone();
        move || {
            idle_failure().and_then(|failure| {
                if error.is_some() {
                    error_words.clone()
                } else {
                    failure.map(|f| split_words(&f).1.map_or_else(|| w.failed(), str::to_owned))
                }
            })
        }
    };
    let retry = move || idle_failure().flatten().is_some();
    let payer = move || match state.get() {
        LiveState::Waiting { payer_masked, .. } | LiveState::Unconfirmed { payer_masked, .. } => {
            payer_masked
        }
        _ => String::new(),
    };
    let timer = {
        let w = w.clone();
        move || match state.get() {
            LiveState::Waiting { seconds_left, .. } if seconds_left > elapsed.get() => {
                w.waiting_answer(&clock_label(seconds_left - elapsed.get()))
            }
            _ => w.still_waiting(wallet()),
        }
    };
    let receipt = move || match state.get() {
        LiveState::Paid { receipt, .. } => receipt,
        _ => None,
    };
    let problem_shown = problem.clone();
    // Every rail charging the same: "Pay KES 1,500". Different amounts: the picker shows
    // each, and the button names the chosen one's once the page runs (before that, and
    // without JavaScript, it cannot know the choice).
    let same_price = offered
        .iter()
        .map(|&r| price_of(r))
        .all(|p| p == offered.first().and_then(|&r| price_of(r)));
    let first_price = offered
        .first()
        .and_then(|&r| price_of(r))
        .unwrap_or(amount_label.clone());
    let pay_label = {
        let w = w.clone();
        move || {
            if parts {
                w.pay_now()
            } else if same_price {
                w.pay(&first_price)
            } else if hydrated.get() {
                w.pay(
                    &chosen
                        .get()
                        .and_then(&price_of)
                        .unwrap_or(amount_label.clone()),
                )
            } else {
                w.pay_now()
            }
        }
    };
    // Texts around a value in <strong>: (before, after).
    let sent_to = around(&w.prompt_sent(MARK_STR), MARK);
    let receipt_words = {
        let w = w.clone();
        move || {
            let text = if card() {
                w.paid_with(MARK_STR)
            } else {
                w.receipt(wallet(), MARK_STR)
            };
            around(&text, MARK)
        }
    };
    let receipt_before = {
        let words = receipt_words.clone();
        move || words().0
    };
    let receipt_after = move || receipt_words().1;
    let unconfirmed_words = {
        let w = w.clone();
        let merchant = merchant_name.clone();
        move || around(&w.unconfirmed(wallet(), MARK_STR, &merchant), MARK)
    };
    let unconfirmed_before = {
        let words = unconfirmed_words.clone();
        move || words().0
    };
    let unconfirmed_after = move || unconfirmed_words().1;
    let status_title = {
        let w = w.clone();
        move || match rail() {
            RailId::Card => w.card_confirming(),
            RailId::Paypal => w.paypal_waiting(),
            _ => w.enter_pin(wallet()),
        }
    };
    let away_words = {
        let w = w.clone();
        move || {
            if card() {
                w.card_unfinished()
            } else {
                w.paypal_unfinished()
            }
        }
    };
    let no_sms = {
        let w = w.clone();
        move || w.no_sms(wallet())
    };
    let button = {
        let w = w.clone();
        move || if retry() { w.send_again() } else { pay_label() }
    };
    view! {
        <section class="live" aria-live="polite" data-hydrated=move || hydrated.get().then_some("true")>
            <div class="status status-waiting" data-live="waiting" role="status" hidden=move || !waiting()>
                <p class="status-title">{status_title}</p>
                <p hidden=away>{sent_to.0} <strong>{payer}</strong> {sent_to.1}</p>
                <p class="status-timer" hidden=away>{timer}</p>
                <p hidden=move || !away()>{away_words}</p>
            </div>
            <div class="status status-paid" data-live="paid" role="status" hidden=move || !paid()>
                <p class="status-title">{w.paid()}</p>
                <p hidden=move || receipt().is_none()>
                    {receipt_before}
                    <strong class="receipt">{move || receipt().unwrap_or_default()}</strong>
                    {receipt_after}
                </p>
                <p hidden=success_url.is_empty()>
                    <a class="button" href=success_url.clone()>
                        {w.continue_to(&merchant_name)}
                    </a>
                </p>
                <p>
                    <a class="receipt-link" href=receipt_url target="_blank" rel="noopener">
                        {w.see_receipt()}
                    </a>
                </p>
            </div>
            <div class="status status-waiting" data-live="unconfirmed" role="status" hidden=move || !unconfirmed()>
                <p class="status-title">{w.unconfirmed_title()}</p>
                <p>{unconfirmed_before} <strong>{payer}</strong> {unconfirmed_after}</p>
            </div>
            <div class="status status-failed" data-live="expired" role="status" hidden=move || !expired()>
                <p>{w.expired()}</p>
            </div>
            <p
                class="status status-failed"
                data-live="failed"
                data-reason=problem
                role="alert"
                hidden=move || problem_shown().is_none()
            >
                {move || problem_words().unwrap_or_default()}
            </p>
            <p class="status status-failed" data-live="unpayable" role="status" hidden=move || !unpayable()>
                {w.unpayable()}
            </p>
            <form
                id="pay-form"
                class="pay-form"
                method="post"
                action=action
                hidden=move || idle_failure().is_none()
                on:submit=move |_| set_submitting.set(true)
            >
                <input type="hidden" name="form_token" value=form_token />
                // Sent only when chosen (a disabled field is not posted): a static
                // attribute, cheaper in the WASM than an optional element.
                <input type="hidden" name="lang" value=lang.clone() disabled=!lang_chosen />
                {(!quotes.is_empty()).then(|| view! { <input type="hidden" name="quotes" value=quotes /> })}
                {picker}
                <label for="phone">{phone_label}</label>
                <input
                    id="phone"
                    name="phone"
                    type="tel"
                    inputmode="tel"
                    autocomplete="tel"
                    placeholder=method.map(|_| number_example)
                    required
                    value=phone
                    on:input=typed
                />
                <label class="confirm" hidden=move || !unconfirmed()>
                    <input type="checkbox" name="no_sms" value="1" />
                    " " {no_sms}
                </label>
                <button class="button pay" type="submit" disabled=move || submitting.get()>
                    {button}
                </button>
                <p class="fine" hidden=move || !retry()>{w.other_number()}</p>
            </form>
        </section>
    }
}

/// Follows the session's events (`url`); ticks the waiting timer.
#[cfg(feature = "hydrate")]
fn subscribe(url: &str, set_state: WriteSignal<LiveState>, set_elapsed: WriteSignal<i64>) {
    use wasm_bindgen::{JsCast, closure::Closure};
    let Ok(source) = web_sys::EventSource::new(url) else {
        return;
    };
    let on_message =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
            if let Some(state) = ev.data().as_string().and_then(|t| LiveState::decode(&t)) {
                set_elapsed.set(0);
                set_state.set(state);
            }
        });
    source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    // The page lives as long as the source: keep it.
    std::mem::forget(source);
    set_interval(
        move || set_elapsed.update(|e| *e += 1),
        Duration::from_secs(1),
    );
}
