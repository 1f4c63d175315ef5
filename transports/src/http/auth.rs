//! Bearer authentication in front of the MCP service (RFC 6750), as a tower layer.
//!
//! [`BearerAuthLayer`] takes the one `Authorization: Bearer` credential, verifies it with the
//! configured [`TokenVerifier`], and either answers with the right challenge (401/400/403/503, see
//! `challenge.rs`) or passes the request on with the verified identity (an `Arc<`[`Identity`]`>`,
//! shared with the verifier's cache) and the opaque [`AccessToken`] (for on-behalf-of calls) in
//! its extensions. It
//! also binds legacy sessions to their owner (see [`SessionBindings`]).
//!
//! With a [`ToolGate`] it also refuses a forbidden `tools/call` before the MCP layer runs
//! (docs/ARCHITECTURE.md#per-tool-authorization): by the `Mcp-Name` header on 2026-07-28 requests, and by peeking at the body of a
//! legacy POST that carries a single call (its `Content-Length` known and within the body
//! limit). The answer is `403 insufficient_scope` naming the scopes the call needs, so a client
//! can step up. Anything the layer cannot see in advance (a batch, a chunked body) the server's
//! handler refuses with a JSON-RPC error by the same gate.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt as _, Either, Full, Limited};
use serde::Deserialize;
use tower::{Layer, Service};
use verifiers::{AccessToken, AuthError, CallerText, Identity, MalformedCredentials, TokenVerifier};

use super::ambiguity::request_host;
use super::body::with_guard;
use super::body::{full, Body};
use super::challenge::{auth_error_response, tool_refusal_response, ChallengeContext};
use super::mcp_headers;
use super::priming::{predates_priming, without_priming};
use super::session_cap::{watch_refusals, Refusal};
use super::sessions::{Ownership, Principal, PrincipalStreams, SessionBindings};
use crate::ToolGate;

const SESSION_HEADER: &str = "mcp-session-id";

/// The body [`BearerAuth`] hands on: the request's own (`Left`), or the bytes it read to peek
/// at a legacy `tools/call` (`Right`).
pub type PeekedBody<B> = Either<B, Full<Bytes>>;

/// Layer that applies [`BearerAuth`] to a service.
#[derive(Clone)]
pub struct BearerAuthLayer {
    verifier: Arc<dyn TokenVerifier>,
    challenge: Arc<ChallengeContext>,
    sessions: SessionBindings,
    session_prefix: Option<Arc<str>>,
    tool_gate: Option<(Arc<dyn ToolGate>, usize)>,
    streams: PrincipalStreams,
    max_streams_per_principal: usize,
    /// Legacy sessions are served: every live session id is bound when it is created, so an
    /// unbound id is no session of this server.
    bound_sessions_only: bool,
    /// `host:port` → the challenge for a client that reached the server by that loopback host.
    by_host: Arc<Vec<(String, Arc<ChallengeContext>)>>,
}

impl std::fmt::Debug for BearerAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuthLayer")
            .field("resource_metadata", &self.challenge.resource_metadata)
            .finish_non_exhaustive()
    }
}

impl BearerAuthLayer {
    /// A layer verifying with `verifier`; challenges point at `resource_metadata` and name
    /// `scopes` (full scope URIs).
    pub fn new(
        verifier: Arc<dyn TokenVerifier>,
        resource_metadata: impl Into<String>,
        scopes: &[String],
        sessions: SessionBindings,
    ) -> Self {
        BearerAuthLayer {
            verifier,
            challenge: Arc::new(ChallengeContext {
                resource_metadata: resource_metadata.into(),
                scope: scopes.join(" "),
                app_only_scope: String::new(),
            }),
            sessions,
            session_prefix: None,
            tool_gate: None,
            streams: PrincipalStreams::default(),
            max_streams_per_principal: usize::MAX,
            bound_sessions_only: false,
            by_host: Arc::new(Vec::new()),
        }
    }

