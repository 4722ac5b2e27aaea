//! Earlier installment plans of a device (issue 20). The device's row holds the plan in force;
//! a restructuring replaces it and keeps the one it replaced, in the same transaction
//! ([`crate::DeviceChange::superseded_plan`]), so no schedule a borrower was held to is lost.

use async_trait::async_trait;

use crate::StoreError;

/// A plan a device was held to before a restructuring replaced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanVersionRecord {
    /// 1 for the plan enrolled with, then 2... Assigned by the store; 0 in a new record.
    pub version: i64,
    /// The plan, as the server's JSON.
    pub plan_json: String,
    /// When it was replaced.
    pub superseded_us: i64,
    /// Who replaced it.
    pub actor: String,
    /// Why, in their words.
    pub reason: String,
}

/// The earlier plans of devices.
#[async_trait]
pub trait PlanHistory: Send + Sync {
    /// The plans a device was held to before its current one, oldest first.
    async fn plan_versions(&self, device_id: &str) -> Result<Vec<PlanVersionRecord>, StoreError>;
}
