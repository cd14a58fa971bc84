//! Merchants: onboarding with a fresh set of keys.

use secrecy::{ExposeSecret, SecretString};

use crate::{
    domain::{
        ApiKeyKind, MerchantId, Mode,
        ids::KeyId,
        keys::{NewKey, hash_token},
    },
    store::{MerchantRecord, NewApiKey, Store, StoreError},
    time::now_ms,
};

/// Why a merchant could not be created.
#[derive(Debug, thiserror::Error)]
pub enum MerchantError {
    #[error("merchant name must be 1 to 100 characters with no control characters")]
    InvalidName,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new merchant and its keys. The secret key exists here once, to be shown once.
pub struct CreatedMerchant {
    pub merchant: MerchantRecord,
    pub test_secret_key: SecretString,
    pub test_publishable_key: String,
}

/// What the store keeps of a new key: a secret key by its hash only, a publishable key
/// as it is.
fn stored_form(key: &NewKey) -> NewApiKey {
    let (secret_hash, token) = match key.kind {
        ApiKeyKind::Secret => (Some(hash_token(key.token.expose_secret())), None),
        ApiKeyKind::Publishable => (None, Some(key.token.expose_secret().to_owned())),
    };
    NewApiKey {
        kind: key.kind,
        mode: key.mode,
        masked: key.masked(),
        secret_hash,
        token,
    }
}

/// Checks and trims a display name.
pub fn parse_name(name: &str) -> Result<String, MerchantError> {
    let name = name.trim();
    let len = name.chars().count();
    if !(1..=100).contains(&len) || name.chars().any(char::is_control) {
        return Err(MerchantError::InvalidName);
    }
    Ok(name.to_owned())
}

/// Creates a merchant with a test secret key and a test publishable key.
pub async fn create(store: &Store, name: &str) -> Result<CreatedMerchant, MerchantError> {
    let name = parse_name(name)?;
    let merchant = MerchantRecord {
        id: MerchantId::generate(),
        name,
        created_at: now_ms(),
    };
    let secret = NewKey::generate(ApiKeyKind::Secret, Mode::Test);
    let publishable = NewKey::generate(ApiKeyKind::Publishable, Mode::Test);
    let keys = [stored_form(&secret), stored_form(&publishable)];
    store.insert_merchant(&merchant, &keys).await?;
    Ok(CreatedMerchant {
        merchant,
        test_secret_key: secret.token,
        test_publishable_key: publishable.token.expose_secret().to_owned(),
    })
}

/// Why a key could not be created or revoked.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no merchant {0}")]
    NoMerchant(MerchantId),
    #[error("no unrevoked key {0}")]
    NoKey(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new key of either kind and mode for an existing merchant. The returned token is
/// the key itself: for a secret key, the only time anyone sees it.
pub async fn create_key(
    store: &Store,
    merchant_id: &MerchantId,
    kind: ApiKeyKind,
    mode: Mode,
) -> Result<(KeyId, NewKey), KeyError> {
    if store.merchant(merchant_id).await?.is_none() {
        return Err(KeyError::NoMerchant(merchant_id.clone()));
    }
    let key = NewKey::generate(kind, mode);
    let id = store
        .insert_api_key(merchant_id, &stored_form(&key), now_ms())
        .await?;
    Ok((id, key))
}

/// Revokes a key: requests made with it get 401 from now on.
pub async fn revoke_key(store: &Store, id: &str) -> Result<(), KeyError> {
    let key_id = KeyId::parse(id).ok_or_else(|| KeyError::NoKey(id.to_owned()))?;
    if store.revoke_api_key(&key_id, now_ms()).await? {
        Ok(())
    } else {
        Err(KeyError::NoKey(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Serengeti Lodge ").unwrap(), "Serengeti Lodge");
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(101)).is_err());
        assert!(parse_name("Bad\nName").is_err());
        assert_eq!(parse_name(&"ü".repeat(100)).unwrap().chars().count(), 100);
    }
}
