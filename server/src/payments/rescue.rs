//! "I paid, but the page didn't notice": the shopper gives the receipt code from the
//! operator's confirmation SMS (or pastes the whole SMS), and Malipo asks the operator
//! about it (M-PESA's Transaction Status) before believing anything. Only a payment the
//! operator calls completed, of the attempt's exact amount, to this install's shortcode,
//! from the attempt's payer, and not already on another attempt, settles the attempt.
//! At most [`RESCUES_PER_HOUR`] checks per session.

use crate::{
    connectors::{LookupResult, RailId},
    domain::{SessionId, ids::random_base62, keys::hash_token},
    store::{
        AttemptOutcome, AttemptRecord, AttemptStatus, PaymentStatus, RescueRecord, StoreError,
    },
    time::now_ms,
};

use super::{CallbackError, Payments};

/// Checks a session may ask for in an hour.
pub const RESCUES_PER_HOUR: i64 = 5;
/// The purpose the result URL's token is derived for.
const RESCUE_CALLBACK: &str = "rescue-callback";
/// A payment looked up must have been made between a minute before the attempt's push
/// and this long after it (its prompt's life, with the operator's delays).
pub const PAID_WITHIN_MS: i64 = 30 * 60_000;
/// Attempts older than this are not rescued here (a person reconciles them).
pub const RESCUE_WITHIN_MS: i64 = 48 * 3_600_000;

/// Why a check was not started (each has its words on the page: `rescue_…`).
#[derive(Debug, thiserror::Error)]
pub enum RescueError {
    #[error("no receipt code in the text")]
    NoCode,
    #[error("too many checks for this session")]
    Limited,
    #[error("no payment on this page to check")]
    NothingToCheck,
    #[error("another payment from this number, of this amount, is not settled yet")]
    Ambiguous,
    #[error("the session is paid already")]
    Paid,
    #[error("no such session")]
    SessionNotFound,
    #[error("the operator could not be asked")]
    Unavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RescueError {
    /// The page's code for it.
    pub fn code(&self) -> &'static str {
        match self {
            RescueError::NoCode => "rescue_code",
            RescueError::Limited => "rescue_limit",
            RescueError::NothingToCheck => "rescue_none",
            RescueError::Ambiguous => "rescue_wait",
            RescueError::Paid | RescueError::SessionNotFound => "rescue_none",
            RescueError::Unavailable | RescueError::Store(_) => "rescue_unavailable",
        }
    }
}

/// The M-PESA receipt code in what the shopper typed or pasted: a word of ten letters
/// and digits, upper-cased (`qlate12345`, or "QLATE12345 Confirmed. Ksh1,500.00 sent to
/// …" → `QLATE12345`). Codes nearly always hold a digit, so the first such word with one
/// wins; else the first of ten letters (an SMS's other words are rarely ten long).
pub fn receipt_code(text: &str) -> Option<String> {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() == 10 && w.bytes().any(|b| b.is_ascii_alphabetic()))
        .collect();
    words
        .iter()
        .find(|w| w.bytes().any(|b| b.is_ascii_digit()))
        .or(words.first())
        .map(|w| w.to_ascii_uppercase())
}

/// Whether the payer the operator names (digits, possibly masked in the middle with `*`
/// or `•`, however many) is the attempt's (international digits): the digits shown
/// before and after the mask must be ours, and at least six of them shown.
fn same_payer(named: &str, ours: &str) -> bool {
    let named = named.trim();
    let prefix: String = named.chars().take_while(char::is_ascii_digit).collect();
    let suffix: String = {
        let mut s: Vec<char> = named
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect();
        s.reverse();
        s.into_iter().collect()
    };
    if prefix.len() == named.len() {
        return named == ours;
    }
    prefix.len() >= 3
        && suffix.len() >= 3
        && prefix.len() + suffix.len() >= 6
        && ours.len() > prefix.len() + suffix.len()
        && ours.starts_with(&prefix)
        && ours.ends_with(&suffix)
}

