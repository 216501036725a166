//! Who is on the other end: the client's address, as sign-in throttling,
//! connection caps and logs must see it.
//!
//! Behind a reverse proxy every connection comes from the proxy, so the
//! client's address must be read from `X-Forwarded-For`, but only when the
//! connection really comes from a proxy we trust: anyone else can write any
//! `X-Forwarded-For` they like. From a trusted peer, the client is the
//! right-most address in the header that is not itself a trusted proxy
//! (each proxy appends the address it saw; everything left of the first
//! untrusted hop was written by the client and proves nothing).
//!
//! This module never reads `Forwarded` or `X-Real-IP`: the shipped nginx
//! configuration sets `X-Forwarded-For`, and accepting several headers only
//! widens what a misconfigured proxy lets through.

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr},
    str::FromStr,
};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Networks whose connections are reverse proxies (`127.0.0.1`,
/// `10.0.0.0/8`, `::1`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// One `--trusted-proxies` entry: an address or a CIDR network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet(pub IpNet);

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an IP address or network (such as 127.0.0.1, ::1 or 10.0.0.0/8)")]
pub struct InvalidProxyNet(String);

impl FromStr for ProxyNet {
    type Err = InvalidProxyNet;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        s.parse::<IpNet>()
            .map(|net| ProxyNet(net.trunc()))
            .or_else(|_| s.parse::<IpAddr>().map(|ip| ProxyNet(IpNet::from(ip))))
            .map_err(|_| InvalidProxyNet(s.to_owned()))
    }
}

impl fmt::Display for ProxyNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl TrustedProxies {
    pub fn new(nets: impl IntoIterator<Item = ProxyNet>) -> Self {
        Self(nets.into_iter().map(|n| n.0).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a connection from `peer` carrying
    /// `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.contains(client) {
            return client;
        }
        // Several X-Forwarded-For lines are one list, in order.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            // An entry a trusted proxy appended is always an address; one
            // that is not was written by someone else, so stop at the last
            // hop that is known.
            let Some(ip) = parse_hop(hop) else {
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// `192.0.2.1`, `2001:db8::1`, and the `192.0.2.1:5678` / `[2001:db8::1]:5678`
/// forms some proxies write.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical)
}

/// An IPv4 client reached over an IPv6 socket (`::ffff:192.0.2.1`) is the
/// IPv4 client.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The key under which per-address limits count a client: its address, or
/// for IPv6 its /64, since one host or household is normally given a whole
/// /64 and could otherwise take a fresh address for every attempt.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse::<ProxyNet>().unwrap()))
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("127.0.0.1"), &xff(&["203.0.113.9"])),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_client() {
        let p = proxies(&["127.0.0.1"]);
        assert_eq!(
            p.client_ip(ip("198.51.100.4"), &xff(&["203.0.113.9"])),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let p = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        // (peer, X-Forwarded-For headers, the client)
        let cases: [(&str, &[&str], &str); 6] = [
            // The client claims to be 1.2.3.4; nginx appends what it saw.
            (
                "127.0.0.1",
                &["1.2.3.4, 203.0.113.9", "10.1.2.3"],
                "203.0.113.9",
            ),
            // Only the proxy: the peer is the client.
            ("127.0.0.1", &[], "127.0.0.1"),
            // Everyone trusted: the left-most hop.
            ("127.0.0.1", &["10.9.9.9, 10.1.1.1"], "10.9.9.9"),
            // Garbage the client wrote stops the walk at the last known hop.
            ("127.0.0.1", &["10.9.9.9, nonsense"], "127.0.0.1"),
            ("127.0.0.1", &["[2001:db8::7]:4711"], "2001:db8::7"),
            ("::ffff:127.0.0.1", &["::ffff:203.0.113.9"], "203.0.113.9"),
        ];
        for (peer, headers, client) in cases {
            let found = p.client_ip(ip(peer), &xff(headers));
            assert_eq!(found, ip(client), "from {peer} with {headers:?}");
        }
    }

    #[test]
    fn proxy_entries_are_addresses_or_networks() {
        assert_eq!(
            "127.0.0.1".parse::<ProxyNet>().unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!("::1".parse::<ProxyNet>().unwrap().to_string(), "::1/128");
        assert_eq!(
            " 10.1.2.3/8".parse::<ProxyNet>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!("localhost".parse::<ProxyNet>().is_err());
        assert!("10.0.0.0/33".parse::<ProxyNet>().is_err());
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        assert_eq!(limit_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(limit_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }
}
