//! Rate limits (docs/operations.md#rate-limits): per client address before any token work, per
//! principal after verification, and per principal and tool where a tool asks for it.
//!
//! Each limit is a token bucket (GCRA, from the `governor` crate): `N/s` lets a key send `N`
//! requests at once and refills at `N` a second. Keys are bounded: once a limiter tracks
//! `RATE_LIMIT_MAX_TRACKED` keys, a further key is limited by its coarse key (an address's /24 or
//! /48, a caller's tenant), as many of those, then one last bucket, until keys whose bucket has
//! refilled are forgotten; so a caller with many addresses (or many tokens) cannot grow the
//! server's memory, and holds back its own neighbourhood first. The client address is the TCP peer's, or, when the peer is one of
//! `TRUSTED_PROXIES`, the address the proxies say they forwarded for (the first address from the
//! right that is not a trusted proxy, as RFC 7239 §5.2 and MDN's X-Forwarded-For notes advise).
//! IPv6 addresses are limited per /64, the block one host usually holds.

use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use http::{HeaderMap, StatusCode};
use ipnet::IpNet;

use super::body::{text, Body};

/// A rate: `count` requests per `period`, with a burst of `count` (`100/s`, `600/min`, `50/h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    count: NonZeroU32,
    period: Duration,
}

/// A rate that does not parse: the text says what the form is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a rate such as 100/s, 600/min or 50/h (a whole number from 1 to 4294967295 per s, min or h), or off"
)]
pub struct RateParseError;

impl Rate {
    /// One a minute.
    pub const ONE_PER_MINUTE: Rate = Rate {
        count: NonZeroU32::MIN,
        period: Duration::from_secs(60),
    };

    /// `count` requests per `period` (`None` when either is zero).
    pub fn new(count: u32, period: Duration) -> Option<Self> {
        let count = NonZeroU32::new(count)?;
        (!period.is_zero()).then_some(Rate { count, period })
    }

    /// Parses a rate setting: `N/s`, `N/min`, `N/h`; `off` or `0` is `Ok(None)`.
    ///
    /// # Errors
    /// [`RateParseError`] for anything else.
    pub fn parse_setting(text: &str) -> Result<Option<Self>, RateParseError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") || text == "0" {
            return Ok(None);
        }
        text.parse().map(Some)
    }

    /// The bucket as `governor` takes it: a burst of `count`, one more every `period / count`.
    fn quota(&self) -> Quota {
        // `period / count` is at least a nanosecond for any period of a second or more.
        let replenish = (self.period / self.count.get()).max(Duration::from_nanos(1));
        Quota::with_period(replenish)
            .unwrap_or_else(|| Quota::per_second(self.count))
            .allow_burst(self.count)
    }
}

impl FromStr for Rate {
    type Err = RateParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (count, unit) = s.trim().split_once('/').ok_or(RateParseError)?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(RateParseError),
        };
        let count = count.trim().parse::<u32>().map_err(|_| RateParseError)?;
        Rate::new(count, period).ok_or(RateParseError)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "h",
            _ => return write!(f, "{}/{:?}", self.count, self.period),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// A request over its limit: when the key's bucket has a token again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimited {
    /// How long until one more request would pass.
    pub retry_after: Duration,
}

impl RateLimited {
    /// The `Retry-After` value (RFC 9110 §10.2.3): whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// The keys of one limiter, at most `max` of them. Past the bound a new key is limited by its
/// coarse key (an address's /24 or /48, a principal's tenant), at most `max` of those, and past
/// that by one last bucket: a flood of new keys holds back its own neighbourhood first.
struct BoundedStore<K: Hash + Eq + Clone> {
    keys: KeyMap<K>,
    coarse_keys: KeyMap<K>,
    coarse: fn(&K) -> K,
    last: InMemoryState,
    /// A key went past the bound since the last sweep (shared with the limiter).
    full: Arc<AtomicBool>,
}

/// One map of keys to buckets, holding at most `max`.
struct KeyMap<K: Hash + Eq + Clone> {
    map: DashMapStateStore<K>,
    max: usize,
    /// Keys in `map` (kept here: `DashMap::len` locks every shard).
    tracked: AtomicUsize,
}

impl<K: Hash + Eq + Clone> KeyMap<K> {
    fn new(max: usize) -> Self {
        KeyMap {
            map: DashMapStateStore::default(),
            max: max.max(1),
            tracked: AtomicUsize::new(0),
        }
    }

