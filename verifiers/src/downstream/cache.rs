//! Downstream tokens, per (tenant, user object id, client app, scopes), with one exchange in flight per key.
//!
//! Each key owns a slot behind an async mutex: the first caller holds it while it exchanges, the
//! others wait on it and then find the fresh token, so concurrent calls cost one exchange. The
//! map is bounded: when full, expired and idle slots go first, then the one expiring soonest; if
//! every slot is busy the caller gets an uncached slot (correct, merely not shared).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

/// Whose token, for what. Two users never share a key, hence never a token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) tenant: String,
    pub(crate) object_id: String,
    /// `azp`/`appid` of the caller's token.
    pub(crate) client_app: String,
    pub(crate) scopes: String,
}

/// A downstream access token and the moment to stop using it.
#[derive(Clone)]
pub(crate) struct Cached {
    pub(crate) token: Arc<str>,
    pub(crate) use_until: Instant,
}

pub(crate) type Slot = tokio::sync::Mutex<Option<Cached>>;

pub(crate) struct TokenCache {
    max_entries: usize,
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
}

impl TokenCache {
    pub(crate) fn new(max_entries: usize) -> Self {
        TokenCache {
            max_entries,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The slot of `key`, created if needed.
    pub(crate) fn slot(&self, key: &Key) -> Arc<Slot> {
        let mut slots = self.lock();
        if let Some(slot) = slots.get(key) {
            return slot.clone();
        }
        let slot = Arc::new(Slot::new(None));
        if self.max_entries == 0 {
            return slot;
        }
        if slots.len() >= self.max_entries {
            evict(&mut slots, self.max_entries);
        }
        if slots.len() < self.max_entries {
            slots.insert(key.clone(), slot.clone());
        }
        slot
    }

    /// Forgets `token` under `key` (a downstream API answered 401 to it), unless a newer token
    /// already replaced it.
    pub(crate) async fn invalidate(&self, key: &Key, token: &str) {
        let slot = self.lock().get(key).cloned();
        if let Some(slot) = slot {
            let mut cached = slot.lock().await;
            if cached.as_ref().is_some_and(|c| &*c.token == token) {
                *cached = None;
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Drops expired idle slots, then idle ones expiring soonest, until there is room for one more.
fn evict(slots: &mut HashMap<Key, Arc<Slot>>, max_entries: usize) {
    let now = Instant::now();
    // A slot referenced only by the map is idle; `try_lock` fails while one is being filled.
    let idle_expiry = |slot: &Arc<Slot>| -> Option<Option<Instant>> {
        if Arc::strong_count(slot) > 1 {
            return None;
        }
        slot.try_lock().ok().map(|c| c.as_ref().map(|c| c.use_until))
    };
    slots.retain(|_, slot| match idle_expiry(slot) {
        None => true,
        Some(None) => false,
        Some(Some(until)) => until > now,
    });
    while slots.len() >= max_entries {
        let victim = slots
            .iter()
            .filter_map(|(key, slot)| idle_expiry(slot).map(|t| (key.clone(), t)))
            .min_by_key(|(_, t)| *t)
            .map(|(key, _)| key);
        match victim {
            Some(key) => {
                slots.remove(&key);
            }
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(user: &str) -> Key {
        Key {
            tenant: "t".into(),
            object_id: user.into(),
            client_app: "c".into(),
            scopes: "s".into(),
        }
    }

    async fn fill(cache: &TokenCache, user: &str, secs: u64) {
        let slot = cache.slot(&key(user));
        *slot.lock().await = Some(Cached {
            token: Arc::from(format!("token-{user}")),
            use_until: Instant::now() + Duration::from_secs(secs),
        });
    }

    #[tokio::test]
    async fn users_get_their_own_slot_and_the_cache_stays_bounded() {
        let cache = TokenCache::new(2);
        fill(&cache, "a", 100).await;
        fill(&cache, "b", 10).await;
        assert!(!Arc::ptr_eq(&cache.slot(&key("a")), &cache.slot(&key("b"))));
        fill(&cache, "c", 100).await;
        assert_eq!(cache.len(), 2);
        // b expired soonest, so it went.
        assert!(cache.slot(&key("b")).lock().await.is_none());
    }

    #[tokio::test]
    async fn invalidate_drops_only_the_refused_token() {
        let cache = TokenCache::new(10);
        fill(&cache, "a", 100).await;
        cache.invalidate(&key("a"), "some-older-token").await;
        assert!(cache.slot(&key("a")).lock().await.is_some());
        cache.invalidate(&key("a"), "token-a").await;
        assert!(cache.slot(&key("a")).lock().await.is_none());
    }
}
