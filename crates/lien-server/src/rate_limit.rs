//! Per-client limits on the public endpoints: a token bucket per client IP, in memory.
//!
//! IMEIs are enumerable (a TAC and a serial), so the public IMEI check's only protection is
//! that nobody can ask fast. Each server keeps its own buckets; behind several servers the
//! effective rate is that many times the setting, which is still a bound. Time comes from the
//! server's clock, so tests refill a bucket by moving the clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ErrorBody;

/// Buckets beyond this many are dropped (the full ones first): memory stays bounded whatever
/// the number of clients.
const MAX_CLIENTS: usize = 100_000;

/// Token buckets, one per client: by default its IP address; hello also keys one by IMEI.
pub struct RateLimiter<K = IpAddr> {
    per_minute: u32,
    burst: u32,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens left, in millionths of a request.
    micro_tokens: i64,
    /// When they were counted.
    at_us: i64,
}

/// A refused request: try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Seconds until one request is allowed again.
    pub retry_after_secs: u64,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `per_minute` requests a minute after a first `burst`; 0 per minute switches it off.
    pub fn new(per_minute: u32, burst: u32) -> RateLimiter<K> {
        RateLimiter {
            per_minute,
            burst: burst.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `client`'s bucket at `now_us`, or says when to come back.
    pub fn check(&self, client: K, now_us: i64) -> Result<(), Limited> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = i64::from(self.burst) * 1_000_000;
        // Tokens regained per microsecond, in millionths: per_minute / 60 s.
        let refill = |elapsed_us: i64| elapsed_us.max(0) * i64::from(self.per_minute) / 60;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            buckets.retain(|_, b| b.micro_tokens + refill(now_us - b.at_us) < capacity);
            if buckets.len() >= MAX_CLIENTS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            micro_tokens: capacity,
            at_us: now_us,
        });
        let tokens = (bucket.micro_tokens + refill(now_us - bucket.at_us)).min(capacity);
        bucket.at_us = now_us.max(bucket.at_us);
        if tokens >= 1_000_000 {
            bucket.micro_tokens = tokens - 1_000_000;
            Ok(())
        } else {
            bucket.micro_tokens = tokens;
            let missing = 1_000_000 - tokens;
            // Microseconds until the missing part has refilled, rounded up to whole seconds.
            let wait_us = missing * 60 / i64::from(self.per_minute);
            Err(Limited {
                retry_after_secs: (wait_us as u64).div_ceil(1_000_000).max(1),
            })
        }
    }
}

/// The client's IP as the connection shows it (the unspecified address when the router runs
/// without connection info, as in-process tests do). A proxy in front makes every client one:
/// run the public endpoints without one, or put the limit in the proxy.
pub fn client_ip(extensions: &Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

impl IntoResponse for Limited {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: "rate_limited".into(),
            message: format!(
                "too many requests from your address; try again in {} seconds",
                self.retry_after_secs
            ),
        };
        let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_secs),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_then_a_retry_after() {
        let limiter = RateLimiter::<IpAddr>::new(6, 2); // one request every 10 s after two at once
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limiter.check(ip, 0).is_ok());
        assert!(limiter.check(ip, 0).is_ok());
        assert_eq!(
            limiter.check(ip, 0),
            Err(Limited {
                retry_after_secs: 10
            })
        );
        assert!(limiter.check(other, 0).is_ok(), "buckets are per client");
        assert_eq!(
            limiter.check(ip, 4_000_000),
            Err(Limited {
                retry_after_secs: 6
            })
        );
        assert!(limiter.check(ip, 10_000_000).is_ok());
        assert!(limiter.check(ip, 10_000_000).is_err());
    }

    #[test]
    fn zero_per_minute_is_no_limit() {
        let limiter = RateLimiter::<IpAddr>::new(0, 1);
        for _ in 0..100 {
            assert!(limiter.check(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).is_ok());
        }
    }
}
