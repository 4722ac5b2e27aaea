//! Devices: enrollment, the one change path, the check-in read, and the scheduler's claims.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use super::checkin_cache::Lookup;
use super::tenants::financier_by_id;
use super::{SqlStore, append_audit, backend, unique_or_backend};
use crate::{
    Binding, ChangeFn, CheckinView, DecisionRecord, DeviceChange, DeviceFilter, DeviceRecord,
    DeviceSnapshot, Devices, NewDevice, OverrideRecord, PaymentRecord, ReversalRecord, Schedule,
    StatusCodeMatch, StoreError, TokenRecord,
};

/// The columns [`device_from`] reads, in its order, for a query `FROM devices`.
///
/// The current token's status code is kept only in `tokens`, so it is read from there; without
/// it a device's token would come back with an empty status code.
const DEVICE_COLUMNS: &str = "id, financier_id, contract_ref, imei1, imei2, serial, model, \
    plan_json, policy_json, enrolled_us, state, decision_json, amount_due_minor, currency, \
    next_eval_us, binding_generation, device_key, bound_us, token_sequence, token_state, \
    token_issued_us, token_lease_end_us, token, applied_sequence, last_seen_us, ocra_counter, \
    released_us, (SELECT t.status_code FROM tokens t WHERE t.device_id = devices.id \
    AND t.sequence = devices.token_sequence)";

fn device_from(row: &AnyRow) -> Result<DeviceRecord, StoreError> {
    (|| {
        let generation: i64 = row.try_get(15)?;
        let device_key: Option<Vec<u8>> = row.try_get(16)?;
        let bound_us: Option<i64> = row.try_get(17)?;
        let sequence: i64 = row.try_get(18)?;
        let token: Option<Vec<u8>> = row.try_get(22)?;
        Ok(DeviceRecord {
            enrolled: NewDevice {
                id: row.try_get(0)?,
                financier_id: row.try_get(1)?,
                contract_ref: row.try_get(2)?,
                imei1: row.try_get(3)?,
                imei2: row.try_get(4)?,
                serial: row.try_get(5)?,
                model: row.try_get(6)?,
                plan_json: row.try_get(7)?,
                policy_json: row.try_get(8)?,
                enrolled_us: row.try_get(9)?,
            },
            decision: DecisionRecord {
                state: row.try_get(10)?,
                json: row.try_get(11)?,
                amount_due_minor: row.try_get(12)?,
                currency: row.try_get(13)?,
            },
            next_eval_us: row.try_get(14)?,
            binding: match (device_key, bound_us) {
                (Some(device_key), Some(bound_us)) => Some(Binding {
                    generation,
                    device_key,
                    bound_us,
                }),
                _ => None,
            },
            token: match token {
                Some(bytes) => Some(TokenRecord {
                    sequence,
                    state: row.try_get::<Option<String>, _>(19)?.unwrap_or_default(),
                    issued_us: row.try_get::<Option<i64>, _>(20)?.unwrap_or_default(),
                    lease_end_us: row.try_get(21)?,
                    status_code: row.try_get::<Option<String>, _>(27)?.unwrap_or_default(),
                    bytes,
                }),
                None => None,
            },
            applied_sequence: row.try_get(23)?,
            last_seen_us: row.try_get(24)?,
            ocra_counter: row.try_get(25)?,
            released_us: row.try_get(26)?,
        })
    })()
    .map_err(backend)
}

