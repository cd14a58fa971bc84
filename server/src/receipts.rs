//! The shopper's receipt by mail: once a session with a `customer_email` is paid, its
//! receipt goes to that address, in the language the shopper paid in (else the
//! merchant's default), with the link to the printable receipt page.
//!
//! Durable and shared by instances: due receipts are read from the sessions table, each
//! is claimed for one try (a conditional update, so two instances never both send), and
//! marked sent once the mail server took it. A failed try is tried again after a minute,
//! at most [`MAX_TRIES`] times; a receipt never goes twice unless the mail server took
//! it and the mark was then lost.

use std::time::Duration;

use app::i18n::Locale;

use crate::{
    checkout::CheckoutService,
    mail::{Mail, Mailer, masked_address},
    store::{Store, StoreError},
    time::now_ms,
};

/// How often due receipts are looked for.
pub const INTERVAL: Duration = Duration::from_secs(3);
/// Tries per receipt before it is left (logged).
pub const MAX_TRIES: i64 = 5;
/// Wait after a try before the next (the claim holds it this long).
const RETRY_AFTER_MS: i64 = 60_000;

/// The mail for one receipt, in `locale`.
pub fn receipt_mail(
    r: &app::model::ReceiptView,
    to: &str,
    public_url: &str,
    locale: Locale,
) -> Mail {
    let l = locale;
    let mut lines = vec![l.receipt_heading().to_owned(), String::new()];
    let mut row = |term: &str, value: &str| lines.push(format!("{term}: {value}"));
    row(l.receipt_paid_to(), &r.merchant_name);
    row(l.receipt_amount(), &r.amount_label);
    if let Some(c) = &r.charged_label {
        row(l.receipt_charged(), c);
    }
    row(l.receipt_method(), &r.rail_label);
    if let Some(n) = &r.receipt {
        row(l.receipt_number(), n);
    }
    if let Some(p) = &r.payer {
        row(l.receipt_payer(), p);
    }
    row(l.receipt_date(), &r.paid_at_label);
    row(l.receipt_reference(), &r.reference);
    lines.push(String::new());
    lines.push(r.description.clone());
    if let Some(trip) = &r.trip {
        for item in &trip.items {
            lines.push(match &item.detail {
                Some(d) => format!("- {} · {d}", item.description),
                None => format!("- {}", item.description),
            });
        }
        if let Some(who) = &trip.travelers {
            lines.push(format!("- {who}"));
        }
    }
    lines.push(String::new());
    lines.push(l.receipt_mail_link(&format!("{public_url}/pay/{}/receipt", r.id)));
    if !r.livemode {
        lines.push(String::new());
        lines.push(l.receipt_test().to_owned());
    }
    let subject = l.receipt_mail_subject(&r.amount_label, &r.merchant_name);
    Mail {
        to: to.to_owned(),
        subject: if r.livemode {
            subject
        } else {
            format!("[TEST] {subject}")
        },
        body: lines.join("\n"),
    }
}

/// One pass: mails every due receipt (a batch). Returns how many went out.
pub async fn mail_once(
    store: &Store,
    checkout: &CheckoutService,
    mailer: &Mailer,
    public_url: &str,
) -> Result<usize, StoreError> {
    let now = now_ms();
    let mut sent = 0;
    for due in store.receipts_due(now, MAX_TRIES, 20).await? {
        if !store
            .claim_receipt_mail(&due.id, due.tries, now + RETRY_AFTER_MS)
            .await?
        {
            continue;
        }
        let locale = due.locale.as_deref().and_then(Locale::parse);
        let Some(view) = checkout.receipt(&due.id, locale).await? else {
            continue;
        };
        let mail = receipt_mail(&view, &due.email, public_url, view.locale);
        match mailer.deliver(&mail).await {
            Ok(()) => {
                store.receipt_mailed(&due.id, now_ms()).await?;
                sent += 1;
            }
            Err(e) => tracing::warn!(
                session = %due.id,
                to = %masked_address(&due.email),
                try_number = due.tries + 1,
                error = %e,
                "receipt mail not sent; tried again later"
            ),
        }
    }
    Ok(sent)
}

/// Runs [`mail_once`] every [`INTERVAL`] until aborted; a database blip waits for the
/// next tick.
pub async fn run(store: Store, checkout: CheckoutService, mailer: Mailer, public_url: String) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = mail_once(&store, &checkout, &mailer, &public_url).await {
            tracing::warn!(error = %e, "mailing receipts failed; retrying next tick");
        }
    }
}
