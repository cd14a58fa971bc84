//! PayPal's webhook events, verified **locally** (no call back to PayPal): the signed
//! text is `transmission_id|transmission_time|webhook_id|crc32(raw body)`, its signature
//! (`PAYPAL-TRANSMISSION-SIG`, SHA256withRSA) is checked against the certificate at
//! `PAYPAL-CERT-URL`. That URL is fetched only from PayPal's own host (the configured
//! API origin, or its `api.` twin where PayPal serves its certificates) over the same
//! TLS as every other call, so the certificate is PayPal's; its subject's common name
//! must still be a `paypal.com` name, and it must be in its validity period. Fetched
//! certificates are kept (by URL) for a day.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::Engine;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use tokio::sync::Mutex;
use x509_cert::{Certificate, der::DecodePem};

/// The headers of a webhook delivery, as PayPal names them.
pub const TRANSMISSION_ID: &str = "paypal-transmission-id";
pub const TRANSMISSION_TIME: &str = "paypal-transmission-time";
pub const TRANSMISSION_SIG: &str = "paypal-transmission-sig";
pub const CERT_URL: &str = "paypal-cert-url";
pub const AUTH_ALGO: &str = "paypal-auth-algo";

/// Where PayPal serves its webhook certificates.
pub const CERT_PATH: &str = "/v1/notifications/certs/";
/// How old a delivery may be: PayPal retries for up to three days.
const MAX_AGE_MS: i64 = 3 * 24 * 3600 * 1000 + 3600 * 1000;
/// The largest certificate read (PayPal's are about 2 KiB, chain included).
const MAX_CERT: usize = 16 * 1024;
/// How long a certificate is kept once fetched.
const CERT_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a URL that gave no usable certificate is not asked again.
const FAILED_TTL: Duration = Duration::from_secs(60);
/// Certificates kept at once (PayPal rotates them rarely).
const MAX_CERTS: usize = 16;
/// rsaEncryption.
const RSA_OID: &str = "1.2.840.113549.1.1.1";
/// The subject's commonName attribute.
const CN_OID: &str = "2.5.4.3";

/// Why an event was not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    #[error("a PayPal signature header is missing or malformed")]
    Headers,
    #[error("the certificate URL is not PayPal's")]
    CertUrl,
    #[error("the certificate could not be fetched or read")]
    Cert,
    #[error("the certificate is not PayPal's, or out of its validity")]
    CertNotPaypal,
    #[error("the signature does not match")]
    Signature,
    #[error("the delivery is older than PayPal's retries (a replay)")]
    Stale,
}

/// A webhook certificate's public key, as checked.
#[derive(Debug)]
pub struct VerifyingCert {
    /// PKCS#1 `RSAPublicKey`, as ring takes it.
    public_key: Vec<u8>,
    /// Validity, unix seconds.
    not_before: i64,
    not_after: i64,
}

impl VerifyingCert {
    /// Reads a PEM certificate (the first one: PayPal sends the leaf first): RSA, with a
    /// `paypal.com` common name.
    pub fn from_pem(pem: &str) -> Result<VerifyingCert, Unverified> {
        let first = pem
            .split_inclusive("-----END CERTIFICATE-----")
            .next()
            .unwrap_or("")
            .trim();
        let cert = Certificate::from_pem(first.as_bytes()).map_err(|_| Unverified::Cert)?;
        let tbs = &cert.tbs_certificate;
        let cn_ok = tbs
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .any(|atv| {
                atv.oid.to_string() == CN_OID
                    && std::str::from_utf8(atv.value.value()).is_ok_and(paypal_name)
            });
        if !cn_ok {
            return Err(Unverified::CertNotPaypal);
        }
        let spki = &tbs.subject_public_key_info;
        if spki.algorithm.oid.to_string() != RSA_OID {
            return Err(Unverified::CertNotPaypal);
        }
        let public_key = spki
            .subject_public_key
            .as_bytes()
            .ok_or(Unverified::Cert)?
            .to_vec();
        let secs = |t: &x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        Ok(VerifyingCert {
            public_key,
            not_before: secs(&tbs.validity.not_before),
            not_after: secs(&tbs.validity.not_after),
        })
    }

    /// Whether `signature` is this key's SHA256withRSA signature of `message`, at `now`
    /// (unix seconds) within the certificate's validity.
    pub fn verify(&self, message: &[u8], signature: &[u8], now: i64) -> Result<(), Unverified> {
        if now < self.not_before || now > self.not_after {
            return Err(Unverified::CertNotPaypal);
        }
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.public_key)
            .verify(message, signature)
            .map_err(|_| Unverified::Signature)
    }
}

/// A PayPal host name: `paypal.com` or under it (`messageverificationcerts.paypal.com`).
fn paypal_name(cn: &str) -> bool {
    cn == "paypal.com" || cn.ends_with(".paypal.com")
}

/// The text PayPal signs for a delivery: `transmission_id|transmission_time|webhook_id|crc32`,
/// the CRC-32 of the raw body in decimal.
pub fn signed_text(transmission_id: &str, time: &str, webhook_id: &str, body: &[u8]) -> String {
    format!(
        "{transmission_id}|{time}|{webhook_id}|{}",
        crc32fast::hash(body)
    )
}

