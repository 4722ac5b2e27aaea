//! Webhooks to financiers, following Standard Webhooks: the events ([`events`]), their
//! signatures ([`signature`]) and the delivery worker ([`run`], [`deliver_due`]).
//!
//! Invariant: an event is delivered only if the change it describes committed, and every
//! committed change's events are delivered (at least once; once in the ordinary case), in
//! order per device and endpoint. The events are written to the outbox in the change's own
//! transaction (see `lien_store::webhooks`), so a crash between the commit and the delivery only
//! delays it: the outbox survives, and whichever server runs next claims the delivery. A claim
//! lasts [`CLAIM_SECS`], longer than an attempt can take ([`Settings::webhook_timeout_secs`] is
//! capped below it), so two servers do not send the same event at once; if a server dies
//! after the receiver took an event but before recording it, the event is sent again after
//! the claim runs out, with the same `webhook-id`, which is how Standard Webhooks receivers
//! tell a repeat.
//!
//! Delivery runs on a task of its own, never in a request: a financier's API call or a
//! check-in never waits for a receiver. On SQLite its claims and outcomes are small writes on
//! the one write connection, between the requests' writes.
//!
//! [`Settings::webhook_timeout_secs`]: crate::config::Settings::webhook_timeout_secs

pub mod events;
pub mod signature;

use std::time::Duration;

use futures_util::StreamExt;
use jiff::SignedDuration;
use lien_store::{AttemptOutcome, ClaimedDelivery};
use tokio::sync::watch;

use crate::app::AppState;
use crate::clock::{from_micros, micros};
use crate::domain::rfc3339;

/// How long a claim holds before another server may take the delivery over.
pub const CLAIM_SECS: i64 = 60;

/// How many deliveries one pass claims at a time.
const CLAIM_BATCH: u32 = 64;

/// How many events one fan-out takes.
const FAN_OUT_BATCH: u32 = 500;

/// The waits after each failed attempt: 5 seconds, 5 minutes, 30 minutes, 2, 5, 10, 10, 14, 14
/// and 14 hours, about three days in all (Standard Webhooks' suggested schedule, stretched), each
/// with up to a fifth either way of jitter so that a receiver back from an outage is not hit by
/// every retry at once. After the last, the delivery is given up (and can be sent again by hand).
const RETRY_AFTER_SECS: [i64; 10] = [
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    10 * 3600,
    14 * 3600,
    14 * 3600,
    14 * 3600,
];

