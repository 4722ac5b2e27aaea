//! Provider endpoints and unmatched payments (see [`crate::mobile_money`]).

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, AssertSqlSafe, Row};

use super::audit_log::append_audit;
use super::rows::{Value, fetch_in_after};
use super::{Found as _, SqlStore, backend, unique_or_backend};
use crate::{
    AuditEntry, MobileMoney, MpesaEndpointRecord, PaymentProviderRecord, RecordedPaymentRecord,
    StatementHoldings, StatementQuery, StoreError, UnmatchedFilter, UnmatchedPaymentRecord,
    UnmatchedStatus,
};

/// The columns [`provider_from`] reads, in its order.
const PROVIDER_COLUMNS: &str = "id, financier_id, name, secret_salt, created_us";

/// The columns [`recorded_from`] reads, in its order, from `payments p JOIN devices d`.
const RECORDED_COLUMNS: &str =
    "p.device_id, d.contract_ref, p.reference, p.amount_minor, p.currency, p.received_us";

/// The columns [`endpoint_from`] reads, in its order.
const ENDPOINT_COLUMNS: &str = "financier_id, token_hash, allowed_sources, created_us";

/// The columns [`unmatched_from`] reads, in its order.
const UNMATCHED_COLUMNS: &str = "id, financier_id, provider, provider_ref, account, amount_minor, \
     currency, received_us, payer_hash, reason, recorded_us, assigned_device_id, assigned_us, \
     assigned_by";

/// Runs `write` on `pool` (the writer) and appends its audit entry, in one transaction; a
/// unique violation is a `Conflict` that says `taken`, and writes nothing.
async fn write_audited(
    pool: &AnyPool,
    write: Query<'_, Any, AnyArguments>,
    taken: &str,
    chain: &str,
    audit: &AuditEntry,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(backend)?;
    write
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_or_backend(e, taken))?;
    append_audit(&mut tx, chain, std::slice::from_ref(audit)).await?;
    tx.commit().await.map_err(backend)
}

#[async_trait]
impl MobileMoney for SqlStore {
    #[tracing::instrument(skip_all, fields(financier = %endpoint.financier_id))]
    async fn put_mpesa_endpoint(
        &self,
        endpoint: &MpesaEndpointRecord,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let upsert = sqlx::query(
            "INSERT INTO mpesa_endpoints (financier_id, token_hash, allowed_sources, created_us) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (financier_id) DO UPDATE SET token_hash = excluded.token_hash, \
             allowed_sources = excluded.allowed_sources, created_us = excluded.created_us",
        )
        .bind(&endpoint.financier_id)
        .bind(endpoint.token_hash.clone())
        .bind(&endpoint.allowed_sources)
        .bind(endpoint.created_us);
        write_audited(
            &self.write,
            upsert,
            "this endpoint token is taken",
            chain,
            audit,
        )
        .await
    }

