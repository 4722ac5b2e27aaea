//! The phone side of Lien: the agent a phone maker builds into the firmware.
//!
//! The agent verifies the status tokens the server signs, enforces them through a
//! [`Platform`] (the lock screen and the restrictions), keeps what must survive a factory
//! reset in protected [`Storage`] (sealed under a key only the platform holds and, where the
//! phone can, anchored against rollback: see [`storage`]), counts its offline lease on a
//! monotonic clock, accepts one-time offline unlock codes, and grants the policy's emergency use
//! offline.
//!
//! The core is sans-IO: it never opens a socket and never reads a clock. The caller passes the
//! time ([`Now`]) into every call and carries the requests the agent prepares
//! ([`Agent::hello_request`], [`Agent::checkin_request`]) to the server, handing the answers back
//! ([`Agent::on_hello`], [`Agent::on_checkin`]). That keeps the agent testable to the second and
//! lets a firmware use whatever network stack and scheduler it has.
//!
//! With the `sim` feature the crate also has [`sim`]: an async driver with an HTTP transport,
//! simulated clocks and a platform that records what it shows, used by the tests, the
//! `lien phone` command and benchmarks.

mod agent;
mod emergency;
pub mod entropy;
pub mod lease;
pub mod money;
pub mod offline_unlock;
pub mod platform;
mod schedule;
pub mod screens;
mod state;
pub mod storage;
mod time;

#[cfg(feature = "sim")]
pub mod sim;

pub use agent::{
    Agent, AgentConfig, AgentStatus, EmergencyOutcome, Identity, Mode, Outgoing, SignedCheckin,
    TransportError,
};
pub use entropy::{Entropy, OsEntropy, SeededEntropy};
pub use offline_unlock::{CodeOutcome, UnlockRules};
pub use platform::{AlwaysAllowed, Enforcement, Platform, RollbackSlot};
pub use screens::{LockCause, Screen};
pub use storage::{
    Area, FileStorage, InjectedFault, MemoryStorage, RecordError, RecordKind, Storage, StorageError,
};
pub use time::Now;
