//! The SQL implementation of the store, one code path for SQLite and PostgreSQL.
//!
//! Both run through sqlx's `Any` driver with `$n` placeholders, which both understand; the
//! few differences (row locks, the column types in the migrations) are spelled out by
//! [`Dialect`]. SQLite gets two pools: one connection for writes, so that writers queue in
//! Lien instead of failing with `SQLITE_BUSY`, and several for reads, which WAL lets run
//! beside the writer.

mod appeals;
mod audit_log;
mod checkin_cache;
mod checkpoint;
mod claims;
mod device_writes;
mod devices;
mod mobile_money;
mod notify;
mod people;
mod plans;
mod reports;
mod rows;
mod tenants;
mod warm_up;
mod webhooks;

use std::sync::{Arc, Once};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, AssertSqlSafe, ConnectOptions as _, Executor, Row};

use crate::StoreError;

/// The schema, one list per backend, applied in order and recorded in `lien_schema`.
const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_appeals.sql")),
    (
        3,
        include_str!("../../migrations/sqlite/0003_device_version.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_request_counter.sql"),
    ),
    (5, include_str!("../../migrations/sqlite/0005_api_keys.sql")),
    (
        6,
        include_str!("../../migrations/sqlite/0006_appeals_by_device.sql"),
    ),
    (
        7,
        include_str!("../../migrations/sqlite/0007_attachments.sql"),
    ),
    (
        8,
        include_str!("../../migrations/sqlite/0008_mobile_money.sql"),
    ),
    (9, include_str!("../../migrations/sqlite/0009_webhooks.sql")),
    (
        10,
        include_str!("../../migrations/sqlite/0010_reconciliation.sql"),
    ),
    (
        11,
        include_str!("../../migrations/sqlite/0011_webhook_claims.sql"),
    ),
    (
        12,
        include_str!("../../migrations/sqlite/0012_unmatched_pages.sql"),
    ),
    (13, include_str!("../../migrations/sqlite/0013_people.sql")),
    (
        14,
        include_str!("../../migrations/sqlite/0014_portfolio.sql"),
    ),
    (
        15,
        include_str!("../../migrations/sqlite/0015_audit_by_time.sql"),
    ),
    (
        16,
        include_str!("../../migrations/sqlite/0016_arrears_age_and_acks.sql"),
    ),
    (
        17,
        include_str!("../../migrations/sqlite/0017_plan_versions.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_appeals.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_device_version.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_request_counter.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_api_keys.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_appeals_by_device.sql"),
    ),
    (
        7,
        include_str!("../../migrations/postgres/0007_attachments.sql"),
    ),
    (
        8,
        include_str!("../../migrations/postgres/0008_mobile_money.sql"),
    ),
    (
        9,
        include_str!("../../migrations/postgres/0009_webhooks.sql"),
    ),
    (
        10,
        include_str!("../../migrations/postgres/0010_reconciliation.sql"),
    ),
    (
        11,
        include_str!("../../migrations/postgres/0011_webhook_claims.sql"),
    ),
    (
        12,
        include_str!("../../migrations/postgres/0012_unmatched_pages.sql"),
    ),
    (
        13,
        include_str!("../../migrations/postgres/0013_people.sql"),
    ),
    (
        14,
        include_str!("../../migrations/postgres/0014_portfolio.sql"),
    ),
    (
        15,
        include_str!("../../migrations/postgres/0015_audit_by_time.sql"),
    ),
    (
        16,
        include_str!("../../migrations/postgres/0016_arrears_age_and_acks.sql"),
    ),
    (
        17,
        include_str!("../../migrations/postgres/0017_plan_versions.sql"),
    ),
];

/// Which database is behind the pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The clause that locks the selected rows for the transaction. SQLite has one writer
    /// at a time (and Lien's single write connection), so it needs none.
    fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }
}

/// The store on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    write: AnyPool,
    read: AnyPool,
    dialect: Dialect,
    /// SQLite only; see [`checkin_cache`] for why PostgreSQL has none.
    checkin_cache: Option<Arc<checkin_cache::CheckinCache>>,
    /// How the cache's warm-up at open went, once it has ended (see [`warm_up`]).
    checkin_warm_up: warm_up::Outcome,
    /// Committed token and binding changes, for push (see [`notify`]).
    feed: Arc<notify::Feed>,
    /// SQLite only: held while the store is open, so that no second process serves the same
    /// file (its writes would bypass this process's check-in cache).
    _sqlite_lock: Option<Arc<std::fs::File>>,
    /// SQLite only: checkpoints the log while the store is open (see [`checkpoint`]).
    _checkpointer: Option<Arc<checkpoint::Checkpointer>>,
    /// SQLite only: the scheduler's claims (see [`claims`]).
    claims: Option<Arc<claims::Claims>>,
}

