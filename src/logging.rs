//! Logs go to stderr (stdout is the JSON-RPC channel over stdio), human or JSON, level from
//! `RUST_LOG` (default `info`).
//!
//! Caller-controlled text is escaped where it is captured (`verifiers::CallerText`); as a last line
//! of defence the human format escapes control characters and line separators in every field
//! value too, so no field can start a forged log line (CWE-117). The JSON format is safe by
//! construction: JSON strings escape every control character.

use std::io::IsTerminal as _;

use tracing::field::Field;
use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::filter::{filter_fn, FilterExt as _};
use tracing_subscriber::fmt::format::{self, FormatFields, Writer};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};
use verifiers::telemetry::TARGET;

use crate::telemetry::{self, TelemetryError, TraceSettings, Traces};
use verifiers::CallerText;

use crate::cli::LogFormat;

/// The default level of `serve`: what an operator wants to see.
pub const SERVE_DEFAULT: &str = "info,rmcp=warn";
/// The default level of `stdio`: desktop hosts show stderr to users, so only what needs action.
pub const STDIO_DEFAULT: &str = "warn";

/// Installs the global subscriber: the log with `default_filter` unless `RUST_LOG` is set, and,
/// when `traces` is given (see [`telemetry::wanted`]), the OpenTelemetry exporter of the spans meant for
/// it (target [`TARGET`], which the log never shows). Call once, before anything logs and
/// before the async runtime starts; shut the returned pipeline down at exit.
///
/// # Errors
/// [`TelemetryError`] when the trace exporter cannot be built.
pub fn init(
    format: LogFormat,
    default_filter: &str,
    traces: Option<TraceSettings>,
) -> Result<Option<Traces>, TelemetryError> {
    let env_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let Some(settings) = traces else {
        // Without an exporter, one global filter: cheaper per event than per-layer filters. The
        // spans meant for an exporter stay out of the log whatever RUST_LOG says.
        let filter = match format!("{TARGET}=off").parse() {
            Ok(off) => env_filter.add_directive(off),
            Err(_) => env_filter,
        };
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false);
        // A second init (tests) is harmless: keep the first subscriber.
        let _ = match format {
            LogFormat::Human => builder.fmt_fields(escaping_fields()).try_init(),
            // JSON lines name their target, so a log pipeline can route the audit trail
            // (`"target":"audit"`) apart from the rest.
            LogFormat::Json => builder
                .with_target(true)
                .json()
                .flatten_event(true)
                .with_writer(|| SeparatorEscaping(std::io::stderr()))
                .try_init(),
        };
        return Ok(None);
    };
    // With an exporter, each layer behind its own filter: the log never shows the exporter's
    // spans, the exporter sees nothing else.
    let filter = env_filter.and(filter_fn(|metadata| metadata.target() != TARGET));
    match format {
        LogFormat::Human => with_exporter(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false)
                .fmt_fields(escaping_fields())
                .with_filter(filter),
            settings,
        ),
        LogFormat::Json => with_exporter(
            tracing_subscriber::fmt::layer()
                .with_target(true)
                .json()
                .flatten_event(true)
                .with_writer(|| SeparatorEscaping(std::io::stderr()))
                .with_filter(filter),
            settings,
        ),
    }
}

/// Installs `log` and the exporter's layer, which sees only the spans of [`TARGET`].
///
/// Per-layer filters keep their verdict on the event being dispatched in a thread-local: code
/// that runs while an event's fields are evaluated must not ask `tracing` whether something else
/// is enabled (see `transports::audit`, which computes its trace id before the event).
fn with_exporter<L>(log: L, settings: TraceSettings) -> Result<Option<Traces>, TelemetryError>
where
    L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    let (pipeline, layer) = telemetry::install(settings)?;
    let only_ours = filter_fn(|metadata| metadata.target() == TARGET);
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(layer.with_filter(only_ours))
        .try_init();
    Ok(Some(pipeline))
}

/// A writer for JSON log lines that writes U+2028 and U+2029 as `\u2028` and `\u2029`.
///
/// JSON escapes every control character but allows these two raw inside strings, and some log
/// viewers break lines on them. In JSON output they can only occur inside strings, where the
/// escape means the same character, so the line stays valid JSON.
pub struct SeparatorEscaping<W>(pub W);

impl<W: std::io::Write> std::io::Write for SeparatorEscaping<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !buf.windows(3).any(|w| matches!(w, [0xe2, 0x80, 0xa8 | 0xa9])) {
            return self.0.write(buf);
        }
        let mut out = Vec::with_capacity(buf.len() + 8);
        let mut i = 0;
        while i < buf.len() {
            match buf[i..] {
                [0xe2, 0x80, last @ (0xa8 | 0xa9), ..] => {
                    out.extend_from_slice(if last == 0xa8 { b"\\u2028" } else { b"\\u2029" });
                    i += 3;
                }
                _ => {
                    out.push(buf[i]);
                    i += 1;
                }
            }
        }
        // All or nothing: report the caller's bytes as written once the escaped form is.
        self.0.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The default human field layout (`message key=value key=value`), with every value escaped.
pub fn escaping_fields() -> impl for<'writer> FormatFields<'writer> + Send + Sync + 'static {
    format::debug_fn(
        |writer: &mut Writer<'_>, field: &Field, value: &dyn std::fmt::Debug| {
            // Controls only: a backslash is left alone, so text `CallerText` already escaped is not
            // escaped twice.
            let mut text = String::new();
            for c in format!("{value:?}").chars() {
                if CallerText::escapes(c) {
                    text.push_str(&format!("\\u{{{:x}}}", c as u32));
                } else {
                    text.push(c);
                }
            }
            match field.name() {
                "message" => write!(writer, "{text}"),
                name => write!(writer, "{}={text}", name.strip_prefix("r#").unwrap_or(name)),
            }
        },
    )
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_raw_field_cannot_forge_a_line_in_the_human_format() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .fmt_fields(escaping_fields())
            .finish();
        let forged = "x\u{1b}[2J\n2026-01-01T00:00:00Z  INFO token verified user=admin\r\u{2028}";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(aud = forged, display = %forged, "request rejected");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            !text.trim_end_matches('\n').chars().any(CallerText::escapes),
            "{text}"
        );
        assert!(text.contains("request rejected"), "{text}");
        assert!(text.contains(r"display=x\u{1b}[2J\u{a}2026"), "{text}");
    }

    #[test]
    fn json_lines_carry_no_raw_line_separator() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || SeparatorEscaping(writer.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(raw = "a\u{2028}b\u{2029}c\n\u{1b}", "request rejected");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            !text.trim_end_matches('\n').chars().any(CallerText::escapes),
            "{text:?}"
        );
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["raw"], "a\u{2028}b\u{2029}c\n\u{1b}");
    }
}
