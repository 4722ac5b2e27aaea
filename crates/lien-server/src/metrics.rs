//! Prometheus metrics, served as text at `/metrics`.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::wire::DeviceStateJson;

/// The server's counters, gauges and histograms.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Check-ins answered.
    pub checkins: Counter,
    /// Devices that went into the locked state.
    pub locks: Counter,
    /// Devices that left the locked or restricted state.
    pub unlocks: Counter,
    /// Tokens signed, for enrollments and every change alike: counted in one place,
    /// [`crate::commands::evaluate_for_write`].
    pub tokens_signed: Counter,
    /// How late, in milliseconds, the scheduler's last batch was behind the oldest due time.
    pub scheduler_lag_ms: Gauge,
    /// Request latency in seconds.
    pub request_seconds: Histogram,
    /// Push channels open now.
    pub push_connections: Gauge,
    /// Tokens sent over push channels (the current token at connect included).
    pub tokens_pushed: Counter,
    /// Webhook deliveries the receiver took.
    pub webhooks_delivered: Counter,
    /// Webhook attempts that failed (to be retried or given up).
    pub webhook_failures: Counter,
    /// When the attestation status list in force was read (Unix seconds; 0: never).
    pub attestation_status_read: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("lien");
        let checkins = Counter::default();
        let locks = Counter::default();
        let unlocks = Counter::default();
        let tokens_signed = Counter::default();
        let scheduler_lag_ms = Gauge::default();
        let request_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 18));
        registry.register("checkins", "Device check-ins answered", checkins.clone());
        registry.register(
            "locks",
            "Devices that entered the locked state",
            locks.clone(),
        );
        registry.register(
            "unlocks",
            "Devices that left the locked or restricted state",
            unlocks.clone(),
        );
        registry.register(
            "tokens_signed",
            "Status tokens signed",
            tokens_signed.clone(),
        );
        registry.register(
            "scheduler_lag_milliseconds",
            "How far behind the oldest due evaluation the scheduler's last batch ran",
            scheduler_lag_ms.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "HTTP request latency",
            request_seconds.clone(),
        );
        let push_connections = Gauge::default();
        let tokens_pushed = Counter::default();
        registry.register(
            "push_connections",
            "Push channels open now",
            push_connections.clone(),
        );
        registry.register(
            "tokens_pushed",
            "Tokens sent over push channels",
            tokens_pushed.clone(),
        );
        let webhooks_delivered = Counter::default();
        let webhook_failures = Counter::default();
        registry.register(
            "webhooks_delivered",
            "Webhook deliveries the receiver took",
            webhooks_delivered.clone(),
        );
        registry.register(
            "webhook_failures",
            "Webhook attempts that failed",
            webhook_failures.clone(),
        );
        let attestation_status_read = Gauge::default();
        registry.register(
            "attestation_status_read_timestamp_seconds",
            "When the attestation status list in force was read (0: never)",
            attestation_status_read.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            attestation_status_read,
            webhooks_delivered,
            webhook_failures,
            push_connections,
            tokens_pushed,
            checkins,
            locks,
            unlocks,
            tokens_signed,
            scheduler_lag_ms,
            request_seconds,
        }
    }
}

impl Metrics {
    /// Counts a state change of a device.
    pub fn state_changed(&self, before: &DeviceStateJson, after: &DeviceStateJson) {
        if *after == DeviceStateJson::Locked && *before != DeviceStateJson::Locked {
            self.locks.inc();
        }
        if before.is_restricted() && !after.is_restricted() {
            self.unlocks.inc();
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}
