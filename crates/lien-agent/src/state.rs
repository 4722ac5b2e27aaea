//! The records the agent persists, and how they are read back and trusted.
//!
//! Durations are kept as milliseconds of monotonic time already used, never as wall-clock
//! instants, so neither a reboot (the monotonic clock restarts) nor a moved wall clock can
//! shorten or lengthen them. Time while the phone is off is not counted.
//!
//! Three records, each sealed as described in [`crate::storage`]: the [`Protected`] record
//! (survives a factory reset), the [`Ordinary`] one (does not), and, on a phone whose platform
//! has a [`RollbackSlot`], the [`Anchor`] kept there.
//!
//! # Versions and the anchor
//!
//! Every write of the protected record takes the next version number and is followed by a write
//! of the anchor with the same number. The anchor holds, besides the version, the last known
//! enforcement: the last verified token (with what is needed to verify it again), the lease time
//! counted on it and the released flag. A record whose version is below the anchor's is a
//! rollback. One above it is the record of a write whose anchor write failed or was cut short:
//! it is accepted, and the anchor catches up at once. (So a restored record one write older
//! than the newest is accepted only if the newest write's anchor never landed.)
//!
//! # A bad record, and why the agent is never freer for it
//!
//! At boot the protected record is *verified* when its seal holds, its payload parses, its
//! token verifies and, with a slot, its version is at least the anchor's. Anything else is a bad
//! record: edited, sealed under another key or in the old unkeyed format, torn, unparseable,
//! rolled back, or missing while the anchor says the phone was set up. The agent cannot tell an
//! attack from a torn write or a failing medium, so it treats them all alike:
//!
//! 1. It reports a `tamper` event, sent with the first check-in after it is bound again.
//! 2. It says hello again: the server binds by IMEI and answers with the current token.
//! 3. Meanwhile, if the anchor has a last known enforcement, it enforces exactly that (mode
//!    [`Recovering`]): the last verified token, verified again, with the same screen and
//!    restrictions as before, and its lease counted on from the anchor's count. A phone in good
//!    standing stays unrestricted (promise 6: an agent error never locks it); a locked one stays
//!    locked. If the anchor says released, the phone stays released, for good.
//!
//! | the agent finds                                  | with a rollback slot | without one    |
//! |--------------------------------------------------|----------------------|----------------|
//! | a verified record                                | used                 | used           |
//! | an edited, foreign-key, `LNA1` or torn record    | tamper; recovering   | tamper; as new |
//! | a sealed record whose content does not parse     | tamper; recovering   | tamper; as new |
//! | an older record (version below the anchor's)     | tamper; recovering   | used (unseen)  |
//! | no record, but an anchor (a reflash)             | tamper; recovering   | as new         |
//!
//! Recovering is never freer than the last verified token, and never stricter:
//!
//! - **The lease.** The anchor is written with every protected write, including the periodic
//!   writes of the lease count, so rolling the record back gives back no offline time. While
//!   recovering the agent keeps counting and keeps writing the anchor (only the anchor: the bad
//!   record stays, to be found bad again after a reboot until a hello replaces it), so
//!   rebooting gives none back either. An expired lease locks a recovering phone as it would a
//!   bound one.
//! - **The re-bind.** The hello's token must be at least as new as the last known one (for the
//!   same device id) and is verified with the keys pinned before, not those the answer offers;
//!   if it is the very token already enforced, its lease count is kept rather than restarted. A
//!   "not financed" answer is not signed, so it cannot outweigh the last verified token and is
//!   refused while recovering.
//! - **Offline codes** need the binding's offline key, which was in the bad record: none are
//!   accepted while recovering, and the lock screen says to connect and check again. The
//!   wrong-code throttle therefore needs no carrying over: a reset throttle gains nothing until
//!   the server has been reached, and by then the server has the tamper report and the phone
//!   has the current token, a new offline key and a new challenge.
//!
//! Why the anchor holds the token rather than a bare counter: a counter alone detects a
//! rollback but cannot say what was enforced, and dropping a rolled-back record would leave
//! the phone *freer* (set up as new) than keeping it. So the agent asks for a slot that can
//! hold the anchor (about 1 KiB, most of it the token); a platform that can keep only a
//! counter out of reach of a rollback offers no [`RollbackSlot`], and its phones behave as
//! below.
//!
//! # Without a rollback slot
//!
//! The seal still refuses every edit, so the lease, the throttle and the sequence cannot be
//! changed; but a bad record leaves nothing known, and the agent sets up as a new phone (the
//! setup banner, nothing restricted) until its hello is answered. A whole older record, restored
//! as it was written, cannot be told apart from the current one. What limits it is the token's
//! sequence: the agent accepts only tokens at least as new as the highest it has seen, so the
//! restored record can only bring back a state the server once signed, and at the next contact
//! the server's answer (its sequence never goes down) replaces it, while the phone's
//! `applied_sequence`, lower than what it reported before, shows the server the rollback. The
//! time until that contact is what such a phone cannot protect: the restored record's lease,
//! throttle and offline-code counter (with its challenge, so a spent code works again) are as
//! they were when it was written.
//!
//! [`RollbackSlot`]: crate::platform::RollbackSlot
//! [`Recovering`]: crate::Mode::Recovering

