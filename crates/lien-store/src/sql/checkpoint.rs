//! Checkpointing SQLite's write-ahead log beside the writer rather than inside its commits.
//!
//! By default the connection that commits copies the log into the database file whenever the
//! log has passed a set number of pages, as part of that commit. With a scheduler writing a few
//! hundred devices per transaction that was every few commits, and each such commit took about
//! 180 ms instead of 25 ms, with the writer, and every payment queued behind it, waiting.
//!
//! Instead a task checkpoints from a reader connection a few times a second, in `PASSIVE` mode:
//! it copies what no reader still needs, never waits for the writer or a reader, and runs on
//! another CPU while the writer goes on appending. The writer still checkpoints by itself past
//! [`WRITER_LIMIT_PAGES`], so the log stays bounded if this task falls behind or fails.

use std::time::Duration;

use sqlx::AnyPool;
use tokio::task::JoinHandle;

/// How often the task checkpoints.
const INTERVAL: Duration = Duration::from_millis(250);

/// Log pages (4 KiB each) past which the writer checkpoints in its own commit: 400 MiB, far
/// above what the task leaves behind between two of its passes.
pub(super) const WRITER_LIMIT_PAGES: u32 = 100_000;

/// The checkpointing task; it ends when this is dropped, with the last clone of the store.
#[derive(Debug)]
pub(super) struct Checkpointer(JoinHandle<()>);

impl Checkpointer {
    /// Starts checkpointing the database behind `read`.
    pub(super) fn start(read: AnyPool) -> Checkpointer {
        Checkpointer(tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(INTERVAL).await;
                match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&read)
                    .await
                {
                    Ok(_) => failing = false,
                    // Logged once per run of failures; the writer's own limit still holds.
                    Err(err) if !failing => {
                        failing = true;
                        tracing::warn!(error = %err, "checkpointing the SQLite log failed");
                    }
                    Err(_) => {}
                }
            }
        }))
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}