impl SqlStore {
    async fn device_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        id: &str,
        lock: bool,
    ) -> Result<DeviceRecord, StoreError> {
        let lock = if lock { self.dialect.for_update() } else { "" };
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1{lock}"
        )))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound)?;
        device_from(&row)
    }

    /// Reads everything a decision depends on, inside `tx`.
    async fn snapshot_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        id: &str,
        lock: bool,
    ) -> Result<DeviceSnapshot, StoreError> {
        let device = self.device_in(tx, id, lock).await?;
        // Inside the transaction, not through the pool: with every pooled connection held by
        // a change waiting for this device's row lock (PostgreSQL), the change holding the lock
        // would wait for a free connection until the pool timed out.
        let financier = financier_by_id(&mut **tx, &device.enrolled.financier_id).await?;
        let payments = sqlx::query(
            "SELECT reference, amount_minor, currency, received_us, recorded_us FROM payments \
             WHERE device_id = $1 ORDER BY recorded_us, reference",
        )
        .bind(id)
        .fetch_all(&mut **tx)
        .await
        .map_err(backend)?
        .iter()
        .map(|r| {
            Ok(PaymentRecord {
                reference: r.try_get(0)?,
                amount_minor: r.try_get(1)?,
                currency: r.try_get(2)?,
                received_us: r.try_get(3)?,
                recorded_us: r.try_get(4)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(backend)?;
        let reversals = sqlx::query(
            "SELECT reference, at_us, recorded_us, reason FROM reversals WHERE device_id = $1 \
             ORDER BY recorded_us, reference",
        )
        .bind(id)
        .fetch_all(&mut **tx)
        .await
        .map_err(backend)?
        .iter()
        .map(|r| {
            Ok(ReversalRecord {
                reference: r.try_get(0)?,
                at_us: r.try_get(1)?,
                recorded_us: r.try_get(2)?,
                reason: r.try_get(3)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(backend)?;
        let overrides = sqlx::query(
            "SELECT id, kind, reason, from_us, until_us, cancelled_us, actor, created_us \
             FROM overrides WHERE device_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut **tx)
        .await
        .map_err(backend)?
        .iter()
        .map(|r| {
            Ok(OverrideRecord {
                id: r.try_get(0)?,
                kind: r.try_get(1)?,
                reason: r.try_get(2)?,
                from_us: r.try_get(3)?,
                until_us: r.try_get(4)?,
                cancelled_us: r.try_get(5)?,
                actor: r.try_get(6)?,
                created_us: r.try_get(7)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(backend)?;
        Ok(DeviceSnapshot {
            device,
            financier,
            payments,
            reversals,
            overrides,
        })
    }
}

/// Applies a change to a device inside `tx`. Every device write in Lien ends here.
async fn apply(
    tx: &mut Transaction<'_, Any>,
    current: &DeviceRecord,
    change: DeviceChange,
) -> Result<(), StoreError> {
    let id = current.enrolled.id.as_str();
    if let Some(p) = &change.payment {
        sqlx::query(
            "INSERT INTO payments (device_id, reference, amount_minor, currency, received_us, recorded_us) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(&p.reference)
        .bind(p.amount_minor)
        .bind(&p.currency)
        .bind(p.received_us)
        .bind(p.recorded_us)
        .execute(&mut **tx)
        .await
        .map_err(|e| {
            unique_or_backend(
                e,
                format!("a payment with reference {:?} is already recorded for this device", p.reference),
            )
        })?;
    }
    if let Some(r) = &change.reversal {
        sqlx::query(
            "INSERT INTO reversals (device_id, reference, at_us, recorded_us, reason) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(&r.reference)
        .bind(r.at_us)
        .bind(r.recorded_us)
        .bind(&r.reason)
        .execute(&mut **tx)
        .await
        .map_err(|e| {
            unique_or_backend(e, format!("payment {:?} is already reversed", r.reference))
        })?;
    }
    for o in change.new_override.iter().chain(&change.more_overrides) {
        sqlx::query(
            "INSERT INTO overrides (device_id, kind, reason, from_us, until_us, cancelled_us, actor, created_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(&o.kind)
        .bind(&o.reason)
        .bind(o.from_us)
        .bind(o.until_us)
        .bind(o.cancelled_us)
        .bind(&o.actor)
        .bind(o.created_us)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    for u in &change.override_updates {
        sqlx::query(
            "UPDATE overrides SET until_us = COALESCE($1, until_us), cancelled_us = COALESCE($2, cancelled_us) \
             WHERE id = $3 AND device_id = $4",
        )
        .bind(u.until_us)
        .bind(u.cancelled_us)
        .bind(u.id)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    if let Some(policy) = &change.policy_json {
        sqlx::query("UPDATE devices SET policy_json = $1 WHERE id = $2")
            .bind(policy)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    if let Some(d) = &change.decision {
        sqlx::query(
            "UPDATE devices SET state = $1, decision_json = $2, amount_due_minor = $3, currency = $4 WHERE id = $5",
        )
        .bind(&d.state)
        .bind(&d.json)
        .bind(d.amount_due_minor)
        .bind(&d.currency)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    // Always written: a device's evaluation time changes with every input, and writing it
    // ends any scheduler's claim on the row.
    sqlx::query("UPDATE devices SET next_eval_us = $1, claimed_until_us = NULL WHERE id = $2")
        .bind(change.next_eval_us)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    if let Some(t) = &change.token {
        let current_sequence = current.token.as_ref().map_or(0, |t| t.sequence);
        if t.sequence <= current_sequence {
            return Err(StoreError::Conflict(format!(
                "token sequence {} is not above the current {current_sequence}",
                t.sequence
            )));
        }
        sqlx::query(
            "UPDATE devices SET token_sequence = $1, token_state = $2, token_issued_us = $3, \
             token_lease_end_us = $4, token = $5 WHERE id = $6",
        )
        .bind(t.sequence)
        .bind(&t.state)
        .bind(t.issued_us)
        .bind(t.lease_end_us)
        .bind(t.bytes.clone())
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "INSERT INTO tokens (device_id, sequence, state, issued_us, status_code, token) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(t.sequence)
        .bind(&t.state)
        .bind(t.issued_us)
        .bind(&t.status_code)
        .bind(t.bytes.clone())
        .execute(&mut **tx)
        .await
        .map_err(|e| unique_or_backend(e, "this token sequence was already issued"))?;
    }
    if let Some((key, bound_us)) = &change.binding {
        sqlx::query(
            "UPDATE devices SET binding_generation = binding_generation + 1, device_key = $1, \
             bound_us = $2 WHERE id = $3",
        )
        .bind(key.clone())
        .bind(*bound_us)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    if let Some(counter) = change.ocra_counter {
        sqlx::query("UPDATE devices SET ocra_counter = $1 WHERE id = $2")
            .bind(counter)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    if let Some(at) = change.released_us {
        sqlx::query("UPDATE devices SET released_us = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        // The financier's claim ends: the IMEIs may be financed again.
        sqlx::query("DELETE FROM device_imeis WHERE device_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    for e in &change.events {
        sqlx::query(
            "INSERT INTO device_events (device_id, at_us, kind, detail) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(e.at_us)
        .bind(&e.kind)
        .bind(&e.detail)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    if let Some(applied) = change.applied_sequence {
        sqlx::query("UPDATE devices SET applied_sequence = $1 WHERE id = $2")
            .bind(applied)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    super::appeals::apply(tx, id, change.appeal.as_ref()).await?;
    append_audit(tx, id, &change.audit).await?;
    if let Some(r) = &change.idempotency {
        sqlx::query(
            "INSERT INTO idempotency (scope, key, request_hash, status, body, created_us) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&r.scope)
        .bind(&r.key)
        .bind(r.request_hash.clone())
        .bind(i64::from(r.status))
        .bind(&r.body)
        .bind(change.audit.first().map_or(0, |a| a.at_us))
        .execute(&mut **tx)
        .await
        .map_err(|e| unique_or_backend(e, "this Idempotency-Key is already used"))?;
    }
    Ok(())
}

impl SqlStore {
    /// Commits a transaction that wrote the device's row, then drops its cached check-in
    /// view whatever the outcome: a failed commit may still have reached the disk.
    ///
    /// With `announce` (the token or the binding changed), a committed change is announced to
    /// the push feed: here on SQLite, after the cache has forgotten the view so that a reader
    /// woken by the feed reads the new row; on PostgreSQL by the `pg_notify` the transaction
    /// already holds (see [`super::notify`]).
    async fn commit_device(
        &self,
        tx: Transaction<'_, Any>,
        id: &str,
        announce: bool,
    ) -> Result<(), StoreError> {
        let committed = tx.commit().await;
        self.forget_checkin_view(id);
        committed.map_err(backend)?;
        if announce {
            self.announce_after_commit(id);
        }
        Ok(())
    }

    /// Drops the device's cached check-in view; called once a transaction that wrote its row
    /// has ended, committed or not (a failed commit may still have reached the disk).
    fn forget_checkin_view(&self, id: &str) {
        if let Some(cache) = &self.checkin_cache {
            cache.forget(id);
        }
    }

    /// Tells this process's push channels about a committed change. PostgreSQL announces
    /// through `pg_notify` inside the transaction instead, which reaches every server.
    fn announce_after_commit(&self, id: &str) {
        if self.dialect == super::Dialect::Sqlite {
            self.feed.announce(id);
        }
    }

    /// One device's change inside `tx`: the snapshot under the row lock, the caller's
    /// change, the writes, and on PostgreSQL the notification that goes out on commit.
    /// Returns the stored device and whether phones must hear of it.
    async fn change_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        id: &str,
        change: ChangeFn,
    ) -> Result<(DeviceRecord, bool), StoreError> {
        let snapshot = self.snapshot_in(tx, id, true).await?;
        let change = change(&snapshot).map_err(StoreError::Refused)?;
        let announce = change.token.is_some() || change.binding.is_some();
        apply(tx, &snapshot.device, change).await?;
        if announce && self.dialect == super::Dialect::Postgres {
            // Delivered to the listeners only when, and if, this transaction commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(super::notify::CHANNEL)
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(backend)?;
        }
        let stored = self.device_in(tx, id, false).await?;
        Ok((stored, announce))
    }

    /// The columns a check-in needs, from the database.
    async fn read_checkin_view(&self, id: &str) -> Result<CheckinView, StoreError> {
        let row = sqlx::query(
            "SELECT financier_id, binding_generation, token, token_sequence, applied_sequence \
             FROM devices WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound)?;
        (|| {
            Ok(CheckinView {
                financier_id: row.try_get(0)?,
                binding_generation: row.try_get(1)?,
                token: row.try_get(2)?,
                token_sequence: row.try_get(3)?,
                applied_sequence: row.try_get(4)?,
            })
        })()
        .map_err(backend)
    }
}

#[async_trait]
impl Devices for SqlStore {
    #[tracing::instrument(skip_all, fields(device = %device.id))]
    async fn enroll(
        &self,
        device: &NewDevice,
        change: DeviceChange,
    ) -> Result<DeviceRecord, StoreError> {
        let decision = change
            .decision
            .clone()
            .ok_or_else(|| StoreError::Refused("an enrollment needs its first decision".into()))?;
        let mut tx = self.write.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO devices (id, financier_id, contract_ref, imei1, imei2, serial, model, plan_json, \
             policy_json, enrolled_us, state, decision_json, amount_due_minor, currency) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&device.id)
        .bind(&device.financier_id)
        .bind(&device.contract_ref)
        .bind(&device.imei1)
        .bind(device.imei2.clone())
        .bind(&device.serial)
        .bind(&device.model)
        .bind(&device.plan_json)
        .bind(&device.policy_json)
        .bind(device.enrolled_us)
        .bind(&decision.state)
        .bind(&decision.json)
        .bind(decision.amount_due_minor)
        .bind(&decision.currency)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            unique_or_backend(
                e,
                format!("contract reference {:?} is already enrolled", device.contract_ref),
            )
        })?;
        for imei in std::iter::once(&device.imei1).chain(device.imei2.as_ref()) {
            sqlx::query("INSERT INTO device_imeis (imei, device_id) VALUES ($1, $2)")
                .bind(imei)
                .bind(&device.id)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    unique_or_backend(
                        e,
                        format!("IMEI {imei} is already financed and not yet released"),
                    )
                })?;
        }
        let current = self.device_in(&mut tx, &device.id, false).await?;
        apply(&mut tx, &current, change).await?;
        let stored = self.device_in(&mut tx, &device.id, false).await?;
        // A device just enrolled has no push connection to tell.
        self.commit_device(tx, &device.id, false).await?;
        Ok(stored)
    }

    async fn device(&self, id: &str) -> Result<DeviceRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound)?;
        device_from(&row)
    }

    async fn device_by_imei(&self, imei: &str) -> Result<DeviceRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = (SELECT device_id FROM device_imeis WHERE imei = $1)"
        )))
        .bind(imei)
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound)?;
        device_from(&row)
    }

    async fn list_devices(&self, filter: &DeviceFilter) -> Result<Vec<DeviceRecord>, StoreError> {
        // Each filter adds a clause with the next placeholder number; the values are bound
        // in the same order below.
        let mut clauses = Vec::new();
        let mut texts = Vec::new();
        let mut numbers = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if let Some(f) = &filter.financier_id {
            clauses.push(format!("financier_id = ${}", next()));
            texts.push(f.clone());
        }
        if let Some(s) = &filter.state {
            clauses.push(format!("state = ${}", next()));
            texts.push(s.clone());
        }
        if let Some(a) = &filter.after_id {
            clauses.push(format!("id > ${}", next()));
            texts.push(a.clone());
        }
        if filter.overdue {
            clauses.push("amount_due_minor > 0".to_string());
        }
        if let Some(t) = filter.not_seen_since_us {
            clauses.push(format!(
                "(last_seen_us IS NULL OR last_seen_us < ${})",
                next()
            ));
            numbers.push(t);
        }
        let limit_param = next();
        let where_clause = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM devices{where_clause} ORDER BY id LIMIT ${limit_param}"
        );
        // Safe: the text is built from fixed clauses and placeholders; values are bound.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for t in texts {
            query = query.bind(t);
        }
        for v in numbers {
            query = query.bind(v);
        }
        query
            .bind(i64::from(filter.limit))
            .fetch_all(&self.read)
            .await
            .map_err(backend)?
            .iter()
            .map(device_from)
            .collect()
    }

    #[tracing::instrument(skip(self, change))]
    async fn update_device(&self, id: &str, change: ChangeFn) -> Result<DeviceRecord, StoreError> {
        let store = self.clone();
        let id = id.to_string();
        run_to_completion(async move {
            let mut tx = store.write.begin().await.map_err(backend)?;
            let (stored, announce) = store.change_in(&mut tx, &id, change).await?;
            store.commit_device(tx, &id, announce).await?;
            Ok(stored)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(devices = changes.len()))]
    async fn update_devices(
        &self,
        changes: Vec<(String, ChangeFn)>,
    ) -> Result<Vec<Result<DeviceRecord, StoreError>>, StoreError> {
        let store = self.clone();
        run_to_completion(async move { store.update_devices_now(changes).await }).await
    }

    async fn checkin_view(&self, id: &str) -> Result<CheckinView, StoreError> {
        let Some(cache) = &self.checkin_cache else {
            return self.read_checkin_view(id).await;
        };
        match cache.lookup(id) {
            Lookup::Hit(view) => Ok(view),
            Lookup::Miss(epoch) => {
                let view = self.read_checkin_view(id).await?;
                cache.fill(id, &view, epoch);
                Ok(view)
            }
        }
    }

    async fn touch_last_seen(&self, seen: &[(String, i64)]) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await.map_err(backend)?;
        for (id, at) in seen {
            sqlx::query("UPDATE devices SET last_seen_us = $1 WHERE id = $2 AND (last_seen_us IS NULL OR last_seen_us < $1)")
                .bind(*at)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn tokens_by_status_code(&self, code: &str) -> Result<Vec<StatusCodeMatch>, StoreError> {
        sqlx::query(
            "SELECT t.device_id, d.financier_id, t.sequence, t.state, t.issued_us FROM tokens t \
             JOIN devices d ON d.id = t.device_id WHERE t.status_code = $1 ORDER BY t.device_id, t.sequence",
        )
        .bind(code)
        .fetch_all(&self.read)
        .await
        .map_err(backend)?
        .iter()
        .map(|r| {
            Ok(StatusCodeMatch {
                device_id: r.try_get(0)?,
                financier_id: r.try_get(1)?,
                sequence: r.try_get(2)?,
                state: r.try_get(3)?,
                issued_us: r.try_get(4)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(backend)
    }

    async fn snapshot(&self, id: &str) -> Result<DeviceSnapshot, StoreError> {
        let mut tx = self.read.begin().await.map_err(backend)?;
        let snapshot = self.snapshot_in(&mut tx, id, false).await?;
        tx.commit().await.map_err(backend)?;
        Ok(snapshot)
    }
}

#[async_trait]
impl Schedule for SqlStore {
    #[tracing::instrument(skip(self))]
    async fn claim_due(
        &self,
        now_us: i64,
        claim_until_us: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        // SKIP LOCKED lets several servers claim disjoint batches at once; the claim's end
        // time keeps a device from being claimed twice while its evaluation is under way.
        let skip_locked = match self.dialect {
            super::Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            super::Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE devices SET claimed_until_us = $1 WHERE id IN (\
               SELECT id FROM devices WHERE next_eval_us <= $2 \
               AND (claimed_until_us IS NULL OR claimed_until_us < $2) \
               ORDER BY next_eval_us LIMIT $3{skip_locked}) RETURNING id"
        );
        let mut tx = self.write.begin().await.map_err(backend)?;
        let ids = sqlx::query(AssertSqlSafe(sql))
            .bind(claim_until_us)
            .bind(now_us)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(ids)
    }

    async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let row =
            sqlx::query("SELECT MIN(next_eval_us) FROM devices WHERE next_eval_us IS NOT NULL")
                .fetch_one(&self.read)
                .await
                .map_err(backend)?;
        row.try_get::<Option<i64>, _>(0).map_err(backend)
    }
}

impl SqlStore {
    /// The body of [`Devices::update_devices`].
    async fn update_devices_now(
        &self,
        changes: Vec<(String, ChangeFn)>,
    ) -> Result<Vec<Result<DeviceRecord, StoreError>>, StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        let mut results = Vec::with_capacity(changes.len());
        let mut announced = Vec::new();
        for (id, change) in changes {
            // A savepoint per device: a refused or failed change is rolled back alone, and on
            // PostgreSQL the transaction stays usable for the next device.
            let mut savepoint = sqlx::Acquire::begin(&mut tx).await.map_err(backend)?;
            let result = match self.change_in(&mut savepoint, &id, change).await {
                Ok((stored, announce)) => {
                    savepoint.commit().await.map_err(backend)?;
                    if announce {
                        announced.push(id.clone());
                    }
                    Ok(stored)
                }
                Err(err) => {
                    savepoint.rollback().await.map_err(backend)?;
                    Err(err)
                }
            };
            results.push((id, result));
        }
        let committed = tx.commit().await;
        for (id, _) in &results {
            self.forget_checkin_view(id);
        }
        committed.map_err(backend)?;
        for id in &announced {
            self.announce_after_commit(id);
        }
        Ok(results.into_iter().map(|(_, result)| result).collect())
    }
}

/// Runs a device write on its own task and waits for it. The write must reach its end even
/// when the caller's future is dropped (an HTTP client that disconnects during the commit):
/// otherwise the commit could land without the cached check-in view being dropped or the
/// phones being told, and a paid phone would keep getting its old token.
async fn run_to_completion<T: Send + 'static>(
    write: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::spawn(write)
        .await
        .map_err(|e| StoreError::Backend(Box::new(e)))?
}
