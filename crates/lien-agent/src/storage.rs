//! Where the agent keeps what it knows, in two areas with different lifetimes.
//!
//! **Protected** storage survives a factory reset (on a phone: a partition that the reset does
//! not wipe, such as Android's persistent data block). It holds the binding to the server, the
//! last valid token, the highest sequence seen, the released flag, the offline unlock counter
//! and throttle, and the lease time used. Losing it is safe, because the server binds by IMEI:
//! the next hello re-binds and the server hands back the current token.
//!
//! **Ordinary** data is wiped by a factory reset and holds only what may be lost: events not yet
//! reported and a marker that lets the agent notice a reset.
//!
//! Every write replaces the whole record atomically: after a crash or power loss a reader sees
//! the old record or the new one, never a mixture. The agent adds a checksum on top (see
//! [`seal`]), so that a medium that breaks that promise yields a record the agent discards as
//! lost, never one it misreads.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Which storage area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Area {
    /// Survives a factory reset.
    Protected,
    /// Wiped by a factory reset.
    Ordinary,
}

/// A storage operation failed; the previous record is still in place.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The medium refused the read or write.
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// A simulated failure (see [`MemoryStorage::fail_next_write`]).
    #[error("injected storage failure")]
    Injected,
}

/// One record per area, replaced atomically.
pub trait Storage: Send {
    /// The area's record, or `None` if there is none.
    fn load(&self, area: Area) -> Result<Option<Vec<u8>>, StorageError>;
    /// Replaces the area's record. On error the previous record must still be readable as it was.
    fn store(&mut self, area: Area, bytes: &[u8]) -> Result<(), StorageError>;
    /// Removes the area's record: what a factory reset (ordinary) or a reflash (both) does.
    /// The agent never calls it; the simulator and tests do.
    fn wipe(&mut self, area: Area) -> Result<(), StorageError>;
}

/// Boxed storage is storage, so a caller can choose the backend at run time.
impl<T: Storage + ?Sized> Storage for Box<T> {
    fn load(&self, area: Area) -> Result<Option<Vec<u8>>, StorageError> {
        (**self).load(area)
    }

    fn store(&mut self, area: Area, bytes: &[u8]) -> Result<(), StorageError> {
        (**self).store(area, bytes)
    }

    fn wipe(&mut self, area: Area) -> Result<(), StorageError> {
        (**self).wipe(area)
    }
}

const MAGIC: &[u8; 4] = b"LNA1";

/// Wraps a record as `MAGIC || sha256(payload) || payload`.
pub(crate) fn seal(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 32 + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&Sha256::digest(payload));
    out.extend_from_slice(payload);
    out
}

/// The payload of a sealed record, or `None` if it is torn, truncated or altered.
pub(crate) fn unseal(record: &[u8]) -> Option<&[u8]> {
    let rest = record.strip_prefix(MAGIC)?;
    if rest.len() < 32 {
        return None;
    }
    let (digest, payload) = rest.split_at(32);
    (Sha256::digest(payload).as_slice() == digest).then_some(payload)
}

/// What the next write to [`MemoryStorage`] does instead of succeeding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFault {
    /// The write fails and nothing changes, as on an atomic medium that reports an error.
    Fail,
    /// Only the first half of the bytes land and the write reports an error, as on a medium
    /// without atomic replace that loses power mid-write.
    Tear,
}

/// Storage in memory, for tests and the simulator, with injectable faults.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    protected: Option<Vec<u8>>,
    ordinary: Option<Vec<u8>>,
    fault: Option<InjectedFault>,
    /// How many writes succeeded, per area (protected, ordinary).
    pub writes: (u64, u64),
}

impl MemoryStorage {
    /// Empty storage: a phone fresh from the factory.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// Makes the next write fail with `fault`.
    pub fn fail_next_write(&mut self, fault: InjectedFault) {
        self.fault = Some(fault);
    }

    /// Replaces a record's bytes directly, e.g. to corrupt it.
    pub fn put_raw(&mut self, area: Area, bytes: Option<Vec<u8>>) {
        *self.slot(area) = bytes;
    }

    fn slot(&mut self, area: Area) -> &mut Option<Vec<u8>> {
        match area {
            Area::Protected => &mut self.protected,
            Area::Ordinary => &mut self.ordinary,
        }
    }
}