    /// `f` on `key`'s bucket, adding the key when there is room; `None` when there is none.
    fn measure<T, F, E>(&self, key: &K, f: &F) -> Option<Result<T, E>>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // One lookup for a key already tracked (the common case).
        if let Some(state) = self.map.get(key) {
            return Some(state.measure_and_replace(&NotKeyed::NonKey, f));
        }
        if self.tracked.load(Ordering::Relaxed) >= self.max {
            return None;
        }
        let state = self.map.entry(key.clone()).or_insert_with(|| {
            self.tracked.fetch_add(1, Ordering::Relaxed);
            InMemoryState::default()
        });
        Some(state.measure_and_replace(&NotKeyed::NonKey, f))
    }

    fn retain_recent(&self, drop_below: Nanos) {
        self.map.retain_recent(drop_below);
        self.tracked.store(self.map.len(), Ordering::Relaxed);
        // Only when most of the room is unused: shrinking rehashes every key.
        if self.map.capacity() > 4 * self.map.len() + 1024 {
            self.map.shrink_to_fit();
        }
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(outcome) = self.keys.measure(key, &f) {
            return outcome;
        }
        self.full.store(true, Ordering::Relaxed);
        if let Some(outcome) = self.coarse_keys.measure(&(self.coarse)(key), &f) {
            return outcome;
        }
        self.last.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.keys.retain_recent(drop_below);
        self.coarse_keys.retain_recent(drop_below);
    }

    fn len(&self) -> usize {
        self.keys.tracked.load(Ordering::Relaxed) + self.coarse_keys.tracked.load(Ordering::Relaxed)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One rate limit over keys of type `K` (addresses, principals, principal and tool), tracking at
/// most a fixed number of keys (see the module docs). Cheap to share: clones share the buckets.
#[derive(Clone)]
pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    inner: Arc<LimiterInner<K>>,
}

struct LimiterInner<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, BoundedStore<K>, DefaultClock>,
    rate: Rate,
    /// The metric label: `address`, `principal` or `tool`; `None`: no metrics.
    name: Option<&'static str>,
    /// The store's overflow flag.
    full: Arc<AtomicBool>,
    /// When the limiter was made; the origin of `last_sweep_ms`.
    created: Instant,
    /// When keys were last swept, in milliseconds since `created`.
    last_sweep_ms: AtomicU64,
}

