//! Legacy sessions in front of the MCP service: who owns a session, the replica prefix of its
//! id, the per-caller shares, and the session cap's answers.
//!
//! [`SessionLayer`] runs behind [`BearerAuthLayer`](super::BearerAuthLayer) and reads the
//! verified identity it attached. For a request that names a session (`Mcp-Session-Id`) it
//! strips this replica's prefix, answers `404` to anyone but the session's owner (and, with
//! legacy sessions on, to an id bound to nobody), and counts the request as in flight on the
//! session until its answer is produced. Every request takes one of its caller's
//! `MAX_STREAMS_PER_PRINCIPAL` slots (`429` past it). Sessions are created, capped and bound to
//! their owner in `CappedSessionManager` (`session_cap.rs`), which this layer tells who is
//! calling and whose refusals it turns into answers (rmcp would send `500`). On the way back it
//! drops SSE priming events for clients older than 2025-11-25 (`priming.rs`) and adds the
//! replica prefix to a new session's id.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response, StatusCode};
use tower::{Layer, Service};
use verifiers::Identity;

use super::body::{text, with_guard, Body};
use super::priming::{predates_priming, without_priming};
use super::rate_limit::{too_many_requests, KeyedLimiter};
use super::session_cap::{watch_refusals, CappedSessionManager, Refusal};
use super::sessions::{Ownership, Principal, PrincipalStreams, SessionBindings};
use crate::redis::RedisSessions;
use rmcp::transport::streamable_http_server::SessionManager as _;

const SESSION_HEADER: &str = "mcp-session-id";

/// Layer that applies [`Sessions`] to a service.
#[derive(Clone, Debug)]
pub struct SessionLayer {
    sessions: SessionBindings,
    session_prefix: Option<Arc<str>>,
    streams: PrincipalStreams,
    max_streams_per_principal: usize,
    /// Legacy sessions are served: every live session id is bound when it is created, so an
    /// unbound id is no session of this server.
    bound_sessions_only: bool,
    /// `RATE_LIMIT_PER_PRINCIPAL`; `None`: no limit.
    rate_limit: Option<KeyedLimiter<Principal>>,
    /// Sessions shared with other replicas, and the manager that holds this replica's copies.
    shared: Option<(Arc<RedisSessions>, Arc<CappedSessionManager>)>,
}

impl SessionLayer {
    /// Sessions bound in `sessions` (shared with the session manager that binds them).
    pub fn new(sessions: SessionBindings) -> Self {
        SessionLayer {
            sessions,
            session_prefix: None,
            streams: PrincipalStreams::default(),
            max_streams_per_principal: usize::MAX,
            bound_sessions_only: false,
            rate_limit: None,
            shared: None,
        }
    }

    /// Prefixes every session id this server issues with `prefix` (e.g. the replica's name) and
    /// expects it back, so a load balancer can route a session to its replica by the id alone.
    /// An id with another prefix belongs to another replica: `404`, as for any unknown session.
    pub fn with_session_prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.session_prefix = (!prefix.is_empty()).then(|| Arc::from(prefix));
        self
    }

    /// Answers `404` to a session id that is bound to nobody. For a server with legacy sessions,
    /// where each session is bound to its owner as it is created; without it, an id whose binding
    /// was lost would be usable by any caller.
    pub fn with_bound_sessions_only(mut self) -> Self {
        self.bound_sessions_only = true;
        self
    }

    /// Lets one principal (`tid`, `oid`) have at most `max` requests in flight (event streams
    /// included); past it, `429 Too Many Requests` with `Retry-After`. Callers without `oid`
    /// share their tenant's one slot pool.
    pub fn with_max_streams_per_principal(mut self, max: usize) -> Self {
        self.max_streams_per_principal = max;
        self
    }
}

impl SessionLayer {
    /// Serves sessions other replicas opened (recorded in `shared`) to their owners: an id this
    /// replica does not know is looked up there, bound to its owner here, and restored by rmcp
    /// from the same store; anyone else gets `404`. A session ended elsewhere (`DELETE`, or idle
    /// on every replica) is closed here too on its next request (`404`). When the store does not
    /// answer, a restore is a `503` with `Retry-After`; sessions already here go on.
    pub fn with_shared_sessions(
        mut self,
        shared: Arc<RedisSessions>,
        manager: Arc<CappedSessionManager>,
    ) -> Self {
        self.shared = Some((shared, manager));
        self
    }

