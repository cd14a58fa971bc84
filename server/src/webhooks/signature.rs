//! `Malipo-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
//!
//! The key is the whole secret string, `whsec_` included, as UTF-8 bytes. During a
//! secret rotation the header carries one `v1` per active secret; a receiver accepts
//! the request if any of them matches its secret. The timestamp is signed too, so a
//! captured request cannot be replayed after the tolerance (300 s recommended).
//!
//! Receivers in Rust can use [`verify`] as it is; it depends on `hmac`, `sha2` and `hex`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header's name.
pub const HEADER: &str = "Malipo-Signature";
/// How far a receiver should let the signed time drift from its own clock.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, t: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The hex signature of `body` at time `t` under one secret.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, t, body).finalize().into_bytes())
}

/// The whole header value, one `v1` per secret.
pub fn header_value(secrets: &[&str], t: i64, body: &[u8]) -> String {
    let mut out = format!("t={t}");
    for secret in secrets {
        out.push_str(",v1=");
        out.push_str(&sign(secret, t, body));
    }
    out
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no t= timestamp in the signature header")]
    MissingTimestamp,
    #[error("no v1= signature in the signature header")]
    MissingSignature,
    #[error("the signed timestamp is outside the tolerance")]
    OutsideTolerance,
    #[error("no v1 signature matches the secret")]
    Mismatch,
}

/// Checks a `Malipo-Signature` header against the raw request body (the exact bytes
/// received, before any JSON parsing), one secret, and the receiver's clock.
pub fn verify(
    header: &str,
    body: &[u8],
    secret: &str,
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::MissingTimestamp)?;
    if signatures.is_empty() {
        return Err(SignatureError::MissingSignature);
    }
    // Checked arithmetic: a hostile `t=` (i64::MIN, say) must not overflow, which
    // panics in debug builds and wraps into "fresh" in release.
    match now_secs.checked_sub(t).and_then(i64::checked_abs) {
        Some(age) if age <= tolerance_secs => {}
        _ => return Err(SignatureError::OutsideTolerance),
    }
    // `verify_slice` compares in constant time.
    if signatures
        .iter()
        .any(|s| mac(secret, t, body).verify_slice(s).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MalipoTestVectorSecret000000000";
    const BODY: &[u8] = br#"{"id":"evt_test","object":"event"}"#;
    const T: i64 = 1_700_000_000;
    // Computed independently: python3 -c "import hmac,hashlib; print(hmac.new(
    //   b'whsec_MalipoTestVectorSecret000000000', b'1700000000.' + body,
    //   hashlib.sha256).hexdigest())"
    const VECTOR: &str = "8d7e303f738db50435d7c9b0ffc6198a33f72b36771ddb85165b77b490eed688";
    const OLD_VECTOR: &str = "2988068a1be905ae9f9bcf11a0fdb1a08b6123ed995eab490ebdb1b0e6f5ccf9";

    #[test]
    fn matches_the_fixed_vectors() {
        assert_eq!(sign(SECRET, T, BODY), VECTOR);
        assert_eq!(
            header_value(&[SECRET, "whsec_OldSecret"], T, BODY),
            format!("t={T},v1={VECTOR},v1={OLD_VECTOR}")
        );
    }

    #[test]
    fn verifies_good_and_refuses_bad() {
        let h = format!("t={T},v1={VECTOR}");
        assert_eq!(verify(&h, BODY, SECRET, T + 10, 300), Ok(()));
        assert_eq!(verify(&h, BODY, SECRET, T - 300, 300), Ok(()));
        assert_eq!(
            verify(&h, BODY, SECRET, T + 301, 300),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(&h, b"{}", SECRET, T, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&h, BODY, "whsec_other", T, 300),
            Err(SignatureError::Mismatch)
        );
        // A changed timestamp invalidates the signature.
        let shifted = format!("t={},v1={VECTOR}", T + 1);
        assert_eq!(
            verify(&shifted, BODY, SECRET, T, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&format!("v1={VECTOR}"), BODY, SECRET, T, 300),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            verify(&format!("t={T}"), BODY, SECRET, T, 300),
            Err(SignatureError::MissingSignature)
        );
    }

    #[test]
    fn hostile_timestamps_are_refused_not_overflowed() {
        for t in [i64::MIN, i64::MIN + 1, i64::MAX, -1] {
            let h = format!("t={t},v1={VECTOR}");
            assert_eq!(
                verify(&h, BODY, SECRET, T, 300),
                Err(SignatureError::OutsideTolerance),
                "t={t}"
            );
        }
        assert_eq!(
            verify(&format!("t={T},v1={VECTOR}"), BODY, SECRET, i64::MIN, 300),
            Err(SignatureError::OutsideTolerance)
        );
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let h = header_value(&["whsec_new", SECRET], T, BODY);
        assert_eq!(verify(&h, BODY, SECRET, T, 300), Ok(()));
        assert_eq!(verify(&h, BODY, "whsec_new", T, 300), Ok(()));
    }
}
