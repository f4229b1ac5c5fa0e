//! Endpoint choice that depends on the request: the route's `hash_policy` key for ring hash and
//! maglev clusters (with Envoy's cookie generation), ORIGINAL_DST destinations, and the
//! priority level and panic rule every policy picks within.
//!
//! Hashes are FNV-1a with a 64-bit finalizer, not Envoy's xxHash64: a key always maps to the
//! same host while the host set is unchanged, as in Envoy, but not to the host Envoy would pick.

use std::net::SocketAddr;

use http::{HeaderMap, HeaderValue};

use crate::cluster::ClusterRuntime;
use crate::config::hash::{HashPolicy, HashSource};
use crate::config::{Discovery, Endpoint, Forward, LbPolicy};
use crate::downstream::Downstream;

/// How one request picks its endpoints (all attempts share it).
#[derive(Debug, Clone, Default)]
pub struct Choice {
    kind: Kind,
    /// A generated hash cookie to set on the response (`hash_policy.cookie` with a TTL).
    pub set_cookie: Option<HeaderValue>,
}

#[derive(Debug, Clone, Copy, Default)]
enum Kind {
    /// The cluster's own policy.
    #[default]
    Cluster,
    Hash(u64),
    /// ORIGINAL_DST: this exact address.
    Address(SocketAddr),
    /// ORIGINAL_DST without a usable destination: no healthy upstream.
    Nowhere,
}

impl Choice {
    pub fn new(
        cluster: &ClusterRuntime,
        f: &Forward,
        headers: &HeaderMap,
        path: &str,
        conn: Option<Downstream>,
    ) -> Choice {
        if let Discovery::OriginalDst(header) = &cluster.config.discovery {
            return Choice {
                kind: original_dst(header.as_ref(), headers, conn),
                set_cookie: None,
            };
        }
        let hashed = matches!(
            cluster.config.lb,
            LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. }
        );
        if !hashed || f.hash_policy.is_empty() {
            return Choice::default();
        }
        let (hash, set_cookie) = request_hash(&f.hash_policy, headers, path, conn);
        Choice {
            kind: hash.map_or(Kind::Cluster, Kind::Hash),
            set_cookie,
        }
    }

    /// `excluded`: priority levels to avoid (retry `previous_priorities`).
    pub fn pick(&self, cluster: &ClusterRuntime, excluded: &[u32]) -> Option<SocketAddr> {
        match self.kind {
            Kind::Cluster => cluster.pick_excluding(excluded).map(|e| e.addr),
            Kind::Hash(h) => cluster.pick_hashed(h, excluded),
            Kind::Address(a) => Some(a),
            Kind::Nowhere => None,
        }
    }
}

/// Envoy's `previous_priorities` retry priority: the levels earlier attempts used, refreshed
/// every `update_frequency` attempts; when they cover every healthy level the record starts
/// over.
pub fn excluded_priorities(
    update_frequency: Option<u32>,
    cluster: &ClusterRuntime,
    tried: &[SocketAddr],
) -> Vec<u32> {
    let Some(freq) = update_frequency.map(|f| f.max(1) as usize) else {
        return Vec::new();
    };
    let healthy = cluster.healthy_levels();
    let mut attempted: Vec<u32> = Vec::new();
    let mut excluded: Vec<u32> = Vec::new();
    for (i, addr) in tried.iter().enumerate() {
        attempted.extend(cluster.priority_of(*addr));
        if (i + 1) % freq == 0 {
            attempted.sort_unstable();
            attempted.dedup();
            excluded = attempted.clone();
            if healthy.iter().all(|p| excluded.contains(p)) {
                attempted.clear();
                excluded.clear();
            }
        }
    }
    excluded
}

