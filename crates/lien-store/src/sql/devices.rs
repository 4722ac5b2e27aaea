//! Devices: enrollment, the one change path, the check-in read, and the scheduler's claims.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use std::collections::{BTreeMap, HashMap, HashSet};

use super::checkin_cache::Lookup;
use super::device_writes::{Versions, apply_all, check};
use super::rows::{Value, fetch_in, insert_rows, update_from_values};
use super::tenants::financier_by_id;
use super::{Found as _, ReadAll, SqlStore, backend, first_column, unique_or_backend};
use crate::{
    ArrearsAge, ArrearsByAge, Binding, ChangeFn, CheckinView, DecisionRecord, DeviceChange,
    DeviceFilter, DeviceRecord, DeviceSnapshot, Devices, NewDevice, OverrideRecord, PaymentRecord,
    Portfolio, ReversalRecord, Schedule, Seen, StatusCodeMatch, StoreError, TextMatch, TokenRecord,
};

/// The columns [`device_from`] reads, in its order, for a query `FROM devices`.
///
/// The current token's status code is kept only in `tokens`, so it is read from there; without
/// it a device's token would come back with an empty status code.
const DEVICE_COLUMNS: &str = "id, financier_id, contract_ref, imei1, imei2, serial, model, \
    plan_json, policy_json, enrolled_us, state, decision_json, amount_due_minor, currency, \
    next_eval_us, binding_generation, device_key, bound_us, token_sequence, token_state, \
    token_issued_us, token_lease_end_us, token, applied_sequence, last_seen_us, ocra_counter, \
    released_us, version, (SELECT t.status_code FROM tokens t WHERE t.device_id = devices.id \
    AND t.sequence = devices.token_sequence), checkin_counter, overdue_since";

/// The columns of a check-in view, in the order [`checkin_view_from`] reads them.
pub(super) const CHECKIN_COLUMNS: &str =
    "financier_id, binding_generation, token, token_sequence, applied_sequence, checkin_counter";

/// The check-in view in `row`, whose [`CHECKIN_COLUMNS`] start at column `first`.
pub(super) fn checkin_view_from(row: &AnyRow, first: usize) -> Result<CheckinView, sqlx::Error> {
    Ok(CheckinView {
        financier_id: row.try_get(first)?,
        binding_generation: row.try_get(first + 1)?,
        token: row.try_get(first + 2)?,
        token_sequence: row.try_get(first + 3)?,
        applied_sequence: row.try_get(first + 4)?,
        checkin_counter: row.try_get(first + 5)?,
    })
}

/// The tokens showing the status code `$1`, with their devices' financiers, as
/// [`status_code_match_from`] reads them; a statement adds its own conditions and order.
const STATUS_CODE_MATCHES: &str = "SELECT t.device_id, d.financier_id, t.sequence, t.state, \
     t.issued_us FROM tokens t JOIN devices d ON d.id = t.device_id WHERE t.status_code = $1";

fn status_code_match_from(row: &AnyRow) -> Result<StatusCodeMatch, StoreError> {
    (|| {
        Ok(StatusCodeMatch {
            device_id: row.try_get(0)?,
            financier_id: row.try_get(1)?,
            sequence: row.try_get(2)?,
            state: row.try_get(3)?,
            issued_us: row.try_get(4)?,
        })
    })()
    .map_err(backend)
}

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
                overdue_since: row.try_get(30)?,
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
                    status_code: row.try_get::<Option<String>, _>(28)?.unwrap_or_default(),
                    bytes,
                }),
                None => None,
            },
            applied_sequence: row.try_get(23)?,
            last_seen_us: row.try_get(24)?,
            ocra_counter: row.try_get(25)?,
            checkin_counter: row.try_get(29)?,
            released_us: row.try_get(26)?,
            version: row.try_get(27)?,
        })
    })()
    .map_err(backend)
}

