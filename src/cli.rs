//! The command line. Flags override every other source of settings (see `config.rs`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// An MCP server whose callers authenticate with Microsoft Entra ID access tokens.
///
/// It is an OAuth resource server: it never logs anyone in. Callers get an access token from
/// Entra for this API (scope `api://<client-id>/access_as_user`) and send it as
/// `Authorization: Bearer <token>` (HTTP) or in MCP_ACCESS_TOKEN (stdio).
///
/// Settings come from, lowest to highest precedence: built-in defaults, the TOML file given with
/// --config, the environment (and a .env file in the working directory), and these flags. Every
/// setting is listed in .env.example and the README.
///
/// Try it without Azure: `mcp-server-entra serve --dev`.
#[derive(Debug, Parser)]
#[command(
    name = "mcp-server-entra",
    version,
    about,
    long_about,
    propagate_version = true
)]
pub struct Cli {
    /// What to run. Defaults to `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Settings shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Flags valid with every command.
#[derive(Debug, Args, Default, Clone)]
pub struct GlobalArgs {
    /// Use a local dev identity instead of Entra (no Azure tenant needed).
    ///
    /// Swaps in a static verifier with one identity, "Dev User". Its bearer token is
    /// MCP_DEV_TOKEN when set, otherwise a random token printed once to stderr. Over HTTP the
    /// server then refuses to listen on anything but loopback. Never use in production.
    #[arg(long, global = true)]
    pub dev: bool,

    /// Read settings from this TOML file (keys are the setting names in lower case, e.g.
    /// `azure_client_id = "…"`). Environment variables and flags override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format on stderr. Overrides LOG_FORMAT. The level comes from RUST_LOG.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over streamable HTTP at `<PUBLIC_URL>/mcp` (the default).
    ///
    /// Also serves /health (liveness), /ready (readiness: signing keys loaded) and the RFC 9728
    /// metadata at /.well-known/oauth-protected-resource/mcp. Stops gracefully on SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// Serve MCP over stdin/stdout, for desktop hosts that launch the server as a subprocess.
    ///
    /// The caller's token comes from MCP_ACCESS_TOKEN, MCP_ACCESS_TOKEN_FILE or
    /// MCP_ACCESS_TOKEN_COMMAND (first one set wins). It is verified at start-up (exit code 2 and
    /// one line on stderr if it is missing or invalid) and re-checked before every request.
    /// stdout carries only JSON-RPC; logs go to stderr.
    Stdio,
}

/// Flags of `serve`.
#[derive(Debug, Args, Default, Clone)]
pub struct ServeArgs {
    /// Address to listen on. Overrides HOST.
    #[arg(long, value_name = "ADDR")]
    pub host: Option<String>,

    /// Port to listen on (0 picks a free one). Overrides PORT.
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,

    /// The URL clients use to reach this server, without a path. Overrides PUBLIC_URL.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dev_flag_works_before_and_after_the_subcommand() {
        let before = Cli::parse_from(["mcp-server-entra", "--dev", "stdio"]);
        let after = Cli::parse_from(["mcp-server-entra", "stdio", "--dev"]);
        assert!(before.global.dev && after.global.dev);
        assert!(matches!(after.command, Some(Command::Stdio)));
    }
}
