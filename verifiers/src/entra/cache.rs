//! A bounded cache of verified tokens, so a client sending the same token again skips the RSA
//! work (about 15 µs of CPU per request).
//!
//! Security trade-off, kept small on purpose:
//! - Keys are SHA-256 digests of tokens; the tokens themselves are never stored.
//! - An entry is used only until the token's own `exp` (plus leeway): expiry is re-checked on every
//!   hit, exactly as a fresh verification would.
//! - Every other check depends only on the token's bytes, our settings and the signing keys. The
//!   first two never change while the process runs; entries are tagged with the key-set
//!   generation and ignored once the keys are refreshed, so a key Entra withdraws stops being
//!   honoured at the same moment as without a cache.
//! - Entra access tokens cannot be revoked one by one (there is no introspection), so a cache
//!   cannot keep alive a token that a re-verification would refuse.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use aws_lc_rs::digest::{digest, SHA256};

use crate::Identity;

type Digest = [u8; 32];

struct Entry {
    identity: Arc<Identity>,
    /// What this entry costs, as [`entry_cost`] estimates it.
    bytes: usize,
    /// Unix seconds after which the entry must not be used (`exp` + leeway).
    valid_until: u64,
    generation: u64,
}

/// The entries and their total cost.
#[derive(Default)]
struct Entries {
    map: HashMap<Digest, Entry>,
    bytes: usize,
}

pub(crate) struct TokenCache {
    capacity: usize,
    max_bytes: usize,
    entries: Mutex<Entries>,
}

/// Roughly what an entry holds in memory: its identity (every claim, parsed) plus the map's own
/// overhead. Large tokens make large entries, so a byte bound is needed beside the count.
pub(crate) fn entry_cost(identity: &Identity) -> usize {
    fn value(v: &serde_json::Value) -> usize {
        use serde_json::Value;
        32 + match v {
            Value::String(s) => s.len(),
            Value::Array(items) => items.iter().map(value).sum(),
            Value::Object(map) => map.iter().map(|(k, v)| 32 + k.len() + value(v)).sum(),
            _ => 0,
        }
    }
    let strings = [&identity.subject, &identity.object_id, &identity.tenant_id]
        .iter()
        .map(|s| s.len())
        .chain(identity.name.iter().map(String::len))
        .chain(identity.username.iter().map(String::len))
        .chain(identity.client_app.iter().map(String::len))
        .chain(
            identity
                .scopes
                .iter()
                .chain(&identity.roles)
                .map(|s| 24 + s.len()),
        )
        .sum::<usize>();
    let claims: usize = identity.claims.iter().map(|(k, v)| 32 + k.len() + value(v)).sum();
    std::mem::size_of::<(Digest, Entry)>() + strings + claims
}

impl TokenCache {
    /// A cache of at most `capacity` identities holding at most `max_bytes` (as
    /// [`entry_cost`] counts them); either 0 disables caching.
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        TokenCache {
            capacity: if max_bytes == 0 { 0 } else { capacity },
            max_bytes,
            entries: Mutex::new(Entries::default()),
        }
    }

    fn map(&self) -> MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn key(token: &str) -> Digest {
        let mut key = [0u8; 32];
        key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        key
    }

    /// The identity verified for this token, if it is still valid at `now` under `generation`.
    pub(crate) fn get(&self, key: &Digest, now: u64, generation: u64) -> Option<Arc<Identity>> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.map();
        let entry = entries.map.get(key)?;
        (entry.generation == generation && now < entry.valid_until).then(|| Arc::clone(&entry.identity))
    }

    pub(crate) fn insert(
        &self,
        key: Digest,
        identity: Arc<Identity>,
        valid_until: u64,
        now: u64,
        generation: u64,
    ) {
        if self.capacity == 0 {
            return;
        }
        let bytes = entry_cost(&identity);
        if bytes > self.max_bytes {
            return;
        }
        let mut entries = self.map();
        let Entries { map, bytes: total } = &mut *entries;
        if let Some(old) = map.remove(&key) {
            *total -= old.bytes;
        }
        if map.len() >= self.capacity || *total + bytes > self.max_bytes {
            map.retain(|_, e| e.generation == generation && now < e.valid_until);
            *total = map.values().map(|e| e.bytes).sum();
            if map.len() >= self.capacity || *total + bytes > self.max_bytes {
                // Still full of live tokens: start over rather than track recency on the hot path.
                map.clear();
                *total = 0;
            }
        }
        *total += bytes;
        map.insert(
            key,
            Entry {
                identity,
                bytes,
                valid_until,
                generation,
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map().map.len()
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.map().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(oid: &str) -> Arc<Identity> {
        Arc::new(Identity::builder(oid, "t").build())
    }

    #[test]
    fn hit_until_expiry_then_miss() {
        let cache = TokenCache::new(10, 1 << 20);
        let key = TokenCache::key("token-a");
        cache.insert(key, id("a"), 1000, 900, 1);
        assert_eq!(
            cache.get(&key, 999, 1).map(|i| i.object_id.clone()),
            Some("a".into())
        );
        assert!(
            cache.get(&key, 1000, 1).is_none(),
            "expired entries are never served"
        );
    }

    #[test]
    fn a_key_refresh_invalidates_entries() {
        let cache = TokenCache::new(10, 1 << 20);
        let key = TokenCache::key("token-a");
        cache.insert(key, id("a"), 1000, 900, 1);
        assert!(cache.get(&key, 950, 2).is_none());
    }

    #[test]
    fn different_tokens_do_not_share_entries() {
        let cache = TokenCache::new(10, 1 << 20);
        cache.insert(TokenCache::key("token-a"), id("a"), 1000, 900, 1);
        assert!(cache.get(&TokenCache::key("token-b"), 950, 1).is_none());
    }

    #[test]
    fn stays_within_capacity() {
        let cache = TokenCache::new(3, 1 << 20);
        for i in 0..10 {
            cache.insert(TokenCache::key(&format!("t{i}")), id("x"), 1000, 900, 1);
            assert!(cache.len() <= 3);
        }
    }

    #[test]
    fn stays_within_its_byte_bound_whatever_the_token_size() {
        let big = |i: usize| {
            let mut identity = Identity::builder(format!("oid{i}"), "t").build();
            identity
                .claims
                .insert("blob".into(), serde_json::Value::String("x".repeat(16 * 1024)));
            Arc::new(identity)
        };
        let cost = entry_cost(&big(0));
        assert!(cost > 16 * 1024, "{cost}");
        let cache = TokenCache::new(10_000, 5 * cost);
        for i in 0..100 {
            cache.insert(TokenCache::key(&format!("t{i}")), big(i), 1000, 900, 1);
            assert!(
                cache.bytes() <= 5 * cost && cache.len() <= 5,
                "{} {}",
                cache.bytes(),
                cache.len()
            );
        }
        // An entry larger than the whole bound is never stored; a zero bound disables the cache.
        let tiny = TokenCache::new(10, cost - 1);
        tiny.insert(TokenCache::key("t"), big(0), 1000, 900, 1);
        assert_eq!(tiny.len(), 0);
        let off = TokenCache::new(10, 0);
        off.insert(TokenCache::key("t"), id("a"), 1000, 900, 1);
        assert!(off.get(&TokenCache::key("t"), 950, 1).is_none());
    }

    #[test]
    fn zero_capacity_disables_caching() {
        let cache = TokenCache::new(0, 1 << 20);
        let key = TokenCache::key("t");
        cache.insert(key, id("a"), 1000, 900, 1);
        assert!(cache.get(&key, 950, 1).is_none());
    }
}
