//! Two-factor sign-in: time-based one-time passwords (RFC 6238, HMAC-SHA-1, 6 digits,
//! 30-second steps: what every authenticator app speaks), the set-up QR code drawn as
//! SVG on the server, and single-use recovery codes.

use ring::hmac;
use sha2::{Digest, Sha256};

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Steps either side of now that are accepted (phone clocks drift).
const SKEW_STEPS: i64 = 1;
/// How many recovery codes a person gets.
pub const RECOVERY_CODES: usize = 10;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (how authenticator apps take secrets).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The inverse of [`base32`] (spaces ignored, any case); `None` for other characters.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        let v = BASE32
            .iter()
            .position(|&b| b as char == c.to_ascii_uppercase())?;
        buffer = (buffer << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// A new random 160-bit secret, base32.
pub fn new_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
    Ok(base32(&bytes))
}

/// The code for one time step (RFC 4226's dynamic truncation, 6 digits).
pub fn code_at_step(secret: &[u8], step: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &step.to_be_bytes());
    let mac = mac.as_ref();
    let offset = (mac[mac.len() - 1] & 0x0f) as usize;
    let value = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    format!("{:06}", value % 1_000_000)
}

/// The step a unix time (seconds) falls in.
pub fn step_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The step `code` is valid for, within one step of `now`, if any and if later than
/// `last_used` (a code works once).
pub fn accept(secret_b32: &str, code: &str, now_secs: i64, last_used: Option<i64>) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secret = base32_decode(secret_b32)?;
    let now = step_of(now_secs);
    (now - SKEW_STEPS..=now + SKEW_STEPS)
        .filter(|step| last_used.is_none_or(|last| *step > last))
        .find(|step| constant_time_eq(code_at_step(&secret, *step).as_bytes(), code.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(secret_b32: &str, account: &str) -> String {
    let label: String =
        url::form_urlencoded::byte_serialize(format!("Malipo:{account}").as_bytes())
            .collect::<String>()
            .replace('+', "%20");
    format!(
        "otpauth://totp/{label}?secret={secret_b32}&issuer=Malipo&algorithm=SHA1&digits=6&period={STEP_SECS}"
    )
}

/// `text` as a QR code in SVG (black modules on white, a 4-module quiet zone).
pub fn qr_svg(text: &str) -> Option<String> {
    use qrcodegen::{QrCode, QrCodeEcc};
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).ok()?;
    let size = qr.size();
    let border = 4;
    let dim = size + 2 * border;
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {dim} {dim}\" width=\"220\" \
         height=\"220\" role=\"img\" aria-label=\"QR code for your authenticator app\" \
         shape-rendering=\"crispEdges\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\
         <path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

/// Ten new recovery codes (`abcd-efgh-jk`: 50 random bits each), as shown once.
pub fn new_recovery_codes() -> anyhow::Result<Vec<String>> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 7];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
            let s = base32(&bytes).to_lowercase();
            Ok(format!("{}-{}-{}", &s[0..4], &s[4..8], &s[8..10]))
        })
        .collect()
}

/// What is stored of a recovery code: the SHA-256 of its letters and digits, lower-case
/// (so it may be typed with or without dashes, in any case).
pub fn recovery_code_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex::encode(Sha256::digest(format!("malipo-recovery:{normal}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, truncated to 6 digits.
    #[test]
    fn rfc_6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(code_at_step(secret, step_of(t)), code, "t={t}");
        }
    }

    #[test]
    fn base32_round_trips_rfc_4648_vectors() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32_decode("mzxw 6ytb oi").unwrap(), b"foobar");
        assert_eq!(base32_decode("MZ1"), None);
    }

    #[test]
    fn codes_are_accepted_within_a_step_and_once() {
        let secret = base32(b"12345678901234567890");
        let now = 1_111_111_111;
        assert_eq!(accept(&secret, "050471", now, None), Some(step_of(now)));
        assert_eq!(
            accept(&secret, "050 471", now + 30, None),
            Some(step_of(now))
        );
        assert_eq!(accept(&secret, "050471", now + 95, None), None, "too old");
        assert_eq!(
            accept(&secret, "050471", now, Some(step_of(now))),
            None,
            "replayed"
        );
        assert_eq!(accept(&secret, "05047", now, None), None);
        assert_eq!(accept(&secret, "abcdef", now, None), None);
    }

    #[test]
    fn the_qr_code_and_uri_name_the_account() {
        let uri = otpauth_uri("MZXW6YTBOI", "amina@lodge.example");
        assert_eq!(
            uri,
            "otpauth://totp/Malipo%3Aamina%40lodge.example?secret=MZXW6YTBOI&issuer=Malipo&algorithm=SHA1&digits=6&period=30"
        );
        let svg = qr_svg(&uri).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<path d=\"M"),
            "{svg}"
        );
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_typed_loosely() {
        let codes = new_recovery_codes().unwrap();
        assert_eq!(codes.len(), 10);
        let mut hashes: Vec<String> = codes.iter().map(|c| recovery_code_hash(c)).collect();
        hashes.sort();
        hashes.dedup();
        assert_eq!(hashes.len(), 10);
        let c = &codes[0];
        assert_eq!(
            recovery_code_hash(c),
            recovery_code_hash(&c.replace('-', "").to_uppercase())
        );
    }
}
