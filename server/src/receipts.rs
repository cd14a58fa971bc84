//! The shopper's receipt by mail: once a session with a `customer_email` is paid, its
//! receipt goes to that address, in the language the shopper paid in (else the
//! merchant's default), with the link to the printable receipt page.
//!
//! Test mode's receipts go only into the sandbox mailbox, never over SMTP: anyone can
//! make a test merchant and pay its sessions with sandbox numbers, and must not be able
//! to make this install mail any address text of their choosing.
//!
//! Durable and shared by instances: due receipts are read from the sessions table, each
//! is claimed for one try (a conditional update, so two instances never both send) and
//! held for [`CLAIM_MS`], longer than a try may take ([`SEND_TIMEOUT`]), and marked sent
//! once the mail server took it. A failed try is tried again later (1 min, 5 min, 30 min,
//! 2 h), [`MAX_TRIES`] times in all, then given up with an error in the log; a receipt
//! never goes twice unless the mail server took it and the mark was then lost.

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
/// How long a claimed receipt is held by the instance trying it.
pub const CLAIM_MS: i64 = 10 * 60_000;
/// The longest one try may take (the mail server's every step included).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(120);
/// When the next try may be, after try number `tries` (1-based) failed.
fn retry_after_ms(tries: i64) -> i64 {
    match tries {
        1 => 60_000,
        2 => 5 * 60_000,
        3 => 30 * 60_000,
        _ => 2 * 3_600_000,
    }
}

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
    if r.parts.is_empty() {
        row(l.receipt_method(), &r.rail_label);
        if let Some(n) = &r.receipt {
            row(l.receipt_number(), n);
        }
        if let Some(p) = &r.payer {
            row(l.receipt_payer(), p);
        }
        row(l.receipt_date(), &r.paid_at_label);
    }
    row(l.receipt_reference(), &r.reference);
    if !r.parts.is_empty() {
        lines.push(String::new());
        lines.push(l.receipt_parts(&r.parts.len().to_string()));
        for p in &r.parts {
            let mut line = vec![p.amount_label.as_str(), p.rail_label.as_str()];
            line.extend(p.receipt.as_deref());
            line.extend(p.payer.as_deref());
            line.push(p.paid_at_label.as_str());
            lines.push(format!("- {}", line.join(" · ")));
        }
    }
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

/// One pass: mails every due receipt (a batch). Returns how many went out. Test
/// mode's go to `sandbox` (the sandbox mailbox), live mode's to `mailer`.
pub async fn mail_once(
    store: &Store,
    checkout: &CheckoutService,
    mailer: &Mailer,
    public_url: &str,
) -> Result<usize, StoreError> {
    let sandbox = Mailer::Sandbox(store.clone());
    let mut sent = 0;
    for due in store.receipts_due(now_ms(), MAX_TRIES, 20).await? {
        // Held from the moment it is claimed: a slow batch never lets another instance
        // take one this instance is still sending.
        if !store
            .claim_receipt_mail(&due.id, due.tries, now_ms() + CLAIM_MS)
            .await?
        {
            continue;
        }
        let tries = due.tries + 1;
        let locale = due.locale.as_deref().and_then(Locale::parse);
        let Some(view) = checkout.receipt(&due.id, locale).await? else {
            tracing::error!(session = %due.id, "a paid session has no receipt to mail; left");
            continue;
        };
        let mail = receipt_mail(&view, &due.email, public_url, view.locale);
        let via = if view.livemode { mailer } else { &sandbox };
        let delivered = match tokio::time::timeout(SEND_TIMEOUT, via.deliver(&mail)).await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!("the mail server took too long")),
        };
        match delivered {
            Ok(()) => {
                store.receipt_mailed(&due.id, now_ms()).await?;
                sent += 1;
            }
            Err(e) if tries >= MAX_TRIES => tracing::error!(
                session = %due.id,
                to = %masked_address(&due.email),
                error = %e,
                "receipt mail not sent after {MAX_TRIES} tries; given up"
            ),
            Err(e) => {
                tracing::warn!(
                    session = %due.id,
                    to = %masked_address(&due.email),
                    try_number = tries,
                    error = %e,
                    "receipt mail not sent; tried again later"
                );
                store
                    .hold_receipt_mail(&due.id, now_ms() + retry_after_ms(tries))
                    .await?;
            }
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
