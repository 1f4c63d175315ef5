//! Exporting traces with OpenTelemetry (docs/operations.md#traces), configured by the standard
//! `OTEL_*` environment variables and off unless they ask for it.
//!
//! The spans themselves are made where the work is (`transports::trace`, the verifier's
//! `verifiers::telemetry`); this module installs what exports them: the OpenTelemetry SDK's
//! tracer provider with its batch processor, the OTLP/HTTP exporter, the W3C trace-context
//! propagator, and the `tracing` layer that turns spans of the target
//! [`verifiers::telemetry::TARGET`] into OpenTelemetry spans.
//!
//! Traces are on when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set,
//! or `OTEL_TRACES_EXPORTER=otlp`; off with `OTEL_TRACES_EXPORTER=none` or
//! `OTEL_SDK_DISABLED=true` (OpenTelemetry's environment specification). The SDK and the exporter
//! read the rest themselves: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER`(`_ARG`), `OTEL_EXPORTER_OTLP_(TRACES_)HEADERS`, `…_TIMEOUT`,
//! `…_PROTOCOL` (`http/protobuf`, `http/json`), `OTEL_BSP_*`.

use std::collections::HashMap;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use thiserror::Error;

/// The exporter the environment asks for cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// `OTEL_TRACES_EXPORTER` names an exporter this server does not have.
    #[error("OTEL_TRACES_EXPORTER={0}: this server exports traces over OTLP only; use otlp, or none to turn traces off")]
    Exporter(String),
    /// The OTLP protocol asked for is not built in (`grpc`) or not a protocol.
    #[error("{name}={value}: this server sends OTLP over HTTP; use http/protobuf (or http/json) and the collector's HTTP port (4318), e.g. OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318")]
    Protocol {
        /// The variable that asked for it.
        name: &'static str,
        /// What it asked for.
        value: String,
    },
    /// `OTEL_PROPAGATORS` names a propagator this server does not have.
    #[error("OTEL_PROPAGATORS names {0}: this server reads and writes W3C trace context only; use tracecontext, or none to start every request's trace afresh")]
    Propagator(String),
    /// The exporter could not be built (a malformed endpoint or header).
    #[error("cannot export traces: {0}; check OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_HEADERS")]
    Build(String),
}

/// The installed trace pipeline: shut it down before the process ends, so the spans of the last
/// requests are sent.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Sends the spans still queued and stops the exporter (bounded by the exporter's timeout).
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "could not send the last spans to the trace collector");
        }
    }
}

/// What the environment asks of traces, when it turns them on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceSettings {
    /// Read a caller's W3C trace context and pass it on downstream (`OTEL_PROPAGATORS`
    /// `tracecontext`, the default); `false` with `OTEL_PROPAGATORS=none`: every request starts
    /// its own trace, and a caller cannot choose its trace id or force sampling.
    pub propagate: bool,
}

/// Whether the process environment turns traces on (see [`wanted`]).
///
/// # Errors
/// As [`wanted`].
pub fn wanted_by_process() -> Result<Option<TraceSettings>, TelemetryError> {
    // Variables that are not UTF-8 cannot be OTEL_* settings; `vars()` would panic on them.
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    wanted(&env)
}

/// Where traces go, for the start-up log: the traces endpoint as the exporter resolves it, without
/// any user or password written into it.
pub fn endpoint_for_log() -> String {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|_| {
            std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
                .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
        })
        .unwrap_or_else(|_| "http://localhost:4318/v1/traces".to_owned());
    match url::Url::parse(&endpoint) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// Whether the environment `env` (the process environment) turns traces on.
