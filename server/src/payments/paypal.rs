//! Paying with PayPal: Malipo creates an order for the attempt and sends the shopper's
//! browser to PayPal's approval page (a plain 303: no JavaScript needed). The money is
//! taken by capturing the approved order, which the status query does
//! ([`Payments::paypal_query`]): at once when the shopper comes back to
//! `/pay/{id}/paypal/return/{attempt}/{token}`, when PayPal's webhook says the order was
//! approved (a shopper who never came back), or when the poller finds it approved. The
//! capture's status decides; the browser's word never does.
//!
//! Cancelled on PayPal's page, the shopper comes back to `…/paypal/cancel/…` and the
//! attempt closes — once PayPal confirms the order was not approved.

use serde_json::json;

use super::{CallbackError, PayError, Payments, redirect::Leaving};
use crate::{
    connectors::{
        ConnectorError, Queried, RailId, RailOutcome,
        paypal::{CreatedOrder, NewOrder, Paypal, wire::OrderState},
    },
    domain::SessionId,
    store::{AttemptRecord, AttemptStatus, SessionRecord, StoreError},
    time::now_ms,
};

/// Where the shopper's browser goes after asking to pay with PayPal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaypalNext {
    /// To PayPal's approval page.
    Redirect(String),
    /// Back to the checkout page: the payment is decided, or under way.
    Page,
}

impl Payments {
    /// The origin of PayPal's buyer pages in `mode`, if PayPal is on there: the page's
    /// CSP lets the PayPal form go there (a form's redirect counts), and nowhere else.
    pub fn paypal_origin(
        &self,
        merchant: &crate::domain::MerchantId,
        mode: crate::domain::Mode,
    ) -> Option<String> {
        self.connector(merchant, RailId::Paypal, mode)
            .and_then(|c| c.paypal().map(|p| p.approve_origin()))
    }

    /// Starts a PayPal payment of `session_id` (at the quote the shopper saw, when PayPal
    /// charges another currency than the price's): creates the order and returns its
    /// approval page. A second submit gets the first order's page back.
    pub async fn start_paypal(
        &self,
        session_id: &SessionId,
        quote: Option<&str>,
    ) -> Result<PaypalNext, PayError> {
        let now = now_ms();
        let (session, quote, charge, credit) = match self
            .ready_to_leave(session_id, RailId::Paypal, quote, "approve_url", now)
            .await?
        {
            // Submitted again while the order awaits approval: back to PayPal.
            Leaving::Back(url) => return Ok(url.map_or(PaypalNext::Page, PaypalNext::Redirect)),
            Leaving::Charge {
                session,
                quote,
                charge,
                credit,
            } => (session, quote, charge, credit),
        };
        let connector = self
            .connector(&session.merchant_id, RailId::Paypal, session.mode)
            .ok_or(PayError::RailNotConfigured)?;
        let paypal = connector.paypal().ok_or(PayError::RailNotConfigured)?;
        let Some(super::redirect::Opened { attempt, token }) = self
            .open_redirect_attempt(session_id, RailId::Paypal, (charge, credit), quote, now)
            .await?
        else {
            return Ok(PaypalNext::Page);
        };
        tracing::info!(attempt = %attempt.id, session = %session_id, "PayPal payment");
        self.changed(session_id);
        let base = format!("{}/pay/{session_id}/paypal", self.public_url);
        let return_url = format!("{base}/return/{}/{token}", attempt.id);
        let cancel_url = format!("{base}/cancel/{}/{token}", attempt.id);
        let brand = self.merchant_label(&session.merchant_id).await;
        let order = NewOrder {
            attempt_id: attempt.id.as_str(),
            amount: charge,
            reference: &session.reference,
            description: &session.description,
            brand_name: &brand,
            return_url: &return_url,
            cancel_url: &cancel_url,
        };
        // Sent again once if the answer is lost: the attempt id is the request id, so
        // PayPal gives the same order back rather than a second one.
        let created = match paypal.create_order(&order).await {
            Err(ConnectorError::Unreachable { .. } | ConnectorError::BadResponse { .. }) => {
                paypal.create_order(&order).await
            }
            other => other,
        };
        match created {
            Ok(CreatedOrder { id, approve_url }) => {
                self.store
                    .set_operator_request_id(&attempt.id, &id, now_ms())
                    .await?;
                self.store
                    .set_rail_data(&attempt.id, &json!({"approve_url": approve_url}), now_ms())
                    .await?;
                Ok(PaypalNext::Redirect(approve_url))
            }
            Err(e) => {
                // No order the shopper could approve: nothing can be taken.
                tracing::warn!(attempt = %attempt.id, error = %e, "PayPal made no order");
                self.close_unpaid(
                    &attempt,
                    AttemptStatus::Failed,
                    "operator_error",
                    "PayPal made no order",
                )
                .await?;
                Ok(PaypalNext::Page)
            }
        }
    }

    /// The shopper is back from PayPal: approved (`cancelled` false) — the order is
    /// captured and settled now, from what PayPal says — or cancelled there, which
    /// closes the attempt once PayPal confirms nobody approved it. Returns the session,
    /// to send the shopper back to its page.
    pub async fn paypal_returned(
        &self,
        attempt_id: &str,
        token: &str,
        cancelled: bool,
    ) -> Result<SessionId, CallbackError> {
        let attempt = self
            .returning_attempt(RailId::Paypal, attempt_id, token)
            .await?;
        let open = matches!(
            attempt.status,
            AttemptStatus::Pending | AttemptStatus::Unknown
        );
        let session = self
            .store
            .session(&attempt.session_id)
            .await?
            .ok_or(CallbackError::Forbidden)?;
        if !open {
            return Ok(attempt.session_id);
        }
        if cancelled && self.paypal_left(&session, &attempt).await? {
            return Ok(attempt.session_id);
        }
        // Approved (or the cancel came after an approval after all): ask now, which
        // captures an approved order.
        self.poll_one(attempt.clone(), session.mode).await?;
        Ok(attempt.session_id)
    }