use serde::{Deserialize, Serialize};

use crate::emergency::EmergencyRecord;
use crate::platform::Platform;
use crate::storage::{Area, RecordKind, Storage, StorageError, seal, unseal};

/// What the server gave at hello: everything needed to check in and to verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Binding {
    pub device_id: String,
    /// Base64, as the server sent it.
    pub credential: String,
    /// Base64 OCRA key.
    pub offline_key: String,
    pub offline_suite: String,
    /// Base64 Ed25519 public keys.
    pub server_keys: Vec<String>,
    pub checkin_interval_secs: u64,
}

/// The offline unlock bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UnlockRecord {
    /// The highest OCRA counter accepted; the next code must use a higher one.
    pub counter: u64,
    /// The challenge on the lock screen, kept until a code for it is accepted.
    pub challenge: Option<String>,
    /// Wrong codes since the last right one.
    pub failures: u32,
    /// Monotonic time since the last wrong code.
    pub since_failure_ms: u64,
    /// The unlock in effect, if any.
    pub window: Option<UnlockWindow>,
}

/// An accepted code's unlock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UnlockWindow {
    /// Monotonic time since the code was accepted.
    pub elapsed_ms: u64,
    /// How long it lasts.
    pub length_ms: u64,
    /// The sequence of the token it was entered against: a newer token ends it.
    pub against_sequence: u64,
}

/// Survives a factory reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Protected {
    pub binding: Option<Binding>,
    /// The last valid token, base64.
    pub token: Option<String>,
    pub highest_sequence: u64,
    /// Released is final: set once, never cleared by anything the agent does.
    pub released: bool,
    /// Monotonic time since the held token was issued, as far as the agent can tell.
    pub lease_elapsed_ms: u64,
    /// The server's time at the last successful check-in, for the lock screen.
    pub last_sync: Option<i64>,
    pub unlock: UnlockRecord,
    /// The counter of the last signed request sent under this binding (see
    /// `CheckinRequest::counter`); written with the record's next write, and moved far ahead at
    /// each boot, so no counter is sent twice (see `Agent::next_request_counter`).
    #[serde(default)]
    pub request_counter: u64,
    /// Emergency use: the trusted clock and the last window (see `emergency.rs`). Records from
    /// before it existed load with none.
    #[serde(default)]
    pub emergency: EmergencyRecord,
}

/// Wiped by a factory reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ordinary {
    /// Present once the agent has run on this data partition; its absence next to a protected
    /// record means the phone was reset.
    pub initialised: bool,
    /// Events not yet delivered to the server.
    pub pending_events: Vec<(lien_proto::device_api::EventKind, String)>,
}

