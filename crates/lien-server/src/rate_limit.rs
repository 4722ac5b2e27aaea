//! Per-client limits on the public endpoints, in memory: governor's GCRA (a token bucket kept as
//! one "theoretical arrival time" per client), keyed by client, driven by the server's clock.
//!
//! IMEIs are enumerable (a TAC and a serial), so the public IMEI check's only protection is
//! that nobody can ask fast. Each server keeps its own limits; behind several servers the
//! effective rate is that many times the setting, which is still a bound. Time comes from the
//! server's [`Clock`](crate::clock::Clock), so tests refill a bucket by moving the clock.
//!
//! **Who is a client.** An IPv4 address, or an IPv6 /64 ([`ClientKey`]): one subscriber line or
//! one host gets a whole /64, so keying by the full IPv6 address would hand anyone 2^64
//! buckets. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a dual-stack socket reports IPv4
//! peers) is that IPv4 address. Behind a reverse proxy the address comes from
//! [`crate::client_addr`].
//!
//! **Bounded memory that never resets anyone.** The table holds at most `max_clients` entries
//! (a few megabytes at [`MAX_CLIENTS`]). Entries leave it only through governor's
//! `retain_recent`, which drops exactly those whose bucket has refilled completely: such an
//! entry is indistinguishable from no entry, so dropping it gives nobody a single request more.
//! It runs once a minute of the server's clock, and, at most once a second, when the table is
//! full. A client first seen while the table is still full after that is not given an entry
//! of its own, and no entry is evicted to make room: it shares one overflow bucket with every
//! other such newcomer. So a flood of new addresses (a /48 holds 65,536 /64s) can slow down
//! other *new* clients until the table drains, but it can never reset or loosen the limit of a
//! client already in the table, which is what the earlier "clear the table when full" did.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use governor::Quota;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::ShrinkableKeyedStateStore;

use crate::clock::{Clock, micros};
use crate::error::ApiError;

/// How many clients one limiter tracks at most.
pub const MAX_CLIENTS: usize = 100_000;

/// How often (by the server's clock) refilled buckets are dropped from the table.
const SWEEP_EVERY_US: i64 = 60_000_000;

/// How often, at most, a full table is swept again: a sweep walks the whole table under its
/// lock, so a flood must not make every request pay for one.
const FULL_SWEEP_EVERY_US: i64 = 1_000_000;

/// Whom a per-address limit counts: an IPv4 address, or the /64 network of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 address (also one written as an IPv4-mapped IPv6 address).
    V4(Ipv4Addr),
    /// The top 64 bits of an IPv6 address: its /64 network.
    V6Net(u64),
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4),
                None => ClientKey::V6Net((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

/// The server's clock as governor's: instants are the time since the Unix epoch (clamped at
/// the epoch), so moving the server's clock moves the limits.
#[derive(Clone)]
pub struct ServerClock(Arc<dyn Clock>);

impl governor::clock::Clock for ServerClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_micros(u64::try_from(micros(self.0.now())).unwrap_or(0))
    }
}

/// A refused request: try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Seconds until one request is allowed again.
    pub retry_after_secs: u64,
}

type Governor<K> = governor::RateLimiter<K, BoundedStore<K>, ServerClock, NoOpMiddleware<Duration>>;

