//! Paying by card: the card is typed only into the processor's frames (Hosted Session)
//! or onto its own page (Hosted Checkout, for shoppers without JavaScript); Malipo holds
//! the processor's session id, never a card number.
//!
//! - With the frames: 3-D Secure first (frictionless, or the issuer's challenge, to which
//!   the shopper's browser is sent); the payment is made when authentication allows it —
//!   at once, or when the shopper comes back from the issuer.
//! - Without JavaScript: the processor's hosted page takes the card, authenticates and
//!   pays; the shopper comes back and the order's status at the processor decides (the
//!   browser's word never does).
//!
//! Either way the shopper comes back to `/pay/{id}/card/return/{attempt}/{token}` (the
//! token, like a callback's, is the attempt's own capability), and the poller asks the
//! processor about any card attempt still open, so a shopper who never comes back is
//! still settled: paid if the processor took the money, else expired once its session
//! is over.

use serde_json::json;

use super::{CallbackError, PayError, Payments, Ready, redirect::Leaving};
use crate::{
    connectors::{
        ConnectorError, Queried, RailId, RailOutcome,
        card::{Charged, Mpgs, authentication_passed},
    },
    domain::{AttemptId, SessionId},
    store::{AttemptRecord, AttemptStatus, StoreError},
    time::now_ms,
};

/// Transaction ids on an order (the order is the attempt, `pa_…`): one each, so a
/// request sent again is the same transaction at the processor.
const AUTH_INIT: &str = "auth";
const AUTH_PAYER: &str = "auth-payer";
const PAY: &str = "pay";

/// Processor sessions (card frames mounted) one checkout session may ask for in ten
/// minutes: a shopper reloading the page a few times is fine; a script is not.
pub const CARD_SESSIONS_PER_CHECKOUT: u32 = 10;

/// Where the shopper's browser goes after asking to pay by card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardNext {
    /// To the processor's hosted payment page (no JavaScript).
    Redirect(String),
    /// To the issuer's 3-D Secure page: a form posting `creq` to `acs_url`.
    Challenge { acs_url: String, creq: String },
    /// Back to the checkout page: the payment is decided, or under way.
    Page,
}

impl Payments {
    /// The card processor of `mode`, as (origin, `session.js` URL): the page's CSP lets
    /// its script, frames and hosted page in, and nothing else.
    pub fn card_sources(
        &self,
        merchant: &crate::domain::MerchantId,
        mode: crate::domain::Mode,
    ) -> Vec<(String, String)> {
        self.connector(merchant, RailId::Card, mode)
            .and_then(|c| {
                c.card_processor()
                    .map(|mpgs| vec![(mpgs.origin(), mpgs.session_js_url())])
            })
            .unwrap_or_default()
    }

    /// The card processor for `session`'s mode, if cards are on there.
    fn card_processor(&self, session: &crate::store::SessionRecord) -> Result<Mpgs, PayError> {
        self.connector(&session.merchant_id, RailId::Card, session.mode)
            .and_then(|c| c.card_processor().cloned())
            .ok_or(PayError::RailNotConfigured)
    }

    /// A processor session for the page's card frames (`session.js`), for an open
    /// session that offers cards.
    pub async fn card_session(&self, session_id: &SessionId) -> Result<String, PayError> {
        let now = now_ms();
        let session = match self.ready(session_id, RailId::Card, None, None, now).await {
            Ok(Ready::Charge { session, .. }) => session,
            Ok(Ready::Pending(_)) => return Err(PayError::SessionNotOpen),
            // A quote is checked when paying, not for the frames.
            Err(PayError::QuoteChanged) => self
                .store
                .session(session_id)
                .await?
                .ok_or(PayError::SessionNotFound)?,
            Err(e) => return Err(e),
        };
        let mpgs = self.card_processor(&session)?;
        mpgs.create_session().await.map_err(|e| {
            tracing::warn!(error = %e, "the card processor gave no session");
            PayError::ProcessorUnavailable
        })
    }