/// The last known enforcement, kept in the platform's rollback slot next to the version of the
/// last protected write. No secrets: nothing here lets anyone check in or make an offline code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Anchor {
    /// Released is final, whatever happens to the protected record.
    pub released: bool,
    /// The device id the token was verified for.
    pub device_id: Option<String>,
    /// The last verified token, base64, as the server sent it.
    pub token: Option<String>,
    /// The server keys pinned when it was verified (base64), unless the keys are factory-pinned.
    pub server_keys: Vec<String>,
    /// Monotonic time counted on the token's lease.
    pub lease_elapsed_ms: u64,
    /// The server's time at the last successful check-in, for the lock screen.
    pub last_sync: Option<i64>,
    /// Emergency use, so that a reflash cannot give back a window taken.
    #[serde(default)]
    pub emergency: EmergencyRecord,
}

/// What loading a record found.
pub(crate) enum Loaded<T> {
    /// A record whose seal holds and whose payload parses, with the version it was written at.
    Found { value: T, version: u64 },
    /// No record at all.
    Missing,
    /// A record that cannot be used, and why: never read as "unlocked".
    Refused(String),
}

fn kind(area: Area) -> RecordKind {
    match area {
        Area::Protected => RecordKind::Protected,
        Area::Ordinary => RecordKind::Ordinary,
    }
}

/// Reads and checks the record in `area`.
pub(crate) fn load<T: for<'de> Deserialize<'de>>(
    storage: &dyn Storage,
    platform: &mut dyn Platform,
    area: Area,
) -> Loaded<T> {
    match storage.load(area) {
        Ok(None) => Loaded::Missing,
        Ok(Some(bytes)) => parse(kind(area), &bytes, platform),
        Err(e) => Loaded::Refused(format!("unreadable: {e}")),
    }
}

/// Seals `value` at `version` and writes it to `area`.
pub(crate) fn save<T: Serialize>(
    storage: &mut dyn Storage,
    platform: &mut dyn Platform,
    area: Area,
    version: u64,
    value: &T,
) -> Result<(), StorageError> {
    let payload = serde_json::to_vec(value).expect("agent state is plain data");
    let record = seal(kind(area), version, &payload, |m| platform.storage_mac(m));
    storage.store(area, &record)
}

/// Reads and checks the anchor; `None` if the platform has no rollback slot.
pub(crate) fn load_anchor(platform: &mut dyn Platform) -> Option<Loaded<Anchor>> {
    let read = platform.rollback_slot()?.read();
    Some(match read {
        Ok(None) => Loaded::Missing,
        Ok(Some(bytes)) => parse(RecordKind::Anchor, &bytes, platform),
        Err(e) => Loaded::Refused(format!("unreadable: {e}")),
    })
}

/// Seals `anchor` at `version` into the rollback slot; does nothing if there is none.
pub(crate) fn save_anchor(
    platform: &mut dyn Platform,
    version: u64,
    anchor: &Anchor,
) -> Result<(), StorageError> {
    if platform.rollback_slot().is_none() {
        return Ok(());
    }
    let payload = serde_json::to_vec(anchor).expect("an anchor is plain data");
    let record = seal(RecordKind::Anchor, version, &payload, |m| {
        platform.storage_mac(m)
    });
    match platform.rollback_slot() {
        Some(slot) => slot.write(&record),
        None => Ok(()),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(
    kind: RecordKind,
    bytes: &[u8],
    platform: &mut dyn Platform,
) -> Loaded<T> {
    match unseal(kind, bytes, |m| platform.storage_mac(m)) {
        Ok((version, payload)) => match serde_json::from_slice(payload) {
            Ok(value) => Loaded::Found { value, version },
            Err(_) => Loaded::Refused("sealed, but its content does not parse".into()),
        },
        Err(e) => Loaded::Refused(e.to_string()),
    }
}
