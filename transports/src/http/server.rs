//! Accepting connections, serving them, and shutting down without dropping requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServerHandler;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Layer as _;
use verifiers::TokenVerifier;

use crate::ToolGate;

use super::auth::BearerAuthLayer;
use super::connection::{ConnectionLimits, Connections};
use super::event_store::MemoryEventStore;
use super::event_store::SessionEvents;
use super::gate::ToolGateLayer;
use super::metadata::MetadataDocuments;
use super::negotiate::NegotiateLayer;
use super::origin::HostOriginPolicy;
use super::rate_limit::{address_network, KeyedLimiter};
use super::router::{App, McpService};
use super::session_cap::CappedSessionManager;
use super::session_layer::SessionLayer;
use super::sessions::{Principal, SessionBindings};
use super::{HttpConfig, HttpConfigError};
use crate::redis::{RedisEvents, RedisSessions};
use rmcp::transport::streamable_http_server::session::EventStore;

/// Most concurrent HTTP/2 streams (requests) on one connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 100;

/// A server started by [`serve`]: its address, and the handle to stop it.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    sessions: SessionBindings,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The legacy sessions currently open, by owner.
    pub fn sessions(&self) -> &SessionBindings {
        &self.sessions
    }

    /// A token that starts a graceful shutdown when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets in-flight requests finish (bounded by the shutdown timeout), then
    /// returns.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the server has stopped (after [`shutdown_token`](Self::shutdown_token) fired).
    pub async fn wait(self) {
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the HTTP server task failed");
        }
    }
}

/// Who decides what on every request: the runtime collaborators of [`serve`], beside its
/// configuration ([`HttpConfig`]).
#[derive(Clone)]
pub struct AccessControl {
    /// Verifies each bearer token (who is calling).
    verifier: Arc<dyn TokenVerifier>,
    /// Per-tool authorization before the MCP layer runs; `None`: the handler alone decides.
    tool_gate: Option<Arc<dyn ToolGate>>,
    /// Legacy sessions shared with the other replicas (Redis); `None`: this replica's own.
    shared_sessions: Option<Arc<RedisSessions>>,
}

impl std::fmt::Debug for AccessControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessControl")
            .field("tool_gate", &self.tool_gate.is_some())
            .finish_non_exhaustive()
    }
}

impl AccessControl {
    /// Every request's bearer token verified by `verifier`; tools left to the handler.
    pub fn new(verifier: Arc<dyn TokenVerifier>) -> Self {
        AccessControl {
            verifier,
            tool_gate: None,
            shared_sessions: None,
        }
    }

    /// Keeps legacy sessions in `sessions` too, so any replica serves a session opened on
    /// another (to its owner only), and a `DELETE` anywhere ends it everywhere. Creating or
    /// restoring a session while the store does not answer is a `503` with `Retry-After`.
    pub fn with_shared_sessions(mut self, sessions: Arc<RedisSessions>) -> Self {
        self.shared_sessions = Some(sessions);
        self
    }

    /// Also answers a `tools/call` the caller may not make with `403 insufficient_scope` before
    /// the MCP layer runs (2026-07-28 requests by their `Mcp-Name` header, legacy POSTs of a
    /// single call by their body).
    pub fn with_tool_gate(mut self, tool_gate: Arc<dyn ToolGate>) -> Self {
        self.tool_gate = Some(tool_gate);
        self
    }
}

