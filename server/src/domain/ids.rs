//! Prefixed, unguessable identifiers: `cs_` + 24 base62 characters (≈143 bits).
//! A checkout session id is a bearer capability for its hosted page, so it must not be
//! guessable or enumerable.

use std::fmt;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Length of the random part of every id.
pub const RANDOM_LEN: usize = 24;

/// `len` characters drawn uniformly from base62, from the OS's CSPRNG.
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        // The OS RNG failing is unrecoverable and, on Linux, practically impossible.
        getrandom::fill(&mut buf).expect("OS random number generator unavailable");
        // Rejection sampling: 248 = 4 × 62, so `b % 62` is unbiased for b < 248.
        for &b in &buf {
            if b < 248 && out.len() < len {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    out
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// The id's prefix, underscore included.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_base62(RANDOM_LEN)))
            }

            /// Accepts only the exact shape Malipo generates.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?;
                (rest.len() == RANDOM_LEN && is_base62(rest)).then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps a value read back from our own database.
            #[allow(dead_code, reason = "not every id type is read back yet")]
            pub(crate) fn from_db(s: String) -> Self {
                Self(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// A merchant: `mer_…`.
    MerchantId,
    "mer_"
);
prefixed_id!(
    /// A checkout session: `cs_…`.
    SessionId,
    "cs_"
);
prefixed_id!(
    /// A payment attempt on one rail: `pa_…`.
    AttemptId,
    "pa_"
);
prefixed_id!(
    /// An API key's public identifier (not the key): `key_…`.
    KeyId,
    "key_"
);
prefixed_id!(
    /// A merchant-facing event (a webhook's body): `evt_…`.
    EventId,
    "evt_"
);
prefixed_id!(
    /// A webhook endpoint: `we_…`.
    WebhookEndpointId,
    "we_"
);
prefixed_id!(
    /// One event owed to one webhook endpoint: `whd_…`.
    DeliveryId,
    "whd_"
);
prefixed_id!(
    /// A refund of a payment: `re_…`.
    RefundId,
    "re_"
);
prefixed_id!(
    /// A person who signs in to the dashboard: `usr_…`.
    UserId,
    "usr_"
);
prefixed_id!(
    /// An entry in a merchant's audit log: `aud_…`.
    AuditId,
    "aud_"
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_ids_round_trip_and_differ() {
        let ids: HashSet<String> = (0..1000)
            .map(|_| SessionId::generate().to_string())
            .collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert!(id.starts_with("cs_") && id.len() == 3 + RANDOM_LEN, "{id}");
            assert_eq!(
                SessionId::parse(id).map(|p| p.to_string()),
                Some(id.clone())
            );
        }
    }

    #[test]
    fn rejects_malformed_ids() {
        let ok = SessionId::generate().to_string();
        assert!(SessionId::parse(&ok[..ok.len() - 1]).is_none());
        assert!(SessionId::parse(&format!("{ok}x")).is_none());
        assert!(SessionId::parse(&ok.replace("cs_", "pa_")).is_none());
        assert!(SessionId::parse("cs_../../etc/passwd_____").is_none());
        assert!(SessionId::parse("cs_ÄÖÜäöüßÄÖÜäöüßÄÖÜäöüß").is_none());
        assert!(MerchantId::parse(&ok).is_none());
    }

    #[test]
    fn base62_is_roughly_uniform() {
        let s = random_base62(62 * 400);
        let mut counts = [0u32; 62];
        for b in s.bytes() {
            let i = ALPHABET.iter().position(|&a| a == b).unwrap();
            counts[i] += 1;
        }
        // Expected 400 each; a biased generator (e.g. plain `% 62`) skews the low digits.
        assert!(
            counts.iter().all(|&c| (280..=520).contains(&c)),
            "{counts:?}"
        );
    }
}
