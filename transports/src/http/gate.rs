//! The per-tool gate in front of the MCP service (docs/ARCHITECTURE.md#per-tool-authorization).
//!
//! [`ToolGateLayer`] refuses a forbidden `tools/call` before the MCP layer runs: by the
//! `Mcp-Name` header on 2026-07-28 requests (read as the protocol defines it, `mcp_headers.rs`),
//! and by peeking at the body of a legacy POST that carries a single call (its `Content-Length`
//! known and within the body limit). The answer is `403 insufficient_scope` naming the scopes
//! the call needs, so a client can step up. Anything the layer cannot see in advance (a batch,
//! a chunked body) the server's handler refuses with a JSON-RPC error by the same gate. It runs
//! behind [`BearerAuthLayer`](super::BearerAuthLayer), whose verified identity it reads.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Either, Full, Limited};
use serde::Deserialize;
use tower::{Layer, Service};
use tracing::{Instrument as _, Span};
use verifiers::{AccessToken, Identity};

use super::ambiguity::request_host;
use super::body::with_guard;
use super::body::{text, Body};
use super::challenge::{tool_refusal_response, ChallengeContext, Challenges};
use super::mcp_headers;
use super::rate_limit::too_many_requests;
use crate::trace::{mcp_server_span, record_mcp_error, Envelope, McpSpan};
use crate::{ToolCallAdmitted, ToolGate};

/// The body [`ToolGate`] hands on: the request's own (`Left`), or the bytes it read to peek at a
/// legacy `tools/call` (`Right`).
pub type PeekedBody<B> = Either<B, Full<Bytes>>;

/// Layer that applies a [`ToolGate`] (when one is set) to a service.
#[derive(Clone)]
pub struct ToolGateLayer {
    gate: Option<Arc<dyn ToolGate>>,
    max_body_bytes: usize,
    challenges: Challenges,
}

impl std::fmt::Debug for ToolGateLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolGateLayer")
            .field("gate", &self.gate.is_some())
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl ToolGateLayer {
    /// Without a gate, every request passes (as `Left`); refusals use `challenges` (those of the
    /// bearer layer in front); legacy bodies of at most `max_body_bytes` are peeked at.
    pub(crate) fn new(challenges: Challenges, max_body_bytes: usize) -> Self {
        ToolGateLayer {
            gate: None,
            max_body_bytes,
            challenges,
        }
    }

    /// Refuses a `tools/call` that `gate` forbids with `403 insufficient_scope`.
    pub fn with_gate(mut self, gate: Arc<dyn ToolGate>) -> Self {
        self.gate = Some(gate);
        self
    }
}

impl<S> Layer<S> for ToolGateLayer {
    type Service = ToolGateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ToolGateService {
            inner,
            layer: Arc::new(self.clone()),
        }
    }
}

/// Middleware that applies the per-tool gate before `S` sees a request.
#[derive(Clone, Debug)]
pub struct ToolGateService<S> {
    inner: S,
    layer: Arc<ToolGateLayer>,
}

impl<S, B> Service<Request<B>> for ToolGateService<S>
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

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let traced = verifiers::telemetry::enabled();
            if layer.gate.is_none() && !traced {
                return inner.call(request.map(Either::Left)).await;
            }
            let identity = request.extensions().get::<Arc<Identity>>().cloned();
            // Behind the bearer layer there is always an identity; without one, nothing passes a
            // gate (fail closed).
            if layer.gate.is_some() && identity.is_none() {
                tracing::error!("the tool gate saw a request without a verified identity; refused");
                return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"));
            }
            let (request, span) = match inspect(&layer, request, identity.as_deref(), traced).await {
                Ok(inspected) => inspected,
                Err(response) => return Ok(response),
            };
            let Some(span) = span else {
                return inner.call(request).await;
            };
            let response = inner.call(request).instrument(span.clone()).await?;
            // The span ends with the answer's body (a stream's last event), not its headers.
            Ok(response.map(|body| with_guard(body, span)))
        })
    }
}

