//! Webhook endpoints, the outbox and deliveries (see [`crate::webhooks`]).
//!
//! The outbox is written only inside the transactions of the changes it describes
//! ([`insert_events`]); everything else here runs after the commit and may run on several
//! servers at once. Fanning out is safe to repeat (a delivery is keyed by endpoint and event,
//! and made with `ON CONFLICT DO NOTHING`) and takes its events under row locks on PostgreSQL,
//! oldest first, so a device's later event never gets its delivery before an earlier one. A
//! claim is taken with a guarded `UPDATE` (`claimed_until_us <= now`): of two servers that
//! picked the same delivery, one updates it and the other finds it taken and leaves it. The
//! claim records its holder, and an outcome is written only where the holder still matches
//! (`claimed_by`), so a late pass whose claim was taken over writes nothing.
//!
//! The per-endpoint cap counts the endpoint's deliveries claimed and not run out at the time
//! of the claim. On PostgreSQL two servers claiming at the same instant may each see the same
//! count and together exceed the cap by one claim's worth; the cap bounds how much one hanging
//! receiver can hold of a server's attempts, which that does not undo.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, AssertSqlSafe, Row, Transaction};

use super::audit_log::append_audit;
use super::{Dialect, ReadAll, SqlStore, backend, unique_or_backend};
use crate::{
    AttemptOutcome, AuditEntry, Claim, ClaimedDelivery, DeliveryRecord, DeliveryStatus,
    OutboxEvent, StoreError, StoredEvent, WebhookEndpointRecord, Webhooks,
};

/// The events pruning may delete: fanned out, older than `$1`, and with no delivery still
/// pending at an endpoint that can take it (a redelivery asked for by hand, a retry).
const PRUNABLE: &str = "o.fanned_out = 1 AND o.created_us < $1 AND NOT EXISTS ( \
     SELECT 1 FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
     WHERE d.event_id = o.id AND d.status = 'pending' \
     AND e.deleted_us IS NULL AND e.disabled_us IS NULL)";

/// The columns [`endpoint_from`] reads, in its order.
const ENDPOINT_COLUMNS: &str = "id, financier_id, url, event_types, secret, previous_secret, \
     previous_secret_until_us, created_us, disabled_us";

/// Writes `events` to the outbox, inside the transaction of the change they describe.
pub(super) async fn insert_events(
    tx: &mut Transaction<'_, Any>,
    financier_id: &str,
    device_id: Option<&str>,
    sequence: Option<i64>,
    events: &[OutboxEvent],
) -> Result<(), StoreError> {
    for e in events {
        sqlx::query(
            "INSERT INTO outbox (id, financier_id, device_id, sequence, event_type, payload, created_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&e.id)
        .bind(financier_id)
        .bind(device_id.map(str::to_string))
        .bind(sequence)
        .bind(&e.event_type)
        .bind(&e.payload)
        .bind(e.created_us)
        .execute(&mut **tx)
        .await
        .map_err(|err| unique_or_backend(err, "this event id is taken"))?;
    }
    Ok(())
}

fn endpoint_from(row: &AnyRow) -> Result<WebhookEndpointRecord, StoreError> {
    endpoint_at(row, 0)
}

/// The endpoint whose columns ([`ENDPOINT_COLUMNS`]) start at `at`.
fn endpoint_at(row: &AnyRow, at: usize) -> Result<WebhookEndpointRecord, StoreError> {
    let types: String = row.try_get(at + 3).map_err(backend)?;
    Ok(WebhookEndpointRecord {
        id: row.try_get(at).map_err(backend)?,
        financier_id: row.try_get(at + 1).map_err(backend)?,
        url: row.try_get(at + 2).map_err(backend)?,
        event_types: types.split_whitespace().map(str::to_string).collect(),
        secret: row.try_get(at + 4).map_err(backend)?,
        previous_secret: row.try_get(at + 5).map_err(backend)?,
        previous_secret_until_us: row.try_get(at + 6).map_err(backend)?,
        created_us: row.try_get(at + 7).map_err(backend)?,
        disabled_us: row.try_get(at + 8).map_err(backend)?,
    })
}

/// The columns [`delivery_from`] reads, in its order (`d` the deliveries, `o` the outbox).
const DELIVERY_COLUMNS: &str = "d.endpoint_id, d.event_id, o.event_type, d.status, d.attempts, \
     d.next_attempt_us, d.last_attempt_us, d.last_status, d.last_error, d.delivered_us";

fn delivery_from(row: &AnyRow) -> Result<DeliveryRecord, StoreError> {
    let status: String = row.try_get(3).map_err(backend)?;
    Ok(DeliveryRecord {
        endpoint_id: row.try_get(0).map_err(backend)?,
        event_id: row.try_get(1).map_err(backend)?,
        event_type: row.try_get(2).map_err(backend)?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| {
            StoreError::Backend(format!("unknown delivery status {status:?}").into())
        })?,
        attempts: row.try_get(4).map_err(backend)?,
        next_attempt_us: row.try_get(5).map_err(backend)?,
        last_attempt_us: row.try_get(6).map_err(backend)?,
        last_status: row.try_get(7).map_err(backend)?,
        last_error: row.try_get(8).map_err(backend)?,
        delivered_us: row.try_get(9).map_err(backend)?,
    })
}

