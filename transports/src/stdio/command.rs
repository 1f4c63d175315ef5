//! Running `MCP_ACCESS_TOKEN_COMMAND`: the command line split like a shell's (without expanding
//! anything), the program run without a shell and with only a credential helper's environment,
//! its output read with a cap until the process exits, and its failure told with the end of
//! its stderr.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use verifiers::CallerText;

use super::source::{TokenSourceError, MAX_TOKEN_OUTPUT, STDERR_EXCERPT, STDERR_KEPT};

/// The environment variables `MCP_ACCESS_TOKEN_COMMAND` inherits; every other variable is
/// withheld (the server's `AZURE_CLIENT_SECRET`, `IDENTITY_HEADER`, the caller's own token…).
/// What a credential helper such as the Azure CLI needs: where programs and its configuration
/// live (`PATH`, `HOME`, `AZURE_CONFIG_DIR`; on Windows `USERPROFILE`, `APPDATA`, `LOCALAPPDATA`,
/// `SystemRoot`, `PATHEXT`, `ComSpec`), temporary files, locale, and the proxy and CA settings
/// of a corporate network.
pub const TOKEN_COMMAND_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "AZURE_CONFIG_DIR",
    "XDG_CONFIG_HOME",
    "XDG_RUNTIME_DIR",
    "USERPROFILE",
    "APPDATA",
    "LOCALAPPDATA",
    "SystemRoot",
    "SYSTEMROOT",
    "PATHEXT",
    "ComSpec",
    "TMPDIR",
    "TEMP",
    "TMP",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

pub(crate) async fn run_command(
    line: &str,
    argv: &[String],
    timeout: Duration,
) -> Result<Vec<u8>, TokenSourceError> {
    let (program, args) = argv.split_first().ok_or(TokenSourceError::BadCommandLine {
        problem: "it is empty",
        scope: String::new(),
    })?;
    let mut command = tokio::process::Command::new(program);
    command.env_clear();
    for name in TOKEN_COMMAND_ENV {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|cause| match cause.kind() {
            std::io::ErrorKind::NotFound => TokenSourceError::ProgramNotFound {
                program: program.to_owned(),
                reason: if program.contains(['/', '\\']) {
                    "no such file"
                } else if std::env::var_os("PATH").is_some_and(|p| !p.is_empty()) {
                    "not on PATH"
                } else {
                    "PATH is not set: desktop hosts may pass only their env block"
                },
            },
            _ => TokenSourceError::Spawn {
                line: line.to_owned(),
                cause,
            },
        })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(TokenSourceError::Spawn {
            line: line.to_owned(),
            cause: std::io::Error::other("no stdout or stderr pipe"),
        });
    };
    // Dropping the future (timeout) drops the child, which kill_on_drop stops.
    let collected = tokio::time::timeout(timeout, collect(&mut child, stdout, stderr)).await;
    let (status, stdout, stderr) = match collected {
        Ok(Ok(Collected::Exited {
            status,
            stdout,
            stderr,
        })) => (status, stdout, stderr),
        Ok(Ok(Collected::TooLarge)) => {
            return Err(TokenSourceError::TooLarge {
                setting: "MCP_ACCESS_TOKEN_COMMAND",
                max: MAX_TOKEN_OUTPUT,
            })
        }
        Ok(Err(cause)) => {
            return Err(TokenSourceError::Spawn {
                line: line.to_owned(),
                cause,
            })
        }
        Err(_) => {
            return Err(TokenSourceError::Timeout {
                line: line.to_owned(),
                timeout,
            })
        }
    };
    if !status.success() {
        let stderr = String::from_utf8_lossy(&stderr);
        let stderr = stderr.trim();
        let start = stderr.len().saturating_sub(STDERR_EXCERPT);
        let start = (start..=stderr.len())
            .find(|i| stderr.is_char_boundary(*i))
            .unwrap_or(stderr.len());
        return Err(TokenSourceError::Failed {
            line: line.to_owned(),
            status,
            // The command's own text: one line, no control characters.
            stderr: CallerText::escape_all(&stderr[start..].replace('\n', " | ")),
        });
    }
    Ok(stdout)
}

/// What a token command left behind.
enum Collected {
    /// It exited; its stdout (at most [`MAX_TOKEN_OUTPUT`] bytes) and the end of its stderr.
    Exited {
        status: std::process::ExitStatus,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// It printed more than [`MAX_TOKEN_OUTPUT`] bytes on stdout (it is killed when dropped).
    TooLarge,
}

/// Reads the command's stdout (capped as it reads) and stderr (keeping the last
/// [`STDERR_KEPT`] bytes) until the process exits, then takes what is already in the pipes
/// without waiting for EOF: a background child that inherited them may hold them open for ever.
async fn collect(
    child: &mut tokio::process::Child,
    mut stdout: tokio::process::ChildStdout,
    mut stderr: tokio::process::ChildStderr,
) -> std::io::Result<Collected> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (mut out_buf, mut err_buf) = ([0u8; 8192], [0u8; 8192]);
    let (mut out_open, mut err_open) = (true, true);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            read = stdout.read(&mut out_buf), if out_open => match read? {
                0 => out_open = false,
                n => {
                    if out.len() + n > MAX_TOKEN_OUTPUT {
                        return Ok(Collected::TooLarge);
                    }
                    out.extend_from_slice(&out_buf[..n]);
                }
            },
            read = stderr.read(&mut err_buf), if err_open => match read? {
                0 => err_open = false,
                n => keep_tail(&mut err, &err_buf[..n]),
            },
        }
    };
    // Whatever the process wrote before it exited is in the pipe buffers now.
    let drain = Duration::from_millis(50);
    while out_open {
        match tokio::time::timeout(drain, stdout.read(&mut out_buf)).await {
            Ok(Ok(n)) if n > 0 => {
                if out.len() + n > MAX_TOKEN_OUTPUT {
                    return Ok(Collected::TooLarge);
                }
                out.extend_from_slice(&out_buf[..n]);
            }
            _ => out_open = false,
        }
    }
    while err_open {
        match tokio::time::timeout(drain, stderr.read(&mut err_buf)).await {
            Ok(Ok(n)) if n > 0 => keep_tail(&mut err, &err_buf[..n]),
            _ => err_open = false,
        }
    }
    Ok(Collected::Exited {
        status,
        stdout: out,
        stderr: err,
    })
}

/// Appends `more` to `kept`, keeping only the last [`STDERR_KEPT`] bytes.
fn keep_tail(kept: &mut Vec<u8>, more: &[u8]) {
    kept.extend_from_slice(more);
    if kept.len() > STDERR_KEPT {
        kept.drain(..kept.len() - STDERR_KEPT);
    }
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
                        None => {
                            return Err(TokenSourceError::BadCommandLine {
                                problem: "a single quote is not closed",
                                scope: String::new(),
                            })
                        }
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
                                return Err(TokenSourceError::BadCommandLine {
                                    problem: "a double quote is not closed",
                                    scope: String::new(),
                                })
                            }
                        },
                        Some(c) => word.push(c),
                        None => {
                            return Err(TokenSourceError::BadCommandLine {
                                problem: "a double quote is not closed",
                                scope: String::new(),
                            })
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => {
                        return Err(TokenSourceError::BadCommandLine {
                            problem: "it ends with a backslash",
                            scope: String::new(),
                        })
                    }
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
        return Err(TokenSourceError::BadCommandLine {
            problem: "it is empty",
            scope: String::new(),
        });
    }
    Ok(words)
}