/// A keyed limit: `per_minute` requests a minute after a first `burst`, per client (by default
/// a [`ClientKey`]; hello also keys one by IMEI, and status-code look-ups by API key).
pub struct RateLimiter<K = ClientKey>
where
    K: Hash + Eq + Clone,
{
    /// `None` when switched off (0 per minute).
    limiter: Option<Governor<K>>,
    /// When refilled buckets were last dropped (Unix microseconds of the server's clock).
    swept_us: AtomicI64,
    /// The most clients with an entry of their own.
    max_clients: usize,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `per_minute` requests a minute after a first `burst`; 0 per minute switches it off.
    pub fn new(per_minute: u32, burst: u32, clock: Arc<dyn Clock>) -> RateLimiter<K> {
        RateLimiter::bounded(per_minute, burst, clock, MAX_CLIENTS)
    }

    /// [`RateLimiter::new`] tracking at most `max_clients` clients (see the module's comment).
    pub fn bounded(
        per_minute: u32,
        burst: u32,
        clock: Arc<dyn Clock>,
        max_clients: usize,
    ) -> RateLimiter<K> {
        let now_us = micros(clock.now());
        let limiter = NonZeroU32::new(per_minute).map(|rate| {
            let quota = Quota::per_minute(rate)
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
            governor::RateLimiter::new(quota, BoundedStore::new(max_clients), ServerClock(clock))
        });
        RateLimiter {
            limiter,
            swept_us: AtomicI64::new(now_us),
            max_clients: max_clients.max(1),
        }
    }

    /// Takes one request from `client`'s allowance, or says when to come back.
    pub fn check(&self, client: K) -> Result<(), Limited> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        self.sweep_if_due(limiter);
        limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()));
            Limited {
                retry_after_secs: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
            }
        })
    }

    /// How many clients have an entry of their own.
    pub fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }

    /// Drops the refilled buckets once a minute, or once a second while the table is full.
    /// One caller sweeps; the others go on.
    fn sweep_if_due(&self, limiter: &Governor<K>) {
        let now_us = micros(limiter.clock().0.now());
        let swept_us = self.swept_us.load(Ordering::Relaxed);
        // A clock moved back (tests do) counts as time passed, so sweeps never stop for long.
        let since = now_us.abs_diff(swept_us);
        let due = since >= SWEEP_EVERY_US.unsigned_abs()
            || (since >= FULL_SWEEP_EVERY_US.unsigned_abs() && limiter.len() >= self.max_clients);
        if due
            && self
                .swept_us
                .compare_exchange(swept_us, now_us, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            limiter.retain_recent();
        }
    }
}

/// governor's state store for [`RateLimiter`]: one arrival time per client in a `HashMap`
/// behind a mutex (the checks are a hash look-up each), at most `max_clients` of them, and the
/// overflow bucket shared by clients that came while the table was full.
pub struct BoundedStore<K> {
    max_clients: usize,
    table: Mutex<Table<K>>,
}

struct Table<K> {
    /// Each client's theoretical arrival time, in governor's nanoseconds since the limiter
    /// started.
    clients: HashMap<K, u64>,
    /// The overflow bucket's.
    overflow: Option<u64>,
}