    /// Challenges name the metadata URL of the host the client used, for each `(host:port,
    /// resource_metadata)`: see `HttpConfig::public_url_is_default`.
    pub fn with_metadata_by_host(mut self, hosts: Vec<(String, String)>) -> Self {
        self.by_host = Arc::new(
            hosts
                .into_iter()
                .map(|(host, resource_metadata)| {
                    let mut challenge = (*self.challenge).clone();
                    challenge.resource_metadata = resource_metadata;
                    (host, Arc::new(challenge))
                })
                .collect(),
        );
        self
    }

    /// The challenge context for a request that named `host`.
    fn challenge_for(&self, host: Option<&str>) -> &ChallengeContext {
        host.and_then(|host| {
            self.by_host
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(host))
                .map(|(_, c)| &**c)
        })
        .unwrap_or(&self.challenge)
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

    /// Refuses a `tools/call` that `gate` forbids with `403 insufficient_scope` before the inner
    /// service runs. Legacy bodies of at most `max_body_bytes` (with a `Content-Length`) are
    /// read to find the tool's name; larger ones pass on untouched for the inner service to
    /// refuse.
    pub fn with_tool_gate(mut self, gate: Arc<dyn ToolGate>, max_body_bytes: usize) -> Self {
        self.tool_gate = Some((gate, max_body_bytes));
        self
    }

    /// Prefixes every session id this server issues with `prefix` (e.g. the replica's name) and
    /// expects it back, so a load balancer can route a session to its replica by the id alone.
    /// An id with another prefix belongs to another replica: `404`, as for any unknown session.
    pub fn with_session_prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.session_prefix = (!prefix.is_empty()).then(|| Arc::from(prefix));
        self
    }

    /// Points app-only callers refused for a missing app role at `scope` (the
    /// `<identifier-uri>/.default` URI) instead of the delegated scopes.
    pub fn with_app_only_scope(mut self, scope: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.challenge).app_only_scope = scope.into();
        self
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            layer: self.clone(),
        }
    }
}

/// Middleware that authenticates every request with a bearer token before `S` sees it.
#[derive(Clone, Debug)]
pub struct BearerAuth<S> {
    inner: S,
    layer: BearerAuthLayer,
}

impl<S> BearerAuth<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for BearerAuth<S>
where
    S: Service<Request<PeekedBody<B>>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The instance that reported ready serves this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let verified = match bearer_token(request.headers(), request.uri()) {
                Ok(token) => {
                    let token = token.to_owned();
                    let started = std::time::Instant::now();
                    let verified = layer.verifier.verify(&token).await;
                    metrics::histogram!("mcp_token_verification_seconds")
                        .record(started.elapsed().as_secs_f64());
                    verified.map(|identity| (identity, AccessToken::new(token)))
                }
                Err(err) => Err(err),
            };
            let (identity, access_token) = match verified {
                Ok(verified) => verified,
                Err(err) => {
                    log_rejection(&err, &request);
                    let challenge = layer.challenge_for(request_host(&request));
                    return Ok(auth_error_response(&err, challenge));
                }
            };
            let principal = Principal::of(&identity);
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
            if let Some(session) = &session {
                let (ownership, in_flight) = layer.sessions.begin_if_owner(session, principal.as_ref());
                session_use = in_flight;
                match ownership {
                    Ownership::Other => {
                        tracing::warn!(
                            tenant = %identity.tenant_id,
                            object_id = %identity.object_id,
                            "refused a request on a session opened by another principal"
                        );
                        return Ok(session_not_found());
                    }
                    Ownership::Owner => {}
                    Ownership::Unbound if layer.bound_sessions_only => return Ok(session_not_found()),
                    Ownership::Unbound => {}
                }
            }
            let stream_owner = principal.clone().unwrap_or_else(|| Principal {
                tenant_id: identity.tenant_id.clone(),
                object_id: String::new(),
            });
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
                return Ok(too_many_streams(layer.max_streams_per_principal));
            };
            let method = request.method().clone();
            let header_version = request
                .headers()
                .get("mcp-protocol-version")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            // Whatever logs the request further in (rmcp moves its Parts into the MCP context)
            // prints `Sensitive` instead of the credential.
            if let Some(value) = request.headers_mut().get_mut(AUTHORIZATION) {
                value.set_sensitive(true);
            }
            let mut request = match gate_tool_call(&layer, request, &identity).await {
                Ok(request) => request,
                Err(response) => return Ok(response),
            };
            request.extensions_mut().insert(identity);
            // Beside the identity, opaque: only the on-behalf-of provider reads it (docs/ARCHITECTURE.md#calling-apis-on-behalf-of-the-caller).
            request.extensions_mut().insert(access_token);
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
            }
            let mut response = response?;
            track_session(&layer.sessions, session.as_deref(), &method, &response);
            // Priming events only for sessions (and session-less requests) at 2025-11-25 or
            // later: the version the session negotiated, else the request's header.
            let issued = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let version = session
                .as_deref()
                .or(issued.as_deref())
                .and_then(|id| layer.sessions.protocol_version(id))
                .or(header_version);
            let streamed = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            if streamed && predates_priming(version.as_deref()) {
                response = response.map(without_priming);
            }
            // The answer holds the caller's stream slot (and its session's in-flight count)
            // until it is sent or dropped.
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

