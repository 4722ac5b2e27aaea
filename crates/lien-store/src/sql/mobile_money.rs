//! Provider endpoints and unmatched payments (see [`crate::mobile_money`]).

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::audit_log::append_audit;
use super::{SqlStore, backend, unique_or_backend};
use crate::{
    AuditEntry, MobileMoney, MpesaEndpointRecord, StoreError, UnmatchedPaymentRecord,
    UnmatchedStatus,
};

/// The columns [`endpoint_from`] reads, in its order.
const ENDPOINT_COLUMNS: &str = "financier_id, token_hash, allowed_sources, created_us";

/// The columns [`unmatched_from`] reads, in its order.
const UNMATCHED_COLUMNS: &str = "id, financier_id, provider, provider_ref, account, amount_minor, \
     currency, received_us, payer_hash, reason, recorded_us, assigned_device_id, assigned_us, \
     assigned_by";

#[async_trait]
impl MobileMoney for SqlStore {
    #[tracing::instrument(skip_all, fields(financier = %endpoint.financier_id))]
    async fn put_mpesa_endpoint(
        &self,
        endpoint: &MpesaEndpointRecord,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO mpesa_endpoints (financier_id, token_hash, allowed_sources, created_us) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (financier_id) DO UPDATE SET token_hash = excluded.token_hash, \
             allowed_sources = excluded.allowed_sources, created_us = excluded.created_us",
        )
        .bind(&endpoint.financier_id)
        .bind(endpoint.token_hash.clone())
        .bind(&endpoint.allowed_sources)
        .bind(endpoint.created_us)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_or_backend(e, "this endpoint token is taken"))?;
        append_audit(&mut tx, chain, std::slice::from_ref(audit)).await?;
        tx.commit().await.map_err(backend)
    }

    #[tracing::instrument(skip(self))]
    async fn mpesa_endpoint(&self, financier_id: &str) -> Result<MpesaEndpointRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM mpesa_endpoints WHERE financier_id = $1"
        )))
        .bind(financier_id)
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound)?;
        endpoint_from(&row)
    }

    #[tracing::instrument(skip_all)]
    async fn mpesa_endpoint_by_token(
        &self,
        token_hash: &[u8],
    ) -> Result<MpesaEndpointRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM mpesa_endpoints WHERE token_hash = $1"
        )))
        .bind(token_hash.to_vec())
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound)?;
        endpoint_from(&row)
    }

    #[tracing::instrument(skip(self))]
    async fn device_id_by_contract_ref(
        &self,
        financier_id: &str,
        contract_ref: &str,
    ) -> Result<String, StoreError> {
        sqlx::query("SELECT id FROM devices WHERE financier_id = $1 AND contract_ref = $2")
            .bind(financier_id)
            .bind(contract_ref)
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?
            .ok_or(StoreError::NotFound)?
            .try_get(0)
            .map_err(backend)
    }

    #[tracing::instrument(skip_all, fields(financier = %payment.financier_id, reference = %payment.provider_ref))]
    async fn add_unmatched_payment(
        &self,
        payment: &UnmatchedPaymentRecord,
        chain: &str,
        audit: &AuditEntry,
        event: Option<&crate::OutboxEvent>,
    ) -> Result<(UnmatchedPaymentRecord, bool), StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        let inserted = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO unmatched_payments ({UNMATCHED_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (financier_id, provider, provider_ref) DO NOTHING"
        )))
        .bind(&payment.id)
        .bind(&payment.financier_id)
        .bind(&payment.provider)
        .bind(&payment.provider_ref)
        .bind(&payment.account)
        .bind(payment.amount_minor)
        .bind(&payment.currency)
        .bind(payment.received_us)
        .bind(payment.payer_hash.clone())
        .bind(&payment.reason)
        .bind(payment.recorded_us)
        .bind(payment.assigned_device_id.clone())
        .bind(payment.assigned_us)
        .bind(payment.assigned_by.clone())
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_or_backend(e, "an unmatched payment with this id exists"))?
        .rows_affected();
        if inserted == 0 {
            // The same transaction was kept before (by this server or another): it stays as
            // it was stored first.
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT {UNMATCHED_COLUMNS} FROM unmatched_payments \
                 WHERE financier_id = $1 AND provider = $2 AND provider_ref = $3"
            )))
            .bind(&payment.financier_id)
            .bind(&payment.provider)
            .bind(&payment.provider_ref)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
            let kept = unmatched_from(&row)?;
            tx.rollback().await.map_err(backend)?;
            return Ok((kept, false));
        }
        append_audit(&mut tx, chain, std::slice::from_ref(audit)).await?;
        super::webhooks::insert_events(
            &mut tx,
            &payment.financier_id,
            None,
            None,
            event.map(std::slice::from_ref).unwrap_or_default(),
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok((payment.clone(), true))
    }

    #[tracing::instrument(skip(self))]
    async fn unmatched_payment(&self, id: &str) -> Result<UnmatchedPaymentRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {UNMATCHED_COLUMNS} FROM unmatched_payments WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound)?;
        unmatched_from(&row)
    }

    #[tracing::instrument(skip(self))]
    async fn unmatched_payment_by_ref(
        &self,
        financier_id: &str,
        provider: &str,
        provider_ref: &str,
    ) -> Result<Option<UnmatchedPaymentRecord>, StoreError> {
        // The writer, not a reader: a repeated callback racing the first must see its commit.
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {UNMATCHED_COLUMNS} FROM unmatched_payments \
             WHERE financier_id = $1 AND provider = $2 AND provider_ref = $3"
        )))
        .bind(financier_id)
        .bind(provider)
        .bind(provider_ref)
        .fetch_optional(&self.write)
        .await
        .map_err(backend)?
        .as_ref()
        .map(unmatched_from)
        .transpose()
    }

    #[tracing::instrument(skip(self))]
    async fn unmatched_payments(
        &self,
        financier_id: Option<&str>,
        status: UnmatchedStatus,
        limit: u32,
    ) -> Result<Vec<UnmatchedPaymentRecord>, StoreError> {
        let status_clause = match status {
            UnmatchedStatus::All => "",
            UnmatchedStatus::Open => " AND assigned_device_id IS NULL",
            UnmatchedStatus::Assigned => " AND assigned_device_id IS NOT NULL",
        };
        let limit = i64::from(limit);
        let rows = match financier_id {
            Some(financier) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {UNMATCHED_COLUMNS} FROM unmatched_payments WHERE financier_id = $1\
                 {status_clause} ORDER BY recorded_us DESC, id DESC LIMIT $2"
                )))
                .bind(financier)
                .bind(limit)
                .fetch_all(&self.read)
                .await
            }
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {UNMATCHED_COLUMNS} FROM unmatched_payments WHERE 1 = 1\
                 {status_clause} ORDER BY recorded_us DESC, id DESC LIMIT $1"
                )))
                .bind(limit)
                .fetch_all(&self.read)
                .await
            }
        }
        .map_err(backend)?;
        rows.iter().map(unmatched_from).collect()
    }

    #[tracing::instrument(skip(self, audit))]
    async fn assign_unmatched_payment(
        &self,
        id: &str,
        device_id: &str,
        at_us: i64,
        by: &str,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<UnmatchedPaymentRecord, StoreError> {
        let for_update = self.dialect.for_update();
        let mut tx = self.write.begin().await.map_err(backend)?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {UNMATCHED_COLUMNS} FROM unmatched_payments WHERE id = $1{for_update}"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound)?;
        let payment = unmatched_from(&row)?;
        match payment.assigned_device_id.as_deref() {
            Some(assigned) if assigned == device_id => return Ok(payment),
            Some(_) => {
                return Err(StoreError::Conflict(
                    "this payment is already assigned to another device".into(),
                ));
            }
            None => {}
        }
        sqlx::query(
            "UPDATE unmatched_payments SET assigned_device_id = $2, assigned_us = $3, \
             assigned_by = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(device_id)
        .bind(at_us)
        .bind(by)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        append_audit(&mut tx, chain, std::slice::from_ref(audit)).await?;
        tx.commit().await.map_err(backend)?;
        Ok(UnmatchedPaymentRecord {
            assigned_device_id: Some(device_id.to_string()),
            assigned_us: Some(at_us),
            assigned_by: Some(by.to_string()),
            ..payment
        })
    }
}

fn endpoint_from(row: &AnyRow) -> Result<MpesaEndpointRecord, StoreError> {
    (|| {
        Ok(MpesaEndpointRecord {
            financier_id: row.try_get(0)?,
            token_hash: row.try_get(1)?,
            allowed_sources: row.try_get(2)?,
            created_us: row.try_get(3)?,
        })
    })()
    .map_err(backend)
}

fn unmatched_from(row: &AnyRow) -> Result<UnmatchedPaymentRecord, StoreError> {
    (|| {
        Ok(UnmatchedPaymentRecord {
            id: row.try_get(0)?,
            financier_id: row.try_get(1)?,
            provider: row.try_get(2)?,
            provider_ref: row.try_get(3)?,
            account: row.try_get(4)?,
            amount_minor: row.try_get(5)?,
            currency: row.try_get(6)?,
            received_us: row.try_get(7)?,
            payer_hash: row.try_get(8)?,
            reason: row.try_get(9)?,
            recorded_us: row.try_get(10)?,
            assigned_device_id: row.try_get(11)?,
            assigned_us: row.try_get(12)?,
            assigned_by: row.try_get(13)?,
        })
    })()
    .map_err(backend)
}