impl Payments {
    /// Starts a check of the receipt code in `text` for the session's last payment.
    pub async fn rescue(&self, sid: &SessionId, text: &str) -> Result<String, RescueError> {
        let code = receipt_code(text).ok_or(RescueError::NoCode)?;
        let session = self
            .store
            .session(sid)
            .await?
            .ok_or(RescueError::SessionNotFound)?;
        if session.payment_status == PaymentStatus::Paid {
            return Err(RescueError::Paid);
        }
        let now = now_ms();
        if self.store.count_rescues(sid, now - 3_600_000).await? >= RESCUES_PER_HOUR {
            return Err(RescueError::Limited);
        }
        // The payment it would settle: the session's last, still pending or unknown (a
        // push the operator declined or timed out was not paid), recent, on a rail whose
        // payments can be looked up by receipt.
        let attempt = self
            .store
            .latest_attempt(sid)
            .await?
            .filter(|a| matches!(a.status, AttemptStatus::Pending | AttemptStatus::Unknown))
            .filter(|a| now - a.created_at < RESCUE_WITHIN_MS)
            .ok_or(RescueError::NothingToCheck)?;
        // Another unsettled payment from this number, of this amount, at about this time
        // (in any session) could be the one the receipt is for: not decided here.
        if self
            .store
            .similar_unsettled(&attempt, PAID_WITHIN_MS)
            .await?
            > 0
        {
            return Err(RescueError::Ambiguous);
        }
        let connector = self
            .connector(&session.merchant_id, attempt.rail, session.mode)
            .filter(|c| c.looks_up_receipts())
            .ok_or(RescueError::NothingToCheck)?;
        let rescue = RescueRecord {
            id: format!("rs_{}", random_base62(24)),
            session_id: sid.clone(),
            attempt_id: attempt.id.clone(),
            rail: attempt.rail,
            receipt: code.clone(),
            status: "checking".into(),
            detail: None,
            created_at: now,
        };
        // Counted again as it is written: parallel requests never pass the limit together.
        if !self
            .store
            .insert_rescue_capped(&rescue, now - 3_600_000, RESCUES_PER_HOUR)
            .await?
        {
            return Err(RescueError::Limited);
        }
        // A receipt already on an attempt pays nothing twice: refused without asking
        // (and said as any refusal, so the page tells nobody whose code it was).
        if self.store.receipt_taken(attempt.rail, &code).await? {
            self.store
                .decide_rescue(
                    &rescue.id,
                    "refused",
                    "the receipt is already another attempt's",
                    now,
                )
                .await?;
            return Ok(rescue.id);
        }
        let result_url = format!(
            "{}/callbacks/{}/{}/{}",
            self.public_url,
            attempt.rail,
            rescue.id,
            self.store.derived_token(RESCUE_CALLBACK, &rescue.id)
        );
        if let Err(e) = connector.lookup_receipt(&code, &result_url).await {
            tracing::warn!(session = %sid, error = %e, "a receipt check could not be sent");
            self.store
                .decide_rescue(&rescue.id, "refused", &format!("not asked: {e}"), now_ms())
                .await?;
            return Err(RescueError::Unavailable);
        }
        tracing::info!(session = %sid, rescue = %rescue.id, "receipt check sent to the operator");
        Ok(rescue.id)
    }

