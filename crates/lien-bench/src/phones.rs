//! The push benchmarks' phones, in a child process: this binary again, started with
//! `--phones-for` and handed the devices on its standard input. The server's process then
//! holds only the server's side of each connection, one file descriptor rather than two, and
//! its resident set is the server's alone.
//!
//! The phones are minimal: each holds one push connection (see `http::PushConn`), verifies
//! every pushed token against the server's pinned key exactly as the agent does
//! (`PinnedKeys::verify`), and counts the unlock as applied when a verified token of a newer
//! sequence says neither locked nor restricted.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lien_proto::{PinnedKeys, TokenState};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::http::{PushConn, source};
use crate::setup::Device;

/// Verifies a token as a phone does; returns whether it unlocks (sequence above `sequence`,
/// neither locked nor restricted).
pub fn unlocks(pinned: &PinnedKeys, device: &Device, token: &str) -> Result<bool> {
    let bytes = STANDARD.decode(token).context("a token is base64")?;
    let claims = pinned
        .verify(&bytes, &device.id, device.sequence as u64)
        .map_err(|e| anyhow::anyhow!("a token was refused: {}", e.code()))?;
    Ok(claims.sequence > device.sequence as u64
        && !matches!(claims.state, TokenState::Locked | TokenState::Restricted))
}

/// The phones' process, seen from the server's.
pub struct Phones {
    child: std::process::Child,
    input: Option<std::process::ChildStdin>,
    /// Taken by [`Phones::report_unlocks`].
    output: Option<std::io::BufReader<std::process::ChildStdout>>,
}

impl Phones {
    /// Starts this binary as the phones' process of the benchmark `command` (its name and
    /// any arguments) and hands it the fleet.
    pub fn spawn(server: SocketAddr, fleet: &[Device], command: &[&str]) -> Result<Phones> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let exe = std::env::current_exe().context("finding this binary")?;
        let mut child = Command::new(exe)
            .args(command)
            .arg("--phones-for")
            .arg(server.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the phones' process")?;
        let input = child.stdin.take().context("the phones' standard input")?;
        let output =
            std::io::BufReader::new(child.stdout.take().context("the phones' standard output")?);
        let mut phones = Phones {
            child,
            input: Some(input),
            output: Some(output),
        };
        let input = phones
            .input
            .as_mut()
            .context("the phones' standard input")?;
        let mut writer = std::io::BufWriter::new(input);
        for device in fleet {
            writeln!(
                writer,
                "{} {} {}",
                device.id,
                STANDARD.encode(device.credential),
                device.sequence
            )?;
        }
        writeln!(writer)?;
        writer.flush()?;
        drop(writer);
        let loaded = phones.line()?;
        ensure!(
            loaded == format!("loaded {}", fleet.len()),
            "the phones' process said {loaded:?}"
        );
        Ok(phones)
    }

    /// The next line the phones' process prints.
    fn line(&mut self) -> Result<String> {
        use std::io::BufRead;
        let output = self
            .output
            .as_mut()
            .context("the phones' output is read elsewhere")?;
        let mut line = String::new();
        if output.read_line(&mut line)? == 0 {
            let status = self.child.wait()?;
            bail!("the phones' process ended ({status})");
        }
        Ok(line.trim_end().to_string())
    }

    /// Opens every connection; returns how long that took, in seconds.
    pub fn open(&mut self) -> Result<f64> {
        use std::io::Write;
        let input = self
            .input
            .as_mut()
            .context("the phones' process is stopped")?;
        writeln!(input, "open")?;
        input.flush()?;
        let opened = self.line()?;
        opened
            .strip_prefix("opened in ")
            .and_then(|secs| secs.parse().ok())
            .with_context(|| format!("the phones' process said {opened:?}"))
    }

    /// Sets `applied[i]` when the phones' process says phone `i` applied an unlock, on a
    /// thread of its own, so that the time is taken as soon as the line comes. The thread ends
    /// with the process's output, or at the first line it does not understand.
    pub fn report_unlocks(
        &mut self,
        applied: Arc<Vec<OnceLock<Instant>>>,
    ) -> Result<std::thread::JoinHandle<Result<()>>> {
        let mut output = self
            .output
            .take()
            .context("the phones' output is already read")?;
        Ok(std::thread::spawn(move || {
            use std::io::BufRead;
            let mut line = String::new();
            while output.read_line(&mut line)? > 0 {
                let at = Instant::now();
                let index: usize = line
                    .trim_end()
                    .strip_prefix("unlocked ")
                    .and_then(|i| i.parse().ok())
                    .with_context(|| format!("the phones' process said {line:?}"))?;
                let slot = applied.get(index).context("a phone index out of range")?;
                let _ = slot.set(at);
                line.clear();
            }
            Ok(())
        }))
    }

