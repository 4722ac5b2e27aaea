//! The push channel: a phone's long-lived connection that carries each new token as soon as
//! it is committed (see [`crate::push`] for where the tokens come from).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::Stream;
use lien_proto::device_api::{CheckinResponse, PUSH_EVENT, PushRequest};

use super::phone::{Authenticated, authenticate};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::push::{Subscription, subscribe};

/// How often an idle channel carries a comment line, so that the phone (and any NAT on the way)
/// sees it alive. Mobile networks commonly drop idle TCP flows after a few minutes.
const KEEP_ALIVE: Duration = Duration::from_secs(45);

/// `POST /v1/device/push`: opens the device's push channel.
#[utoipa::path(
    post,
    path = "/v1/device/push",
    tag = "phone",
    params(
        ("X-Lien-Device" = String, Header, description = "The device id from the hello."),
        ("X-Lien-Signature" = String, Header, description = "Base64 HMAC-SHA256 of the exact body bytes under the device credential from the hello."),
    ),
    request_body = PushRequest,
    responses(
        (status = 200, description = "A stream of server-sent events that stays open. Each event named `token` carries a check-in answer (`CheckinResponse`) as its data: the current token at once, then every newly signed token as soon as its change commits. Comment lines keep the connection alive. The stream ends when the server stops or the device is bound again (a new credential); reconnect with backoff and jitter, and keep checking in as usual.", content_type = "text/event-stream", body = CheckinResponse),
        (status = 401, description = "A header is missing, the signature does not verify, the device has not said hello, `sent_at` is outside the server's window, or the counter was used before (a replay).", body = ErrorBody),
        (status = 404, description = "No such device.", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB; nothing was read.", body = ErrorBody),
    )
)]
pub async fn push(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let body = body?;
    let Authenticated {
        device_id, view, ..
    } = authenticate::<PushRequest>(&state, &headers, &body).await?;
    let subscription = subscribe(&state, &device_id).await?;
    let channel = Channel {
        closing: state.push.closing(),
        state,
        subscription,
        generation: view.binding_generation,
        sent: None,
    };
    let stream = futures_util::stream::unfold(channel, |mut channel| async move {
        let event = channel.next().await?;
        Some((Ok(event), channel))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// One open channel.
struct Channel {
    state: AppState,
    subscription: Subscription,
    closing: tokio::sync::watch::Receiver<bool>,
    /// The binding generation the channel was opened with.
    generation: i64,
    /// The sequence last sent.
    sent: Option<i64>,
}

impl Channel {
    /// The next event to send, or `None` to end the channel.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if *self.closing.borrow() {
                return None;
            }
            let (generation, sequence, token) = {
                let latest = self.subscription.receiver().borrow_and_update();
                (latest.generation, latest.sequence, latest.token.clone())
            };
            // A new binding revokes the credential that opened this channel.
            if generation != self.generation {
                return None;
            }
            if let Some(token) = token
                && self.sent.is_none_or(|sent| sequence > sent)
            {
                self.sent = Some(sequence);
                return Some(self.event(&token));
            }
            tokio::select! {
                changed = self.subscription.receiver().changed() => changed.ok()?,
                _ = self.closing.changed() => return None,
            }
        }
    }

    fn event(&self, token: &[u8]) -> Event {
        let now = self.state.clock.now().as_second();
        let answer = CheckinResponse {
            token: STANDARD.encode(token),
            server_time: now,
            next_checkin_at: now + self.state.settings.checkin_interval_secs as i64,
            contact: None,
        };
        self.state.metrics.tokens_pushed.inc();
        Event::default()
            .event(PUSH_EVENT)
            .json_data(&answer)
            .unwrap_or_else(|_| Event::default().comment("unserialisable token"))
    }
}
