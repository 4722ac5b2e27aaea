//! Earlier installment plans: kept by a device change, read for the device's history.

use async_trait::async_trait;
use sqlx::{Any, Row, Transaction};

use super::{SqlStore, backend};
use crate::StoreError;
use crate::plans::{PlanHistory, PlanVersionRecord};

/// Keeps the plan a change replaces, numbered after the device's earlier ones. Runs in the
/// change's transaction, under the device's row lock, so two restructurings cannot take one
/// number.
pub(super) async fn keep(
    tx: &mut Transaction<'_, Any>,
    device_id: &str,
    old: &PlanVersionRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO plan_versions (device_id, version, plan_json, superseded_us, actor, reason) \
         SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5 FROM plan_versions WHERE device_id = $6",
    )
    .bind(device_id)
    .bind(&old.plan_json)
    .bind(old.superseded_us)
    .bind(&old.actor)
    .bind(&old.reason)
    .bind(device_id)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl PlanHistory for SqlStore {
    #[tracing::instrument(skip(self))]
    async fn plan_versions(&self, device_id: &str) -> Result<Vec<PlanVersionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, plan_json, superseded_us, actor, reason FROM plan_versions \
             WHERE device_id = $1 ORDER BY version",
        )
        .bind(device_id)
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(PlanVersionRecord {
                    version: row.try_get(0).map_err(backend)?,
                    plan_json: row.try_get(1).map_err(backend)?,
                    superseded_us: row.try_get(2).map_err(backend)?,
                    actor: row.try_get(3).map_err(backend)?,
                    reason: row.try_get(4).map_err(backend)?,
                })
            })
            .collect()
    }
}
