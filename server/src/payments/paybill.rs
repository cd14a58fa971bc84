//! Paying from the wallet's own menu when the prompt cannot reach the phone (M-PESA's
//! 1037 "cannot be reached" on an old SIM, 1025 "push not sent"): the page shows the
//! business number, the session's account number and the amount; the shopper pays from
//! Lipa na M-PESA → Pay Bill; Daraja asks us first (C2B validation: an open session,
//! no more than is left to pay) and then tells us (C2B confirmation), which settles the
//! session — a part, the whole, or more, recorded as owed back.
//!
//! Daraja does not sign C2B calls: the URLs carry a secret segment derived from the
//! credentials ([`Connector::paybill_key`]); a call with any other is a 404.

use std::{sync::Arc, time::Duration};

use super::{CallbackError, Payments};
use crate::{
    connectors::{Connector, PaybillPayment, PaybillVerdict, RailId, shared::same},
    domain::{Mode, SessionId, phone::mask},
    store::{PaybillClosed, PaybillRecorded, SessionRecord, SessionStatus, StoreError},
    time::now_ms,
};

/// A C2B call's answer: HTTP status and JSON body.
pub type PaybillAnswer = (u16, String);

/// The purpose the Pay Bill check's result URL token is derived for.
const PAYBILL_CHECK: &str = "paybill-check";

/// How long M-PESA's answer about a young Pay Bill payment may take (or how long after
/// an answer that did not confirm it) before it is asked again…
const PAYBILL_RECHECK_MS: i64 = 60_000;

/// …while it is younger than this; then every [`PAYBILL_RECHECK_SLOW_MS`].
const PAYBILL_YOUNG_MS: i64 = 15 * 60_000;
const PAYBILL_RECHECK_SLOW_MS: i64 = 10 * 60_000;

/// How long M-PESA is asked about a Pay Bill payment before it is left for a person:
/// `refused` if M-PESA answered without confirming it, `unverified` if it never answered.
const PAYBILL_GIVE_UP_MS: i64 = 24 * 3_600_000;

/// At most 8 first asks in flight (one per confirmation, off its path); beyond them, a
/// confirmation is asked about by [`Payments::recheck_paybills`] a minute later.
static PAYBILL_ASKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

/// How long registering waits between tries: Daraja may be down when we start.
const REGISTER_BACKOFF_SECS: [u64; 5] = [1, 5, 30, 120, 600];

impl Payments {
    /// This server's connectors that offer menu payments, with their mode. (A
    /// merchant's own shortcode usually feeds its own systems already, and production
    /// Daraja takes a shortcode's URLs once: not registered from here.)
    fn paybill_connectors(&self) -> Vec<(Mode, Arc<dyn Connector>)> {
        [Mode::Live, Mode::Test]
            .into_iter()
            .filter_map(|mode| Some((mode, self.rails.get(RailId::Mpesa, mode)?.clone())))
            .filter(|(_, c)| c.paybill_business().is_some())
            .collect()
    }

    /// The secret segment of a connector's C2B URLs (Daraja does not sign C2B calls):
    /// 32 hex digits of an HMAC, under the install's Pay Bill secret, of the mode and
    /// business number — kept across credential changes, unguessable from them.
    fn paybill_key(&self, mode: Mode, connector: &dyn Connector) -> Option<String> {
        use hmac::Mac;
        use secrecy::ExposeSecret;
        let secret = self.paybill_secret.as_ref()?;
        let business = connector.paybill_business()?;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.expose_secret().as_bytes()).ok()?;
        mac.update(format!("paybill:{mode}:{business}").as_bytes());
        Some(
            mac.finalize().into_bytes()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }

    /// This connector's two C2B URLs: (confirmation, validation).
    fn paybill_urls(&self, key: &str) -> (String, String) {
        let base = format!("{}/callbacks/paybill/{key}", self.public_url);
        (format!("{base}/confirmation"), format!("{base}/validation"))
    }