impl SqlStore {
    /// Reads everything the decisions of `ids` depend on, inside `tx`, a table at a time;
    /// with `lock`, under the devices' row locks (PostgreSQL). Devices that do not exist are
    /// left out.
    async fn snapshots_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        ids: &[&str],
        lock: bool,
    ) -> Result<HashMap<String, DeviceSnapshot>, StoreError> {
        let lock = if lock { self.dialect.for_update() } else { "" };
        let ids = lock_order(ids.iter().copied());
        let ids = ids.as_slice();
        // The devices' rows first. Outside a transaction's lock (`Devices::snapshots`) each
        // statement may see later commits than the one before it; a write committed after this
        // first read moves the version read here, so a change decided on this snapshot is
        // refused whatever the later statements saw.
        let devices = fetch_in(
            tx,
            |list| {
                format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE id IN ({list}) ORDER BY id{lock}"
                )
            },
            ids,
        )
        .await?
        .iter()
        .map(device_from)
        .collect::<Result<Vec<_>, _>>()?;
        // Inside the transaction, not through the pool: with every pooled connection held by
        // a change waiting for this device's row lock (PostgreSQL), the change holding the lock
        // would wait for a free connection until the pool timed out.
        let mut financiers = HashMap::new();
        for device in &devices {
            let id = &device.enrolled.financier_id;
            if !financiers.contains_key(id) {
                financiers.insert(id.clone(), financier_by_id(&mut **tx, id).await?);
            }
        }
        let mut payments = by_device(
            tx,
            "SELECT device_id, reference, amount_minor, currency, received_us, recorded_us, \
             acked_us FROM payments WHERE device_id IN ({list}) \
             ORDER BY device_id, recorded_us, reference",
            ids,
            |r| {
                Ok(PaymentRecord {
                    reference: r.try_get(1)?,
                    amount_minor: r.try_get(2)?,
                    currency: r.try_get(3)?,
                    received_us: r.try_get(4)?,
                    recorded_us: r.try_get(5)?,
                    acknowledged_us: r.try_get(6)?,
                })
            },
        )
        .await?;
        let mut reversals = by_device(
            tx,
            "SELECT device_id, reference, at_us, recorded_us, reason FROM reversals \
             WHERE device_id IN ({list}) ORDER BY device_id, recorded_us, reference",
            ids,
            |r| {
                Ok(ReversalRecord {
                    reference: r.try_get(1)?,
                    at_us: r.try_get(2)?,
                    recorded_us: r.try_get(3)?,
                    reason: r.try_get(4)?,
                })
            },
        )
        .await?;
        let mut overrides = by_device(
            tx,
            "SELECT device_id, id, kind, reason, from_us, until_us, cancelled_us, actor, \
             created_us FROM overrides WHERE device_id IN ({list}) ORDER BY device_id, id",
            ids,
            |r| {
                Ok(OverrideRecord {
                    id: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    reason: r.try_get(3)?,
                    from_us: r.try_get(4)?,
                    until_us: r.try_get(5)?,
                    cancelled_us: r.try_get(6)?,
                    actor: r.try_get(7)?,
                    created_us: r.try_get(8)?,
                })
            },
        )
        .await?;
        Ok(devices
            .into_iter()
            .map(|device| {
                let id = device.enrolled.id.clone();
                let snapshot = DeviceSnapshot {
                    financier: financiers[&device.enrolled.financier_id].clone(),
                    payments: payments.remove(&id).unwrap_or_default(),
                    reversals: reversals.remove(&id).unwrap_or_default(),
                    overrides: overrides.remove(&id).unwrap_or_default(),
                    device,
                };
                (id, snapshot)
            })
            .collect())
    }

    /// The stored rows of `ids`, inside `tx`.
    async fn devices_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        ids: &[&str],
    ) -> Result<HashMap<String, DeviceRecord>, StoreError> {
        fetch_in(
            tx,
            |list| format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id IN ({list})"),
            ids,
        )
        .await?
        .iter()
        .map(|row| device_from(row).map(|d| (d.enrolled.id.clone(), d)))
        .collect()
    }
}

