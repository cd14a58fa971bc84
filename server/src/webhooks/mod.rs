//! Webhooks: endpoints merchants register, the signature on every request, and the
//! worker that delivers the outbox.
//!
//! Events are written by the store in the same transaction as the state change that
//! causes them (see `store::outbox`); this module only manages endpoints and posts
//! what the outbox holds, at least once, with the same event id every time.

pub mod egress;
pub mod signature;
mod worker;

pub use worker::Webhooks;

use secrecy::SecretString;

use crate::{
    domain::{MerchantId, Mode, WebhookEndpointId, ids::random_base62},
    resources::EventType,
    store::{EndpointRecord, Store, StoreError},
};

/// How long an old secret keeps signing after a rotation, unless the caller says.
pub const DEFAULT_ROTATION_OVERLAP_SECS: i64 = 24 * 3600;
/// The longest overlap a rotation may ask for.
pub const MAX_ROTATION_OVERLAP_SECS: i64 = 7 * 24 * 3600;
/// Most endpoints one merchant may have per mode.
pub const MAX_ENDPOINTS: usize = 16;

/// Why an endpoint could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Not an absolute URL, or, in live mode, plain `http://` or a local/private host.
    #[error(
        "url must be an absolute https URL on a public host (test mode also allows http and local hosts)"
    )]
    InvalidUrl,
    #[error("unknown event type {0:?}")]
    UnknownEvent(String),
    #[error("enabled_events must list at least one event type, or \"*\"")]
    NoEvents,
    #[error("at most {MAX_ENDPOINTS} webhook endpoints per mode")]
    TooMany,
    #[error("the rotation overlap must be 0 to {MAX_ROTATION_OVERLAP_SECS} seconds")]
    InvalidOverlap,
    #[error("no such webhook endpoint")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A fresh signing secret: `whsec_` + 32 base62 characters (≈190 bits).
pub fn new_secret() -> SecretString {
    SecretString::from(format!("whsec_{}", random_base62(32)))
}

/// Where events may be sent: `https://` always, `http://` in test mode only (merchants
/// develop against localhost). No credentials in the URL.
pub fn parse_endpoint_url(mode: Mode, raw: &str) -> Result<String, EndpointError> {
    let url = url::Url::parse(raw.trim()).map_err(|_| EndpointError::InvalidUrl)?;
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => mode == Mode::Test,
        _ => false,
    };
    if mode == Mode::Live && is_internal(&url) {
        return Err(EndpointError::InvalidUrl);
    }
    if !scheme_ok
        || url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
        || raw.len() > 2048
    {
        return Err(EndpointError::InvalidUrl);
    }
    Ok(url.into())
}

/// Whether a URL names this machine or a private network by literal address or
/// `localhost`: live webhooks must not be a way to make Malipo call its own
/// neighbourhood. (Names that resolve to private addresses are not caught here.)
fn is_internal(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.');
            d == "localhost" || d.ends_with(".localhost") || d.ends_with(".internal")
        }
        Some(url::Host::Ipv4(ip)) => {
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1])
        }
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some()
        }
        None => true,
    }
}

/// Checks and de-duplicates a list of event types; `"*"` means all of them.
pub fn parse_enabled_events(list: &[String]) -> Result<Vec<String>, EndpointError> {
    let mut out: Vec<String> = Vec::new();
    for e in list {
        let e = e.trim();
        if e != "*" && EventType::parse(e).is_none() {
            return Err(EndpointError::UnknownEvent(e.to_owned()));
        }
        if !out.iter().any(|o| o == e) {
            out.push(e.to_owned());
        }
    }
    if out.is_empty() {
        return Err(EndpointError::NoEvents);
    }
    if out.iter().any(|e| e == "*") {
        out = vec!["*".into()];
    }
    Ok(out)
}