/// A TCP connection's endpoint: an ORIGINAL_DST cluster connects where the downstream
/// connection was headed (SO_ORIGINAL_DST when redirected), others use their policy.
pub fn pick_for_connection(
    cluster: &ClusterRuntime,
    downstream: &tokio::net::TcpStream,
) -> Option<SocketAddr> {
    if matches!(cluster.config.discovery, Discovery::OriginalDst(_)) {
        let local = downstream.local_addr().ok()?;
        return crate::redirect::original_dst(downstream).filter(|d| *d != local);
    }
    cluster.pick().map(|e| e.addr)
}

/// Envoy: a header that is present but not an `ip:port` fails the request; without the header
/// the connection's original destination is used. A connection that was not redirected was
/// headed for this proxy itself: forwarding there would loop, so it fails instead.
fn original_dst(
    header: Option<&http::HeaderName>,
    headers: &HeaderMap,
    conn: Option<Downstream>,
) -> Kind {
    if let Some(value) = header.and_then(|h| headers.get(h)) {
        return value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<SocketAddr>().ok())
            .map_or(Kind::Nowhere, Kind::Address);
    }
    match conn {
        Some(c) if c.original_dst != c.local => Kind::Address(c.original_dst),
        _ => Kind::Nowhere,
    }
}

/// Combine the policies' hashes as Envoy does: rotate the running hash left by one and xor
/// the next; a terminal policy that produced a hash ends the walk.
fn request_hash(
    policies: &[HashPolicy],
    headers: &HeaderMap,
    path: &str,
    conn: Option<Downstream>,
) -> (Option<u64>, Option<HeaderValue>) {
    let mut hash: Option<u64> = None;
    let mut set_cookie = None;
    for p in policies {
        let next = match &p.source {
            HashSource::Header(name, rewrite) => {
                let values: Vec<&str> = headers
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                (!values.is_empty()).then(|| {
                    let joined = values.join(",");
                    let value = match rewrite {
                        Some((re, sub)) => re.replace_all(&joined, sub.as_str()).into_owned(),
                        None => joined,
                    };
                    hash64(value.as_bytes())
                })
            }
            HashSource::Cookie { name, ttl, path } => match cookie(headers, name) {
                Some(v) => Some(hash64(v.as_bytes())),
                None => match (ttl, conn) {
                    (Some(ttl), Some(c)) => {
                        // Envoy's generated value: the downstream address hashed, in hex, so
                        // every request of one connection gets the same cookie.
                        let value = format!("{:016x}", hash64(c.peer.to_string().as_bytes()));
                        set_cookie = make_set_cookie(name, &value, *ttl, path);
                        Some(hash64(value.as_bytes()))
                    }
                    _ => None,
                },
            },
            HashSource::SourceIp => conn.map(|c| hash64(c.peer.ip().to_string().as_bytes())),
            HashSource::QueryParameter(name) => {
                query_param(path, name).map(|v| hash64(v.as_bytes()))
            }
        };
        if let Some(n) = next {
            hash = Some(hash.map_or(n, |h| h.rotate_left(1) ^ n));
        }
        if p.terminal && hash.is_some() {
            break;
        }
    }
    (hash, set_cookie)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"').to_string())
        })
}

fn make_set_cookie(
    name: &str,
    value: &str,
    ttl: std::time::Duration,
    path: &str,
) -> Option<HeaderValue> {
    let mut s = format!("{name}=\"{value}\"");
    if !ttl.is_zero() {
        s.push_str(&format!("; Max-Age={}", ttl.as_secs()));
    }
    if !path.is_empty() {
        s.push_str(&format!("; Path={path}"));
    }
    s.push_str("; HttpOnly");
    HeaderValue::from_str(&s).ok()
}

fn query_param(path: &str, name: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| v.to_string())
    })
}

/// FNV-1a, then the splitmix64 finalizer so that nearby keys spread over the ring.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A consistent-hash lookup structure over one set of endpoints.
#[derive(Debug)]
pub enum Table {
    /// Sorted (hash, endpoint) points.
    Ring(Vec<(u64, SocketAddr)>),
    Maglev(Vec<SocketAddr>),
}

