//! In-memory abuse limits for what cannot wait for the database: pay requests per client
//! address. (Prompts per phone and attempts per session are counted in the database, in
//! `payments`, so they hold across restarts and instances.)

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Mutex,
};

/// A sliding-window counter per client address. An IPv6 /64 counts as one address (a
/// home or phone usually gets a whole /64).
pub struct RateLimiter<K = u128> {
    max: usize,
    window_ms: i64,
    hits: Mutex<Pruned<HashMap<K, VecDeque<i64>>>>,
}

/// Beyond this many tracked keys, idle ones are forgotten.
const PRUNE_ABOVE: usize = 50_000;

/// A map that forgets idle entries when it grows, at an amortised cost: after a prune
/// it may grow to twice what was left before the next one, so a flood of distinct keys
/// that are all still active (many addresses within the window) costs a scan per
/// doubling, not a scan per request.
struct Pruned<M> {
    map: M,
    prune_at: usize,
}

impl<M> Pruned<M> {
    fn new(map: M) -> Self {
        Pruned {
            map,
            prune_at: PRUNE_ABOVE,
        }
    }

    /// Runs `prune` on the map if it is due; returns the map.
    fn map(&mut self, len: impl Fn(&M) -> usize, prune: impl FnOnce(&mut M)) -> &mut M {
        if len(&self.map) > self.prune_at {
            prune(&mut self.map);
            self.prune_at = PRUNE_ABOVE.max(len(&self.map).saturating_mul(2));
        }
        &mut self.map
    }
}

impl<K: std::hash::Hash + Eq> RateLimiter<K> {
    pub fn new(max: u32, window_secs: u64) -> Self {
        RateLimiter {
            max: usize::try_from(max).unwrap_or(usize::MAX),
            window_ms: crate::time::secs_to_ms(window_secs),
            hits: Mutex::new(Pruned::new(HashMap::new())),
        }
    }

    /// Counts a request for `k` at `now` (unix ms). `Err(secs)`: over the limit, and
    /// how long until the window frees a place; the refused request is not counted.
    pub fn check_key(&self, k: K, now: i64) -> Result<(), i64> {
        let since = now.saturating_sub(self.window_ms);
        let mut guard = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        let hits = guard.map(HashMap::len, |m| {
            m.retain(|_, times| times.back().is_some_and(|t| *t > since));
        });
        let times = hits.entry(k).or_default();
        while times.front().is_some_and(|t| *t <= since) {
            times.pop_front();
        }
        if times.len() >= self.max {
            let free_at = times.front().copied().unwrap_or(now) + self.window_ms;
            return Err(((free_at - now) / 1000).max(1));
        }
        times.push_back(now);
        Ok(())
    }
}

impl RateLimiter<u128> {
    /// Counts a request from `ip` (an IPv6 /64 counts as one address).
    pub fn check(&self, ip: IpAddr, now: i64) -> Result<(), i64> {
        self.check_key(key(ip), now)
    }
}

/// The key an address is counted under: IPv4 as itself, IPv6 by its /64.
pub fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6) & !((1u128 << 64) - 1),
        },
    }
}

/// Whether a request says it came through a proxy (`X-Forwarded-For`, `Forwarded`,
/// `X-Real-IP`): a reverse proxy on this machine makes every visitor look local, so what
/// is only for this machine is not served through one.
pub fn came_through_proxy(headers: &axum::http::HeaderMap) -> bool {
    ["x-forwarded-for", "forwarded", "x-real-ip"]
        .iter()
        .any(|h| headers.contains_key(*h))
}