impl SqlStore {
    /// Opens the database named by `url` and brings its schema up to date.
    ///
    /// `sqlite://path/to/file.db` (created if missing) and `postgres://...` are understood;
    /// any other scheme is an error.
    pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);

        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else {
            let scheme = url.split(':').next().unwrap_or(url);
            return Err(StoreError::UnsupportedUrl(format!(
                "unknown database URL scheme {scheme:?}: use sqlite://PATH or postgres://..."
            )));
        };
        let store = match dialect {
            Dialect::Sqlite => {
                let url = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                let sqlite_lock = lock_sqlite_file(&url)?;
                let options: AnyConnectOptions = url.parse().map_err(backend)?;
                let write = sqlite_pool(1, writer_pragmas())
                    .connect_with(options.clone())
                    .await
                    .map_err(backend)?;
                let cache = Arc::new(checkin_cache::CheckinCache::new(checkin_cache::CAPACITY));
                // The writer creates the file and switches it to WAL before readers open it.
                let store = SqlStore {
                    read: write.clone(),
                    write,
                    dialect,
                    checkin_cache: Some(cache.clone()),
                    checkin_warm_up: warm_up::Outcome::default(),
                    feed: notify::Feed::local(),
                    _sqlite_lock: sqlite_lock,
                    _checkpointer: None,
                    claims: Some(Arc::default()),
                };
                store.migrate().await?;
                // No ping before lending a read connection: a SQLite connection is a file
                // handle in this process that no server or network can close under it, so the
                // ping would only cost each read one more round trip to the connection's
                // thread (reads by id ran 37% faster without it, see BENCHMARKS.md). A
                // connection that did break would fail its queries with an error, and the pool
                // still retires every connection after its maximum lifetime (30 minutes).
                let read = sqlite_pool(8, String::new())
                    .test_before_acquire(false)
                    .connect_with(options.clone())
                    .await
                    .map_err(backend)?;
                let checkin_warm_up = warm_up::start(read.clone(), &cache, checkin_cache::CAPACITY);
                // A connection of its own, whose slow statements sqlx does not log: after a
                // large import a checkpoint takes seconds, which is expected, and the task
                // reports it itself.
                let checkpointing = sqlite_pool(1, String::new())
                    .connect_with(options.disable_statement_logging())
                    .await
                    .map_err(backend)?;
                let checkpointer = checkpoint::Checkpointer::start(checkpointing);
                SqlStore {
                    read,
                    checkin_warm_up,
                    _checkpointer: Some(Arc::new(checkpointer)),
                    ..store
                }
            }
            Dialect::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    // While the database is away, a request waits this long for a connection
                    // before it is answered 503.
                    .acquire_timeout(Duration::from_secs(5))
                    .connect(url)
                    .await
                    .map_err(backend)?;
                let store = SqlStore {
                    read: pool.clone(),
                    write: pool,
                    dialect,
                    checkin_cache: None,
                    checkin_warm_up: warm_up::Outcome::default(),
                    feed: notify::Feed::listening(url),
                    _sqlite_lock: None,
                    _checkpointer: None,
                    claims: None,
                };
                store.migrate().await?;
                store
            }
        };
        Ok(store)
    }

    /// Applies the migrations this database has not seen, each in its own transaction.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        if self.dialect == Dialect::Postgres {
            // Several servers may start at once; the first to take the lock migrates.
            tx.execute("SELECT pg_advisory_xact_lock(7406317)")
                .await
                .map_err(backend)?;
        }
        tx.execute(
            "CREATE TABLE IF NOT EXISTS lien_schema (version BIGINT PRIMARY KEY, name TEXT NOT NULL)",
        )
        .await
        .map_err(backend)?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM lien_schema")
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)
            .and_then(|rows| first_column(&rows))?;
        let migrations = match self.dialect {
            Dialect::Sqlite => SQLITE_MIGRATIONS,
            Dialect::Postgres => POSTGRES_MIGRATIONS,
        };
        for (version, sql) in migrations {
            if applied.contains(version) {
                continue;
            }
            tracing::info!(version, backend = self.backend_name(), "applying migration");
            sqlx::raw_sql(AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            sqlx::query("INSERT INTO lien_schema (version, name) VALUES ($1, $2)")
                .bind(*version)
                .bind(format!("{version:04}"))
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    /// How many check-in views the cache's warm-up at open loaded and how long it took, once
    /// it has ended; `None` while it runs, and always on PostgreSQL, which has no cache. The
    /// store answers check-ins meanwhile, reading the database for devices not yet cached.
    pub fn checkin_cache_warm_up(&self) -> Option<(usize, Duration)> {
        self.checkin_warm_up.get().copied()
    }

    fn backend_name(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// A pool whose connections use WAL, wait for locks instead of failing at once, check
/// foreign keys, and sync every commit, so that a 2xx means the write is on disk; then run
/// `pragmas`, for what differs between the writer and the readers.
pub(super) fn sqlite_pool(connections: u32, pragmas: String) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _| {
            let pragmas = pragmas.clone();
            Box::pin(async move {
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                     PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; {pragmas}"
                )))
                .execute(conn)
                .await
                .map(|_| ())
            })
        })
}