/// The columns [`event_at`] reads, in its order (`o` the outbox).
const EVENT_COLUMNS: &str =
    "o.id, o.event_type, o.payload, o.created_us, o.financier_id, o.device_id, o.sequence";

fn event_at(row: &AnyRow, at: usize) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        event: OutboxEvent {
            id: row.try_get(at).map_err(backend)?,
            event_type: row.try_get(at + 1).map_err(backend)?,
            payload: row.try_get(at + 2).map_err(backend)?,
            created_us: row.try_get(at + 3).map_err(backend)?,
        },
        financier_id: row.try_get(at + 4).map_err(backend)?,
        device_id: row.try_get(at + 5).map_err(backend)?,
        sequence: row.try_get(at + 6).map_err(backend)?,
    })
}

/// Runs `update` of live endpoint `id` on `pool` (the writer) with its audit entry, in one
/// transaction, and returns the endpoint as it now stands; `NotFound`, and nothing written, if
/// the update matched no live endpoint.
async fn update_endpoint_audited(
    pool: &AnyPool,
    update: Query<'_, Any, AnyArguments>,
    id: &str,
    chain: &str,
    audit: &AuditEntry,
) -> Result<WebhookEndpointRecord, StoreError> {
    let mut tx = pool.begin().await.map_err(backend)?;
    let done = update.execute(&mut *tx).await.map_err(backend)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    append_audit(&mut tx, chain, std::slice::from_ref(audit)).await?;
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .map_err(backend)?;
    let endpoint = endpoint_from(&row)?;
    tx.commit().await.map_err(backend)?;
    Ok(endpoint)
}

