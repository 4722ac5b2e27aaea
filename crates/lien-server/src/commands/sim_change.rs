//! SIM changes (issue 20): a phone reports a new SIM card at check-in
//! (`commands::phone::record_report` records it as a `sim_change` override from the report,
//! with no end), the policy's rule (`lien_core::SimChangeRule`) applies from then, and the
//! financier accepts the change here once it has heard from the borrower: the override ends
//! now, and the device is decided again in the same change, so a restriction it brought is
//! lifted at once.

use lien_store::OverrideUpdate;

use super::device_change::{Applied, Changed, Mutation, change_device};
use super::overrides::not_released;
use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::micros;
use crate::domain::open_sim_change;
use crate::error::ApiError;
use crate::input::required_text;
use crate::wire::SimChangeAcceptRequest;

/// The longest reason the financier records.
const MAX_REASON: usize = 200;

/// Accepts the SIM change the phone reported: its rule stops applying now.
pub async fn accept(
    state: &AppState,
    actor: &Actor,
    device_id: &str,
    req: SimChangeAcceptRequest,
) -> Result<Applied<Changed<()>>, ApiError> {
    // Accepting only ever spares the phone, like lifting a manual lock.
    actor.require(Action::Unlock)?;
    let reason = required_text("reason", &req.reason, MAX_REASON)?;
    change_device(state, actor, device_id, None, move |snapshot, now| {
        not_released(snapshot)?;
        let Some(open) = open_sim_change(snapshot) else {
            return Err(ApiError::Conflict(
                "the device has no SIM change waiting to be accepted".into(),
            ));
        };
        let end = OverrideUpdate {
            id: open.id,
            // Reported in this very instant: ended one microsecond on, as an end must come
            // after its start.
            until_us: Some(micros(now).max(open.from_us + 1)),
            cancelled_us: None,
        };
        let mutation = Mutation::update_overrides("sim_change_accepted", reason, vec![end]);
        Ok((mutation, ()))
    })
    .await
}