/// Registers an endpoint; the returned record holds the secret, to be shown once.
pub async fn create_endpoint(
    store: &Store,
    merchant_id: &MerchantId,
    mode: Mode,
    url: &str,
    enabled_events: &[String],
    description: &str,
    now: i64,
) -> Result<EndpointRecord, EndpointError> {
    let url = parse_endpoint_url(mode, url)?;
    let enabled_events = parse_enabled_events(enabled_events)?;
    if store.endpoints(merchant_id, mode).await?.len() >= MAX_ENDPOINTS {
        return Err(EndpointError::TooMany);
    }
    let record = EndpointRecord {
        id: WebhookEndpointId::generate(),
        merchant_id: merchant_id.clone(),
        mode,
        url,
        description: description.trim().to_owned(),
        enabled_events,
        secret: new_secret(),
        previous_secret: None,
        previous_expires_at: None,
        created_at: now,
    };
    store.insert_endpoint(&record).await?;
    Ok(record)
}

/// Gives an endpoint a new secret; the old one keeps signing for `overlap_secs`, so the
/// merchant can deploy the new one without dropping a webhook.
pub async fn rotate_secret(
    store: &Store,
    id: &WebhookEndpointId,
    overlap_secs: i64,
    now: i64,
) -> Result<EndpointRecord, EndpointError> {
    if !(0..=MAX_ROTATION_OVERLAP_SECS).contains(&overlap_secs) {
        return Err(EndpointError::InvalidOverlap);
    }
    if !store
        .rotate_endpoint_secret(id, &new_secret(), now + overlap_secs * 1000)
        .await?
    {
        return Err(EndpointError::NotFound);
    }
    store.endpoint(id).await?.ok_or(EndpointError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_endpoints_need_https() {
        assert!(parse_endpoint_url(Mode::Live, "https://lodge.example/hooks").is_ok());
        assert!(parse_endpoint_url(Mode::Live, "http://lodge.example/hooks").is_err());
        assert!(parse_endpoint_url(Mode::Test, "http://127.0.0.1:8080/hooks").is_ok());
        assert!(parse_endpoint_url(Mode::Test, "ftp://lodge.example/").is_err());
        assert!(parse_endpoint_url(Mode::Test, "https://user:pw@lodge.example/").is_err());
        assert!(parse_endpoint_url(Mode::Test, "/relative").is_err());
        // Live endpoints may not point Malipo at its own machine or private networks.
        for internal in [
            "https://localhost/h",
            "https://127.0.0.1/h",
            "https://10.1.2.3/h",
            "https://192.168.0.10:8443/h",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/h",
            "https://[fd00::1]/h",
            "https://[::ffff:10.0.0.1]/h",
            "https://metadata.google.internal/h",
        ] {
            assert!(
                parse_endpoint_url(Mode::Live, internal).is_err(),
                "{internal}"
            );
        }
        assert!(parse_endpoint_url(Mode::Live, "https://41.90.64.10/hooks").is_ok());
        assert!(parse_endpoint_url(Mode::Test, "https://192.168.0.10/hooks").is_ok());
    }

    #[test]
    fn event_lists_are_checked() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_enabled_events(&s(&["payment.failed", "payment.failed"])).unwrap(),
            s(&["payment.failed"])
        );
        assert_eq!(
            parse_enabled_events(&s(&["payment.failed", "*"])).unwrap(),
            s(&["*"])
        );
        assert!(matches!(
            parse_enabled_events(&s(&["payment.refunded.maybe"])),
            Err(EndpointError::UnknownEvent(_))
        ));
        assert!(matches!(
            parse_enabled_events(&[]),
            Err(EndpointError::NoEvents)
        ));
    }

    #[test]
    fn secrets_are_prefixed_and_fresh() {
        use secrecy::ExposeSecret;
        let a = new_secret();
        let b = new_secret();
        assert!(a.expose_secret().starts_with("whsec_"));
        assert_eq!(a.expose_secret().len(), 38);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
