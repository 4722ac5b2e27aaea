//! Checkpointing SQLite's write-ahead log beside the writer rather than inside its commits.
//!
//! By default the connection that commits copies the log into the database file whenever the
//! log has passed a set number of pages, as part of that commit. With a scheduler writing a few
//! hundred devices per transaction that was every few commits, and each such commit took about
//! 180 ms instead of 25 ms, with the writer, and every payment queued behind it, waiting.
//!
//! Instead a task checkpoints from a connection of its own a few times a second, in `PASSIVE` mode:
//! it copies what no reader still needs, never waits for the writer or a reader, and runs on
//! another CPU while the writer goes on appending. The writer still checkpoints by itself past
//! [`WRITER_LIMIT_PAGES`], so the log stays bounded if this task falls behind or fails.

use std::time::{Duration, Instant};

use sqlx::AnyPool;
use tokio::task::JoinHandle;

/// How often the task checkpoints.
const INTERVAL: Duration = Duration::from_millis(250);

/// A checkpoint this long is reported (at `info`): it follows a large import or a scheduler
/// pass, and says where the disk's time went.
const SLOW: Duration = Duration::from_secs(1);

/// Log pages (4 KiB each) past which the writer checkpoints in its own commit: 400 MiB, far
/// above what the task leaves behind between two of its passes.
pub(super) const WRITER_LIMIT_PAGES: u32 = 100_000;

/// The checkpointing task; it ends when this is dropped, with the last clone of the store.
#[derive(Debug)]
pub(super) struct Checkpointer(JoinHandle<()>);

impl Checkpointer {
    /// Starts checkpointing the database behind `pool`, a pool of its own.
    pub(super) fn start(pool: AnyPool) -> Checkpointer {
        Checkpointer(tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(INTERVAL).await;
                let started = Instant::now();
                // One row: whether it was blocked, the log's pages, and the pages copied.
                match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&pool)
                    .await
                {
                    Ok((_, _, copied)) => {
                        failing = false;
                        let took = started.elapsed();
                        if took >= SLOW {
                            tracing::info!(
                                pages = copied,
                                ms = took.as_millis() as u64,
                                "checkpointed a large SQLite log"
                            );
                        }
                    }
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

#[cfg(test)]
mod tests {
    use sqlx::ConnectOptions as _;
    use sqlx::any::AnyConnectOptions;

    use super::*;
    use crate::sql::sqlite_pool;

    /// What a writer commits reaches the database file itself, though the writer never
    /// checkpoints: until then it is only in the log beside the file.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_log_is_copied_into_the_database_file() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let options: AnyConnectOptions = format!("sqlite://{}?mode=rwc", path.display())
            .parse()
            .unwrap();
        let writer = sqlite_pool(1, "PRAGMA wal_autocheckpoint = 0;".into())
            .connect_with(options.clone())
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE t (v BLOB); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
             INSERT INTO t SELECT randomblob(2000) FROM n",
        )
        .execute(&writer)
        .await
        .unwrap();
        let file_size = || std::fs::metadata(&path).unwrap().len();
        let written = 2_000_000;
        assert!(file_size() < written, "checkpointed before the task ran");

        let pool = sqlite_pool(1, String::new())
            .connect_with(options.disable_statement_logging())
            .await
            .unwrap();
        let _checkpointer = Checkpointer::start(pool);
        let deadline = Instant::now() + Duration::from_secs(20);
        while file_size() < written {
            assert!(Instant::now() < deadline, "the log was never checkpointed");
            tokio::time::sleep(INTERVAL).await;
        }
    }
}