    /// Registers the C2B URLs of every connector that takes menu payments, trying again
    /// with backoff while any is not registered, and looking every minute for new ones
    /// (a merchant's own credentials, saved later). The Paybill is offered once its
    /// connector's URLs are registered.
    pub async fn register_paybills(self) {
        let mut failures = 0usize;
        loop {
            let mut left = 0;
            for (mode, connector) in self.paybill_connectors() {
                if connector.paybill().is_some() {
                    continue;
                }
                let Some(key) = self.paybill_key(mode, connector.as_ref()) else {
                    continue;
                };
                let (confirmation, validation) = self.paybill_urls(&key);
                match connector.register_paybill(&confirmation, &validation).await {
                    Ok(()) => tracing::info!(%mode, "Paybill URLs registered"),
                    Err(e) => {
                        left += 1;
                        tracing::warn!(%mode, error = %e, "registering the Paybill URLs failed; trying again later");
                    }
                }
            }
            let wait = if left == 0 {
                failures = 0;
                60
            } else {
                failures += 1;
                REGISTER_BACKOFF_SECS[(failures - 1).min(REGISTER_BACKOFF_SECS.len() - 1)]
            };
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
    }

    /// The connector a C2B URL's key belongs to.
    fn paybill_connector(&self, key: &str) -> Option<(Mode, Arc<dyn Connector>)> {
        self.paybill_connectors().into_iter().find(|(mode, c)| {
            self.paybill_key(*mode, c.as_ref())
                .is_some_and(|k| same(&k, key))
        })
    }

    /// The session a payment names, if it is one `connector` serves in `mode`, to this
    /// business number, in its currency.
    async fn paybill_session(
        &self,
        mode: Mode,
        connector: &Arc<dyn Connector>,
        p: &PaybillPayment,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let Some(session) = self.store.session_by_pay_code(&p.account).await? else {
            return Ok(None);
        };
        let serves = self.connector(&session.merchant_id, RailId::Mpesa, mode);
        let ours = session.mode == mode
            && serves.is_some_and(|c| Arc::ptr_eq(&c, connector))
            && connector.paybill() == Some(p.business.as_str())
            && session.amount.currency() == p.amount.currency();
        Ok(ours.then_some(session))
    }

    /// `POST /callbacks/paybill/{key}/validation`: Daraja asks whether to take a payment.
    /// Taken when its account number names an open session and it is no more than is
    /// left to pay (a smaller amount is a part); refused otherwise, so the shopper's
    /// money never leaves for a booking that cannot take it. Never an error: a refusal.
    pub async fn paybill_validation(&self, key: &str, body: &[u8]) -> Option<PaybillAnswer> {
        let (mode, connector) = self.paybill_connector(key)?;
        let verdict = match connector.parse_paybill(body) {
            Err(_) => PaybillVerdict::UnknownAccount,
            Ok(p) => match self.paybill_session(mode, &connector, &p).await {
                Ok(Some(s))
                    if s.status == SessionStatus::Open
                        && s.remaining_minor() > 0
                        && s.expires_at > now_ms() =>
                {
                    if p.amount.minor() > s.remaining_minor() {
                        PaybillVerdict::WrongAmount
                    } else {
                        PaybillVerdict::Accept
                    }
                }
                Ok(_) => PaybillVerdict::UnknownAccount,
                // Unsure: let M-PESA take it; the confirmation is kept whatever happens.
                Err(e) => {
                    tracing::error!(error = %e, "Paybill validation could not read the session; accepted");
                    PaybillVerdict::Accept
                }
            },
        };
        tracing::info!(%mode, ?verdict, "Paybill validation");
        Some((200, connector.paybill_answer(Some(verdict))))
    }

    /// `POST /callbacks/paybill/{key}/confirmation`: a payment to the business number
    /// went through. Kept once per receipt, whatever it names; settled on the session its
    /// account number names (even one expired or paid meanwhile: money is never
    /// dropped, and a paid session's is recorded as owed back).
    pub async fn paybill_confirmation(
        &self,
        key: &str,
        body: &[u8],
    ) -> Option<Result<PaybillAnswer, StoreError>> {
        let (mode, connector) = self.paybill_connector(key)?;
        let text = String::from_utf8_lossy(body);
        let Ok(p) = connector.parse_paybill(body) else {
            // Kept as it came, for a person: money may stand behind it.
            let kept = self
                .store
                .keep_unreadable_paybill(RailId::Mpesa, &text, now_ms())
                .await;
            tracing::error!(%mode, kept = kept.is_ok(), "an unreadable Pay Bill confirmation; kept for reconciliation");
            return Some(kept.map(|()| (200, connector.paybill_answer(None))));
        };
        if !p.from_menu {
            // A prompt's payment, reported here too: its own callback settles it.
            tracing::debug!(receipt = %p.receipt, "a prompt's payment on the Pay Bill URL; left to its callback");
            return Some(Ok((200, connector.paybill_answer(None))));
        }
        let answer = async {
            let session = self.paybill_session(mode, &connector, &p).await?;
            // Checked with M-PESA before it settles anything, where M-PESA can be asked
            // (an initiator configured): a confirmation URL that leaked pays for nothing.
            let verify = connector.looks_up_receipts();
            let recorded = match self
                .store
                .record_paybill(
                    RailId::Mpesa,
                    &p,
                    session.as_ref().map(|s| &s.id),
                    &text,
                    verify,
                    now_ms(),
                )
                .await
            {
                // The receipt is already another payment's: kept unmatched for a person.
                Err(e) if e.is_unique_violation() => {
                    self.store
                        .record_paybill(RailId::Mpesa, &p, None, &text, false, now_ms())
                        .await?
                }
                other => other?,
            };
            if recorded == PaybillRecorded::Verifying {
                // Asked off the confirmation's path (Daraja waits for our answer), a few
                // at a time: a flood of confirmations never floods Daraja with asks.
                if let Ok(permit) = PAYBILL_ASKS.try_acquire() {
                    let (me, connector, receipt) =
                        (self.clone(), connector.clone(), p.receipt.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        me.ask_about_paybill(connector.as_ref(), &receipt).await;
                    });
                } else {
                    tracing::warn!(receipt = %p.receipt, "many Paybill payments being asked about; this one in a minute");
                }
            }
            let payer = p.payer.as_deref().map(mask).unwrap_or_default();
            match &recorded {
                PaybillRecorded::Seen => {
                    tracing::info!(receipt = %p.receipt, "Paybill confirmation repeated; already kept");
                }
                PaybillRecorded::Verifying => {
                    tracing::info!(receipt = %p.receipt, amount = %p.amount, %payer, "Paybill payment kept; asking M-PESA before settling it");
                }
                PaybillRecorded::Unmatched => {
                    tracing::error!(receipt = %p.receipt, amount = %p.amount, %payer, "Paybill payment names no session of ours; kept for reconciliation");
                }
                PaybillRecorded::Settled {
                    session_id,
                    attempt_id,
                    credited,
                } => {
                    tracing::info!(session = %session_id, attempt = %attempt_id, amount = %p.amount, %payer, ?credited, "Paybill payment settled");
                    self.changed(session_id);
                }
            }
            Ok((200, connector.paybill_answer(None)))
        };
        Some(answer.await)
    }

