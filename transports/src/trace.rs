//! OpenTelemetry spans of MCP requests (docs/operations.md#traces), named and attributed after
//! the OpenTelemetry semantic conventions for HTTP and for MCP.
//!
//! Nothing here runs unless the server installed an exporter
//! ([`verifiers::telemetry::enabled`]). Then one request over HTTP gives:
//!
//! ```text
//! POST /mcp                    SERVER  HTTP conventions; parent: the `traceparent` header
//! ├── verify token             INTERNAL the verifier: cache hit or not (GET the JWKS if fetched)
//! └── tools/call roll_dice     SERVER  MCP conventions; parent: `params._meta.traceparent` when
//!     │                                 present (then linked to the HTTP span), else the HTTP span
//!     └── execute_tool roll_dice        the tool; on-behalf-of and downstream calls below it
//! ```
//!
//! The MCP span's parent follows SEP-414 and the MCP conventions: the trace context in the
//! request's `_meta` wins over the transport's, which becomes a link. Over stdio there is no
//! HTTP span: the MCP span's parent comes from `_meta` alone. The caller appears by its Entra
//! ids (`entra.tid`, `entra.oid`, `entra.azp`, and `enduser.id` = `oid`), never by token, and by
//! name only when the operator opts in ([`verifiers::telemetry::set_include_user_names`]).

use std::borrow::Cow;

use http::{HeaderMap, Method, Request, Version};
use serde::Deserialize;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use verifiers::telemetry::{self, HeaderExtractor, JsonExtractor, TARGET};
use verifiers::CallerText;

use crate::audit::ClientAddr;

/// A request extension carrying the MCP server span of the request, so the handler can hang its
/// own spans (the tool's) under it even where rmcp runs the handler on another task.
#[derive(Clone, Debug)]
pub struct McpSpan(pub Span);

/// What a JSON-RPC request says about itself, for its span: method, id, the tool, prompt or
/// resource it names, its protocol version and its trace context (`params._meta`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Envelope<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(borrow, default)]
    params: Option<EnvelopeParams<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct EnvelopeParams<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<Cow<'a, str>>,
    #[serde(rename = "_meta", default)]
    meta: Option<serde_json::Map<String, serde_json::Value>>,
}

impl<'a> Envelope<'a> {
    /// The envelope of one JSON-RPC message; an empty one for anything else (a batch, a body
    /// that is not JSON).
    pub(crate) fn parse(body: &'a [u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// Whether the body was one JSON-RPC request or notification (it has a method).
    pub(crate) fn is_message(&self) -> bool {
        self.method.is_some()
    }

    /// `params.name`: the tool or prompt.
    fn name(&self) -> Option<&str> {
        self.params.as_ref()?.name.as_deref()
    }

    /// `params.uri`: the resource.
    fn uri(&self) -> Option<&str> {
        self.params.as_ref()?.uri.as_deref()
    }
}

/// `1.1` or `2`, as `network.protocol.version` writes them.
fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_2 => "2",
        Version::HTTP_10 => "1.0",
        _ => "1.1",
    }
}

/// The HTTP server span of a request to the MCP endpoint (route `/mcp`), its parent the
/// request's `traceparent`. A disabled span when traces are off.
pub(crate) fn http_server_span<B>(request: &Request<B>, host: &str) -> Span {
    if !telemetry::enabled() {
        return Span::none();
    }
    let client = request.extensions().get::<ClientAddr>().copied();
    // The HTTP conventions: a method outside the known set is `_OTHER` (the caller's spelling,
    // bounded, in `http.request.method_original`).
    let (method, original) = match *request.method() {
        Method::GET
        | Method::POST
        | Method::DELETE
        | Method::OPTIONS
        | Method::HEAD
        | Method::PUT
        | Method::PATCH => (request.method().as_str(), None),
        _ => (
            "_OTHER",
            Some(CallerText::new(request.method().as_str()).to_string()),
        ),
    };
    // `Host` is one the server answers for (checked before this span), as `name[:port]`.
    let authority = host.parse::<http::uri::Authority>().ok();
    let server_address = authority
        .as_ref()
        .map_or(host, |a| a.host())
        .trim_start_matches('[')
        .trim_end_matches(']');
    let server_port = authority.as_ref().and_then(|a| a.port_u16()).map(i64::from);
    let span = tracing::info_span!(
        target: TARGET,
        "http.server",
        otel.name = %format_args!("{} /mcp", if method == "_OTHER" { "HTTP" } else { method }),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.request.method_original = original,
        http.route = "/mcp",
        http.response.status_code = Empty,
        url.scheme = "http",
        url.path = request.uri().path(),
        network.protocol.name = "http",
        network.protocol.version = protocol_version(request.version()),
        server.address = server_address,
        server.port = server_port,
        client.address = client.map(|c| c.ip().to_string()),
        client.port = client.filter(|c| c.forwarded_for.is_none()).map(|c| i64::from(c.peer.port())),
        error.type = Empty,
    );
    if let Some(parent) = telemetry::extract(&HeaderExtractor(request.headers())) {
        let _ = span.set_parent(parent);
    }
    span
}