/// Applies the layer's [`ToolGate`] to a `tools/call`: `Err` holds the `403` (or, when a peeked
/// body cannot be read, the `400`).
async fn gate_tool_call<B>(
    layer: &BearerAuthLayer,
    request: Request<B>,
    identity: &Identity,
) -> Result<Request<PeekedBody<B>>, Response<Body>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some((gate, max_body_bytes)) = &layer.tool_gate else {
        return Ok(request.map(Either::Left));
    };
    if request.method() != Method::POST {
        return Ok(request.map(Either::Left));
    }
    let challenge = layer.challenge_for(request_host(&request));
    // The refusal of a call to `name`, if the gate forbids it.
    let refuse = |name: &str| {
        let refusal = gate.check_tool(name, identity).err()?;
        metrics::counter!("mcp_auth_rejections_total", "reason" => "tool_insufficient_scope").increment(1);
        // `name` is a tool the server knows (the gate refuses no other), so it is safe to log.
        tracing::info!(
            kind = "tool_insufficient_scope",
            tool = name,
            reason = %refusal.error,
            "tool call refused"
        );
        Some(tool_refusal_response(&refusal, challenge))
    };
    // 2026-07-28: the method and the tool are in headers (rmcp checks them against the body),
    // read as the protocol defines them: plain or `=?base64?…?=`.
    let method = mcp_headers::header_value(request.headers(), mcp_headers::METHOD);
    let name = mcp_headers::header_value(request.headers(), mcp_headers::NAME);
    match (method, name) {
        (Ok(None), _) => {}
        (Ok(Some(method)), Ok(name)) => {
            if method == "tools/call" {
                if let Some(response) = name.as_deref().and_then(refuse) {
                    return Err(response);
                }
            }
            return Ok(request.map(Either::Left));
        }
        (Err(error), _) | (_, Err(error)) => {
            let mut response = Response::new(full(format!("Bad Request: {error}")));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return Err(response);
        }
    }
    // Legacy: peek at a body of known, acceptable length.
    let length = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_none_or(|len| len > *max_body_bytes as u64) {
        return Ok(request.map(Either::Left));
    }
    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, *max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::debug!(%error, "could not read a request body");
            let mut response = Response::new(full("Bad Request: the request body could not be read"));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return Err(response);
        }
    };
    if let Some(response) = single_tool_call(&bytes).and_then(|name| refuse(&name)) {
        return Err(response);
    }
    Ok(Request::from_parts(parts, Either::Right(Full::new(bytes))))
}

/// The tool a JSON-RPC body calls, when it is one `tools/call` request (not a batch).
fn single_tool_call(body: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        params: Option<Params<'a>>,
    }
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(borrow)]
        name: Option<std::borrow::Cow<'a, str>>,
    }
    let message: Message<'_> = serde_json::from_slice(body).ok()?;
    if message.method.as_deref() != Some("tools/call") {
        return None;
    }
    message.params?.name
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

