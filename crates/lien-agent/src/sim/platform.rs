//! A platform that remembers what the agent asked of it, on simulated secure hardware.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lien_proto::attestation::FactoryIdentity;

use crate::platform::{Enforcement, Platform, RollbackSlot};
use crate::screens::Screen;
use crate::storage::{StorageError, hmac_sha256, write_atomically};

/// The simulated phone's secure hardware: its storage key and its rollback slot.
///
/// Like a phone's, it belongs to the device, not to its storage: a factory reset or a reflash
/// (which wipe [`Storage`](crate::Storage) areas) leaves it as it is. It lives in memory, or in
/// a directory so that it survives restarts of the simulator along with the phone's storage.
#[derive(Clone)]
pub struct SimHardware {
    key: [u8; 32],
    slot: Slot,
    /// What the factory wrote into the phone's TEE: its attestation key and identifiers.
    factory: Option<Arc<FactoryIdentity>>,
}

/// Everything but the key, which stays out of logs even in a simulator.
impl std::fmt::Debug for SimHardware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHardware")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

/// The storage key's file in a hardware directory.
const KEY_FILE: &str = "storage.key";
/// The rollback slot's file in a hardware directory.
const SLOT_FILE: &str = "rollback.slot";

impl SimHardware {
    /// Hardware in memory, with `key` as its storage key and an empty rollback slot.
    pub fn in_memory(key: [u8; 32]) -> SimHardware {
        SimHardware {
            key,
            slot: Slot::Memory(None),
            factory: None,
        }
    }

    /// Hardware kept in `dir` (created if missing): the storage key in `storage.key`, drawn
    /// from the operating system's generator the first time, and the rollback slot in
    /// `rollback.slot`. For a phone whose storage is `FileStorage::in_dir(state)`, use
    /// `state/hardware`, next to its `protected/` and `data/`.
    pub fn in_dir(dir: &Path) -> Result<SimHardware, StorageError> {
        fs::create_dir_all(dir)?;
        let key = match fs::read(dir.join(KEY_FILE)) {
            Ok(bytes) => bytes.try_into().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a 32-byte key", dir.join(KEY_FILE).display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
                write_atomically(dir, KEY_FILE, &key)?;
                key
            }
            Err(e) => return Err(e.into()),
        };
        Ok(SimHardware {
            key,
            slot: Slot::Dir(dir.to_path_buf()),
            factory: None,
        })
    }

    /// The same hardware with the factory identity it attests with (minted from a development
    /// root: `DevelopmentRoot::mint_factory_identity`). Without one it cannot say hello.
    pub fn with_factory(self, factory: FactoryIdentity) -> SimHardware {
        SimHardware {
            factory: Some(Arc::new(factory)),
            ..self
        }
    }

    /// The same hardware with another storage key: what was sealed before no longer verifies,
    /// as if it had been forged on another device. (A key kept in a directory is not rewritten.)
    pub fn with_key(self, key: [u8; 32]) -> SimHardware {
        SimHardware { key, ..self }
    }
}

/// Where the rollback slot's bytes are.
#[derive(Debug, Clone)]
enum Slot {
    Memory(Option<Vec<u8>>),
    Dir(PathBuf),
}

impl RollbackSlot for Slot {
    fn read(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        match self {
            Slot::Memory(bytes) => Ok(bytes.clone()),
            Slot::Dir(dir) => match fs::read(dir.join(SLOT_FILE)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        match self {
            Slot::Memory(slot) => {
                *slot = Some(bytes.to_vec());
                Ok(())
            }
            Slot::Dir(dir) => write_atomically(dir, SLOT_FILE, bytes),
        }
    }
}

/// Records the screen and the restrictions the agent last asked for, and how often it asked.
#[derive(Debug, Clone)]
pub struct RecordingPlatform {
    screen: Option<Screen>,
    enforcement: Option<Enforcement>,
    hardware: SimHardware,
    /// How many times a screen was shown.
    pub screens_shown: u64,
}

impl RecordingPlatform {
    /// A platform with nothing shown yet, on `hardware`.
    pub fn new(hardware: SimHardware) -> RecordingPlatform {
        RecordingPlatform {
            screen: None,
            enforcement: None,
            hardware,
            screens_shown: 0,
        }
    }

    /// The screen on display.
    pub fn screen(&self) -> Option<&Screen> {
        self.screen.as_ref()
    }

    /// The restrictions in force.
    pub fn enforcement(&self) -> Option<&Enforcement> {
        self.enforcement.as_ref()
    }

    /// The hardware, handed back when the phone powers off: it outlives every boot.
    pub fn into_hardware(self) -> SimHardware {
        self.hardware
    }
}

impl Platform for RecordingPlatform {
    fn show(&mut self, screen: &Screen) {
        self.screen = Some(screen.clone());
        self.screens_shown += 1;
    }

    fn apply(&mut self, enforcement: &Enforcement) {
        self.enforcement = Some(enforcement.clone());
    }

    fn storage_mac(&mut self, message: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.hardware.key, message)
    }

    fn rollback_slot(&mut self) -> Option<&mut dyn RollbackSlot> {
        Some(&mut self.hardware.slot)
    }

    fn attest_device_key(
        &mut self,
        challenge: &[u8],
        wall_clock: i64,
    ) -> Result<Vec<Vec<u8>>, String> {
        let factory = self
            .hardware
            .factory
            .as_ref()
            .ok_or("this simulated phone has no factory identity to attest with")?;
        let attested = factory
            .attest(challenge, wall_clock)
            .map_err(|e| e.to_string())?;
        Ok(attested.chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_in_a_directory_keeps_its_key_and_slot_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = RecordingPlatform::new(SimHardware::in_dir(dir.path()).unwrap());
        let tag = first.storage_mac(b"record");
        first.rollback_slot().unwrap().write(b"anchor").unwrap();
        // The simulator restarts: the same files, the same key and slot.
        let mut again = RecordingPlatform::new(SimHardware::in_dir(dir.path()).unwrap());
        assert_eq!(again.storage_mac(b"record"), tag);
        assert_eq!(
            again.rollback_slot().unwrap().read().unwrap().as_deref(),
            Some(&b"anchor"[..])
        );
        // Another phone's hardware has another key.
        let other = tempfile::tempdir().unwrap();
        let mut other = RecordingPlatform::new(SimHardware::in_dir(other.path()).unwrap());
        assert_ne!(other.storage_mac(b"record"), tag);
        assert_eq!(other.rollback_slot().unwrap().read().unwrap(), None);
    }

    #[test]
    fn another_key_models_a_forged_record() {
        let hardware = SimHardware::in_memory([1; 32]);
        let mut real = RecordingPlatform::new(hardware.clone());
        let mut forged = RecordingPlatform::new(hardware.with_key([2; 32]));
        assert_ne!(real.storage_mac(b"record"), forged.storage_mac(b"record"));
    }
}