/// How often keys whose bucket has refilled are forgotten, and `mcp_rate_limit_keys` published.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// The least time between two sweeps of a limiter whose keys reached the bound.
const FULL_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl<K: Hash + Eq + Clone> fmt::Debug for KeyedLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("name", &self.inner.name)
            .field("rate", &self.inner.rate)
            .field("keys", &self.inner.limiter.len())
            .finish()
    }
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter named `name` (the `limiter` label of its metrics) allowing each key `rate`,
    /// tracking at most `max_keys` keys (at least 1), then as many coarse keys (`coarse`: an
    /// address's network, a principal's tenant), then one bucket for the rest.
    pub fn new(name: &'static str, rate: Rate, max_keys: usize, coarse: fn(&K) -> K) -> Self {
        Self::build(Some(name), rate, max_keys, coarse)
    }

    /// The same without metrics, for limits that are not the server's rate limits (how often a
    /// refusal is written to the log, say).
    pub fn unmetered(rate: Rate, max_keys: usize, coarse: fn(&K) -> K) -> Self {
        Self::build(None, rate, max_keys, coarse)
    }

    fn build(name: Option<&'static str>, rate: Rate, max_keys: usize, coarse: fn(&K) -> K) -> Self {
        let full = Arc::new(AtomicBool::new(false));
        let store = BoundedStore {
            keys: KeyMap::new(max_keys),
            coarse_keys: KeyMap::new(max_keys),
            coarse,
            last: InMemoryState::default(),
            full: full.clone(),
        };
        KeyedLimiter {
            inner: Arc::new(LimiterInner {
                limiter: RateLimiter::new(rate.quota(), store, DefaultClock::default()),
                rate,
                name,
                full,
                created: Instant::now(),
                last_sweep_ms: AtomicU64::new(0),
            }),
        }
    }

    /// The rate each key gets.
    pub fn rate(&self) -> Rate {
        self.inner.rate
    }

    /// Counts one request by `key`.
    ///
    /// # Errors
    /// [`RateLimited`] when `key`'s bucket is empty; the refusal is counted in
    /// `mcp_rate_limited_total{limiter}`.
    pub fn check(&self, key: &K) -> Result<(), RateLimited> {
        let inner = &*self.inner;
        let outcome = inner.limiter.check_key(key);
        self.sweep_if_due();
        outcome.map_err(|not_until| {
            if let Some(name) = inner.name {
                metrics::counter!("mcp_rate_limited_total", "limiter" => name).increment(1);
            }
            RateLimited {
                retry_after: not_until.wait_time_from(inner.limiter.clock().now()),
            }
        })
    }

    /// Forgets keys whose bucket has refilled (they are as good as new) every
    /// [`SWEEP_INTERVAL`], or every [`FULL_SWEEP_INTERVAL`] while keys overflow; publishes
    /// `mcp_rate_limit_keys{limiter}`. Runs on the request that finds a sweep due (one of them,
    /// when several do).
    fn sweep_if_due(&self) {
        let inner = &*self.inner;
        let now_ms = u64::try_from(inner.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = inner.last_sweep_ms.load(Ordering::Relaxed);
        let since = Duration::from_millis(now_ms.saturating_sub(last));
        let due =
            since >= SWEEP_INTERVAL || (since >= FULL_SWEEP_INTERVAL && inner.full.load(Ordering::Relaxed));
        if !due
            || inner
                .last_sweep_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        inner.full.store(false, Ordering::Relaxed);
        inner.limiter.retain_recent();
        let Some(name) = inner.name else {
            return;
        };
        metrics::gauge!("mcp_rate_limit_keys", "limiter" => name).set(inner.limiter.len() as f64);
    }

    /// How many keys are tracked now.
    pub fn tracked(&self) -> usize {
        self.inner.limiter.len()
    }
}

/// Which header trusted proxies write the client's address into (`TRUSTED_PROXIES_HEADER`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: <client>, <proxy1>, …` (nginx, Azure Application Gateway and Front
    /// Door, Kubernetes ingress-nginx, Envoy).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=<client>, for=<proxy1>` (RFC 7239).
    Forwarded,
}

impl FromStr for ForwardedHeader {
    type Err = RateParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
            "forwarded" => Ok(ForwardedHeader::Forwarded),
            _ => Err(RateParseError),
        }
    }
}

/// The proxies whose forwarded-for header is believed (`TRUSTED_PROXIES`); none by default, when
/// the client address is always the TCP peer's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: ForwardedHeader,
}

/// A `TRUSTED_PROXIES` entry that is neither an IP address nor a CIDR block, or one that trusts
/// every address (`0.0.0.0/0`, `::/0`: any client could then name any address).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or a CIDR block such as 10.0.0.0/8 or fd00::/8 (and not /0, which trusts every client)")]
pub struct ProxyParseError(pub String);

impl TrustedProxies {
    /// Trusts the addresses and CIDR blocks in `entries` (`10.0.0.0/8`, `192.168.1.7`,
    /// `fd00::/8`), reading `header`.
    ///
    /// # Errors
    /// [`ProxyParseError`] naming the first entry that is neither.
    pub fn parse(entries: &[String], header: ForwardedHeader) -> Result<Self, ProxyParseError> {
        let networks = entries
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .ok()
                    .filter(|net| net.prefix_len() > 0)
                    .ok_or_else(|| ProxyParseError(entry.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { networks, header })
    }

    /// Whether any proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` with `headers`: `Some` when `peer` is a
    /// trusted proxy and its header names an address further out (the first from the right
    /// that is not itself a trusted proxy; the leftmost when all are); `None` when the peer's
    /// own address is the client's (no trusted peer, no header, or a first hop that is not an
    /// address, such as `unknown` or an obfuscated identifier).
    pub fn forwarded_for(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        if !self.trusts(peer) {
            return None;
        }
        let mut client = peer;
        // Each element on its own: bytes that are not text in one element (the client's, say)
        // make that element unreadable, not the elements the trusted proxies appended after it.
        let name = match self.header {
            ForwardedHeader::XForwardedFor => X_FORWARDED_FOR,
            ForwardedHeader::Forwarded => http::header::FORWARDED,
        };
        let hops: Vec<&str> = headers
            .get_all(name)
            .iter()
            .flat_map(|value| value.as_bytes().split(|b| *b == b','))
            .map(|element| {
                let element = std::str::from_utf8(element).unwrap_or("");
                match self.header {
                    ForwardedHeader::XForwardedFor => element.trim(),
                    // An element without `for` says nothing about this hop: it stops the walk.
                    ForwardedHeader::Forwarded => element
                        .split(';')
                        .find_map(|pair| {
                            let (name, value) = pair.split_once('=')?;
                            name.trim().eq_ignore_ascii_case("for").then(|| value.trim())
                        })
                        .unwrap_or(""),
                }
            })
            .collect();
        for hop in hops.iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match parse_node(hop) {
                Some(ip) => client = ip,
                None => break,
            }
        }
        (client != peer).then_some(canonical(client))
    }
}