/// The writer's own settings. A scheduler's group of a few hundred devices dirties thousands
/// of pages (each device's row, and its place in the token, audit and index trees): a 64 MiB
/// page cache holds them without spilling mid-transaction. The log is checkpointed beside the
/// writer (see [`checkpoint`]); the writer does it itself only past a high limit.
fn writer_pragmas() -> String {
    format!(
        "PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = {};",
        checkpoint::WRITER_LIMIT_PAGES
    )
}

/// Takes an exclusive lock on `<database>.lock` beside a SQLite file, or fails naming it.
/// In-memory databases are private to the process and need none. The lock is the operating
/// system's, so it goes when the process does, however it ends.
fn lock_sqlite_file(url: &str) -> Result<Option<Arc<std::fs::File>>, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
        return Ok(None);
    }
    let lock_path = format!("{path}.lock");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&lock_path)
        .map_err(|e| StoreError::InUse(format!("cannot open the lock file {lock_path}: {e}")))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Arc::new(file))),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse(format!(
            "another Lien process is serving this SQLite database (it holds {lock_path}); \
             stop it first, or use PostgreSQL to run several servers on one database"
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StoreError::InUse(format!("cannot lock {lock_path}: {e}")))
        }
    }
}

/// Wraps a driver error: its text goes to the log through the error chain, never to a client.
/// The database out of reach (the pool's wait over, the connection refused or broken) is told
/// apart, so that a client hears "try again" (503) rather than "we failed" (500).
fn backend(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(err)),
        // PostgreSQL's own word that the connection is gone or the server is going: class 08
        // (connection exception) and 57P01-57P03 (shutting down, crashed, not yet accepting),
        // which a pooled connection reads on its next query after the server stopped.
        sqlx::Error::Database(ref db)
            if db.code().is_some_and(|c| {
                c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")
            }) =>
        {
            StoreError::Unavailable(Box::new(err))
        }
        _ => StoreError::Backend(Box::new(err)),
    }
}

/// A read by a key: [`Found::found`] is the one row the query finds, or
/// [`StoreError::NotFound`], so that every such read maps a missing row the same way.
trait Found<'q> {
    async fn found<'e, 'c: 'e, E>(self, executor: E) -> Result<AnyRow, StoreError>
    where
        'q: 'e,
        E: Executor<'c, Database = Any>;
}

impl<'q> Found<'q> for sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    async fn found<'e, 'c: 'e, E>(self, executor: E) -> Result<AnyRow, StoreError>
    where
        'q: 'e,
        E: Executor<'c, Database = Any>,
    {
        self.fetch_optional(executor)
            .await
            .map_err(backend)?
            .ok_or(StoreError::NotFound)
    }
}

/// A read of many rows: [`ReadAll::read_all`] is every row the query finds, each turned into a
/// record by `reader`, so that every such read maps a driver error the same way.
trait ReadAll<'q> {
    async fn read_all<'e, 'c: 'e, E, T>(
        self,
        executor: E,
        reader: impl Fn(&AnyRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError>
    where
        'q: 'e,
        E: Executor<'c, Database = Any>;
}

impl<'q> ReadAll<'q> for sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    async fn read_all<'e, 'c: 'e, E, T>(
        self,
        executor: E,
        reader: impl Fn(&AnyRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError>
    where
        'q: 'e,
        E: Executor<'c, Database = Any>,
    {
        self.fetch_all(executor)
            .await
            .map_err(backend)?
            .iter()
            .map(reader)
            .collect()
    }
}

/// The first column of every row.
fn first_column<T>(rows: &[AnyRow]) -> Result<Vec<T>, StoreError>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    rows.iter()
        .map(|r| r.try_get::<T, _>(0))
        .collect::<Result<_, _>>()
        .map_err(backend)
}

/// A unique-key violation becomes a conflict described by `what`; anything else is a backend error.
fn unique_or_backend(err: sqlx::Error, what: impl Into<String>) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what.into()),
        _ => backend(err),
    }
}
