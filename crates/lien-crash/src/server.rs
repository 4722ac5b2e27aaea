//! A `lien serve` process of the campaign's own: started on a data directory and a fixed
//! port, and killed with SIGKILL.
//!
//! The port is fixed for the whole trial (the server comes back where it was), so that the
//! simulated phones, which keep their server's address, reach the restarted server as real
//! phones would.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How many of the server's last log lines are kept, to show when a trial fails.
const LOG_LINES: usize = 200;

/// How long a start may take: migrations on a fresh PostgreSQL database on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// How to start the server: which binary, on which data, where.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// The `lien` binary.
    pub lien: PathBuf,
    /// The data directory (keys, the SQLite database, the first admin key).
    pub data_dir: PathBuf,
    /// The loopback port it listens on, the same at every start.
    pub port: u16,
    /// `--database-url`: PostgreSQL; `None` for SQLite in the data directory.
    pub database_url: Option<String>,
}

impl ServerSpec {
    /// The server's base URL.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The platform admin key the first start wrote (its output is not a terminal).
    pub fn admin_key(&self) -> Result<String> {
        let path = self.data_dir.join("first-admin.key");
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_string())
    }
}

/// A running `lien serve`.
pub struct Server {
    child: Child,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    /// Starts the server and waits until it says it listens.
    pub fn start(spec: &ServerSpec) -> Result<Server> {
        let mut command = Command::new(&spec.lien);
        command
            .args(["serve", "--listen"])
            .arg(format!("127.0.0.1:{}", spec.port))
            .arg("--data-dir")
            .arg(&spec.data_dir)
            // A data directory of its own is a deployment, which must name its support.
            .env("LIEN_SUPPORT_CONTACT", "+254 20 000 0000")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = &spec.database_url {
            command.arg("--database-url").arg(url);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", spec.lien.display()))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening") && line.contains("addr=") {
                    let _ = ready_tx.send(());
                }
                let mut log = lines.lock().unwrap_or_else(|e| e.into_inner());
                if log.len() == LOG_LINES {
                    log.pop_front();
                }
                log.push_back(line);
            }
        });
        let mut server = Server { child, log };
        let started = Instant::now();
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(()) => return Ok(server),
                Err(_) if started.elapsed() > START_TIMEOUT => {
                    bail!(
                        "the server did not listen within {START_TIMEOUT:?}:\n{}",
                        server.log_tail()
                    )
                }
                Err(_) => {
                    if let Some(status) = server.child.try_wait()? {
                        // The reader thread may still be copying the last lines.
                        std::thread::sleep(Duration::from_millis(100));
                        bail!(
                            "the server exited ({status}) before listening:\n{}",
                            server.log_tail()
                        )
                    }
                }
            }
        }
    }

    /// Kills the server with SIGKILL (what `Child::kill` sends on Unix) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's last log lines.
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nobody listens on now (the kernel's pick); the server binds it shortly after.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}
