//! Exchange rates a merchant maintains, and whether it takes other currencies at all.

use sqlx::Row;

use super::{Store, StoreError};
use crate::{
    domain::{MerchantId, Mode, money::Currency},
    fx::{Decimal, Rate},
};

/// One rate in a merchant's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateRecord {
    pub rate: Rate,
    pub updated_at: i64,
}

impl Store {
    /// Sets (or replaces) one of a merchant's rates in `mode`.
    pub async fn set_rate(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
        rate: &Rate,
        now: i64,
    ) -> Result<(), StoreError> {
        self.set_rates(merchant_id, mode, std::slice::from_ref(rate), now)
            .await
    }

    /// Sets (or replaces) several of a merchant's rates in `mode`, all or nothing.
    pub async fn set_rates(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
        rates: &[Rate],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for rate in rates {
            upsert_rate(&mut tx, merchant_id, mode, rate, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes the rate for `base/quote`; false if there was none.
    pub async fn remove_rate(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
        base: Currency,
        quote: Currency,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM fx_rates WHERE merchant_id = $1 AND mode = $2 AND base = $3 AND quote = $4",
        )
        .bind(merchant_id.as_str())
        .bind(mode.as_str())
        .bind(base.code())
        .bind(quote.code())
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// A merchant's rates in `mode`, by pair.
    pub async fn rates(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
    ) -> Result<Vec<RateRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT base, quote, rate, updated_at FROM fx_rates \
             WHERE merchant_id = $1 AND mode = $2 ORDER BY base, quote",
        )
        .bind(merchant_id.as_str())
        .bind(mode.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RateRecord {
                    rate: rate_from_row(row, merchant_id)?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// The merchant's rate between `from` and `to` in `mode`, given either way round
    /// (`from/to` preferred).
    pub async fn merchant_rate(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
        from: Currency,
        to: Currency,
    ) -> Result<Option<Rate>, StoreError> {
        let row = sqlx::query(
            "SELECT base, quote, rate FROM fx_rates WHERE merchant_id = $1 AND mode = $2 \
             AND ((base = $3 AND quote = $4) OR (base = $4 AND quote = $3)) \
             ORDER BY CASE WHEN base = $3 THEN 0 ELSE 1 END LIMIT 1",
        )
        .bind(merchant_id.as_str())
        .bind(mode.as_str())
        .bind(from.code())
        .bind(to.code())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| rate_from_row(&row, merchant_id)).transpose()
    }

    /// Whether the merchant's sessions in `mode` may be paid in another currency.
    pub async fn conversion(
        &self,
        merchant_id: &MerchantId,
        mode: Mode,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {} AS on_ FROM merchants WHERE id = $1",
            conversion_column(mode)
        ))
        .bind(merchant_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => row.try_get::<i64, _>("on_")? != 0,
            None => false,
        })
    }
}

async fn upsert_rate(
    conn: &mut sqlx::AnyConnection,
    merchant_id: &MerchantId,
    mode: Mode,
    rate: &Rate,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO fx_rates (merchant_id, mode, base, quote, rate, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (merchant_id, mode, base, quote) \
         DO UPDATE SET rate = excluded.rate, updated_at = excluded.updated_at",
    )
    .bind(merchant_id.as_str())
    .bind(mode.as_str())
    .bind(rate.base.code())
    .bind(rate.quote.code())
    .bind(rate.value.to_string())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) fn conversion_column(mode: Mode) -> &'static str {
    match mode {
        Mode::Test => "conversion_test",
        Mode::Live => "conversion_live",
    }
}

fn rate_from_row(row: &sqlx::any::AnyRow, merchant_id: &MerchantId) -> Result<Rate, StoreError> {
    let currency = |column: &str| -> Result<Option<Currency>, StoreError> {
        Ok(Currency::parse(&row.try_get::<String, _>(column)?))
    };
    let value: String = row.try_get("rate")?;
    match (
        currency("base")?,
        currency("quote")?,
        Decimal::parse(&value),
    ) {
        (Some(base), Some(quote), Some(value)) => Ok(Rate { base, quote, value }),
        _ => Err(StoreError::Corrupt {
            table: "fx_rates",
            id: merchant_id.to_string(),
            what: format!("rate {value:?}"),
        }),
    }
}
