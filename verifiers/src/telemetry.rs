//! What every crate of the server shares for OpenTelemetry traces (docs/operations.md#traces):
//! the tracing target of exported spans, whether they are exported, and the W3C trace context
//! (`traceparent`, `tracestate`) read from and written to carriers.
//!
//! It lives in the lowest crate because the verifier's spans (verification, key fetches,
//! on-behalf-of exchanges, downstream calls) are made here; the transports and the server use
//! the same items. The server installs the exporter and the propagator (its `telemetry.rs`);
//! until then every span of [`TARGET`] is disabled and costs a branch.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::Context;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The tracing target of every span meant for OpenTelemetry. The log never shows them (the
/// server's log layer filters this target out); the exporter sees only them.
pub const TARGET: &str = "otel";

/// Whether spans are exported now (an exporter is installed): one cached callsite check.
#[inline]
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// A header map read as a trace-context carrier.
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// A JSON object (an MCP request's `params._meta`) read as a trace-context carrier: SEP-414
/// reserves the bare keys `traceparent`, `tracestate` and `baggage` there.
pub struct JsonExtractor<'a>(pub &'a serde_json::Map<String, serde_json::Value>);

impl Extractor for JsonExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(serde_json::Value::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The remote parent a carrier names, through the installed propagator; `None` when it names
/// none (no or malformed `traceparent`).
pub fn extract(carrier: &dyn Extractor) -> Option<Context> {
    let context = opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(carrier));
    context.span().span_context().is_valid().then_some(context)
}

/// Writes the current span's trace context into `headers` (a downstream request), so the
/// called service continues the trace. Nothing when spans are not exported.
pub fn inject_current(headers: &mut HeaderMap) {
    if !enabled() {
        return;
    }
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

/// Whether spans name the caller by `name` and `preferred_username` too
/// (`TRACES_INCLUDE_USER_NAMES`); off unless the operator opts in.
static INCLUDE_USER_NAMES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets whether spans carry the caller's name and username (`user.full_name`, `user.name`).
pub fn set_include_user_names(include: bool) {
    INCLUDE_USER_NAMES.store(include, std::sync::atomic::Ordering::Relaxed);
}

/// Puts the caller on `span` by its Entra ids: `entra.tid`, `entra.oid`, `entra.azp`,
/// `entra.app_only`, and `enduser.id` (= `oid`, the OpenTelemetry name backends such as Azure
/// Monitor read as the user). Never the token; the name and username only when opted in.
pub fn record_caller(span: &tracing::Span, caller: &crate::Identity) {
    if span.is_disabled() {
        return;
    }
    span.set_attribute("entra.tid", caller.tenant_id.clone());
    if !caller.object_id.is_empty() {
        span.set_attribute("entra.oid", caller.object_id.clone());
        span.set_attribute("enduser.id", caller.object_id.clone());
    }
    if let Some(azp) = &caller.client_app {
        span.set_attribute("entra.azp", azp.clone());
    }
    span.set_attribute("entra.app_only", caller.app_only);
    if INCLUDE_USER_NAMES.load(std::sync::atomic::Ordering::Relaxed) {
        if let Some(name) = &caller.name {
            span.set_attribute("user.full_name", name.clone());
        }
        if let Some(username) = &caller.username {
            span.set_attribute("user.name", username.clone());
        }
    }
}

/// Sends `request` (a `method` call to `url`) inside an HTTP client span that records the
/// answer's status, or the kind of failure; with `inject`, the span's trace context travels in the
/// request's `traceparent` (a downstream API continues the trace; Entra's endpoints are not
/// told). Without exported spans, just sends it.
///
/// # Errors
/// As [`reqwest::RequestBuilder::send`].
pub async fn send(
    request: reqwest::RequestBuilder,
    method: &'static str,
    url: &str,
    inject: bool,
) -> Result<reqwest::Response, reqwest::Error> {
    use tracing::Instrument as _;
    let Some(url) = enabled().then(|| url::Url::parse(url).ok()).flatten() else {
        return request.send().await;
    };
    let span = http_client_span(method, &url);
    let mut request = request;
    if inject {
        let mut headers = HeaderMap::new();
        span.in_scope(|| inject_current(&mut headers));
        request = request.headers(headers);
    }
    let sent = request.send().instrument(span.clone()).await;
    let outcome = match &sent {
        Ok(response) => Ok(response.status().as_u16()),
        Err(error) if error.is_timeout() => Err("timeout"),
        Err(_) => Err("connect"),
    };
    record_http_status(&span, outcome);
    sent
}

/// An HTTP client span (OpenTelemetry HTTP conventions: named after the method, kind `client`)
/// for a call to `url`; disabled when spans are not exported. Record the answer with
/// [`record_http_status`].
pub fn http_client_span(method: &'static str, url: &url::Url) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        "http.client",
        otel.name = method,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        url.full = %url,
        server.address = url.host_str().unwrap_or(""),
        // Integers as i64: the OpenTelemetry bridge records unsigned values as text.
        server.port = url.port_or_known_default().map(i64::from),
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// Records an HTTP client call's outcome on its span: the status (`4xx` and `5xx` mark it an
/// error, as the HTTP conventions say for client spans), or `error_type` when no answer came.
pub fn record_http_status(span: &tracing::Span, outcome: Result<u16, &str>) {
    if span.is_disabled() {
        return;
    }
    match outcome {
        Ok(status) => {
            span.record("http.response.status_code", i64::from(status));
            if status >= 400 {
                span.record("error.type", status.to_string());
                span.record("otel.status_code", "ERROR");
            }
        }
        Err(error_type) => {
            span.record("error.type", error_type);
            span.record("otel.status_code", "ERROR");
        }
    }
}
