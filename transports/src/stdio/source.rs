//! Where the stdio transport gets the caller's token: a variable, a file, or a command.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use thiserror::Error;
use tokio::io::AsyncReadExt as _;

/// The largest token output we read from a file or a command.
const MAX_TOKEN_OUTPUT: usize = 64 * 1024;
/// How much of a failing command's stderr we keep for the error message.
const STDERR_EXCERPT: usize = 600;

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

/// Why a token source produced no token.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TokenSourceError {
    /// None of the three variables is set.
    #[error("no access token: set MCP_ACCESS_TOKEN, MCP_ACCESS_TOKEN_FILE or MCP_ACCESS_TOKEN_COMMAND (e.g. az account get-access-token --scope api://<client-id>/access_as_user --query accessToken -o tsv)")]
    NotConfigured,
    /// The command line is empty or has unbalanced quotes.
    #[error("MCP_ACCESS_TOKEN_COMMAND cannot be parsed ({0}); write it as you would in a shell, e.g. az account get-access-token --scope api://<client-id>/access_as_user --query accessToken -o tsv")]
    BadCommandLine(&'static str),
    /// The token file cannot be read.
    #[error("cannot read MCP_ACCESS_TOKEN_FILE {path}: {cause}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error (printed here, so not a `source`).
        cause: std::io::Error,
    },
    /// The source produced an empty token.
    #[error("{0} is empty")]
    Empty(&'static str),
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
    ) -> Result<TokenSource, TokenSourceError> {
        if let Some(token) = token {
            return Ok(TokenSource::Fixed(token.trim().to_owned()));
        }
        if let Some(file) = file {
            return Ok(TokenSource::File(file));
        }
        if let Some(line) = command {
            let argv = split_command_line(&line)?;
            return Ok(TokenSource::Command { line, argv, timeout });
        }
        Err(TokenSourceError::NotConfigured)
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
        let token = match self {
            TokenSource::Fixed(token) => token.clone(),
            TokenSource::File(path) => read_file(path).await?,
            TokenSource::Command { line, argv, timeout } => run_command(line, argv, *timeout).await?,
        };
        if token.is_empty() {
            return Err(TokenSourceError::Empty(self.name()));
        }
        Ok(token)
    }
}

async fn read_file(path: &PathBuf) -> Result<String, TokenSourceError> {
    let file_err = |cause| TokenSourceError::File {
        path: path.clone(),
        cause,
    };
    let file = tokio::fs::File::open(path).await.map_err(file_err)?;
    let mut text = String::new();
    file.take(MAX_TOKEN_OUTPUT as u64)
        .read_to_string(&mut text)
        .await
        .map_err(file_err)?;
    Ok(text.trim().to_owned())
}

async fn run_command(line: &str, argv: &[String], timeout: Duration) -> Result<String, TokenSourceError> {
    let (program, args) = argv
        .split_first()
        .ok_or(TokenSourceError::BadCommandLine("it is empty"))?;
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|cause| TokenSourceError::Spawn {
            line: line.to_owned(),
            cause,
        })?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(cause)) => {
            return Err(TokenSourceError::Spawn {
                line: line.to_owned(),
                cause,
            })
        }
        // Dropping the future drops the child, which kill_on_drop stops.
        Err(_) => {
            return Err(TokenSourceError::Timeout {
                line: line.to_owned(),
                timeout,
            })
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        let start = stderr.len().saturating_sub(STDERR_EXCERPT);
        let start = (start..=stderr.len())
            .find(|i| stderr.is_char_boundary(*i))
            .unwrap_or(stderr.len());
        return Err(TokenSourceError::Failed {
            line: line.to_owned(),
            status: output.status,
            stderr: stderr[start..].replace('\n', " | "),
        });
    }
    let stdout = &output.stdout[..output.stdout.len().min(MAX_TOKEN_OUTPUT)];
    Ok(String::from_utf8_lossy(stdout).trim().to_owned())
}

/// Splits a command line into words: whitespace separates, single quotes keep text literally,
/// double quotes keep spaces (with `\"` and `\\` escapes), a backslash escapes outside quotes.
/// No expansion of any kind: there is no shell.
pub(crate) fn split_command_line(line: &str) -> Result<Vec<String>, TokenSourceError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(TokenSourceError::BadCommandLine("a single quote is not closed")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => {
                                return Err(TokenSourceError::BadCommandLine("a double quote is not closed"))
                            }
                        },
                        Some(c) => word.push(c),
                        None => return Err(TokenSourceError::BadCommandLine("a double quote is not closed")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(TokenSourceError::BadCommandLine("it ends with a backslash")),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err(TokenSourceError::BadCommandLine("it is empty"));
    }
    Ok(words)
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
        let s =
            TokenSource::from_settings(Some("tok".into()), Some("f".into()), Some("c".into()), t).unwrap();
        assert_eq!(s.name(), "MCP_ACCESS_TOKEN");
        let s = TokenSource::from_settings(None, Some("f".into()), Some("c".into()), t).unwrap();
        assert_eq!(s.name(), "MCP_ACCESS_TOKEN_FILE");
        assert!(matches!(
            TokenSource::from_settings(None, None, None, t),
            Err(TokenSourceError::NotConfigured)
        ));
    }

    #[test]
    fn debug_never_shows_a_fixed_token() {
        let shown = format!("{:?}", TokenSource::Fixed("secret-token-value".into()));
        assert!(!shown.contains("secret"));
    }

    #[tokio::test]
    async fn command_output_is_the_token_and_failures_carry_stderr() {
        let ok =
            TokenSource::from_settings(None, None, Some("echo ' tok123 '".into()), Duration::from_secs(5))
                .unwrap();
        assert_eq!(ok.fetch().await.unwrap(), "tok123");
        let fail = TokenSource::from_settings(
            None,
            None,
            Some("sh -c 'echo nope >&2; exit 3'".into()),
            Duration::from_secs(5),
        )
        .unwrap();
        let err = fail.fetch().await.unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("exit status: 3"), "{err}");
        let slow = TokenSource::from_settings(None, None, Some("sleep 5".into()), Duration::from_millis(100))
            .unwrap();
        assert!(matches!(
            slow.fetch().await,
            Err(TokenSourceError::Timeout { .. })
        ));
    }
}