    /// Starts a card payment of `session_id`: with the processor session the frames
    /// filled (`card_session`), or — without JavaScript — at the processor's hosted page.
    /// `quote`: the token of the quote the shopper saw, when cards charge another
    /// currency than the price's. A second submit gets the first payment back.
    pub async fn start_card(
        &self,
        session_id: &SessionId,
        card_session: Option<&str>,
        quote: Option<&str>,
    ) -> Result<CardNext, PayError> {
        let now = now_ms();
        let (session, quote, charge, credit) = match self
            .ready_to_leave(session_id, RailId::Card, quote, "pay_url", now)
            .await?
        {
            // Submitted again while on the processor's page: back to it.
            Leaving::Back(url) => return Ok(url.map_or(CardNext::Page, CardNext::Redirect)),
            Leaving::Charge {
                session,
                quote,
                charge,
                credit,
            } => (session, quote, charge, credit),
        };
        let mpgs = self.card_processor(&session)?;
        let card_session = card_session.filter(|s| {
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        let Some(super::redirect::Opened { attempt, token }) = self
            .open_redirect_attempt(session_id, RailId::Card, (charge, credit), quote, now)
            .await?
        else {
            return Ok(CardNext::Page);
        };
        // The processor's order is the attempt: asked about by its id.
        self.store
            .set_operator_request_id(&attempt.id, attempt.id.as_str(), now)
            .await?;
        let return_url = format!(
            "{}/pay/{session_id}/card/return/{}/{token}",
            self.public_url, attempt.id
        );
        tracing::info!(attempt = %attempt.id, session = %session_id, hosted = card_session.is_none(), "card payment");
        self.changed(session_id);
        let order = attempt.id.as_str();
        let Some(card_session) = card_session else {
            let merchant = self.merchant_label(&session.merchant_id).await;
            let checkout = mpgs
                .initiate_checkout(order, charge, &session.description, &merchant, &return_url)
                .await;
            return match checkout {
                Ok(hc) => {
                    self.store
                        .set_rail_data(
                            &attempt.id,
                            &json!({"checkout": hc.session_id,
                                "success_indicator": hc.success_indicator, "pay_url": hc.pay_url}),
                            now_ms(),
                        )
                        .await?;
                    Ok(CardNext::Redirect(hc.pay_url))
                }
                Err(e) => {
                    self.card_trouble(&attempt, e, false).await?;
                    Ok(CardNext::Page)
                }
            };
        };
        let data = json!({ "session": card_session });
        self.store
            .set_rail_data(&attempt.id, &data, now_ms())
            .await?;
        let attempt = AttemptRecord {
            rail_data: Some(data),
            credit_minor: None,
            overpaid_minor: None,
            ..attempt.clone()
        };
        let authenticated = async {
            mpgs.initiate_authentication(order, AUTH_INIT, card_session, charge)
                .await?;
            mpgs.authenticate_payer(order, AUTH_PAYER, card_session, charge, &return_url)
                .await
        }
        .await;
        match authenticated {
            Ok(auth) => {
                if let Some(challenge) = auth.challenge {
                    return Ok(CardNext::Challenge {
                        acs_url: challenge.acs_url,
                        creq: challenge.creq,
                    });
                }
                if auth.passed() {
                    self.pay_card(&attempt, &mpgs, card_session).await?;
                } else {
                    self.card_declined(&attempt, "authentication_failed", &auth.status)
                        .await?;
                }
            }
            Err(e) => self.card_trouble(&attempt, e, false).await?,
        }
        Ok(CardNext::Page)
    }

    /// The shopper is back from the processor (its hosted page) or the issuer (the
    /// challenge): the attempt named by the URL's token is settled from what the
    /// processor says — after paying, when authentication now allows it. A success on
    /// an attempt already closed (expired, or given up for another rail) is still
    /// recorded, late. Returns the session, to send the shopper back to its page.
    pub async fn card_returned(
        &self,
        attempt_id: &str,
        token: &str,
    ) -> Result<SessionId, CallbackError> {
        let attempt = self
            .returning_attempt(RailId::Card, attempt_id, token)
            .await?;
        if attempt.status == AttemptStatus::Succeeded {
            return Ok(attempt.session_id);
        }
        let open = matches!(
            attempt.status,
            AttemptStatus::Pending | AttemptStatus::Unknown
        );
        let session = self
            .store
            .session(&attempt.session_id)
            .await?
            .ok_or(CallbackError::Forbidden)?;
        let Ok(mpgs) = self.card_processor(&session) else {
            return Ok(attempt.session_id);
        };
        // Unreadable now: the poller keeps asking (an open attempt), nothing is paid.
        let order = match mpgs.order(attempt.id.as_str()).await {
            Ok(order) => order,
            Err(e) => {
                tracing::warn!(attempt = %attempt.id, error = %e, "card order not readable now");
                self.ask_soon(&attempt.id).await?;
                return Ok(attempt.session_id);
            }
        };
        // Paid only for the whole amount asked, in its currency.
        let covered = order.as_ref().and_then(|o| o.captured).is_some_and(|c| {
            c.currency() == attempt.amount.currency() && c.minor() >= attempt.amount.minor()
        });
        match order.as_ref().and_then(|o| o.latest.clone()) {
            Some(charged) if charged.outcome == RailOutcome::Succeeded && !covered => {
                tracing::error!(attempt = %attempt.id, "card order approved for less than asked; asking again");
                self.ask_soon(&attempt.id).await?;
            }
            // A payment was made on the order (the hosted page pays itself; or ours):
            // its outcome is final, or asked again; a success counts even late.
            Some(charged) if open || charged.outcome == RailOutcome::Succeeded => {
                self.card_settle(&attempt, charged).await?;
            }
            Some(_) => {}
            // No payment yet: in the frames' flow, pay once authentication allows it.
            None if open => {
                let card_session = attempt
                    .rail_data
                    .as_ref()
                    .and_then(|d| d["session"].as_str().map(str::to_owned));
                if let Some(card_session) = card_session {
                    // How authentication went, from the order just read.
                    match order.as_ref().and_then(|o| o.authentication(AUTH_PAYER)) {
                        Some(status) if authentication_passed(status) => {
                            self.pay_card(&attempt, &mpgs, &card_session).await?;
                        }
                        Some(status) if status != "AUTHENTICATION_PENDING" => {
                            self.card_declined(&attempt, "authentication_failed", status)
                                .await?;
                        }
                        // Still pending, or none yet: the poller keeps asking.
                        _ => {}
                    }
                } else if !order.as_ref().is_some_and(|o| o.payments_tried) {
                    // Back from the hosted page with no payment sent: cancelled there.
                    // (Paid there later after all, its return records it, late.)
                    self.close_unpaid(
                        &attempt,
                        AttemptStatus::Cancelled,
                        "cancelled_by_user",
                        "back from the hosted page unpaid",
                    )
                    .await?;
                }
            }
            None => {}
        }
        Ok(attempt.session_id)
    }

    /// Pays the attempt with the card in `card_session`, after authentication — once:
    /// the attempt is claimed first, so two returns racing (the issuer's auto-post and a
    /// click) send one payment.
    async fn pay_card(
        &self,
        attempt: &AttemptRecord,
        mpgs: &Mpgs,
        card_session: &str,
    ) -> Result<(), StoreError> {
        let mut claimed = attempt.rail_data.clone().unwrap_or_else(|| json!({}));
        if claimed["paying"] == true {
            return self.ask_soon(&attempt.id).await;
        }
        claimed["paying"] = true.into();
        if !self
            .store
            .swap_rail_data(&attempt.id, attempt.rail_data.as_ref(), &claimed, now_ms())
            .await?
        {
            // Another request claimed it: its answer settles the attempt.
            return Ok(());
        }
        let attempt = AttemptRecord {
            rail_data: Some(claimed),
            credit_minor: None,
            overpaid_minor: None,
            ..attempt.clone()
        };
        match mpgs
            .pay(
                attempt.id.as_str(),
                PAY,
                card_session,
                attempt.amount,
                Some(AUTH_PAYER),
            )
            .await
        {
            Ok(charged) => self.card_settle(&attempt, charged).await,
            Err(e) => self.card_trouble(&attempt, e, true).await,
        }
    }

    /// Closes a card attempt the shopper left for another way to pay, if no payment was
    /// ever sent on its order (asked of the processor): true when closed. If they still
    /// pay on the processor's page later, its return records the success, late.
    pub(super) async fn card_left(
        &self,
        session: &crate::store::SessionRecord,
        attempt: &AttemptRecord,
    ) -> Result<bool, StoreError> {
        let Ok(mpgs) = self.card_processor(session) else {
            return Ok(false);
        };
        match mpgs.order(attempt.id.as_str()).await {
            Ok(order) if !order.as_ref().is_some_and(|o| o.payments_tried) => {
                self.close_unpaid(
                    attempt,
                    AttemptStatus::Cancelled,
                    "cancelled_by_user",
                    "left for another way to pay",
                )
                .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Records what the processor said about the payment, with the card's brand and last
    /// four digits (all Malipo ever keeps of it).
    async fn card_settle(
        &self,
        attempt: &AttemptRecord,
        charged: Charged,
    ) -> Result<(), StoreError> {
        if let Some(card) = &charged.card {
            let mut data = attempt.rail_data.clone().unwrap_or_else(|| json!({}));
            data["card"] = json!({"brand": card.brand, "last4": card.last4, "label": card.label()});
            self.store
                .set_rail_data(&attempt.id, &data, now_ms())
                .await?;
        }
        let outcome = charged.outcome.clone();
        let settled = self
            .settle(
                attempt,
                Queried {
                    outcome: charged.outcome,
                    receipt: charged.receipt,
                },
                "return",
            )
            .await?;
        if settled.is_none() {
            tracing::info!(attempt = %attempt.id, gateway_code = %charged.gateway_code, ?outcome, "card payment not final yet; asking the processor");
            self.ask_soon(&attempt.id).await?;
        }
        Ok(())
    }

    /// A card payment that did not go through before any money could move (declined
    /// authentication).
    async fn card_declined(
        &self,
        attempt: &AttemptRecord,
        code: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.close_unpaid(attempt, AttemptStatus::Failed, code, detail)
            .await
    }

    /// The processor refused a request before any payment was sent (nothing was
    /// charged: the attempt failed), or did not answer, or a payment's answer is not
    /// known (then only the order can tell: the poller asks it, and nothing is taken as
    /// failed).
    async fn card_trouble(
        &self,
        attempt: &AttemptRecord,
        e: ConnectorError,
        paying: bool,
    ) -> Result<(), StoreError> {
        match e {
            ConnectorError::Rejected { code, message, .. } if !paying => {
                tracing::warn!(attempt = %attempt.id, %code, "card processor refused the request");
                self.card_declined(attempt, "card_declined", &format!("{code} {message}"))
                    .await
            }
            e => {
                tracing::warn!(attempt = %attempt.id, error = %e, "card payment's outcome not known; asking the order");
                self.ask_soon(&attempt.id).await
            }
        }
    }

    /// Makes the attempt due for a status query now, and wakes the poller.
    pub(crate) async fn ask_soon(&self, id: &AttemptId) -> Result<(), StoreError> {
        if self.store.poll_soon(id, now_ms()).await? {
            self.wake.notify_waiters();
        }
        Ok(())
    }
}
