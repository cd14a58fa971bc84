//! Refunds at the sandbox operators (Daraja's reversals, MTN's refunds, Airtel's and
//! Vodacom's), shared: each is a request of the operator's own, tied to the paid push it
//! returns (`refund_of`), decided by script (made, or refused when the payer's number
//! scripts a refusal), and answered by callback where the operator answers later, with
//! the payer's number's callback behaviour (lost, twice, late) — so a lost refund result
//! is as testable as a lost payment callback. An operator never returns more than was
//! paid, and a second refund of a payment refunded whole is refused as such.

use serde_json::{Map, Value, json};

use super::{Answer, NewRequest, Sandbox, SandboxRequest, operator, worker};
use crate::{
    store::{Store, StoreError},
    time::now_ms,
};

/// What taking a refund came to.
#[derive(Debug)]
pub enum RefundTaken {
    /// Taken (decided already when it was asked to be decided at once).
    Taken(SandboxRequest),
    /// The operator has a refund with this id already: that one.
    Duplicate(SandboxRequest),
    /// The payment was not paid (or is a refund itself).
    NotPaid,
    /// All of the payment was returned already.
    AlreadyRefunded,
    /// More than is left: this much is.
    Exceeds { left: i64 },
}

/// A refund an operator was asked for.
pub struct RefundAsk<'a> {
    /// The paid push it returns.
    pub original: &'a SandboxRequest,
    /// The operator's id for the refund.
    pub id: String,
    /// Minor units.
    pub amount: i64,
    /// Where its result goes (`None`: the operator answers at once, or not at all).
    pub callback_url: Option<String>,
    pub wire: Map<String, Value>,
    /// Decided this long after it is taken (before the sandbox's scaling); 0: at once.
    pub after_ms: i64,
    /// For an operator that answers a refund of a payment returned whole already with a
    /// result of its own (Daraja's `R000001`): that code and words; the refund is taken
    /// and decided so. `None`: [`RefundTaken::AlreadyRefunded`].
    pub already: Option<(&'static str, &'static str)>,
}

impl Sandbox {
    /// Takes a refund of a paid push, as its operator would.
    pub async fn take_refund(
        &self,
        store: &Store,
        ask: RefundAsk<'_>,
    ) -> Result<RefundTaken, StoreError> {
        let original = ask.original;
        let op = operator(original.operator);
        let (approved, _) = op.answer(Answer::Approved);
        if original.refund_of.is_some()
            || original.receipt.is_none()
            || original.result_code.as_deref() != Some(approved)
        {
            return Ok(RefundTaken::NotPaid);
        }
        let earlier = store
            .sandbox_refunds_of(original.operator, &original.id)
            .await?;
        if let Some(same) = earlier.iter().find(|r| r.id == ask.id) {
            return Ok(RefundTaken::Duplicate(same.clone()));
        }
        // In flight or made: both hold money back.
        let taken: i64 = earlier
            .iter()
            .filter(|r| !r.decided || r.receipt.is_some())
            .map(|r| r.amount)
            .sum();
        let left = original.amount - taken;
        let (code, desc) = match ask.already {
            Some(already) if left <= 0 => already,
            None if left <= 0 => return Ok(RefundTaken::AlreadyRefunded),
            _ if ask.amount <= 0 || ask.amount > left => {
                return Ok(RefundTaken::Exceeds { left });
            }
            _ => op
                .refund_refusal(&original.phone)
                .unwrap_or_else(|| op.answer(Answer::Approved)),
        };
        let after = self.scaled_ms(ask.after_ms);
        let mut wire = ask.wire;
        wire.insert("refund_desc".into(), json!(desc));
        let new = NewRequest {
            operator: original.operator,
            id: ask.id,
            phone: original.phone.clone(),
            amount: ask.amount,
            currency: original.currency,
            payee: original.payee.clone(),
            reference: original.receipt.clone().unwrap_or_default(),
            callback_url: ask.callback_url,
            wire,
            refund_of: Some(original.id.clone()),
        };
        // The payer's number scripts the callbacks (lost, twice, late); the outcome is
        // the refund's own.
        let mut b = self
            .behaviour(original.operator, &original.phone)
            .decided(code, desc, after);
        if op.refund_result_lost(&original.phone) {
            b = b.callback_lost();
        }
        let now = now_ms();
        let request = SandboxRequest::pending(new, &b, now);
        if !store.insert_sandbox_request(&request).await? {
            // Raced a send of the same refund: that one.
            return Ok(
                match store.sandbox_request(request.operator, &request.id).await? {
                    Some(same) => RefundTaken::Duplicate(same),
                    None => RefundTaken::NotPaid,
                },
            );
        }
        if after == 0 {
            worker::decide(store, &request, code, desc, self).await?;
            if let Some(decided) = store.sandbox_request(request.operator, &request.id).await? {
                return Ok(RefundTaken::Taken(decided));
            }
        }
        Ok(RefundTaken::Taken(request))
    }
}

/// Whether a refund request was made (rather than refused).
pub fn made(req: &SandboxRequest) -> bool {
    req.decided && req.receipt.is_some()
}
