//! Financiers, API keys, the audit log, idempotency, and the store as a whole.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Executor, Row};

use super::audit_log::append_audit;
use super::{Found as _, ReadAll, SqlStore, backend, unique_or_backend};
use crate::{
    ApiKeyRecord, AuditEntry, AuditLog, AuditRecord, Financier, Idempotency, IdempotentResponse,
    Store, StoreError, Tenants,
};

/// The audit chain of events that belong to no device.
pub(crate) const PLATFORM_CHAIN: &str = "platform";

#[async_trait]
impl Tenants for SqlStore {
    #[tracing::instrument(skip_all, fields(financier = %financier.id))]
    async fn create_financier(
        &self,
        financier: &Financier,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO financiers (id, name, contact, payment_link, created_us) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&financier.id)
        .bind(&financier.name)
        .bind(&financier.contact)
        .bind(financier.payment_link.clone())
        .bind(financier.created_us)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_or_backend(e, "a financier with this id exists"))?;
        append_audit(&mut tx, PLATFORM_CHAIN, std::slice::from_ref(audit)).await?;
        tx.commit().await.map_err(backend)
    }

    #[tracing::instrument(skip_all, fields(financier = %financier.id))]
    async fn update_financier(
        &self,
        financier: &Financier,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        let changed = sqlx::query(
            "UPDATE financiers SET name = $1, contact = $2, payment_link = $3 WHERE id = $4",
        )
        .bind(&financier.name)
        .bind(&financier.contact)
        .bind(financier.payment_link.clone())
        .bind(&financier.id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        let chain = format!("financier:{}", financier.id);
        append_audit(&mut tx, &chain, std::slice::from_ref(audit)).await?;
        tx.commit().await.map_err(backend)
    }

    async fn financier(&self, id: &str) -> Result<Financier, StoreError> {
        financier_by_id(&self.read, id).await
    }

    async fn financiers(&self) -> Result<Vec<Financier>, StoreError> {
        sqlx::query(
            "SELECT id, name, contact, payment_link, created_us FROM financiers ORDER BY id",
        )
        .read_all(&self.read, financier_from)
        .await
    }

    #[tracing::instrument(skip_all, fields(key = %key.id, role = %key.role))]
    async fn create_api_key(
        &self,
        key: &ApiKeyRecord,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO api_keys (key_hash, id, role, financier_id, label, created_us, expires_us, revoked_us, last_used_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(key.key_hash.clone())
        .bind(&key.id)
        .bind(&key.role)
        .bind(key.financier_id.clone())
        .bind(&key.label)
        .bind(key.created_us)
        .bind(key.expires_us)
        .bind(key.revoked_us)
        .bind(key.last_used_us)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_or_backend(e, "an API key with this id exists"))?;
        append_audit(&mut tx, chain, std::slice::from_ref(audit)).await?;
        tx.commit().await.map_err(backend)
    }

    async fn api_key_by_hash(&self, key_hash: &[u8]) -> Result<ApiKeyRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"
        )))
        .bind(key_hash.to_vec())
        .found(&self.read)
        .await?;
        key_from(&row)
    }

    async fn has_platform_admin(&self) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM api_keys WHERE role = $1")
            .bind(PLATFORM_ADMIN)
            .fetch_one(&self.read)
            .await
            .map_err(backend)?;
        Ok(row.try_get::<i64, _>(0).map_err(backend)? > 0)
    }

    async fn api_key(&self, id: &str) -> Result<ApiKeyRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"
        )))
        .bind(id)
        .found(&self.read)
        .await?;
        key_from(&row)
    }

    async fn api_keys(&self, financier_id: Option<&str>) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = match financier_id {
            Some(financier) => sqlx::query(AssertSqlSafe(format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE financier_id = $1 ORDER BY created_us, id"
            )))
            .bind(financier)
            .fetch_all(&self.read)
            .await,
            None => sqlx::query(AssertSqlSafe(format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE financier_id IS NULL ORDER BY created_us, id"
            )))
            .fetch_all(&self.read)
            .await,
        }
        .map_err(backend)?;
        rows.iter().map(key_from).collect()
    }

    #[tracing::instrument(skip(self, audit))]
    async fn revoke_api_key(
        &self,
        id: &str,
        at_us: i64,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<ApiKeyRecord, StoreError> {
        let for_update = self.dialect.for_update();
        let mut tx = self.write.begin().await.map_err(backend)?;
        // A key's role never changes, so it may be read before any lock is taken.
        let role: String = sqlx::query("SELECT role FROM api_keys WHERE id = $1")
            .bind(id)
            .found(&mut *tx)
            .await?
            .try_get(0)
            .map_err(backend)?;
        let key = if role == PLATFORM_ADMIN {
            // Every platform admin key is locked, always in the order of their ids, so that two
            // revocations at once take turns (rather than deadlock), and the second sees the
            // first one's revocation when it counts the keys left.
            let admins = sqlx::query(AssertSqlSafe(format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE role = $1 ORDER BY id{for_update}"
            )))
            .bind(PLATFORM_ADMIN)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?
            .iter()
            .map(key_from)
            .collect::<Result<Vec<_>, _>>()?;
            let active = |k: &ApiKeyRecord| {
                k.revoked_us.is_none() && k.expires_us.is_none_or(|until| until > at_us)
            };
            let key = admins
                .iter()
                .find(|k| k.id == id)
                .cloned()
                .ok_or(StoreError::NotFound)?;
            if active(&key) && !admins.iter().any(|k| k.id != id && active(k)) {
                return Err(StoreError::Conflict(
                    "this is the last active platform admin key; create another one first".into(),
                ));
            }
            key
        } else {
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1{for_update}"
            )))
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
            key_from(&row)?
        };
        if key.revoked_us.is_some() {
            return Ok(key);
        }
        sqlx::query("UPDATE api_keys SET revoked_us = $2 WHERE id = $1")
            .bind(id)
            .bind(at_us)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        append_audit(&mut tx, chain, std::slice::from_ref(audit)).await?;
        tx.commit().await.map_err(backend)?;
        Ok(ApiKeyRecord {
            revoked_us: Some(at_us),
            ..key
        })
    }

    async fn touch_api_key(&self, id: &str, at_us: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_keys SET last_used_us = $2 \
             WHERE id = $1 AND (last_used_us IS NULL OR last_used_us < $2)",
        )
        .bind(id)
        .bind(at_us)
        .execute(&self.write)
        .await
        .map(|_| ())
        .map_err(backend)
    }
}

