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
use std::sync::{Mutex, MutexGuard};

use aws_lc_rs::digest::{digest, SHA256};

use crate::Identity;

type Digest = [u8; 32];

struct Entry {
    identity: Identity,
    /// Unix seconds after which the entry must not be used (`exp` + leeway).
    valid_until: u64,
    generation: u64,
}

pub(crate) struct TokenCache {
    capacity: usize,
    entries: Mutex<HashMap<Digest, Entry>>,
}

impl TokenCache {
    /// A cache of at most `capacity` identities; 0 disables caching.
    pub(crate) fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<Digest, Entry>> {
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
    pub(crate) fn get(&self, key: &Digest, now: u64, generation: u64) -> Option<Identity> {
        if self.capacity == 0 {
            return None;
        }
        let map = self.map();
        let entry = map.get(key)?;
        (entry.generation == generation && now < entry.valid_until).then(|| entry.identity.clone())
    }

    pub(crate) fn insert(
        &self,
        key: Digest,
        identity: Identity,
        valid_until: u64,
        now: u64,
        generation: u64,
    ) {
        if self.capacity == 0 {
            return;
        }
        let mut map = self.map();
        if map.len() >= self.capacity {
            map.retain(|_, e| e.generation == generation && now < e.valid_until);
            if map.len() >= self.capacity {
                // Still full of live tokens: start over rather than track recency on the hot path.
                map.clear();
            }
        }
        map.insert(
            key,
            Entry {
                identity,
                valid_until,
                generation,
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(oid: &str) -> Identity {
        Identity::builder(oid, "t").build()
    }

    #[test]
    fn hit_until_expiry_then_miss() {
        let cache = TokenCache::new(10);
        let key = TokenCache::key("token-a");
        cache.insert(key, id("a"), 1000, 900, 1);
        assert_eq!(cache.get(&key, 999, 1).map(|i| i.object_id), Some("a".into()));
        assert!(
            cache.get(&key, 1000, 1).is_none(),
            "expired entries are never served"
        );
    }

    #[test]
    fn a_key_refresh_invalidates_entries() {
        let cache = TokenCache::new(10);
        let key = TokenCache::key("token-a");
        cache.insert(key, id("a"), 1000, 900, 1);
        assert!(cache.get(&key, 950, 2).is_none());
    }

    #[test]
    fn different_tokens_do_not_share_entries() {
        let cache = TokenCache::new(10);
        cache.insert(TokenCache::key("token-a"), id("a"), 1000, 900, 1);
        assert!(cache.get(&TokenCache::key("token-b"), 950, 1).is_none());
    }

    #[test]
    fn stays_within_capacity() {
        let cache = TokenCache::new(3);
        for i in 0..10 {
            cache.insert(TokenCache::key(&format!("t{i}")), id("x"), 1000, 900, 1);
            assert!(cache.len() <= 3);
        }
    }

    #[test]
    fn zero_capacity_disables_caching() {
        let cache = TokenCache::new(0);
        let key = TokenCache::key("t");
        cache.insert(key, id("a"), 1000, 900, 1);
        assert!(cache.get(&key, 950, 1).is_none());
    }
}
