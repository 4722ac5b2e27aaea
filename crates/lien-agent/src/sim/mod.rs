//! The phone simulator: how tests, demos and benchmarks see a phone.
//!
//! A [`Phone`] is the real [`Agent`](crate::Agent) with an HTTP transport, simulated clocks
//! ([`SimClock`]) and a platform that records what is on screen and which restrictions apply
//! ([`RecordingPlatform`]), on simulated secure hardware (a storage key and a rollback slot:
//! [`SimHardware`]). It can be reset, reflashed, taken offline, have its wall clock moved
//! and its time advanced. A [`Fleet`] runs many phones in one process.

mod clock;
mod fleet;
mod http;
mod phone;
mod platform;
mod push;
mod transport;

pub use clock::SimClock;
pub use fleet::{Fleet, FleetReport};
pub use http::client_builder;
pub use phone::{Phone, factory_identity};
pub use platform::{RecordingPlatform, SimHardware};
pub use push::{PushBackoff, PushChannel};
pub use transport::HttpTransport;
