//! Webhooks to financiers, following Standard Webhooks: the events ([`events`]), their
//! signatures ([`signature`]), the HTTP client ([`client`]) and the delivery worker ([`run`],
//! [`deliver_due`]).
//!
//! Invariant: an event is delivered only if the change it describes committed, and every
//! committed change's events are delivered (at least once; once in the ordinary case), in
//! order per device and endpoint. The events are written to the outbox in the change's own
//! transaction (see `lien_store::webhooks`), so a crash between the commit and the delivery only
//! delays it: the outbox survives, and whichever server runs next claims the delivery.
//!
//! A claim lasts [`CLAIM_SECS`], and a pass claims only as many deliveries as it has free
//! attempt slots, so every claimed delivery is attempted at once and its attempt ends within the
//! client's timeout (at most [`client::MAX_TIMEOUT_SECS`], half the claim): a claim outlives its
//! attempt, and two servers do not send the same event at once. Should a pass stall past its
//! claim all the same (a paused process), the claim names its holder and the store records
//! only the holder's outcome, so the late pass cannot overwrite what a server that took the
//! delivery over recorded. If a server dies after the receiver took an event but before
//! recording it, the event is sent again after the claim runs out, with the same `webhook-id`,
//! which is how Standard Webhooks receivers tell a repeat.
//!
//! One slow receiver does not hold up the others: a pass keeps at most
//! `webhook_endpoint_concurrency` attempts in flight per endpoint and
//! `webhook_financier_concurrency` per financier (counted in the store, so across passes and
//! servers), and claims again as soon as any attempt ends, so while a hanging receiver's
//! few attempts wait for their timeout, the other slots keep serving everyone else.
//!
//! Delivery runs on a task of its own, never in a request: a financier's API call or a
//! check-in never waits for a receiver. On SQLite its claims and outcomes are small writes on
//! the one write connection, between the requests' writes. The same task prunes what is older
//! than `webhook_retention_days` ([`prune`]).

pub mod client;
pub mod events;
pub mod signature;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use lien_store::{AttemptOutcome, Claim, ClaimedDelivery};
use tokio::sync::watch;

use crate::app::AppState;
use crate::clock::{from_micros, micros};
use crate::domain::rfc3339;

/// How long a claim holds before another server may take the delivery over: twice the
/// longest attempt.
pub const CLAIM_SECS: i64 = 2 * client::MAX_TIMEOUT_SECS as i64;

/// How many events one fan-out takes.
const FAN_OUT_BATCH: u32 = 500;

/// How many old events one pruning transaction deletes (with their deliveries): small enough
/// not to hold SQLite's one writer for long.
const PRUNE_BATCH: u32 = 500;

/// How often the worker prunes.
const PRUNE_EVERY: SignedDuration = SignedDuration::from_secs(60);

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