/// Records the answer's status on the HTTP span: `5xx` marks it an error (the HTTP conventions
/// leave `4xx` unmarked on server spans).
pub(crate) fn record_status(span: &Span, status: http::StatusCode) {
    if span.is_disabled() {
        return;
    }
    // Integers as i64: the OpenTelemetry bridge records unsigned values as text.
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("error.type", status.as_str());
        span.record("otel.status_code", "ERROR");
    }
}

/// The MCP server span of one JSON-RPC request over HTTP (`envelope`, its `headers`): named
/// `{mcp.method.name} {target}`, its parent the request's `_meta` trace context when present
/// (linked to the current span, the HTTP one), else the current span.
///
/// `tool`: the tool the transport judged the call by (the `Mcp-Name` header at 2026-07-28),
/// which names the span rather than the body's (rmcp refuses a request where they differ).
pub(crate) fn mcp_server_span(
    envelope: &Envelope<'_>,
    tool: Option<&str>,
    headers: &HeaderMap,
    version: Version,
) -> Span {
    let method = envelope.method.as_deref().unwrap_or("");
    let session = headers.get("mcp-session-id").and_then(|v| v.to_str().ok());
    let protocol = envelope
        .params
        .as_ref()
        .and_then(|p| p.meta.as_ref())
        .and_then(|meta| meta.get("io.modelcontextprotocol/protocolVersion"))
        .and_then(|v| v.as_str())
        .or_else(|| headers.get("mcp-protocol-version").and_then(|v| v.to_str().ok()));
    let span = mcp_span(
        method,
        envelope.id.as_ref(),
        tool.or(envelope.name()),
        envelope.uri(),
        protocol,
        session,
        Some(("tcp", protocol_version(version))),
    );
    let meta = envelope.params.as_ref().and_then(|p| p.meta.as_ref());
    if let Some(parent) = meta.and_then(|meta| telemetry::extract(&JsonExtractor(meta))) {
        let transport = Span::current().context();
        if span.set_parent(parent).is_ok() {
            use opentelemetry::trace::TraceContextExt as _;
            span.add_link(transport.span().span_context().clone());
        }
    }
    span
}

/// The MCP server span of a request over stdio: its parent the `_meta` trace context, if any.
pub fn stdio_server_span(
    method: &str,
    id: &serde_json::Value,
    name: Option<&str>,
    uri: Option<&str>,
    meta: &serde_json::Map<String, serde_json::Value>,
) -> Span {
    if !telemetry::enabled() {
        return Span::none();
    }
    let protocol = meta
        .get("io.modelcontextprotocol/protocolVersion")
        .and_then(|v| v.as_str());
    let span = mcp_span(method, Some(id), name, uri, protocol, None, None);
    if let Some(parent) = telemetry::extract(&JsonExtractor(meta)) {
        let _ = span.set_parent(parent);
    }
    span
}