/// Looks at a POST before the MCP layer does: applies the layer's [`ToolGate`] (when set) to a
/// `tools/call`, and, when `traced`, opens the request's MCP server span (returned, and put in
/// the request's extensions as [`McpSpan`]). `Err` holds the `403` or `429` (or, when a peeked
/// body cannot be read, the `400`).
async fn inspect<B>(
    layer: &ToolGateLayer,
    request: Request<B>,
    identity: Option<&Identity>,
    traced: bool,
) -> Result<(Request<PeekedBody<B>>, Option<Span>), Response<Body>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let max_body_bytes = layer.max_body_bytes;
    if request.method() != Method::POST {
        return Ok((request.map(Either::Left), None));
    }
    let caller = Caller {
        identity,
        token: request.extensions().get::<AccessToken>().cloned(),
        client: request.extensions().get::<crate::audit::ClientAddr>().copied(),
        challenge: layer.challenges.for_host(request_host(&request)),
    };
    // 2026-07-28: the method and the tool are in headers, read as the protocol defines them
    // (plain or `=?base64?…?=`). Believed only at that version, where rmcp checks them against
    // the body; on an older request they are the client's word alone, and the body decides.
    let current = request
        .headers()
        .get(mcp_headers::PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v >= mcp_headers::FIRST_VERSION_WITH_HEADERS);
    let method = mcp_headers::header_value(request.headers(), mcp_headers::METHOD);
    let name = mcp_headers::header_value(request.headers(), mcp_headers::NAME);
    // `Some(tool or None)` when the headers decide which tool (if any) the request calls.
    let by_headers = match (method, name) {
        _ if !current => None,
        (Ok(None), _) => None,
        (Ok(Some(method)), Ok(name)) => Some(name.filter(|_| method == "tools/call")),
        (Err(error), _) | (_, Err(error)) => {
            return Err(text(StatusCode::BAD_REQUEST, &format!("Bad Request: {error}")));
        }
    };
    // A body of known, acceptable length is read: for the tool of a legacy request, and for
    // the span of any request (its id and `_meta`).
    let length = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let peek = (by_headers.is_none() || traced) && length.is_some_and(|len| len <= max_body_bytes as u64);
    if !peek {
        let mut request = request.map(Either::Left);
        if let Some(Some(name)) = by_headers {
            if let Some(response) = refuse(layer, &caller, &name, &Span::none()).await {
                return Err(response);
            }
            request.extensions_mut().insert(ToolCallAdmitted(Arc::from(name)));
        }
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::debug!(%error, "could not read a request body");
            return Err(text(
                StatusCode::BAD_REQUEST,
                "Bad Request: the request body could not be read",
            ));
        }
    };
    // One JSON-RPC request or notification: its span. A batch or a response: none.
    let span = traced
        .then(|| Envelope::parse(&bytes))
        .filter(Envelope::is_message)
        .map(|envelope| {
            let judged = by_headers.as_ref().and_then(|tool| tool.as_deref());
            mcp_server_span(&envelope, judged, &parts.headers, parts.version)
        });
    if let (Some(span), Some(identity)) = (&span, identity) {
        verifiers::telemetry::record_caller(span, identity);
    }
    let mut request = Request::from_parts(parts, Either::Right(Full::new(bytes.clone())));
    let tool = match by_headers {
        Some(tool) => tool.map(Cow::Owned),
        None => single_tool_call(&bytes),
    };
    if let Some(name) = tool {
        let disabled = Span::none();
        if let Some(response) = refuse(layer, &caller, &name, span.as_ref().unwrap_or(&disabled)).await {
            return Err(response);
        }
        request
            .extensions_mut()
            .insert(ToolCallAdmitted(Arc::from(&*name)));
    }
    if let Some(span) = &span {
        request.extensions_mut().insert(McpSpan(span.clone()));
    }
    Ok((request, span))
}

/// What [`refuse`] needs to know of the request.
struct Caller<'a> {
    identity: Option<&'a Identity>,
    /// The caller's token, for a gate that asks Microsoft Graph on the caller's behalf.
    token: Option<AccessToken>,
    client: Option<crate::audit::ClientAddr>,
    challenge: &'a ChallengeContext,
}

/// The refusal of a call to `name`, if the gate forbids it or the tool's rate limit is spent;
/// recorded on `span` (the MCP span, or a disabled one, on which recording does nothing).
async fn refuse(
    layer: &ToolGateLayer,
    caller: &Caller<'_>,
    name: &str,
    span: &Span,
) -> Option<Response<Body>> {
    let (gate, identity) = (layer.gate.as_ref()?, caller.identity?);
    let checked = gate.check_tool(name, identity, caller.token.as_ref());
    let checked = if span.is_disabled() {
        checked.await
    } else {
        checked.instrument(span.clone()).await
    };
    let refusal = match checked {
        Ok(()) => {
            let response = span.in_scope(|| admit(gate.as_ref(), name, identity, caller.client))?;
            record_mcp_error(span, "rate_limited", None);
            return Some(response);
        }
        Err(refusal) => refusal,
    };
    let kind = refusal.error.kind();
    span.in_scope(|| {
        crate::audit::tool_call(
            identity,
            name,
            crate::audit::Outcome::Refused(kind),
            std::time::Duration::ZERO,
            caller.client,
        )
    });
    metrics::counter!("mcp_auth_rejections_total", "reason" => refusal.reason()).increment(1);
    // `name` is a tool the server knows (the gate refuses no other), so it is safe to log; the
    // detail (the groups the tool admits) goes to the log, never to the caller.
    refusal.log(name, identity);
    record_mcp_error(span, kind, None);
    Some(tool_refusal_response(&refusal, caller.challenge))
}