    /// Lets one principal (`tid`, `oid`) send requests at `limiter`'s rate; past it, `429 Too
    /// Many Requests` with `Retry-After`. Callers without `oid` share their tenant's bucket.
    pub fn with_principal_rate_limit(mut self, limiter: KeyedLimiter<Principal>) -> Self {
        self.rate_limit = Some(limiter);
        self
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = Sessions<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Sessions {
            inner,
            layer: Arc::new(self.clone()),
        }
    }
}

/// Middleware that keeps legacy sessions to their owners (see [`SessionLayer`]).
#[derive(Clone, Debug)]
pub struct Sessions<S> {
    inner: S,
    layer: Arc<SessionLayer>,
}

impl<S, B> Service<Request<B>> for Sessions<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            // Behind the bearer layer there is always an identity; without one, nothing passes
            // (fail closed).
            let Some(identity) = request.extensions().get::<Arc<Identity>>().cloned() else {
                tracing::error!("the session layer saw a request without a verified identity; refused");
                return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"));
            };
            let principal = Principal::of(&identity);
            let client = request.extensions().get::<crate::audit::ClientAddr>().copied();
            let session = match (request.headers().get(SESSION_HEADER), &layer.session_prefix) {
                (None, _) => None,
                (Some(value), None) => value.to_str().ok().map(str::to_owned),
                (Some(value), Some(prefix)) => {
                    // rmcp knows the id without our prefix.
                    let Some(internal) = value.to_str().ok().and_then(|v| v.strip_prefix(&**prefix)) else {
                        return Ok(session_not_found());
                    };
                    let internal = internal.to_owned();
                    if let Ok(value) = http::HeaderValue::from_str(&internal) {
                        request.headers_mut().insert(SESSION_HEADER, value);
                    }
                    Some(internal)
                }
            };
            let mut session_use = None;
            // The caller's rate comes first: a refused request costs no session lookup.
            let stream_owner = Principal::or_tenant(&identity);
            if let Some(limiter) = &layer.rate_limit {
                if let Err(limited) = limiter.check(&stream_owner) {
                    // One line a minute per caller: a caller over its limit can send refusals
                    // as fast as the network allows.
                    if crate::audit::rate_limited(&identity, None, client) {
                        tracing::info!(
                            tenant = %stream_owner.tenant_id,
                            object_id = %stream_owner.object_id,
                            rate = %limiter.rate(),
                            "refused a request: the caller is over RATE_LIMIT_PER_PRINCIPAL (one such line a minute per caller)"
                        );
                    }
                    return Ok(too_many_requests(
                        limited,
                        &format!(
                            "Too Many Requests: you sent more requests than RATE_LIMIT_PER_PRINCIPAL ({}) allows; retry after the time in Retry-After",
                            limiter.rate()
                        ),
                    ));
                }
            }
            if let Some(session) = &session {
                if let Some((shared, manager)) = &layer.shared {
                    match follow_shared(&layer.sessions, shared, manager, session, principal.as_ref()).await {
                        Ok(()) => {}
                        Err(Shared::Another) => return Ok(another_callers_session(&identity, client)),
                        Err(Shared::Answer(response)) => return Ok(response),
                    }
                }
                let (ownership, in_flight) = layer.sessions.begin_if_owner(session, principal.as_ref());
                session_use = in_flight;
                match ownership {
                    Ownership::Other => return Ok(another_callers_session(&identity, client)),
                    Ownership::Owner => {}
                    Ownership::Unbound if layer.bound_sessions_only => return Ok(session_not_found()),
                    Ownership::Unbound => {}
                }
            }
            let Some(stream) = layer
                .streams
                .try_begin(&stream_owner, layer.max_streams_per_principal)
            else {
                metrics::counter!("mcp_requests_refused_total", "reason" => "principal_streams").increment(1);
                tracing::info!(
                    tenant = %stream_owner.tenant_id,
                    object_id = %stream_owner.object_id,
                    max = layer.max_streams_per_principal,
                    "refused a request: the caller has MAX_STREAMS_PER_PRINCIPAL requests in flight"
                );
                crate::audit::refused(&identity, "too_many_requests_in_flight", client);
                return Ok(too_many_streams(layer.max_streams_per_principal));
            };
            let method = request.method().clone();
            // Kept as the header value (a reference count, no copy); read only for streams.
            let header_version = request.headers().get("mcp-protocol-version").cloned();
            // MAX_SESSIONS is enforced inside, where rmcp creates the session
            // (`CappedSessionManager`); rmcp answers that refusal with a 500, which we restate.
            let (response, refused) = watch_refusals(principal, inner.call(request)).await;
            match refused {
                None => {}
                Some(Refusal::Total(max)) => return Ok(too_many_sessions(max)),
                Some(Refusal::Principal(max)) => return Ok(principal_sessions_busy(max)),
                Some(Refusal::NoPrincipal) => return Ok(no_principal_for_session()),
                Some(Refusal::SessionGone) => return Ok(session_not_found()),
                Some(Refusal::UnknownEvent) => return Ok(cannot_resume()),
                Some(Refusal::StoreUnavailable) => return Ok(store_unavailable()),
            }
            let mut response = response?;
            track_session(&layer.sessions, session.as_deref(), &method, &response);
            // Priming events only for sessions (and session-less requests) at 2025-11-25 or
            // later: the version the session negotiated, else the request's header.
            let streamed = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            if streamed {
                let issued = response
                    .headers()
                    .get(SESSION_HEADER)
                    .and_then(|v| v.to_str().ok());
                let version = session
                    .as_deref()
                    .or(issued)
                    .and_then(|id| layer.sessions.protocol_version(id))
                    .or_else(|| {
                        header_version
                            .as_ref()
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    });
                if predates_priming(version.as_deref()) {
                    response = response.map(without_priming);
                }
            }
            // The answer holds the caller's stream slot (and its session's in-flight count)
            // until it is produced.
            let mut response = response.map(|body| with_guard(body, (stream, session_use)));
            if let Some(prefix) = &layer.session_prefix {
                let issued = response
                    .headers()
                    .get(SESSION_HEADER)
                    .and_then(|v| v.to_str().ok());
                if let Some(Ok(value)) =
                    issued.map(|id| http::HeaderValue::from_str(&format!("{prefix}{id}")))
                {
                    response.headers_mut().insert(SESSION_HEADER, value);
                }
            }
            Ok(response)
        })
    }
}

