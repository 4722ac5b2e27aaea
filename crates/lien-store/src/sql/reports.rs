//! The reports' reads (see [`crate::reports`]).

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::devices::{counted_sum, split_sum};
use super::tenants::{AUDIT_COLUMNS, audit_record_from};
use super::{ReadAll, SqlStore, backend};
use crate::reports::{ActivityCursor, DayLocks, DayPayments, PaymentAcks, Reports, UnlockPayment};
use crate::{AuditRecord, StoreError};

/// A day in microseconds.
const DAY_US: i64 = 86_400_000_000;

/// The condition on `{alias}.device_id` that keeps one financier's devices (bound as `$3`), or
/// every device when `$3` is null.
fn devices_of(financier_id: Option<&str>, alias: &str) -> String {
    match financier_id {
        Some(_) => format!(
            "AND {alias}.device_id IN (SELECT d.id FROM devices d WHERE d.financier_id = $3)"
        ),
        None => "AND CAST($3 AS TEXT) IS NULL".to_string(),
    }
}

#[async_trait]
impl Reports for SqlStore {
    async fn activity(
        &self,
        financier_id: Option<&str>,
        from_us: i64,
        to_us: i64,
        after: Option<&ActivityCursor>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        // The period's records by the time index, then kept if their chain is one of the
        // financier's devices or the financier's own chain.
        let whose = match financier_id {
            Some(_) => {
                "AND (a.chain = $4 OR a.chain IN (SELECT d.id FROM devices d WHERE d.financier_id = $5))"
            }
            None => "AND CAST($4 AS TEXT) IS NULL AND CAST($5 AS TEXT) IS NULL",
        };
        let (after_at, after_chain, after_seq) = match after {
            Some((at, chain, seq)) => (*at, chain.clone(), *seq),
            None => (i64::MIN, String::new(), 0),
        };
        // The index scan starts at the cursor's time, not the period's: each page reads from
        // where the last one ended (the comparison below only settles ties at that instant).
        let lower = from_us.max(after_at);
        let columns = AUDIT_COLUMNS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {columns} FROM audit a WHERE a.at_us >= $1 AND a.at_us < $2 \
             AND (a.at_us > $6 OR (a.at_us = $6 AND (a.chain > $7 OR (a.chain = $7 AND a.seq > $8)))) \
             {whose} ORDER BY a.at_us, a.chain, a.seq LIMIT $3"
        )))
        .bind(lower)
        .bind(to_us)
        .bind(i64::from(limit))
        .bind(financier_id.map(|f| format!("financier:{f}")))
        .bind(financier_id.map(str::to_string))
        .bind(after_at)
        .bind(after_chain)
        .bind(after_seq)
        .read_all(&self.read, audit_record_from)
        .await
    }

    async fn payments_by_day(
        &self,
        financier_id: Option<&str>,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<DayPayments>, StoreError> {
        let whose = devices_of(financier_id, "p");
        let sql = format!(
            "SELECT p.currency, COUNT(*), {}, (p.recorded_us - $1) / {DAY_US} AS day \
             FROM payments p WHERE p.recorded_us >= $1 AND p.recorded_us < $2 {whose} \
             GROUP BY day, p.currency ORDER BY day, p.currency",
            split_sum("p.amount_minor")
        );
        self.in_period(sql, from_us, to_us, financier_id)
            .await?
            .iter()
            .map(|row| {
                let (currency, count, amount_minor) = counted_sum(row)?;
                Ok(DayPayments {
                    day: row.try_get(4)?,
                    currency,
                    count,
                    amount_minor,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend)
    }

    async fn locks_by_day(
        &self,
        financier_id: Option<&str>,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<DayLocks>, StoreError> {
        // The token state's changes (written with each token), not the tokens themselves.
        let whose = match financier_id {
            Some(_) => "AND x.financier_id = $3",
            None => "AND CAST($3 AS TEXT) IS NULL",
        };
        let sql = format!(
            "SELECT (x.at_us - $1) / {DAY_US} AS day, \
             SUM(CASE WHEN x.to_state = 'locked' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN x.from_state = 'locked' THEN 1 ELSE 0 END) \
             FROM token_transitions x WHERE x.at_us >= $1 AND x.at_us < $2 {whose} \
             GROUP BY day ORDER BY day"
        );
        self.in_period(sql, from_us, to_us, financier_id)
            .await?
            .iter()
            .map(|row| {
                Ok(DayLocks {
                    day: row.try_get(0)?,
                    locks: row.try_get(1)?,
                    unlocks: row.try_get(2)?,
                })
            })
            .filter(|day: &Result<DayLocks, sqlx::Error>| {
                day.as_ref().map_or(true, |d| d.locks + d.unlocks > 0)
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend)
    }

    async fn payment_acks(
        &self,
        financier_id: Option<&str>,
        from_us: i64,
        to_us: i64,
    ) -> Result<PaymentAcks, StoreError> {
        let whose = devices_of(financier_id, "p");
        let period = format!(
            "FROM payments p WHERE p.recorded_us >= $1 AND p.recorded_us < $2 {whose} \
             AND p.token_sequence IS NOT NULL"
        );
        let counts = self
            .in_period(
                format!("SELECT COUNT(p.acked_us), COUNT(*) - COUNT(p.acked_us) {period}"),
                from_us,
                to_us,
                financier_id,
            )
            .await?;
        let counts = counts.first().ok_or(StoreError::NotFound)?;
        let mut acks = PaymentAcks {
            acknowledged: counts.try_get(0).map_err(backend)?,
            waiting: counts.try_get(1).map_err(backend)?,
            ..PaymentAcks::default()
        };
        if acks.acknowledged == 0 {
            return Ok(acks);
        }
        // The nearest-rank percentiles: the delays in order, and the ones at the two ranks
        // (computed here, so that only two rows come back).
        let n = acks.acknowledged;
        let rank = |percent: i64| ((percent * n + 99) / 100).max(1);
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT delay, place FROM (SELECT p.acked_us - p.recorded_us AS delay, \
             ROW_NUMBER() OVER (ORDER BY p.acked_us - p.recorded_us) AS place \
             {period} AND p.acked_us IS NOT NULL) ranked WHERE place = $4 OR place = $5"
        )))
        .bind(from_us)
        .bind(to_us)
        .bind(financier_id.map(str::to_string))
        .bind(rank(50))
        .bind(rank(99))
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        for row in rows {
            let delay: i64 = row.try_get(0).map_err(backend)?;
            let at: i64 = row.try_get(1).map_err(backend)?;
            if at == rank(50) {
                acks.median_us = Some(delay);
            }
            if at == rank(99) {
                acks.p99_us = Some(delay);
            }
        }
        Ok(acks)
    }

    async fn slow_unlocks(
        &self,
        financier_id: Option<&str>,
        (from_us, to_us): (i64, i64),
        slower_than_us: i64,
        now_us: i64,
        limit: u32,
    ) -> Result<Vec<UnlockPayment>, StoreError> {
        let whose = devices_of(financier_id, "p");
        // The payment's own token is the one whose transition lifted the restriction: a
        // payment that left the phone as it was, or only lowered the amount, issued none.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT p.device_id, d.policy_json, p.reference, p.amount_minor, p.currency, \
             p.recorded_us, p.acked_us \
             FROM payments p \
             JOIN token_transitions t ON t.device_id = p.device_id AND t.sequence = p.token_sequence \
             JOIN devices d ON d.id = p.device_id \
             WHERE p.recorded_us >= $1 AND p.recorded_us < $2 {whose} \
             AND t.from_state IN ('restricted', 'locked') \
             AND t.to_state IN ('active', 'reminder', 'released') \
             AND COALESCE(p.acked_us, $4) - p.recorded_us > $5 \
             ORDER BY p.recorded_us, p.device_id, p.reference LIMIT $6"
        )))
        .bind(from_us)
        .bind(to_us)
        .bind(financier_id.map(str::to_string))
        .bind(now_us)
        .bind(slower_than_us)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(UnlockPayment {
                    device_id: row.try_get(0)?,
                    policy_json: row.try_get(1)?,
                    reference: row.try_get(2)?,
                    amount_minor: row.try_get(3)?,
                    currency: row.try_get(4)?,
                    recorded_us: row.try_get(5)?,
                    acked_us: row.try_get(6)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend)
    }
}

impl SqlStore {
    /// The rows of `sql`, whose `$1` and `$2` are a period's bounds and `$3` a financier (or
    /// null for every financier's). The text is built from constants; the values are bound.
    async fn in_period(
        &self,
        sql: String,
        from_us: i64,
        to_us: i64,
        financier_id: Option<&str>,
    ) -> Result<Vec<AnyRow>, StoreError> {
        sqlx::query(AssertSqlSafe(sql))
            .bind(from_us)
            .bind(to_us)
            .bind(financier_id.map(str::to_string))
            .fetch_all(&self.read)
            .await
            .map_err(backend)
    }
}
