//! What the rails paid on someone else's pages share (cards on the processor's, PayPal
//! on PayPal's): an attempt opened before the shopper's browser leaves, with a token of
//! its own for the way back (the return URL's capability, as a callback URL's), and the
//! closing of one nothing was charged on.

use super::{CallbackError, PayError, Payments, Ready, next_poll_at};
use crate::{
    connectors::RailId,
    domain::{AttemptId, Money, SessionId, ids::random_base62, keys::hash_token},
    fx::Quote,
    store::{
        AttemptCaps, AttemptOutcome, AttemptRecord, AttemptStatus, Inserted, NewAttempt,
        SessionRecord, StoreError,
    },
    time::now_ms,
};

/// Where a shopper asking to pay on another site's pages stands.
pub(super) enum Leaving {
    /// A payment of theirs is under way already (a second submit): back to its page at
    /// the operator (`Some`), or to the checkout page.
    Back(Option<String>),
    /// Nothing under way: charge `charge` (at `quote`) for `session`, counting `credit`
    /// towards its price.
    Charge {
        session: Box<SessionRecord>,
        quote: Option<Quote>,
        charge: Money,
        credit: i64,
    },
}

/// An attempt just opened, with the token of its return URLs.
pub(super) struct Opened {
    pub attempt: AttemptRecord,
    pub token: String,
}

impl Payments {
    /// [`Payments::ready`] for a rail paid on another site's pages: a payment already
    /// under way sends the shopper back to its page there (its rail data's `url_key`);
    /// else the amount to charge, which the rail must take.
    pub(super) async fn ready_to_leave(
        &self,
        session_id: &SessionId,
        rail: RailId,
        quote: Option<&str>,
        url_key: &str,
        now: i64,
    ) -> Result<Leaving, PayError> {
        match self.ready(session_id, rail, quote, None, now).await? {
            Ready::Pending(pending) => Ok(Leaving::Back(
                pending
                    .rail_data
                    .as_ref()
                    .and_then(|d| d[url_key].as_str())
                    .filter(|_| pending.rail == rail)
                    .map(str::to_owned),
            )),
            Ready::Charge {
                session,
                capabilities,
                quote,
                charge,
                credit,
            } => {
                if !capabilities.accepts(charge) {
                    return Err(PayError::NotPayable);
                }
                Ok(Leaving::Charge {
                    session: Box::new(session),
                    quote,
                    charge,
                    credit,
                })
            }
        }
    }

    /// Opens an attempt of `rail` for `charge` (at `quote`; counting `credit` towards the
    /// price), due for a first status query soon. `Ok(None)`: another submit opened one
    /// a moment ago.
    pub(super) async fn open_redirect_attempt(
        &self,
        session_id: &SessionId,
        rail: RailId,
        (charge, credit): (Money, i64),
        quote: Option<Quote>,
        now: i64,
    ) -> Result<Option<Opened>, PayError> {
        let token = random_base62(32);
        let inserted = self
            .store
            .insert_attempt_capped(
                &NewAttempt {
                    credit_minor: Some(credit),
                    session_id: session_id.clone(),
                    rail,
                    amount: charge,
                    quote,
                    payer: None,
                    callback_token_hash: Some(hash_token(&token)),
                    next_poll_at: Some(next_poll_at(now, 0)),
                },
                now,
                Some(&AttemptCaps {
                    per_session: i64::from(self.limits.attempts_per_session),
                    per_payer: i64::MAX,
                    payer_since: now,
                }),
            )
            .await;
        match inserted {
            Ok(Inserted::Attempt(attempt)) => Ok(Some(Opened {
                attempt: *attempt,
                token,
            })),
            Ok(Inserted::SessionNotOpen) => Err(PayError::SessionNotOpen),
            Ok(Inserted::SessionCap) => Err(PayError::Limited {
                limit: super::Limit::Session,
                retry_after: None,
            }),
            // These rails have no payer to cap; never answered.
            Ok(Inserted::PayerCap { .. }) => Err(PayError::SessionNotOpen),
            Err(e) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The attempt of `rail` a return URL names, if `token` is that attempt's own.
    pub(super) async fn returning_attempt(
        &self,
        rail: RailId,
        attempt_id: &str,
        token: &str,
    ) -> Result<AttemptRecord, CallbackError> {
        let id = AttemptId::parse(attempt_id).ok_or(CallbackError::Forbidden)?;
        match self.store.attempt_callback_hash(&id).await? {
            Some((r, stored)) if r == rail && stored == hash_token(token) => {}
            _ => return Err(CallbackError::Forbidden),
        }
        self.store
            .attempt(&id)
            .await?
            .ok_or(CallbackError::Forbidden)
    }

    /// Closes an attempt nothing was charged on, as `status`.
    pub(super) async fn close_unpaid(
        &self,
        attempt: &AttemptRecord,
        status: AttemptStatus,
        code: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let outcome = AttemptOutcome {
            failure_code: Some(code.into()),
            failure_detail: Some(detail.chars().take(200).collect()),
            ..Default::default()
        };
        if self
            .store
            .finalize_attempt(&attempt.id, status, &outcome, "return", now_ms())
            .await?
        {
            self.changed(&attempt.session_id);
        }
        Ok(())
    }
}