    /// Asks M-PESA about a kept payment (Transaction Status); its answer comes to
    /// `/callbacks/mpesa/pb_{receipt}/{token}` ([`Payments::paybill_verified`]). A failed
    /// ask is tried again ([`Payments::recheck_paybills`]); the payment stays `verifying`.
    async fn ask_about_paybill(&self, connector: &dyn Connector, receipt: &str) {
        let result_url = format!(
            "{}/callbacks/mpesa/pb_{}/{}",
            self.public_url,
            receipt,
            self.store.derived_token(PAYBILL_CHECK, receipt)
        );
        if let Err(e) = connector.lookup_receipt(receipt, &result_url).await {
            tracing::warn!(%receipt, error = %e, "M-PESA could not be asked about a Paybill payment; asking again later");
        }
    }

    /// A kept payment, its session, and the connector to check it with: the one whose
    /// business number it was paid to, in its session's mode (not the merchant's current
    /// one: credentials saved meanwhile would ask about it under another shortcode).
    async fn paybill_checker(
        &self,
        receipt: &str,
    ) -> Result<Option<(PaybillPayment, SessionId, Arc<dyn Connector>)>, StoreError> {
        let Some((p, _, session_id)) = self.store.paybill(receipt).await? else {
            return Ok(None);
        };
        let Some(session) = self.store.session(&session_id).await? else {
            return Ok(None);
        };
        let connector = self
            .paybill_connectors()
            .into_iter()
            .find(|(mode, c)| {
                *mode == session.mode && c.paybill_business() == Some(p.business.as_str())
            })
            .map(|(_, c)| c);
        Ok(connector.map(|c| (p, session_id, c)))
    }

    /// Settles a `verifying` payment M-PESA confirmed, and tells the page.
    async fn settle_paybill(&self, receipt: &str) -> Result<(), StoreError> {
        if let Some(PaybillRecorded::Settled { session_id, .. }) = self
            .store
            .settle_verified_paybill(receipt, now_ms())
            .await?
        {
            tracing::info!(session = %session_id, %receipt, "Paybill payment confirmed by M-PESA and settled");
            self.changed(&session_id);
        }
        Ok(())
    }