/// The shopper's address: the TCP peer, unless the peer is one of the operator's own
/// reverse proxies (`trusted_proxies`), in which case the address that proxy saw, taken
/// from the right of `X-Forwarded-For` past every trusted hop. A client cannot spoof it:
/// a header from an untrusted peer is ignored.
pub fn client_ip(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .map(canonical)
        .collect();
    while let Some(hop) = hops.pop() {
        if !trusted.contains(&hop) {
            return hop;
        }
    }
    peer
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Remembers which refusals were recently announced, so an attacker hammering a limit
/// cannot turn each refused request into a database write and a webhook.
pub struct RecentOnce {
    every_ms: i64,
    seen: Mutex<Pruned<HashMap<String, i64>>>,
}

impl RecentOnce {
    pub fn new(every_ms: i64) -> Self {
        RecentOnce {
            every_ms,
            seen: Mutex::new(Pruned::new(HashMap::new())),
        }
    }

    /// True the first time `key` is seen in `every_ms`.
    pub fn first(&self, key: String, now: i64) -> bool {
        let mut guard = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let every = self.every_ms;
        let seen = guard.map(HashMap::len, |m| m.retain(|_, at| now - *at < every));
        match seen.get(&key) {
            Some(at) if now - *at < self.every_ms => false,
            _ => {
                seen.insert(key, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_active_keys_is_pruned_once_per_doubling() {
        let mut p = Pruned::new(HashMap::<u32, ()>::new());
        let mut scans = 0;
        for k in 0..400_000u32 {
            p.map(HashMap::len, |_| scans += 1).insert(k, ());
        }
        // Every key stays active: a scan per request would be 350,000 of them.
        assert!(scans <= 4, "{scans} scans");
        // Idle keys are forgotten when a scan comes.
        let mut p = Pruned::new(HashMap::<u32, ()>::new());
        for k in 0..=PRUNE_ABOVE as u32 {
            p.map(HashMap::len, |_| {}).insert(k, ());
        }
        assert_eq!(p.map(HashMap::len, HashMap::clear).len(), 0);
    }

    #[test]
    fn counts_per_address_in_a_sliding_window() {
        let l = RateLimiter::new(2, 10);
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        assert_eq!(l.check(a, 0), Ok(()));
        assert_eq!(l.check(a, 1_000), Ok(()));
        assert_eq!(l.check(a, 2_000), Err(8), "full until the first leaves");
        assert_eq!(l.check(b, 2_000), Ok(()), "another address has its own");
        assert_eq!(l.check(a, 10_001), Ok(()), "the first left the window");
    }

    #[test]
    fn an_ipv6_64_is_one_address_and_mapped_v4_is_v4() {
        let l = RateLimiter::new(1, 60);
        assert_eq!(l.check("2001:db8:1:2::1".parse().unwrap(), 0), Ok(()));
        assert!(l.check("2001:db8:1:2:ffff::9".parse().unwrap(), 0).is_err());
        assert_eq!(l.check("2001:db8:1:3::1".parse().unwrap(), 0), Ok(()));
        assert_eq!(l.check("198.51.100.1".parse().unwrap(), 0), Ok(()));
        assert!(l.check("::ffff:198.51.100.1".parse().unwrap(), 0).is_err());
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6, 41.90.1.7".parse().unwrap());
        // From the proxy: the address it saw (the right-most untrusted one).
        assert_eq!(
            client_ip(proxy, &h, &[proxy]),
            "41.90.1.7".parse::<IpAddr>().unwrap()
        );
        // From anyone else, the header is the client's own claim: ignored.
        let stranger: IpAddr = "41.90.1.8".parse().unwrap();
        assert_eq!(client_ip(stranger, &h, &[proxy]), stranger);
        assert_eq!(client_ip(proxy, &h, &[]), proxy);
        // Two trusted hops.
        let edge: IpAddr = "10.0.0.3".parse().unwrap();
        h.insert("x-forwarded-for", "41.90.1.9, 10.0.0.3".parse().unwrap());
        assert_eq!(
            client_ip(proxy, &h, &[proxy, edge]),
            "41.90.1.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn refusals_are_announced_once_a_period() {
        let r = RecentOnce::new(60_000);
        assert!(r.first("cs_1:phone_limit".into(), 0));
        assert!(!r.first("cs_1:phone_limit".into(), 59_999));
        assert!(r.first("cs_1:session_limit".into(), 1));
        assert!(r.first("cs_1:phone_limit".into(), 60_000));
    }
}