/// Why [`follow_shared`] answered instead of letting the request go on.
enum Shared {
    /// The session is another caller's (`404`, audited by the caller of `follow_shared`).
    Another,
    /// This answer: `404` (no such session), `503` (the store does not answer, or the caller's
    /// share of sessions here is busy).
    Answer(Response<Body>),
}

/// Makes this replica's view of a shared `session` current before the request goes on: an id it
/// does not know is bound to the owner the store records (when that is the caller, and it has
/// room for one more session here); one it knows and the caller owns is kept alive in the store,
/// or closed here when the store no longer has it.
async fn follow_shared(
    bindings: &SessionBindings,
    shared: &RedisSessions,
    manager: &CappedSessionManager,
    session: &str,
    caller: Option<&Principal>,
) -> Result<(), Shared> {
    // rmcp's ids are UUIDs: anything else is no session, and costs no lookup.
    let plausible = session.len() <= 64 && session.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !plausible {
        return Err(Shared::Answer(session_not_found()));
    }
    match bindings.owner(session) {
        // Someone else's, known here: the ownership check that follows answers 404.
        Some(owner) if caller != Some(&owner) => Ok(()),
        Some(_) => match shared.touch(session).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                // Ended on another replica (DELETE, eviction) or idle everywhere: so here too.
                bindings.unbind(session);
                let _ = manager.inner().close_session(&session.into()).await;
                Err(Shared::Answer(session_not_found()))
            }
            Err(error) => {
                // Served from here; the store catches up when it answers again.
                tracing::debug!(%error, "could not keep a shared session alive in the store");
                Ok(())
            }
        },
        None => match shared.owner(session).await {
            Ok(Some(found)) if caller == Some(&found.owner) => {
                // Restored here: it takes one of the caller's sessions on this replica.
                if let Err(error) = manager.make_room(&found.owner).await {
                    let max = match error {
                        super::session_cap::CappedSessionError::PrincipalLimitReached(max) => max,
                        _ => 0,
                    };
                    return Err(Shared::Answer(principal_sessions_busy(max)));
                }
                bindings.bind_if_absent(session, found.owner, found.protocol_version);
                Ok(())
            }
            Ok(Some(_)) => Err(Shared::Another),
            Ok(None) => Err(Shared::Answer(session_not_found())),
            Err(error) => {
                tracing::warn!(%error, "could not look a session up in the shared store; answered 503");
                Err(Shared::Answer(store_unavailable()))
            }
        },
    }
}

/// The `404` for a request on a session another principal opened (here or on another
/// replica), logged and audited: to the caller, as if the session did not exist.
fn another_callers_session(identity: &Identity, client: Option<crate::audit::ClientAddr>) -> Response<Body> {
    tracing::warn!(
        tenant = %identity.tenant_id,
        object_id = %identity.object_id,
        "refused a request on a session opened by another principal"
    );
    crate::audit::refused(identity, "session_of_another_caller", client);
    session_not_found()
}

