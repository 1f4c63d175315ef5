//! Where the stdio transport gets the caller's token: a variable, a file, or a command.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use thiserror::Error;
use tokio::io::AsyncReadExt as _;

use super::command::{run_command, split_command_line};

/// The largest token output we read from a file or a command.
pub(crate) const MAX_TOKEN_OUTPUT: usize = 64 * 1024;
/// How much of a failing command's stderr we keep for the error message.
pub(crate) const STDERR_EXCERPT: usize = 600;
/// How much of a command's stderr we hold while it runs (the excerpt is cut from its end).
pub(crate) const STDERR_KEPT: usize = 4 * 1024;

/// A source of bearer tokens for the stdio transport.
#[derive(Clone)]
pub enum TokenSource {
    /// `MCP_ACCESS_TOKEN`: a fixed token. It cannot be refreshed.
    Fixed(String),
    /// `MCP_ACCESS_TOKEN_FILE`: a file holding the token, re-read when it changes (for an
    /// external refresher).
    File(PathBuf),
    /// `MCP_ACCESS_TOKEN_COMMAND`: a program (with arguments, split like a shell would but run
    /// without one) that prints a fresh token on stdout.
    Command {
        /// The command line as the user wrote it (for messages).
        line: String,
        /// Program and arguments.
        argv: Vec<String>,
        /// How long it may run.
        timeout: Duration,
    },
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Fixed(_) => f.write_str("Fixed(<redacted>)"),
            TokenSource::File(path) => f.debug_tuple("File").field(path).finish(),
            TokenSource::Command { line, timeout, .. } => f
                .debug_struct("Command")
                .field("line", line)
                .field("timeout", timeout)
                .finish(),
        }
    }
}

/// The Azure CLI command that prints a token for `scope` (a placeholder scope when empty).
pub fn az_example(scope: &str) -> String {
    let scope = if scope.is_empty() {
        "api://<client-id>/access_as_user"
    } else {
        scope
    };
    format!("az account get-access-token --scope {scope} --query accessToken -o tsv")
}

/// Why a token source produced no token.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TokenSourceError {
    /// None of the three variables is set.
    #[error(
        "no access token: set MCP_ACCESS_TOKEN, MCP_ACCESS_TOKEN_FILE or MCP_ACCESS_TOKEN_COMMAND (e.g. {})",
        az_example(scope)
    )]
    NotConfigured {
        /// The scope URI a token needs (`api://<client-id>/access_as_user`), for the example.
        scope: String,
    },
    /// The command line is empty or has unbalanced quotes.
    #[error(
        "MCP_ACCESS_TOKEN_COMMAND cannot be parsed ({problem}); write it as you would in a shell, e.g. {}",
        az_example(scope)
    )]
    BadCommandLine {
        /// What is wrong with it.
        problem: &'static str,
        /// The scope URI a token needs, for the example; empty when unknown.
        scope: String,
    },
    /// The token file cannot be read.
    #[error("cannot read MCP_ACCESS_TOKEN_FILE {path}: {cause}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error (printed here, so not a `source`).
        cause: std::io::Error,
    },
    /// `MCP_ACCESS_TOKEN_FILE` names a FIFO, a directory, a device…: reading it could block for
    /// ever or never end.
    #[error("MCP_ACCESS_TOKEN_FILE {path} is {what}; point it at a regular file holding the token")]
    NotARegularFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        what: &'static str,
    },
    /// The file or the command's output is larger than any token (read stops at the limit).
    #[error(
        "{setting} produced more than {max} bytes, which is no access token; it must hold only the token"
    )]
    TooLarge {
        /// `MCP_ACCESS_TOKEN_FILE` or `MCP_ACCESS_TOKEN_COMMAND`.
        setting: &'static str,
        /// The limit, in bytes.
        max: usize,
    },
    /// The source produced an empty token.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// The source holds something around or instead of the bare token, as Windows tools and
    /// some env-file loaders write it.
    #[error("{setting} {found}; {fix}")]
    Shape {
        /// `MCP_ACCESS_TOKEN`, `MCP_ACCESS_TOKEN_FILE` or `MCP_ACCESS_TOKEN_COMMAND`.
        setting: &'static str,
        /// What was found, e.g. `is UTF-16 text`.
        found: &'static str,
        /// What to do.
        fix: &'static str,
    },
    /// The command's program cannot be found. Desktop hosts (Claude Desktop, VS Code) often start
    /// the server with only their `env` block, so `PATH` lacks the shell's entries; on Windows
    /// `az` is `az.cmd`, which only a shell finds.
    #[error("MCP_ACCESS_TOKEN_COMMAND: program `{program}` not found ({reason}); give its absolute path (e.g. /usr/bin/az, /opt/homebrew/bin/az), or on Windows start it through the shell: cmd /c az account get-access-token ...")]
    ProgramNotFound {
        /// The program, as written in the command line.
        program: String,
        /// Why it was not found: no such file, not on `PATH`, or no `PATH` at all.
        reason: &'static str,
    },
    /// The command could not be started.
    #[error("cannot run MCP_ACCESS_TOKEN_COMMAND `{line}`: {cause}")]
    Spawn {
        /// The command line.
        line: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The command ran too long and was killed.
    #[error("MCP_ACCESS_TOKEN_COMMAND `{line}` did not finish within {timeout:?} and was stopped")]
    Timeout {
        /// The command line.
        line: String,
        /// The limit.
        timeout: Duration,
    },
    /// The command exited unsuccessfully.
    #[error("MCP_ACCESS_TOKEN_COMMAND `{line}` failed ({status}){}", excerpt(stderr))]
    Failed {
        /// The command line.
        line: String,
        /// How it exited.
        status: std::process::ExitStatus,
        /// The end of what it wrote to stderr.
        stderr: String,
    },
}