impl SqlStore {
    /// Drops the device's cached check-in view; called once a transaction that wrote its row
    /// has ended, committed or not (a failed commit may still have reached the disk).
    fn forget_checkin_view(&self, id: &str) {
        if let Some(cache) = &self.checkin_cache {
            cache.forget(id);
        }
    }

    /// Ends the scheduler's claim on the device, which was written: on PostgreSQL the write
    /// itself ends it, on SQLite this does (see [`super::claims`]). Called once the writing
    /// transaction has ended, committed or not.
    fn release_claim(&self, id: &str) {
        if let Some(claims) = &self.claims {
            claims.release(id);
        }
    }

    /// Tells this process's push channels about a committed change. PostgreSQL announces
    /// through `pg_notify` inside the transaction instead, which reaches every server.
    fn announce_after_commit(&self, id: &str) {
        if self.dialect == super::Dialect::Sqlite {
            self.feed.announce(id);
        }
    }

    /// The columns a check-in needs, from the database.
    async fn read_checkin_view(&self, id: &str) -> Result<CheckinView, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CHECKIN_COLUMNS} FROM devices WHERE id = $1"
        )))
        .bind(id)
        .found(&self.read)
        .await?;
        checkin_view_from(&row, 0).map_err(backend)
    }
}

/// A sum of minor units that cannot overflow for any portfolio that fits in a database: the
/// millions and the rest summed apart (each within `i64` for a million devices owing the most
/// an amount can be), joined
/// by [`counted_sum`]. (A plain `SUM` of amounts near `i64::MAX` fails on both databases, and
/// one financier's absurd plan would then break every overview.)
pub(super) fn split_sum(column: &str) -> String {
    format!("CAST(SUM({column} / 1000000) AS BIGINT), CAST(SUM({column} % 1000000) AS BIGINT)")
}

/// A row of currency, count and a [`split_sum`]: the sum saturates at `i64::MAX`.
pub(super) fn counted_sum(row: &AnyRow) -> Result<(String, i64, i64), sqlx::Error> {
    let millions: i64 = row.try_get(2)?;
    let rest: i64 = row.try_get(3)?;
    let total = i128::from(millions) * 1_000_000 + i128::from(rest);
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        i64::try_from(total).unwrap_or(i64::MAX),
    ))
}

#[async_trait]
impl Devices for SqlStore {
    #[tracing::instrument(skip_all, fields(device = %device.id))]
    async fn enroll(
        &self,
        device: &NewDevice,
        change: DeviceChange,
    ) -> Result<DeviceRecord, StoreError> {
        let mut stored = self.enroll_now(&[(device.clone(), change)], true).await?;
        stored.pop().ok_or(StoreError::NotFound)
    }

    #[tracing::instrument(skip_all, fields(devices = enrollments.len()))]
    async fn enroll_all(
        &self,
        enrollments: Vec<(NewDevice, DeviceChange)>,
    ) -> Result<(), StoreError> {
        self.enroll_now(&enrollments, false).await.map(|_| ())
    }