#[async_trait]
impl Webhooks for SqlStore {
    #[tracing::instrument(skip_all, fields(endpoint = %endpoint.id))]
    async fn create_webhook_endpoint(
        &self,
        endpoint: &WebhookEndpointRecord,
        max: usize,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        // The financier's row, locked on PostgreSQL, serialises its concurrent creations, so
        // that each counts the others' endpoints; SQLite's one writer does so already.
        sqlx::query(AssertSqlSafe(format!(
            "SELECT id FROM financiers WHERE id = $1{}",
            self.dialect.for_update()
        )))
        .bind(&endpoint.financier_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound)?;
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) FROM webhook_endpoints WHERE financier_id = $1 AND deleted_us IS NULL",
        )
        .bind(&endpoint.financier_id)
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(backend)?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= max {
            return Err(StoreError::Conflict(format!(
                "a financier may have at most {max} webhook endpoints"
            )));
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )))
        .bind(&endpoint.id)
        .bind(&endpoint.financier_id)
        .bind(&endpoint.url)
        .bind(endpoint.event_types.join(" "))
        .bind(&endpoint.secret)
        .bind(endpoint.previous_secret.clone())
        .bind(endpoint.previous_secret_until_us)
        .bind(endpoint.created_us)
        .bind(endpoint.disabled_us)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_or_backend(e, "this endpoint id is taken"))?;
        append_audit(&mut tx, chain, std::slice::from_ref(audit)).await?;
        tx.commit().await.map_err(backend)
    }

    // Not the URL: it may carry the receiver's own token.
    #[tracing::instrument(skip(self, url, audit))]
    async fn update_webhook_endpoint(
        &self,
        id: &str,
        url: &str,
        event_types: &[String],
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<WebhookEndpointRecord, StoreError> {
        let update = sqlx::query(
            "UPDATE webhook_endpoints SET url = $1, event_types = $2, disabled_us = NULL \
             WHERE id = $3 AND deleted_us IS NULL",
        )
        .bind(url)
        .bind(event_types.join(" "))
        .bind(id);
        update_endpoint_audited(&self.write, update, id, chain, audit).await
    }

    #[tracing::instrument(skip(self))]
    async fn webhook_endpoint(&self, id: &str) -> Result<WebhookEndpointRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND deleted_us IS NULL"
        )))
        .bind(id)
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound)?;
        endpoint_from(&row)
    }

    #[tracing::instrument(skip(self))]
    async fn webhook_endpoints(
        &self,
        financier_id: &str,
    ) -> Result<Vec<WebhookEndpointRecord>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
             WHERE financier_id = $1 AND deleted_us IS NULL ORDER BY created_us, id"
        )))
        .bind(financier_id)
        .read_all(&self.read, endpoint_from)
        .await
    }

    #[tracing::instrument(skip(self, audit))]
    async fn delete_webhook_endpoint(
        &self,
        id: &str,
        at_us: i64,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        // The secrets go with it: nothing is signed for a deleted endpoint again, and a copy
        // of the database taken later holds none of them.
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET deleted_us = $1, secret = '', previous_secret = NULL, \
             previous_secret_until_us = NULL WHERE id = $2 AND deleted_us IS NULL",
        )
        .bind(at_us)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        append_audit(&mut tx, chain, std::slice::from_ref(audit)).await?;
        tx.commit().await.map_err(backend)
    }

    #[tracing::instrument(skip(self, secret, audit))]
    async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret: &str,
        previous_until_us: i64,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<WebhookEndpointRecord, StoreError> {
        let update = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = secret, secret = $1, \
             previous_secret_until_us = $2 WHERE id = $3 AND deleted_us IS NULL",
        )
        .bind(secret)
        .bind(previous_until_us)
        .bind(id);
        update_endpoint_audited(&self.write, update, id, chain, audit).await
    }

    #[tracing::instrument(skip(self))]
    async fn fan_out_events(&self, limit: u32) -> Result<usize, StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        // Locked, not skipped, on PostgreSQL: a server that skipped an older event another is
        // fanning out could make a device's later delivery before its earlier one.
        let events = sqlx::query(AssertSqlSafe(format!(
            "SELECT seq, id, financier_id, device_id, event_type, created_us FROM outbox \
             WHERE fanned_out = 0 ORDER BY seq LIMIT $1{}",
            self.dialect.for_update()
        )))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let mut endpoints: std::collections::HashMap<String, Vec<(String, String)>> =
            std::collections::HashMap::new();
        for row in &events {
            let seq: i64 = row.try_get(0).map_err(backend)?;
            let id: String = row.try_get(1).map_err(backend)?;
            let financier: String = row.try_get(2).map_err(backend)?;
            let device: Option<String> = row.try_get(3).map_err(backend)?;
            let event_type: String = row.try_get(4).map_err(backend)?;
            let created_us: i64 = row.try_get(5).map_err(backend)?;
            if !endpoints.contains_key(&financier) {
                let rows = sqlx::query(
                    "SELECT id, event_types FROM webhook_endpoints \
                     WHERE financier_id = $1 AND deleted_us IS NULL AND disabled_us IS NULL",
                )
                .bind(&financier)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
                let list = rows
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect::<Result<Vec<(String, String)>, sqlx::Error>>()
                    .map_err(backend)?;
                endpoints.insert(financier.clone(), list);
            }
            for (endpoint, types) in &endpoints[&financier] {
                let wanted = types.is_empty() || types.split_whitespace().any(|t| t == event_type);
                if !wanted {
                    continue;
                }
                sqlx::query(
                    "INSERT INTO webhook_deliveries (endpoint_id, event_id, seq, device_id, status, next_attempt_us) \
                     VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT (endpoint_id, event_id) DO NOTHING",
                )
                .bind(endpoint)
                .bind(&id)
                .bind(seq)
                .bind(device.clone())
                .bind(created_us)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
            sqlx::query("UPDATE outbox SET fanned_out = 1 WHERE seq = $1")
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(events.len())
    }

    #[tracing::instrument(skip(self))]
    async fn claim_deliveries(&self, claim: Claim<'_>) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let lock = match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE OF d SKIP LOCKED",
        };
        let in_flight = "(SELECT COUNT(*) FROM webhook_deliveries f WHERE f.endpoint_id = d.endpoint_id \
             AND f.status = 'pending' AND f.claimed_until_us > $1)";
        // Through the financier's endpoints (a handful, by webhook_endpoints_by_financier),
        // each counted by webhook_deliveries_in_flight.
        let financier_in_flight = "(SELECT COUNT(*) FROM webhook_endpoints fe \
             JOIN webhook_deliveries ff ON ff.endpoint_id = fe.id \
             WHERE fe.financier_id = e.financier_id \
             AND ff.status = 'pending' AND ff.claimed_until_us > $1)";
        let mut tx = self.write.begin().await.map_err(backend)?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {in_flight}, {financier_in_flight}, d.attempts, {EVENT_COLUMNS}, {} \
             FROM webhook_deliveries d \
             JOIN outbox o ON o.id = d.event_id \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.status = 'pending' AND d.next_attempt_us <= $1 AND d.claimed_until_us <= $1 \
             AND e.disabled_us IS NULL AND e.deleted_us IS NULL \
             AND {in_flight} < $3 AND {financier_in_flight} < $4 \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.endpoint_id = d.endpoint_id \
                 AND p.device_id = d.device_id AND p.seq < d.seq AND p.status = 'pending') \
             ORDER BY d.seq LIMIT $2{lock}",
            ENDPOINT_COLUMNS
                .split(", ")
                .map(|c| format!("e.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .bind(claim.now_us)
        .bind(i64::from(claim.limit))
        .bind(i64::from(claim.per_endpoint))
        .bind(i64::from(claim.per_financier))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        // Each endpoint's and financier's share of this claim: what the caps leave beside
        // their claims in flight.
        let mut taken_per_endpoint: HashMap<String, i64> = HashMap::new();
        let mut taken_per_financier: HashMap<String, i64> = HashMap::new();
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let in_flight: i64 = row.try_get(0).map_err(backend)?;
            let financier_in_flight: i64 = row.try_get(1).map_err(backend)?;
            let attempts: i64 = row.try_get(2).map_err(backend)?;
            let event = event_at(row, 3)?;
            let endpoint = endpoint_at(row, 10)?;
            let endpoint_share = taken_per_endpoint.get(&endpoint.id).copied().unwrap_or(0);
            let financier_share = taken_per_financier
                .get(&endpoint.financier_id)
                .copied()
                .unwrap_or(0);
            if in_flight + endpoint_share >= i64::from(claim.per_endpoint)
                || financier_in_flight + financier_share >= i64::from(claim.per_financier)
            {
                continue;
            }
            let taken = sqlx::query(
                "UPDATE webhook_deliveries SET claimed_until_us = $1, claimed_by = $2 \
                 WHERE endpoint_id = $3 AND event_id = $4 AND claimed_until_us <= $5 AND status = 'pending'",
            )
            .bind(claim.until_us)
            .bind(claim.holder)
            .bind(&endpoint.id)
            .bind(&event.event.id)
            .bind(claim.now_us)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
            if taken == 1 {
                *taken_per_endpoint.entry(endpoint.id.clone()).or_default() += 1;
                *taken_per_financier
                    .entry(endpoint.financier_id.clone())
                    .or_default() += 1;
                claimed.push(ClaimedDelivery {
                    event,
                    endpoint,
                    attempts,
                });
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(claimed)
    }

    #[tracing::instrument(skip(self))]
    async fn finish_delivery(
        &self,
        endpoint_id: &str,
        event_id: &str,
        holder: &str,
        at_us: i64,
        outcome: &AttemptOutcome,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        let (status, next, last_status, error, delivered) = match outcome {
            AttemptOutcome::Delivered(code) => (
                DeliveryStatus::Delivered,
                None,
                Some(i64::from(*code)),
                None,
                Some(at_us),
            ),
            AttemptOutcome::Failed {
                status,
                error,
                next_attempt_us,
            } => (
                if next_attempt_us.is_some() {
                    DeliveryStatus::Pending
                } else {
                    DeliveryStatus::Failed
                },
                *next_attempt_us,
                status.map(i64::from),
                Some(error.clone()),
                None,
            ),
            AttemptOutcome::Gone => (
                DeliveryStatus::Failed,
                None,
                Some(410),
                Some("the endpoint answered 410 Gone and is disabled".to_string()),
                None,
            ),
        };
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, \
             next_attempt_us = COALESCE($2, next_attempt_us), claimed_until_us = 0, claimed_by = NULL, \
             last_attempt_us = $3, last_status = $4, last_error = $5, delivered_us = $6 \
             WHERE endpoint_id = $7 AND event_id = $8 AND claimed_by = $9 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(next)
        .bind(at_us)
        .bind(last_status)
        .bind(error)
        .bind(delivered)
        .bind(endpoint_id)
        .bind(event_id)
        .bind(holder)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if *outcome == AttemptOutcome::Gone {
            sqlx::query(
                "UPDATE webhook_endpoints SET disabled_us = $1 WHERE id = $2 AND disabled_us IS NULL",
            )
            .bind(at_us)
            .bind(endpoint_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    #[tracing::instrument(skip(self))]
    async fn prune_webhooks(
        &self,
        now_us: i64,
        before_us: i64,
        limit: u32,
    ) -> Result<usize, StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = NULL, previous_secret_until_us = NULL \
             WHERE previous_secret_until_us <= $1",
        )
        .bind(now_us)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        // The same oldest events twice: their deliveries first, as they refer to the events.
        let batch = format!(
            "SELECT o.id FROM outbox o WHERE {PRUNABLE} ORDER BY o.created_us, o.seq LIMIT $2"
        );
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM webhook_deliveries WHERE event_id IN ({batch})"
        )))
        .bind(before_us)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let deleted = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM outbox WHERE id IN ({batch})"
        )))
        .bind(before_us)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        tx.commit().await.map_err(backend)?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    #[tracing::instrument(skip(self))]
    async fn webhook_deliveries(
        &self,
        endpoint_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN outbox o ON o.id = d.event_id \
             WHERE d.endpoint_id = $1 ORDER BY d.seq DESC LIMIT $2"
        )))
        .bind(endpoint_id)
        .bind(i64::from(limit))
        .read_all(&self.read, delivery_from)
        .await
    }

    #[tracing::instrument(skip(self))]
    async fn redeliver(
        &self,
        endpoint_id: &str,
        event_id: &str,
        now_us: i64,
    ) -> Result<DeliveryRecord, StoreError> {
        // A delivery being sent right now keeps its claim: clearing it would let a second
        // attempt start beside the first (a double send, and one more beyond the endpoint's cap).
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_us = $1, claimed_until_us = 0, \
             claimed_by = NULL WHERE endpoint_id = $2 AND event_id = $3 AND claimed_until_us <= $1",
        )
        .bind(now_us)
        .bind(endpoint_id)
        .bind(event_id)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            let exists = sqlx::query(
                "SELECT 1 FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = $2",
            )
            .bind(endpoint_id)
            .bind(event_id)
            .fetch_optional(&self.write)
            .await
            .map_err(backend)?;
            return Err(match exists {
                Some(_) => StoreError::Conflict(
                    "the event is being sent to this endpoint right now; its outcome will be in the \
                     delivery log within a minute"
                        .to_string(),
                ),
                None => StoreError::NotFound,
            });
        }
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN outbox o ON o.id = d.event_id \
             WHERE d.endpoint_id = $1 AND d.event_id = $2"
        )))
        .bind(endpoint_id)
        .bind(event_id)
        .fetch_one(&self.write)
        .await
        .map_err(backend)?;
        delivery_from(&row)
    }

    #[tracing::instrument(skip(self))]
    async fn outbox_events(&self, financier_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM outbox o WHERE o.financier_id = $1 ORDER BY o.seq"
        )))
        .bind(financier_id)
        .read_all(&self.read, |row| event_at(row, 0))
        .await
    }
}