/// Runs until `stopping`: a pass every interval.
pub async fn run(state: AppState, mut stopping: watch::Receiver<bool>) {
    let interval = Duration::from_millis(state.settings.webhook_interval_ms);
    loop {
        if let Err(err) = deliver_due(&state).await {
            tracing::error!(error = format!("{err:#}"), "webhook pass failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = crate::app::until_stopped(&mut stopping) => break,
        }
    }
}

/// Fans new events out to their endpoints and makes every attempt due now; returns how many
/// attempts were made.
pub async fn deliver_due(state: &AppState) -> anyhow::Result<usize> {
    while state.store.fan_out_events(FAN_OUT_BATCH).await? == FAN_OUT_BATCH as usize {}
    let mut total = 0;
    loop {
        let now = state.clock.now();
        let claimed = state
            .store
            .claim_deliveries(
                micros(now),
                micros(now + SignedDuration::from_secs(CLAIM_SECS)),
                CLAIM_BATCH,
            )
            .await?;
        if claimed.is_empty() {
            return Ok(total);
        }
        total += claimed.len();
        let concurrency = state.settings.webhook_concurrency.max(1) as usize;
        let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(claimed)
            .map(|c| attempt(state, c))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for r in results {
            r?;
        }
    }
}

/// The body of an event: `type`, `timestamp` and `data`, with the device's `sequence` in the
/// data. Made from the stored event alone, so every attempt sends the same bytes.
pub fn body(event: &lien_store::StoredEvent) -> String {
    let mut data: serde_json::Value =
        serde_json::from_str(&event.event.payload).unwrap_or(serde_json::Value::Null);
    if let (Some(fields), Some(sequence)) = (data.as_object_mut(), event.sequence) {
        fields.insert("sequence".into(), sequence.into());
    }
    serde_json::json!({
        "type": event.event.event_type,
        "timestamp": rfc3339(from_micros(event.event.created_us)),
        "data": data,
    })
    .to_string()
}

/// One attempt: sends, then records what came of it.
async fn attempt(state: &AppState, claimed: ClaimedDelivery) -> anyhow::Result<()> {
    let ClaimedDelivery {
        event,
        endpoint,
        attempts,
    } = claimed;
    let now = state.clock.now();
    let timestamp = now.as_second();
    let body = body(&event);
    let id = &event.event.id;
    let now_us = micros(now);
    let mut signatures: Vec<String> = Vec::new();
    signatures.extend(signature::sign(&endpoint.secret, id, timestamp, &body));
    if let (Some(previous), Some(until)) =
        (&endpoint.previous_secret, endpoint.previous_secret_until_us)
        && until > now_us
    {
        signatures.extend(signature::sign(previous, id, timestamp, &body));
    }
    let sent = state
        .webhook_client
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signatures.join(" "))
        .body(body)
        .send()
        .await;
    let outcome = match sent {
        Ok(response) if response.status().is_success() => {
            AttemptOutcome::Delivered(response.status().as_u16())
        }
        Ok(response) if response.status() == reqwest::StatusCode::GONE => AttemptOutcome::Gone,
        Ok(response) => AttemptOutcome::Failed {
            status: Some(response.status().as_u16()),
            error: format!("the receiver answered {}", response.status()),
            next_attempt_us: retry_at(now_us, attempts),
        },
        Err(err) => AttemptOutcome::Failed {
            status: None,
            error: failure(&err),
            next_attempt_us: retry_at(now_us, attempts),
        },
    };
    match &outcome {
        AttemptOutcome::Delivered(_) => {
            state.metrics.webhooks_delivered.inc();
        }
        AttemptOutcome::Gone => {
            tracing::warn!(endpoint = %endpoint.id, "webhook endpoint answered 410 Gone; disabled");
        }
        AttemptOutcome::Failed { error, .. } => {
            state.metrics.webhook_failures.inc();
            tracing::info!(endpoint = %endpoint.id, event = %id, error, "webhook attempt failed");
        }
    }
    state
        .store
        .finish_delivery(&endpoint.id, id, micros(state.clock.now()), &outcome)
        .await?;
    Ok(())
}

/// What went wrong with a request that got no answer, in words for the delivery log (no URL:
/// it may carry the receiver's own secret).
fn failure(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "the receiver did not answer in time".to_string()
    } else if err.is_connect() {
        "could not connect to the receiver".to_string()
    } else if err.is_builder() {
        "the endpoint's URL cannot be requested".to_string()
    } else {
        "the request failed".to_string()
    }
}

/// When to try again after the attempt that followed `attempts` earlier ones; `None` once the
/// schedule has run out.
pub fn retry_at(now_us: i64, attempts: i64) -> Option<i64> {
    let wait = *RETRY_AFTER_SECS.get(usize::try_from(attempts).ok()?)?;
    // Up to a fifth either way.
    let spread = wait * 1_000_000 / 5;
    let mut byte = [0u8; 4];
    let jitter = match getrandom::fill(&mut byte) {
        Ok(()) => i64::from(u32::from_le_bytes(byte)) % (2 * spread + 1) - spread,
        Err(_) => 0,
    };
    Some(now_us + wait * 1_000_000 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_spread_over_about_three_days_then_stop() {
        let mut total = 0;
        for attempts in 0..10 {
            let at = retry_at(0, attempts).expect("retried");
            let wait = RETRY_AFTER_SECS[attempts as usize] * 1_000_000;
            assert!(
                (wait * 4 / 5..=wait * 6 / 5).contains(&at),
                "{attempts}: {at}"
            );
            total += wait;
        }
        assert_eq!(retry_at(0, 10), None);
        let days = total as f64 / 86_400e6;
        assert!((2.5..3.5).contains(&days), "{days}");
    }
}