    /// Closes every connection: the phones' process ends at the end of its input.
    pub fn stop(&mut self) -> Result<()> {
        drop(self.input.take());
        let status = self.child.wait()?;
        ensure!(status.success(), "the phones' process failed ({status})");
        Ok(())
    }
}

impl Drop for Phones {
    fn drop(&mut self) {
        // On an early return the child is still running: end it rather than leave it.
        if self.input.take().is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The phones' process: reads devices from standard input (one `id credential sequence` line
/// each, then an empty line), says `loaded N`, waits for `open`, opens a push channel per
/// device and reads its first token, says `opened in S`, and runs until its input ends.
/// Meanwhile, with `pinned` (`payment-to-unlock`), every phone verifies what is pushed to it
/// and the process says `unlocked I` as soon as phone `I` has a verified unlock; without it
/// (`idle-connections`) the phones keep only their sockets.
pub fn phones_process(server: SocketAddr, pinned: Option<PinnedKeys>) -> Result<()> {
    use std::io::BufRead;
    let mut lines = std::io::stdin().lock().lines();
    let mut fleet = Vec::new();
    for line in lines.by_ref() {
        let line = line?;
        if line.is_empty() {
            break;
        }
        let mut fields = line.split(' ');
        let (Some(id), Some(credential), Some(sequence)) =
            (fields.next(), fields.next(), fields.next())
        else {
            bail!("a device line has three fields: {line:?}");
        };
        let credential = STANDARD
            .decode(credential)
            .ok()
            .and_then(|c| <[u8; 32]>::try_from(c).ok())
            .context("a credential is 32 bytes in base64")?;
        fleet.push(Device {
            id: id.to_string(),
            credential,
            sequence: sequence.parse().context("a sequence")?,
            state: String::new(),
        });
    }
    println!("loaded {}", fleet.len());
    match lines.next().transpose()? {
        Some(line) if line == "open" => {}
        _ => return Ok(()),
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let opened = Instant::now();
    let conns = runtime.block_on(async {
        let mut conns = Vec::with_capacity(fleet.len());
        for (i, device) in fleet.iter().enumerate() {
            let mut conn = PushConn::open(source(i), server, device).await?;
            // The current token comes first; a paid-for phone must not have its unlock yet.
            let first = conn.next().await?;
            if let Some(pinned) = &pinned {
                ensure!(
                    !unlocks(pinned, device, &first.token)?,
                    "phone {i} started unlocked"
                );
            }
            conns.push(conn);
        }
        anyhow::Ok(conns)
    })?;
    println!("opened in {:.3}", opened.elapsed().as_secs_f64());
    let Some(pinned) = pinned else {
        // Each phone keeps only its socket, until the server's process has measured and
        // closes our input.
        let streams: Vec<TcpStream> = conns.into_iter().map(PushConn::into_stream).collect();
        for line in lines {
            line?;
        }
        drop(streams);
        return Ok(());
    };
    // The phones report their unlocks until our input ends, which a thread of its own waits
    // for. Stdin's buffer is the process's, so a new lock there reads on where this one stopped.
    drop(lines);
    let (input_ended, mut ended) = tokio::sync::oneshot::channel::<Result<()>>();
    std::thread::spawn(move || {
        let read = std::io::stdin().lines().try_for_each(|line| line.map(drop));
        let _ = input_ended.send(read.map_err(Into::into));
    });
    runtime.block_on(async {
        let pinned = Arc::new(pinned);
        let fleet = Arc::new(fleet);
        let (unlocked, mut heard) = tokio::sync::mpsc::unbounded_channel::<Result<usize>>();
        let mut phones = JoinSet::new();
        for (i, mut conn) in conns.into_iter().enumerate() {
            let (pinned, fleet, unlocked) = (pinned.clone(), fleet.clone(), unlocked.clone());
            phones.spawn(async move {
                let outcome = async {
                    loop {
                        let answer = conn.next().await?;
                        if unlocks(&pinned, &fleet[i], &answer.token)? {
                            return Ok(i);
                        }
                    }
                };
                let _ = unlocked.send(outcome.await);
                // Keep the connection until the process ends, as a phone would.
                std::future::pending::<()>().await;
            });
        }
        loop {
            tokio::select! {
                read = &mut ended => return read?,
                Some(phone) = heard.recv() => println!("unlocked {}", phone?),
            }
        }
    })
}
