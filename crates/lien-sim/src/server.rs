//! The server side of a run: the real state (`AppState`) on a store in a temporary directory,
//! its router, and its feed of committed device changes; stopped and opened again on the same
//! store when the scenario restarts it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use lien_server::app::AppState;
use lien_server::clock::ManualClock;
use lien_server::config::Settings;
use lien_server::secrets::Secrets;
use lien_store::DeviceFeed;
use tokio::sync::broadcast;

/// A running server without sockets.
pub struct Server {
    /// Its state: store, clock, keys, settings.
    pub state: AppState,
    /// The whole HTTP surface, as `lien serve` routes it.
    pub router: Router,
    feed: broadcast::Receiver<DeviceFeed>,
}

/// What the phones hear about after a step: devices whose token or binding changed, or
/// everything (the feed fell behind).
pub enum Heard {
    /// These device ids.
    Devices(Vec<String>),
    /// Every device.
    Everything,
}

impl Server {
    /// Opens the store the settings name, the keys in `dir`, time from `clock`.
    pub async fn open(settings: &Settings, dir: &Path, clock: &ManualClock) -> Result<Server> {
        let store = lien_server::open_store(settings).await?;
        let secrets = Secrets::load_or_create(dir)?;
        let state = AppState::new(store, Arc::new(clock.clone()), secrets, settings.clone());
        let feed = state.store.device_changes();
        let router = lien_server::app::router(state.clone());
        Ok(Server {
            state,
            router,
            feed,
        })
    }

    /// Stops this server as `lien serve` stops (last-seen times written) and opens it again
    /// on the same store and keys. What was in its memory (claims, check-in cache, rate
    /// limits, unwritten counters) is gone, as after a real restart.
    pub async fn restart(
        self,
        settings: &Settings,
        dir: &Path,
        clock: &ManualClock,
    ) -> Result<Server> {
        self.state.flush_last_seen().await;
        drop(self);
        // The store's file lock goes with its last handle; background tasks (the check-in
        // cache's warm-up) may hold one for a moment.
        let mut tries = 0;
        loop {
            match Server::open(settings, dir, clock).await {
                Ok(server) => return Ok(server),
                Err(_) if tries < 200 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(err) => return Err(err).context("reopening the store after a restart"),
            }
        }
    }

    /// Everything committed since the last call.
    pub fn heard(&mut self) -> Heard {
        let mut ids = Vec::new();
        loop {
            match self.feed.try_recv() {
                Ok(DeviceFeed::Changed(id)) => ids.push(id),
                Ok(DeviceFeed::Resync) | Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    // Drain what is left; everyone hears.
                    while self.feed.try_recv().is_ok() {}
                    return Heard::Everything;
                }
                Err(_) => return Heard::Devices(ids),
            }
        }
    }
}

/// The settings of a simulated server on SQLite in `dir`, or on the PostgreSQL database
/// `database_url`.
pub fn settings(dir: PathBuf, database_url: Option<String>) -> Settings {
    Settings {
        data_dir: dir,
        database_url,
        ..Settings::default()
    }
}