fn excerpt(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl TokenSource {
    /// The source the settings describe (first set wins: token, file, command).
    pub fn from_settings(
        token: Option<String>,
        file: Option<PathBuf>,
        command: Option<String>,
        timeout: Duration,
        scope: &str,
    ) -> Result<TokenSource, TokenSourceError> {
        if let Some(token) = token {
            return Ok(TokenSource::Fixed(token));
        }
        if let Some(file) = file {
            return Ok(TokenSource::File(file));
        }
        if let Some(line) = command {
            let argv = split_command_line(&line).map_err(|error| match error {
                TokenSourceError::BadCommandLine { problem, .. } => TokenSourceError::BadCommandLine {
                    problem,
                    scope: scope.to_owned(),
                },
                other => other,
            })?;
            return Ok(TokenSource::Command { line, argv, timeout });
        }
        Err(TokenSourceError::NotConfigured {
            scope: scope.to_owned(),
        })
    }

    /// The environment variable this source came from, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            TokenSource::Fixed(_) => "MCP_ACCESS_TOKEN",
            TokenSource::File(_) => "MCP_ACCESS_TOKEN_FILE",
            TokenSource::Command { .. } => "MCP_ACCESS_TOKEN_COMMAND",
        }
    }

    /// A version stamp of the file source (modification time and length), to notice changes.
    pub(crate) async fn file_stamp(&self) -> Option<(SystemTime, u64)> {
        let TokenSource::File(path) = self else {
            return None;
        };
        let meta = tokio::fs::metadata(path).await.ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    /// Produces a token now: returns the fixed one, reads the file, or runs the command.
    pub async fn fetch(&self) -> Result<String, TokenSourceError> {
        let raw = match self {
            TokenSource::Fixed(token) => token.as_bytes().to_vec(),
            TokenSource::File(path) => read_file(path).await?,
            TokenSource::Command { line, argv, timeout } => run_command(line, argv, *timeout).await?,
        };
        token_text(self.name(), &raw)
    }
}

async fn read_file(path: &PathBuf) -> Result<Vec<u8>, TokenSourceError> {
    let file_err = |cause| TokenSourceError::File {
        path: path.clone(),
        cause,
    };
    // Refuse a FIFO, a directory or a device before opening it: opening a FIFO with no writer
    // blocks, and reading a device may never end.
    let kind = tokio::fs::metadata(path).await.map_err(file_err)?.file_type();
    if !kind.is_file() {
        return Err(not_regular(path, kind));
    }
    let mut options = tokio::fs::OpenOptions::new();
    options.read(true);
    // Swapped for a FIFO after the check above: the open still cannot block.
    #[cfg(unix)]
    options.custom_flags(libc::O_NONBLOCK);
    let file = options.open(path).await.map_err(file_err)?;
    let kind = file.metadata().await.map_err(file_err)?.file_type();
    if !kind.is_file() {
        return Err(not_regular(path, kind));
    }
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_OUTPUT as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(file_err)?;
    if bytes.len() > MAX_TOKEN_OUTPUT {
        return Err(TokenSourceError::TooLarge {
            setting: "MCP_ACCESS_TOKEN_FILE",
            max: MAX_TOKEN_OUTPUT,
        });
    }
    Ok(bytes)
}

