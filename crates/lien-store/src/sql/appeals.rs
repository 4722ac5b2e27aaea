//! Appeals in SQL: the reads, and the write inside a device change's transaction.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Found as _, ReadAll, SqlStore, backend, unique_or_backend};
use crate::StoreError;
use crate::appeals::{
    AppealFilter, AppealRecord, AppealWrite, Appeals, AttachmentRecord, Attachments, ImeiHistory,
};

const COLUMNS: &str = "reference, device_id, financier_id, claim, contact, statement, \
    payment_reference, paid_on, amount_minor, currency, status, opened_us, deadline_us, \
    unlock_until_us, decided_us, decided_by, decision_reason, file_path, file_type, file_size, \
    file_sha256";

fn appeal_from(r: &AnyRow) -> Result<AppealRecord, StoreError> {
    let read = || -> Result<AppealRecord, sqlx::Error> {
        let path: Option<String> = r.try_get(17)?;
        let attachment = match path {
            Some(path) => Some(AttachmentRecord {
                path,
                media_type: r.try_get(18)?,
                size: r.try_get(19)?,
                sha256: r.try_get(20)?,
            }),
            None => None,
        };
        Ok(AppealRecord {
            reference: r.try_get(0)?,
            device_id: r.try_get(1)?,
            financier_id: r.try_get(2)?,
            claim: r.try_get(3)?,
            contact: r.try_get(4)?,
            statement: r.try_get(5)?,
            payment_reference: r.try_get(6)?,
            paid_on: r.try_get(7)?,
            amount_minor: r.try_get(8)?,
            currency: r.try_get(9)?,
            status: r.try_get(10)?,
            opened_us: r.try_get(11)?,
            deadline_us: r.try_get(12)?,
            unlock_until_us: r.try_get(13)?,
            decided_us: r.try_get(14)?,
            decided_by: r.try_get(15)?,
            decision_reason: r.try_get(16)?,
            attachment,
        })
    };
    read().map_err(backend)
}

/// Writes the appeal part of a device change inside the change's transaction.
pub(super) async fn apply(
    tx: &mut Transaction<'_, Any>,
    device_id: &str,
    write: Option<&AppealWrite>,
) -> Result<(), StoreError> {
    match write {
        None => Ok(()),
        Some(AppealWrite::Open(a)) => {
            let file = a.attachment.as_ref();
            sqlx::query(
                "INSERT INTO appeals (reference, device_id, financier_id, claim, contact, statement, \
                 payment_reference, paid_on, amount_minor, currency, status, opened_us, deadline_us, \
                 unlock_until_us, decided_us, decided_by, decision_reason, file_path, file_type, \
                 file_size, file_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                 $13, $14, $15, $16, $17, $18, $19, $20, $21)",
            )
            .bind(&a.reference)
            .bind(device_id)
            .bind(&a.financier_id)
            .bind(&a.claim)
            .bind(&a.contact)
            .bind(&a.statement)
            .bind(&a.payment_reference)
            .bind(&a.paid_on)
            .bind(a.amount_minor)
            .bind(&a.currency)
            .bind(&a.status)
            .bind(a.opened_us)
            .bind(a.deadline_us)
            .bind(a.unlock_until_us)
            .bind(a.decided_us)
            .bind(&a.decided_by)
            .bind(&a.decision_reason)
            .bind(file.map(|f| f.path.clone()))
            .bind(file.map(|f| f.media_type.clone()))
            .bind(file.map(|f| f.size))
            .bind(file.map(|f| f.sha256.clone()))
            .execute(&mut **tx)
            .await
            .map_err(|e| {
                unique_or_backend(
                    e,
                    "an appeal about this device is already open; follow it with its reference",
                )
            })?;
            Ok(())
        }
        Some(AppealWrite::Decide {
            reference,
            status,
            decided_us,
            decided_by,
            reason,
        }) => {
            let done = sqlx::query(
                "UPDATE appeals SET status = $1, decided_us = $2, decided_by = $3, decision_reason = $4 \
                 WHERE reference = $5 AND device_id = $6 AND status = 'open'",
            )
            .bind(status)
            .bind(*decided_us)
            .bind(decided_by)
            .bind(reason)
            .bind(reference)
            .bind(device_id)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
            if done.rows_affected() == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict(format!(
                    "appeal {reference} is already answered"
                )))
            }
        }
    }
}

#[async_trait]
impl Appeals for SqlStore {
    #[tracing::instrument(skip(self))]
    async fn appeal(&self, reference: &str) -> Result<AppealRecord, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM appeals WHERE reference = $1"
        )))
        .bind(reference)
        .found(&self.read)
        .await?;
        appeal_from(&row)
    }

    #[tracing::instrument(skip(self))]
    async fn list_appeals(&self, filter: &AppealFilter) -> Result<Vec<AppealRecord>, StoreError> {
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        for (column, value) in [
            ("financier_id", &filter.financier_id),
            ("status", &filter.status),
            ("device_id", &filter.device_id),
        ] {
            if let Some(v) = value {
                values.push(v.clone());
                clauses.push(format!("{column} = ${}", values.len()));
            }
        }
        let where_clause = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let order = if filter.soonest_deadline_first {
            "deadline_us, reference"
        } else {
            "opened_us DESC, reference"
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM appeals{where_clause} ORDER BY {order} LIMIT ${}",
            values.len() + 1
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for v in values {
            query = query.bind(v);
        }
        query
            .bind(i64::from(filter.limit.max(1)))
            .read_all(&self.read, appeal_from)
            .await
    }
}

#[async_trait]
impl ImeiHistory for SqlStore {
    #[tracing::instrument(skip(self))]
    async fn last_release(&self, imei: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT MAX(released_us) FROM devices WHERE (imei1 = $1 OR imei2 = $1) \
             AND released_us IS NOT NULL",
        )
        .bind(imei)
        .fetch_one(&self.read)
        .await
        .map_err(backend)?;
        row.try_get::<Option<i64>, _>(0).map_err(backend)
    }
}

#[async_trait]
impl Attachments for SqlStore {
    #[tracing::instrument(skip(self, content), fields(size = content.len()))]
    async fn put_attachment(
        &self,
        key: &str,
        content: &[u8],
        media_type: &str,
        created_us: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO attachments (key, media_type, content, created_us) VALUES ($1, $2, $3, $4)",
        )
        .bind(key)
        .bind(media_type)
        .bind(content.to_vec())
        .bind(created_us)
        .execute(&self.write)
        .await
        .map_err(|e| unique_or_backend(e, "an attachment with this key is already stored"))?;
        Ok(())
    }

    #[tracing::instrument(skip(self))]
    async fn attachment(&self, key: &str) -> Result<(Vec<u8>, String), StoreError> {
        let row = sqlx::query("SELECT content, media_type FROM attachments WHERE key = $1")
            .bind(key)
            .found(&self.read)
            .await?;
        Ok((
            row.try_get(0).map_err(backend)?,
            row.try_get(1).map_err(backend)?,
        ))
    }

    #[tracing::instrument(skip(self))]
    async fn delete_attachment(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM attachments WHERE key = $1")
            .bind(key)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
