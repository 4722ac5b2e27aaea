//! The load generator's HTTP/1.1: requests written as raw bytes over tokio's `TcpStream`, and
//! response heads read with `httparse`.
//!
//! Deliberately not a general client (hyper's, reqwest): the check-in benchmark's load shares
//! the CPUs with the server it measures, and whatever the generator spends per request is
//! spent on both sides of the ratio, which it narrows (BENCHMARKS.md, *How to read the
//! ratio*). One request in flight per connection, requests built before they are timed, and
//! responses with a Content-Length (what Lien and the bare responder send) keep that cost small
//! and the same as in the recorded runs. The push channels are raw for another reason: tens
//! of thousands of them must cost their process little more than a socket each.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail, ensure};
use lien_proto::device_api::sign_checkin;
use lien_proto::device_api::{CheckinResponse, PUSH_PATH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::setup::Device;

/// Headers a response head may have; Lien's have fewer than ten.
const MAX_HEADERS: usize = 32;

/// A keep-alive HTTP/1.1 connection, one request in flight.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects to `addr`.
    pub async fn open(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends one request whose answer must have `status`; returns the body. Otherwise fails
    /// with `failure`, the status and the body.
    pub async fn exchange_expecting(
        &mut self,
        request: &[u8],
        status: u16,
        failure: &str,
    ) -> Result<&[u8]> {
        let (got, body) = self.exchange(request).await?;
        anyhow::ensure!(
            got == status,
            "{failure}: {got} {}",
            String::from_utf8_lossy(body)
        );
        Ok(body)
    }

    /// Sends one request and reads its response: the status and the body.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<(u16, &[u8])> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let head = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            fill(&mut self.stream, &mut self.buf).await?;
        };
        let length = head
            .content_length
            .context("the response has no Content-Length")?;
        while self.buf.len() < head.len + length {
            fill(&mut self.stream, &mut self.buf).await?;
        }
        ensure!(
            self.buf.len() == head.len + length,
            "the server sent more than the response to one request"
        );
        Ok((head.status, &self.buf[head.len..]))
    }
}

/// Reads what has arrived on `stream` into `buf`.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<()> {
    let read = stream.read_buf(buf).await?;
    ensure!(read > 0, "the server closed the connection");
    Ok(())
}

/// What the load generator needs of a response head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    /// Its length, up to and including the empty line.
    len: usize,
    status: u16,
    content_length: Option<usize>,
}

/// The head at the start of `buf`, once it has arrived in full. A chunked response is refused
/// (no Content-Length to read the body by), except where the caller reads the stream itself.
fn parse_head(buf: &[u8]) -> Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = response
        .parse(buf)
        .context("the response head is not HTTP/1.1")?
    else {
        return Ok(None);
    };
    let status = response.code.context("a response head has a status")?;
    let mut content_length = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).ok();
            content_length = Some(
                value
                    .and_then(|v| v.trim().parse().ok())
                    .context("bad Content-Length")?,
            );
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            bail!(
                "the response uses Transfer-Encoding {:?}, which this client does not read",
                String::from_utf8_lossy(header.value)
            );
        }
    }
    Ok(Some(Head {
        len,
        status,
        content_length,
    }))
}

/// A POST of a JSON `body` to `path`, with the extra `headers` (each `name: value\r\n`).
pub fn post(path: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         {headers}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A request counter never used before: one count for all the simulated phones, since each
/// phone's counters need only increase, as a real phone's do (the server refuses a replay).
/// It follows the wall clock in microseconds, so the phones' child process (see `push`) goes
/// on above the counters this process used for the same devices moments before.
fn next_counter() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = u64::try_from(jiff::Timestamp::now().as_microsecond()).unwrap_or(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = last.max(now).saturating_add(1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// A signed device request to `path` carrying `body`, as `device`'s phone sends it.
fn device_request(device: &Device, path: &str, body: &str) -> Vec<u8> {
    let signature = sign_checkin(&device.credential, body.as_bytes());
    format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nx-lien-device: {}\r\nx-lien-signature: {signature}\r\n\r\n{body}",
        body.len(),
        device.id
    )
    .into_bytes()
}

/// A check-in request for `device`, sent at `sent_at`, signed, with no events.
pub fn checkin_request(device: &Device, sent_at: i64) -> Vec<u8> {
    let body = format!(
        r#"{{"sent_at":{sent_at},"counter":{},"applied_sequence":{},"events":[]}}"#,
        next_counter(),
        device.sequence
    );
    device_request(device, "/v1/device/checkin", &body)
}

/// A request opening `device`'s push channel, signed now.
fn push_request(device: &Device) -> Vec<u8> {
    let body = format!(
        r#"{{"sent_at":{},"counter":{},"applied_sequence":{}}}"#,
        jiff::Timestamp::now().as_second(),
        next_counter(),
        device.sequence
    );
    device_request(device, PUSH_PATH, &body)
}

/// The source address of connection `n`: connections are spread over 127.0.0.1 to
/// 127.0.0.8 so that their ephemeral ports never run out (about 28,000 per source address).
pub fn source(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (n % 8) as u8))
}