/// Runs until `stopping`: a pass every interval, and pruning every minute.
pub async fn run(state: AppState, mut stopping: watch::Receiver<bool>) {
    let interval = Duration::from_millis(state.settings.webhook_interval_ms);
    let mut pruned_at: Option<Timestamp> = None;
    loop {
        if let Err(err) = deliver_due(&state).await {
            tracing::error!(error = format!("{err:#}"), "webhook pass failed");
        }
        let now = state.clock.now();
        if pruned_at.is_none_or(|at| now.duration_since(at) >= PRUNE_EVERY) {
            pruned_at = Some(now);
            if let Err(err) = prune(&state).await {
                tracing::error!(error = format!("{err:#}"), "webhook pruning failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = crate::app::until_stopped(&mut stopping) => break,
        }
    }
}

/// Deletes the events older than `webhook_retention_days` whose deliveries are over, with
/// their delivery log, in transactions of [`PRUNE_BATCH`] events until none is left, and
/// forgets rotated secrets whose overlap has ended; returns how many events went.
pub async fn prune(state: &AppState) -> anyhow::Result<usize> {
    let now = state.clock.now();
    let days = i64::from(state.settings.webhook_retention_days.max(1));
    let before = now - SignedDuration::from_hours(24 * days);
    let mut total = 0;
    loop {
        let deleted = state
            .store
            .prune_webhooks(micros(now), micros(before), PRUNE_BATCH)
            .await?;
        total += deleted;
        if deleted < PRUNE_BATCH as usize {
            return Ok(total);
        }
    }
}

/// Fans new events out to their endpoints and makes every attempt due now with the server's
/// webhook client; returns how many attempts were made.
pub async fn deliver_due(state: &AppState) -> anyhow::Result<usize> {
    deliver_due_with(state, &state.webhook_client).await
}

/// [`deliver_due`] with another client (tests give one a resolver of their own).
pub async fn deliver_due_with(state: &AppState, client: &reqwest::Client) -> anyhow::Result<usize> {
    while state.store.fan_out_events(FAN_OUT_BATCH).await? == FAN_OUT_BATCH as usize {}
    // This pass's claims are its own: a claim taken over by another server is not recorded
    // by this one.
    let holder = crate::input::new_id("whp")?;
    let slots = state.settings.webhook_concurrency.max(1);
    let per_endpoint = state.settings.webhook_endpoint_concurrency.max(1);
    let per_financier = state.settings.webhook_financier_concurrency.max(1);
    // Attempts run as tasks of their own, so that each goes on (and finishes its write)
    // while this loop waits for the store to claim more: on SQLite an attempt left unpolled
    // inside its write would hold the one write connection the claim needs.
    let mut in_flight = tokio::task::JoinSet::new();
    let mut total = 0;
    let mut more = true;
    loop {
        // Fill the free slots; stop asking once the store has nothing more to give, until an
        // attempt ends (which can free a device's next event or an endpoint's share).
        while more && in_flight.len() < slots as usize {
            let now = state.clock.now();
            let claimed = state
                .store
                .claim_deliveries(Claim {
                    now_us: micros(now),
                    until_us: micros(now + SignedDuration::from_secs(CLAIM_SECS)),
                    limit: slots - in_flight.len() as u32,
                    per_endpoint,
                    per_financier,
                    holder: &holder,
                })
                .await?;
            if claimed.is_empty() {
                more = false;
            }
            total += claimed.len();
            for c in claimed {
                let (state, client, holder) = (state.clone(), client.clone(), holder.clone());
                in_flight.spawn(async move { attempt(&state, &client, c, &holder).await });
            }
        }
        match in_flight.join_next().await {
            Some(done) => {
                done??;
                more = true;
            }
            None => return Ok(total),
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

/// One attempt: sends, then records what came of it (if `holder` still holds the claim).
async fn attempt(
    state: &AppState,
    client: &reqwest::Client,
    claimed: ClaimedDelivery,
    holder: &str,
) -> anyhow::Result<()> {
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
    let outcome = match client::refused_target(&endpoint.url, state.settings.webhook_allow_http) {
        Some(error) => AttemptOutcome::Failed {
            status: None,
            error,
            next_attempt_us: retry_at(now_us, attempts),
        },
        None => {
            let sent = client
                .post(&endpoint.url)
                .header("content-type", "application/json")
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signatures.join(" "))
                .body(body)
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => {
                    AttemptOutcome::Delivered(response.status().as_u16())
                }
                Ok(response) if response.status() == reqwest::StatusCode::GONE => {
                    AttemptOutcome::Gone
                }
                Ok(response) => AttemptOutcome::Failed {
                    status: Some(response.status().as_u16()),
                    error: format!("the receiver answered {}", response.status()),
                    next_attempt_us: retry_at(now_us, attempts),
                },
                Err(err) => AttemptOutcome::Failed {
                    status: None,
                    error: client::failure(&err),
                    next_attempt_us: retry_at(now_us, attempts),
                },
            }
        }
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
    let recorded = state
        .store
        .finish_delivery(
            &endpoint.id,
            id,
            holder,
            micros(state.clock.now()),
            &outcome,
        )
        .await?;
    if !recorded {
        tracing::warn!(
            endpoint = %endpoint.id,
            event = %id,
            "webhook claim was taken over before the attempt ended; its outcome is not recorded"
        );
    }
    Ok(())
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