impl Storage for MemoryStorage {
    fn load(&self, area: Area) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(match area {
            Area::Protected => self.protected.clone(),
            Area::Ordinary => self.ordinary.clone(),
        })
    }

    fn store(&mut self, area: Area, bytes: &[u8]) -> Result<(), StorageError> {
        match self.fault.take() {
            Some(InjectedFault::Fail) => Err(StorageError::Injected),
            Some(InjectedFault::Tear) => {
                *self.slot(area) = Some(bytes[..bytes.len() / 2].to_vec());
                Err(StorageError::Injected)
            }
            None => {
                *self.slot(area) = Some(bytes.to_vec());
                match area {
                    Area::Protected => self.writes.0 += 1,
                    Area::Ordinary => self.writes.1 += 1,
                }
                Ok(())
            }
        }
    }

    fn wipe(&mut self, area: Area) -> Result<(), StorageError> {
        *self.slot(area) = None;
        Ok(())
    }
}

/// Storage in two directories, one per area (on a phone they sit on different partitions).
///
/// A write goes to a temporary file that is flushed to disk (`fsync`) and then renamed over the
/// record, and the directory is flushed so the rename itself is durable: a crash at any point
/// leaves the old record or the new one.
#[derive(Debug, Clone)]
pub struct FileStorage {
    protected_dir: PathBuf,
    ordinary_dir: PathBuf,
}

const RECORD: &str = "agent.state";

impl FileStorage {
    /// Storage in `protected_dir` and `ordinary_dir`, created if missing.
    pub fn open(protected_dir: &Path, ordinary_dir: &Path) -> Result<FileStorage, StorageError> {
        fs::create_dir_all(protected_dir)?;
        fs::create_dir_all(ordinary_dir)?;
        Ok(FileStorage {
            protected_dir: protected_dir.to_path_buf(),
            ordinary_dir: ordinary_dir.to_path_buf(),
        })
    }

    /// The usual layout under one directory: `protected/` and `data/`.
    pub fn in_dir(dir: &Path) -> Result<FileStorage, StorageError> {
        FileStorage::open(&dir.join("protected"), &dir.join("data"))
    }

    fn dir(&self, area: Area) -> &Path {
        match area {
            Area::Protected => &self.protected_dir,
            Area::Ordinary => &self.ordinary_dir,
        }
    }
}

impl Storage for FileStorage {
    fn load(&self, area: Area) -> Result<Option<Vec<u8>>, StorageError> {
        match fs::read(self.dir(area).join(RECORD)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn store(&mut self, area: Area, bytes: &[u8]) -> Result<(), StorageError> {
        let dir = self.dir(area);
        let tmp = dir.join(format!("{RECORD}.tmp"));
        {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, dir.join(RECORD))?;
        // The rename is durable only once the directory entry is on disk.
        fs::File::open(dir)?.sync_all()?;
        Ok(())
    }

    fn wipe(&mut self, area: Area) -> Result<(), StorageError> {
        match fs::remove_file(self.dir(area).join(RECORD)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_previous_record() {
        let mut storage = MemoryStorage::new();
        storage.store(Area::Protected, &seal(b"locked")).unwrap();
        storage.fail_next_write(InjectedFault::Fail);
        assert!(storage.store(Area::Protected, &seal(b"active")).is_err());
        let record = storage.load(Area::Protected).unwrap().unwrap();
        assert_eq!(unseal(&record), Some(&b"locked"[..]));
    }

    #[test]
    fn a_torn_record_is_refused_not_misread() {
        let mut storage = MemoryStorage::new();
        storage.fail_next_write(InjectedFault::Tear);
        assert!(
            storage
                .store(Area::Protected, &seal(b"some state"))
                .is_err()
        );
        let record = storage.load(Area::Protected).unwrap().unwrap();
        assert_eq!(unseal(&record), None);
        let mut flipped = seal(b"some state");
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(unseal(&flipped), None);
        assert_eq!(unseal(b""), None);
    }

    #[test]
    fn files_are_replaced_whole_and_areas_wiped_separately() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = FileStorage::in_dir(dir.path()).unwrap();
        assert!(storage.load(Area::Protected).unwrap().is_none());
        storage.store(Area::Protected, b"one").unwrap();
        storage.store(Area::Protected, b"two").unwrap();
        storage.store(Area::Ordinary, b"data").unwrap();
        assert_eq!(storage.load(Area::Protected).unwrap().unwrap(), b"two");
        assert!(!dir.path().join("protected/agent.state.tmp").exists());
        storage.wipe(Area::Ordinary).unwrap();
        assert!(storage.load(Area::Ordinary).unwrap().is_none());
        // A fresh handle on the same directories (a reboot) reads what was written.
        let reopened = FileStorage::in_dir(dir.path()).unwrap();
        assert_eq!(reopened.load(Area::Protected).unwrap().unwrap(), b"two");
    }
}