/// Serves MCP over streamable HTTP on `listener` until the returned server is shut down.
///
/// `access` verifies every caller (and, with a tool gate, which tools it may call); `handler`
/// makes one MCP handler per session (legacy) or per request (stateless); the verified caller
/// reaches it in the request context (see the crate docs).
///
/// # Errors
/// [`HttpConfigError`] when `config` does not [validate](HttpConfig::validate) or the listener
/// has no local address.
pub fn serve<H, F>(
    listener: TcpListener,
    config: HttpConfig,
    access: AccessControl,
    handler: F,
) -> Result<RunningServer, HttpConfigError>
where
    H: ServerHandler,
    F: Fn() -> H + Send + Sync + 'static,
{
    config.validate()?;
    let AccessControl {
        verifier,
        tool_gate,
        shared_sessions,
    } = access;
    let shared_sessions = shared_sessions.filter(|_| config.legacy_sessions);
    let local_addr = listener
        .local_addr()
        .map_err(|error| HttpConfigError::LocalAddr(error.to_string()))?;
    let shutdown = CancellationToken::new();
    let mcp_shutdown = CancellationToken::new();
    let draining = CancellationToken::new();

    let mut rmcp_config = StreamableHttpServerConfig::default()
        // Host and Origin are checked by our router, before authentication, for every path.
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_legacy_session_mode(config.legacy_sessions)
        // JSON for one-shot answers wherever rmcp allows it: stateless legacy requests and every
        // 2026-07-28 request (rmcp falls back to SSE when a handler streams).
        .with_json_response(config.json_response)
        .with_max_request_body_bytes(config.max_body_bytes)
        .with_cancellation_token(mcp_shutdown.clone());
    if !config.legacy_sessions {
        rmcp_config = rmcp_config.with_sse_retry(None);
    }
    if let Some(shared) = &shared_sessions {
        rmcp_config.session_store = Some(shared.clone());
    }
    // Idle sessions are closed by our reaper, which knows what is in flight (rmcp's timer counts
    // from the last event: it would close a session during a long call or with a GET stream
    // open).
    // With shared sessions, their streams' events are shared too (a stream resumes on any
    // replica); otherwise, and while Redis does not answer, they stay in this replica's memory.
    let (events, session_events): (Arc<dyn EventStore>, Arc<dyn SessionEvents>) = match &shared_sessions {
        Some(shared) => {
            let redis = Arc::new(RedisEvents::new(
                shared,
                config.sse_retention.time,
                MemoryEventStore::new(config.sse_retention),
            ));
            (redis.clone(), redis)
        }
        None => {
            let memory = Arc::new(MemoryEventStore::new(config.sse_retention));
            (memory.clone(), memory)
        }
    };
    let mut session_manager = LocalSessionManager::default().with_event_store(events);
    session_manager.session_config.keep_alive = None;
    let session_manager = Arc::new(session_manager);
    // MAX_SESSIONS is enforced where rmcp issues a session id (see session_cap.rs).
    let sessions = SessionBindings::default();
    let mut capped = CappedSessionManager::new(session_manager.clone(), config.max_sessions)
        .with_principal_share(sessions.clone(), config.max_sessions_per_principal)
        .with_events(session_events);
    if let Some(shared) = &shared_sessions {
        capped = capped.with_shared(shared.clone());
    }
    let capped = Arc::new(capped);
    let service = StreamableHttpService::new(move || Ok(handler()), capped.clone(), rmcp_config);

    // Three layers, one concern each, outermost first: who is calling (bearer), which session
    // and how much of the server the caller holds (sessions), which tool it may call (gate).
    let mut auth = BearerAuthLayer::new(verifier.clone(), config.metadata_url(), &config.scopes);
    if let Some(identifier_uri) = &config.identifier_uri {
        auth = auth.with_app_only_scope(identifier_uri.default_scope());
    }
    let loopback = config.loopback_variants(local_addr.port());
    if !loopback.is_empty() {
        auth = auth.with_metadata_by_host(
            loopback
                .iter()
                .map(|(host, variant)| (host.clone(), variant.metadata_url()))
                .collect(),
        );
    }
    let mut session_layer =
        SessionLayer::new(sessions.clone()).with_max_streams_per_principal(config.max_streams_per_principal);
    if let Some(rate) = config.rate_limit_per_principal {
        session_layer = session_layer.with_principal_rate_limit(KeyedLimiter::new(
            "principal",
            rate,
            config.rate_limit_max_tracked,
            Principal::tenant,
        ));
    }
    if config.legacy_sessions {
        session_layer = session_layer
            .with_session_prefix(config.session_id_prefix.clone())
            .with_bound_sessions_only();
        if let Some(shared) = &shared_sessions {
            session_layer = session_layer.with_shared_sessions(shared.clone(), capped.clone());
        }
    }
    let mut gate = ToolGateLayer::new(auth.challenges(), config.max_body_bytes);
    if let Some(tool_gate) = tool_gate {
        gate = gate.with_gate(tool_gate);
    }
    let app = Arc::new(App {
        mcp: auth.layer(session_layer.layer(gate.layer(NegotiateLayer.layer(Shared(Arc::new(service)))))),
        verifier,
        metadata: MetadataDocuments::new(&config),
        metadata_by_host: loopback
            .iter()
            .map(|(host, variant)| (host.clone(), MetadataDocuments::new(variant)))
            .collect(),
        prefix: config.path_prefix().to_owned(),
        policy: HostOriginPolicy::new(&config.allowed_hosts, &config.allowed_origins),
        draining: draining.clone(),
        address_limit: config
            .rate_limit_per_address
            .map(|rate| KeyedLimiter::new("address", rate, config.rate_limit_max_tracked, address_network)),
        trusted_proxies: config.trusted_proxies.clone(),
        shared_sessions: shared_sessions.clone(),
    });

    spawn_session_reaper(
        sessions.clone(),
        capped,
        session_manager,
        config.session_idle_timeout,
        shared_sessions.clone(),
        shutdown.clone(),
    );
    spawn_audit_flush(shutdown.clone());
    let task = tokio::spawn(accept_loop(
        listener,
        app,
        config,
        shutdown.clone(),
        draining,
        mcp_shutdown,
    ));
    Ok(RunningServer {
        local_addr,
        shutdown,
        sessions,
        task,
    })
}

