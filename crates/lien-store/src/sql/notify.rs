//! The feed of committed device changes that a phone must hear about: a new token or a new
//! binding. The server's push hub subscribes to it (see `lien-server`'s `push`).
//!
//! On SQLite one process serves the file, so the store announces its own commits, after the
//! commit and after the check-in cache has dropped the device's view. On PostgreSQL several
//! servers share the database: the change's transaction runs `pg_notify` on [`CHANNEL`], which
//! PostgreSQL delivers only if and when the transaction commits, to every listening session,
//! this server's included. Each store then runs one `LISTEN` connection (sqlx's `PgListener`)
//! that turns the notifications into the same feed, so one path serves one server or many.
//!
//! The payload is device ids only, separated by spaces (a scheduler's group announces its
//! devices in a few notifications, not one each): whoever receives one reads the current token
//! from the database, so a late or duplicated notification can only cause a redundant read,
//! never an old token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::broadcast;

use crate::DeviceFeed;

/// The PostgreSQL notification channel.
pub(super) const CHANNEL: &str = "lien_device_changed";

/// The longest payload sent: PostgreSQL refuses payloads of 8,000 bytes or more.
const MAX_PAYLOAD: usize = 7_000;

/// The payloads announcing `ids`: space-separated, each under [`MAX_PAYLOAD`] bytes.
pub(super) fn payloads(ids: &[&str]) -> Vec<String> {
    let mut payloads: Vec<String> = Vec::new();
    for id in ids {
        match payloads.last_mut() {
            Some(last) if last.len() + 1 + id.len() <= MAX_PAYLOAD => {
                last.push(' ');
                last.push_str(id);
            }
            _ => payloads.push(id.to_string()),
        }
    }
    payloads
}

/// How many changes may wait for a slow subscriber before it is told to resynchronise.
const CAPACITY: usize = 16_384;

/// The feed's sender, and on PostgreSQL what it needs to start listening.
#[derive(Debug)]
pub(super) struct Feed {
    sender: broadcast::Sender<DeviceFeed>,
    /// The database URL, on PostgreSQL, until the listener starts (at the first subscription).
    listen_url: Mutex<Option<String>>,
}

impl Feed {
    /// A feed that the store fills itself (SQLite).
    pub(super) fn local() -> Arc<Feed> {
        Arc::new(Feed {
            sender: broadcast::channel(CAPACITY).0,
            listen_url: Mutex::new(None),
        })
    }

    /// A feed filled by `LISTEN` on the database at `url` (PostgreSQL).
    pub(super) fn listening(url: &str) -> Arc<Feed> {
        Arc::new(Feed {
            sender: broadcast::channel(CAPACITY).0,
            listen_url: Mutex::new(Some(url.to_string())),
        })
    }

    /// Announces a committed change (SQLite). Nobody listening is not an error.
    pub(super) fn announce(&self, device_id: &str) {
        let _ = self.sender.send(DeviceFeed::Changed(device_id.to_string()));
    }

    /// A new subscription; on PostgreSQL the first one starts the listener.
    pub(super) fn subscribe(&self) -> broadcast::Receiver<DeviceFeed> {
        let receiver = self.sender.subscribe();
        let url = self
            .listen_url
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(url) = url {
            tokio::spawn(listen(url, self.sender.clone()));
        }
        receiver
    }
}

/// Forwards notifications until every subscriber is gone. A lost connection is re-established
/// by `PgListener`; notifications sent meanwhile are lost, so subscribers are then told to
/// resynchronise (read again every device they care about).
async fn listen(url: String, sender: broadcast::Sender<DeviceFeed>) {
    let mut listener: Option<PgListener> = None;
    loop {
        let Some(active) = listener.as_mut() else {
            let connected = async {
                let mut l = PgListener::connect(&url).await?;
                l.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(l)
            };
            tokio::select! {
                connected = connected => match connected {
                    Ok(l) => {
                        listener = Some(l);
                        let _ = sender.send(DeviceFeed::Resync);
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot LISTEN for device changes; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
                _ = sender.closed() => return,
            }
            continue;
        };
        tokio::select! {
            received = active.try_recv() => match received {
                Ok(Some(notification)) => {
                    for id in notification.payload().split(' ') {
                        let _ = sender.send(DeviceFeed::Changed(id.to_string()));
                    }
                }
                // Reconnected (and listening again) after losing the connection.
                Ok(None) => {
                    tracing::warn!("the LISTEN connection was lost and re-established");
                    let _ = sender.send(DeviceFeed::Resync);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "LISTEN failed; reconnecting");
                    listener = None;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            _ = sender.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_every_id_once_and_stay_under_the_limit() {
        let ids: Vec<String> = (0..1_000).map(|i| format!("dev_{i:026}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let sent = payloads(&refs);
        assert!(sent.len() > 1, "a thousand ids need several payloads");
        assert!(sent.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let back: Vec<&str> = sent.iter().flat_map(|p| p.split(' ')).collect();
        assert_eq!(back, refs);
        assert!(payloads(&[]).is_empty());
    }
}