impl<K> BoundedStore<K> {
    fn new(max_clients: usize) -> BoundedStore<K> {
        BoundedStore {
            max_clients: max_clients.max(1),
            table: Mutex::new(Table {
                clients: HashMap::new(),
                overflow: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table<K>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut table = self.lock();
        if let Some(tat) = table.clients.get_mut(key) {
            let (outcome, next) = f(Some(Nanos::new(*tat)))?;
            *tat = next.as_u64();
            return Ok(outcome);
        }
        if table.clients.len() < self.max_clients {
            let (outcome, next) = f(None)?;
            table.clients.insert(key.clone(), next.as_u64());
            return Ok(outcome);
        }
        let (outcome, next) = f(table.overflow.map(Nanos::new))?;
        table.overflow = Some(next.as_u64());
        Ok(outcome)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below = drop_below.as_u64();
        let mut table = self.lock();
        table.clients.retain(|_, tat| *tat > drop_below);
        if table.overflow.is_some_and(|tat| tat <= drop_below) {
            table.overflow = None;
        }
    }

    fn shrink_to_fit(&self) {
        self.lock().clients.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.lock().clients.len()
    }

    fn is_empty(&self) -> bool {
        self.lock().clients.is_empty()
    }
}

impl IntoResponse for Limited {
    fn into_response(self) -> Response {
        self.respond("too many requests from your address")
    }
}

impl Limited {
    /// The 429, with Retry-After, saying `what` was too much.
    pub fn respond(self, what: &str) -> Response {
        self.error(what).into_response()
    }

    /// The same as an [`ApiError`], for a command to return.
    pub fn error(self, what: &str) -> ApiError {
        ApiError::RateLimited {
            what: what.to_string(),
            retry_after_secs: self.retry_after_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::{SignedDuration, Timestamp};

    use super::*;
    use crate::clock::ManualClock;

    fn clock() -> ManualClock {
        ManualClock::new("2026-01-10T09:00:00Z".parse::<Timestamp>().unwrap())
    }

    fn key(ip: &str) -> ClientKey {
        ClientKey::from(ip.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn a_burst_then_the_rate_then_a_retry_after() {
        let clock = clock();
        // One request every 10 s after two at once.
        let limiter = RateLimiter::<ClientKey>::new(6, 2, Arc::new(clock.clone()));
        let ip = key("192.0.2.1");
        let other = key("192.0.2.2");
        assert!(limiter.check(ip).is_ok());
        assert!(limiter.check(ip).is_ok());
        assert_eq!(
            limiter.check(ip),
            Err(Limited {
                retry_after_secs: 10
            })
        );
        assert!(limiter.check(other).is_ok(), "buckets are per client");
        clock.advance(SignedDuration::from_secs(4));
        assert_eq!(
            limiter.check(ip),
            Err(Limited {
                retry_after_secs: 6
            })
        );
        clock.advance(SignedDuration::from_secs(6));
        assert!(limiter.check(ip).is_ok());
        assert!(limiter.check(ip).is_err());
    }

    #[test]
    fn zero_per_minute_is_no_limit() {
        let limiter = RateLimiter::<ClientKey>::new(0, 1, Arc::new(clock()));
        for _ in 0..100 {
            assert!(limiter.check(key("127.0.0.1")).is_ok());
        }
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_eq!(
            key("2001:db8:1:2::1"),
            ClientKey::V6Net(0x2001_0db8_0001_0002)
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_ne!(key("2001:db8:1:2::1"), key("2002:db8:1:2::1"));

        // Rotating through one /64 buys nothing; the next /64 has its own allowance.
        let limiter = RateLimiter::<ClientKey>::new(6, 3, Arc::new(clock()));
        for host in 1..=3 {
            assert!(limiter.check(key(&format!("2001:db8:1:2::{host}"))).is_ok());
        }
        assert!(limiter.check(key("2001:db8:1:2::4")).is_err());
        assert!(limiter.check(key("2001:db8:1:2:abcd::")).is_err());
        assert!(limiter.check(key("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn an_ipv4_mapped_address_is_the_ipv4_address() {
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_eq!(
            key("::ffff:192.0.2.7"),
            ClientKey::V4(Ipv4Addr::new(192, 0, 2, 7))
        );
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"), "IPv4 is per address");
        let limiter = RateLimiter::<ClientKey>::new(6, 1, Arc::new(clock()));
        assert!(limiter.check(key("192.0.2.7")).is_ok());
        assert!(limiter.check(key("::ffff:192.0.2.7")).is_err());
    }

    #[test]
    fn a_full_table_never_resets_a_client_in_it() {
        let clock = clock();
        let limiter = RateLimiter::<ClientKey>::bounded(6, 2, Arc::new(clock.clone()), 10);
        let active = key("192.0.2.1");
        assert!(limiter.check(active).is_ok());
        assert!(limiter.check(active).is_ok());
        assert!(limiter.check(active).is_err());

        // A thousand new /64s, some seconds apart: more than the table holds.
        let mut refused = 0;
        for i in 0..1000u64 {
            if i % 100 == 0 {
                clock.advance(SignedDuration::from_millis(500));
            }
            let newcomer = ClientKey::V6Net(0x2001_0db8_0000_0000 + i);
            refused += usize::from(limiter.check(newcomer).is_err());
            assert!(limiter.tracked() <= 10, "the table stays bounded");
        }
        // The clients in the table kept their entries, so the active one is still limited,
        // 5 s into its 10 s wait; the newcomers that found the table full shared one bucket.
        assert_eq!(
            limiter.check(active),
            Err(Limited {
                retry_after_secs: 5
            })
        );
        assert!(
            refused >= 980,
            "newcomers shared the overflow bucket: {refused} refused"
        );

        // Once buckets have refilled, a sweep drops them and a newcomer gets its own entry.
        clock.advance(SignedDuration::from_secs(30));
        assert!(limiter.check(key("198.51.100.1")).is_ok());
        assert!(limiter.check(key("198.51.100.1")).is_ok());
        assert!(limiter.check(key("198.51.100.1")).is_err());
        assert!(limiter.tracked() <= 2, "refilled buckets were dropped");
    }

    #[test]
    fn refilled_buckets_are_dropped_once_a_minute() {
        let clock = clock();
        let limiter = RateLimiter::<ClientKey>::new(6, 2, Arc::new(clock.clone()));
        for i in 0..50u64 {
            assert!(limiter.check(ClientKey::V6Net(i)).is_ok());
        }
        assert_eq!(limiter.tracked(), 50);
        clock.advance(SignedDuration::from_secs(61));
        assert!(limiter.check(key("192.0.2.1")).is_ok());
        assert_eq!(limiter.tracked(), 1, "only the new client is left");
    }
}
