//! The reports' reads (see [`crate::reports`]).

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Row};

use super::devices::{counted_sum, split_sum};
use super::tenants::{AUDIT_COLUMNS, audit_record_from};
use super::{SqlStore, backend};
use crate::reports::{ActivityCursor, DayPayments, Reports};
use crate::{AuditRecord, StoreError};

/// A day in microseconds.
const DAY_US: i64 = 86_400_000_000;

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
        .fetch_all(&self.read)
        .await
        .map_err(backend)?
        .iter()
        .map(audit_record_from)
        .collect()
    }

    async fn payments_by_day(
        &self,
        financier_id: Option<&str>,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<DayPayments>, StoreError> {
        let whose = match financier_id {
            Some(_) => "AND p.device_id IN (SELECT d.id FROM devices d WHERE d.financier_id = $3)",
            None => "AND CAST($3 AS TEXT) IS NULL",
        };
        sqlx::query(AssertSqlSafe(format!(
            "SELECT p.currency, COUNT(*), {}, (p.recorded_us - $1) / {DAY_US} AS day \
             FROM payments p WHERE p.recorded_us >= $1 AND p.recorded_us < $2 {whose} \
             GROUP BY day, p.currency ORDER BY day, p.currency",
            split_sum("p.amount_minor")
        )))
        .bind(from_us)
        .bind(to_us)
        .bind(financier_id.map(str::to_string))
        .fetch_all(&self.read)
        .await
        .map_err(backend)?
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
}
