//! The HTTP client that posts webhooks, and what may be reached with it.
//!
//! Financiers' receivers are on the internet and speak HTTPS: certificates are checked by
//! rustls (on ring, see [`crate::tls`]) against the operating system's roots
//! (rustls-platform-verifier, which reqwest brings; an operator's private CA is added with
//! `webhook_extra_roots`), TLS 1.2 at least, no redirect followed.
//!
//! A URL naming this machine or a private network is refused when the endpoint is made, but
//! a public name can resolve to such an address by the time of the delivery (DNS rebinding, a
//! financier's own misconfiguration). So the address is checked again where it is used: the
//! client's resolver ([`PublicOnly`]) drops every address that is not public, and a URL
//! whose host is an address (which reqwest connects to without resolving) is checked before
//! the request ([`refused_target`]). Only `webhook_allow_http`, for development and tests,
//! lets the server post to itself or its network.

use std::error::Error;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::Settings;

/// The longest an attempt may take, whatever the settings say: a claim must outlive it (see
/// [`super::CLAIM_SECS`]).
pub const MAX_TIMEOUT_SECS: u64 = 30;

/// Builds the webhook client for `settings`, resolving names with `resolver` (the system's,
/// [`SystemResolver`], but for tests) and keeping only the public addresses it answers.
pub fn build(settings: &Settings, resolver: Arc<dyn Resolve>) -> anyhow::Result<reqwest::Client> {
    crate::tls::install_crypto_provider();
    let allow_local = settings.webhook_allow_http;
    let mut builder = reqwest::Client::builder()
        // No proxy from the environment (`HTTPS_PROXY` and the like): a proxy would resolve
        // and connect on the server's behalf, past the address checks below.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(
            settings.webhook_timeout_secs.clamp(1, MAX_TIMEOUT_SECS),
        ))
        .https_only(!allow_local)
        .tls_version_min(reqwest::tls::Version::TLS_1_2)
        .dns_resolver(Arc::new(PublicOnly {
            inner: resolver,
            allow_local,
        }));
    for path in &settings.webhook_extra_roots {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading webhook_extra_roots file {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
            format!(
                "webhook_extra_roots file {} holds no PEM certificates",
                path.display()
            )
        })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().context("building the webhook client")
}

/// Names resolved by the operating system (`getaddrinfo`, on tokio's blocking threads).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A name that resolved to no public address: the delivery is refused before connecting.
#[derive(Debug, thiserror::Error)]
#[error(
    "the endpoint's host resolves only to loopback, private or link-local addresses, which webhooks may not reach"
)]
pub struct NotPublic;

/// A resolver that keeps only the public addresses of another's answer (all of them when
/// `allow_local`).
struct PublicOnly {
    inner: Arc<dyn Resolve>,
    allow_local: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let answer = self.inner.resolve(name);
        let allow_local = self.allow_local;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = answer
                .await?
                .filter(|a| allow_local || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(NotPublic) as Box<dyn Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Why `url` may not be requested under these settings, before any request: plain `http`
/// when it is not allowed, or a host that is an address and not a public one (reqwest
/// connects to an address without asking the resolver). `None` when it may.
pub fn refused_target(url: &str, allow_local: bool) -> Option<String> {
    if allow_local {
        return None;
    }
    let Ok(url) = url::Url::parse(url) else {
        return Some("the endpoint's URL cannot be requested".to_string());
    };
    if url.scheme() != "https" {
        return Some("the endpoint's URL is not https, and plain http is not allowed".to_string());
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return None,
    };
    (!is_public(ip)).then(|| NotPublic.to_string())
}

/// Whether an address is on the internet at large: not loopback, private (RFC 1918, IPv6
/// unique local and the old site-local), shared (carrier-grade NAT), link-local (where cloud
/// metadata services answer), unspecified, broadcast, multicast or reserved (240/4), nor one of
/// IANA's special-purpose IPv4 blocks that reach no one's server (192.0.0/24, the benchmarking
/// 198.18/15); and an IPv6 address that carries an IPv4 one (mapped, the old compatible form,
/// 6to4, NAT64's well-known prefix) only if that IPv4 address is. NAT64's local-use prefix
/// (64:ff9b:1::/48) and Teredo (2001::/32), whose IPv4 address is an operator's or obscured,
/// are refused.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                public_v4(Ipv4Addr::new(a, b, c, d))
            };
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_v4(v4);
            }
            if s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
                // ::a.b.c.d, IPv4-compatible (deprecated, but a stack may still route it).
                return embedded(s[6], s[7]);
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return embedded(s[6], s[7]);
            }
            if s[0] == 0x2002 {
                return embedded(s[1], s[2]);
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0], s[1]) == (0x64, 0xff9b) // 64:ff9b:1::/48 and the rest of 64:ff9b::/32
                || (s[0], s[1]) == (0x2001, 0) // Teredo
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0)
        }
    }
}

fn public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || a == 0
        || a >= 240
        || (a == 100 && (b & 0xc0) == 64)
        || (a, b, c) == (192, 0, 0)
        || (a == 198 && (b & 0xfe) == 18))
}

/// What went wrong with a request that got no answer, in words for the delivery log (no URL:
/// it may carry the receiver's own secret).
pub fn failure(err: &reqwest::Error) -> String {
    for cause in causes(err) {
        if let Some(refused) = cause.downcast_ref::<NotPublic>() {
            return refused.to_string();
        }
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return match tls {
                rustls::Error::InvalidCertificate(why) => {
                    format!("the receiver's TLS certificate was refused: {why:?}")
                }
                other => format!("the TLS handshake with the receiver failed: {other}"),
            };
        }
    }
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

/// An error and its causes, looking inside I/O errors too: an `io::Error` made from another
/// error gives that error's *source* as its own, skipping the error itself (which is where
/// rustls's reason is).
fn causes<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |e: &&'a (dyn Error + 'static)| {
        let e: &'a (dyn Error + 'static) = *e;
        match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &'a (dyn Error + 'static)),
            None => e.source(),
        }
    })
    .take(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_on_the_internet_are_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.9",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "240.0.0.1",
            "250.1.2.3",
            "198.18.0.1",
            "198.19.255.254",
            "192.0.0.8",
            "::127.0.0.1",
            "::10.0.0.1",
            "2002:a9fe:a9fe::1",
            "2002:7f00:1::",
            "64:ff9b:1::a00:1",
            "64:ff9b:1::808:808",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "fec0::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "203.0.113.7",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2001:db8::1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "198.20.0.1",
            "192.0.1.1",
            "::8.8.8.8",
            "2002:808:808::1",
            "2001:4860::8888",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn an_address_in_the_url_is_checked_before_the_request() {
        let refused = |url| refused_target(url, false);
        assert!(refused("https://127.0.0.1:8443/x").is_some());
        assert!(refused("https://[::ffff:10.0.0.1]/x").is_some());
        assert!(refused("http://hooks.example.com/x").is_some());
        assert_eq!(refused("https://hooks.example.com/x"), None);
        assert_eq!(refused("https://203.0.113.7/x"), None);
        assert_eq!(refused_target("http://127.0.0.1/x", true), None);
    }
}