fn not_regular(path: &std::path::Path, kind: std::fs::FileType) -> TokenSourceError {
    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt as _;
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        #[cfg(unix)]
        {
            if kind.is_fifo() {
                "a FIFO (named pipe)"
            } else if kind.is_char_device() || kind.is_block_device() {
                "a device"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            }
        }
        #[cfg(not(unix))]
        {
            "not a regular file"
        }
    };
    TokenSourceError::NotARegularFile {
        path: path.to_owned(),
        what,
    }
}

/// The bare token in what a source produced: surrounding white space and a UTF-8 byte-order mark
/// are dropped (Notepad and PowerShell 7 write one); every other shape is refused with a message
/// that names what was found and the fix, instead of reaching the verifier as "not a JWT".
fn token_text(setting: &'static str, raw: &[u8]) -> Result<String, TokenSourceError> {
    let shape = |found, fix| TokenSourceError::Shape { setting, found, fix };
    if raw.starts_with(&[0xFF, 0xFE]) || raw.starts_with(&[0xFE, 0xFF]) || raw.contains(&0) {
        return Err(shape(
            "is UTF-16 text (what Windows PowerShell 5.1 writes with `>` or Out-File)",
            "write it as UTF-8 or ASCII: `Out-File -Encoding ascii`, or `Set-Content -Encoding utf8`",
        ));
    }
    let raw = raw.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(raw);
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err(shape(
            "is not UTF-8 text",
            "it must hold only the token, as ASCII",
        ));
    };
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenSourceError::Empty(setting));
    }
    let quoted = |q: char| token.len() >= 2 && token.starts_with(q) && token.ends_with(q);
    if quoted('"') || quoted('\'') {
        return Err(shape(
            "is wrapped in quotes (some env-file loaders keep them)",
            "give the token without quotes",
        ));
    }
    if token
        .get(..7)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("bearer "))
    {
        return Err(shape(
            "starts with `Bearer `",
            "give the token alone: the server sends it as a bearer token itself",
        ));
    }
    if token.contains(char::is_whitespace) {
        return Err(shape(
            "holds more than one word or line",
            "it must hold only the token (for az: --query accessToken -o tsv)",
        ));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell_without_expanding() {
        assert_eq!(
            split_command_line(
                "az account get-access-token --scope api://x/access_as_user --query accessToken -o tsv"
            )
            .unwrap(),
            [
                "az",
                "account",
                "get-access-token",
                "--scope",
                "api://x/access_as_user",
                "--query",
                "accessToken",
                "-o",
                "tsv"
            ]
        );
        assert_eq!(
            split_command_line(r#"a 'b c' "d \"e\"" f\ g $HOME"#).unwrap(),
            ["a", "b c", "d \"e\"", "f g", "$HOME"]
        );
        assert_eq!(split_command_line("a ''").unwrap(), ["a", ""]);
    }

    #[test]
    fn refuses_broken_command_lines() {
        for bad in ["", "   ", "a 'b", "a \"b", "a \\"] {
            assert!(split_command_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn first_configured_source_wins() {
        let t = Duration::from_secs(1);
        let s = TokenSource::from_settings(Some("tok".into()), Some("f".into()), Some("c".into()), t, "")
            .unwrap();
        assert_eq!(s.name(), "MCP_ACCESS_TOKEN");
        let s = TokenSource::from_settings(None, Some("f".into()), Some("c".into()), t, "").unwrap();
        assert_eq!(s.name(), "MCP_ACCESS_TOKEN_FILE");
        assert!(matches!(
            TokenSource::from_settings(None, None, None, t, "api://c/access_as_user"),
            Err(TokenSourceError::NotConfigured { .. })
        ));
    }

    #[test]
    fn debug_never_shows_a_fixed_token() {
        let shown = format!("{:?}", TokenSource::Fixed("secret-token-value".into()));
        assert!(!shown.contains("secret"));
    }

    #[tokio::test]
    async fn command_output_is_the_token_and_failures_carry_stderr() {
        let ok = TokenSource::from_settings(
            None,
            None,
            Some("echo ' tok123 '".into()),
            Duration::from_secs(5),
            "",
        )
        .unwrap();
        assert_eq!(ok.fetch().await.unwrap(), "tok123");
        let fail = TokenSource::from_settings(
            None,
            None,
            Some("sh -c 'echo nope >&2; exit 3'".into()),
            Duration::from_secs(5),
            "",
        )
        .unwrap();
        let err = fail.fetch().await.unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("exit status: 3"), "{err}");
        let slow =
            TokenSource::from_settings(None, None, Some("sleep 5".into()), Duration::from_millis(100), "")
                .unwrap();
        assert!(matches!(
            slow.fetch().await,
            Err(TokenSourceError::Timeout { .. })
        ));
    }
}