    /// The operator's answer to a check, at `/callbacks/{rail}/{rescue}/{token}`.
    pub async fn rescue_callback(
        &self,
        rail: RailId,
        rescue_id: &str,
        token: &str,
        body: &[u8],
    ) -> Result<(), CallbackError> {
        let expected = self.store.derived_token(RESCUE_CALLBACK, rescue_id);
        if hash_token(&expected) != hash_token(token) {
            return Err(CallbackError::Forbidden);
        }
        let rescue = self
            .store
            .rescue(rescue_id)
            .await?
            .filter(|r| r.rail == rail)
            .ok_or(CallbackError::Forbidden)?;
        // Evidence first, kept apart from payment callbacks (never applied as one).
        self.store
            .record_callback(
                &format!("{rail}:rescue"),
                &rescue.attempt_id,
                body,
                now_ms(),
            )
            .await?;
        if rescue.status != "checking" {
            return Ok(());
        }
        let attempt = self
            .store
            .attempt(&rescue.attempt_id)
            .await?
            .ok_or(CallbackError::Forbidden)?;
        let session = self
            .store
            .session(&attempt.session_id)
            .await?
            .ok_or(CallbackError::Forbidden)?;
        let connector = self
            .connector(&session.merchant_id, rail, session.mode)
            .ok_or(CallbackError::Forbidden)?;
        let result = connector
            .parse_lookup_result(body)
            .map_err(|_| CallbackError::BadBody)?;
        let now = now_ms();
        if !result.answered {
            // A queue time-out notice: nothing known; the shopper may ask again.
            self.store
                .decide_rescue(&rescue.id, "unanswered", &result.detail, now)
                .await?;
            self.changed(&attempt.session_id);
            return Ok(());
        }
        let mut why_not = mismatch(&result, &rescue, &attempt, connector.lookup_payee());
        if why_not.is_none()
            && !matches!(
                attempt.status,
                AttemptStatus::Pending | AttemptStatus::Unknown
            )
        {
            why_not = Some("the attempt was settled meanwhile");
        }
        if why_not.is_none()
            && self
                .store
                .similar_unsettled(&attempt, PAID_WITHIN_MS)
                .await?
                > 0
        {
            why_not = Some("another unsettled payment from this number could be the one");
        }
        if let Some(why) = why_not {
            tracing::warn!(rescue = %rescue.id, why, "a receipt check did not confirm the payment");
            self.store
                .decide_rescue(
                    &rescue.id,
                    "refused",
                    &format!("{why}: {}", result.detail),
                    now,
                )
                .await?;
            self.changed(&attempt.session_id);
            return Ok(());
        }
        let outcome = AttemptOutcome {
            operator_receipt: Some(rescue.receipt.clone()),
            ..Default::default()
        };
        match self
            .store
            .finalize_attempt(
                &attempt.id,
                AttemptStatus::Succeeded,
                &outcome,
                "rescue",
                now,
            )
            .await
        {
            Ok(true) => {
                tracing::warn!(attempt = %attempt.id, was = attempt.status.as_str(), "settled by the shopper's receipt, confirmed by the operator");
                self.store
                    .decide_rescue(&rescue.id, "confirmed", &result.detail, now)
                    .await?;
            }
            // Settled meanwhile (a callback, the poller): the receipt was not stored.
            Ok(false) => {
                self.store
                    .decide_rescue(
                        &rescue.id,
                        "refused",
                        "the attempt was settled meanwhile",
                        now,
                    )
                    .await?;
            }
            Err(e) if e.is_unique_violation() => {
                self.store
                    .decide_rescue(
                        &rescue.id,
                        "refused",
                        "the receipt is already another attempt's",
                        now,
                    )
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        self.changed(&attempt.session_id);
        Ok(())
    }
}

/// Why the operator's answer does not confirm this attempt, if it does not.
fn mismatch(
    r: &LookupResult,
    rescue: &RescueRecord,
    attempt: &AttemptRecord,
    payee: Option<&str>,
) -> Option<&'static str> {
    if !r.answered {
        return Some("the operator did not answer in time");
    }
    if !r.completed {
        return Some("the operator knows no completed payment with this receipt");
    }
    if r.receipt.as_deref() != Some(rescue.receipt.as_str()) {
        return Some("another receipt");
    }
    if r.amount != Some(attempt.amount) {
        return Some("another amount");
    }
    let window = attempt.created_at - 60_000..=attempt.created_at + PAID_WITHIN_MS;
    if !r.paid_at.is_some_and(|t| window.contains(&t)) {
        return Some("paid at another time than this attempt's prompt");
    }
    if payee.is_none() || r.payee.as_deref() != payee {
        return Some("paid to someone else");
    }
    match (&r.payer, &attempt.payer) {
        (Some(named), Some(ours)) if same_payer(named, ours) => None,
        _ => Some("paid from another number"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_found_in_an_sms_or_alone() {
        assert_eq!(receipt_code("qlate12345").as_deref(), Some("QLATE12345"));
        assert_eq!(
            receipt_code("QLATE12345 Confirmed. Ksh1,500.00 sent to LODGE for account MARA-0042")
                .as_deref(),
            Some("QLATE12345")
        );
        assert_eq!(
            receipt_code(" ... NLJ7RT61SV confirmed").as_deref(),
            Some("NLJ7RT61SV")
        );
        assert_eq!(receipt_code("Confirmed 1234567890"), None, "digits only");
        assert_eq!(
            receipt_code("sbxqwertyu").as_deref(),
            Some("SBXQWERTYU"),
            "letters only"
        );
        assert_eq!(
            receipt_code("Transfers QKJ4ABC123 Confirmed").as_deref(),
            Some("QKJ4ABC123"),
            "one with a digit first"
        );
        assert_eq!(receipt_code(""), None);
    }

    fn attempt(status: AttemptStatus) -> AttemptRecord {
        AttemptRecord {
            id: crate::domain::AttemptId::parse("pa_0123456789abcdefghijABCD").unwrap(),
            session_id: SessionId::parse("cs_0123456789abcdefghijABCD").unwrap(),
            rail: RailId::Mpesa,
            status,
            amount: crate::domain::Money::new(150_000, crate::domain::money::Currency::Kes)
                .unwrap(),
            payer: Some("254712345678".into()),
            operator_request_id: None,
            operator_receipt: None,
            failure_code: None,
            failure_detail: None,
            next_poll_at: None,
            poll_count: 0,
            created_at: 1_000_000_000,
            updated_at: 1_000_000_000,
            finalized_at: None,
            late_from: None,
            duplicate: false,
            quote: None,
            rail_data: None,
            credit_minor: None,
            overpaid_minor: None,
        }
    }

    #[test]
    fn only_a_full_match_at_the_prompts_time_confirms() {
        let a = attempt(AttemptStatus::Pending);
        let rescue = RescueRecord {
            id: "rs_x".into(),
            session_id: a.session_id.clone(),
            attempt_id: a.id.clone(),
            rail: RailId::Mpesa,
            receipt: "QKJ4ABC123".into(),
            status: "checking".into(),
            detail: None,
            created_at: a.created_at + 120_000,
        };
        let good = LookupResult {
            answered: true,
            completed: true,
            receipt: Some("QKJ4ABC123".into()),
            amount: Some(a.amount),
            payee: Some("174379".into()),
            payer: Some("2547*****678".into()),
            paid_at: Some(a.created_at + 30_000),
            detail: "0 ok".into(),
        };
        assert_eq!(mismatch(&good, &rescue, &a, Some("174379")), None);
        let with = |f: &dyn Fn(&mut LookupResult)| {
            let mut r = good.clone();
            f(&mut r);
            mismatch(&r, &rescue, &a, Some("174379"))
        };
        // An old payment (a month before, or over the counter yesterday) pays nothing.
        assert!(with(&|r| r.paid_at = Some(a.created_at - 86_400_000)).is_some());
        assert!(with(&|r| r.paid_at = Some(a.created_at + PAID_WITHIN_MS + 1)).is_some());
        assert!(with(&|r| r.paid_at = None).is_some());
        assert!(with(&|r| r.completed = false).is_some());
        assert!(with(&|r| r.receipt = Some("QKJ4ABC124".into())).is_some());
        assert!(with(&|r| r.amount = None).is_some());
        assert!(with(&|r| r.payee = Some("600000".into())).is_some());
        assert!(with(&|r| r.payer = Some("2547*****679".into())).is_some());
        assert!(
            mismatch(&good, &rescue, &a, None).is_some(),
            "no payee to match"
        );
    }

    #[test]
    fn a_masked_payer_must_match_what_it_shows() {
        assert!(same_payer("254712345678", "254712345678"));
        assert!(
            same_payer("2547******678", "254712345678"),
            "any mask length"
        );
        assert!(same_payer("2547*****678", "254712345678"));
        assert!(same_payer("2547•••••678", "254712345678"));
        assert!(!same_payer("2547*****679", "254712345678"));
        assert!(!same_payer("************", "254712345678"), "nothing shown");
        assert!(!same_payer("", "254712345678"));
    }
}