    async fn device(&self, id: &str) -> Result<DeviceRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"
        )))
        .bind(id)
        .found(&self.read)
        .await?;
        device_from(&row)
    }

    async fn device_by_imei(&self, imei: &str) -> Result<DeviceRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = (SELECT device_id FROM device_imeis WHERE imei = $1)"
        )))
        .bind(imei)
        .found(&self.read)
        .await?;
        device_from(&row)
    }

    async fn portfolio(
        &self,
        financier_id: Option<&str>,
        not_seen_since_us: i64,
        payments_since_us: i64,
        age_cutoffs: &[String; 3],
    ) -> Result<Portfolio, StoreError> {
        // One financier's rows (by its index), or every row for the platform's roles.
        let (devices, payments) = match financier_id {
            Some(_) => (
                "devices d WHERE d.financier_id = $1",
                "payments p JOIN devices d ON d.id = p.device_id WHERE d.financier_id = $1 AND",
            ),
            None => (
                "devices d WHERE CAST($1 AS TEXT) IS NULL",
                "payments p WHERE CAST($1 AS TEXT) IS NULL AND",
            ),
        };
        let financier = financier_id.map(str::to_string);
        let by_state = sqlx::query(AssertSqlSafe(format!(
            "SELECT d.state, COUNT(*) FROM {devices} GROUP BY d.state ORDER BY d.state"
        )))
        .bind(financier.clone())
        .fetch_all(&self.read)
        .await
        .map_err(backend)?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<(String, i64)>, sqlx::Error>>()
        .map_err(backend)?;
        let overdue = sqlx::query(AssertSqlSafe(format!(
            "SELECT d.currency, COUNT(*), {} FROM {devices} \
             AND d.amount_due_minor > 0 AND d.released_us IS NULL \
             GROUP BY d.currency ORDER BY d.currency",
            split_sum("d.amount_due_minor")
        )))
        .bind(financier.clone())
        .fetch_all(&self.read)
        .await
        .map_err(backend)?
        .iter()
        .map(counted_sum)
        .collect::<Result<Vec<(String, i64, i64)>, sqlx::Error>>()
        .map_err(backend)?;
        // The due date of the oldest late installment, a `YYYY-MM-DD` text, against the
        // cut-offs (older dates are smaller).
        let arrears_by_age = sqlx::query(AssertSqlSafe(format!(
            "SELECT d.currency, COUNT(*), {}, CAST(CASE WHEN d.overdue_since IS NULL THEN 4 \
             WHEN d.overdue_since >= $2 THEN 0 WHEN d.overdue_since >= $3 THEN 1 \
             WHEN d.overdue_since >= $4 THEN 2 ELSE 3 END AS BIGINT) AS age FROM {devices} \
             AND d.amount_due_minor > 0 AND d.released_us IS NULL \
             GROUP BY age, d.currency ORDER BY age, d.currency",
            split_sum("d.amount_due_minor")
        )))
        .bind(financier.clone())
        .bind(&age_cutoffs[0])
        .bind(&age_cutoffs[1])
        .bind(&age_cutoffs[2])
        .fetch_all(&self.read)
        .await
        .map_err(backend)?
        .iter()
        .map(|row| {
            let (currency, devices, amount_minor) = counted_sum(row)?;
            let age: i64 = row.try_get(4)?;
            Ok(ArrearsByAge {
                age: ArrearsAge::ALL[age.clamp(0, 4) as usize],
                currency,
                devices,
                amount_minor,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(backend)?;
        let not_seen: i64 = sqlx::query(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {devices} AND d.released_us IS NULL \
             AND (d.last_seen_us IS NULL OR d.last_seen_us < $2)"
        )))
        .bind(financier.clone())
        .bind(not_seen_since_us)
        .fetch_one(&self.read)
        .await
        .map_err(backend)?
        .try_get(0)
        .map_err(backend)?;
        let payments = sqlx::query(AssertSqlSafe(format!(
            "SELECT p.currency, COUNT(*), {} FROM {payments} p.recorded_us >= $2 \
             GROUP BY p.currency ORDER BY p.currency",
            split_sum("p.amount_minor")
        )))
        .bind(financier)
        .bind(payments_since_us)
        .fetch_all(&self.read)
        .await
        .map_err(backend)?
        .iter()
        .map(counted_sum)
        .collect::<Result<Vec<(String, i64, i64)>, sqlx::Error>>()
        .map_err(backend)?;
        Ok(Portfolio {
            by_state,
            overdue,
            not_seen,
            payments,
            arrears_by_age,
        })
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
        match &filter.policy_json {
            Some(TextMatch::Is(policy)) => {
                clauses.push(format!("policy_json = ${}", next()));
                texts.push(policy.clone());
            }
            Some(TextMatch::NoneOf(policies)) => {
                for policy in policies {
                    clauses.push(format!("policy_json <> ${}", next()));
                    texts.push(policy.clone());
                }
            }
            None => {}
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
            .read_all(&self.read, device_from)
            .await
    }

    #[tracing::instrument(skip(self, change))]
    async fn update_device(&self, id: &str, change: ChangeFn) -> Result<DeviceRecord, StoreError> {
        let store = self.clone();
        let changes = vec![(id.to_string(), change)];
        run_to_completion(async move { store.update_devices_now(changes, true).await })
            .await?
            .pop()
            .expect("one result per change")?
            .ok_or(StoreError::NotFound)
    }

    #[tracing::instrument(skip_all, fields(devices = changes.len()))]
    async fn update_devices(
        &self,
        changes: Vec<(String, ChangeFn)>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let store = self.clone();
        let results =
            run_to_completion(async move { store.update_devices_now(changes, false).await })
                .await?;
        Ok(results.into_iter().map(|r| r.map(|_| ())).collect())
    }

    async fn snapshots(&self, ids: &[String]) -> Result<Vec<DeviceSnapshot>, StoreError> {
        let mut tx = self.read.begin().await.map_err(backend)?;
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut snapshots = self.snapshots_in(&mut tx, &ids, false).await?;
        tx.commit().await.map_err(backend)?;
        Ok(ids.iter().filter_map(|id| snapshots.remove(*id)).collect())
    }

    #[tracing::instrument(skip_all, fields(devices = decided.len()))]
    async fn write_decided(
        &self,
        decided: Vec<(DeviceRecord, DeviceChange)>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let store = self.clone();
        let results =
            run_to_completion(async move { store.write_decided_now(decided).await }).await?;
        Ok(results.into_iter().map(|r| r.map(|_| ())).collect())
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

    async fn touch_last_seen(&self, seen: &[Seen]) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        // A few statements for a second's check-ins, not one each: every statement is a round
        // trip to the database, and this runs while phones wait on the same write lock. One
        // row a device, for an `UPDATE ... FROM` uses one joined row of several: the latest
        // time, and the highest counter of the newest binding (an older binding's never counts,
        // as generations only grow). In the order of the ids, the order every writer locks rows.
        let mut latest: BTreeMap<&str, (i64, (i64, i64))> = BTreeMap::new();
        for s in seen {
            let signed = (s.binding_generation, s.counter);
            let entry = latest.entry(&s.device_id).or_insert((s.at_us, signed));
            *entry = (entry.0.max(s.at_us), entry.1.max(signed));
        }
        let rows = latest
            .into_iter()
            .map(|(id, (at_us, (generation, counter)))| {
                vec![
                    Value::from(id),
                    Value::from(at_us),
                    Value::from(generation),
                    Value::from(counter),
                ]
            })
            .collect();
        let mut tx = self.write.begin().await.map_err(backend)?;
        update_from_values(
            &mut tx,
            "devices",
            "id",
            &[],
            &[
                "last_seen_us = CASE WHEN devices.last_seen_us IS NULL \
                 OR devices.last_seen_us < v.column2 THEN v.column2 ELSE devices.last_seen_us END",
                "checkin_counter = CASE WHEN devices.binding_generation = v.column3 \
                 AND devices.checkin_counter < v.column4 THEN v.column4 \
                 ELSE devices.checkin_counter END",
            ],
            None,
            rows,
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        if let Some(cache) = &self.checkin_cache {
            cache.raise_counters(seen);
        }
        Ok(())
    }

    async fn tokens_by_status_code(&self, code: &str) -> Result<Vec<StatusCodeMatch>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "{STATUS_CODE_MATCHES} ORDER BY t.device_id, t.sequence"
        )))
        .bind(code)
        .read_all(&self.read, status_code_match_from)
        .await
    }

    #[tracing::instrument(skip(self, code))]
    async fn recent_tokens_by_status_code(
        &self,
        code: &str,
        superseded_since_us: i64,
    ) -> Result<Vec<StatusCodeMatch>, StoreError> {
        // A token is still shown, or was until recently, when no later token of its device
        // was issued before the cut-off.
        sqlx::query(AssertSqlSafe(format!(
            "{STATUS_CODE_MATCHES} AND NOT EXISTS (SELECT 1 FROM tokens n WHERE \
             n.device_id = t.device_id AND n.sequence > t.sequence AND n.issued_us < $2) \
             ORDER BY t.device_id, t.sequence"
        )))
        .bind(code)
        .bind(superseded_since_us)
        .read_all(&self.read, status_code_match_from)
        .await
    }

    #[tracing::instrument(skip(self))]
    async fn recent_status_codes(
        &self,
        device_id: &str,
        superseded_since_us: i64,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query(
            "SELECT t.status_code FROM tokens t WHERE t.device_id = $1 AND NOT EXISTS \
             (SELECT 1 FROM tokens n WHERE n.device_id = t.device_id AND n.sequence > t.sequence \
             AND n.issued_us < $2) ORDER BY t.sequence DESC",
        )
        .bind(device_id)
        .bind(superseded_since_us)
        .fetch_all(&self.read)
        .await
        .map_err(backend)
        .and_then(|rows| first_column(&rows))
    }

    async fn snapshot(&self, id: &str) -> Result<DeviceSnapshot, StoreError> {
        self.snapshots(&[id.to_string()])
            .await?
            .pop()
            .ok_or(StoreError::NotFound)
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
        // The claim's end time keeps a device from being claimed twice while its evaluation is
        // under way. SQLite keeps its claims in memory (see `claims`).
        if let Some(claims) = &self.claims {
            // On the writer's connection, which a write holds until it has committed: a device
            // whose claim a write released is read here as that write left it, never as it
            // was before (due, with a decision the write replaced).
            let read_due = |wanted: usize| async move {
                sqlx::query(
                    "SELECT id FROM devices WHERE next_eval_us <= $1 ORDER BY next_eval_us LIMIT $2",
                )
                .bind(now_us)
                .bind(wanted as i64)
                .fetch_all(&self.write)
                .await
                .map_err(backend)
                .and_then(|rows| first_column(&rows))
            };
            return claims
                .claim(now_us, claim_until_us, limit as usize, read_due)
                .await;
        }
        // PostgreSQL: SKIP LOCKED lets several servers claim disjoint batches at once.
        let sql = "UPDATE devices SET claimed_until_us = $1 WHERE id IN (\
               SELECT id FROM devices WHERE next_eval_us <= $2 \
               AND (claimed_until_us IS NULL OR claimed_until_us < $2) \
               ORDER BY next_eval_us LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id";
        let mut tx = self.write.begin().await.map_err(backend)?;
        let ids = sqlx::query(AssertSqlSafe(sql))
            .bind(claim_until_us)
            .bind(now_us)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)
            .and_then(|rows| first_column(&rows))?;
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
    /// The body of [`Devices::enroll`] and [`Devices::enroll_all`]: the devices' rows and
    /// IMEI claims, then each one's first change, in one transaction. With `read_back`, the
    /// stored rows are returned, in order.
    async fn enroll_now(
        &self,
        enrollments: &[(NewDevice, DeviceChange)],
        read_back: bool,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        let mut rows = Vec::with_capacity(enrollments.len());
        let mut claims = Vec::new();
        for (device, change) in enrollments {
            let decision = change.decision.as_ref().ok_or_else(|| {
                StoreError::Refused("an enrollment needs its first decision".into())
            })?;
            rows.push(vec![
                Value::from(&device.id),
                Value::from(&device.financier_id),
                Value::from(&device.contract_ref),
                Value::from(&device.imei1),
                Value::from(&device.imei2),
                Value::from(&device.serial),
                Value::from(&device.model),
                Value::from(&device.plan_json),
                Value::from(&device.policy_json),
                Value::from(device.enrolled_us),
                Value::from(&decision.state),
                Value::from(&decision.json),
                Value::from(decision.amount_due_minor),
                Value::from(&decision.currency),
            ]);
            for imei in std::iter::once(&device.imei1).chain(device.imei2.as_ref()) {
                claims.push((imei, &device.id));
            }
        }
        // One device's refusal names what is taken; a group's can only say that something is.
        let (contract_taken, imei_taken) = match enrollments {
            [(device, _)] => (
                format!(
                    "contract reference {:?} is already enrolled",
                    device.contract_ref
                ),
                None,
            ),
            _ => (
                "a contract reference of this group is already enrolled".to_string(),
                Some("an IMEI of this group is already financed and not yet released"),
            ),
        };
        let mut tx = self.write.begin().await.map_err(backend)?;
        insert_rows(
            &mut tx,
            "devices (id, financier_id, contract_ref, imei1, imei2, serial, model, plan_json, \
             policy_json, enrolled_us, state, decision_json, amount_due_minor, currency)",
            rows,
            &contract_taken,
        )
        .await?;
        match imei_taken {
            Some(what) => {
                let rows = claims
                    .iter()
                    .map(|(imei, id)| vec![Value::from(*imei), Value::from(*id)])
                    .collect();
                insert_rows(&mut tx, "device_imeis (imei, device_id)", rows, what).await?;
            }
            None => {
                for (imei, id) in claims {
                    sqlx::query("INSERT INTO device_imeis (imei, device_id) VALUES ($1, $2)")
                        .bind(imei)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| {
                            unique_or_backend(
                                e,
                                format!("IMEI {imei} is already financed and not yet released"),
                            )
                        })?;
                }
            }
        }
        let ids: Vec<&str> = enrollments.iter().map(|(d, _)| d.id.as_str()).collect();
        let current = self.devices_in(&mut tx, &ids).await?;
        let changes = enrollments
            .iter()
            .map(|(device, change)| {
                Ok((current.get(&device.id).ok_or(StoreError::NotFound)?, change))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        apply_all(&mut tx, &changes, Versions::Any).await?;
        let mut stored = if read_back {
            self.devices_in(&mut tx, &ids).await?
        } else {
            HashMap::new()
        };
        let committed = tx.commit().await;
        // Whatever the outcome (a failed commit may still have reached the disk). A device
        // just enrolled has no push connection to tell.
        for id in &ids {
            self.forget_checkin_view(id);
        }
        committed.map_err(backend)?;
        Ok(ids.iter().filter_map(|id| stored.remove(*id)).collect())
    }

    /// The body of [`Devices::update_device`] and [`Devices::update_devices`]: the snapshots
    /// under the rows' locks, each caller's change, then [`SqlStore::write_planned`], a
    /// handful of statements for the whole group.
    async fn update_devices_now(
        &self,
        changes: Vec<(String, ChangeFn)>,
        read_back: bool,
    ) -> Result<Vec<Result<Option<DeviceRecord>, StoreError>>, StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        let ids: Vec<&str> = changes.iter().map(|(id, _)| id.as_str()).collect();
        let mut snapshots = self.snapshots_in(&mut tx, &ids, true).await?;
        let mut seen = HashSet::new();
        let planned = changes
            .into_iter()
            .map(|(id, change)| {
                once_each(&mut seen, &id)?;
                let snapshot = snapshots.remove(&id).ok_or(StoreError::NotFound)?;
                let change = change(&snapshot).map_err(StoreError::Refused)?;
                check(&snapshot.device, &change)?;
                Ok((snapshot.device, change))
            })
            .collect();
        self.write_planned(tx, planned, Versions::Any, read_back)
            .await
    }

    /// The body of [`Devices::write_decided`]: the writes of the changes, each only if its
    /// device's row is still at the version its change was decided on.
    async fn write_decided_now(
        &self,
        decided: Vec<(DeviceRecord, DeviceChange)>,
    ) -> Result<Vec<Result<Option<DeviceRecord>, StoreError>>, StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        if self.dialect == super::Dialect::Postgres {
            // The rows' locks in one order, as `snapshots_in` takes them: the `UPDATE` that
            // checks the versions would take them in whatever order it joins the rows, and
            // two transactions doing that on common rows could deadlock.
            let ids = lock_order(decided.iter().map(|(d, _)| d.enrolled.id.as_str()));
            fetch_in(
                &mut tx,
                |list| {
                    format!("SELECT id FROM devices WHERE id IN ({list}) ORDER BY id FOR UPDATE")
                },
                &ids,
            )
            .await?;
        }
        let mut seen = HashSet::new();
        let planned = decided
            .into_iter()
            .map(|(device, change)| {
                once_each(&mut seen, &device.enrolled.id)?;
                check(&device, &change)?;
                Ok((device, change))
            })
            .collect();
        self.write_planned(tx, planned, Versions::AsRead, false)
            .await
    }

    /// Writes the planned changes (a device whose change was refused is left out, with why)
    /// inside `tx`, announces them on PostgreSQL when it commits, and commits. A refused change
    /// writes nothing, so the others need no savepoint to be written without it. With
    /// `read_back`, each written device's stored row is returned.
    async fn write_planned(
        &self,
        mut tx: Transaction<'_, Any>,
        planned: Vec<Result<(DeviceRecord, DeviceChange), StoreError>>,
        versions: Versions,
        read_back: bool,
    ) -> Result<Vec<Result<Option<DeviceRecord>, StoreError>>, StoreError> {
        let writes: Vec<(&DeviceRecord, &DeviceChange)> = planned
            .iter()
            .flatten()
            .map(|(device, change)| (device, change))
            .collect();
        // On an error the transaction is dropped, so rolled back, with nothing committed.
        let moved = apply_all(&mut tx, &writes, versions).await?;
        let writes: Vec<_> = writes
            .into_iter()
            .filter(|(d, _)| !moved.contains(&d.enrolled.id))
            .collect();
        let written: Vec<&str> = writes.iter().map(|(d, _)| d.enrolled.id.as_str()).collect();
        let announced: Vec<&str> = writes
            .iter()
            .filter(|(_, c)| c.token.is_some() || c.binding.is_some())
            .map(|(d, _)| d.enrolled.id.as_str())
            .collect();
        if self.dialect == super::Dialect::Postgres {
            // Delivered to the listeners only when, and if, this transaction commits.
            for payload in super::notify::payloads(&announced) {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(super::notify::CHANNEL)
                    .bind(payload)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
        }
        let mut stored = if read_back {
            self.devices_in(&mut tx, &written).await?
        } else {
            HashMap::new()
        };
        let committed = tx.commit().await;
        // Whatever the outcome: a failed commit may still have reached the disk.
        for id in &written {
            self.forget_checkin_view(id);
            self.release_claim(id);
        }
        committed.map_err(backend)?;
        for id in &announced {
            self.announce_after_commit(id);
        }
        Ok(planned
            .into_iter()
            .map(|outcome| {
                let (device, _) = outcome?;
                let id = &device.enrolled.id;
                if moved.contains(id) {
                    return Err(StoreError::VersionConflict {
                        device_id: id.clone(),
                    });
                }
                Ok(stored.remove(id))
            })
            .collect())
    }
}

