//! Which path gets what, plus the Host/Origin checks and CORS of the MCP endpoint.

use std::convert::Infallible;
use std::future::Future as _;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Frame;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tower::ServiceExt as _;
use tracing::Instrument as _;
use verifiers::{CallerText, TokenVerifier};

use super::ambiguity::{ambiguity, request_host};
use super::body::{empty, full, text, with_guard, Body};
use super::config::MCP_PATH;
use super::connection::RequestBody;
use super::metadata::MetadataDocuments;
use super::origin::HostOriginPolicy;
use super::rate_limit::{address_key, too_many_requests, KeyedLimiter, TrustedProxies};
use crate::audit::ClientAddr;

/// The headers a browser client may send to `/mcp`.
const CORS_ALLOW_HEADERS: &str =
    "authorization, content-type, accept, mcp-session-id, mcp-protocol-version, mcp-method, mcp-name, last-event-id";
/// The response headers a browser client may read.
const CORS_EXPOSE_HEADERS: &str = "mcp-session-id, mcp-protocol-version, www-authenticate, retry-after";

/// The MCP service behind bearer auth, as the router and the connections need it.
pub(crate) trait McpService:
    tower::Service<Request<RequestBody>, Response = Response<Body>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> McpService for S where
    S: tower::Service<Request<RequestBody>, Response = Response<Body>, Error = Infallible, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Everything a request needs, shared by all connections.
pub(crate) struct App<S> {
    /// The MCP service behind bearer auth.
    pub(crate) mcp: S,
    pub(crate) verifier: Arc<dyn TokenVerifier>,
    pub(crate) metadata: MetadataDocuments,
    /// `host:port` → the documents for a client that reached the server by that loopback host
    /// (only when `PUBLIC_URL` is a default).
    pub(crate) metadata_by_host: Vec<(String, MetadataDocuments)>,
    /// The path of `PUBLIC_URL` (`""` or `/entra`): requests are served with it (a gateway that
    /// keeps the prefix) and without it (a gateway that strips it).
    pub(crate) prefix: String,
    pub(crate) policy: HostOriginPolicy,
    /// Cancelled when shutdown starts: ends open GET event streams so connections can drain.
    pub(crate) draining: CancellationToken,
    /// `RATE_LIMIT_PER_ADDRESS`, keyed by [`address_key`]; `None`: no limit.
    pub(crate) address_limit: Option<KeyedLimiter<IpAddr>>,
    /// Whose forwarded-for header names the client.
    pub(crate) trusted_proxies: TrustedProxies,
    /// Legacy sessions shared in Redis, whose state `/ready` reports.
    pub(crate) shared_sessions: Option<Arc<crate::redis::RedisSessions>>,
}

pub(crate) async fn route<S>(
    app: Arc<App<S>>,
    mut request: Request<RequestBody>,
) -> Result<Response<Body>, Infallible>
where
    S: tower::Service<Request<RequestBody>, Response = Response<Body>, Error = Infallible> + Clone,
{
    if let Some(mut response) = limit_address(&app, &mut request) {
        // A browser client reads Retry-After only when told it may.
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            if origin.to_str().is_ok_and(|o| app.policy.origin_allowed(o)) {
                allow_origin(response.headers_mut(), origin.clone());
            }
        }
        metrics::counter!("mcp_http_requests_total", "route" => "rate_limited", "status" => "429")
            .increment(1);
        return Ok(response);
    }
    if let Some((status, reason)) = ambiguity(&request) {
        tracing::info!(
            reason = %reason,
            path = %CallerText::new(request.uri().path()),
            "refused an ambiguous request"
        );
        let response = text(status, &reason);
        metrics::counter!("mcp_http_requests_total", "route" => "ambiguous", "status" => status_label(response.status()))
            .increment(1);
        return Ok(response);
    }
    let path = request.uri().path();
    let documents = request_host(&request)
        .and_then(|host| {
            app.metadata_by_host
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(host))
        })
        .map_or(&app.metadata, |(_, documents)| documents);
    let (route, response) = if let Some(json) = documents.render(path, app.verifier.as_ref()) {
        // Metadata lives at the host's well-known path (RFC 9728 §3.1), never under the prefix.
        ("metadata", metadata(request.method(), json))
    } else {
        match without_prefix(path, &app.prefix) {
            "/health" => ("health", health(request.method())),
            "/ready" => (
                "ready",
                ready(
                    request.method(),
                    app.verifier.as_ref(),
                    app.shared_sessions.as_deref(),
                )
                .await,
            ),
            p if p == MCP_PATH || p.strip_suffix('/') == Some(MCP_PATH) => ("mcp", mcp(&app, request).await),
            // Unknown paths share one label, so scanners cannot blow up the metric's cardinality.
            _ => ("other", text(StatusCode::NOT_FOUND, "Not Found")),
        }
    };
    metrics::counter!("mcp_http_requests_total", "route" => route, "status" => status_label(response.status()))
        .increment(1);
    Ok(response)
}