///
/// # Errors
/// [`TelemetryError`] for an exporter or protocol this server does not have.
pub fn wanted(env: &HashMap<String, String>) -> Result<Option<TraceSettings>, TelemetryError> {
    let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or(get("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let on = match get("OTEL_TRACES_EXPORTER")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => endpoint.is_some(),
        Some("none") => false,
        Some("otlp") => true,
        Some(other) => return Err(TelemetryError::Exporter(other.to_owned())),
    };
    if !on {
        return Ok(None);
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(value) = get(name) {
            if !matches!(value, "http/protobuf" | "http/json") {
                return Err(TelemetryError::Protocol {
                    name,
                    value: value.to_owned(),
                });
            }
            break;
        }
    }
    // OpenTelemetry's default is `tracecontext,baggage`; baggage is accepted and not propagated.
    let mut propagate = true;
    if let Some(value) = get("OTEL_PROPAGATORS") {
        let names: Vec<String> = value.split(',').map(|n| n.trim().to_ascii_lowercase()).collect();
        if let Some(other) = names
            .iter()
            .find(|n| !matches!(n.as_str(), "tracecontext" | "baggage" | "none"))
        {
            return Err(TelemetryError::Propagator(other.clone()));
        }
        propagate = names.iter().any(|n| n == "tracecontext");
    }
    Ok(Some(TraceSettings { propagate }))
}

/// Builds the exporter and the tracer provider from the process environment (call before the
/// async runtime starts: the exporter's HTTP client runs on its own thread), installs the W3C
/// trace-context propagator, and returns the `tracing` layer to add to the subscriber.
///
/// # Errors
/// [`TelemetryError::Build`] when the exporter cannot be built.
pub fn install<S>(
    settings: TraceSettings,
) -> Result<
    (
        Traces,
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
    ),
    TelemetryError,
>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    // http/protobuf unless the environment asks for http/json (OpenTelemetry's default; `wanted`
    // refused any other). Set here: with both encodings built in, the exporter's own default
    // would be JSON.
    let json = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .iter()
    .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    .is_some_and(|v| v.trim() == "http/json");
    let protocol = if json {
        opentelemetry_otlp::Protocol::HttpJson
    } else {
        opentelemetry_otlp::Protocol::HttpBinary
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
        .map_err(|error| TelemetryError::Build(error.to_string()))?;
    let mut resource = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    // The SDK's default is `unknown_service`; OTEL_SERVICE_NAME (read by the SDK) wins over this.
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("mcp-server-entra");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    // traceparent and tracestate only: baggage from a caller is not passed on downstream. Without
    // propagation the global propagator stays OpenTelemetry's no-op one.
    if settings.propagate {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    }
    let tracer = provider.tracer("mcp-server-entra");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false);
    Ok((Traces { provider }, layer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_turns_traces_on_and_off() {
        // (variables, on, or the start of the error)
        // The environment of a row.
        type Vars = &'static [(&'static str, &'static str)];
        let rows: &[(Vars, Result<Option<bool>, &str>)] = &[
            (&[], Ok(None)),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")],
                Ok(Some(true)),
            ),
            (
                &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")],
                Ok(Some(true)),
            ),
            (&[("OTEL_TRACES_EXPORTER", "otlp")], Ok(Some(true))),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_TRACES_EXPORTER", "none"),
                ],
                Ok(None),
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_SDK_DISABLED", "true"),
                ],
                Ok(None),
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                ],
                Ok(Some(true)),
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                Err("OTEL_EXPORTER_OTLP_PROTOCOL=grpc: this server sends OTLP over HTTP"),
            ),
            (
                &[("OTEL_TRACES_EXPORTER", "console")],
                Err("OTEL_TRACES_EXPORTER=console: this server exports traces over OTLP only"),
            ),
            (
                &[
                    ("OTEL_TRACES_EXPORTER", "otlp"),
                    ("OTEL_PROPAGATORS", "tracecontext,baggage"),
                ],
                Ok(Some(true)),
            ),
            (
                &[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_PROPAGATORS", "none")],
                Ok(Some(false)),
            ),
            (
                &[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_PROPAGATORS", "b3")],
                Err("OTEL_PROPAGATORS names b3: this server reads and writes W3C trace context only"),
            ),
            // The signal's own variable decides over the general one.
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                Ok(Some(true)),
            ),
        ];
        for (vars, expected) in rows {
            let env = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            match (wanted(&env), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got.map(|t| t.propagate), *want, "{vars:?}"),
                (Err(error), Err(start)) => {
                    assert!(error.to_string().starts_with(start), "{vars:?}: {error}")
                }
                (got, _) => panic!("{vars:?}: {got:?}"),
            }
        }
    }
}
