//! The commands: one typed function per thing that can happen to a device.
//!
//! Every change to a device goes through this module, in one transaction with its audit record
//! and its push notice: a command reads the device's snapshot under its lock
//! (`DevicesExt::update_device_with`), applies `lien-core`'s rules and the few that are the
//! server's own (released is final, one pending release, a manual lock's bounds), builds a
//! [`Mutation`], and [`device_change::complete`] decides again, signs the token, audits the
//! change and, for a keyed request, keeps the response; a change that pays the plan off brings
//! its release with it ([`payoff`]). The store announces the committed token to the push hub
//! (see `lien_store::sql::notify`), so no command calls push itself.
//!
//! A command checks who may do it itself: the actor's role (`Actor::require`) first, then, on
//! the snapshot, that the actor sees the device's financier (another financier's device is "not
//! found"). So a caller added later (a console, a provider's callback) cannot skip either.
//!
//! The HTTP handlers (`routes`, `pages`) only extract the request, call a command and
//! serialize what it returns; the scheduler calls [`scheduled`] the same way. A command takes
//! the actor and typed inputs and returns a typed result, or an [`ApiError`] whose mapping to
//! an HTTP status lives in one place, `error.rs`.
//!
//! Idempotency: a keyed command returns [`Applied`], either `Fresh` (done now: the typed
//! result and the JSON body stored with the change, in the same transaction) or `Replayed`
//! (the body kept for the key, byte for byte). The body is made inside the transaction,
//! because it is what the store keeps for a retry; the handler sends that same text.
//!
//! [`ApiError`]: crate::error::ApiError

pub mod appeals;
pub mod bulk;
pub mod bulk_jobs;
pub mod device_change;
pub mod enrollment;
pub mod financiers;
pub mod hardship;
pub mod hello;
pub mod imei_check;
pub mod keys;
pub mod late_unlocks;
pub mod mobile_money;
pub mod overrides;
pub mod payments;
pub mod payoff;
pub mod people;
pub mod phone;
pub mod reads;
pub mod reconciliation;
pub mod restructure;
pub mod scheduled;
pub mod sim_change;
pub mod webhook_endpoints;

pub use device_change::{
    Applied, Changed, IdempotencyKey, Mutation, change_device, complete, device_view,
    evaluate_for_write, pending_release,
};
pub use enrollment::{check_enrollment, enroll, enroll_row, prepare_enrollment};
pub use overrides::{
    OFFLINE_SUITE, cancel_release, change_policy, end_or_cancel, lock, offline_code, release,
    reminder, unlock,
};
pub use payments::{record_payment, reverse_payment};

/// The financier `financier_id`, if the actor may see it: another financier's, like a missing
/// one, is "not found", so an id says nothing about whether it exists.
pub async fn visible_financier(
    state: &crate::app::AppState,
    actor: &crate::auth::Actor,
    financier_id: &str,
) -> Result<lien_store::Financier, crate::error::ApiError> {
    use crate::error::ApiError;
    if !actor.sees_financier(financier_id) {
        return Err(ApiError::NotFound("financier"));
    }
    match state.store.financier(financier_id).await {
        Ok(financier) => Ok(financier),
        Err(lien_store::StoreError::NotFound) => Err(ApiError::NotFound("financier")),
        Err(e) => Err(e.into()),
    }
}
