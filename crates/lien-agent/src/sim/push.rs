//! A phone's push channel over HTTP: opens `POST /v1/device/push`, reads its server-sent
//! events, and reconnects with exponential backoff and full jitter when it drops.
//!
//! Full jitter (a delay drawn uniformly below the current backoff) is what keeps a server
//! restart from turning into a thundering herd: the phones that all lost their channel at the
//! same instant come back spread over the whole first backoff, and those that fail again spread
//! over twice as long.

use std::time::Duration;

use lien_proto::device_api::{CheckinResponse, PUSH_EVENT, PUSH_PATH};

use crate::agent::{SignedCheckin, TransportError};
use crate::entropy::{Entropy, below};
use crate::sim::transport::{refused, signed_post};

/// Reconnection delays: drawn uniformly below a backoff that starts at `first` and doubles
/// after each failed attempt up to `max`; a channel that delivered a token resets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushBackoff {
    /// The first backoff, e.g. 2 s.
    pub first: Duration,
    /// The cap, e.g. 5 minutes.
    pub max: Duration,
}

impl Default for PushBackoff {
    fn default() -> PushBackoff {
        PushBackoff {
            first: Duration::from_secs(2),
            max: Duration::from_secs(300),
        }
    }
}

/// One push channel and its reconnection state.
pub struct PushChannel {
    client: reqwest::Client,
    base: String,
    response: Option<reqwest::Response>,
    /// Bytes read but not yet a whole event.
    buffer: Vec<u8>,
    policy: PushBackoff,
    backoff: Duration,
    entropy: Box<dyn Entropy>,
    connects: u64,
    /// When the next attempt to open is due, once drawn (see [`PushChannel::retry_at`]).
    retry_at: Option<tokio::time::Instant>,
}

impl PushChannel {
    /// A channel to `base` (e.g. `http://127.0.0.1:8080`), not yet open. Its client has no
    /// overall request timeout: the response is meant to last.
    pub fn new(base: &str, policy: PushBackoff, entropy: Box<dyn Entropy>) -> PushChannel {
        let client = super::client_builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("a client with only a connect timeout builds");
        PushChannel {
            client,
            base: base.trim_end_matches('/').to_string(),
            response: None,
            buffer: Vec::new(),
            policy,
            backoff: policy.first,
            entropy,
            connects: 0,
            retry_at: None,
        }
    }

    /// Whether the channel is open.
    pub fn is_open(&self) -> bool {
        self.response.is_some()
    }

    /// How many times the channel was opened.
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// Drops the connection (the phone lost the network, say).
    pub fn close(&mut self) {
        self.response = None;
        self.buffer.clear();
    }

    /// How long to wait before the next attempt, with jitter; the backoff then doubles.
    pub fn next_delay(&mut self) -> Duration {
        let bound = self.backoff.as_millis() as u64;
        let delay = Duration::from_millis(below(&mut *self.entropy, bound + 1));
        self.backoff = (self.backoff * 2).min(self.policy.max);
        delay
    }

    /// When to try to open the channel next: drawn once with [`PushChannel::next_delay`] and
    /// kept until [`PushChannel::attempted`], so that a caller whose wait is cancelled and
    /// starts again waits for the same instant.
    pub fn retry_at(&mut self) -> tokio::time::Instant {
        if let Some(at) = self.retry_at {
            return at;
        }
        let at = tokio::time::Instant::now() + self.next_delay();
        self.retry_at = Some(at);
        at
    }

    /// An attempt to open was made (whatever came of it): the next draws a new delay.
    pub fn attempted(&mut self) {
        self.retry_at = None;
    }

    /// Starts the backoff over, e.g. when the phone is back on the network.
    pub fn reset_backoff(&mut self) {
        self.backoff = self.policy.first;
        self.retry_at = None;
    }