/// `X-Forwarded-For`.
const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// An address as a forwarded header writes it: `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`,
/// `[2001:db8::1]:443`, or quoted (`"[2001:db8::1]:443"`, RFC 7239 §6).
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, _) = rest.split_once(']')?;
        return ip.parse().ok();
    }
    let (ip, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The key an address is limited by: itself for IPv4, its /64 for IPv6.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// The coarse key of an address once the per-address limiter is full: its /24 (IPv4) or /48
/// (IPv6), the blocks one network usually holds.
pub(crate) fn address_network(ip: &IpAddr) -> IpAddr {
    match canonical(*ip) {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xffff_ff00).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 80) - 1)).into()),
    }
}

/// `429 Too Many Requests` with `Retry-After` and `message` (which must say nothing about the
/// configured limits to a caller who is not authenticated).
pub(crate) fn too_many_requests(limited: RateLimited, message: &str) -> http::Response<Body> {
    let mut response = text(StatusCode::TOO_MANY_REQUESTS, message);
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, limited.retry_after_secs().into());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_written_and_refuse_the_rest() {
        // (written, Ok(Some((count, period secs))) / Ok(None) for off / Err)
        // (count, period in seconds) of a rate that parses; `None` for off.
        type Parsed = Result<Option<(u32, u64)>, RateParseError>;
        let rows: [(&str, Parsed); 12] = [
            ("100/s", Ok(Some((100, 1)))),
            (" 600 / min ", Ok(Some((600, 60)))),
            ("50/h", Ok(Some((50, 3600)))),
            ("1/hour", Ok(Some((1, 3600)))),
            ("off", Ok(None)),
            ("OFF", Ok(None)),
            ("0", Ok(None)),
            ("0/s", Err(RateParseError)),
            ("100", Err(RateParseError)),
            ("100/d", Err(RateParseError)),
            ("-1/s", Err(RateParseError)),
            ("1.5/s", Err(RateParseError)),
        ];
        for (written, expected) in rows {
            let got = Rate::parse_setting(written).map(|r| r.map(|r| (r.count.get(), r.period.as_secs())));
            assert_eq!(got, expected, "{written:?}");
        }
        assert_eq!(Rate::from_str("600/min").unwrap().to_string(), "600/min");
    }

    #[test]
    fn a_key_gets_its_burst_then_waits_while_others_pass() {
        let limiter = KeyedLimiter::new("test", "3/min".parse().unwrap(), 100, |k| *k);
        for _ in 0..3 {
            assert_eq!(limiter.check(&"a"), Ok(()));
        }
        let refused = limiter.check(&"a").unwrap_err();
        // One token every 20 s: the next one is at most 20 s away.
        assert!(refused.retry_after <= Duration::from_secs(20), "{refused:?}");
        assert!((1..=20).contains(&refused.retry_after_secs()));
        assert_eq!(limiter.check(&"b"), Ok(()));
    }

    #[test]
    fn keys_past_the_bound_share_one_bucket() {
        // Coarse key: the tens (0–9 → 0, 10–19 → 10…).
        let limiter = KeyedLimiter::new("test", "2/h".parse().unwrap(), 3, |k: &u32| k / 10 * 10);
        for key in [1, 2, 3] {
            assert_eq!(limiter.check(&key), Ok(()));
        }
        // Keys past the bound are limited by their coarse key: 11 and 12 share the bucket of 10,
        // 21 has one of its own (20), and once 3 keys of each kind are tracked, the rest share
        // one last bucket.
        // (key, passes)
        let rows = [
            (11, true),
            (12, true),
            (13, false),
            (21, true),
            (31, true),
            (41, true),
            (51, true),
            (61, false),
        ];
        for (key, passes) in rows {
            assert_eq!(limiter.check(&key).is_ok(), passes, "key {key}");
        }
        assert_eq!(limiter.tracked(), 6);
        // Tracked keys keep their own buckets.
        assert_eq!(limiter.check(&1), Ok(()));
    }

    #[test]
    fn the_client_address_is_the_first_untrusted_hop_from_the_right() {
        let xff = TrustedProxies::parse(
            &["10.0.0.0/8".into(), "192.0.2.7".into()],
            ForwardedHeader::XForwardedFor,
        )
        .unwrap();
        let fwd = TrustedProxies::parse(&["10.0.0.0/8".into()], ForwardedHeader::Forwarded).unwrap();
        let none = TrustedProxies::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // (proxies, peer, header name, header value, expected client when forwarded)
        let rows: [(&TrustedProxies, &str, &str, &str, Option<&str>); 15] = [
            (&none, "10.1.1.1", "x-forwarded-for", "203.0.113.9", None),
            (&xff, "198.51.100.1", "x-forwarded-for", "203.0.113.9", None),
            (
                &xff,
                "10.1.1.1",
                "x-forwarded-for",
                "203.0.113.9",
                Some("203.0.113.9"),
            ),
            (
                &xff,
                "10.1.1.1",
                "x-forwarded-for",
                "6.6.6.6, 203.0.113.9",
                Some("203.0.113.9"),
            ),
            (
                &xff,
                "10.1.1.1",
                "x-forwarded-for",
                "203.0.113.9, 192.0.2.7",
                Some("203.0.113.9"),
            ),
            (
                &xff,
                "10.1.1.1",
                "x-forwarded-for",
                "10.2.2.2, 10.3.3.3",
                Some("10.2.2.2"),
            ),
            (
                &xff,
                "10.1.1.1",
                "x-forwarded-for",
                "203.0.113.9:5000",
                Some("203.0.113.9"),
            ),
            (
                &xff,
                "10.1.1.1",
                "x-forwarded-for",
                "[2001:db8::1]:443",
                Some("2001:db8::1"),
            ),
            (&xff, "10.1.1.1", "x-forwarded-for", "unknown", None),
            (&xff, "10.1.1.1", "x-forwarded-for", "6.6.6.6, garbage", None),
            (&xff, "10.1.1.1", "forwarded", "for=203.0.113.9", None),
            (
                &fwd,
                "10.1.1.1",
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8::1]:80\";proto=https",
                Some("2001:db8::1"),
            ),
            (&fwd, "10.1.1.1", "x-forwarded-for", "203.0.113.9", None),
            (
                &xff,
                "::ffff:10.1.1.1",
                "x-forwarded-for",
                "::ffff:203.0.113.9",
                Some("203.0.113.9"),
            ),
            (
                &xff,
                "10.1.1.1",
                "x-forwarded-for",
                "\u{ff}, 203.0.113.9",
                Some("203.0.113.9"),
            ),
        ];
        for (proxies, peer, name, value, expected) in rows {
            let mut headers = HeaderMap::new();
            // Raw bytes: a client may send any byte above 0x7f (U+00FF stands for 0xff).
            let bytes: Vec<u8> = value.chars().map(|c| c as u32 as u8).collect();
            headers.insert(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_bytes(&bytes).unwrap(),
            );
            assert_eq!(
                proxies.forwarded_for(ip(peer), &headers),
                expected.map(ip),
                "{peer} {name}: {value}"
            );
        }
        for entry in ["10.0.0.0/33", "nginx", "0.0.0.0/0", "::/0"] {
            assert_eq!(
                TrustedProxies::parse(&[entry.into()], ForwardedHeader::XForwardedFor),
                Err(ProxyParseError(entry.into())),
                "{entry}"
            );
        }
    }

    #[test]
    fn ipv6_addresses_share_their_64_block() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            address_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(address_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(address_key(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(address_network(&ip("192.0.2.77")), ip("192.0.2.0"));
        assert_eq!(address_network(&ip("2001:db8:1:2:3::1")), ip("2001:db8:1::"));
    }
}
