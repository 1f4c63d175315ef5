//! The second level of the downstream-token cache: a store every replica shares (Redis), so one
//! on-behalf-of exchange serves a user on all of them.
//!
//! The store holds only ciphertext: each entry is AES-256-GCM with a key the operator supplies
//! ([`TokenCacheKeys`]), the store key as associated data (an entry moved to another user's key
//! does not decrypt), and the key's id in front so keys can rotate: the first key writes, every
//! key reads. Store keys are SHA-256 digests of (tenant, `oid`, client app, scopes), so the store
//! does not list who is cached either. An entry lives in the store as long as the token may be
//! used (its own `expires_in`, less the refresh margin). The store is always optional: when it
//! fails or is slow, the replica exchanges as it would alone.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::cache::Key;

/// A failed store operation (unreachable, timed out, refused). The text never holds a value.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct SharedStoreError(pub String);

/// A key-value store shared by the server's replicas, with expiry.
#[async_trait::async_trait]
pub trait SharedTokenStore: Send + Sync + std::fmt::Debug + 'static {
    /// The value under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SharedStoreError>;
    /// Stores `value` under `key` for `ttl`.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), SharedStoreError>;
    /// Removes `key`.
    async fn delete(&self, key: &str) -> Result<(), SharedStoreError>;
}

/// A `DOWNSTREAM_CACHE_KEYS` entry that is not a key.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheKeyError {
    /// No key at all.
    #[error("DOWNSTREAM_CACHE_KEYS is empty; give at least one key (32 random bytes, base64: openssl rand -base64 32)")]
    None,
    /// Entry `index` (from 1) is not 32 bytes of base64.
    #[error("DOWNSTREAM_CACHE_KEYS entry {0} is not 32 bytes of base64 (openssl rand -base64 32)")]
    Malformed(usize),
}

/// The operator's keys for the shared cache: the first encrypts, every one decrypts (rotation:
/// put the new key first, keep the old one until the entries it wrote have expired, at most a
/// token lifetime, then remove it).
pub struct TokenCacheKeys {
    /// (key id: the first 8 bytes of SHA-256 of the key, the key).
    keys: Vec<([u8; 8], LessSafeKey)>,
}

impl std::fmt::Debug for TokenCacheKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCacheKeys")
            .field("keys", &self.keys.len())
            .finish()
    }
}

const FORMAT: u8 = 1;

/// What an entry holds, before encryption.
#[derive(Serialize, Deserialize)]
struct Plain {
    token: String,
    /// Unix seconds after which the token is not used.
    use_until: u64,
}

impl TokenCacheKeys {
    /// Parses base64 keys of 32 bytes each, the writing key first.
    ///
    /// # Errors
    /// [`CacheKeyError`] for an empty list or an entry that is not 32 bytes of base64.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, CacheKeyError> {
        if entries.is_empty() {
            return Err(CacheKeyError::None);
        }
        let keys = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let bytes = STANDARD
                    .decode(entry.as_ref().trim())
                    .ok()
                    .filter(|b| b.len() == 32)
                    .ok_or(CacheKeyError::Malformed(i + 1))?;
                // A label in front, so the id is no plain hash of the key.
                let mut labelled = b"mcp-server-entra downstream cache key id ".to_vec();
                labelled.extend_from_slice(&bytes);
                let mut id = [0u8; 8];
                id.copy_from_slice(&digest(&SHA256, &labelled).as_ref()[..8]);
                let key =
                    UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| CacheKeyError::Malformed(i + 1))?;
                Ok((id, LessSafeKey::new(key)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TokenCacheKeys { keys })
    }

    /// `version | key id (8) | nonce (12) | ciphertext and tag` of `token`, usable until
    /// `use_until`, bound to `store_key`. `None` only if the system's random source fails.
    pub(crate) fn seal(&self, store_key: &str, token: &str, use_until: SystemTime) -> Option<Vec<u8>> {
        let (id, key) = self.keys.first()?;
        let plain = Plain {
            token: token.to_owned(),
            use_until: use_until.duration_since(UNIX_EPOCH).ok()?.as_secs(),
        };
        let mut data = serde_json::to_vec(&plain).ok()?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(store_key.as_bytes()),
            &mut data,
        )
        .ok()?;
        let mut sealed = Vec::with_capacity(1 + 8 + NONCE_LEN + data.len());
        sealed.push(FORMAT);
        sealed.extend_from_slice(id);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&data);
        Some(sealed)
    }

    /// The token and its use-until time, if `sealed` was written by one of these keys for
    /// `store_key` and was not altered.
    pub(crate) fn open(&self, store_key: &str, sealed: &[u8]) -> Option<(String, SystemTime)> {
        let (&format, rest) = sealed.split_first()?;
        if format != FORMAT || rest.len() < 8 + NONCE_LEN {
            return None;
        }
        let (id, rest) = rest.split_at(8);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let (_, key) = self.keys.iter().find(|(k, _)| k == id)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = ciphertext.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(store_key.as_bytes()), &mut data)
            .ok()?;
        let plain: Plain = serde_json::from_slice(plain).ok()?;
        let use_until = UNIX_EPOCH.checked_add(Duration::from_secs(plain.use_until))?;
        Some((plain.token, use_until))
    }
}

