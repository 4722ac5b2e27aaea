//! PostgreSQL for the campaign: a fresh database per trial on a server someone else runs, and
//! a throwaway cluster of the campaign's own, which it may stop, kill and start again.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sqlx::{AssertSqlSafe, Connection, Executor};

/// Creates database `name` on the server of `server_url` (a URL naming any database there)
/// and returns the URL of the new one.
pub async fn create_database(server_url: &str, name: &str) -> Result<String> {
    let mut admin = sqlx::PgConnection::connect(server_url)
        .await
        .with_context(|| format!("connecting to {server_url}"))?;
    admin
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await?;
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .with_context(|| format!("creating database {name}"))?;
    let (base, _) = server_url
        .rsplit_once('/')
        .context("the PostgreSQL URL names a database")?;
    Ok(format!("{base}/{name}"))
}

/// Drops database `name` (closing its connections), so that the shared cluster keeps nothing.
pub async fn drop_database(server_url: &str, name: &str) -> Result<()> {
    let mut admin = sqlx::PgConnection::connect(server_url).await?;
    admin
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await?;
    Ok(())
}

/// A PostgreSQL cluster of the campaign's own, in a temporary directory, listening on a
/// loopback port; stopped and removed when dropped. Run as the `postgres` user when the
/// campaign runs as root (initdb refuses root), as `.ci/postgres.sh` does.
pub struct Cluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
    owner: Option<String>,
}

impl Cluster {
    /// Creates the cluster with `initdb` from `bindir` and starts it.
    pub fn create(bindir: &Path) -> Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("lien-crash-pg").tempdir()?;
        let owner = if running_as_root() {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()?;
            if !status.success() {
                bail!("cannot give {} to the postgres user", dir.path().display());
            }
            Some("postgres".to_string())
        } else {
            None
        };
        let cluster = Cluster {
            dir,
            bindir: bindir.to_path_buf(),
            port: crate::server::free_port()?,
            owner,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().context("a UTF-8 temporary path")?,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        )?;
        cluster.start()?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the cluster's programs as its owner.
    fn run(&self, program: &str, args: &[&str]) -> Result<()> {
        let binary = self.bindir.join(program);
        let mut command = match &self.owner {
            Some(owner) => {
                let mut c = Command::new("runuser");
                c.args(["-u", owner, "--"]).arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        let out = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .with_context(|| format!("running {}", binary.display()))?;
        if !out.status.success() {
            bail!(
                "{program} {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Starts the cluster and waits until it accepts connections. After a killed postmaster
    /// the old backends may hold its shared memory for a moment, so a refused start is tried
    /// again for up to a minute.
    pub fn start(&self) -> Result<()> {
        let data = self.data();
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-h 127.0.0.1 -p {} -k {} -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let started = Instant::now();
        loop {
            let attempt = self.run(
                "pg_ctl",
                &[
                    "start",
                    "-D",
                    data.to_str().context("a UTF-8 temporary path")?,
                    "-l",
                    log.to_str().context("a UTF-8 temporary path")?,
                    "-w",
                    "-t",
                    "60",
                    "-s",
                    "-o",
                    &options,
                ],
            );
            match attempt {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() > Duration::from_secs(60) => {
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    return Err(e.context(format!("the cluster's log:\n{log}")));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Stops the cluster the way a crash would: `pg_ctl stop -m immediate` (no checkpoint;
    /// the next start recovers from the write-ahead log).
    pub fn stop_immediate(&self) -> Result<()> {
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "stop",
                "-D",
                data.to_str().context("a UTF-8 temporary path")?,
                "-m",
                "immediate",
                "-w",
                "-t",
                "60",
            ],
        )
    }

    /// Kills the postmaster with SIGKILL; its backends end when they notice.
    pub fn kill_postmaster(&self) -> Result<()> {
        let pid_file = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .context("reading postmaster.pid")?;
        let pid = pid_file
            .lines()
            .next()
            .context("postmaster.pid is empty")?
            .trim()
            .to_string();
        let status = Command::new("kill").args(["-KILL", &pid]).status()?;
        if !status.success() {
            bail!("kill -KILL {pid} failed");
        }
        Ok(())
    }

    /// The URL of database `name` in this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.stop_immediate().is_err() {
            let _ = self.kill_postmaster();
        }
    }
}

/// Whether this process runs as root (initdb then has to run as `postgres`).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
