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

/// Whether the process environment turns traces on (see [`wanted`]).
///
/// # Errors
/// As [`wanted`].
pub fn wanted_by_process() -> Result<bool, TelemetryError> {
    // Variables that are not UTF-8 cannot be OTEL_* settings; `vars()` would panic on them.
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    wanted(&env)
}

/// Whether the environment `env` (the process environment) turns traces on.
///
/// # Errors
/// [`TelemetryError`] for an exporter or protocol this server does not have.
pub fn wanted(env: &HashMap<String, String>) -> Result<bool, TelemetryError> {
    let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(false);
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
        return Ok(false);
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
    Ok(true)
}

/// Builds the exporter and the tracer provider from the process environment (call before the
/// async runtime starts: the exporter's HTTP client runs on its own thread), installs the W3C
/// trace-context propagator, and returns the `tracing` layer to add to the subscriber.
///
/// # Errors
/// [`TelemetryError::Build`] when the exporter cannot be built.
pub fn install<S>() -> Result<
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
    // traceparent and tracestate only: baggage from a caller is not passed on downstream.
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
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
        let rows: &[(Vars, Result<bool, &str>)] = &[
            (&[], Ok(false)),
            (&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")], Ok(true)),
            (
                &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")],
                Ok(true),
            ),
            (&[("OTEL_TRACES_EXPORTER", "otlp")], Ok(true)),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_TRACES_EXPORTER", "none"),
                ],
                Ok(false),
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_SDK_DISABLED", "true"),
                ],
                Ok(false),
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                ],
                Ok(true),
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
            // The signal's own variable decides over the general one.
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                Ok(true),
            ),
        ];
        for (vars, expected) in rows {
            let env = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            match (wanted(&env), expected) {
                (Ok(on), Ok(want)) => assert_eq!(on, *want, "{vars:?}"),
                (Err(error), Err(start)) => {
                    assert!(error.to_string().starts_with(start), "{vars:?}: {error}")
                }
                (got, _) => panic!("{vars:?}: {got:?}"),
            }
        }
    }
}
