//! Dashboard passwords: what is accepted, and how it is stored.
//!
//! Stored as argon2id PHC strings with the parameters OWASP recommends for argon2id
//! (19 MiB of memory, 2 passes, 1 lane) and a 16-byte random salt. Hashing is done on
//! the blocking pool, two at a time at most, so a flood of sign-ins cannot take every
//! core or gigabytes of memory.

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
};
use secrecy::{ExposeSecret, SecretString};
use std::sync::LazyLock;
use tokio::sync::Semaphore;

/// Memory in KiB, passes, lanes: stated in the README.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
pub const ARGON2_PASSES: u32 = 2;
pub const ARGON2_LANES: u32 = 1;

/// Shortest password accepted.
pub const MIN_LEN: usize = 12;
/// Longest (characters): long enough for any passphrase, short enough to bound work.
pub const MAX_LEN: usize = 128;

static COMMON: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// At most this many hashes at once (each takes 19 MiB and a core for a moment).
static HASHING: Semaphore = Semaphore::const_new(2);

/// Why a new password was refused, with the words shown beside the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    #[error("Use at least 12 characters.")]
    TooShort,
    #[error("Use at most 128 characters.")]
    TooLong,
    #[error("This password is one of the most common ones: choose another.")]
    Common,
    #[error("Do not use your email address in your password.")]
    ContainsEmail,
    #[error("Use more than one or two different characters.")]
    Repetitive,
}

/// Checks a new password (no list is downloaded at run time: the common ones are
/// shipped in `common-passwords.txt`).
pub fn check_new(password: &str, email: &str) -> Result<(), WeakPassword> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(WeakPassword::TooShort);
    }
    if len > MAX_LEN {
        return Err(WeakPassword::TooLong);
    }
    let lower = password.to_lowercase();
    if COMMON.iter().any(|c| *c == lower) {
        return Err(WeakPassword::Common);
    }
    let local = email.split('@').next().unwrap_or("").to_lowercase();
    if local.chars().count() >= 4 && lower.contains(&local) {
        return Err(WeakPassword::ContainsEmail);
    }
    let mut distinct: Vec<char> = lower.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() <= 3 {
        return Err(WeakPassword::Repetitive);
    }
    Ok(())
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None)
        .expect("argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password (argon2id PHC string).
pub async fn hash(password: SecretString) -> anyhow::Result<String> {
    let _permit = HASHING.acquire().await?;
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        argon2()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await?
}

/// A hash of nothing anyone knows: checked against when there is no such account, so
/// answering takes as long as for a real one (no account discovery by timing).
static DECOY: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::encode_b64(b"malipo-decoy-pad").expect("16 bytes");
    argon2()
        .hash_password(b"no account has this password", &salt)
        .expect("hashing the decoy")
        .to_string()
});

/// Whether `password` matches `stored` (or, with no stored hash, does the same work and
/// answers no).
pub async fn verify(password: SecretString, stored: Option<String>) -> bool {
    let Ok(_permit) = HASHING.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        let real = stored.is_some();
        let stored = stored.unwrap_or_else(|| DECOY.clone());
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        // Verify with the parameters in the hash (older hashes keep working).
        let ok = Argon2::default()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok();
        ok && real
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_passwords_are_checked() {
        let email = "amina.k@lodge.example";
        assert_eq!(check_new("short", email), Err(WeakPassword::TooShort));
        assert_eq!(
            check_new(&"ab1".repeat(50), email),
            Err(WeakPassword::TooLong)
        );
        assert_eq!(check_new("Password1234", email), Err(WeakPassword::Common));
        assert_eq!(check_new("HakunaMatata", email), Err(WeakPassword::Common));
        assert_eq!(
            check_new("my amina.k pass", email),
            Err(WeakPassword::ContainsEmail)
        );
        assert_eq!(
            check_new("abababababab", email),
            Err(WeakPassword::Repetitive)
        );
        assert_eq!(check_new("zebra crossing at dawn", email), Ok(()));
        // Characters, not bytes: twelve Swahili-keyboard characters are enough.
        assert_eq!(check_new("ñgombe-ñyekundu", email), Ok(()));
    }

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let pw = || SecretString::from("zebra crossing at dawn");
        let a = hash(pw()).await.unwrap();
        let b = hash(pw()).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify(pw(), Some(a.clone())).await);
        assert!(!verify(SecretString::from("zebra crossing at dusk"), Some(a)).await);
        assert!(!verify(pw(), None).await, "no account: no");
        assert!(!verify(pw(), Some("not a hash".into())).await);
    }
}
