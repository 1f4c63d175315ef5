//! What can be wrong with a setting or a settings file, as one line naming it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use thiserror::Error;
use transports::http::HttpConfigError;
use verifiers::{DownstreamConfigError, EntraConfigError};

use super::*;

/// A setting that cannot work, or a file that cannot be read. One line, naming the setting.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value of the wrong shape, found after the value was read, named as its source wrote it
    /// (`AZURE_CLIENT_ID`, `azure_client_id in settings.toml`, `--host`).
    #[error("{name} must be {expected}, got {got:?}")]
    Invalid {
        /// The setting, as written in its source.
        name: String,
        /// What it must be, and the likely fix.
        expected: String,
        /// What it was.
        got: String,
    },
    /// A value that is still the placeholder of `config.example.toml` or the shipped manifests.
    #[error("{name} is still the example placeholder {got}; put {what} there")]
    Placeholder {
        /// The setting, as written in its source.
        name: String,
        /// The placeholder.
        got: String,
        /// What belongs there.
        what: &'static str,
    },
    /// An environment variable one typo away from a setting: the setting it was meant to be
    /// would silently keep its default.
    #[error("{name} in the environment is not a setting of this server; did you mean {setting}? A misspelt setting is never applied: rename it (or unset it)")]
    MisspeltVariable {
        /// The variable.
        name: String,
        /// The setting it is closest to.
        setting: &'static str,
    },
    /// A settings file named on the command line is a directory.
    #[error("{path} is a directory, but {flag} takes a file ({example})")]
    NotAFile {
        /// `--config` or `--env-file`.
        flag: &'static str,
        /// The path given.
        path: PathBuf,
        /// The example file to start from.
        example: &'static str,
    },
    /// A value that could not be read as its type, named as its source wrote it: `PORT`
    /// (environment), `port in settings.toml` (the `--config` file), `--port` (a flag).
    #[error("{setting} {problem}")]
    Value {
        /// The setting, as written in its source.
        setting: String,
        /// What is wrong, e.g. `must be true or false, got "maybe"`.
        problem: String,
    },
    /// A required setting is absent.
    #[error("{name} is required: {hint}")]
    Missing {
        /// The setting.
        name: &'static str,
        /// Where to find its value.
        hint: &'static str,
    },
    /// An Entra setting is wrong.
    #[error(transparent)]
    Entra(#[from] EntraConfigError),
    /// An HTTP setting is wrong.
    #[error(transparent)]
    Http(#[from] HttpConfigError),
    /// The `--env-file` file does not exist or is not a file.
    #[error("the env file {} does not exist or is not a file (given with --env-file{})", .0.display(), relative_hint(.0))]
    EnvFileMissing(PathBuf),
    /// The `--env-file` file cannot be read or parsed.
    #[error("cannot read the env file {path}: {cause}")]
    EnvFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        cause: String,
    },
    /// The `--env-file` file names a variable that is no setting of this server.
    #[error("`{name}` in the env file {path} is not a setting of this server{suggestion}; an env file given with --env-file holds only the settings listed in .env.example (set anything else, such as PATH, in the environment)")]
    UnknownEnvFileName {
        /// The name.
        name: String,
        /// The file.
        path: PathBuf,
        /// `; did you mean `PORT`?`, or empty.
        suggestion: String,
    },
    /// The `--config` file does not exist.
    #[error("the configuration file {} does not exist (given with --config{})", .0.display(), relative_hint(.0))]
    FileMissing(PathBuf),
    /// The `--config` file cannot be read or is not TOML.
    #[error(
        "cannot read the configuration file {path}: {}{}",
        one_line(cause),
        toml_hint(cause)
    )]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong (not a `source`: it is printed here once).
        cause: Box<config::ConfigError>,
    },
    /// The `--config` file has a key that is no setting.
    #[error("unknown key `{key}` in the configuration file {path}{suggestion} (keys are the setting names in lower case, as in config.example.toml)")]
    UnknownKey {
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
        /// `; did you mean `port`?`, or empty.
        suggestion: String,
    },
    /// A downstream (on-behalf-of) setting is wrong.
    #[error(transparent)]
    Downstream(#[from] DownstreamConfigError),
    /// The `[implies]` table cannot work (a cycle, a bad name).
    #[error(transparent)]
    Implies(#[from] verifiers::ImplicationError),
    /// More than one server credential is set for downstream calls.
    #[error("set one server credential for downstream calls, not several: {0} are all set")]
    CredentialConflict(String),
    /// A downstream credential in dev mode, where there is no Entra to exchange with.
    #[error("--dev has no Entra tenant to call downstream APIs with; unset {0} or drop --dev")]
    DevDownstream(&'static str),
    /// `REDIS_URL` with a server credential but no key to encrypt the shared tokens.
    #[error("REDIS_URL is set with a server credential, so downstream tokens are shared in Redis, and they are stored only encrypted: set DOWNSTREAM_CACHE_KEYS to a key (openssl rand -base64 32)")]
    RedisWithoutCacheKeys,
    /// `SESSION_ID_PREFIX` with `REDIS_URL`: routing a session to its replica, where every
    /// replica serves every session.
    #[error("SESSION_ID_PREFIX routes each legacy session to the replica that opened it, but with REDIS_URL every replica serves every session (an id with another replica's prefix would be refused): unset SESSION_ID_PREFIX and the load balancer's stickiness")]
    PrefixWithRedis,
    /// `DOWNSTREAM_CACHE_KEYS` without `REDIS_URL`, where it would do nothing.
    #[error("DOWNSTREAM_CACHE_KEYS is set but REDIS_URL is not: the keys encrypt the downstream tokens shared in Redis; set REDIS_URL or unset the keys")]
    CacheKeysWithoutRedis,
    /// A `DOWNSTREAM_CACHE_KEYS` entry is not a key (the text names which, never its value).
    #[error(transparent)]
    CacheKeys(verifiers::CacheKeyError),
    /// A server credential with Azure AD B2C, which has no on-behalf-of grant.
    #[error("{0} is set, but AZURE_B2C_POLICY names an Azure AD B2C tenant, which has no on-behalf-of flow: my_profile and group lookups in Microsoft Graph are not available with B2C; unset {0}")]
    B2cDownstream(&'static str),
    /// A managed-identity setting without `DOWNSTREAM_MANAGED_IDENTITY=true`.
    #[error("{0} is set but DOWNSTREAM_MANAGED_IDENTITY is not true; set DOWNSTREAM_MANAGED_IDENTITY=true to use the managed identity")]
    ManagedIdentityNotChosen(&'static str),
    /// `--dev` with a non-loopback listen address.
    #[error("--dev serves only on loopback, but {setting} is {host}; drop --dev or listen on 127.0.0.1")]
    DevNotLoopback {
        /// `HOST`, `--host` or `host in <file>`.
        setting: String,
        /// The address.
        host: IpAddr,
    },
}

pub(super) fn unreadable(path: &Path, cause: config::ConfigError) -> ConfigError {
    ConfigError::File {
        path: path.to_owned(),
        cause: Box::new(cause),
    }
}

/// A value that did not deserialize, named as its source wrote it.
pub(super) fn value_error<'a>(
    cause: config::ConfigError,
    source_of: &dyn Fn(&str) -> Source<'a>,
) -> ConfigError {
    let (key, problem) = match cause {
        config::ConfigError::At {
            error,
            key: Some(key),
            ..
        } => (key, error.to_string()),
        config::ConfigError::Type {
            unexpected,
            expected,
            key: Some(key),
            ..
        } => (key, format!("must be {expected}, got {unexpected}")),
        config::ConfigError::NotFound(key) => (key, "has no value and no default".to_owned()),
        other => return unreadable(Path::new("(settings)"), other),
    };
    let top = key.split(['.', '[']).next().unwrap_or(&key);
    let setting = written_name(&key, &source_of(top));
    let problem = if problem.starts_with("must be ") {
        problem
    } else {
        format!("is wrong: {problem}")
    };
    ConfigError::Value { setting, problem }
}

/// How the source that set `key` (a lower-case setting name, or a path below one) writes it.
pub(super) fn written_name(key: &str, source: &Source<'_>) -> String {
    match source {
        Source::Flag => format!("--{}", key.replace('_', "-")),
        Source::Environment => key.to_ascii_uppercase(),
        Source::EnvFile(path) => format!("{} in {}", key.to_ascii_uppercase(), path.display()),
        Source::File(path) => format!("{key} in {}", path.display()),
        Source::Default => format!("{} (built-in default)", key.to_ascii_uppercase()),
    }
}

/// For a relative path: where it was looked for (desktop hosts and services choose the working
/// directory, which is rarely the one the user has in mind).
fn relative_hint(path: &Path) -> String {
    match std::env::current_dir() {
        Ok(dir) if path.is_relative() => format!(
            "; a relative path is read from the working directory, {}",
            dir.display()
        ),
        _ => String::new(),
    }
}

/// The fix for the TOML mistake newcomers make most: a GUID, URL or name left unquoted reads as
/// a malformed number or a bare word.
fn toml_hint(cause: &config::ConfigError) -> &'static str {
    let text = cause.to_string();
    let unquoted = [
        "invalid float",
        "invalid number",
        "invalid integer",
        "invalid date",
        "invalid string",
        "expected `\"`, `'`",
    ];
    if unquoted.iter().any(|marker| text.contains(marker)) {
        "; text values (GUIDs, URLs, names) must be quoted in TOML: azure_client_id = \"11111111-2222-3333-4444-555555555555\""
    } else {
        ""
    }
}

/// A parse error on one line: the TOML parser draws the line and a caret below its message;
/// keep the message (`TOML parse error at line 1, column 7`) and the reason after the drawing.
pub(super) fn one_line(cause: &config::ConfigError) -> String {
    let text = match cause {
        // Its Display appends the file's name, which the message already gives.
        config::ConfigError::FileParse { cause, .. } => cause.to_string(),
        other => other.to_string(),
    };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.contains(" | "))
        .collect();
    lines.join(": ")
}