    /// Opens the channel with a signed request.
    pub async fn open(&mut self, request: &SignedCheckin) -> Result<(), TransportError> {
        self.close();
        let response = signed_post(&self.client, format!("{}{PUSH_PATH}", self.base), request)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| TransportError::Unreachable(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(refused(status, text));
        }
        self.connects += 1;
        self.response = Some(response);
        Ok(())
    }

    /// The next pushed answer. `Ok(None)` means the channel ended (it is then closed);
    /// an error means it broke.
    pub async fn next(&mut self) -> Result<Option<CheckinResponse>, TransportError> {
        loop {
            if let Some(answer) = self.take_event()? {
                // A delivered token shows the channel works: the next drop starts over.
                self.backoff = self.policy.first;
                return Ok(Some(answer));
            }
            let Some(response) = self.response.as_mut() else {
                return Ok(None);
            };
            match response.chunk().await {
                Ok(Some(bytes)) => self.buffer.extend_from_slice(&bytes),
                Ok(None) => {
                    self.close();
                    return Ok(None);
                }
                Err(err) => {
                    self.close();
                    return Err(TransportError::Unreachable(err.to_string()));
                }
            }
        }
    }

    /// Takes one whole token event from the buffer, skipping comments and other events.
    fn take_event(&mut self) -> Result<Option<CheckinResponse>, TransportError> {
        while let Some(end) = find_blank_line(&self.buffer) {
            let block: Vec<u8> = self.buffer.drain(..end.0).collect();
            self.buffer.drain(..end.1 - end.0);
            let text = String::from_utf8_lossy(&block);
            if let Some(data) = parse_event(&text) {
                return serde_json::from_str(&data)
                    .map(Some)
                    .map_err(|e| TransportError::BadAnswer(e.to_string()));
            }
        }
        Ok(None)
    }
}

/// The position of the first blank line (the end of an event) and of what follows it.
fn find_blank_line(buffer: &[u8]) -> Option<(usize, usize)> {
    (0..buffer.len()).find_map(|i| {
        if buffer[i..].starts_with(b"\n\n") {
            Some((i, i + 2))
        } else if buffer[i..].starts_with(b"\r\n\r\n") {
            Some((i, i + 4))
        } else {
            None
        }
    })
}

/// The data of a token event, per the SSE format: `event:` and `data:` fields, one optional
/// space after the colon, several data lines joined by newlines, comments (`:`) ignored.
fn parse_event(block: &str) -> Option<String> {
    let mut name = "message".to_string();
    let mut data: Option<String> = None;
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = value.to_string(),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            _ => {}
        }
    }
    if name == PUSH_EVENT { data } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn events_are_parsed_and_comments_skipped() {
        assert_eq!(
            parse_event("event: token\ndata: {\"a\":1}"),
            Some("{\"a\":1}".into())
        );
        assert_eq!(parse_event(":keep-alive"), None);
        assert_eq!(parse_event("event: other\ndata: x"), None);
    }

    #[test]
    fn reconnect_delays_are_jittered_below_a_doubling_cap() {
        let policy = PushBackoff {
            first: Duration::from_secs(2),
            max: Duration::from_secs(16),
        };
        let mut channel = PushChannel::new(
            "http://127.0.0.1:9",
            policy,
            Box::new(SeededEntropy::new(3)),
        );
        let bounds = [2, 4, 8, 16, 16, 16];
        let delays: Vec<Duration> = bounds.iter().map(|_| channel.next_delay()).collect();
        for (delay, bound) in delays.iter().zip(bounds) {
            assert!(
                *delay <= Duration::from_secs(bound),
                "{delay:?} > {bound} s"
            );
        }
        // Drawn, not fixed: a herd of phones does not come back in step.
        let mut other = PushChannel::new(
            "http://127.0.0.1:9",
            policy,
            Box::new(SeededEntropy::new(4)),
        );
        let others: Vec<Duration> = bounds.iter().map(|_| other.next_delay()).collect();
        assert_ne!(delays, others);
    }
}
