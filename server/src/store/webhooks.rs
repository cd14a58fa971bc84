//! Webhook endpoints: where a merchant wants events, per mode, and the secrets that sign
//! them.

use secrecy::SecretString;
use sqlx::{Row, any::AnyRow};

use super::{Store, StoreError, parse_column};
use crate::{
    domain::{MerchantId, Mode, WebhookEndpointId},
    sealing::MasterKey,
};

/// What an endpoint's secrets are sealed to: the endpoint (both columns, since a rotation
/// moves the current secret into `previous_secret`).
pub(super) fn endpoint_secret_place(id: &str) -> String {
    format!("webhook_endpoints:{id}")
}

/// An endpoint, its secrets opened (they are stored sealed: see [`crate::sealing`]).
#[derive(Debug, Clone)]
pub struct EndpointRecord {
    pub id: WebhookEndpointId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub url: String,
    pub description: String,
    pub enabled_events: Vec<String>,
    pub secret: SecretString,
    /// The secret before the last rotation, which still signs until `previous_expires_at`.
    pub previous_secret: Option<SecretString>,
    pub previous_expires_at: Option<i64>,
    pub created_at: i64,
}

const ENDPOINT_COLUMNS: &str = "id, merchant_id, mode, url, description, enabled_events, secret, \
     previous_secret, previous_expires_at, created_at";

impl EndpointRecord {
    fn from_row(row: &AnyRow, master: &MasterKey) -> Result<Self, StoreError> {
        let id: String = row.try_get("id")?;
        let place = endpoint_secret_place(&id);
        let events: String = row.try_get("enabled_events")?;
        Ok(EndpointRecord {
            merchant_id: MerchantId::from_db(row.try_get("merchant_id")?),
            mode: parse_column(row, "mode", "webhook_endpoints", Mode::parse)?,
            url: row.try_get("url")?,
            description: row.try_get("description")?,
            enabled_events: serde_json::from_str(&events).map_err(|e| StoreError::Corrupt {
                table: "webhook_endpoints",
                id: id.clone(),
                what: e.to_string(),
            })?,
            secret: SecretString::from(master.open(&place, &row.try_get::<String, _>("secret")?)?),
            previous_secret: row
                .try_get::<Option<String>, _>("previous_secret")?
                .map(|v| master.open(&place, &v).map(SecretString::from))
                .transpose()?,
            previous_expires_at: row.try_get("previous_expires_at")?,
            created_at: row.try_get("created_at")?,
            id: WebhookEndpointId::from_db(id),
        })
    }
}

impl Store {
    pub async fn insert_endpoint(&self, e: &EndpointRecord) -> Result<(), StoreError> {
        use secrecy::ExposeSecret;
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, merchant_id, mode, url, description, \
             enabled_events, secret, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(e.id.as_str())
        .bind(e.merchant_id.as_str())
        .bind(e.mode.as_str())
        .bind(&e.url)
        .bind(&e.description)
        .bind(serde_json::Value::from(e.enabled_events.clone()).to_string())
        .bind(self.master.seal(
            &endpoint_secret_place(e.id.as_str()),
            e.secret.expose_secret(),
        )?)
        .bind(e.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An endpoint that has not been deleted.
    pub async fn endpoint(
        &self,
        id: &WebhookEndpointId,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|r| EndpointRecord::from_row(r, &self.master))
            .transpose()
    }

    /// A merchant's live endpoints in one mode, oldest first.
    pub async fn endpoints(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
    ) -> Result<Vec<EndpointRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
             WHERE merchant_id = $1 AND mode = $2 AND deleted_at IS NULL ORDER BY created_at, id"
        ))
        .bind(merchant_id.as_str())
        .bind(mode.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| EndpointRecord::from_row(r, &self.master))
            .collect()
    }

    /// Deletes an endpoint and gives up its pending deliveries, in one transaction.
    /// False when it did not exist (or was deleted already).
    pub async fn delete_endpoint(
        &self,
        id: &WebhookEndpointId,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query(
            "UPDATE webhook_endpoints SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if deleted {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, \
                 updated_at = $2 WHERE endpoint_id = $1 AND status = 'pending'",
            )
            .bind(id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// Replaces the signing secret; the old one keeps signing until `previous_expires_at`.
    pub async fn rotate_endpoint_secret(
        &self,
        id: &WebhookEndpointId,
        new_secret: &SecretString,
        previous_expires_at: i64,
    ) -> Result<bool, StoreError> {
        use secrecy::ExposeSecret;
        Ok(sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = secret, secret = $2, \
             previous_expires_at = $3 WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id.as_str())
        .bind(self.master.seal(
            &endpoint_secret_place(id.as_str()),
            new_secret.expose_secret(),
        )?)
        .bind(previous_expires_at)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }
}