/// Counts an allowed call of `name` against its tool's rate limit: `Some(429)` past it.
fn admit(
    gate: &dyn ToolGate,
    name: &str,
    identity: &Identity,
    client: Option<crate::audit::ClientAddr>,
) -> Option<Response<Body>> {
    let limited = gate.admit_call(name, identity).err()?;
    // One line a minute per caller (see `audit::rate_limited`). `name` is a tool the server
    // knows (only those have limits), so it is safe to log.
    if crate::audit::rate_limited(identity, Some(name), client) {
        tracing::info!(
            tool = name,
            tenant = %identity.tenant_id,
            object_id = %identity.object_id,
            "tool call refused: over the tool's rate_limit (one such line a minute per caller)"
        );
    }
    Some(too_many_requests(
        limited,
        &format!("Too Many Requests: you called the tool {name} more often than its rate_limit allows; retry after the time in Retry-After"),
    ))
}

/// The tool a JSON-RPC body calls, when it is one `tools/call` request (not a batch).
fn single_tool_call(body: &[u8]) -> Option<Cow<'_, str>> {
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

#[cfg(test)]
mod tests {
    use http_body_util::Empty;
    use tower::ServiceExt as _;
    use verifiers::ScopeProblem;

    use super::*;
    use crate::http::body::full;
    use crate::ToolRefusal;

    /// Refuses `roll_dice`, allows everything else.
    #[derive(Debug)]
    struct NoDice;

    #[async_trait::async_trait]
    impl ToolGate for NoDice {
        async fn check_tool(
            &self,
            name: &str,
            _: &Identity,
            _: Option<&AccessToken>,
        ) -> Result<(), ToolRefusal> {
            if name != "roll_dice" {
                return Ok(());
            }
            Err(ToolRefusal {
                error: verifiers::AuthError::InsufficientScope {
                    required: vec!["Dice.Roll".into()],
                    problem: ScopeProblem::MissingScopes {
                        missing: vec!["Dice.Roll".into()],
                    },
                },
                scope: "api://x/Dice.Roll".into(),
                log_detail: None,
            })
        }
    }

    #[tokio::test]
    async fn a_forbidden_call_is_refused_by_its_header_in_either_spelling() {
        let layer = ToolGateLayer::new(
            Challenges::new(
                "http://localhost/.well-known/oauth-protected-resource/mcp".into(),
                String::new(),
            ),
            1024,
        )
        .with_gate(Arc::new(NoDice));
        let inner = tower::service_fn(|_: Request<PeekedBody<Empty<Bytes>>>| async {
            Ok::<_, std::convert::Infallible>(Response::new(full("inner")))
        });
        // (MCP-Protocol-Version, Mcp-Method, Mcp-Name, expected status)
        let rows = [
            ("2026-07-28", "tools/call", "roll_dice", 403),
            ("2026-07-28", "tools/call", "=?base64?cm9sbF9kaWNl?=", 403),
            ("2026-07-28", "tools/call", "whoami", 200),
            ("2026-07-28", "tools/list", "roll_dice", 200),
            ("2026-07-28", "tools/call", "=?base64?***?=", 400),
            // Before 2026-07-28 nobody checks the headers against the body: the body decides
            // (here there is none, so the handler will).
            ("2025-11-25", "tools/call", "roll_dice", 200),
        ];
        for (version, method, name, status) in rows {
            let mut request = Request::post("/mcp")
                .header("mcp-protocol-version", version)
                .header("mcp-method", method)
                .header("mcp-name", name)
                .body(Empty::<Bytes>::new())
                .unwrap();
            request
                .extensions_mut()
                .insert(Arc::new(Identity::builder("alice", "t").build()));
            let response = layer.layer(inner).oneshot(request).await.unwrap();
            assert_eq!(response.status(), status, "{method} {name}");
        }
    }
}
