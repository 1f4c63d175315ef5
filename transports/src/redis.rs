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

/// The key prefix unless `REDIS_KEY_PREFIX` says otherwise.
pub const DEFAULT_KEY_PREFIX: &str = "mcp-server-entra";

/// `REDIS_URL` cannot be used.
#[derive(Debug, Error)]
#[error("REDIS_URL must be a redis://, rediss:// or redis+unix:// URL such as rediss://:<password>@<host>:6380 ({0})")]
pub struct RedisConfigError(String);

/// A connection to Redis shared by everything that keeps state across replicas.
#[derive(Clone)]
pub struct RedisStore {
    /// Replaced by a fresh one after an operation times out: a connection that went silent
    /// (a peer gone without a reset) is not noticed by the manager until TCP gives up.
    manager: std::sync::Arc<std::sync::Mutex<ConnectionManager>>,
    client: redis::Client,
    config: ConnectionManagerConfig,
    timeout: Duration,
    shown: String,
    /// Put in front of every key (`REDIS_KEY_PREFIX`), so deployments can share one Redis.
    prefix: std::sync::Arc<str>,
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
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|e| RedisConfigError(format!("{:?}", e.kind())))?;
        Ok(RedisStore {
            manager: std::sync::Arc::new(std::sync::Mutex::new(manager)),
            client,
            config,
            timeout,
            shown,
            prefix: std::sync::Arc::from(DEFAULT_KEY_PREFIX),
        })
    }

    /// Every key this store writes starts with `prefix` and a colon (`REDIS_KEY_PREFIX`).
    pub fn with_key_prefix(mut self, prefix: &str) -> Self {
        self.prefix = std::sync::Arc::from(prefix);
        self
    }

    /// `<prefix>:<name>`.
    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// The current connection (cheap: a handle to one multiplexed connection).
    fn connection(&self) -> ConnectionManager {
        self.manager
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Starts over with a new connection (made on its next use).
    fn reconnect(&self) {
        if let Ok(fresh) = ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            *self
                .manager
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        }
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
        let mut connection = self.connection();
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
            Err(_) => {
                self.reconnect();
                Err(SharedStoreError(format!(
                    "redis: no answer within {} ms",
                    self.timeout.as_millis()
                )))
            }
        }
    }
}