fn store_unavailable() -> Response<Body> {
    metrics::counter!("mcp_requests_refused_total", "reason" => "session_store_unavailable").increment(1);
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service Unavailable: the shared session store does not answer; retry shortly, or use the 2026-07-28 protocol, which needs no session",
        Some("2"),
    )
}

/// Forgets a session its owner ended with `DELETE`. (A new session is bound to its caller where
/// it is created, `CappedSessionManager`; sessions that end otherwise are unbound by the
/// reaper. A `404` unbinds nothing: rmcp answers `404` for other reasons too, such as an unknown
/// method, and a live session must never lose its owner.)
fn track_session(
    sessions: &SessionBindings,
    request_session: Option<&str>,
    method: &Method,
    response: &Response<Body>,
) {
    if let Some(session) = request_session {
        if method == Method::DELETE && response.status().is_success() {
            sessions.unbind(session);
        }
    }
}

/// A plain-text refusal with `status`, and `Retry-After` (seconds) when retrying can help.
fn refusal(status: StatusCode, body: impl AsRef<str>, retry_after: Option<&'static str>) -> Response<Body> {
    let mut response = text(status, body.as_ref());
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from_static(seconds));
    }
    response
}

fn principal_sessions_busy(max: usize) -> Response<Body> {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("Service Unavailable: you hold {max} sessions (MAX_SESSIONS_PER_PRINCIPAL), each with a request in flight; end one (DELETE) or retry later"),
        Some("5"),
    )
}

fn too_many_streams(max: usize) -> Response<Body> {
    refusal(
        StatusCode::TOO_MANY_REQUESTS,
        format!("Too Many Requests: you have {max} requests or event streams open at once (MAX_STREAMS_PER_PRINCIPAL); close one or retry later"),
        Some("1"),
    )
}

fn no_principal_for_session() -> Response<Body> {
    refusal(
        StatusCode::FORBIDDEN,
        "Forbidden: the token has no oid claim, and sessions are bound to the caller's tenant and object id (tid, oid); use a token from Microsoft Entra ID with oid, or the 2026-07-28 protocol, which needs no session",
        None,
    )
}

fn too_many_sessions(max: usize) -> Response<Body> {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("Service Unavailable: {max} sessions are open, the most this server keeps; retry later or use the 2026-07-28 protocol, which needs no session"),
        Some("5"),
    )
}

fn cannot_resume() -> Response<Body> {
    refusal(
        StatusCode::BAD_REQUEST,
        "Bad Request: the stream cannot be resumed: Last-Event-ID names no event this server still keeps for this session (never issued, or older than SSE_RETENTION_SECS); send the request again instead",
        None,
    )
}

fn session_not_found() -> Response<Body> {
    refusal(StatusCode::NOT_FOUND, "Not Found: Session not found", None)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;
    use crate::http::body::full;

    fn request(who: &str, session: Option<&str>) -> Request<()> {
        let mut request = Request::post("/mcp");
        if let Some(session) = session {
            request = request.header(SESSION_HEADER, session);
        }
        let mut request = request.body(()).unwrap();
        request
            .extensions_mut()
            .insert(Arc::new(Identity::builder(who, "t").build()));
        request
    }

    #[tokio::test]
    async fn sessions_answer_only_their_owner_and_a_caller_holds_only_its_share() {
        let bindings = SessionBindings::default();
        let owner = |oid: &str| Principal {
            tenant_id: "t".into(),
            object_id: oid.into(),
        };
        bindings.bind("s1".into(), owner("alice"));
        let layer = SessionLayer::new(bindings)
            .with_bound_sessions_only()
            .with_max_streams_per_principal(1);
        let inner = tower::service_fn(|_: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(full("inner")))
        });
        // (caller, session id, expected status)
        let rows = [
            ("alice", Some("s1"), 200),
            ("bob", Some("s1"), 404),
            ("bob", Some("never-issued"), 404),
            ("bob", None, 200),
        ];
        for (who, session, status) in rows {
            let response = layer.layer(inner).oneshot(request(who, session)).await.unwrap();
            assert_eq!(response.status(), status, "{who} {session:?}");
        }
        // One answer of Alice's still being produced holds her only slot.
        let held = layer.layer(inner).oneshot(request("alice", None)).await.unwrap();
        let refused = layer.layer(inner).oneshot(request("alice", None)).await.unwrap();
        assert_eq!(refused.status(), 429);
        let bob = layer.layer(inner).oneshot(request("bob", None)).await.unwrap();
        assert_eq!(bob.status(), 200);
        let _ = held.into_body().collect().await;
        let again = layer.layer(inner).oneshot(request("alice", None)).await.unwrap();
        assert_eq!(again.status(), 200);
    }
}