    /// M-PESA's answer about a kept Pay Bill payment, at
    /// `/callbacks/mpesa/pb_{receipt}/{token}`. Settled when M-PESA says it completed,
    /// with this receipt, amount and business number; refused at once (kept for a
    /// person, in `malipo reconcile`) when M-PESA says it was another amount or business
    /// number. Any other answer is counted (`misses`) and asked again; a queue time-out
    /// notice (no answer) too.
    pub async fn paybill_verified(
        &self,
        rail: RailId,
        receipt: &str,
        token: &str,
        body: &[u8],
    ) -> Result<(), CallbackError> {
        let expected = self.store.derived_token(PAYBILL_CHECK, receipt);
        if rail != RailId::Mpesa || !same(&expected, token) {
            return Err(CallbackError::Forbidden);
        }
        let Some((p, _, connector)) = self.paybill_checker(receipt).await? else {
            tracing::error!(%receipt, "M-PESA answered about a Paybill payment no connector serves now; left for a person");
            return Err(CallbackError::Forbidden);
        };
        let result = connector
            .parse_lookup_result(body)
            .map_err(|_| CallbackError::BadBody)?;
        if !result.answered {
            tracing::warn!(%receipt, detail = %result.detail, "M-PESA did not answer about a Paybill payment; asking again later");
            return Ok(());
        }
        if !result.completed {
            // M-PESA's codes for "no such payment" are not in our sources, and the same
            // answer may mean an initiator's expired credential or M-PESA lagging behind
            // its own confirmation: counted, asked again, and only after a day left for a
            // person (never settled, never refused for good on one answer).
            let detail = format!("M-PESA did not confirm it ({})", result.detail);
            if let Some(misses) = self.store.paybill_missed(receipt, &detail).await? {
                tracing::warn!(%receipt, misses, detail = %result.detail, "M-PESA did not confirm a Paybill payment; asking again later");
            }
            return Ok(());
        }
        let why_not = if result.receipt.as_deref().is_some_and(|r| r != p.receipt) {
            Some("M-PESA answered about another receipt")
        } else if result.amount != Some(p.amount) {
            Some("M-PESA says another amount was paid")
        } else if result.payee.as_deref() != connector.lookup_payee() {
            Some("M-PESA says it was paid to another business number")
        } else {
            None
        };
        match why_not {
            Some(why) => {
                tracing::error!(%receipt, why, "a Paybill confirmation M-PESA contradicts; refused, kept for reconciliation");
                self.store
                    .close_paybill(
                        receipt,
                        PaybillClosed::Refused,
                        &format!("{why} ({})", result.detail),
                    )
                    .await?;
            }
            None => self.settle_paybill(receipt).await?,
        }
        Ok(())
    }

    /// Asks M-PESA again about payments it has not confirmed: every minute while they
    /// are young, every ten minutes after, for a day. Never settles on its own: after a
    /// day a payment is closed for a person (`malipo reconcile`), `refused` when M-PESA
    /// answered without confirming it, `unverified` when it could not be asked (no
    /// answer, no initiator, no connector for its business number). One payment's
    /// trouble does not hold up the others.
    pub async fn recheck_paybills(&self) -> Result<(), StoreError> {
        let now = now_ms();
        for (receipt, asking_since, misses) in self
            .store
            .paybill_unanswered(
                now - PAYBILL_RECHECK_MS,
                now - PAYBILL_YOUNG_MS,
                now - PAYBILL_RECHECK_SLOW_MS,
                100,
            )
            .await?
        {
            // Moved on first, whatever happens next: a row that fails never starves the rest.
            self.store.paybill_checked(&receipt, now).await?;
            if asking_since < now - PAYBILL_GIVE_UP_MS {
                let (verdict, why) = if misses > 0 {
                    (PaybillClosed::Refused, "M-PESA did not confirm it in a day")
                } else {
                    (
                        PaybillClosed::Unverified,
                        "M-PESA could not be asked about it for a day",
                    )
                };
                tracing::error!(%receipt, why, "a Paybill payment M-PESA did not confirm; left for a person");
                self.store.close_paybill(&receipt, verdict, why).await?;
                continue;
            }
            match self.paybill_checker(&receipt).await {
                Ok(Some((_, _, connector))) if connector.looks_up_receipts() => {
                    self.ask_about_paybill(connector.as_ref(), &receipt).await;
                }
                Ok(_) => {
                    tracing::warn!(%receipt, "M-PESA cannot be asked about a Paybill payment (no initiator, or no connector for its business number); asking again later");
                }
                Err(e) => {
                    tracing::warn!(%receipt, error = %e, "a Paybill payment could not be read; asking again later");
                }
            }
        }
        Ok(())
    }
}
