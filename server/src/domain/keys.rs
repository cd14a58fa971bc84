//! API keys. Secret keys (`sk_test_…`, `sk_live_…`) are shown once and stored only as
//! SHA-256 hashes: they carry 190 bits of randomness, so a fast hash is as safe as a slow
//! password hash here and lets us find the key by its hash in one indexed lookup.
//! Publishable keys (`pk_…`) are public by design and stored as they are.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;

use super::ids::random_base62;

/// Length of a key's random part.
const KEY_RANDOM_LEN: usize = 32;

/// Test keys reach sandbox operators only; live keys reach real operators only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "test" => Some(Mode::Test),
            "live" => Some(Mode::Live),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Secret keys authenticate servers; publishable keys identify a merchant in a browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyKind {
    Secret,
    Publishable,
}

impl ApiKeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyKind::Secret => "secret",
            ApiKeyKind::Publishable => "publishable",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            ApiKeyKind::Secret => "sk",
            ApiKeyKind::Publishable => "pk",
        }
    }
}

/// A newly minted key: the full token exists only in memory until shown once.
pub struct NewKey {
    pub kind: ApiKeyKind,
    pub mode: Mode,
    pub token: SecretString,
}

impl NewKey {
    pub fn generate(kind: ApiKeyKind, mode: Mode) -> Self {
        let token = format!(
            "{}_{}_{}",
            kind.prefix(),
            mode,
            random_base62(KEY_RANDOM_LEN)
        );
        Self {
            kind,
            mode,
            token: token.into(),
        }
    }

    /// What is safe to show in a listing: `sk_test_…a1b2`.
    pub fn masked(&self) -> String {
        mask(self.token.expose_secret())
    }
}

/// `sk_test_…a1b2`: the prefix and the last four characters.
pub fn mask(token: &str) -> String {
    let prefix_end = token
        .match_indices('_')
        .nth(1)
        .map(|(i, _)| i + 1)
        .unwrap_or(0);
    let tail = token.len().saturating_sub(4).max(prefix_end);
    format!("{}…{}", &token[..prefix_end], &token[tail..])
}

/// A secret key presented by a caller, parsed for shape before any lookup.
pub struct SecretKey {
    mode: Mode,
    token: SecretString,
}

impl SecretKey {
    /// Accepts `sk_test_<32 base62>` and `sk_live_<32 base62>` only.
    pub fn parse(token: &str) -> Option<Self> {
        let rest = token.strip_prefix("sk_")?;
        let (mode, random) = rest.split_once('_')?;
        let mode = Mode::parse(mode)?;
        (random.len() == KEY_RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric())).then(
            || Self {
                mode,
                token: token.to_owned().into(),
            },
        )
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The hash the store keeps and looks the key up by.
    pub fn hash(&self) -> String {
        hash_token(self.token.expose_secret())
    }
}

/// Hex SHA-256 of a key token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_keys_parse_and_hash_stably() {
        let key = NewKey::generate(ApiKeyKind::Secret, Mode::Test);
        let token = key.token.expose_secret().to_owned();
        assert!(token.starts_with("sk_test_") && token.len() == 8 + KEY_RANDOM_LEN);
        let parsed = SecretKey::parse(&token).expect("own key parses");
        assert_eq!(parsed.mode(), Mode::Test);
        assert_eq!(parsed.hash(), hash_token(&token));
        assert_eq!(parsed.hash().len(), 64);
    }

    #[test]
    fn rejects_wrong_shapes() {
        let live = NewKey::generate(ApiKeyKind::Secret, Mode::Live);
        assert_eq!(
            SecretKey::parse(live.token.expose_secret()).map(|k| k.mode()),
            Some(Mode::Live)
        );
        let pk = NewKey::generate(ApiKeyKind::Publishable, Mode::Test);
        assert!(SecretKey::parse(pk.token.expose_secret()).is_none());
        assert!(SecretKey::parse("sk_prod_0123456789abcdef0123456789abcdef").is_none());
        assert!(SecretKey::parse("sk_test_short").is_none());
        assert!(SecretKey::parse("").is_none());
    }

    #[test]
    fn masks_keep_prefix_and_last_four() {
        assert_eq!(
            mask("sk_test_abcdefghijklmnopqrstuvwxyz123456"),
            "sk_test_…3456"
        );
        assert_eq!(mask("pk_live_ABCD"), "pk_live_…ABCD");
        // SHA-256("abc") test vector.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