impl Table {
    pub fn build(lb: LbPolicy, eps: &[Endpoint]) -> Option<Table> {
        if eps.is_empty() {
            return None;
        }
        match lb {
            LbPolicy::RingHash { min_ring, max_ring } => Some(ring(eps, min_ring, max_ring)),
            LbPolicy::Maglev { table_size } => Some(maglev(eps, table_size)),
            _ => None,
        }
    }

    pub fn lookup(&self, h: u64) -> Option<SocketAddr> {
        match self {
            Table::Ring(points) => {
                let i = points.partition_point(|(p, _)| *p < h);
                points.get(i).or_else(|| points.first()).map(|(_, a)| *a)
            }
            Table::Maglev(table) => {
                let len = u64::try_from(table.len()).ok()?;
                let i = usize::try_from(h % len.max(1)).ok()?;
                table.get(i).copied()
            }
        }
    }
}

/// Ketama as Envoy sizes it: the lightest host gets at least one point, the ring has at
/// least `min` and at most `max` points, and each host's share follows its weight.
fn ring(eps: &[Endpoint], min: usize, max: usize) -> Table {
    let total: f64 = eps.iter().map(|e| f64::from(e.weight)).sum();
    let min_weight = eps
        .iter()
        .map(|e| f64::from(e.weight) / total)
        .fold(1.0, f64::min);
    let scale = ((min_weight * min as f64).ceil() / min_weight).min(max as f64);
    let mut points = Vec::new();
    for e in eps {
        let n = (f64::from(e.weight) / total * scale).floor().max(1.0) as usize;
        let key = e.addr.to_string();
        for i in 0..n {
            points.push((hash64(format!("{key}_{i}").as_bytes()), e.addr));
        }
    }
    points.sort_unstable();
    Table::Ring(points)
}

/// Maglev (Eisenbud et al.): each host walks its own permutation of the table and claims
/// free slots; weights decide how often a host gets a turn.
fn maglev(eps: &[Endpoint], size: usize) -> Table {
    let m = size as u64;
    let perms: Vec<(u64, u64)> = eps
        .iter()
        .map(|e| {
            let key = e.addr.to_string();
            let offset = hash64(key.as_bytes()) % m;
            let skip = hash64(format!("{key}#skip").as_bytes()) % (m - 1) + 1;
            (offset, skip)
        })
        .collect();
    let max_w = u64::from(eps.iter().map(|e| e.weight).max().unwrap_or(1));
    let mut next = vec![0u64; eps.len()];
    let mut credit = vec![0u64; eps.len()];
    let mut table: Vec<Option<SocketAddr>> = vec![None; size];
    let mut filled = 0;
    while filled < size {
        for (i, e) in eps.iter().enumerate() {
            credit[i] += u64::from(e.weight);
            if credit[i] < max_w {
                continue;
            }
            credit[i] -= max_w;
            let (offset, skip) = perms[i];
            loop {
                let slot = ((offset + next[i] * skip) % m) as usize;
                next[i] += 1;
                if table[slot].is_none() {
                    table[slot] = Some(e.addr);
                    filled += 1;
                    break;
                }
            }
            if filled == size {
                break;
            }
        }
    }
    Table::Maglev(table.into_iter().flatten().collect())
}