    #[tracing::instrument(skip(self))]
    async fn mpesa_endpoint(&self, financier_id: &str) -> Result<MpesaEndpointRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM mpesa_endpoints WHERE financier_id = $1"
        )))
        .bind(financier_id)
        .found(&self.read)
        .await?;
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
        .found(&self.read)
        .await?;
        endpoint_from(&row)
    }

    // The account number a borrower typed may be their phone number: not in traces.
    #[tracing::instrument(skip(self, contract_ref))]
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
        filter: &UnmatchedFilter,
    ) -> Result<Vec<UnmatchedPaymentRecord>, StoreError> {
        let mut clauses = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if filter.financier_id.is_some() {
            clauses.push(format!("financier_id = {}", next()));
        }
        match filter.status {
            UnmatchedStatus::All => {}
            UnmatchedStatus::Open => clauses.push("assigned_device_id IS NULL".into()),
            UnmatchedStatus::Assigned => clauses.push("assigned_device_id IS NOT NULL".into()),
        }
        if filter.after.is_some() {
            // Newest first: after the previous page's last means older, or as old with a
            // smaller id.
            let (us, id) = (next(), next());
            clauses.push(format!(
                "(recorded_us < {us} OR (recorded_us = {us} AND id < {id}))"
            ));
        }
        let limit = next();
        let filters = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let mut query = sqlx::query(AssertSqlSafe(format!(
            "SELECT {UNMATCHED_COLUMNS} FROM unmatched_payments{filters} \
             ORDER BY recorded_us DESC, id DESC LIMIT {limit}"
        )));
        if let Some(financier) = &filter.financier_id {
            query = query.bind(financier.clone());
        }
        if let Some((us, id)) = &filter.after {
            query = query.bind(*us).bind(id.clone());
        }
        let rows = query
            .bind(i64::from(filter.limit))
            .fetch_all(&self.read)
            .await
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
            Some(other) => {
                return Err(StoreError::Conflict(format!(
                    "this payment is already assigned to device {other}"
                )));
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

    #[tracing::instrument(skip_all, fields(financier = %provider.financier_id, provider = %provider.name))]
    async fn create_payment_provider(
        &self,
        provider: &PaymentProviderRecord,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let insert = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO payment_providers ({PROVIDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        )))
        .bind(&provider.id)
        .bind(&provider.financier_id)
        .bind(&provider.name)
        .bind(provider.secret_salt.clone())
        .bind(provider.created_us);
        write_audited(
            &self.write,
            insert,
            "the financier has a payment provider with this name",
            chain,
            audit,
        )
        .await
    }

    #[tracing::instrument(skip(self))]
    async fn payment_provider(&self, id: &str) -> Result<PaymentProviderRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PROVIDER_COLUMNS} FROM payment_providers WHERE id = $1"
        )))
        .bind(id)
        .found(&self.read)
        .await?;
        provider_from(&row)
    }

    #[tracing::instrument(skip(self))]
    async fn payment_providers(
        &self,
        financier_id: &str,
    ) -> Result<Vec<PaymentProviderRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PROVIDER_COLUMNS} FROM payment_providers WHERE financier_id = $1 ORDER BY name"
        )))
        .bind(financier_id)
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        rows.iter().map(provider_from).collect()
    }

    #[tracing::instrument(skip(self, secret_salt, audit))]
    async fn rotate_payment_provider(
        &self,
        id: &str,
        secret_salt: &[u8],
        created_us: i64,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        let updated = sqlx::query(
            "UPDATE payment_providers SET secret_salt = $2, created_us = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(secret_salt.to_vec())
        .bind(created_us)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        append_audit(&mut tx, chain, std::slice::from_ref(audit)).await?;
        tx.commit().await.map_err(backend)
    }

    #[tracing::instrument(skip(self))]
    async fn payment_provider_by_name(
        &self,
        financier_id: &str,
        name: &str,
    ) -> Result<PaymentProviderRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PROVIDER_COLUMNS} FROM payment_providers WHERE financier_id = $1 AND name = $2"
        )))
        .bind(financier_id)
        .bind(name)
        .found(&self.read)
        .await?;
        provider_from(&row)
    }

    #[tracing::instrument(skip(self))]
    async fn webhook_seen(&self, provider_id: &str, webhook_id: &str) -> Result<bool, StoreError> {
        // The writer, not a reader: a replay racing the first message must see its commit.
        Ok(
            sqlx::query(
                "SELECT 1 FROM webhook_messages WHERE provider_id = $1 AND webhook_id = $2",
            )
            .bind(provider_id)
            .bind(webhook_id)
            .fetch_optional(&self.write)
            .await
            .map_err(backend)?
            .is_some(),
        )
    }

    #[tracing::instrument(skip(self))]
    async fn remember_webhook(
        &self,
        provider_id: &str,
        webhook_id: &str,
        message_us: i64,
        forget_before_us: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        sqlx::query("DELETE FROM webhook_messages WHERE provider_id = $1 AND message_us < $2")
            .bind(provider_id)
            .bind(forget_before_us)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let inserted = sqlx::query(
            "INSERT INTO webhook_messages (provider_id, webhook_id, message_us) \
             VALUES ($1, $2, $3) ON CONFLICT (provider_id, webhook_id) DO NOTHING",
        )
        .bind(provider_id)
        .bind(webhook_id)
        .bind(message_us)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        tx.commit().await.map_err(backend)?;
        Ok(inserted == 1)
    }

    #[tracing::instrument(skip_all, fields(financier = %query.financier_id, provider = %query.provider, lines = query.references.len()))]
    async fn statement_holdings(
        &self,
        query: &StatementQuery<'_>,
    ) -> Result<StatementHoldings, StoreError> {
        // A reader, in one transaction: the report is of one moment, and on SQLite the one
        // writer is left to the writes. Nothing is decided on these rows but the report: a
        // missing line is taken through the payment path, whose idempotency key is checked
        // in the writing transaction, so a payment committed meanwhile is not recorded twice.
        let mut tx = self.read.begin().await.map_err(backend)?;
        // A payment a provider brought is recorded under a key of the server's making, the
        // prefix and the reference, in the financier's idempotency scope (its callback, an
        // assignment or a reconciliation).
        let recorded = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RECORDED_COLUMNS} FROM payments p JOIN devices d ON d.id = p.device_id \
             JOIN idempotency i ON i.scope = d.financier_id AND i.key = $2 || p.reference \
             WHERE d.financier_id = $1 AND p.received_us >= $3 AND p.received_us < $4 \
             ORDER BY p.received_us, p.reference"
        )))
        .bind(query.financier_id)
        .bind(query.key_prefix)
        .bind(query.from_us)
        .bind(query.to_us)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        .iter()
        .map(recorded_from)
        .collect::<Result<Vec<_>, _>>()?;
        let unmatched = sqlx::query(AssertSqlSafe(format!(
            "SELECT {UNMATCHED_COLUMNS} FROM unmatched_payments \
             WHERE financier_id = $1 AND provider = $2 AND received_us >= $3 AND received_us < $4 \
             ORDER BY received_us, id"
        )))
        .bind(query.financier_id)
        .bind(query.provider)
        .bind(query.from_us)
        .bind(query.to_us)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        .iter()
        .map(unmatched_from)
        .collect::<Result<Vec<_>, _>>()?;

        let found: HashSet<&str> = recorded
            .iter()
            .map(|p| p.reference.as_str())
            .chain(unmatched.iter().map(|u| u.provider_ref.as_str()))
            .collect();
        let mut others: Vec<&str> = query
            .references
            .iter()
            .map(String::as_str)
            .filter(|r| !found.contains(r))
            .collect();
        others.sort_unstable();
        others.dedup();
        let financier = [Value::from(query.financier_id)];
        let recorded_elsewhere = fetch_in_after(
            &mut tx,
            |before, list| {
                format!(
                    "SELECT {RECORDED_COLUMNS} FROM payments p JOIN devices d ON d.id = p.device_id \
                     WHERE d.financier_id = {} AND p.reference IN ({list}) \
                     ORDER BY p.reference, p.device_id",
                    before[0]
                )
            },
            &financier,
            &others,
        )
        .await?
        .iter()
        .map(recorded_from)
        .collect::<Result<Vec<_>, _>>()?;
        let unmatched_elsewhere = fetch_in_after(
            &mut tx,
            |before, list| {
                format!(
                    "SELECT {UNMATCHED_COLUMNS} FROM unmatched_payments \
                     WHERE financier_id = {} AND provider = {} AND provider_ref IN ({list}) \
                     ORDER BY provider_ref",
                    before[0], before[1]
                )
            },
            &[Value::from(query.financier_id), Value::from(query.provider)],
            &others,
        )
        .await?
        .iter()
        .map(unmatched_from)
        .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await.map_err(backend)?;
        Ok(StatementHoldings {
            recorded,
            unmatched,
            recorded_elsewhere,
            unmatched_elsewhere,
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

fn provider_from(row: &AnyRow) -> Result<PaymentProviderRecord, StoreError> {
    (|| {
        Ok(PaymentProviderRecord {
            id: row.try_get(0)?,
            financier_id: row.try_get(1)?,
            name: row.try_get(2)?,
            secret_salt: row.try_get(3)?,
            created_us: row.try_get(4)?,
        })
    })()
    .map_err(backend)
}

fn recorded_from(row: &AnyRow) -> Result<RecordedPaymentRecord, StoreError> {
    (|| {
        Ok(RecordedPaymentRecord {
            device_id: row.try_get(0)?,
            contract_ref: row.try_get(1)?,
            reference: row.try_get(2)?,
            amount_minor: row.try_get(3)?,
            currency: row.try_get(4)?,
            received_us: row.try_get(5)?,
        })
    })()
    .map_err(backend)
}
