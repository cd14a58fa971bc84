//! Merchants and their API keys.

use sqlx::{Row, any::AnyRow};

use super::{Store, StoreError, parse_column};
use crate::domain::{ApiKeyKind, MerchantId, Mode, ids::KeyId};

/// A merchant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MerchantRecord {
    pub id: MerchantId,
    pub name: String,
    pub created_at: i64,
}

impl MerchantRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(MerchantRecord {
            id: MerchantId::from_db(row.try_get("id")?),
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// A key to store with a new merchant: secret keys by hash only.
pub struct NewApiKey {
    pub kind: ApiKeyKind,
    pub mode: Mode,
    pub masked: String,
    /// Hex SHA-256 of a secret key.
    pub secret_hash: Option<String>,
    /// A publishable key in full.
    pub token: Option<String>,
}

/// A key as listed: never the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub merchant_id: String,
    pub kind: ApiKeyKind,
    pub mode: Mode,
    pub masked: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

fn parse_kind(s: &str) -> Option<ApiKeyKind> {
    match s {
        "secret" => Some(ApiKeyKind::Secret),
        "publishable" => Some(ApiKeyKind::Publishable),
        _ => None,
    }
}

impl Store {
    /// Creates a merchant and its keys, all or nothing.
    pub async fn insert_merchant(
        &self,
        merchant: &MerchantRecord,
        keys: &[NewApiKey],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_merchant_in(&mut tx, merchant, keys).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn merchant(&self, id: &MerchantId) -> Result<Option<MerchantRecord>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM merchants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(MerchantRecord::from_row).transpose()
    }

    /// The oldest merchant with exactly this name (for seeding the demo).
    pub async fn merchant_by_name(&self, name: &str) -> Result<Option<MerchantRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, created_at FROM merchants WHERE name = $1 \
             ORDER BY created_at, id LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(MerchantRecord::from_row).transpose()
    }

    /// The merchant and mode of an unrevoked secret key (or one rolled, in its overlap),
    /// found by the key's hash.
    pub async fn merchant_by_secret_hash(
        &self,
        secret_hash: &str,
    ) -> Result<Option<(MerchantRecord, Mode)>, StoreError> {
        let reading = self.keys.begin();
        let now = crate::time::now_ms();
        let row = sqlx::query(
            "SELECT m.id, m.name, m.created_at, k.mode, k.revoked_at FROM api_keys k \
             JOIN merchants m ON m.id = k.merchant_id \
             WHERE k.secret_hash = $1 AND k.kind = 'secret' \
             AND (k.revoked_at IS NULL OR k.revoked_at > $2)",
        )
        .bind(secret_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mode = parse_column(&row, "mode", "api_keys", Mode::parse)?;
        let merchant = MerchantRecord::from_row(&row)?;
        let ends = row.try_get::<Option<i64>, _>("revoked_at")?;
        self.keys.put(
            reading,
            secret_hash.to_owned(),
            (merchant.id.clone(), mode),
            ends.map(|at| std::time::Duration::from_millis((at - now).max(0) as u64)),
        );
        Ok(Some((merchant, mode)))
    }

    /// The merchant and mode of a usable secret key, as [`Store::merchant_by_secret_hash`]
    /// says, remembered for up to two seconds (every API call asks): a key revoked or
    /// ended through this process stops at once, one revoked elsewhere (another
    /// instance, the CLI) within those two seconds, and a rolled key's overlap end is
    /// kept to the millisecond.
    pub async fn caller_by_secret_hash(
        &self,
        secret_hash: &str,
    ) -> Result<Option<(MerchantId, Mode)>, StoreError> {
        if let Some(known) = self.keys.get(secret_hash) {
            return Ok(Some(known));
        }
        Ok(self
            .merchant_by_secret_hash(secret_hash)
            .await?
            .map(|(merchant, mode)| (merchant.id, mode)))
    }

    /// Adds one key to an existing merchant; returns its `key_…` id.
    pub async fn insert_api_key(
        &self,
        merchant_id: &MerchantId,
        key: &NewApiKey,
        now: i64,
    ) -> Result<KeyId, StoreError> {
        let id = KeyId::generate();
        sqlx::query(
            "INSERT INTO api_keys \
             (id, merchant_id, kind, mode, masked, secret_hash, token, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.as_str())
        .bind(merchant_id.as_str())
        .bind(key.kind.as_str())
        .bind(key.mode.as_str())
        .bind(&key.masked)
        .bind(key.secret_hash.as_deref())
        .bind(key.token.as_deref())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Revokes a key for good. False when there is no such unrevoked key.
    pub async fn revoke_api_key(&self, id: &KeyId, now: i64) -> Result<bool, StoreError> {
        let revoked = sqlx::query(
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 \
                 AND (revoked_at IS NULL OR revoked_at > $2)",
        )
        .bind(id.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        self.keys.clear();
        Ok(revoked)
    }

    /// Sets when an unrevoked key of `merchant_id` stops working (a rolled key's overlap).
    /// False when there is no such key.
    pub async fn expire_api_key(
        &self,
        merchant_id: &MerchantId,
        id: &KeyId,
        at: i64,
    ) -> Result<bool, StoreError> {
        let ended = sqlx::query(
            "UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND merchant_id = $2 \
             AND revoked_at IS NULL",
        )
        .bind(id.as_str())
        .bind(merchant_id.as_str())
        .bind(at)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        self.keys.clear();
        Ok(ended)
    }

    /// Replaces the origins allowed to frame a merchant's checkout pages in one mode.
    /// False when there is no such merchant.
    pub async fn set_embed_origins(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
        origins: &[String],
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        set_column(
            &mut conn,
            merchant_id,
            origins_column(mode),
            Some(serde_json::Value::from(origins.to_vec()).to_string()),
        )
        .await
    }

    /// Changes a merchant's settings for one mode, all or nothing: the origins that may
    /// embed its checkout, the rails switched on and whether other currencies are taken
    /// at a quote (each `None`: left as it is; rails `Some(None)`: every rail).
    pub async fn update_account(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
        origins: Option<&[String]>,
        rails: Option<Option<&[crate::connectors::RailId]>>,
        conversion: Option<bool>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(origins) = origins {
            let list = serde_json::Value::from(origins.to_vec()).to_string();
            set_column(&mut tx, merchant_id, origins_column(mode), Some(list)).await?;
        }
        if let Some(rails) = rails {
            let list = rails.map(super::sessions::rails_to_json);
            set_column(&mut tx, merchant_id, rails_column(mode), list).await?;
        }
        if let Some(on) = conversion {
            sqlx::query(&format!(
                "UPDATE merchants SET {} = $2 WHERE id = $1",
                super::fx::conversion_column(mode)
            ))
            .bind(merchant_id.as_str())
            .bind(i64::from(on))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.rails.clear();
        Ok(())
    }

    /// The rails a merchant switched on in one mode; `None`: every rail this server has
    /// on.
    pub async fn merchant_rails(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
    ) -> Result<Option<Vec<crate::connectors::RailId>>, StoreError> {
        let key = (merchant_id.clone(), mode);
        if let Some(known) = self.rails.get(&key) {
            return Ok(known);
        }
        let reading = self.rails.begin();
        let rails = self.merchant_rails_now(merchant_id, mode).await?;
        self.rails.put(reading, key, rails.clone(), None);
        Ok(rails)
    }

    /// [`Store::merchant_rails`] as the database says it this moment.
    async fn merchant_rails_now(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
    ) -> Result<Option<Vec<crate::connectors::RailId>>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {} AS rails FROM merchants WHERE id = $1",
            rails_column(mode)
        ))
        .bind(merchant_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(list) = row
            .map(|r| r.try_get::<Option<String>, _>("rails"))
            .transpose()?
            .flatten()
        else {
            return Ok(None);
        };
        super::sessions::rails_from_json(&list)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt {
                table: "merchants",
                id: merchant_id.to_string(),
                what: format!("{} {list:?}", rails_column(mode)),
            })
    }

    /// The origins allowed to frame a merchant's checkout pages in one mode.
    pub async fn embed_origins(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
    ) -> Result<Vec<String>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {} AS embed_origins FROM merchants WHERE id = $1",
            origins_column(mode)
        ))
        .bind(merchant_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        parse_origins(row, merchant_id.as_str())
    }

    /// The origins allowed to frame one session's page (its merchant's, for its mode),
    /// with that mode, or `None` when there is no such session.
    pub async fn embed_origins_for_session(
        &self,
        session_id: &str,
    ) -> Result<Option<(Vec<String>, Mode, MerchantId)>, StoreError> {
        let row = sqlx::query(
            "SELECT CASE WHEN s.mode = 'live' THEN m.embed_origins_live ELSE m.embed_origins END \
             AS embed_origins, s.mode, s.merchant_id FROM checkout_sessions s \
             JOIN merchants m ON m.id = s.merchant_id WHERE s.id = $1",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => {
                let mode = super::parse_column(&row, "mode", "checkout_sessions", Mode::parse)?;
                let merchant = MerchantId::from_db(row.try_get("merchant_id")?);
                Ok(Some((
                    parse_origins(Some(row), session_id)?,
                    mode,
                    merchant,
                )))
            }
            None => Ok(None),
        }
    }

    /// The sandbox merchant site's own merchant, if it was made.
    pub async fn sandbox_merchant(&self) -> Result<Option<MerchantRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, created_at FROM merchants WHERE sandbox = 1 \
             ORDER BY created_at, id LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(MerchantRecord::from_row).transpose()
    }

    /// Flags a merchant as the sandbox merchant site's own.
    pub async fn mark_sandbox_merchant(&self, merchant_id: &MerchantId) -> Result<(), StoreError> {
        sqlx::query("UPDATE merchants SET sandbox = 1 WHERE id = $1")
            .bind(merchant_id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A merchant's keys, newest first, masked.
    pub async fn api_keys(
        &self,
        merchant_id: &MerchantId,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, merchant_id, kind, mode, masked, created_at, revoked_at FROM api_keys \
             WHERE merchant_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(merchant_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ApiKeyRecord {
                    id: row.try_get("id")?,
                    merchant_id: row.try_get("merchant_id")?,
                    kind: parse_column(row, "kind", "api_keys", parse_kind)?,
                    mode: parse_column(row, "mode", "api_keys", Mode::parse)?,
                    masked: row.try_get("masked")?,
                    created_at: row.try_get("created_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            })
            .collect()
    }
}

/// Test mode's list is `embed_origins`, live mode's `embed_origins_live`.
/// Sets one of a merchant's settings columns (named by this module, never by a caller's
/// input); false if there is no such merchant.
async fn set_column(
    conn: &mut sqlx::AnyConnection,
    merchant_id: &MerchantId,
    column: &'static str,
    value: Option<String>,
) -> Result<bool, StoreError> {
    Ok(
        sqlx::query(&format!("UPDATE merchants SET {column} = $2 WHERE id = $1"))
            .bind(merchant_id.as_str())
            .bind(value)
            .execute(conn)
            .await?
            .rows_affected()
            == 1,
    )
}

fn rails_column(mode: Mode) -> &'static str {
    match mode {
        Mode::Test => "rails_test",
        Mode::Live => "rails_live",
    }
}

fn origins_column(mode: Mode) -> &'static str {
    match mode {
        Mode::Test => "embed_origins",
        Mode::Live => "embed_origins_live",
    }
}

fn parse_origins(row: Option<AnyRow>, id: &str) -> Result<Vec<String>, StoreError> {
    let Some(row) = row else {
        return Ok(Vec::new());
    };
    let raw: String = row.try_get("embed_origins")?;
    serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt {
        table: "merchants",
        id: id.to_owned(),
        what: e.to_string(),
    })
}

/// Writes a merchant and its keys inside the caller's transaction.
pub(crate) async fn insert_merchant_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    merchant: &MerchantRecord,
    keys: &[NewApiKey],
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(merchant.id.as_str())
        .bind(&merchant.name)
        .bind(merchant.created_at)
        .execute(&mut **tx)
        .await?;
    for key in keys {
        sqlx::query(
            "INSERT INTO api_keys \
             (id, merchant_id, kind, mode, masked, secret_hash, token, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(KeyId::generate().as_str())
        .bind(merchant.id.as_str())
        .bind(key.kind.as_str())
        .bind(key.mode.as_str())
        .bind(&key.masked)
        .bind(key.secret_hash.as_deref())
        .bind(key.token.as_deref())
        .bind(merchant.created_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// What a merchant set in the dashboard's settings for its hosted page.
#[derive(Debug, Clone, PartialEq)]
pub struct MerchantProfile {
    pub support_phone: Option<String>,
    pub support_email: Option<String>,
    pub support_whatsapp: Option<String>,
    pub brand_color: Option<String>,
    /// The logo's digest (its URL is `/logos/{digest}`), when one is set. Changed only
    /// through [`Store::set_merchant_logo`].
    pub logo: Option<String>,
    /// The page's language when the shopper's request names none (`en`, `sw`, `fr`).
    pub default_locale: String,
}

impl Default for MerchantProfile {
    fn default() -> Self {
        MerchantProfile {
            support_phone: None,
            support_email: None,
            support_whatsapp: None,
            brand_color: None,
            logo: None,
            default_locale: "en".to_owned(),
        }
    }
}

/// A merchant's logo as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MerchantLogo {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl Store {
    pub async fn merchant_profile(
        &self,
        merchant_id: &MerchantId,
    ) -> Result<MerchantProfile, StoreError> {
        let row = sqlx::query(
            "SELECT support_phone, support_email, support_whatsapp, brand_color, default_locale, \
             (SELECT digest FROM merchant_logos l WHERE l.merchant_id = m.id) AS logo \
             FROM merchants m WHERE id = $1",
        )
        .bind(merchant_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(MerchantProfile::default());
        };
        Ok(MerchantProfile {
            support_phone: row.try_get("support_phone")?,
            support_email: row.try_get("support_email")?,
            support_whatsapp: row.try_get("support_whatsapp")?,
            brand_color: row.try_get("brand_color")?,
            logo: row.try_get("logo")?,
            default_locale: row.try_get("default_locale")?,
        })
    }

    /// Sets (or, with `None`, removes) a merchant's logo: `(content type, bytes)`.
    /// Returns its digest.
    pub async fn set_merchant_logo(
        &self,
        merchant_id: &MerchantId,
        logo: Option<(&str, &[u8])>,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        use base64::Engine as _;
        use sha2::Digest as _;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM merchant_logos WHERE merchant_id = $1")
            .bind(merchant_id.as_str())
            .execute(&mut *tx)
            .await?;
        let digest = match logo {
            None => None,
            Some((content_type, bytes)) => {
                let digest = hex::encode(&sha2::Sha256::digest(bytes)[..16]);
                // The same image for two merchants: one row each, told apart by the id.
                let digest = format!(
                    "{digest}{}",
                    &hex::encode(sha2::Sha256::digest(merchant_id.as_str()))[..8]
                );
                sqlx::query(
                    "INSERT INTO merchant_logos (merchant_id, digest, content_type, data, updated_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(merchant_id.as_str())
                .bind(&digest)
                .bind(content_type)
                .bind(base64::engine::general_purpose::STANDARD.encode(bytes))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Some(digest)
            }
        };
        tx.commit().await?;
        Ok(digest)
    }

    /// A logo by its digest.
    pub async fn merchant_logo(&self, digest: &str) -> Result<Option<MerchantLogo>, StoreError> {
        use base64::Engine as _;
        let row = sqlx::query("SELECT content_type, data FROM merchant_logos WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let data: String = row.try_get("data")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| StoreError::Corrupt {
                table: "merchant_logos",
                id: digest.to_owned(),
                what: e.to_string(),
            })?;
        Ok(Some(MerchantLogo {
            content_type: row.try_get("content_type")?,
            bytes,
        }))
    }

    /// Sets a merchant's name and hosted-page profile, all at once.
    pub async fn set_merchant_profile(
        &self,
        merchant_id: &MerchantId,
        name: &str,
        p: &MerchantProfile,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE merchants SET name = $2, support_phone = $3, support_email = $4, \
             support_whatsapp = $5, brand_color = $6, default_locale = $7 WHERE id = $1",
        )
        .bind(merchant_id.as_str())
        .bind(name)
        .bind(p.support_phone.as_deref())
        .bind(p.support_email.as_deref())
        .bind(p.support_whatsapp.as_deref())
        .bind(p.brand_color.as_deref())
        .bind(&p.default_locale)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
