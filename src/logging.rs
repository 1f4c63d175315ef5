//! Logs go to stderr (stdout is the JSON-RPC channel over stdio), human or JSON, level from
//! `RUST_LOG` (default `info`).

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// The default level of `serve`: what an operator wants to see.
pub const SERVE_DEFAULT: &str = "info,rmcp=warn";
/// The default level of `stdio`: desktop hosts show stderr to users, so only what needs action.
pub const STDIO_DEFAULT: &str = "warn";

/// Installs the global subscriber with `default_filter` unless `RUST_LOG` is set. Call once,
/// before anything logs.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