/// An open push channel, read without de-chunking: the server writes each event as one chunk,
/// so an event's `data:` line is never split by chunk framing, only by TCP reads.
pub struct PushConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl PushConn {
    /// Opens `device`'s push channel to `server` from the local address `local`.
    pub async fn open(local: IpAddr, server: SocketAddr, device: &Device) -> Result<PushConn> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(local, 0))?;
        let mut stream = socket.connect(server).await.with_context(|| {
            format!("connecting to {server} (if this is EMFILE, raise `ulimit -n`)")
        })?;
        stream.set_nodelay(true)?;
        stream.write_all(&push_request(device)).await?;
        let mut buf = Vec::with_capacity(1024);
        // The channel's body is chunked and never ends: only its head is parsed here, by hand
        // rather than by `parse_head`, which refuses a chunked response.
        let (len, status) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = response
                .parse(&buf)
                .context("the push channel's head is not HTTP/1.1")?
            {
                break (len, response.code);
            }
            fill(&mut stream, &mut buf).await?;
        };
        ensure!(
            status == Some(200),
            "the push channel was refused: {}",
            String::from_utf8_lossy(&buf[..len])
        );
        buf.drain(..len);
        Ok(PushConn { stream, buf })
    }

    /// The next pushed answer.
    pub async fn next(&mut self) -> Result<CheckinResponse> {
        loop {
            if let Some(start) = self.buf.windows(6).position(|w| w == b"data: ")
                && let Some(len) = self.buf[start..].iter().position(|&b| b == b'\n')
            {
                let line = &self.buf[start + 6..start + len];
                let answer = serde_json::from_slice(line).context("a pushed event's data")?;
                self.buf.drain(..start + len);
                return Ok(answer);
            }
            fill(&mut self.stream, &mut self.buf)
                .await
                .context("the push channel")?;
        }
    }

    /// The bare socket, all a phone keeps of an idle channel.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_head_is_read_once_complete() {
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n").unwrap(),
            None
        );
        let response = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(
            parse_head(response).unwrap(),
            Some(Head {
                len: 48,
                status: 401,
                content_length: Some(2)
            })
        );
    }

    #[test]
    fn a_chunked_response_is_refused_rather_than_misread() {
        let response = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(parse_head(response).is_err());
    }

    #[test]
    fn a_check_in_request_is_signed_and_sized() {
        let device = Device {
            id: "dev_1".into(),
            credential: [7; 32],
            sequence: 3,
            state: "active".into(),
        };
        let request = checkin_request(&device, 1_700_000_000);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let httparse::Status::Complete(len) = parsed.parse(&request).unwrap() else {
            panic!("the request head is incomplete");
        };
        assert_eq!(parsed.path, Some("/v1/device/checkin"));
        let body = &request[len..];
        let header = |name: &str| {
            let header = parsed.headers.iter().find(|h| h.name == name).unwrap();
            std::str::from_utf8(header.value).unwrap().to_string()
        };
        assert_eq!(header("content-length"), body.len().to_string());
        assert_eq!(header("x-lien-signature"), sign_checkin(&[7; 32], body));
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(body["sent_at"], 1_700_000_000);
        assert_eq!(body["applied_sequence"], 3);
        assert_eq!(body["events"], serde_json::json!([]));
    }
}