/// Each id once, sorted: read in this order across the chunks `fetch_in` reads, two groups
/// lock their common rows in the same order (PostgreSQL) and cannot deadlock.
fn lock_order<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut ids: Vec<&str> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The rows `select` reads for `ids` (its `{list}` is replaced by their placeholders; its first
/// column is the device's id), each made into a record by `record`, grouped by device in the
/// order read.
async fn by_device<T>(
    tx: &mut Transaction<'_, Any>,
    select: &str,
    ids: &[&str],
    record: impl Fn(&AnyRow) -> Result<T, sqlx::Error>,
) -> Result<HashMap<String, Vec<T>>, StoreError> {
    let mut grouped: HashMap<String, Vec<T>> = HashMap::new();
    for row in fetch_in(tx, |list| select.replace("{list}", list), ids).await? {
        let id: String = row.try_get(0).map_err(backend)?;
        grouped
            .entry(id)
            .or_default()
            .push(record(&row).map_err(backend)?);
    }
    Ok(grouped)
}

/// Refuses a device named twice in one batch: its second change would be decided on a
/// snapshot that the first one's write makes stale.
fn once_each(seen: &mut HashSet<String>, id: &str) -> Result<(), StoreError> {
    if seen.insert(id.to_string()) {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "device {id} appears twice in one batch"
        )))
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
