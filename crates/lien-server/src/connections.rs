//! Who may hold a connection, and for how long: the limits applied before hyper sees a request.
//!
//! Every open connection costs a descriptor and some memory, and each phone's push channel is one,
//! so connections are a resource a stranger could take from the phones. Three limits keep them:
//!
//! - **A total** (`max_connections`), never more than the open-file limit allows; one more is
//!   answered 503 and closed.
//! - **A share per client** (`max_connections_per_client`, keyed like the rate limits: an IPv4
//!   address or an IPv6 /64), so one client cannot take the total. Phones behind a carrier's NAT
//!   share an address, hence a generous default; a trusted reverse proxy carries everyone and is
//!   not counted as one client.
//! - **Progress on writes**: a client that stops reading its answers (for example one that
//!   pipelines requests and never reads) is cut off once a write has waited the request timeout,
//!   instead of holding its slot forever. Reading has its own limits (the header timeout in
//!   hyper, the body deadline in `deadline`).

use std::collections::HashMap;
use std::future::Future as _;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use crate::client_addr::TrustedProxy;
use crate::rate_limit::ClientKey;

/// Descriptors kept back from the connection total for the database, the data files and logs.
const RESERVED_DESCRIPTORS: u64 = 256;

/// The connection limits of one listening address.
#[derive(Clone)]
pub struct ConnectionLimits(Arc<Limits>);

struct Limits {
    total: Arc<Semaphore>,
    /// Refused connections being answered (see [`ConnectionLimits::refusal_slot`]).
    refusing: Arc<Semaphore>,
    per_client: u32,
    open: Mutex<HashMap<ClientKey, u32>>,
    uncounted: Vec<TrustedProxy>,
    write_stall: Duration,
}

/// The most refused connections answered at once.
pub const MAX_REFUSING: usize = 64;

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is taken.
    Full,
    /// This client already holds its share.
    ClientFull,
}

/// A taken slot; dropping it frees the slot and the client's share.
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
    client: Option<(ConnectionLimits, ClientKey)>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some((limits, key)) = self.client.take() {
            let mut open = limits.0.open.lock().expect("connection counts");
            if let Some(count) = open.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&key);
                }
            }
        }
    }
}

impl ConnectionLimits {
    /// At most `total` connections, `per_client` of them from one client (0: no share limit,
    /// and the trusted proxies are not counted), and writes that wait no longer than `write_stall`.
    pub fn new(
        total: u32,
        per_client: u32,
        uncounted: Vec<TrustedProxy>,
        write_stall: Duration,
    ) -> ConnectionLimits {
        ConnectionLimits(Arc::new(Limits {
            total: Arc::new(Semaphore::new(total.max(1) as usize)),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            per_client,
            open: Mutex::new(HashMap::new()),
            uncounted,
            write_stall,
        }))
    }

    /// Limits for a private address with few clients (the metrics listener, a benchmark).
    pub fn only_total(total: u32, write_stall: Duration) -> ConnectionLimits {
        ConnectionLimits::new(total, 0, Vec::new(), write_stall)
    }

    /// Takes a slot for a connection from `peer`, or says why not.
    pub fn admit(&self, peer: IpAddr) -> Result<Admitted, Refusal> {
        let limits = &self.0;
        let slot = limits
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Full)?;
        if limits.per_client == 0 || limits.uncounted.iter().any(|proxy| proxy.contains(peer)) {
            return Ok(Admitted {
                _slot: slot,
                client: None,
            });
        }
        let key = ClientKey::from(peer);
        let mut open = limits.open.lock().expect("connection counts");
        let count = open.entry(key).or_insert(0);
        if *count >= limits.per_client {
            return Err(Refusal::ClientFull);
        }
        *count += 1;
        Ok(Admitted {
            _slot: slot,
            client: Some((self.clone(), key)),
        })
    }

    /// A place among the refused connections being answered, or `None` when [`MAX_REFUSING`]
    /// are: then the connection is closed at once, unanswered. Each answer holds its socket for
    /// up to a second, so one address reconnecting thousands of times a second would otherwise
    /// hold as many descriptors, beyond the few kept spare, and the server's own files and
    /// database connections could not open.
    pub fn refusal_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.0.refusing.clone().try_acquire_owned().ok()
    }

    /// `stream`, cut off once a write to it has waited longer than these limits allow.
    pub fn guard(&self, stream: TcpStream) -> WriteStallGuard<TcpStream> {
        WriteStallGuard::new(stream, self.0.write_stall)
    }
}