/// Resolves the client address behind trusted proxies (into the request's [`ClientAddr`]) and
/// applies `RATE_LIMIT_PER_ADDRESS`: `Some(429)` past it. Runs before anything else looks at the
/// request, so a flood from one address costs no token work. `/health` and `/ready` are exempt
/// (probes come from the platform at a fixed pace). The answer says nothing about the limit:
/// the caller is not authenticated.
fn limit_address<S>(app: &App<S>, request: &mut Request<RequestBody>) -> Option<Response<Body>> {
    let client = request.extensions().get::<ClientAddr>().copied()?;
    let forwarded_for = if app.trusted_proxies.is_empty() {
        None
    } else {
        app.trusted_proxies
            .forwarded_for(client.peer.ip(), request.headers())
    };
    let client = ClientAddr {
        forwarded_for,
        ..client
    };
    if forwarded_for.is_some() {
        request.extensions_mut().insert(client);
    }
    let limiter = app.address_limit.as_ref()?;
    if matches!(
        without_prefix(request.uri().path(), &app.prefix),
        "/health" | "/ready"
    ) {
        return None;
    }
    let limited = limiter.check(&address_key(client.ip())).err()?;
    tracing::debug!(client = %client.ip(), "refused a request: RATE_LIMIT_PER_ADDRESS");
    crate::audit::refused_before_authentication("rate_limited_address", Some(client));
    Some(too_many_requests(
        limited,
        "Too Many Requests: too many requests from this address; retry after the time in Retry-After",
    ))
}

/// `path` with the `PUBLIC_URL` path `prefix` removed when it starts with it (whole segments
/// only: `/entra` strips `/entra/mcp`, not `/entrance/mcp`); otherwise `path` unchanged.
fn without_prefix<'a>(path: &'a str, prefix: &str) -> &'a str {
    match path.strip_prefix(prefix) {
        Some(rest) if !prefix.is_empty() && rest.starts_with('/') => rest,
        _ => path,
    }
}

async fn mcp<S>(app: &App<S>, request: Request<RequestBody>) -> Response<Body>
where
    S: tower::Service<Request<RequestBody>, Response = Response<Body>, Error = Infallible> + Clone,
{
    let span = match request_host(&request) {
        // After the check: the span names only a host the server answers for.
        Some(host) if app.policy.host_allowed(host) => crate::trace::http_server_span(&request, host),
        other => {
            tracing::warn!(
                host = %CallerText::new(other.unwrap_or("<none>")),
                "refused a request for a host that is not allowed"
            );
            return text(
                StatusCode::FORBIDDEN,
                "Forbidden: Host not allowed (set ALLOWED_HOSTS or PUBLIC_URL to the name clients use)",
            );
        }
    };
    let origin = request.headers().get(header::ORIGIN).cloned();
    if let Some(origin) = &origin {
        if !origin.to_str().is_ok_and(|o| app.policy.origin_allowed(o)) {
            tracing::warn!(
                origin = %CallerText::new(&String::from_utf8_lossy(origin.as_bytes())),
                "refused a request from an origin that is not allowed"
            );
            crate::trace::record_status(&span, StatusCode::FORBIDDEN);
            return text(
                StatusCode::FORBIDDEN,
                "Forbidden: Origin not allowed (see ALLOWED_ORIGINS)",
            );
        }
    }
    let method = request.method().clone();
    let answered = if method == Method::OPTIONS {
        Ok(preflight())
    } else if span.is_disabled() {
        app.mcp.clone().oneshot(request).await
    } else {
        app.mcp.clone().oneshot(request).instrument(span.clone()).await
    };
    let mut response = match answered {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if method == Method::GET && response.status().is_success() {
        response = response.map(|body| until(body, app.draining.clone()));
    }
    // rmcp answers a session DELETE with 202; the Python SDK accepts only 200/204 (and logs a
    // warning otherwise). The session is gone when we answer, so 204 is the accurate status.
    if method == Method::DELETE && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    if let Some(origin) = origin {
        allow_origin(response.headers_mut(), origin);
    }
    if !span.is_disabled() {
        crate::trace::record_status(&span, response.status());
        // The span ends with the answer's body (a stream's last event), not its headers.
        response = response.map(|body| with_guard(body, span));
    }
    response
}

/// A static label per status code (no allocation on the hot path).
fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        406 => "406",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

fn preflight() -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(CORS_ALLOW_HEADERS),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    response
}

