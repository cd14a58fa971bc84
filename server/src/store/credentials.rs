//! Merchants' own live operator credentials (see [`crate::credentials`]), sealed at rest.

use secrecy::SecretString;
use sqlx::Row;

use super::{Store, StoreError};
use crate::{connectors::RailId, domain::MerchantId};

/// A merchant's saved credentials for a rail, as a page may show them: never a value.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedCredentials {
    pub rail: RailId,
    pub summary: String,
    pub set_by: String,
    pub updated_at: i64,
}

/// Where a merchant's sealed credentials for `rail` live (their associated data).
fn place(merchant_id: &MerchantId, rail: RailId) -> String {
    format!("merchant_rail_credentials:{merchant_id}:{rail}:sealed")
}

impl Store {
    /// Saves (replacing) `merchant_id`'s credentials for `rail`: `plain` (JSON) sealed.
    pub async fn save_rail_credentials(
        &self,
        merchant_id: &MerchantId,
        rail: RailId,
        plain: &SecretString,
        summary: &str,
        set_by: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        use secrecy::ExposeSecret;
        let sealed = self
            .master
            .seal(&place(merchant_id, rail), plain.expose_secret())?;
        sqlx::query(
            "INSERT INTO merchant_rail_credentials \
             (merchant_id, rail, sealed, summary, set_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (merchant_id, rail) DO UPDATE SET sealed = $3, summary = $4, \
             set_by = $5, updated_at = $6",
        )
        .bind(merchant_id.as_str())
        .bind(rail.as_str())
        .bind(sealed)
        .bind(summary)
        .bind(set_by)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets `merchant_id`'s credentials for `rail`; whether there were any.
    pub async fn remove_rail_credentials(
        &self,
        merchant_id: &MerchantId,
        rail: RailId,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM merchant_rail_credentials WHERE merchant_id = $1 AND rail = $2",
        )
        .bind(merchant_id.as_str())
        .bind(rail.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// What `merchant_id` has saved, rail by rail, without a value.
    pub async fn rail_credentials(
        &self,
        merchant_id: &MerchantId,
    ) -> Result<Vec<SavedCredentials>, StoreError> {
        let rows = sqlx::query(
            "SELECT rail, summary, set_by, updated_at FROM merchant_rail_credentials \
             WHERE merchant_id = $1 ORDER BY rail",
        )
        .bind(merchant_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut saved = Vec::with_capacity(rows.len());
        for row in rows {
            let rail: String = row.try_get("rail")?;
            // A rail this version does not know (written by a newer one) is not shown.
            let Some(rail) = RailId::parse(&rail) else {
                continue;
            };
            saved.push(SavedCredentials {
                rail,
                summary: row.try_get("summary")?,
                set_by: row.try_get("set_by")?,
                updated_at: row.try_get("updated_at")?,
            });
        }
        Ok(saved)
    }

    /// Every merchant's credentials, opened: `(merchant, rail, updated_at, JSON)`. For
    /// building their connectors; never for a page.
    pub async fn all_rail_credentials(
        &self,
    ) -> Result<Vec<(MerchantId, RailId, i64, SecretString)>, StoreError> {
        let rows = sqlx::query(
            "SELECT merchant_id, rail, sealed, updated_at FROM merchant_rail_credentials",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut all = Vec::with_capacity(rows.len());
        for row in rows {
            let merchant = MerchantId::from_db(row.try_get("merchant_id")?);
            let rail: String = row.try_get("rail")?;
            let Some(rail) = RailId::parse(&rail) else {
                continue;
            };
            let sealed: String = row.try_get("sealed")?;
            match self.master.open(&place(&merchant, rail), &sealed) {
                Ok(plain) => all.push((
                    merchant,
                    rail,
                    row.try_get("updated_at")?,
                    SecretString::from(plain),
                )),
                // One damaged row switches off that merchant's rail, not everybody's.
                Err(e) => {
                    tracing::error!(%merchant, %rail, error = %e, "a merchant's saved credentials cannot be opened; its live payments there are off until they are saved again");
                }
            }
        }
        Ok(all)
    }

    /// How many of `merchant_id`'s live payments on `rail` are still open (pending) or of
    /// unknown outcome: credentials must not change under them.
    pub async fn open_live_attempts(
        &self,
        merchant_id: &MerchantId,
        rail: RailId,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM payment_attempts a \
             JOIN checkout_sessions s ON s.id = a.session_id \
             WHERE s.merchant_id = $1 AND s.mode = 'live' AND a.rail = $2 \
             AND a.status IN ('pending', 'unknown')",
        )
        .bind(merchant_id.as_str())
        .bind(rail.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// `(merchant, rail, updated_at)` of every merchant's credentials: cheap, to see
    /// whether another instance changed any.
    pub async fn rail_credentials_versions(
        &self,
    ) -> Result<Vec<(MerchantId, String, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT merchant_id, rail, updated_at FROM merchant_rail_credentials")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    MerchantId::from_db(row.try_get("merchant_id")?),
                    row.try_get("rail")?,
                    row.try_get("updated_at")?,
                ))
            })
            .collect()
    }
}
