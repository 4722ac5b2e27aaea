//! What the agent asks of the phone: show a screen, apply a set of restrictions, and two
//! services of its secure hardware: a MAC under a key that never leaves it, and, where the
//! phone has one, a small slot of storage that cannot be rolled back.
//!
//! The phone maker implements [`Platform`]. The agent decides; the platform only carries out.

use lien_proto::DeviceRestriction;

use crate::screens::Screen;
use crate::storage::StorageError;

/// The phone's enforcement hooks and secure hardware.
pub trait Platform: Send {
    /// Shows `screen` (replacing the previous one). Called whenever what should be on screen
    /// changes, and once at boot.
    fn show(&mut self, screen: &Screen);
    /// Applies `enforcement`, replacing the previous set: anything it does not list is lifted.
    fn apply(&mut self, enforcement: &Enforcement);
    /// HMAC-SHA256 of `message` under the phone's storage key: how the agent seals and checks
    /// its records (see [`crate::storage`]).
    ///
    /// The key lives in the phone's secure hardware (the TEE or a secure element) and never
    /// leaves it; the agent sees only tags. It belongs to the hardware, so it must survive a
    /// factory reset and a reflash, e.g. a key the TEE derives from its hardware-unique key for
    /// this one purpose (an ordinary Android Keystore key is deleted by a reset and will not
    /// do). It must not fail: a record the agent cannot check is as good as a forged one, so
    /// start the agent once the keystore is ready.
    fn storage_mac(&mut self, message: &[u8]) -> [u8; 32];
    /// Has the secure hardware generate a new device key and attest it for `challenge`,
    /// returning the attestation chain, leaf first (DER certificates), in Android's key
    /// attestation format: on Android, a KeyStore key generated with
    /// `setAttestationChallenge(challenge)` and device-ID attestation (IMEIs and serial), whose
    /// `getCertificateChain` is the answer. `wall_clock` is the phone's time, Unix seconds. The
    /// server checks the chain against the phone maker's attestation root; see the README.
    fn attest_device_key(
        &mut self,
        challenge: &[u8],
        wall_clock: i64,
    ) -> Result<Vec<Vec<u8>>, String>;
    /// The phone's rollback-protected slot, if it has one (see [`RollbackSlot`]). Without one
    /// the agent relies on the token's sequence instead, as `state.rs` explains.
    fn rollback_slot(&mut self) -> Option<&mut dyn RollbackSlot> {
        None
    }
}

/// A small piece of storage that cannot be rolled back: on a phone, an object in RPMB-backed
/// secure storage (the flash's Replay Protected Memory Block, written through the TEE), whose
/// hardware write counter refuses a replayed write, and which neither a factory reset nor a
/// reflash touches.
///
/// The agent keeps its rollback anchor there: the version of its last protected write and the
/// last known enforcement (the last verified token and the lease counted on it), sealed like
/// its other records: about 1 KiB with the usual screen texts, most of it the token, so it
/// grows with them. It writes the slot with every protected write, so
/// about once a minute while the lease is counting (see
/// [`AgentConfig::persist_every`](crate::AgentConfig::persist_every)). The
/// slot only has to keep what it was last given, whole; the agent checks what it reads.
pub trait RollbackSlot: Send {
    /// What was last written, or `None` if nothing ever was.
    fn read(&mut self) -> Result<Option<Vec<u8>>, StorageError>;
    /// Replaces the content atomically: a later read returns the old bytes or the new ones.
    fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError>;
}

/// What stays usable whatever is restricted. It is part of every [`Enforcement`] and has no
/// "off" state, so no platform can receive a restriction set without it, and nothing the
/// server sends can take it away: [`DeviceRestriction`] has no variant for calls or the
/// payment app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlwaysAllowed {
    emergency_calls: EmergencyCalls,
    payment_app: Option<String>,
}

/// Emergency calls: always allowed. A unit value, so there is nothing to switch off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmergencyCalls;

impl AlwaysAllowed {
    /// Emergency calls, and the financier's payment app (e.g. an Android package name) if the
    /// phone maker configured one.
    pub fn new(payment_app: Option<String>) -> AlwaysAllowed {
        AlwaysAllowed {
            emergency_calls: EmergencyCalls,
            payment_app,
        }
    }

    /// Emergency calls are allowed: always.
    pub fn emergency_calls(&self) -> EmergencyCalls {
        self.emergency_calls
    }

    /// The payment app that stays usable over the lock screen.
    pub fn payment_app(&self) -> Option<&str> {
        self.payment_app.as_deref()
    }
}

/// The set of functions to limit, with what is always allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcement {
    restrictions: Vec<DeviceRestriction>,
    always_allowed: AlwaysAllowed,
}

/// Every restriction, in a fixed order, so that sets compare and print the same way.
const ORDER: [DeviceRestriction; 5] = [
    DeviceRestriction::LockScreen,
    DeviceRestriction::AppInstalls,
    DeviceRestriction::FactoryReset,
    DeviceRestriction::Debugging,
    DeviceRestriction::SafeMode,
];

impl Enforcement {
    /// Limits `restrictions` (duplicates and order do not matter).
    pub fn new(
        restrictions: impl IntoIterator<Item = DeviceRestriction>,
        always_allowed: AlwaysAllowed,
    ) -> Enforcement {
        let wanted: Vec<DeviceRestriction> = restrictions.into_iter().collect();
        Enforcement {
            restrictions: ORDER.into_iter().filter(|r| wanted.contains(r)).collect(),
            always_allowed,
        }
    }

    /// Limits nothing.
    pub fn none(always_allowed: AlwaysAllowed) -> Enforcement {
        Enforcement::new([], always_allowed)
    }

    /// Whether `restriction` applies.
    pub fn limits(&self, restriction: DeviceRestriction) -> bool {
        self.restrictions.contains(&restriction)
    }

    /// The restrictions that apply, in a fixed order.
    pub fn restrictions(&self) -> &[DeviceRestriction] {
        &self.restrictions
    }

    /// What stays usable regardless.
    pub fn always_allowed(&self) -> &AlwaysAllowed {
        &self.always_allowed
    }
}