#[async_trait::async_trait]
impl SharedTokenStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SharedStoreError> {
        let key = self.key(key);
        let mut connection = self.connection();
        self.bounded(async move { connection.get::<_, Option<Vec<u8>>>(key).await })
            .await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), SharedStoreError> {
        let key = self.key(key);
        let mut connection = self.connection();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.bounded(async move { connection.pset_ex::<_, _, ()>(key, value, millis).await })
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), SharedStoreError> {
        let key = self.key(key);
        let mut connection = self.connection();
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

    fn state_key(&self, id: &str) -> String {
        self.store.key(&format!("session:{id}"))
    }

    fn owner_key(&self, id: &str) -> String {
        self.store.key(&format!("session-owner:{id}"))
    }

    fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs().max(1)
    }

    /// Records the owner of session `id` (and its protocol version, when known). With
    /// `only_if_present`, only while the record exists (an update never brings back a session
    /// ended elsewhere).
    pub(crate) async fn set_owner(
        &self,
        id: &str,
        owner: &SharedOwner,
        only_if_present: bool,
    ) -> Result<(), SharedStoreError> {
        let value = serde_json::json!({
            "tid": owner.owner.tenant_id,
            "oid": owner.owner.object_id,
            "version": owner.protocol_version,
        })
        .to_string();
        let mut connection = self.store.connection();
        let (key, ttl) = (self.owner_key(id), self.ttl_secs());
        self.store
            .bounded(async move {
                let mut set = redis::cmd("SET");
                set.arg(key).arg(value).arg("EX").arg(ttl);
                if only_if_present {
                    set.arg("XX");
                }
                set.query_async::<Option<String>>(&mut connection).await
            })
            .await
            .map(|_| ())
    }

    /// Ends session `id` everywhere (both records).
    pub(crate) async fn forget(&self, id: &str) -> Result<(), SharedStoreError> {
        let mut connection = self.store.connection();
        let keys = [self.state_key(id), self.owner_key(id)];
        self.store
            .bounded(async move { connection.del::<_, ()>(&keys).await })
            .await
    }

    /// The owner of session `id`, if any replica opened it and it has not ended.
    pub(crate) async fn owner(&self, id: &str) -> Result<Option<SharedOwner>, SharedStoreError> {
        let mut connection = self.store.connection();
        let key = self.owner_key(id);
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
        let mut connection = self.store.connection();
        let ttl = i64::try_from(self.ttl_secs()).unwrap_or(i64::MAX);
        let (owner, state) = (self.owner_key(id), self.state_key(id));
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

/// The most bytes of `initialize` parameters kept in Redis for one session.
pub const MAX_SHARED_SESSION_BYTES: usize = 16 * 1024;

type StoreResult<T> = Result<T, rmcp::transport::streamable_http_server::session::store::SessionStoreError>;

#[async_trait::async_trait]
impl rmcp::transport::streamable_http_server::session::store::SessionStore for RedisSessions {
    async fn load(
        &self,
        session_id: &str,
    ) -> StoreResult<Option<rmcp::transport::streamable_http_server::session::store::SessionState>> {
        let mut connection = self.store.connection();
        let key = self.state_key(session_id);
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
        // The client writes these parameters: only a session of ordinary size is shared (its
        // own replica serves a larger one).
        if value.len() > MAX_SHARED_SESSION_BYTES {
            return Err(Box::new(SharedStoreError(format!(
                "a session's initialize parameters are {} bytes, more than the {MAX_SHARED_SESSION_BYTES} shared",
                value.len()
            ))));
        }
        let mut connection = self.store.connection();
        let (key, ttl) = (self.state_key(session_id), self.ttl_secs());
        Ok(self
            .store
            .bounded(async move { connection.set_ex::<_, _, ()>(key, value, ttl).await })
            .await?)
    }

    async fn delete(&self, session_id: &str) -> StoreResult<()> {
        let mut connection = self.store.connection();
        let keys = [self.state_key(session_id), self.owner_key(session_id)];
        Ok(self
            .store
            .bounded(async move { connection.del::<_, ()>(&keys).await })
            .await?)
    }
}

/// The events of legacy sessions' streams in Redis, so a client that lost a stream resumes it
/// (`Last-Event-ID`) on any replica and gets what it missed, the final answer included.
///
/// Each event lives `retention` (`SSE_RETENTION_SECS`) under an unguessable id, with the list of
/// its stream's ids and the session its stream belongs to; Redis's own memory bound
/// (`maxmemory`, with a `volatile-*` eviction policy) bounds the bytes. When Redis does not
/// answer, events are kept in this replica's memory instead (`fallback`): the stream still
/// works, and resumes here.
#[derive(Debug)]
pub struct RedisEvents {
    store: RedisStore,
    retention: Duration,
    fallback: crate::http::MemoryEventStore,
}

impl RedisEvents {
    /// Events in the Redis of `sessions`, kept `retention`; `fallback` holds them while Redis
    /// does not answer.
    pub fn new(
        sessions: &RedisSessions,
        retention: Duration,
        fallback: crate::http::MemoryEventStore,
    ) -> Self {
        RedisEvents {
            store: sessions.store.clone(),
            retention,
            fallback,
        }
    }

    fn event_key(&self, id: &str) -> String {
        self.store.key(&format!("event:{id}"))
    }

    fn stream_key(&self, stream: &str) -> String {
        self.store.key(&format!("stream:{stream}"))
    }

    fn claim_key(&self, id: &str) -> String {
        self.store.key(&format!("event-session:{id}"))
    }

    fn ttl(&self) -> u64 {
        self.retention.as_secs().max(1)
    }

    /// The stream of event `id` in Redis (`None`: not there, or Redis silent).
    async fn redis_stream_of(&self, id: &str) -> Option<String> {
        let mut connection = self.store.connection();
        let key = self.event_key(id);
        let record = self
            .store
            .bounded(async move { connection.get::<_, Option<Vec<u8>>>(key).await })
            .await
            .ok()??;
        let record: serde_json::Value = serde_json::from_slice(&record).ok()?;
        record["stream"].as_str().map(str::to_owned)
    }

    /// The events of `stream` after `after` (all for `None`) in Redis; `None` when Redis is
    /// silent or `after` is not in the stream.
    async fn redis_after(&self, stream: &str, after: Option<&str>) -> Option<Vec<ServerSseMessage>> {
        let mut connection = self.store.connection();
        let key = self.stream_key(stream);
        let ids: Vec<String> = self
            .store
            .bounded(async move { connection.lrange::<_, Vec<String>>(key, 0, -1).await })
            .await
            .ok()?;
        let start = match after {
            None => 0,
            Some(after) => ids.iter().position(|id| id == after)? + 1,
        };
        let later = &ids[start.min(ids.len())..];
        if later.is_empty() {
            return Some(Vec::new());
        }
        let keys: Vec<String> = later.iter().map(|id| self.event_key(id)).collect();
        let mut connection = self.store.connection();
        let records: Vec<Option<Vec<u8>>> = self
            .store
            .bounded(async move { redis::cmd("MGET").arg(&keys).query_async(&mut connection).await })
            .await
            .ok()?;
        Some(
            later
                .iter()
                .zip(records)
                .filter_map(|(id, record)| decode_event(id, &record?))
                .collect(),
        )
    }
}

/// An event as Redis keeps it: its stream, its message (JSON-RPC) and its retry hint.
fn encode_event(stream: &str, event: &ServerSseMessage) -> Option<Vec<u8>> {
    let message = match &event.message {
        Some(message) => serde_json::to_value(message.as_ref()).ok()?,
        None => serde_json::Value::Null,
    };
    serde_json::to_vec(&serde_json::json!({
        "stream": stream,
        "message": message,
        "retry_ms": event.retry.map(|r| r.as_millis() as u64),
    }))
    .ok()
}

fn decode_event(id: &str, record: &[u8]) -> Option<ServerSseMessage> {
    let record: serde_json::Value = serde_json::from_slice(record).ok()?;
    let mut event = ServerSseMessage::default();
    event.event_id = Some(id.to_owned());
    if !record["message"].is_null() {
        event.message = Some(std::sync::Arc::new(
            serde_json::from_value(record["message"].clone()).ok()?,
        ));
    }
    event.retry = record["retry_ms"].as_u64().map(Duration::from_millis);
    Some(event)
}

use rmcp::transport::streamable_http_server::session::{
    EventId, EventStore, EventStoreError, EventStream, ServerSseMessage,
};

#[async_trait::async_trait]
impl EventStore for RedisEvents {
    async fn store_event(
        &self,
        stream_id: &str,
        event: &ServerSseMessage,
    ) -> Result<EventId, EventStoreError> {
        let id = format!("{:032x}", rand::random::<u128>());
        if let Some(record) = encode_event(stream_id, event) {
            let mut connection = self.store.connection();
            let ttl = self.ttl();
            let (event_key, stream_key, id_value) =
                (self.event_key(&id), self.stream_key(stream_id), id.clone());
            let stored = self
                .store
                .bounded(async move {
                    redis::pipe()
                        .set_ex(event_key, record, ttl)
                        .ignore()
                        .rpush(&stream_key, id_value)
                        .ignore()
                        .expire(&stream_key, i64::try_from(ttl).unwrap_or(i64::MAX))
                        .ignore()
                        .query_async::<()>(&mut connection)
                        .await
                })
                .await;
            match stored {
                Ok(()) => return Ok(id),
                Err(error) => {
                    tracing::debug!(%error, "could not keep a stream event in Redis; kept on this replica");
                }
            }
        }
        self.fallback.store_event(stream_id, event).await
    }

    async fn replay_events_after(&self, last_event_id: &str) -> Result<EventStream, EventStoreError> {
        if let Some(stream) = self.redis_stream_of(last_event_id).await {
            if let Some(events) = self.redis_after(&stream, Some(last_event_id)).await {
                return Ok(Box::pin(futures::stream::iter(events)));
            }
        }
        self.fallback.replay_events_after(last_event_id).await
    }
}

#[async_trait::async_trait]
impl crate::http::SessionEvents for RedisEvents {
    async fn claim(&self, event_id: &str, session: &str) {
        crate::http::SessionEvents::claim(&self.fallback, event_id, session).await;
        let mut connection = self.store.connection();
        let (key, value, ttl) = (self.claim_key(event_id), session.to_owned(), self.ttl());
        let claimed = self
            .store
            .bounded(async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl)
                    .query_async::<Option<String>>(&mut connection)
                    .await
            })
            .await;
        if let Err(error) = claimed {
            tracing::debug!(%error, "could not record a stream's session in Redis");
        }
    }

    async fn belongs_to(&self, event_id: &str, session: &str) -> bool {
        let mut connection = self.store.connection();
        let key = self.claim_key(event_id);
        match self
            .store
            .bounded(async move { connection.get::<_, Option<String>>(key).await })
            .await
        {
            Ok(Some(owner)) => owner == session,
            _ => crate::http::SessionEvents::belongs_to(&self.fallback, event_id, session).await,
        }
    }

    async fn stream_of(&self, event_id: &str) -> Option<String> {
        match self.redis_stream_of(event_id).await {
            Some(stream) => Some(stream),
            None => crate::http::SessionEvents::stream_of(&self.fallback, event_id).await,
        }
    }

    async fn stream_after(&self, stream_id: &str, after: Option<&str>) -> Vec<ServerSseMessage> {
        match self.redis_after(stream_id, after).await {
            Some(events) if !events.is_empty() || after.is_none() => events,
            _ => crate::http::SessionEvents::stream_after(&self.fallback, stream_id, after).await,
        }
    }
}