/// The connection total the open-file limit allows: raises the soft limit to the hard one where
/// it is lower, and lowers `wanted` (with a warning) if even that leaves too few descriptors.
/// Without this, accepting fails once descriptors run out, before the 503 could be sent.
pub fn fit_to_descriptor_limit(wanted: u32) -> u32 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), hard) = (limit.current, limit.maximum)
        && hard.is_none_or(|hard| hard > current)
    {
        let raised = rustix::process::Rlimit {
            current: hard,
            maximum: hard,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    let Some(descriptors) = limit.current else {
        return wanted;
    };
    let allowed = descriptors.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    if u64::from(wanted) <= allowed {
        return wanted;
    }
    let fitted = u32::try_from(allowed).unwrap_or(u32::MAX);
    tracing::warn!(
        max_connections = wanted,
        open_file_limit = descriptors,
        serving = fitted,
        "max_connections is more than the open-file limit allows; serving fewer \
         (raise the limit, e.g. LimitNOFILE in a systemd unit)"
    );
    fitted
}

/// Answers a refused connection with a 503 and closes it. The request is read (a little, for a
/// second) before closing, because closing a socket with unread data resets it, and the reset can
/// destroy the answer before the client reads it.
pub async fn refuse(mut stream: TcpStream, why: Refusal) {
    use tokio::io::AsyncReadExt as _;
    let message = match why {
        Refusal::Full => "too many open connections; try again in 5 seconds",
        Refusal::ClientFull => {
            "too many open connections from your address; close some and try again"
        }
    };
    let body = format!(r#"{{"error":"busy","message":"{message}"}}"#);
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // A client that does not read cannot hold the task: the answer fits a socket buffer, and
    // the whole exchange is abandoned after a second anyway.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        let mut left = 64 * 1024usize;
        while left > 0 {
            let read = stream.read(&mut sink).await?;
            if read == 0 {
                break;
            }
            left = left.saturating_sub(read);
        }
        io::Result::Ok(())
    })
    .await;
}

/// A stream whose writes may wait at most `limit` for the client to take data; past that, the
/// write fails with `TimedOut` and hyper closes the connection.
///
/// The timer exists only while a write waits, so an idle connection (a push channel) costs
/// nothing more.
pub struct WriteStallGuard<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteStallGuard<S> {
    /// Guards `inner`.
    pub fn new(inner: S, limit: Duration) -> WriteStallGuard<S> {
        WriteStallGuard {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Passes `progress` on, starting the stall timer when it is pending and clearing it once
    /// it is not; fails once the timer has run out.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        progress: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if progress.is_ready() {
            self.stalled = None;
            return progress;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped taking its answer",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStallGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStallGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, progress)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, progress)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, progress)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn one_client_cannot_take_more_than_its_share() {
        let limits = ConnectionLimits::new(10, 2, Vec::new(), Duration::from_secs(30));
        let first = limits.admit(ip("192.0.2.1")).unwrap();
        let _second = limits.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(
            limits.admit(ip("192.0.2.1")).err(),
            Some(Refusal::ClientFull)
        );
        // Addresses inside one IPv6 /64 are one client; another client still gets in.
        let _v6 = limits.admit(ip("2001:db8:1:2::1")).unwrap();
        let _v6b = limits.admit(ip("2001:db8:1:2::ffff")).unwrap();
        assert_eq!(
            limits.admit(ip("2001:db8:1:2:aaaa::1")).err(),
            Some(Refusal::ClientFull)
        );
        assert!(limits.admit(ip("192.0.2.2")).is_ok());
        // A closed connection gives its share back.
        drop(first);
        assert!(limits.admit(ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn the_total_holds_whoever_connects_and_a_trusted_proxy_is_not_one_client() {
        let proxy: TrustedProxy = "10.0.0.0/8".parse().unwrap();
        let limits = ConnectionLimits::new(3, 1, vec![proxy], Duration::from_secs(30));
        let _a = limits.admit(ip("10.0.0.5")).unwrap();
        let _b = limits.admit(ip("10.0.0.5")).unwrap();
        let _c = limits.admit(ip("192.0.2.9")).unwrap();
        assert_eq!(limits.admit(ip("10.0.0.5")).err(), Some(Refusal::Full));
        assert_eq!(limits.admit(ip("192.0.2.10")).err(), Some(Refusal::Full));
    }

    #[test]
    fn counts_of_closed_clients_are_forgotten() {
        let limits = ConnectionLimits::new(100, 5, Vec::new(), Duration::from_secs(30));
        for i in 0..50u8 {
            drop(limits.admit(IpAddr::from([192, 0, 2, i])).unwrap());
        }
        assert!(limits.0.open.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_write_the_client_never_takes_times_out() {
        // A duplex pipe with a 16-byte buffer stands for a socket whose peer stopped reading.
        let (near, _far) = tokio::io::duplex(16);
        let mut guarded = WriteStallGuard::new(near, Duration::from_millis(200));
        let started = std::time::Instant::now();
        let written = guarded.write_all(&[7u8; 64]).await;
        let err = written.expect_err("the write must not wait forever");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_slow_but_steady_reader_is_not_cut_off() {
        use tokio::io::AsyncReadExt as _;
        let (near, mut far) = tokio::io::duplex(16);
        // Every read comes long before the limit, though the whole answer takes longer than it.
        let mut guarded = WriteStallGuard::new(near, Duration::from_secs(2));
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            while got.len() < 1024 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let n = far.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        guarded.write_all(&[7u8; 1024]).await.unwrap();
        assert_eq!(reader.await.unwrap(), vec![7u8; 1024]);
    }

    #[test]
    fn only_so_many_refusals_are_answered_at_once() {
        let limits = ConnectionLimits::only_total(1, Duration::from_secs(1));
        let held: Vec<_> = (0..MAX_REFUSING)
            .map(|_| limits.refusal_slot().expect("a place"))
            .collect();
        assert!(
            limits.refusal_slot().is_none(),
            "the next is closed unanswered"
        );
        drop(held);
        assert!(limits.refusal_slot().is_some(), "places come back");
    }
}