/// The store key of a cache key: `obo:` and the hex SHA-256 of its parts, so the store names no
/// user, tenant or scope (the store puts its own prefix in front).
pub(crate) fn store_key(key: &Key) -> String {
    let joined = [&key.tenant, &key.object_id, &key.client_app, &key.scopes]
        .map(String::as_str)
        .join("\u{0}");
    let hash = digest(&SHA256, joined.as_bytes());
    let hex: String = hash.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("obo:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(entries: &[&str]) -> TokenCacheKeys {
        TokenCacheKeys::parse(entries).unwrap()
    }

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    #[test]
    fn sealed_entries_open_only_under_their_key_and_store_key() {
        let until = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let old = keys(&[K1]);
        let sealed = old.seal("k", "the-token", until).unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"the-token"), "no plaintext");
        assert_eq!(old.open("k", &sealed), Some(("the-token".to_owned(), until)));
        // Another store key (another user's entry moved here): refused.
        assert_eq!(old.open("other", &sealed), None);
        // Rotation: the new key first; old entries still open, new ones are the new key's.
        let rotated = keys(&[K2, K1]);
        assert_eq!(rotated.open("k", &sealed), Some(("the-token".to_owned(), until)));
        let fresh = rotated.seal("k", "next", until).unwrap();
        assert_eq!(
            old.open("k", &fresh),
            None,
            "the old key cannot read the new key's entry"
        );
        assert_eq!(
            keys(&[K2]).open("k", &sealed),
            None,
            "a retired key's entries are gone"
        );
        // Any change is refused.
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 1;
            assert_eq!(old.open("k", &altered), None, "byte {i}");
        }
        assert_eq!(old.open("k", &sealed[..10]), None);
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert_eq!(
            TokenCacheKeys::parse::<&str>(&[]).unwrap_err(),
            CacheKeyError::None
        );
        for (entries, bad) in [(vec![K1, "c2hvcnQ="], 2), (vec!["not base64!"], 1)] {
            assert_eq!(
                TokenCacheKeys::parse(&entries).unwrap_err(),
                CacheKeyError::Malformed(bad)
            );
        }
    }

    #[test]
    fn store_keys_name_nobody_and_never_mix() {
        let key = |tenant: &str, oid: &str, app: &str, scopes: &str| Key {
            tenant: tenant.into(),
            object_id: oid.into(),
            client_app: app.into(),
            scopes: scopes.into(),
        };
        let a = store_key(&key("t", "alice", "app", "s"));
        assert!(!a.contains("alice"));
        // The separator keeps ("t", "ab") and ("ta", "b") apart.
        assert_ne!(
            store_key(&key("t", "ab", "", "")),
            store_key(&key("ta", "b", "", ""))
        );
        assert_ne!(a, store_key(&key("t", "alice", "app", "s2")));
        assert_ne!(a, store_key(&key("t", "alice", "app2", "s")));
    }
}