/// The endpoints a pick chooses among: the lowest priority that has a healthy (not ejected)
/// endpoint; within it, all of its endpoints when fewer than `panic_pct` percent are healthy
/// (Envoy's panic mode). With nothing healthy anywhere, the lowest priority in panic.
/// Levels in `excluded` are skipped unless that leaves no healthy level (then none is).
pub fn level(
    all: &[Endpoint],
    ejected: impl Fn(&SocketAddr) -> bool,
    panic_pct: f64,
    excluded: &[u32],
) -> Vec<Endpoint> {
    let mut prios: Vec<u32> = all.iter().map(|e| e.priority).collect();
    prios.sort_unstable();
    prios.dedup();
    let usable = |p: &u32| {
        !excluded.contains(p) && all.iter().any(|e| e.priority == *p && !ejected(&e.addr))
    };
    if !excluded.is_empty() && !prios.iter().any(usable) {
        return level(all, ejected, panic_pct, &[]);
    }
    for p in prios.iter().filter(|p| !excluded.contains(p)) {
        let hosts: Vec<Endpoint> = all.iter().filter(|e| e.priority == *p).copied().collect();
        let healthy: Vec<Endpoint> = hosts
            .iter()
            .filter(|e| !ejected(&e.addr))
            .copied()
            .collect();
        if healthy.is_empty() {
            continue;
        }
        let pct = healthy.len() as f64 * 100.0 / hosts.len() as f64;
        return if pct < panic_pct { hosts } else { healthy };
    }
    let lowest = prios.first().copied().unwrap_or(0);
    all.iter()
        .filter(|e| e.priority == lowest)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(port: u16, weight: u32, priority: u32) -> Endpoint {
        Endpoint {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            weight,
            priority,
        }
    }

    fn spread(t: &Table, n: u64) -> std::collections::HashMap<u16, usize> {
        let mut m = std::collections::HashMap::new();
        for k in 0..n {
            if let Some(a) = t.lookup(hash64(&k.to_le_bytes())) {
                *m.entry(a.port()).or_insert(0) += 1;
            }
        }
        m
    }

    #[test]
    fn ring_and_maglev_spread_by_weight_and_move_few_keys() {
        let eps = [ep(1, 1, 0), ep(2, 1, 0), ep(3, 2, 0)];
        for lb in [
            LbPolicy::RingHash {
                min_ring: 1024,
                max_ring: 1 << 20,
            },
            LbPolicy::Maglev { table_size: 65537 },
        ] {
            let t = Table::build(lb, &eps).expect("table");
            let s = spread(&t, 8000);
            let (a, b, c) = (s[&1], s[&2], s[&3]);
            assert!(a > 1300 && b > 1300 && c > 3000, "{lb:?}: {s:?}");
            // Removing one host only moves that host's keys.
            let fewer = Table::build(lb, &eps[1..]).expect("table");
            let moved = (0..4000u64)
                .filter(|k| {
                    let h = hash64(&k.to_le_bytes());
                    let before = t.lookup(h);
                    before != Some(eps[0].addr) && before != fewer.lookup(h)
                })
                .count();
            assert!(moved < 400, "{lb:?}: {moved} keys moved");
        }
    }

    #[test]
    fn priorities_and_panic() {
        let all = [ep(1, 1, 0), ep(2, 1, 0), ep(3, 1, 1)];
        let ports = |v: Vec<Endpoint>| v.iter().map(|e| e.addr.port()).collect::<Vec<_>>();
        let none = |_: &SocketAddr| false;
        assert_eq!(ports(level(&all, none, 50.0, &[])), vec![1, 2]);
        let one_down = |a: &SocketAddr| a.port() == 1;
        assert_eq!(ports(level(&all, one_down, 50.0, &[])), vec![2]);
        assert_eq!(ports(level(&all, one_down, 60.0, &[])), vec![1, 2]);
        let p0_down = |a: &SocketAddr| a.port() != 3;
        assert_eq!(ports(level(&all, p0_down, 0.0, &[])), vec![3]);
        let all_down = |_: &SocketAddr| true;
        assert_eq!(ports(level(&all, all_down, 0.0, &[])), vec![1, 2]);
        // previous_priorities: P0 excluded moves to P1; excluding every healthy level resets.
        assert_eq!(ports(level(&all, none, 50.0, &[0])), vec![3]);
        assert_eq!(ports(level(&all, none, 50.0, &[0, 1])), vec![1, 2]);
        assert_eq!(ports(level(&all, p0_down, 0.0, &[1])), vec![3]);
    }

    #[test]
    fn original_destination_choice() {
        let header: http::HeaderName = "x-envoy-original-dst-host".parse().expect("name");
        let local: SocketAddr = "127.0.0.1:15001".parse().expect("addr");
        let redirected = Downstream {
            peer: "127.0.0.1:5000".parse().expect("addr"),
            local,
            original_dst: "10.0.0.5:80".parse().expect("addr"),
            tls: false,
        };
        let direct = Downstream {
            original_dst: local,
            ..redirected
        };
        let mut h = HeaderMap::new();
        let addr = |k: Kind| match k {
            Kind::Address(a) => Some(a.to_string()),
            _ => None,
        };
        assert_eq!(
            addr(original_dst(Some(&header), &h, Some(redirected))).as_deref(),
            Some("10.0.0.5:80")
        );
        assert_eq!(
            addr(original_dst(Some(&header), &h, Some(direct))),
            None,
            "self-loop"
        );
        h.insert(
            "x-envoy-original-dst-host",
            HeaderValue::from_static("10.1.1.1:9080"),
        );
        assert_eq!(
            addr(original_dst(Some(&header), &h, Some(direct))).as_deref(),
            Some("10.1.1.1:9080")
        );
        assert_eq!(
            addr(original_dst(None, &h, Some(redirected))).as_deref(),
            Some("10.0.0.5:80")
        );
        h.insert(
            "x-envoy-original-dst-host",
            HeaderValue::from_static("nope"),
        );
        assert_eq!(
            addr(original_dst(Some(&header), &h, Some(redirected))),
            None
        );
    }

    #[test]
    fn hash_policies_combine_and_generate_cookies() {
        use crate::config::hash::HashSource as S;
        let conn = Downstream {
            peer: "10.0.0.9:4000".parse().expect("addr"),
            local: "10.0.0.1:80".parse().expect("addr"),
            original_dst: "10.0.0.1:80".parse().expect("addr"),
            tls: false,
        };
        let pol = |source, terminal| HashPolicy { source, terminal };
        let mut h = HeaderMap::new();
        h.insert("x-user", HeaderValue::from_static("jason"));
        h.insert("cookie", HeaderValue::from_static("a=1; session=\"abc\""));
        let user = pol(S::Header("x-user".parse().expect("name"), None), false);
        let (one, _) = request_hash(std::slice::from_ref(&user), &h, "/", Some(conn));
        assert_eq!(one, Some(hash64(b"jason")));
        let cookie = |ttl| S::Cookie {
            name: "session".into(),
            ttl,
            path: "/".into(),
        };
        let (c, set) = request_hash(&[pol(cookie(None), false)], &h, "/", Some(conn));
        assert_eq!((c, set), (Some(hash64(b"abc")), None));
        let (both, _) = request_hash(
            &[user.clone(), pol(S::QueryParameter("q".into()), false)],
            &h,
            "/p?q=7",
            Some(conn),
        );
        assert_eq!(both, Some(hash64(b"jason").rotate_left(1) ^ hash64(b"7")));
        let (term, _) = request_hash(&[pol(S::SourceIp, true), user], &h, "/", Some(conn));
        assert_eq!(term, Some(hash64(b"10.0.0.9")));
        let empty = HeaderMap::new();
        let ttl = Some(std::time::Duration::from_secs(60));
        let (gen_hash, set) = request_hash(&[pol(cookie(ttl), false)], &empty, "/", Some(conn));
        let set = set.expect("set-cookie");
        let value = format!("{:016x}", hash64(b"10.0.0.9:4000"));
        assert_eq!(
            set,
            format!("session=\"{value}\"; Max-Age=60; Path=/; HttpOnly").as_str()
        );
        assert_eq!(gen_hash, Some(hash64(value.as_bytes())));
    }
}
