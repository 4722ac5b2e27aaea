//! The client's address, for the per-client limits: the connection's peer, or, behind a
//! reverse proxy Lien was told to trust, the address that proxy reports in `X-Forwarded-For`.
//!
//! `X-Forwarded-For` is written by whoever sends the request, so it is believed only as far
//! as trusted hands wrote it: only when the peer is a trusted proxy (`trusted_proxies`), and
//! then only its right-most address that is not itself a trusted proxy. Each proxy appends
//! the address it received the request from, so that is the address the outermost trusted
//! proxy saw; everything to its left was written by the client and may be made up. A request
//! straight from an untrusted peer is that peer, whatever its header says, so a client cannot
//! pick its own address and with it a fresh allowance.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A reverse proxy whose `X-Forwarded-For` is believed: one address (`10.0.0.5`) or a network
/// in CIDR notation (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(IpNet);

impl TrustedProxy {
    /// Whether `ip` is this proxy, or in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(text: &str) -> Result<TrustedProxy, String> {
        let text = text.trim();
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(TrustedProxy(net.trunc()));
        }
        text.parse::<IpAddr>()
            .map(|ip| TrustedProxy(IpNet::from(canonical(ip))))
            .map_err(|_| {
                format!(
                    "trusted_proxies: {text:?} is neither an IP address nor a CIDR network \
                     (e.g. 10.0.0.5 or 10.0.0.0/8)"
                )
            })
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for TrustedProxy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TrustedProxy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TrustedProxy, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The client's address as the limits see it (the unspecified address when the router runs
/// without connection info, as in-process tests do).
pub fn client_ip(extensions: &Extensions, headers: &HeaderMap, trusted: &[TrustedProxy]) -> IpAddr {
    let Some(ConnectInfo(peer)) = extensions.get::<ConnectInfo<SocketAddr>>() else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    if trusted.is_empty() {
        return canonical(peer.ip());
    }
    let forwarded =
        headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|value| match value.to_str() {
                Ok(text) => text.split(',').collect::<Vec<_>>(),
                // Not text: nothing in it can be read as an address.
                Err(_) => vec![""],
            });
    resolve(peer.ip(), forwarded, trusted)
}

/// The client of a request from `peer` carrying the `X-Forwarded-For` entries `forwarded`, in
/// order (several header lines read as one list): see the module's comment. An entry that is
/// not an address ends the walk at the trusted proxy that passed it on.
pub fn resolve<'a>(
    peer: IpAddr,
    forwarded: impl IntoIterator<Item = &'a str>,
    trusted: &[TrustedProxy],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.contains(ip));
    let mut client = canonical(peer);
    if !is_trusted(client) {
        return client;
    }
    let hops: Vec<&str> = forwarded.into_iter().collect();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    // Every hop is a trusted proxy: the left-most is the nearest thing to a client.
    client
}

/// One `X-Forwarded-For` entry: an address, bracketed or not, with or without a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })?;
    Some(canonical(ip))
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn proxies_are_addresses_or_networks() {
        let trusted = proxies(&[
            "10.0.0.5",
            "192.168.0.0/16",
            "fd00::/8",
            "::ffff:172.16.0.1",
        ]);
        assert!(trusted[0].contains(ip("10.0.0.5")));
        assert!(!trusted[0].contains(ip("10.0.0.6")));
        assert!(trusted[1].contains(ip("192.168.44.1")));
        assert!(
            trusted[1].contains(ip("::ffff:192.168.44.1")),
            "v4-mapped is v4"
        );
        assert!(trusted[2].contains(ip("fd12::1")));
        assert!(trusted[3].contains(ip("172.16.0.1")));
        let err = "10.0.0.0/33".parse::<TrustedProxy>().unwrap_err();
        assert!(
            err.contains("trusted_proxies") && err.contains("10.0.0.0/33"),
            "{err}"
        );
        assert!("proxy.example".parse::<TrustedProxy>().is_err());
        assert_eq!(
            "10.1.2.3/8".parse::<TrustedProxy>().unwrap().to_string(),
            "10.0.0.0/8"
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(ip("203.0.113.9"), ["198.51.100.1"], &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve(ip("203.0.113.9"), ["10.0.0.1"], &trusted),
            ip("203.0.113.9")
        );
        // No proxies trusted: the header is never read.
        assert_eq!(
            resolve(ip("10.0.0.1"), ["198.51.100.1"], &[]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        // The client made up the first entry; the proxy appended the address it saw.
        assert_eq!(
            resolve(ip("10.0.0.1"), ["1.2.3.4", " 203.0.113.9"], &trusted),
            ip("203.0.113.9")
        );
        // Two proxies deep, over several header lines, IPv6, with ports and brackets.
        assert_eq!(
            resolve(
                ip("10.0.0.1"),
                [
                    "1.2.3.4",
                    "[2001:db8:1:2::7]:4431",
                    "2001:db8:ffff::1",
                    "10.2.3.4"
                ],
                &trusted
            ),
            ip("2001:db8:1:2::7")
        );
        assert_eq!(
            resolve(ip("::ffff:10.0.0.1"), ["203.0.113.9:5000"], &trusted),
            ip("203.0.113.9")
        );
        // Nothing forwarded, or only proxies: the nearest thing to a client.
        assert_eq!(resolve(ip("10.0.0.1"), [], &trusted), ip("10.0.0.1"));
        assert_eq!(
            resolve(ip("10.0.0.1"), ["10.9.9.9"], &trusted),
            ip("10.9.9.9")
        );
        // Junk that a trusted proxy passed on ends the walk at that proxy.
        assert_eq!(
            resolve(
                ip("10.0.0.1"),
                ["203.0.113.9", "unknown", "10.0.0.2"],
                &trusted
            ),
            ip("10.0.0.2")
        );
    }

    #[test]
    // figment's test jail returns figment's own error type, which is large; that is its API.
    #[allow(clippy::result_large_err)]
    fn the_setting_is_read_from_the_file_and_the_environment() {
        use crate::config::Settings;
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "lien.toml",
                "trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\"]\n",
            )?;
            let settings: Settings = Settings::figment(None).extract()?;
            assert_eq!(
                settings.trusted_proxies,
                proxies(&["10.0.0.0/8", "192.0.2.1"])
            );
            jail.set_env("LIEN_TRUSTED_PROXIES", "[fd00::/8, 127.0.0.1]");
            let settings: Settings = Settings::figment(None).extract()?;
            assert_eq!(
                settings.trusted_proxies,
                proxies(&["fd00::/8", "127.0.0.1"])
            );
            jail.set_env("LIEN_TRUSTED_PROXIES", "[proxy.example]");
            let err = Settings::figment(None).extract::<Settings>().unwrap_err();
            assert!(err.to_string().contains("proxy.example"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_header_is_read_only_from_a_trusted_peer() {
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(SocketAddr::from(([203, 0, 113, 9], 40000))));
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
        let trusted = proxies(&["127.0.0.1"]);
        assert_eq!(
            client_ip(&extensions, &headers, &trusted),
            ip("203.0.113.9")
        );

        extensions.insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        headers.append("x-forwarded-for", "2001:db8::1, 192.0.2.1".parse().unwrap());
        assert_eq!(client_ip(&extensions, &headers, &trusted), ip("192.0.2.1"));
        assert_eq!(client_ip(&extensions, &headers, &[]), ip("127.0.0.1"));
        assert_eq!(
            client_ip(&Extensions::new(), &headers, &trusted),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
    }
}