fn principal_sessions_busy(max: usize) -> Response<Body> {
    let mut response = Response::new(full(format!(
        "Service Unavailable: you hold {max} sessions (MAX_SESSIONS_PER_PRINCIPAL), each with a request in flight; end one (DELETE) or retry later"
    )));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("5"));
    response
}

fn too_many_streams(max: usize) -> Response<Body> {
    let mut response = Response::new(full(format!(
        "Too Many Requests: you have {max} requests or event streams open at once (MAX_STREAMS_PER_PRINCIPAL); close one or retry later"
    )));
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    response
}

fn no_principal_for_session() -> Response<Body> {
    let mut response = Response::new(full(
        "Forbidden: the token has no oid claim, and sessions are bound to the caller's tenant and object id (tid, oid); use a token from Microsoft Entra ID with oid, or the 2026-07-28 protocol, which needs no session",
    ));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

fn too_many_sessions(max: usize) -> Response<Body> {
    let mut response = Response::new(full(format!(
        "Service Unavailable: {max} sessions are open, the most this server keeps; retry later or use the 2026-07-28 protocol, which needs no session"
    )));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("5"));
    response
}

fn cannot_resume() -> Response<Body> {
    let mut response = Response::new(full(
        "Bad Request: the stream cannot be resumed: Last-Event-ID names no event this server still keeps for this session (never issued, or older than SSE_RETENTION_SECS); send the request again instead",
    ));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}

fn session_not_found() -> Response<Body> {
    let mut response = Response::new(full("Not Found: Session not found"));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

fn log_rejection<B>(err: &AuthError, request: &Request<B>) {
    metrics::counter!("mcp_auth_rejections_total", "reason" => err.kind()).increment(1);
    // Never the token: only the reason, which is built from claims and settings.
    // Caller text inside `err` is already escaped (`CallerText`); the path is escaped here.
    let path = CallerText::new(request.uri().path());
    match err {
        AuthError::Unavailable(_) => {
            tracing::warn!(kind = err.kind(), reason = %err, path = %path, "request rejected")
        }
        _ => {
            tracing::info!(kind = err.kind(), reason = %err, path = %path, "request rejected")
        }
    }
}

/// The bearer token of a request: exactly one `Authorization: Bearer <token>` header (scheme
/// case-insensitive), and no `access_token` in the query.
pub fn bearer_token<'a>(headers: &'a HeaderMap, uri: &Uri) -> Result<&'a str, AuthError> {
    if uri.query().is_some_and(query_has_access_token) {
        return Err(MalformedCredentials::TokenInQuery.into());
    }
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::MissingToken);
    };
    if values.next().is_some() {
        return Err(MalformedCredentials::MultipleAuthorizationHeaders.into());
    }
    let value = value.to_str().map_err(|_| MalformedCredentials::NotAscii)?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme (Basic, …) is not a bearer credential at all: challenge for one.
        return Err(AuthError::MissingToken);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err(MalformedCredentials::EmptyBearerToken.into());
    }
    Ok(token)
}

