//! Latency distributions, in microseconds, kept in an HDR histogram: three significant
//! digits (exact below 2 ms, within 0.1% above), in a few tens of KiB however many requests a
//! phase sends, and merged across connections and phases without sorting.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies recorded so far.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Latencies {
        // Resizes itself to the longest latency recorded, so recording never fails.
        Latencies(Histogram::new(3).expect("three significant digits are supported"))
    }
}

impl Latencies {
    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // `record` grows the histogram to fit (`saturating_record` would not: it clamps to
        // the range so far); only a value beyond any range fails, and is clamped.
        if self.0.record(micros).is_err() {
            self.0.saturating_record(micros);
        }
    }

    /// Adds another set's latencies.
    pub fn add(&mut self, other: &Latencies) {
        // Both resize themselves, so the only failure, a value out of range, cannot happen.
        let _ = self.0.add(&other.0);
    }

    /// How many were recorded.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// The latency at quantile `q` (0.5 for the median), in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    /// The longest, in milliseconds; 0 when empty.
    pub fn max_ms(&self) -> f64 {
        self.0.max() as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_read_in_milliseconds_across_merged_sets() {
        let mut a = Latencies::default();
        let mut b = Latencies::default();
        for ms in 1..=50 {
            a.record(Duration::from_millis(ms));
        }
        for ms in 51..=100 {
            b.record(Duration::from_millis(ms));
        }
        a.add(&b);
        assert_eq!(a.len(), 100);
        // Within the histogram's 0.1%.
        assert!(
            (a.quantile_ms(0.5) - 50.0).abs() < 0.1,
            "{}",
            a.quantile_ms(0.5)
        );
        assert!(
            (a.quantile_ms(0.99) - 99.0).abs() < 0.1,
            "{}",
            a.quantile_ms(0.99)
        );
        assert!((a.max_ms() - 100.0).abs() < 0.1, "{}", a.max_ms());
        assert_eq!(Latencies::default().quantile_ms(0.5), 0.0);
    }
}