fn mcp_span(
    method: &str,
    id: Option<&serde_json::Value>,
    name: Option<&str>,
    uri: Option<&str>,
    protocol: Option<&str>,
    session: Option<&str>,
    network: Option<(&str, &str)>,
) -> Span {
    if !telemetry::enabled() {
        return Span::none();
    }
    // Everything here comes from the caller (authenticated over HTTP, the host's user over
    // stdio): names must look like names to reach the span name, and every value is bounded.
    let method = if is_method_name(method) { method } else { "_OTHER" };
    let name = name.filter(|n| is_tool_name(n));
    let tool = (method == "tools/call").then_some(name).flatten();
    let prompt = (method == "prompts/get").then_some(name).flatten();
    // `{mcp.method.name} {target}`: the tool or prompt (never the resource URI).
    let span_name = match tool.or(prompt) {
        Some(target) => format!("{method} {target}"),
        None => method.to_owned(),
    };
    let request_id = id.and_then(|id| match id {
        serde_json::Value::String(s) => Some(CallerText::new(s).to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let resource = method
        .starts_with("resources/")
        .then_some(uri)
        .flatten()
        .map(|uri| CallerText::new(uri).to_string());
    let protocol = protocol.filter(|p| is_protocol_version(p));
    let session = session.map(|s| CallerText::new(s).to_string());
    tracing::info_span!(
        target: TARGET,
        "mcp.server",
        otel.name = span_name,
        otel.kind = "server",
        otel.status_code = Empty,
        otel.status_message = Empty,
        mcp.method.name = method,
        mcp.protocol.version = protocol,
        mcp.session.id = session,
        mcp.resource.uri = resource,
        jsonrpc.request.id = request_id,
        gen_ai.tool.name = tool,
        gen_ai.prompt.name = prompt,
        gen_ai.operation.name = tool.map(|_| "execute_tool"),
        network.transport = network.map(|(transport, _)| transport).unwrap_or("pipe"),
        network.protocol.name = network.map(|_| "http"),
        network.protocol.version = network.map(|(_, version)| version),
        error.type = Empty,
        rpc.response.status_code = Empty,
    )
}

/// The span of a tool's run (`execute_tool {gen_ai.tool.name}`, kind internal) under `parent`
/// (the request's MCP span, which may live on another task); disabled when `parent` is. A name
/// that is not a tool name as the MCP specification allows them gives `execute_tool` alone.
pub fn execute_tool_span(parent: &Span, name: &str) -> Span {
    if parent.is_disabled() {
        return Span::none();
    }
    let name = is_tool_name(name).then_some(name);
    let span_name = match name {
        Some(name) => format!("execute_tool {name}"),
        None => "execute_tool".to_owned(),
    };
    tracing::info_span!(
        target: TARGET,
        parent: parent,
        "execute_tool",
        otel.name = span_name,
        otel.kind = "internal",
        otel.status_code = Empty,
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = name,
        error.type = Empty,
    )
}

/// Marks an MCP span failed: `error_type` is the JSON-RPC error code as text, `tool_error` for
/// a tool's own error, or a refusal's code (`insufficient_scope`, `rate_limited`); `code` the
/// JSON-RPC error code, when there is one. The status message is a fixed text per kind: an
/// error's own message can repeat what the caller sent.
pub fn record_mcp_error(span: &Span, error_type: &str, code: Option<i32>) {
    if span.is_disabled() {
        return;
    }
    span.record("error.type", error_type);
    if let Some(code) = code {
        span.record("rpc.response.status_code", code.to_string());
    }
    span.record("otel.status_code", "ERROR");
    let message = match (error_type, code) {
        ("tool_error", _) => "the tool answered with an error",
        ("insufficient_scope", _) => "the token lacks what the call requires",
        ("rate_limited", _) => "over a rate limit",
        (_, Some(-32700)) => "parse error",
        (_, Some(-32600)) => "invalid request",
        (_, Some(-32601)) => "method not found",
        (_, Some(-32602)) => "invalid params",
        (_, Some(-32603)) => "internal error",
        _ => "error",
    };
    span.record("otel.status_message", message);
}

/// A JSON-RPC method name as MCP writes them (`tools/call`, `notifications/initialized`):
/// lower-camel words separated by `/`, at most 64 characters.
fn is_method_name(method: &str) -> bool {
    !method.is_empty()
        && method.len() <= 64
        && method.split('/').all(|word| {
            word.starts_with(|c: char| c.is_ascii_lowercase())
                && word.chars().all(|c| c.is_ascii_alphanumeric())
        })
}

/// A tool or prompt name as the MCP specification allows them (SEP-986): 1 to 128 of
/// `A-Z a-z 0-9 _ - .`.
fn is_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A protocol version: an ISO date (`2026-07-28`).
fn is_protocol_version(version: &str) -> bool {
    version.len() == 10
        && version.chars().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_names_what_its_span_needs() {
        let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"roll_dice","arguments":{},"_meta":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}}"#;
        let envelope = Envelope::parse(body);
        assert_eq!(envelope.method.as_deref(), Some("tools/call"));
        assert_eq!(envelope.id, Some(serde_json::json!(7)));
        assert_eq!(envelope.name(), Some("roll_dice"));
        assert!(envelope
            .params
            .as_ref()
            .unwrap()
            .meta
            .as_ref()
            .unwrap()
            .contains_key("traceparent"));
        // A batch or a body that is not JSON: nothing, without an error.
        for body in [&br#"[{"method":"ping"}]"#[..], b"not json", b""] {
            let envelope = Envelope::parse(body);
            assert!(envelope.method.is_none() && envelope.params.is_none());
        }
    }

    #[test]
    fn only_names_that_look_like_names_reach_a_span_name() {
        // (text, a method name, a tool name, a protocol version)
        let long = "a".repeat(129);
        let rows: [(&str, bool, bool, bool); 9] = [
            ("tools/call", true, false, false),
            ("notifications/initialized", true, false, false),
            ("roll_dice", false, true, false),
            ("get.weather-v2", false, true, false),
            ("2026-07-28", false, true, true),
            ("Tools/Call", false, false, false),
            ("tools call", false, false, false),
            ("", false, false, false),
            (&long, false, false, false),
        ];
        for (text, method, tool, version) in rows {
            assert_eq!(is_method_name(text), method, "method {text:?}");
            assert_eq!(is_tool_name(text), tool, "tool {text:?}");
            assert_eq!(is_protocol_version(text), version, "version {text:?}");
        }
    }
}
