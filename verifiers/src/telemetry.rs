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
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}
