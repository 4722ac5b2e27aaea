//! The records the agent persists, and how they are read back.
//!
//! Durations are kept as milliseconds of monotonic time already used, never as wall-clock
//! instants, so neither a reboot (the monotonic clock restarts) nor a moved wall clock can
//! shorten or lengthen them. Time while the phone is off is not counted.

use serde::{Deserialize, Serialize};

use crate::storage::{Area, Storage, StorageError, seal, unseal};

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
    /// `CheckinRequest::counter`); saved before the request leaves, so no counter is sent twice.
    #[serde(default)]
    pub request_counter: u64,
}

/// Wiped by a factory reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ordinary {
    /// Present once the agent has run on this data partition; its absence next to a protected
    /// record means the phone was reset.
    pub initialised: bool,
    /// Events not yet delivered to the server.
    pub pending_events: Vec<(String, String)>,
}

/// What loading an area found.
pub(crate) enum Loaded<T> {
    Found(T),
    Missing,
    /// Unreadable, torn or altered: treated exactly like missing, never as "unlocked".
    Corrupt,
}

pub(crate) fn load<T: for<'de> Deserialize<'de>>(storage: &dyn Storage, area: Area) -> Loaded<T> {
    match storage.load(area) {
        Ok(None) => Loaded::Missing,
        Ok(Some(bytes)) => match unseal(&bytes).and_then(|p| serde_json::from_slice(p).ok()) {
            Some(value) => Loaded::Found(value),
            None => Loaded::Corrupt,
        },
        Err(_) => Loaded::Corrupt,
    }
}

pub(crate) fn save<T: Serialize>(
    storage: &mut dyn Storage,
    area: Area,
    value: &T,
) -> Result<(), StorageError> {
    let payload = serde_json::to_vec(value).expect("agent state is plain data");
    storage.store(area, &seal(&payload))
}