/// The role whose last active key may not be revoked.
const PLATFORM_ADMIN: &str = "platform-admin";

/// The columns [`key_from`] reads, in its order.
const KEY_COLUMNS: &str =
    "key_hash, id, role, financier_id, label, created_us, expires_us, revoked_us, last_used_us";

fn key_from(row: &AnyRow) -> Result<ApiKeyRecord, StoreError> {
    (|| {
        Ok(ApiKeyRecord {
            key_hash: row.try_get(0)?,
            id: row.try_get(1)?,
            role: row.try_get(2)?,
            financier_id: row.try_get(3)?,
            label: row.try_get(4)?,
            created_us: row.try_get(5)?,
            expires_us: row.try_get(6)?,
            revoked_us: row.try_get(7)?,
            last_used_us: row.try_get(8)?,
        })
    })()
    .map_err(backend)
}

/// One financier, read through `executor`: a pool, or a transaction that must not take a
/// second connection from the pool.
pub(super) async fn financier_by_id<'c, E>(executor: E, id: &str) -> Result<Financier, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let row = sqlx::query(
        "SELECT id, name, contact, payment_link, created_us FROM financiers WHERE id = $1",
    )
    .bind(id)
    .found(executor)
    .await?;
    financier_from(&row)
}

fn financier_from(row: &AnyRow) -> Result<Financier, StoreError> {
    (|| {
        Ok(Financier {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            contact: row.try_get(2)?,
            payment_link: row.try_get(3)?,
            created_us: row.try_get(4)?,
        })
    })()
    .map_err(backend)
}

#[async_trait]
impl AuditLog for SqlStore {
    async fn audit_chain(&self, chain: &str) -> Result<Vec<AuditRecord>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit WHERE chain = $1 ORDER BY seq"
        )))
        .bind(chain)
        .read_all(&self.read, audit_record_from)
        .await
    }
}

#[async_trait]
impl Idempotency for SqlStore {
    async fn idempotent_response(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotentResponse>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT request_hash, status, body FROM idempotency WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        // The writer, not a reader: a retry that races the first request must see its commit.
        .fetch_optional(&self.write)
        .await
        .map_err(backend)?
        else {
            return Ok(None);
        };
        (|| {
            Ok(Some(IdempotentResponse {
                scope: scope.to_string(),
                key: key.to_string(),
                request_hash: row.try_get(0)?,
                status: u16::try_from(row.try_get::<i64, _>(1)?).unwrap_or(500),
                body: row.try_get(2)?,
            }))
        })()
        .map_err(backend)
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .fetch_one(&self.write)
            .await
            .map(|_| ())
            .map_err(backend)
    }

    fn backend(&self) -> &'static str {
        self.backend_name()
    }

    fn device_changes(&self) -> tokio::sync::broadcast::Receiver<crate::DeviceFeed> {
        self.feed.subscribe()
    }
}

/// The columns [`audit_record_from`] reads, in its order.
pub(super) const AUDIT_COLUMNS: &str =
    "chain, seq, at_us, actor, action, reason, before_json, after_json, prev_hash, hash";

/// An audit record from a row of [`AUDIT_COLUMNS`].
pub(super) fn audit_record_from(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    (|| {
        Ok(AuditRecord {
            chain: row.try_get(0)?,
            seq: row.try_get(1)?,
            entry: AuditEntry {
                at_us: row.try_get(2)?,
                actor: row.try_get(3)?,
                action: row.try_get(4)?,
                reason: row.try_get(5)?,
                before_json: row.try_get(6)?,
                after_json: row.try_get(7)?,
            },
            prev_hash: row.try_get(8)?,
            hash: row.try_get(9)?,
        })
    })()
    .map_err(backend)
}