/// The origins PayPal's certificates may come from, for an API at `base_url`: its own
/// origin, and — PayPal serves them from `api.` beside `api-m.` — that twin.
pub fn cert_origins(base_url: &str) -> Vec<url::Origin> {
    let Ok(base) = url::Url::parse(base_url) else {
        return Vec::new();
    };
    let mut origins = vec![base.origin()];
    if let Some(rest) = base.host_str().and_then(|h| h.strip_prefix("api-m.")) {
        let mut twin = base.clone();
        if twin.set_host(Some(&format!("api.{rest}"))).is_ok() {
            origins.push(twin.origin());
        }
    }
    origins
}

/// The certificate URL, if it is on one of `origins` and names a certificate under
/// PayPal's certificate path (`/v1/notifications/certs/CERT-…`; nothing else is ever
/// fetched).
pub fn allowed_cert_url(cert_url: &str, origins: &[url::Origin]) -> Option<url::Url> {
    let url = url::Url::parse(cert_url).ok()?;
    let name_ok = url.path().strip_prefix(CERT_PATH).is_some_and(|name| {
        name.strip_prefix("CERT-").is_some_and(|rest| {
            !rest.is_empty()
                && rest.len() <= 80
                && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    });
    let path_ok = name_ok
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    (path_ok && origins.contains(&url.origin())).then_some(url)
}

/// A certificate URL's outcome, kept until the instant.
type Kept = (Result<Arc<VerifyingCert>, Unverified>, Instant);

/// New certificate URLs fetched per minute at most: PayPal rotates its certificate
/// rarely, so a burst of new URLs is someone trying them (each would be a request to
/// PayPal, and the wait of the events behind it).
const NEW_FETCHES_PER_MINUTE: usize = 6;

/// Fetched certificates by URL (and URLs that gave none, briefly). Reading a kept one
/// never waits for a fetch; fetches go one at a time, and a few per minute at most.
#[derive(Default)]
pub struct CertCache {
    certs: std::sync::Mutex<HashMap<String, Kept>>,
    fetching: Mutex<Vec<Instant>>,
}

impl CertCache {
    fn kept(&self, url: &str, now: Instant) -> Option<Result<Arc<VerifyingCert>, Unverified>> {
        let certs = self.certs.lock().unwrap_or_else(|e| e.into_inner());
        certs
            .get(url)
            .filter(|(_, until)| now < *until)
            .map(|(cert, _)| cert.clone())
    }

    /// The certificate at `url`, from the cache or fetched with `http`.
    pub async fn get(
        &self,
        http: &reqwest::Client,
        url: &url::Url,
    ) -> Result<Arc<VerifyingCert>, Unverified> {
        if let Some(kept) = self.kept(url.as_str(), Instant::now()) {
            return kept;
        }
        let mut recent = self.fetching.lock().await;
        // Fetched by whoever held the lock before.
        let now = Instant::now();
        if let Some(kept) = self.kept(url.as_str(), now) {
            return kept;
        }
        recent.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        if recent.len() >= NEW_FETCHES_PER_MINUTE {
            tracing::warn!("PayPal webhook certificate fetches over their limit; refused");
            return Err(Unverified::Cert);
        }
        recent.push(now);
        let fetched = fetch(http, url).await;
        if let Err(e) = &fetched {
            tracing::warn!(error = %e, "PayPal webhook certificate not usable");
        }
        let ttl = if fetched.is_ok() {
            CERT_TTL
        } else {
            FAILED_TTL
        };
        let mut certs = self.certs.lock().unwrap_or_else(|e| e.into_inner());
        certs.retain(|_, (_, until)| now < *until);
        if certs.len() >= MAX_CERTS {
            // Room is made from what failed first: a good certificate is never pushed
            // out by URLs that gave nothing.
            certs.retain(|_, (cert, _)| cert.is_ok());
        }
        if certs.len() < MAX_CERTS {
            certs.insert(url.to_string(), (fetched.clone(), now + ttl));
        }
        fetched
    }
}

async fn fetch(http: &reqwest::Client, url: &url::Url) -> Result<Arc<VerifyingCert>, Unverified> {
    let mut res = http
        .get(url.clone())
        .send()
        .await
        .map_err(|_| Unverified::Cert)?;
    if !res.status().is_success() {
        return Err(Unverified::Cert);
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|_| Unverified::Cert)? {
        if body.len() + chunk.len() > MAX_CERT {
            return Err(Unverified::Cert);
        }
        body.extend_from_slice(&chunk);
    }
    let pem = std::str::from_utf8(&body).map_err(|_| Unverified::Cert)?;
    VerifyingCert::from_pem(pem).map(Arc::new)
}

/// A delivery's signature headers, read.
pub struct Transmission<'a> {
    pub id: &'a str,
    pub time: &'a str,
    pub signature: Vec<u8>,
    pub cert_url: &'a str,
}

impl<'a> Transmission<'a> {
    pub fn from_headers(
        headers: &'a axum::http::HeaderMap,
    ) -> Result<Transmission<'a>, Unverified> {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= 1024)
                .ok_or(Unverified::Headers)
        };
        if get(AUTH_ALGO)? != "SHA256withRSA" {
            return Err(Unverified::Headers);
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(get(TRANSMISSION_SIG)?)
            .map_err(|_| Unverified::Headers)?;
        // PayPal retries a delivery for up to three days; anything older (or from the
        // future) is a replay, refused before any certificate is looked at.
        let time = get(TRANSMISSION_TIME)?;
        let sent = crate::time::parse_utc(time).ok_or(Unverified::Headers)?;
        let now = crate::time::now_ms();
        if sent < now - MAX_AGE_MS || sent > now + 10 * 60_000 {
            return Err(Unverified::Stale);
        }
        Ok(Transmission {
            id: get(TRANSMISSION_ID)?,
            time,
            signature,
            cert_url: get(CERT_URL)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = include_str!("../../sandbox/paypal/sandbox-cert.pem");

    #[test]
    fn deliveries_are_timed_in_utc() {
        assert_eq!(crate::time::parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            crate::time::parse_utc("2026-12-02T10:00:00.123Z"),
            Some(1_796_205_600_000)
        );
        for bad in [
            "2026-12-02T10:00:00",
            "2026-13-02T10:00:00Z",
            "yesterday",
            "2026-12-02T10:00Z",
        ] {
            assert_eq!(crate::time::parse_utc(bad), None, "{bad}");
        }
        let now = crate::time::now_ms();
        let mut headers = axum::http::HeaderMap::new();
        for (name, value) in [
            (AUTH_ALGO, "SHA256withRSA".to_owned()),
            (TRANSMISSION_SIG, "AAAA".to_owned()),
            (TRANSMISSION_ID, "t-1".to_owned()),
            (
                CERT_URL,
                "https://api.paypal.com/v1/notifications/certs/CERT-1".to_owned(),
            ),
            (
                TRANSMISSION_TIME,
                crate::sandbox::paypal::rfc3339(now - 4 * 24 * 3600 * 1000),
            ),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        assert_eq!(
            Transmission::from_headers(&headers).err(),
            Some(Unverified::Stale)
        );
        headers.insert(
            TRANSMISSION_TIME,
            crate::sandbox::paypal::rfc3339(now).parse().unwrap(),
        );
        assert!(Transmission::from_headers(&headers).is_ok());
    }

    #[test]
    fn the_signed_text_ends_with_the_bodys_crc32_in_decimal() {
        // CRC-32 of "123456789" is 0xCBF43926.
        assert_eq!(
            signed_text("t-1", "2026-12-02T10:00:00Z", "WH-1", b"123456789"),
            "t-1|2026-12-02T10:00:00Z|WH-1|3421780262"
        );
    }

    #[test]
    fn certificates_come_only_from_paypals_host_and_path() {
        let live = cert_origins("https://api-m.paypal.com");
        let ok = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270";
        assert!(allowed_cert_url(ok, &live).is_some());
        assert!(
            allowed_cert_url(
                "https://api-m.paypal.com/v1/notifications/certs/CERT-1",
                &live
            )
            .is_some()
        );
        for bad in [
            "https://evil.example/v1/notifications/certs/CERT-1",
            "https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1",
            "http://api.paypal.com/v1/notifications/certs/CERT-1",
            "https://api.paypal.com/v1/oauth2/token",
            "https://api.paypal.com/v1/notifications/certs/CERT-1?x=1",
            "https://api.paypal.com/v1/notifications/certs/other",
            "https://api.paypal.com/v1/notifications/certs/CERT-1/x",
            "https://api.paypal.com/v1/notifications/certs/CERT-",
            "https://user@api.paypal.com/v1/notifications/certs/CERT-1",
            "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1",
        ] {
            assert!(allowed_cert_url(bad, &live).is_none(), "{bad}");
        }
        let local = cert_origins("http://127.0.0.1:3003");
        assert!(
            allowed_cert_url(
                "http://127.0.0.1:3003/v1/notifications/certs/CERT-x",
                &local
            )
            .is_some()
        );
        assert!(
            allowed_cert_url(
                "http://127.0.0.1:3004/v1/notifications/certs/CERT-x",
                &local
            )
            .is_none()
        );
    }

    #[test]
    fn the_sandbox_certificate_reads_as_paypals_and_a_forged_signature_fails() {
        let cert = VerifyingCert::from_pem(CERT).unwrap();
        let now = crate::time::now_ms() / 1000;
        assert_eq!(
            cert.verify(b"text", &[0u8; 256], now),
            Err(Unverified::Signature)
        );
        assert_eq!(
            cert.verify(b"text", &[0u8; 256], 4_000_000_000),
            Err(Unverified::CertNotPaypal),
            "past its validity"
        );
        assert!(VerifyingCert::from_pem("not a certificate").is_err());
        assert!(paypal_name("messageverificationcerts.paypal.com"));
        assert!(!paypal_name("paypal.com.evil.example"));
        assert!(!paypal_name("evilpaypal.com"));
    }
}
