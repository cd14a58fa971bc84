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

/// The certificate URL, if it is on one of `origins` and under PayPal's certificate
/// path (nothing else is ever fetched).
pub fn allowed_cert_url(cert_url: &str, origins: &[url::Origin]) -> Option<url::Url> {
    let url = url::Url::parse(cert_url).ok()?;
    let path_ok = url.path().starts_with(CERT_PATH)
        && url.path().len() <= CERT_PATH.len() + 100
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    (path_ok && origins.contains(&url.origin())).then_some(url)
}

/// A certificate URL's outcome, kept until the instant.
type Kept = (Result<Arc<VerifyingCert>, Unverified>, Instant);

/// Fetched certificates by URL (and URLs that gave none, briefly), one fetch at a time.
#[derive(Default)]
pub struct CertCache {
    certs: Mutex<HashMap<String, Kept>>,
}

impl CertCache {
    /// The certificate at `url`, from the cache or fetched with `http`.
    pub async fn get(
        &self,
        http: &reqwest::Client,
        url: &url::Url,
    ) -> Result<Arc<VerifyingCert>, Unverified> {
        // Held across the fetch: a burst of events shares one fetch.
        let mut certs = self.certs.lock().await;
        let now = Instant::now();
        if let Some((cert, until)) = certs.get(url.as_str())
            && now < *until
        {
            return cert.clone();
        }
        let fetched = fetch(http, url).await;
        if let Err(e) = &fetched {
            tracing::warn!(error = %e, "PayPal webhook certificate not usable");
        }
        certs.retain(|_, (_, until)| now < *until);
        if certs.len() >= MAX_CERTS {
            certs.clear();
        }
        let ttl = if fetched.is_ok() {
            CERT_TTL
        } else {
            FAILED_TTL
        };
        certs.insert(url.to_string(), (fetched.clone(), now + ttl));
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
        Ok(Transmission {
            id: get(TRANSMISSION_ID)?,
            time: get(TRANSMISSION_TIME)?,
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