async fn accept_loop<S>(
    listener: TcpListener,
    app: Arc<App<S>>,
    config: HttpConfig,
    shutdown: CancellationToken,
    draining: CancellationToken,
    mcp_shutdown: CancellationToken,
) where
    S: McpService,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if !config.http2 {
        builder = builder.http1_only();
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(64 * 1024)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        // A peer that stops answering PINGs is gone (hyper closes the connection); idle peers
        // that do answer are closed by the idle timer (connection.rs).
        .keep_alive_interval(config.http2_keepalive_interval)
        .keep_alive_timeout(config.header_read_timeout);
    let limits = ConnectionLimits {
        first_byte: config.header_read_timeout,
        idle: config.connection_idle_timeout,
        request_body: config.request_body_timeout,
    };
    let connections_shared = Connections {
        builder,
        limits,
        close: CancellationToken::new(),
        tracker: TaskTracker::new(),
    };
    let connections = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        connections_shared.spawn(stream, peer, Some(permit), &app);
    }
    // Connections the kernel has already completed sit in the listen backlog; closing the listener
    // would reset them after the client sent its request (nginx then answers 502 and cannot
    // retry a POST). Serve them too.
    while let Some(Ok((stream, peer))) = listener.accept().now_or_never() {
        connections_shared.spawn(stream, peer, None, &app);
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; letting in-flight requests finish");
    draining.cancel();
    // A connection whose request has not reached the service yet reads and answers it before
    // it closes (connection.rs): no guessed pause here.
    connections_shared.close.cancel();
    connections_shared.tracker.close();
    tokio::select! {
        _ = connections_shared.tracker.wait() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(config.shutdown_timeout) => {
            tracing::warn!(timeout = ?config.shutdown_timeout, "shutdown timeout: closing the remaining connections");
        }
    }
    mcp_shutdown.cancel();
    // Here, not in the flush task: the process may end as soon as this loop returns.
    crate::audit::flush_unauthenticated(true);
}

/// Closes sessions idle for `idle` (no request in flight, no stream open, since the end of the
/// last one), and forgets bindings of sessions that ended otherwise, so the map cannot grow.
/// Writes the audit trail's counted refusals (see `crate::audit`) once a line is due; the
/// accept loop writes whatever is left at shutdown.
fn spawn_audit_flush(stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::audit::UNAUTHENTICATED_LINE_INTERVAL);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => crate::audit::flush_unauthenticated(false),
            }
        }
    });
}

fn spawn_session_reaper(
    sessions: SessionBindings,
    capped: Arc<CappedSessionManager>,
    manager: Arc<LocalSessionManager>,
    idle: Duration,
    shared: Option<Arc<RedisSessions>>,
    stop: CancellationToken,
) {
    // A session outlives its idle time by at most a quarter of it (or 30 s).
    let period = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            // A session busy here (a long call, an open event stream) stays alive in the shared
            // store too, whose clock only requests reset.
            if let Some(shared) = &shared {
                for session in sessions.busy() {
                    if let Err(error) = shared.touch(&session).await {
                        tracing::debug!(%error, "could not keep a busy session alive in the shared store");
                        break;
                    }
                }
            }
            let closed = capped.close_idle(idle).await;
            if closed > 0 {
                tracing::debug!(closed, "closed idle sessions");
                metrics::counter!("mcp_sessions_expired_total").increment(closed as u64);
            }
            let live = manager.sessions.read().await;
            sessions.retain(|id| live.keys().any(|s| s.as_ref() == id));
        }
    });
}

/// rmcp's service behind one `Arc`. Every layer above clones its inner service for each request
/// (tower's rule: the instance that reported ready serves the call), and each of those clones
/// reaches down to here; rmcp's own clone copies its configuration and a cancellation token
/// (which takes a lock), an `Arc` clone is one atomic increment. A call goes to
/// `StreamableHttpService::handle` (`&self`) directly, so no clone of rmcp's service is made per
/// request and no readiness of it needs upholding (`handle` asks for none).
struct Shared<S>(Arc<S>);

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<H, M, B> tower::Service<http::Request<B>> for Shared<StreamableHttpService<H, M>>
where
    H: ServerHandler + Send + 'static,
    M: rmcp::transport::streamable_http_server::session::SessionManager,
    B: hyper::body::Body + Send + 'static,
    B::Error: std::fmt::Display,
    B::Data: Send + 'static,
{
    type Response =
        http::Response<http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>>;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { Ok(service.handle(request).await) })
    }
}
