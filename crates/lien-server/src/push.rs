//! Push: the hub that tells connected phones about new tokens, and the task that feeds it.
//!
//! A phone keeps one push channel open (`routes::push`, server-sent events). The hub maps each
//! device with an open channel to a `watch` sender holding the newest token this server knows
//! for it; every channel of that device holds a receiver and sends what it has not sent yet.
//!
//! The hub is fed from one place: the store's feed of committed changes
//! ([`lien_store::Store::device_changes`]), which every write to a device's token or binding
//! goes through, whatever made it (the financier API, the scheduler, a hello, an appeal).
//! On PostgreSQL the feed comes from `LISTEN`, so a change committed by any server reaches the
//! phones connected to this one. The feed carries device ids only; the hub reads the current
//! token from the store, and only for devices with a channel open here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use lien_store::{CheckinView, DeviceFeed, StoreError};
use tokio::sync::{broadcast, watch};

use crate::app::AppState;

/// The newest token this server knows for a device with an open channel.
#[derive(Debug, Clone, Default)]
pub struct Latest {
    /// The binding generation the token is for; a change means the credential that opened
    /// the channel is revoked, and the channel closes.
    pub generation: i64,
    /// The token's sequence.
    pub sequence: i64,
    /// The token.
    pub token: Option<Arc<[u8]>>,
}

impl Latest {
    fn from_view(view: &CheckinView) -> Latest {
        Latest {
            generation: view.binding_generation,
            sequence: view.token_sequence,
            token: view.token.as_deref().map(Arc::from),
        }
    }
}

/// Devices with open channels on this server, and the signal that closes every channel.
pub struct Hub {
    devices: Mutex<HashMap<String, watch::Sender<Latest>>>,
    closing: watch::Sender<bool>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub {
            devices: Mutex::new(HashMap::new()),
            closing: watch::channel(false).0,
        }
    }
}

/// One open channel's hold on the hub; dropping it forgets the device when it was the last.
pub struct Subscription {
    state: AppState,
    device_id: String,
    /// `None` only while dropping.
    receiver: Option<watch::Receiver<Latest>>,
}

impl Subscription {
    /// The receiver of the device's newest token.
    pub fn receiver(&mut self) -> &mut watch::Receiver<Latest> {
        self.receiver.as_mut().expect("taken only on drop")
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut devices = self.state.push.lock();
        drop(self.receiver.take());
        if devices
            .get(&self.device_id)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            devices.remove(&self.device_id);
        }
        self.state.metrics.push_connections.dec();
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Latest>>> {
        self.devices.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many devices have a channel open here.
    pub fn devices(&self) -> usize {
        self.lock().len()
    }

    /// A receiver that closes when the server stops.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Closes every channel, so that a graceful shutdown does not wait for them forever.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Accepts channels again (a server started anew on the same state).
    pub fn open(&self) {
        self.closing.send_replace(false);
    }

    /// Takes the newest token for `view`'s device if it is newer than the one held (a later
    /// binding generation, or a higher sequence in the same one); returns whether it was.
    fn offer(&self, device_id: &str, view: &CheckinView) -> bool {
        let devices = self.lock();
        let Some(sender) = devices.get(device_id) else {
            return false;
        };
        sender.send_if_modified(|held| {
            // Compared as a pair, so that a read which started before a re-bind and ends
            // after it cannot take the hub back to the revoked generation.
            let newer =
                (view.binding_generation, view.token_sequence) > (held.generation, held.sequence);
            if newer {
                *held = Latest::from_view(view);
            }
            newer
        })
    }
}

/// Registers a channel for `device_id`, then reads the device again so that a change that
/// committed before the registration is not missed.
pub async fn subscribe(state: &AppState, device_id: &str) -> Result<Subscription, StoreError> {
    let receiver = {
        let mut devices = state.push.lock();
        devices
            .entry(device_id.to_string())
            .or_insert_with(|| watch::channel(Latest::default()).0)
            .subscribe()
    };
    state.metrics.push_connections.inc();
    let mut subscription = Subscription {
        state: state.clone(),
        device_id: device_id.to_string(),
        receiver: Some(receiver),
    };
    let view = state.store.checkin_view(device_id).await?;
    state.push.offer(device_id, &view);
    // The value is current now; only later changes should wake the channel.
    subscription.receiver().mark_unchanged();
    Ok(subscription)
}

/// Reads a device's token if it has a channel open here, and hands it to the hub.
async fn refresh(state: &AppState, device_id: &str) {
    if !state.push.lock().contains_key(device_id) {
        return;
    }
    match state.store.checkin_view(device_id).await {
        Ok(view) => {
            state.push.offer(device_id, &view);
        }
        Err(err) => {
            tracing::warn!(device = %device_id, error = %err, "cannot read a changed device for push");
        }
    }
}

/// Reads every device with a channel open here, after changes may have been missed.
async fn resync(state: &AppState) {
    let ids: Vec<String> = state.push.lock().keys().cloned().collect();
    tracing::info!(devices = ids.len(), "resynchronising push channels");
    for id in ids {
        refresh(state, &id).await;
    }
}

/// Feeds the hub from the store's change feed until the server stops.
pub async fn run(state: AppState, mut stopping: watch::Receiver<bool>) {
    let mut feed = state.store.device_changes();
    loop {
        tokio::select! {
            message = feed.recv() => match message {
                Ok(DeviceFeed::Changed(id)) => refresh(&state, &id).await,
                Ok(DeviceFeed::Resync) => resync(&state).await,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the push hub fell behind the change feed");
                    resync(&state).await;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = crate::app::until_stopped(&mut stopping) => return,
        }
    }
}
