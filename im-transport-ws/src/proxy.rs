//! The client's address behind reverse proxies. A proxy connects to the server itself, so
//! every request seems to come from the proxy's address and the per-address limits would
//! hit all its clients at once. A proxy names the client in a header instead; the header
//! is believed only when the peer is a proxy the operator listed, since any client can
//! send one.
//!
//! Each proxy appends the address it received the request from, so the list reads left
//! to right from the client to the last proxy. It is read from the right: the nearest
//! address that is not a listed proxy is the client, and whatever lies to its left was
//! written by that client and means nothing.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use warp::http::HeaderMap;

/// A proxy the server trusts to name the client: one address (`10.0.0.7`, `::1`) or a
/// network (`10.0.0.0/8`, `fd00::/8`). In a config file it is that string.
///
/// ```
/// use im_transport_ws::TrustedProxy;
/// let net: TrustedProxy = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.1.2.3".parse().unwrap()));
/// let one: TrustedProxy = "192.0.2.1".parse().unwrap();
/// assert!(!one.contains("192.0.2.2".parse().unwrap()));
/// assert!("10.0.0.0/40".parse::<TrustedProxy>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(IpNet);

impl TrustedProxy {
    /// Whether `ip` is this proxy or in this network. An IPv4 address seen as IPv6
    /// (`::ffff:10.0.0.1`, from a dual-stack socket) counts as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(TrustedProxy(net.trunc()));
        }
        text.parse::<IpAddr>()
            .map(|ip| TrustedProxy(IpNet::from(ip)))
            .map_err(|_| {
                format!("{text:?} is neither an IP address nor a network such as 10.0.0.0/8")
            })
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A single address is written without its /32 or /128.
        if self.0.prefix_len() == self.0.max_prefix_len() {
            self.0.addr().fmt(f)
        } else {
            self.0.fmt(f)
        }
    }
}

impl Serialize for TrustedProxy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TrustedProxy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Which header the trusted proxies write the client's address in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, cloud load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client;proto=https, for=proxy1` (RFC 7239).
    Forwarded,
}

/// The address a request counts as coming from: the peer, or, when the peer is a trusted
/// proxy, the nearest address in `header` that is not one. Only the header the proxies
/// are said to write is read: a proxy passes the other along as the client sent it.
pub(crate) fn client_addr(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &[TrustedProxy],
    header: ForwardedHeader,
) -> Option<SocketAddr> {
    let peer = peer?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.contains(ip));
    if trusted.is_empty() || !is_trusted(peer.ip()) {
        return Some(peer);
    }
    let hops: Vec<&str> = match header {
        ForwardedHeader::XForwardedFor => headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect(),
        ForwardedHeader::Forwarded => headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                    .map_or("", |(_, value)| value)
            })
            .collect(),
    };
    // From the right: skip our own proxies; the first other address is the client. One
    // that cannot be read (`unknown`, an obfuscated name) ends the walk at the last proxy
    // that could be.
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(addr) = parse_hop(hop) else { break };
        client = addr;
        if !is_trusted(addr.ip()) {
            break;
        }
    }
    Some(client)
}

/// One hop of a forwarding header: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, optionally in quotes (as `Forwarded` writes IPv6).
fn parse_hop(hop: &str) -> Option<SocketAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr);
    }
    let ip = hop
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(hop);
    ip.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn trusted(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter().map(|t| t.parse().unwrap()).collect()
    }

    fn ip(addr: Option<SocketAddr>) -> String {
        addr.unwrap().ip().to_string()
    }

    const PROXY: &str = "10.0.0.2:50000";

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let from_stranger = client_addr(
            Some("198.51.100.1:1".parse().unwrap()),
            &h,
            &trusted(&["10.0.0.0/8"]),
            ForwardedHeader::XForwardedFor,
        );
        assert_eq!(ip(from_stranger), "198.51.100.1");
        let nobody_trusted = client_addr(
            Some(PROXY.parse().unwrap()),
            &h,
            &[],
            ForwardedHeader::XForwardedFor,
        );
        assert_eq!(ip(nobody_trusted), "10.0.0.2");
        let from_proxy = client_addr(
            Some(PROXY.parse().unwrap()),
            &h,
            &trusted(&["10.0.0.0/8"]),
            ForwardedHeader::XForwardedFor,
        );
        assert_eq!(ip(from_proxy), "203.0.113.9");
    }

    #[test]
    fn what_the_client_wrote_left_of_its_address_is_ignored() {
        // The client sent "X-Forwarded-For: 1.2.3.4" itself; the outer proxy appended
        // the client's real address, the inner one the outer proxy's.
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4, 203.0.113.9"),
            ("x-forwarded-for", "10.0.0.9"),
        ]);
        let client = client_addr(
            Some(PROXY.parse().unwrap()),
            &h,
            &trusted(&["10.0.0.0/8"]),
            ForwardedHeader::XForwardedFor,
        );
        assert_eq!(ip(client), "203.0.113.9");
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // The proxies write X-Forwarded-For; a Forwarded header came from the client.
        let h = headers(&[
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        let trusted = trusted(&["10.0.0.2"]);
        let client = client_addr(
            Some(PROXY.parse().unwrap()),
            &h,
            &trusted,
            ForwardedHeader::XForwardedFor,
        );
        assert_eq!(ip(client), "203.0.113.9");
        let h = headers(&[(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8::7]:4711\";proto=https",
        )]);
        let client = client_addr(
            Some(PROXY.parse().unwrap()),
            &h,
            &trusted,
            ForwardedHeader::Forwarded,
        );
        assert_eq!(ip(client), "2001:db8::7");
    }

    #[test]
    fn an_unreadable_hop_stops_at_the_last_readable_proxy() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9, unknown, 10.0.0.5")]);
        let client = client_addr(
            Some(PROXY.parse().unwrap()),
            &h,
            &trusted(&["10.0.0.0/8"]),
            ForwardedHeader::XForwardedFor,
        );
        assert_eq!(ip(client), "10.0.0.5");
        // No header at all: the proxy itself.
        let client = client_addr(
            Some(PROXY.parse().unwrap()),
            &HeaderMap::new(),
            &trusted(&["10.0.0.0/8"]),
            ForwardedHeader::XForwardedFor,
        );
        assert_eq!(ip(client), "10.0.0.2");
    }

    #[test]
    fn a_dual_stack_peer_matches_its_ipv4_network() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let client = client_addr(
            Some("[::ffff:10.0.0.2]:5000".parse().unwrap()),
            &h,
            &trusted(&["10.0.0.0/8"]),
            ForwardedHeader::XForwardedFor,
        );
        assert_eq!(ip(client), "203.0.113.9");
    }

    #[test]
    fn proxies_read_back_as_written() {
        for text in ["10.0.0.0/8", "192.0.2.1", "fd00::/8", "::1"] {
            let proxy: TrustedProxy = text.parse().unwrap();
            assert_eq!(proxy.to_string(), text);
        }
        assert_eq!(
            "10.1.2.3/8".parse::<TrustedProxy>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        for bad in ["", "10.0.0.0/33", "example.com", "10.0.0"] {
            assert!(bad.parse::<TrustedProxy>().is_err(), "{bad:?}");
        }
    }
}