fn allow_origin(headers: &mut http::HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(CORS_EXPOSE_HEADERS),
    );
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}

fn health(method: &Method) -> Response<Body> {
    match *method {
        Method::GET | Method::HEAD => text(StatusCode::OK, "ok"),
        _ => method_not_allowed("GET, HEAD"),
    }
}

/// `200 ready` once the verifier can verify, else `503`. With shared sessions the body also says
/// whether Redis answers; its status does not depend on it: a replica whose Redis is down still
/// serves every 2026-07-28 request and the sessions it holds, and taking every replica out of
/// rotation at once would turn a degraded service into an outage.
async fn ready(
    method: &Method,
    verifier: &dyn TokenVerifier,
    shared: Option<&crate::redis::RedisSessions>,
) -> Response<Body> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return method_not_allowed("GET, HEAD");
    }
    match verifier.readiness() {
        verifiers::Readiness::Ready => match shared {
            None => text(StatusCode::OK, "ready"),
            Some(shared) => match shared.ping().await {
                Ok(()) => text(StatusCode::OK, "ready; redis: ok"),
                Err(error) => text(
                    StatusCode::OK,
                    &format!(
                        "ready; redis: {error} (new and restored legacy sessions get 503 until it answers)"
                    ),
                ),
            },
        },
        verifiers::Readiness::NotReady(reason) => {
            text(StatusCode::SERVICE_UNAVAILABLE, &format!("not ready: {reason}"))
        }
    }
}

fn metadata(method: &Method, json: Bytes) -> Response<Body> {
    let mut response = match *method {
        Method::GET | Method::HEAD => {
            let mut r = Response::new(full(json));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                // Short: `authorization_servers` changes once the issuer is discovered.
                HeaderValue::from_static("public, max-age=300"),
            );
            r
        }
        Method::OPTIONS => preflight(),
        _ => return method_not_allowed("GET, HEAD, OPTIONS"),
    };
    // Public information that browser-based clients must be able to read from any origin.
    response
        .headers_mut()
        .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// A body that ends early, cleanly, once `token` is cancelled.
fn until(body: Body, token: CancellationToken) -> Body {
    UntilCancelled {
        body,
        cancelled: Box::pin(token.cancelled_owned()),
    }
    .boxed()
}

struct UntilCancelled {
    body: Body,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl hyper::body::Body for UntilCancelled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Pin::new(&mut self.body).poll_frame(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_stripped_by_whole_segments_only() {
        for (path, prefix, expected) in [
            ("/mcp", "", "/mcp"),
            ("/mcp", "/entra", "/mcp"),
            ("/entra/mcp", "/entra", "/mcp"),
            ("/entra/mcp/", "/entra", "/mcp/"),
            ("/entra/health", "/entra", "/health"),
            ("/entrance/mcp", "/entra", "/entrance/mcp"),
            ("/entra", "/entra", "/entra"),
            ("/a/b/mcp", "/a/b", "/mcp"),
            ("/a/mcp", "/a/b", "/a/mcp"),
        ] {
            assert_eq!(without_prefix(path, prefix), expected, "{path} under {prefix:?}");
        }
    }
}
