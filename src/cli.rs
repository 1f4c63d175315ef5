//! The command line. Flags override every other source of settings (see `config/sources.rs`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// An MCP server whose callers authenticate with Microsoft Entra ID access tokens.
///
/// It is an OAuth resource server: it never logs anyone in. Callers get an access token from
/// Entra for this API (scope `api://<client-id>/access_as_user`) and send it as
/// `Authorization: Bearer <token>` (HTTP) or in MCP_ACCESS_TOKEN (stdio).
///
/// Settings come from, lowest to highest precedence: built-in defaults, the TOML file given with
/// --config, the env file given with --env-file, the environment, and these flags. No file is read
/// unless named here: a .env in the working directory or above it is never read. Every setting
/// is listed in .env.example and docs/configuration.md.
///
/// Without a command it serves HTTP, so `mcp-server-entra --port 8013 --dev` is
/// `mcp-server-entra serve --port 8013 --dev`. Try it without Azure: `mcp-server-entra --dev`.
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

    /// `serve`'s flags, given without the command.
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Settings shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
}

impl Cli {
    /// The command to run: `serve` when none is named, with the `serve` flags given before it.
    ///
    /// # Errors
    /// A `serve` flag given with `stdio` (it would be ignored), as a clap usage error.
    pub fn into_command(self) -> Result<(Command, GlobalArgs), clap::Error> {
        let top = self.serve;
        let command = match self.command {
            None => Command::Serve(top),
            Some(Command::Serve(args)) => Command::Serve(ServeArgs {
                host: args.host.or(top.host),
                port: args.port.or(top.port),
                public_url: args.public_url.or(top.public_url),
            }),
            Some(Command::Stdio) => {
                if top.host.is_some() || top.port.is_some() || top.public_url.is_some() {
                    use clap::CommandFactory as _;
                    return Err(Cli::command().error(
                        clap::error::ErrorKind::ArgumentConflict,
                        "--host, --port and --public-url apply to `serve`, not `stdio`",
                    ));
                }
                Command::Stdio
            }
        };
        Ok((command, self.global))
    }
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
    ///
    /// The file may also set what a caller needs for one tool, replacing the tool's own
    /// declaration: a `[tools.<tool_name>]` table with `scopes = ["Dice.Roll"]` (a user's token
    /// needs all of them) and/or `app_roles = ["Dice.Roll.All"]` (an application's token needs
    /// all of them); a key left out refuses that kind of caller. Unknown tool names and empty
    /// tables stop start-up.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Read settings from this env file (`NAME=value` lines, as in .env.example).
    ///
    /// Only files named here are read: a `.env` in the working directory or its parents never
    /// is, so a repository a desktop host opens cannot steer the server. The file may hold only
    /// this server's settings (anything else stops start-up), and it never changes the process
    /// environment (PATH, for one, stays the host's). The environment and flags override it; it
    /// overrides --config.
    #[arg(long, global = true, value_name = "FILE")]
    pub env_file: Option<PathBuf>,

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

/// Flags of `serve` (also accepted without the command).
#[derive(Debug, Args, Default, Clone)]
pub struct ServeArgs {
    /// Listen on this IP address (HTTP). Overrides HOST; default 127.0.0.1.
    ///
    /// Use 0.0.0.0 in a container. With --dev only loopback is accepted.
    #[arg(long, value_name = "ADDR")]
    pub host: Option<String>,

    /// Listen on this TCP port (HTTP; 0 picks a free one). Overrides PORT; default 8000.
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,

    /// Advertise this URL as where clients reach the server (HTTP), with the path a gateway
    /// serves it under, if any. Overrides PUBLIC_URL; default `http://localhost:<PORT>`.
    ///
    /// It names the protected resource (`<URL>/mcp`) in the RFC 9728 metadata and in every
    /// `WWW-Authenticate` challenge, and its host is accepted in the Host header. Set it behind a
    /// reverse proxy or load balancer (`https://mcp.contoso.com`, `https://api.contoso.com/entra`).
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

    #[test]
    fn serve_flags_work_without_the_command_but_not_with_another() {
        let bare = Cli::parse_from(["mcp-server-entra", "--port", "8013", "--dev"]);
        let (command, global) = bare.into_command().unwrap();
        assert!(global.dev);
        assert!(matches!(command, Command::Serve(ServeArgs { port: Some(p), .. }) if p == "8013"));
        let both = Cli::parse_from(["mcp-server-entra", "--port", "1", "serve", "--port", "2"]);
        assert!(
            matches!(both.into_command().unwrap().0, Command::Serve(ServeArgs { port: Some(p), .. }) if p == "2")
        );
        let stdio = Cli::parse_from(["mcp-server-entra", "--port", "8013", "stdio"]);
        assert!(stdio.into_command().is_err());
    }
}