/// `true` when a parameter of `query` is named `access_token` (RFC 6750 §2.3) as any server,
/// framework or proxy could read it: in any case, with the name percent-decoded first
/// (`access%5Ftoken`, `%61ccess_token`), `;` accepted as a separator as well as `&`, and the name
/// read up to the first byte that cannot continue a name. So `access_token[]` (PHP, Rails
/// arrays), `access_token%00` (C strings end at NUL), `access_token.x` and `access_token+` are
/// refused too, while `access_tokens` is another parameter; and as PHP reads names, leading
/// spaces are dropped and ` `, `.`, `+` or an unmatched `[` stand for `_` (`access.token`,
/// `access[token`, ` access_token`).
pub fn query_has_access_token(query: &str) -> bool {
    const NAME: &[u8] = b"access_token";
    query.split(['&', ';']).any(|pair| {
        let raw = pair.split('=').next().unwrap_or_default().as_bytes();
        // Enough to decide: the name and the byte after it.
        let mut decoded = Vec::with_capacity(NAME.len() + 1);
        let mut i = 0;
        while i < raw.len() && decoded.len() <= NAME.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            match (
                raw[i],
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            ) {
                (b'%', Some(hi), Some(lo)) => {
                    decoded.push((hi * 16 + lo) as u8);
                    i += 3;
                }
                (byte, _, _) => {
                    decoded.push(byte);
                    i += 1;
                }
            }
            if decoded.len() == 1 && matches!(decoded[0], b' ' | b'+') {
                decoded.clear();
            }
        }
        let (name, next) = decoded.split_at(decoded.len().min(NAME.len()));
        let php = |b: &u8| {
            if matches!(b, b' ' | b'.' | b'+' | b'[') {
                b'_'
            } else {
                b.to_ascii_lowercase()
            }
        };
        name.iter().map(php).eq(NAME.iter().copied())
            && next
                .first()
                .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn scheme_is_case_insensitive() {
        for v in ["Bearer abc", "bearer abc", "BEARER abc", "BeArEr   abc"] {
            assert_eq!(bearer_token(&headers(&[v]), &uri("/mcp")), Ok("abc"), "{v}");
        }
    }

    #[test]
    fn missing_or_foreign_scheme_is_missing_token() {
        assert_eq!(
            bearer_token(&headers(&[]), &uri("/mcp")),
            Err(AuthError::MissingToken)
        );
        assert_eq!(
            bearer_token(&headers(&["Basic dXNlcjpwdw=="]), &uri("/mcp")),
            Err(AuthError::MissingToken)
        );
        assert_eq!(
            bearer_token(&headers(&["Bearerabc"]), &uri("/mcp")),
            Err(AuthError::MissingToken)
        );
    }

    #[test]
    fn empty_token_and_duplicate_headers_are_malformed() {
        assert_eq!(
            bearer_token(&headers(&["Bearer "]), &uri("/mcp")),
            Err(MalformedCredentials::EmptyBearerToken.into())
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer"]), &uri("/mcp")),
            Err(MalformedCredentials::EmptyBearerToken.into())
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer a", "Bearer b"]), &uri("/mcp")),
            Err(MalformedCredentials::MultipleAuthorizationHeaders.into())
        );
    }

    #[test]
    fn token_in_query_is_refused_even_with_a_header() {
        for q in [
            "/mcp?access_token=abc",
            "/mcp?x=1&ACCESS_TOKEN=abc",
            "/mcp?access_token",
            "/mcp?access%5Ftoken=abc",
            "/mcp?access%5ftoken=abc",
            "/mcp?%61ccess_token=abc",
            "/mcp?%41%43%43%45%53%53%5F%54%4F%4B%45%4E=abc",
            "/mcp?x=1;access_token=abc",
            "/mcp?access_token[]=abc",
            "/mcp?access_token%5B%5D=abc",
            "/mcp?access_token%00=abc",
            "/mcp?access_token%00x=abc",
            "/mcp?access_token.x=abc",
            "/mcp?access_token+=abc",
            "/mcp?access_token%20=abc",
            "/mcp?access.token=abc",
            "/mcp?access[token=abc",
            "/mcp?access+token=abc",
            "/mcp?%20access_token=abc",
            "/mcp?+access_token=abc",
        ] {
            assert_eq!(
                bearer_token(&headers(&["Bearer abc"]), &uri(q)),
                Err(MalformedCredentials::TokenInQuery.into()),
                "{q}"
            );
        }
        for q in [
            "/mcp?access_tokens=1",
            "/mcp?access%255Ftoken=1",
            "/mcp?x=access_token",
            "/mcp?access%5Ftoke",
            "/mcp?%zzaccess_token=1",
            "/mcp?access_token_2=1",
            "/mcp?access_token-x=1",
        ] {
            assert_eq!(bearer_token(&headers(&["Bearer abc"]), &uri(q)), Ok("abc"), "{q}");
        }
    }
}