    /// Closes a PayPal attempt whose order PayPal says still awaits its buyer (never
    /// approved): true when closed. It is marked left first, so no capture is claimed
    /// for it after (and none was before); an approval after this is never captured,
    /// and PayPal voids it.
    pub(super) async fn paypal_left(
        &self,
        session: &SessionRecord,
        attempt: &AttemptRecord,
    ) -> Result<bool, StoreError> {
        let connector = self.connector(&session.merchant_id, RailId::Paypal, session.mode);
        let Some(paypal) = connector.as_ref().and_then(|c| c.paypal()) else {
            return Ok(false);
        };
        let Some(order) = attempt.operator_request_id.as_deref() else {
            return Ok(false);
        };
        match paypal.awaiting_buyer(order).await {
            Ok(true) if self.paypal_mark(attempt, Mark::Left).await? => {
                self.close_unpaid(
                    attempt,
                    AttemptStatus::Cancelled,
                    "cancelled_by_user",
                    "not approved on PayPal",
                )
                .await?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e) => {
                tracing::warn!(attempt = %attempt.id, error = %e, "PayPal order not readable now");
                Ok(false)
            }
        }
    }

    /// Where a PayPal attempt stands, for the poller and the shopper's return: PayPal
    /// is asked about the order, and an approved one is captured — only for an attempt
    /// still open and claimed for the capture (a claim and "left" exclude each other),
    /// so no money is taken for an attempt closed meanwhile. An order nobody approved
    /// in time is given up only once marked left (never while a capture is claimed).
    pub(super) async fn paypal_query(
        &self,
        attempt: &AttemptRecord,
        paypal: &Paypal,
        order: &str,
        now: i64,
    ) -> Result<Queried, ConnectorError> {
        let state = paypal.order_state(order).await?;
        let state = match state {
            Some(OrderState::Approved) => match self.paypal_mark(attempt, Mark::Capture).await {
                Ok(true) => {
                    let after = paypal.capture_order(order).await?;
                    // Refused so that the buyer must act again on PayPal: nothing was
                    // taken, and the claim is given back (the shopper may leave it).
                    if after == OrderState::AwaitingBuyer {
                        self.paypal_unclaim(attempt).await;
                    }
                    Some(after)
                }
                Ok(false) => return Ok(RailOutcome::Pending.into()),
                Err(e) => {
                    tracing::error!(attempt = %attempt.id, error = %e, "claiming a PayPal capture failed");
                    return Ok(RailOutcome::Pending.into());
                }
            },
            other => other,
        };
        let queried = Paypal::verdict(state, attempt.amount, attempt.created_at, now);
        if matches!(queried.outcome, RailOutcome::Expired { .. })
            && !self.paypal_mark(attempt, Mark::Left).await.unwrap_or(false)
        {
            return Ok(RailOutcome::Pending.into());
        }
        Ok(queried)
    }

    /// Marks a PayPal attempt, open, as claimed for its capture or as left: false when
    /// it is closed, or already marked the other way. Compare-and-swap on its rail data,
    /// so a claim and a "left" never both succeed; marking twice the same way is true.
    async fn paypal_mark(&self, attempt: &AttemptRecord, mark: Mark) -> Result<bool, StoreError> {
        let (mine, other) = match mark {
            Mark::Capture => ("capture", "left"),
            Mark::Left => ("left", "capture"),
        };
        for _ in 0..3 {
            let Some(now) = self.store.attempt(&attempt.id).await? else {
                return Ok(false);
            };
            if !matches!(now.status, AttemptStatus::Pending | AttemptStatus::Unknown) {
                return Ok(false);
            }
            let data = now.rail_data.clone().unwrap_or_else(|| json!({}));
            if data[other] == true {
                return Ok(false);
            }
            if data[mine] == true {
                return Ok(true);
            }
            let mut marked = data.clone();
            marked[mine] = true.into();
            if self
                .store
                .swap_rail_data(&attempt.id, now.rail_data.as_ref(), &marked, now_ms())
                .await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Payments {
    /// Gives back a capture claim (the capture took nothing and the order awaits its
    /// buyer again). Best effort: a claim left behind only keeps the attempt open.
    async fn paypal_unclaim(&self, attempt: &AttemptRecord) {
        let Ok(Some(now)) = self.store.attempt(&attempt.id).await else {
            return;
        };
        let Some(data) = now.rail_data.clone().filter(|d| d["capture"] == true) else {
            return;
        };
        let mut released = data.clone();
        if let Some(o) = released.as_object_mut() {
            o.remove("capture");
        }
        if let Err(e) = self
            .store
            .swap_rail_data(&attempt.id, Some(&data), &released, now_ms())
            .await
        {
            tracing::warn!(attempt = %attempt.id, error = %e, "a PayPal capture claim was not given back");
        }
    }

    /// Whether a PayPal attempt is claimed for its capture: PayPal may hold a capture
    /// for days (a review, a currency accepted by hand), so it is asked about longer.
    pub(super) fn paypal_capture_claimed(attempt: &AttemptRecord) -> bool {
        attempt.rail == RailId::Paypal
            && attempt
                .rail_data
                .as_ref()
                .is_some_and(|d| d["capture"] == true)
    }
}

/// What [`Payments::paypal_mark`] marks.
#[derive(Clone, Copy)]
enum Mark {
    /// The capture is about to be sent.
    Capture,
    /// The shopper left the order (or it was never approved in time): never captured.
    Left,
}
