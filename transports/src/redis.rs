//! Redis, where replicas keep what they share (`REDIS_URL`).
//!
//! [`RedisStore`] holds one reconnecting connection (redis-rs `ConnectionManager`), made lazily:
//! a Redis that is down at start-up, or goes down later, costs each operation at most the
//! configured timeout, and the callers go on without it (the downstream-token cache exchanges
//! as a lone replica would). `redis://`, `rediss://` (TLS, as managed Redis offerings require)
//! and `redis+unix://` URLs are accepted, with a password or an ACL user and password in the URL.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands as _;
use thiserror::Error;
use verifiers::{SharedStoreError, SharedTokenStore};

/// `REDIS_URL` cannot be used.
#[derive(Debug, Error)]
#[error("REDIS_URL must be a redis://, rediss:// or redis+unix:// URL such as rediss://:<password>@<host>:6380 ({0})")]
pub struct RedisConfigError(String);

/// A connection to Redis shared by everything that keeps state across replicas.
#[derive(Clone)]
pub struct RedisStore {
    manager: ConnectionManager,
    timeout: Duration,
    shown: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.shown)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store at `url`, connecting on first use; every operation (connecting included) gives
    /// up after `timeout`. Must be called inside a Tokio runtime.
    ///
    /// # Errors
    /// [`RedisConfigError`] when `url` is not a Redis URL.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RedisConfigError> {
        let shown = redacted(url);
        let client = redis::Client::open(url).map_err(|e| RedisConfigError(format!("{:?}", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(timeout);
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RedisConfigError(format!("{:?}", e.kind())))?;
        Ok(RedisStore {
            manager,
            timeout,
            shown,
        })
    }

    /// The URL without its password, for logs.
    pub fn url_for_log(&self) -> &str {
        &self.shown
    }

    /// `Ok` when Redis answers `PING` in time.
    ///
    /// # Errors
    /// What went wrong, without the URL's credentials.
    pub async fn ping(&self) -> Result<(), SharedStoreError> {
        let mut connection = self.manager.clone();
        self.bounded(async move { redis::cmd("PING").query_async::<String>(&mut connection).await })
            .await
            .map(|_| ())
    }

    async fn bounded<T>(
        &self,
        operation: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, SharedStoreError> {
        match tokio::time::timeout(self.timeout, operation).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(SharedStoreError(format!("redis: {:?}", error.kind()))),
            Err(_) => Err(SharedStoreError(format!(
                "redis: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

#[async_trait::async_trait]
impl SharedTokenStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SharedStoreError> {
        let mut connection = self.manager.clone();
        self.bounded(async move { connection.get::<_, Option<Vec<u8>>>(key).await })
            .await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), SharedStoreError> {
        let mut connection = self.manager.clone();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.bounded(async move { connection.pset_ex::<_, _, ()>(key, value, millis).await })
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), SharedStoreError> {
        let mut connection = self.manager.clone();
        self.bounded(async move { connection.del::<_, ()>(key).await })
            .await
    }
}

/// `url` with any password replaced by `***`.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            let query: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "pass" || k == "password" {
                        "***".into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !query.is_empty() {
                parsed.query_pairs_mut().clear().extend_pairs(query);
            }
            parsed.to_string()
        }
        Err(_) => "<not a URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_the_log() {
        let rows = [
            (
                "rediss://:s3cret@cache.redis.azure.net:6380",
                "rediss://:***@cache.redis.azure.net:6380",
            ),
            (
                "redis://app:s3cret@10.0.0.4:6379/0",
                "redis://app:***@10.0.0.4:6379/0",
            ),
            (
                "redis+unix:///run/redis.sock?pass=s3cret&db=1",
                "redis+unix:///run/redis.sock?pass=***&db=1",
            ),
            ("redis://10.0.0.4", "redis://10.0.0.4"),
            ("not a url s3cret", "<not a URL>"),
        ];
        for (url, shown) in rows {
            assert_eq!(redacted(url), shown);
        }
    }

    #[tokio::test]
    async fn a_redis_that_is_not_there_fails_in_time() {
        // A port nothing listens on (bound and released): refused or timed out, never hung.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store =
            RedisStore::new(&format!("redis://127.0.0.1:{port}"), Duration::from_millis(300)).unwrap();
        let started = std::time::Instant::now();
        assert!(store.get("k").await.is_err());
        assert!(store.ping().await.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(RedisStore::new("http://x", Duration::from_millis(1)).is_err());
    }
}

/// Legacy sessions shared by the replicas: rmcp's [`SessionStore`] (each session's `initialize`
/// parameters, so a replica that does not know a session replays its handshake) and, beside it,
/// who owns the session, so a restored session is served to its owner only.
///
/// Both keys live `ttl` (`SESSION_IDLE_TIMEOUT_SECS`) after the session's last request on any
/// replica; a `DELETE` on any replica removes both, and every replica then answers `404` for it.
///
/// [`SessionStore`]: rmcp::transport::streamable_http_server::session::store::SessionStore
#[derive(Debug, Clone)]
pub struct RedisSessions {
    store: RedisStore,
    ttl: Duration,
}

/// Who owns a shared session, and the protocol version it negotiated (once known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SharedOwner {
    pub(crate) owner: crate::http::Principal,
    pub(crate) protocol_version: Option<String>,
}

impl RedisSessions {
    /// Sessions in `store`, kept `ttl` after their last use.
    pub fn new(store: RedisStore, ttl: Duration) -> Self {
        RedisSessions { store, ttl }
    }

    /// `Ok` when Redis answers `PING` in time.
    ///
    /// # Errors
    /// What went wrong, without the URL's credentials.
    pub async fn ping(&self) -> Result<(), SharedStoreError> {
        self.store.ping().await
    }

    fn state_key(id: &str) -> String {
        format!("mcp-server-entra:session:{id}")
    }

    fn owner_key(id: &str) -> String {
        format!("mcp-server-entra:session-owner:{id}")
    }

    fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs().max(1)
    }

    /// Records the owner of session `id` (and its protocol version, when known).
    pub(crate) async fn set_owner(&self, id: &str, owner: &SharedOwner) -> Result<(), SharedStoreError> {
        let value = serde_json::json!({
            "tid": owner.owner.tenant_id,
            "oid": owner.owner.object_id,
            "version": owner.protocol_version,
        })
        .to_string();
        let mut connection = self.store.manager.clone();
        let (key, ttl) = (Self::owner_key(id), self.ttl_secs());
        self.store
            .bounded(async move { connection.set_ex::<_, _, ()>(key, value, ttl).await })
            .await
    }

    /// The owner of session `id`, if any replica opened it and it has not ended.
    pub(crate) async fn owner(&self, id: &str) -> Result<Option<SharedOwner>, SharedStoreError> {
        let mut connection = self.store.manager.clone();
        let key = Self::owner_key(id);
        let value = self
            .store
            .bounded(async move { connection.get::<_, Option<String>>(key).await })
            .await?;
        let Some(value) = value else {
            return Ok(None);
        };
        let parsed: serde_json::Value = serde_json::from_str(&value)
            .map_err(|_| SharedStoreError("redis: a malformed session owner".into()))?;
        let text = |name: &str| parsed[name].as_str().map(str::to_owned);
        match (text("tid"), text("oid")) {
            (Some(tenant_id), Some(object_id)) if !tenant_id.is_empty() && !object_id.is_empty() => {
                Ok(Some(SharedOwner {
                    owner: crate::http::Principal { tenant_id, object_id },
                    protocol_version: text("version"),
                }))
            }
            _ => Err(SharedStoreError("redis: a malformed session owner".into())),
        }
    }

    /// Extends session `id`'s life by the TTL from now; `false` when it no longer exists (ended
    /// on another replica, or idle everywhere past the TTL).
    pub(crate) async fn touch(&self, id: &str) -> Result<bool, SharedStoreError> {
        let mut connection = self.store.manager.clone();
        let ttl = i64::try_from(self.ttl_secs()).unwrap_or(i64::MAX);
        let (owner, state) = (Self::owner_key(id), Self::state_key(id));
        let (owner_alive, _): (bool, bool) = self
            .store
            .bounded(async move {
                redis::pipe()
                    .expire(owner, ttl)
                    .expire(state, ttl)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(owner_alive)
    }
}

type StoreResult<T> = Result<T, rmcp::transport::streamable_http_server::session::store::SessionStoreError>;

#[async_trait::async_trait]
impl rmcp::transport::streamable_http_server::session::store::SessionStore for RedisSessions {
    async fn load(
        &self,
        session_id: &str,
    ) -> StoreResult<Option<rmcp::transport::streamable_http_server::session::store::SessionState>> {
        let mut connection = self.store.manager.clone();
        let key = Self::state_key(session_id);
        let value = self
            .store
            .bounded(async move { connection.get::<_, Option<Vec<u8>>>(key).await })
            .await?;
        Ok(match value {
            Some(value) => Some(serde_json::from_slice(&value)?),
            None => None,
        })
    }

    async fn store(
        &self,
        session_id: &str,
        state: &rmcp::transport::streamable_http_server::session::store::SessionState,
    ) -> StoreResult<()> {
        let value = serde_json::to_vec(state)?;
        let mut connection = self.store.manager.clone();
        let (key, ttl) = (Self::state_key(session_id), self.ttl_secs());
        Ok(self
            .store
            .bounded(async move { connection.set_ex::<_, _, ()>(key, value, ttl).await })
            .await?)
    }

    async fn delete(&self, session_id: &str) -> StoreResult<()> {
        let mut connection = self.store.manager.clone();
        let keys = [Self::state_key(session_id), Self::owner_key(session_id)];
        Ok(self
            .store
            .bounded(async move { connection.del::<_, ()>(&keys).await })
            .await?)
    }
}
