//! The hosted checkout page, `/pay/{id}`.

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::{NotFound, PageTitle, Unavailable, countdown::Countdown, live::LiveStatus};
use crate::model::{CheckoutState, CheckoutView, LiveState};

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
    service
        .checkout_view(&id, embed.as_deref())
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
    let embed = query.read_untracked().get("embed");
    let checkout = Resource::new_blocking(
        move || (params.read().get("id").unwrap_or_default(), embed.clone()),
        |(id, embed)| load_checkout(id, embed),
    );
    view! {
        <Suspense>
            {move || {
                let error = error.clone();
                Suspend::new(async move {
                match checkout.await {
                    Ok(Some(view)) => {
                        view! { <Checkout view error=error.clone() retry_after /> }.into_any()
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
fn Checkout(view: CheckoutView, error: Option<String>, retry_after: Option<u32>) -> impl IntoView {
    let amount = view.amount_label();
    let title = format!("Pay {amount} to {} · Malipo", view.merchant_name);
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
            <ul class="quotes" aria-label="Paying in another currency">
                {quote_lines.into_iter().map(|l| view! { <li class="quote">{l}</li> }).collect::<Vec<_>>()}
            </ul>
        }
    });
    let live = view! {
        <LiveStatus
            session_id=view.id.clone()
            amount_label=amount.clone()
            merchant_name=view.merchant_name.clone()
            success_url=next_url
            phone=view.phone.clone()
            form_token=view.form_token.clone()
            initial=view.live.encode()
            error=error
            retry_after=retry_after
            methods=methods
            prices=prices
            quotes=quote_tokens
            currency=view.currency.code().to_string()
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
            <Countdown seconds_left=view.seconds_left expires_at_label=view.expires_at_label.clone() />
        }
        .into_any(),
        CheckoutState::Paid => ().into_any(),
        // The last payment may have gone through: never say "nothing was charged".
        CheckoutState::Expired if unconfirmed.is_some() => {
            let rail = unconfirmed.unwrap_or(crate::rail::RailId::Mpesa);
            view! {
                <p class="notice notice-expired" data-live="unconfirmed" role="status">
                    "This checkout expired at "
                    {view.expires_at_label.clone()}
                    ". We couldn't confirm your last " {rail.label()} " payment yet. If "
                    {rail.a_label()} " SMS arrived, " {view.merchant_name.clone()}
                    " will be told as soon as " {rail.label()} " confirms it: don't pay again."
                </p>
            }
            .into_any()
        }
        CheckoutState::Expired => view! {
            <p class="notice notice-expired" role="status">
                "This checkout expired at "
                {view.expires_at_label.clone()}
                ". Nothing was charged. Go back to "
                {view.merchant_name.clone()}
                " to start again."
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
            let pay_label = format!("Pay {}", card.amount_label);
            view! {
                <section class="card-pay" aria-label="Pay by card">
                    <form
                        class="card-form"
                        method="post"
                        action=format!("/pay/{}/card", view.id)
                        data-session-js=card.session_js
                    >
                        <input type="hidden" name="form_token" value=view.form_token.clone() />
                        {card_quote.map(|q| view! { <input type="hidden" name="quotes" value=q /> })}
                        <input type="hidden" name="card_session" value="" />
                        <div class="card-fields" hidden>
                            <div class="card-field" id="card-number" data-label="Card number"></div>
                            <div class="card-field" id="card-expiry" data-label="Expiry date"></div>
                            <div class="card-field" id="card-security-code" data-label="Security code"></div>
                        </div>
                        <p class="card-problem status-failed" role="alert" hidden></p>
                        <button class="button pay-card" type="submit" data-pay-label=pay_label.clone()>
                            "Pay by card · " {card.amount_label.clone()}
                        </button>
                        <p class="fine">"The card is typed into the card processor's own page: this shop never sees its number."</p>
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
            <section class="paypal-pay" aria-label="Pay with PayPal">
                <form method="post" action=format!("/pay/{}/paypal", view.id)>
                    <input type="hidden" name="form_token" value=view.form_token.clone() />
                    {paypal_quote.map(|q| view! { <input type="hidden" name="quotes" value=q /> })}
                    <button class="button pay-paypal" type="submit">
                        "Pay with PayPal · " {paypal.amount_label}
                    </button>
                    <p class="fine">"You log in and approve on PayPal's own page."</p>
                </form>
            </section>
        }
    });
    let waiting = matches!(view.live, LiveState::Waiting { .. });
    let cancel = (view.state == CheckoutState::Open && !waiting).then(|| {
        view! {
            <a class="cancel" href=view.cancel_url.clone()>
                "Cancel and go back to "
                {view.merchant_name.clone()}
            </a>
        }
    });
    let refunded = view
        .refunded
        .clone()
        .map(|r| view! { <p class="refunded" data-refunded="true">{r} " to the payer"</p> });
    let support = view
        .support
        .clone()
        .map(|s| support_line(view.merchant_name.clone(), s));
    // The merchant's colour, only as a 7-character `#rrggbb` (the CSS variable the
    // stylesheet already uses), in a style block carrying this response's nonce.
    let brand = view
        .brand_color
        .clone()
        .filter(|c| {
            c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit())
        })
        .map(|c| {
            let nonce = leptos::nonce::use_nonce();
            view! { <style nonce=nonce>{format!(":root{{--brand:{c}}}")}</style> }
        });
    view! {
        <PageTitle text=title />
        {brand}
        <main class="page checkout" data-page="checkout" data-state=state data-session=view.id.clone()>
            {(!view.livemode).then(|| view! {
                <p class="test-banner" role="note" data-test-mode="true">
                    <strong>"TEST MODE"</strong>
                    " · No real money moves. This page is not proof of payment."
                </p>
            })}
            <header class="merchant">
                {view.logo_url.clone().map(|src| view! { <img class="logo" src=src alt="" height="40" /> })}
                <p class="merchant-name">{view.merchant_name.clone()}</p>
            </header>
            <section class="summary" aria-label="What you are paying for">
                <p class="description">{view.description.clone()}</p>
                <p class="amount">{amount}</p>
                <p class="reference">"Reference " {view.reference.clone()}</p>
                {quotes}
                {status}
                {refunded}
            </section>
            {no_js}
            {live}
            {card}
            {paypal}
            {cancel}
            {view.embed_origin.as_deref().map(|origin| super::embed::bridge(origin, &view.id))}
            {support}
            <footer class="footer">
                <p>"Secured by Malipo. We never ask for your PIN on this page: you type it on your phone."</p>
            </footer>
        </main>
    }
}

/// How a stuck shopper reaches the merchant: links that open the phone's dialler, mail
/// app or WhatsApp.
fn support_line(merchant: String, s: crate::model::SupportView) -> impl IntoView {
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
            {format!("Questions about this booking? Contact {merchant}:")}
            {phone}
            {whatsapp}
            {email}
        </p>
    }
}
