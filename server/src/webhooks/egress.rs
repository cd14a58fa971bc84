//! The egress policy for webhook deliveries: Malipo POSTs only to public addresses.
//!
//! A merchant (or anyone holding a test key) chooses the URL, so without a policy the
//! delivery worker would be a way to reach Malipo's own network: loopback, private
//! ranges, the cloud metadata service. The policy is applied when connecting: names are
//! resolved by [`EgressResolver`], which drops every address that is not globally
//! routable and hands reqwest only the ones it checked (so a name cannot resolve to a
//! public address for the check and a private one for the connection: DNS rebinding).
//! Literal addresses in URLs never reach a resolver, so [`allowed_url`] checks them
//! before the POST. Loopback is allowed only for hosts the operator lists for local
//! development (`[webhooks] allow_hosts`).

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
};

/// Whether an address is one Malipo may deliver to: globally routable unicast.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_global_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 64:ff9b::/96 (and /48)
                || s[0] == 0x2002 // 6to4 2002::/16
                || (s[0] == 0x2001 && s[1] == 0) // Teredo 2001::/32
                || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
                || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard 100::/64
                || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible ::/96
        }
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network"
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 198 && (18..20).contains(&b)) // benchmarking 198.18/15
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224) // multicast 224/4, reserved 240/4, broadcast
}

/// Hosts the operator allowed for local development: `127.0.0.1` or `localhost` (any
/// port), or `127.0.0.1:3001` (that port only; literal addresses).
#[derive(Debug, Clone, Default)]
pub struct AllowList(Arc<Vec<String>>);

impl AllowList {
    pub fn new(hosts: impl IntoIterator<Item = String>) -> Self {
        AllowList(Arc::new(
            hosts
                .into_iter()
                .map(|h| h.trim().trim_matches(['[', ']']).to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        ))
    }

    /// Whether `host` is allowed on any port.
    fn allows(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        self.0.contains(&host)
    }

    /// Whether `host:port` is allowed (by host, or by that exact pair).
    fn allows_port(&self, host: &str, port: Option<u16>) -> bool {
        let bare = host.trim_matches(['[', ']']).to_ascii_lowercase();
        self.allows(&bare)
            || port.is_some_and(|p| {
                let pair = format!("{bare}:{p}");
                self.0.contains(&pair)
            })
    }
}

/// Whether a delivery URL may be posted to as far as its literal address goes (names
/// are checked by the resolver when connecting).
pub fn allowed_url(url: &str, allow: &AllowList) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    let port = url.port_or_known_default();
    match url.host() {
        Some(url::Host::Ipv4(v4)) => allow.allows_port(&v4.to_string(), port) || is_global_v4(v4),
        Some(url::Host::Ipv6(v6)) => {
            allow.allows_port(&v6.to_string(), port) || is_global(IpAddr::V6(v6))
        }
        Some(url::Host::Domain(_)) => true,
        None => false,
    }
}

/// Resolves names for the delivery client, keeping only addresses the policy allows.
#[derive(Debug, Clone)]
pub struct EgressResolver {
    pub allow: AllowList,
}

impl Resolve for EgressResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed_host = allow.allows(&host);
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| is_global(a.ip()) || (allowed_host && a.ip().is_loopback()))
                .collect();
            if kept.is_empty() {
                return Err(Box::new(Blocked) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// A delivery refused by the egress policy.
#[derive(Debug)]
pub struct Blocked;

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no public address for this host (egress policy)")
    }
}

impl std::error::Error for Blocked {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_global_unicast_is_allowed() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001::1",
            "2001:db8::1",
            "ff02::1",
            "::127.0.0.1",
        ] {
            assert!(!is_global(bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "8.8.8.8",
            "41.90.64.1",
            "172.32.0.1",
            "2c0f:fe38::1",
            "2a00:1450::1",
        ] {
            assert!(is_global(good.parse().unwrap()), "{good}");
        }
    }

    #[test]
    fn literal_urls_are_checked_and_the_allow_list_is_explicit() {
        let none = AllowList::default();
        assert!(!allowed_url("http://127.0.0.1:8080/hooks", &none));
        assert!(!allowed_url("http://[::1]/hooks", &none));
        assert!(!allowed_url("http://169.254.169.254/latest", &none));
        assert!(allowed_url("https://8.8.8.8/hooks", &none));
        assert!(
            allowed_url("https://lodge.example/hooks", &none),
            "names: at connect"
        );
        let local = AllowList::new(["127.0.0.1".to_owned()]);
        assert!(allowed_url("http://127.0.0.1:8080/hooks", &local));
        assert!(!allowed_url("http://10.0.0.1/hooks", &local));
        let one_port = AllowList::new(["127.0.0.1:3001".to_owned()]);
        assert!(allowed_url(
            "http://127.0.0.1:3001/sandbox/merchant/webhooks",
            &one_port
        ));
        assert!(!allowed_url("http://127.0.0.1:22/", &one_port));
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused_at_connect() {
        let resolver = EgressResolver {
            allow: AllowList::default(),
        };
        let refused = resolver.resolve("localhost".parse().unwrap()).await;
        assert!(refused.is_err(), "localhost resolves to loopback");
        let allowed = EgressResolver {
            allow: AllowList::new(["localhost".to_owned()]),
        }
        .resolve("localhost".parse().unwrap())
        .await
        .unwrap()
        .collect::<Vec<_>>();
        assert!(allowed.iter().all(|a| a.ip().is_loopback()) && !allowed.is_empty());
    }
}
