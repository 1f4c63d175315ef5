//! Loading and validating settings: defaults < TOML file < env file < environment < flags.
//!
//! The environment is read here and nowhere else, and no file is read unless the operator names
//! it (`--config`, `--env-file`): a `.env` found in the working directory or above is never
//! read, so a repository a desktop host opens cannot choose the token command, the authority or
//! where tokens are sent. serde and the `config` crate turn every source
//! into the typed fields of one struct (`Raw`, one field per row of [`SETTINGS`]); the value
//! types in `value` accept a TOML value and its text form alike, so `port = 8013` and `PORT=8013`,
//! `azure_required_scopes = ["a", "b"]` and `AZURE_REQUIRED_SCOPES=a,b` mean the same. Built-in
//! defaults are the `default` column of [`SETTINGS`]. Every value is checked before anything
//! starts; a bad one stops start-up with one line that names the setting where it was written.
//!
//! Adding a setting: one row in `settings.rs`, one field in `Raw` (named like the row, in lower
//! case, typed with a `value` type; `Option<…>` when the row has no default), and its use in
//! `validate`.

mod value;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use transports::http::{HttpConfig, HttpConfigError};
use verifiers::{
    AccessPolicy, ClientCredential, DownstreamConfig, DownstreamConfigError, EntraConfig, EntraConfigError,
    ManagedIdentityEndpoint, IMDS_TOKEN_ENDPOINT,
};

use crate::cli::{GlobalArgs, LogFormat, ServeArgs};
use crate::settings::SETTINGS;
use value::{AbsoluteUrl, Count, Flag, Format, Host, List, Port, Secs, Text};

/// The TOML key of the per-tool table (`[tools.<name>]`, docs/ARCHITECTURE.md#per-tool-authorization). Not a row of [`SETTINGS`]:
/// it has no environment form.
pub const TOOLS_KEY: &str = "tools";

/// A setting that cannot work, or a file that cannot be read. One line, naming the setting.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value of the wrong shape, found after the value was read.
    #[error("{name} must be {expected}, got {got:?}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it was.
        got: String,
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
    #[error("the env file {0} does not exist or is not a file (given with --env-file)")]
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
    #[error("the configuration file {0} does not exist (given with --config)")]
    FileMissing(PathBuf),
    /// The `--config` file cannot be read or is not TOML.
    #[error("cannot read the configuration file {path}: {}", one_line(cause))]
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
    /// More than one server credential is set for downstream calls.
    #[error("set one server credential for downstream calls, not several: {0} are all set")]
    CredentialConflict(String),
    /// A downstream credential in dev mode, where there is no Entra to exchange with.
    #[error("--dev has no Entra tenant to call downstream APIs with; unset {0} or drop --dev")]
    DevDownstream(&'static str),
    /// A managed-identity setting without `DOWNSTREAM_MANAGED_IDENTITY=true`.
    #[error("{0} is set but DOWNSTREAM_MANAGED_IDENTITY is not true; set DOWNSTREAM_MANAGED_IDENTITY=true to use the managed identity")]
    ManagedIdentityNotChosen(&'static str),
    /// `--dev` with a non-loopback listen address.
    #[error("--dev serves only on loopback, but HOST is {0}; drop --dev or listen on 127.0.0.1")]
    DevNotLoopback(IpAddr),
}

/// Settings as the sources give them, typed. One field per row of [`SETTINGS`] (its name in lower
/// case), plus `tools`. A field is `Option` exactly when its row has no default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    azure_client_id: Option<Text>,
    azure_tenant_id: Option<Text>,
    azure_required_scopes: List,
    azure_identifier_uri: Option<List>,
    azure_authority_host: AbsoluteUrl,
    azure_allowed_tenants: Option<List>,
    azure_required_app_roles: Option<List>,
    azure_accept_v1_tokens: Flag,
    azure_clock_leeway_secs: Secs,
    azure_key_refresh_secs: Secs,
    azure_key_min_refresh_secs: Secs,
    azure_token_cache_entries: Count,
    azure_token_cache_bytes: Count,
    public_url: Option<AbsoluteUrl>,
    host: Host,
    port: Port,
    allowed_hosts: Option<List>,
    allowed_origins: Option<List>,
    max_body_bytes: Count,
    legacy_sessions: Flag,
    session_idle_timeout_secs: Secs,
    max_sessions: Count,
    session_id_prefix: Option<Text>,
    max_connections: Count,
    header_read_timeout_secs: Secs,
    connection_idle_timeout_secs: Secs,
    sse_retention_secs: Secs,
    sse_retention_bytes: Count,
    request_body_timeout_secs: Secs,
    http2: Flag,
    http2_keepalive_secs: Secs,
    max_sessions_per_principal: Count,
    max_streams_per_principal: Count,
    shutdown_timeout_secs: Secs,
    metrics_addr: Option<Text>,
    log_format: Format,
    mcp_dev_token: Option<Text>,
    mcp_dev_scopes: Option<List>,
    mcp_dev_roles: Option<List>,
    mcp_access_token: Option<Text>,
    mcp_access_token_file: Option<Text>,
    mcp_access_token_command: Option<Text>,
    mcp_access_token_command_timeout_secs: Secs,
    azure_client_secret: Option<Text>,
    azure_client_certificate_path: Option<Text>,
    azure_federated_token_file: Option<Text>,
    downstream_managed_identity: Flag,
    azure_managed_identity_client_id: Option<Text>,
    identity_endpoint: Option<Text>,
    identity_header: Option<Text>,
    azure_pod_identity_authority_host: Option<Text>,
    downstream_scopes: List,
    graph_base_url: AbsoluteUrl,
    #[serde(default)]
    tools: HashMap<String, ToolOverride>,
}

/// An administrator's override of one tool's requirement, from `[tools.<name>]` in the TOML file
/// (docs/ARCHITECTURE.md#per-tool-authorization). Lists are TOML arrays or comma-separated strings. Read here, not yet checked:
/// the tool names and requirements are validated where the tools are declared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolOverride {
    /// `scopes = [...]`: short scope names a delegated caller needs for this tool.
    #[serde(default, deserialize_with = "value::optional_list")]
    pub scopes: Option<Vec<String>>,
    /// `app_roles = [...]`: app roles an app-only caller needs for this tool.
    #[serde(default, deserialize_with = "value::optional_list")]
    pub app_roles: Option<Vec<String>>,
}

/// Downstream calls on the caller's behalf (docs/ARCHITECTURE.md#calling-apis-on-behalf-of-the-caller): present when a server credential is set.
#[derive(Debug, Clone)]
pub struct DownstreamSettings {
    /// The server credential, scopes and cache of the on-behalf-of provider.
    pub config: DownstreamConfig,
    /// `GRAPH_BASE_URL`.
    pub graph_base_url: url::Url,
}

/// Who verifies tokens.
#[derive(Debug, Clone)]
pub enum AuthSettings {
    /// Microsoft Entra ID.
    Entra {
        /// The verifier's settings.
        config: Box<EntraConfig>,
        /// Required scopes and roles.
        policy: AccessPolicy,
    },
    /// The static dev identity (`--dev`).
    Dev {
        /// `MCP_DEV_TOKEN`, or `None` for a random one.
        token: Option<String>,
        /// Required scopes and roles.
        policy: AccessPolicy,
        /// The dev identity's scopes: `MCP_DEV_SCOPES`, by default the required scopes.
        scopes: Vec<String>,
        /// The dev identity's app roles: `MCP_DEV_ROLES`, by default none.
        roles: Vec<String>,
    },
}

/// Where the stdio transport gets the caller's token.
#[derive(Clone, Default)]
pub struct StdioSettings {
    /// `MCP_ACCESS_TOKEN`.
    pub token: Option<String>,
    /// `MCP_ACCESS_TOKEN_FILE`.
    pub token_file: Option<PathBuf>,
    /// `MCP_ACCESS_TOKEN_COMMAND`.
    pub token_command: Option<String>,
    /// `MCP_ACCESS_TOKEN_COMMAND_TIMEOUT_SECS`.
    pub command_timeout: Duration,
}

impl std::fmt::Debug for StdioSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioSettings")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("token_command", &self.token_command)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

/// Validated settings: everything `main` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Who verifies tokens.
    pub auth: AuthSettings,
    /// Where the HTTP server listens.
    pub bind: SocketAddr,
    /// The HTTP transport's settings.
    pub http: HttpConfig,
    /// Whether `PUBLIC_URL` was given (a warning otherwise, when listening beyond loopback).
    pub public_url_set: bool,
    /// The stdio transport's token source.
    pub stdio: StdioSettings,
    /// Log format.
    pub log_format: LogFormat,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// Per-tool overrides from `[tools.<name>]` in the TOML file, by tool name; empty without a
    /// file. Not validated here (unknown names, empty lists): the tools' owner checks them.
    pub tools: HashMap<String, ToolOverride>,
    /// The Application ID URI (`AZURE_IDENTIFIER_URI`, default `api://<client-id>`) without a
    /// trailing slash: the prefix of every scope URI a client requests.
    pub identifier_uri: String,
    /// Downstream calls, when a server credential is configured.
    pub downstream: Option<DownstreamSettings>,
    /// The settings files read, as `--config <path>` / `--env-file <path>`, for the start-up
    /// log; empty when every setting came from the environment, flags and defaults.
    pub files_read: Vec<String>,
}

impl Settings {
    /// The one-line start-up warning when the advertised `resource` (`<PUBLIC_URL>/mcp`) is not
    /// an Application ID URI of the app registration (Entra only).
    ///
    /// Clients following the MCP authorization spec send the metadata's `resource` (RFC 8707)
    /// with the scopes; Entra refuses the token request unless both name the same app
    /// registration: AADSTS9010010 (resource and scopes disagree) or AADSTS500011 (no app has
    /// that resource). Microsoft's advice is to make the Application ID URI the server's URL.
    pub fn resource_mismatch(&self) -> Option<String> {
        let AuthSettings::Entra { config, .. } = &self.auth else {
            return None;
        };
        let resource = self.http.resource();
        if config
            .identifier_uris()
            .any(|uri| uri.trim_end_matches('/') == resource)
        {
            return None;
        }
        Some(format!(
            "the metadata advertises resource {resource} but the Application ID URI is {}: clients that send the RFC 8707 resource parameter with the scopes get AADSTS9010010 or AADSTS500011 from Entra; add {resource} to the app registration's Application ID URIs (Expose an API; an https URI needs a verified domain) and set AZURE_IDENTIFIER_URI={resource}",
            config.identifier_uris().collect::<Vec<_>>().join(", ")
        ))
    }

    /// Loads settings from the `--config` file, the `--env-file` file, the process environment,
    /// and flags. Nothing else is read: no `.env` is looked for.
    pub fn load(global: &GlobalArgs, serve: &ServeArgs) -> Result<Settings, ConfigError> {
        // Variables that are not UTF-8 cannot be settings; `vars()` would panic on them.
        let env: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Settings::from_sources(global, serve, &env)
    }

    /// Like [`load`](Self::load), with the environment given explicitly (tests).
    pub fn from_sources(
        global: &GlobalArgs,
        serve: &ServeArgs,
        env: &HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        let raw = merge(global, serve, env)?;
        let mut settings = validate(raw, global.dev)?;
        settings.files_read = [("--config", &global.config), ("--env-file", &global.env_file)]
            .into_iter()
            .filter_map(|(flag, path)| Some(format!("{flag} {}", path.as_ref()?.display())))
            .collect();
        Ok(settings)
    }
}

/// Where a key's value came from: the highest-precedence source that sets it.
enum Source<'a> {
    Flag,
    Environment,
    EnvFile(&'a Path),
    File(&'a Path),
    Default,
}

/// Merges the sources into typed [`Raw`] settings.
fn merge(global: &GlobalArgs, serve: &ServeArgs, env: &HashMap<String, String>) -> Result<Raw, ConfigError> {
    let known: HashMap<String, String> = env
        .iter()
        .filter(|(name, value)| !value.is_empty() && SETTINGS.iter().any(|s| s.name == name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let flags: Vec<(&str, String)> = [
        ("host", serve.host.clone()),
        ("port", serve.port.clone()),
        ("public_url", serve.public_url.clone()),
        (
            "log_format",
            global.log_format.map(|f| format!("{f:?}").to_ascii_lowercase()),
        ),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.map(|v| (key, v)))
    .collect();

    let mut builder = config::Config::builder();
    for setting in SETTINGS.iter().filter(|s| !s.default.is_empty()) {
        builder = builder
            .set_default(setting.name.to_ascii_lowercase(), setting.default)
            .map_err(|cause| unreadable(Path::new(""), cause))?;
    }
    let mut file_keys = Vec::new();
    if let Some(path) = &global.config {
        let (file, keys) = read_file(path)?;
        file_keys = keys;
        builder = builder.add_source(file);
    }
    let env_file = match &global.env_file {
        Some(path) => read_env_file(path)?,
        None => HashMap::new(),
    };
    builder = builder.add_source(config::Environment::default().source(Some(env_file.clone())));
    builder = builder.add_source(config::Environment::default().source(Some(known.clone())));
    for (key, value) in &flags {
        builder = builder
            .set_override(*key, value.as_str())
            .map_err(|cause| unreadable(Path::new(""), cause))?;
    }
    let source_of = |key: &str| {
        if flags.iter().any(|(k, _)| *k == key) {
            Source::Flag
        } else if known.contains_key(&key.to_ascii_uppercase()) {
            Source::Environment
        } else if let Some(path) = global
            .env_file
            .as_deref()
            .filter(|_| env_file.contains_key(&key.to_ascii_uppercase()))
        {
            Source::EnvFile(path)
        } else if let Some(path) = global
            .config
            .as_deref()
            .filter(|_| file_keys.iter().any(|k| k == key))
        {
            Source::File(path)
        } else {
            Source::Default
        }
    };
    builder
        .build()
        .and_then(|c| c.try_deserialize::<Raw>())
        .map_err(|cause| value_error(cause, &source_of))
}

/// The `--config` file, parsed, and its top-level keys, checked against the settings.
fn read_file(path: &Path) -> Result<(config::Config, Vec<String>), ConfigError> {
    if !path.exists() {
        return Err(ConfigError::FileMissing(path.to_owned()));
    }
    let file = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .build()
        .map_err(|cause| unreadable(path, cause))?;
    let keys = config::Source::collect(&file).map_err(|cause| unreadable(path, cause))?;
    let names: Vec<String> = SETTINGS
        .iter()
        .map(|s| s.name.to_ascii_lowercase())
        .chain([TOOLS_KEY.to_owned()])
        .collect();
    let mut unknown: Vec<&String> = keys.keys().filter(|k| !names.contains(k)).collect();
    unknown.sort();
    if let Some(key) = unknown.first() {
        let suggestion = names
            .iter()
            .filter(|n| n.eq_ignore_ascii_case(key) || edit_distance(n, key) <= 2)
            .min_by_key(|n| edit_distance(n, &key.to_ascii_lowercase()))
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        return Err(ConfigError::UnknownKey {
            key: key.to_string(),
            path: path.to_owned(),
            suggestion,
        });
    }
    Ok((file, keys.into_keys().collect()))
}

/// The `--env-file` file: `NAME=value` lines (dotenv syntax), every name a setting. Read into a
/// map, never into the process environment. Empty values count as unset, as in the environment.
fn read_env_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::EnvFileMissing(path.to_owned()));
    }
    // Never the line itself: it may hold a secret.
    let unreadable = |cause: dotenvy::Error| ConfigError::EnvFile {
        path: path.to_owned(),
        cause: match cause {
            dotenvy::Error::LineParse(_, at) => {
                format!("a line does not read as NAME=value (at character {at} of that line)")
            }
            dotenvy::Error::Io(io) => io.to_string(),
            _ => "it is not a dotenv file".to_owned(),
        },
    };
    let mut values = HashMap::new();
    for item in dotenvy::from_path_iter(path).map_err(unreadable)? {
        let (name, value) = item.map_err(unreadable)?;
        if !SETTINGS.iter().any(|s| s.name == name) {
            let suggestion = SETTINGS
                .iter()
                .map(|s| s.name)
                .filter(|n| edit_distance(n, &name.to_ascii_uppercase()) <= 2)
                .min_by_key(|n| edit_distance(n, &name.to_ascii_uppercase()))
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            return Err(ConfigError::UnknownEnvFileName {
                name,
                path: path.to_owned(),
                suggestion,
            });
        }
        if !value.is_empty() {
            values.insert(name, value);
        }
    }
    Ok(values)
}

fn unreadable(path: &Path, cause: config::ConfigError) -> ConfigError {
    ConfigError::File {
        path: path.to_owned(),
        cause: Box::new(cause),
    }
}

/// A value that did not deserialize, named as its source wrote it.
fn value_error<'a>(cause: config::ConfigError, source_of: &dyn Fn(&str) -> Source<'a>) -> ConfigError {
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
    let setting = match source_of(top) {
        Source::Flag => format!("--{}", key.replace('_', "-")),
        Source::Environment => key.to_ascii_uppercase(),
        Source::EnvFile(path) => format!("{} in {}", key.to_ascii_uppercase(), path.display()),
        Source::File(path) => format!("{key} in {}", path.display()),
        Source::Default => format!("{} (built-in default)", key.to_ascii_uppercase()),
    };
    let problem = if problem.starts_with("must be ") {
        problem
    } else {
        format!("is wrong: {problem}")
    };
    ConfigError::Value { setting, problem }
}

/// A parse error on one line: the TOML parser draws the line and a caret below its message;
/// keep the message (`TOML parse error at line 1, column 7`) and the reason after the drawing.
fn one_line(cause: &config::ConfigError) -> String {
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

/// Levenshtein distance, for "did you mean" on a mistyped key.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn validate(raw: Raw, dev: bool) -> Result<Settings, ConfigError> {
    let port = raw.port.0;
    let host = raw.host.0;
    if dev && !host.is_loopback() {
        return Err(ConfigError::DevNotLoopback(host));
    }
    let public_url_set = raw.public_url.is_some();
    let public_url = match &raw.public_url {
        Some(url) => url.0.clone(),
        None => url::Url::parse(&format!("http://localhost:{port}")).map_err(|_| {
            invalid(
                "PUBLIC_URL",
                "an absolute URL such as https://mcp.contoso.com",
                "",
            )
        })?,
    };

    let scopes = raw.azure_required_scopes.0.clone();
    if scopes.is_empty() {
        // Every delegated call needs at least one scope of this API (docs/ARCHITECTURE.md#token-verification): an empty list
        // would admit any token for this audience that carries some `scp`.
        return Err(invalid(
            "AZURE_REQUIRED_SCOPES",
            "at least one scope name such as access_as_user",
            "",
        ));
    }
    if let Some(bad) = scopes.iter().find(|s| s.contains(['/', ' '])) {
        return Err(invalid(
            "AZURE_REQUIRED_SCOPES",
            "short scope names such as access_as_user (not full api:// URIs)",
            bad,
        ));
    }
    let app_roles = raw.azure_required_app_roles.clone().unwrap_or_default().0;
    let policy = AccessPolicy::scopes(scopes.clone()).with_app_roles(app_roles);

    let (auth, identifier_uri, authorization_servers) = if dev {
        let identifier = raw
            .azure_identifier_uri
            .as_ref()
            .and_then(|uris| uris.0.first().cloned())
            .unwrap_or_else(|| "api://mcp-server-entra-dev".to_owned());
        (
            AuthSettings::Dev {
                token: raw.mcp_dev_token.clone().map(|t| t.0),
                scopes: raw.mcp_dev_scopes.clone().map_or_else(|| scopes.clone(), |l| l.0),
                roles: raw.mcp_dev_roles.clone().unwrap_or_default().0,
                policy,
            },
            identifier,
            Vec::new(),
        )
    } else {
        let entra = entra_config(&raw)?;
        entra.validate()?;
        let identifier = entra.identifier_uri.clone();
        let servers = vec![entra.authority()];
        (
            AuthSettings::Entra {
                config: Box::new(entra),
                policy,
            },
            identifier,
            servers,
        )
    };

    let mut http = HttpConfig::new(public_url);
    http.public_url_is_default = !public_url_set;
    http.authorization_servers = authorization_servers;
    http.identifier_uri = identifier_uri.clone();
    http.scopes = scopes
        .iter()
        .map(|s| format!("{}/{s}", identifier_uri.trim_end_matches('/')))
        .collect();
    if let Some(hosts) = &raw.allowed_hosts {
        http.allowed_hosts = hosts.0.clone();
    } else if !host.is_unspecified() && !host.is_loopback() {
        // Clients that reach the server by its bind address (HOST=10.0.0.5) are allowed too.
        http.allowed_hosts.push(match host {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    if let Some(origins) = &raw.allowed_origins {
        http.allowed_origins = origins.0.clone();
    }
    http.max_body_bytes = raw.max_body_bytes.0;
    http.legacy_sessions = raw.legacy_sessions.0;
    http.session_idle_timeout = raw.session_idle_timeout_secs.0;
    http.max_sessions = raw.max_sessions.0;
    if let Some(prefix) = &raw.session_id_prefix {
        http.session_id_prefix = prefix.0.clone();
    }
    http.max_connections = raw.max_connections.0;
    http.header_read_timeout = raw.header_read_timeout_secs.0;
    http.connection_idle_timeout = raw.connection_idle_timeout_secs.0;
    http.sse_retention = transports::http::EventRetention {
        time: raw.sse_retention_secs.0,
        bytes: raw.sse_retention_bytes.0,
    };
    http.request_body_timeout = raw.request_body_timeout_secs.0;
    http.http2 = raw.http2.0;
    http.http2_keepalive_interval = Some(raw.http2_keepalive_secs.0).filter(|d| !d.is_zero());
    http.max_sessions_per_principal = raw.max_sessions_per_principal.0;
    http.max_streams_per_principal = raw.max_streams_per_principal.0;
    http.shutdown_timeout = raw.shutdown_timeout_secs.0;
    http.validate()?;

    let stdio = StdioSettings {
        token: raw
            .mcp_access_token
            .clone()
            .map(|t| t.0)
            .filter(|t| !t.is_empty()),
        token_file: raw.mcp_access_token_file.clone().map(|t| PathBuf::from(t.0)),
        token_command: raw.mcp_access_token_command.clone().map(|t| t.0),
        command_timeout: raw.mcp_access_token_command_timeout_secs.0,
    };
    let metrics_addr = match raw.metrics_addr.as_ref().map(|t| t.0.as_str()) {
        None | Some("") => None,
        Some(addr) => Some(addr.parse().map_err(|_| {
            invalid(
                "METRICS_ADDR",
                "an address with a port such as 0.0.0.0:9464",
                addr,
            )
        })?),
    };
    let downstream = downstream_settings(&raw, dev)?;
    Ok(Settings {
        downstream,
        metrics_addr,
        auth,
        bind: SocketAddr::new(host, port),
        http,
        public_url_set,
        stdio,
        log_format: raw.log_format.0,
        tools: raw.tools,
        identifier_uri: identifier_uri.trim_end_matches('/').to_owned(),
        files_read: Vec::new(),
    })
}

fn entra_config(raw: &Raw) -> Result<EntraConfig, ConfigError> {
    let client_id = raw.azure_client_id.as_ref().ok_or(ConfigError::Missing {
        name: "AZURE_CLIENT_ID",
        hint: "the Application (client) ID from your app registration's Overview page (or run with --dev to try the server without Azure)",
    })?;
    let tenant = raw.azure_tenant_id.as_ref().ok_or(ConfigError::Missing {
        name: "AZURE_TENANT_ID",
        hint: "the Directory (tenant) ID from your app registration's Overview page, or organizations/common for multi-tenant",
    })?;
    let mut entra = EntraConfig::new(client_id.0.as_str(), tenant.0.as_str());
    if let Some(uris) = &raw.azure_identifier_uri {
        // A list: the first is where scopes are advertised, every entry is accepted as audience.
        let mut uris = uris.0.iter().cloned();
        if let Some(first) = uris.next() {
            entra.identifier_uri = first;
        }
        entra.additional_identifier_uris = uris.collect();
    }
    entra.authority_host = raw.azure_authority_host.0.clone();
    if let Some(tenants) = &raw.azure_allowed_tenants {
        entra.allowed_tenants = tenants.0.clone();
    }
    entra.accept_v1_tokens = raw.azure_accept_v1_tokens.0;
    entra.leeway = raw.azure_clock_leeway_secs.0;
    if entra.leeway > Duration::from_secs(600) {
        return Err(invalid(
            "AZURE_CLOCK_LEEWAY_SECS",
            "at most 600 seconds",
            &entra.leeway.as_secs().to_string(),
        ));
    }
    entra.key_refresh_interval = raw.azure_key_refresh_secs.0;
    entra.key_min_refresh_interval = raw.azure_key_min_refresh_secs.0;
    entra.token_cache_entries = raw.azure_token_cache_entries.0.min(10_000_000);
    entra.token_cache_bytes = raw.azure_token_cache_bytes.0.min(1 << 40);
    Ok(entra)
}

/// The server credential chosen by which settings are set: none (no downstream calls), or
/// exactly one kind. Files are read and checked now, so a bad one stops start-up.
fn downstream_settings(raw: &Raw, dev: bool) -> Result<Option<DownstreamSettings>, ConfigError> {
    let set = |v: &Option<Text>| v.as_ref().is_some_and(|v| !v.0.trim().is_empty());
    let text = |v: &Option<Text>| v.as_ref().map(|t| t.0.trim().to_owned()).unwrap_or_default();
    let managed = raw.downstream_managed_identity.0;
    let chosen: Vec<&'static str> = [
        (set(&raw.azure_client_secret), "AZURE_CLIENT_SECRET"),
        (
            set(&raw.azure_client_certificate_path),
            "AZURE_CLIENT_CERTIFICATE_PATH",
        ),
        (set(&raw.azure_federated_token_file), "AZURE_FEDERATED_TOKEN_FILE"),
        (managed, "DOWNSTREAM_MANAGED_IDENTITY"),
    ]
    .into_iter()
    .filter_map(|(is_set, name)| is_set.then_some(name))
    .collect();
    if !managed {
        // The platform sets IDENTITY_ENDPOINT by itself: it never selects anything alone.
        if set(&raw.azure_managed_identity_client_id) {
            return Err(ConfigError::ManagedIdentityNotChosen(
                "AZURE_MANAGED_IDENTITY_CLIENT_ID",
            ));
        }
        if set(&raw.azure_pod_identity_authority_host) {
            return Err(ConfigError::ManagedIdentityNotChosen(
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            ));
        }
    }
    let credential = match chosen.as_slice() {
        [] => return Ok(None),
        [one] if dev => return Err(ConfigError::DevDownstream(one)),
        // main logs a note that the alternatives exist (logging starts after settings load).
        ["AZURE_CLIENT_SECRET"] => {
            ClientCredential::secret(text(&raw.azure_client_secret)).map_err(DownstreamConfigError::from)?
        }
        ["AZURE_CLIENT_CERTIFICATE_PATH"] => {
            ClientCredential::certificate_file(text(&raw.azure_client_certificate_path))
                .map_err(DownstreamConfigError::from)?
        }
        ["AZURE_FEDERATED_TOKEN_FILE"] => {
            ClientCredential::workload_identity(text(&raw.azure_federated_token_file))
                .map_err(DownstreamConfigError::from)?
        }
        ["DOWNSTREAM_MANAGED_IDENTITY"] => managed_identity(raw)?,
        several => return Err(ConfigError::CredentialConflict(several.join(", "))),
    };
    let mut config = DownstreamConfig::new(credential);
    config.scopes = raw.downstream_scopes.0.clone();
    config.validate()?;
    let graph_base_url = raw.graph_base_url.0.clone();
    if !verifiers::is_secure_transport(&graph_base_url) {
        return Err(invalid(
            "GRAPH_BASE_URL",
            "an https:// URL such as https://graph.microsoft.com (http:// only for loopback)",
            graph_base_url.as_str(),
        ));
    }
    Ok(Some(DownstreamSettings {
        config,
        graph_base_url,
    }))
}

fn managed_identity(raw: &Raw) -> Result<ClientCredential, ConfigError> {
    let local_url = |name: &'static str, text: &str| {
        url::Url::parse(text.trim())
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| invalid(name, "an http:// URL", text))
    };
    let endpoint = match (&raw.identity_endpoint, &raw.identity_header) {
        (Some(endpoint), header) => ManagedIdentityEndpoint::AppService {
            endpoint: local_url("IDENTITY_ENDPOINT", &endpoint.0)?,
            header: header.as_ref().map(|h| h.0.clone()).unwrap_or_default(),
        },
        (None, Some(_)) => {
            return Err(ConfigError::Missing {
                name: "IDENTITY_ENDPOINT",
                hint: "IDENTITY_HEADER is set without it; both come from App Service or Container Apps",
            })
        }
        (None, None) => {
            let endpoint = match &raw.azure_pod_identity_authority_host {
                Some(host) => {
                    let mut url = local_url("AZURE_POD_IDENTITY_AUTHORITY_HOST", &host.0)?;
                    if let Ok(mut segments) = url.path_segments_mut() {
                        segments
                            .pop_if_empty()
                            .extend(["metadata", "identity", "oauth2", "token"]);
                    }
                    url
                }
                None => local_url("IDENTITY_ENDPOINT", IMDS_TOKEN_ENDPOINT)?,
            };
            ManagedIdentityEndpoint::Imds { endpoint }
        }
    };
    let client_id = raw
        .azure_managed_identity_client_id
        .as_ref()
        .map(|id| id.0.trim().to_owned())
        .filter(|id| !id.is_empty());
    Ok(ClientCredential::managed_identity(endpoint, client_id).map_err(DownstreamConfigError::from)?)
}

fn invalid(name: &'static str, expected: &'static str, got: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        expected,
        got: got.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "11111111-2222-3333-4444-555555555555";

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_sources(&GlobalArgs::default(), &ServeArgs::default(), &env(pairs))
    }

    #[test]
    fn entra_settings_with_defaults() {
        let s = load(&[("AZURE_CLIENT_ID", CLIENT), ("AZURE_TENANT_ID", "organizations")]).unwrap();
        assert_eq!(s.bind, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(s.http.public_url.as_str(), "http://localhost:8000/");
        assert_eq!(s.http.scopes, [format!("api://{CLIENT}/access_as_user")]);
        assert_eq!(
            s.http.authorization_servers,
            ["https://login.microsoftonline.com/organizations/v2.0"]
        );
        assert!(matches!(s.auth, AuthSettings::Entra { .. }));
    }

    #[test]
    fn identifier_uris_public_url_paths_and_the_resource_warning() {
        let base = [("AZURE_CLIENT_ID", CLIENT), ("AZURE_TENANT_ID", "organizations")];
        let resource = "https://api.contoso.com/entra/mcp";
        let warning = |uris: &str| {
            format!("the metadata advertises resource {resource} but the Application ID URI is {uris}: clients that send the RFC 8707 resource parameter with the scopes get AADSTS9010010 or AADSTS500011 from Entra; add {resource} to the app registration's Application ID URIs (Expose an API; an https URI needs a verified domain) and set AZURE_IDENTIFIER_URI={resource}")
        };
        // (PUBLIC_URL, AZURE_IDENTIFIER_URI, advertised scope, warning)
        let rows: [(&str, Option<&str>, String, Option<String>); 5] = [
            ("https://api.contoso.com/entra", None, format!("api://{CLIENT}/access_as_user"), Some(warning(&format!("api://{CLIENT}")))),
            ("https://api.contoso.com/entra/", Some(resource), format!("{resource}/access_as_user"), None),
            ("https://api.contoso.com/entra", Some("https://api.contoso.com/entra/mcp/"), format!("{resource}/access_as_user"), None),
            ("https://api.contoso.com/entra", Some(&*format!("api://{CLIENT}, {resource}")), format!("api://{CLIENT}/access_as_user"), None),
            ("https://api.contoso.com/other", Some(&*format!("{resource},api://{CLIENT}")), format!("{resource}/access_as_user"), Some(format!("the metadata advertises resource https://api.contoso.com/other/mcp but the Application ID URI is {resource}, api://{CLIENT}: clients that send the RFC 8707 resource parameter with the scopes get AADSTS9010010 or AADSTS500011 from Entra; add https://api.contoso.com/other/mcp to the app registration's Application ID URIs (Expose an API; an https URI needs a verified domain) and set AZURE_IDENTIFIER_URI=https://api.contoso.com/other/mcp"))),
        ];
        for (public_url, uris, scope, expected_warning) in rows {
            let mut pairs = base.to_vec();
            pairs.push(("PUBLIC_URL", public_url));
            if let Some(uris) = uris {
                pairs.push(("AZURE_IDENTIFIER_URI", uris));
            }
            let s = load(&pairs).unwrap();
            assert_eq!(s.http.scopes, [scope], "{public_url} {uris:?}");
            assert_eq!(s.resource_mismatch(), expected_warning, "{public_url} {uris:?}");
        }
        let dev = Settings::from_sources(
            &GlobalArgs {
                dev: true,
                ..GlobalArgs::default()
            },
            &ServeArgs::default(),
            &env(&[("PUBLIC_URL", "http://localhost:8000/x")]),
        )
        .unwrap();
        assert_eq!(dev.resource_mismatch(), None, "dev mode has no app registration");
    }

    #[test]
    fn public_url_is_a_base_url() {
        let base = [("AZURE_CLIENT_ID", CLIENT), ("AZURE_TENANT_ID", "organizations")];
        for (public_url, error) in [
            ("https://api.contoso.com/entra?x=1", "PUBLIC_URL must be a base URL without query, fragment or user name (https://api.contoso.com or https://api.contoso.com/entra), got \"https://api.contoso.com/entra?x=1\""),
            ("https://u:p@api.contoso.com", "PUBLIC_URL must be a base URL without query, fragment or user name (https://api.contoso.com or https://api.contoso.com/entra), got \"https://u:p@api.contoso.com/\""),
            ("https://api.contoso.com/mcp", "PUBLIC_URL is the base URL the MCP endpoint is under (the endpoint is <PUBLIC_URL>/mcp); drop the trailing /mcp, got \"https://api.contoso.com/mcp\""),
            ("https://api.contoso.com/entra/mcp/", "PUBLIC_URL is the base URL the MCP endpoint is under (the endpoint is <PUBLIC_URL>/mcp); drop the trailing /mcp, got \"https://api.contoso.com/entra/mcp/\""),
        ] {
            let mut pairs = base.to_vec();
            pairs.push(("PUBLIC_URL", public_url));
            assert_eq!(load(&pairs).unwrap_err().to_string(), error, "{public_url}");
        }
    }

    #[test]
    fn bad_client_id_names_the_setting() {
        let err = load(&[("AZURE_CLIENT_ID", "abc"), ("AZURE_TENANT_ID", "organizations")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "AZURE_CLIENT_ID must be a GUID (the app registration's Application (client) ID), got \"abc\""
        );
    }

    #[test]
    fn missing_client_id_says_where_to_find_it() {
        let err = load(&[]).unwrap_err().to_string();
        assert!(err.starts_with("AZURE_CLIENT_ID is required"), "{err}");
        assert!(err.contains("--dev"), "{err}");
    }

    /// A scratch directory for TOML files, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("mcp-entra-cfg-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
        fn file(&self, text: &str) -> PathBuf {
            let file = self.0.join("settings.toml");
            std::fs::write(&file, text).unwrap();
            file
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Where a test row writes its value.
    #[derive(Debug, Clone, Copy)]
    enum In {
        Env,
        Toml,
        Flag,
    }

    /// Loads with Entra basics in the environment, plus one value in one source.
    fn load_one(scratch: &Scratch, source: In, key: &str, value: &str) -> Result<Settings, ConfigError> {
        let mut vars = vec![("AZURE_CLIENT_ID", CLIENT), ("AZURE_TENANT_ID", "organizations")];
        let mut global = GlobalArgs::default();
        let mut serve = ServeArgs::default();
        match source {
            In::Env => vars.push((key, value)),
            In::Toml => global.config = Some(scratch.file(&format!("{key} = {value}\n"))),
            In::Flag => match key {
                "--port" => serve.port = Some(value.to_owned()),
                "--host" => serve.host = Some(value.to_owned()),
                "--public-url" => serve.public_url = Some(value.to_owned()),
                other => panic!("no flag {other}"),
            },
        }
        Settings::from_sources(&global, &serve, &env(&vars))
    }

    #[test]
    fn a_bad_value_is_one_line_naming_the_setting_as_its_source_wrote_it() {
        let scratch = Scratch::new("table");
        let file = scratch.0.join("settings.toml");
        let file = file.display();
        let rows: Vec<(In, &str, &str, String)> = vec![
            (In::Env, "PORT", "eighty", "PORT must be a port number from 0 to 65535, got \"eighty\"".into()),
            (In::Env, "PORT", "70000", "PORT must be a port number from 0 to 65535, got \"70000\"".into()),
            (In::Toml, "port", "70000", format!("port in {file} must be a port number from 0 to 65535, got 70000")),
            (In::Toml, "port", "\"http\"", format!("port in {file} must be a port number from 0 to 65535, got \"http\"")),
            (In::Flag, "--port", "http", "--port must be a port number from 0 to 65535, got \"http\"".into()),
            (In::Env, "LEGACY_SESSIONS", "maybe", "LEGACY_SESSIONS must be true or false, got \"maybe\"".into()),
            (In::Toml, "legacy_sessions", "\"maybe\"", format!("legacy_sessions in {file} must be true or false, got \"maybe\"")),
            (In::Env, "HOST", "example.com", "HOST must be an IP address such as 127.0.0.1 or 0.0.0.0, got \"example.com\"".into()),
            (In::Flag, "--host", "example.com", "--host must be an IP address such as 127.0.0.1 or 0.0.0.0, got \"example.com\"".into()),
            (In::Env, "LOG_FORMAT", "xml", "LOG_FORMAT must be human or json, got \"xml\"".into()),
            (In::Env, "SESSION_IDLE_TIMEOUT_SECS", "5m", "SESSION_IDLE_TIMEOUT_SECS must be a whole number of seconds up to 31536000 (a year), got \"5m\"".into()),
            (In::Toml, "session_idle_timeout_secs", "-1", format!("session_idle_timeout_secs in {file} must be a whole number of seconds up to 31536000 (a year), got -1")),
            (In::Env, "SESSION_IDLE_TIMEOUT_SECS", "18446744073709551615", "SESSION_IDLE_TIMEOUT_SECS must be a whole number of seconds up to 31536000 (a year), got \"18446744073709551615\"".into()),
            (In::Toml, "request_body_timeout_secs", "31536001", format!("request_body_timeout_secs in {file} must be a whole number of seconds up to 31536000 (a year), got 31536001")),
            (In::Toml, "max_sessions", "1.5", format!("max_sessions in {file} must be a whole number, got 1.5")),
            (In::Env, "MAX_BODY_BYTES", "1MB", "MAX_BODY_BYTES must be a whole number, got \"1MB\"".into()),
            (In::Toml, "azure_allowed_tenants", "7", format!("azure_allowed_tenants in {file} must be a list such as [\"a\", \"b\"] or a comma-separated string, got 7")),
            (In::Toml, "azure_required_scopes", "[[\"a\"]]", format!("azure_required_scopes[0] in {file} must be text, got a list")),
            (In::Env, "PUBLIC_URL", "mcp.contoso.com", "PUBLIC_URL must be an absolute URL such as https://mcp.contoso.com, got \"mcp.contoso.com\"".into()),
            (In::Flag, "--public-url", "/mcp", "--public-url must be an absolute URL such as https://mcp.contoso.com, got \"/mcp\"".into()),
            (In::Toml, "azure_authority_host", "\"login\"", format!("azure_authority_host in {file} must be an absolute URL such as https://mcp.contoso.com, got \"login\"")),
            (In::Env, "METRICS_ADDR", "9464", "METRICS_ADDR must be an address with a port such as 0.0.0.0:9464, got \"9464\"".into()),
            (In::Env, "AZURE_CLOCK_LEEWAY_SECS", "601", "AZURE_CLOCK_LEEWAY_SECS must be at most 600 seconds, got \"601\"".into()),
            (In::Toml, "azure_required_scopes", "[]", "AZURE_REQUIRED_SCOPES must be at least one scope name such as access_as_user, got \"\"".into()),
            (In::Env, "AZURE_REQUIRED_SCOPES", ",", "AZURE_REQUIRED_SCOPES must be at least one scope name such as access_as_user, got \"\"".into()),
            (In::Toml, "azure_required_scopes", "[\"api://x/access_as_user\"]", "AZURE_REQUIRED_SCOPES must be short scope names such as access_as_user (not full api:// URIs), got \"api://x/access_as_user\"".into()),
            (In::Toml, "tools", "{ whoami = { scope = [\"a\"] } }", format!("tools.whoami in {file} is wrong: unknown field `scope`, expected `scopes` or `app_roles`")),
            (In::Toml, "prot", "9001", format!("unknown key `prot` in the configuration file {file}; did you mean `port`? (keys are the setting names in lower case, as in config.example.toml)")),
            (In::Toml, "PORT", "9001", format!("unknown key `PORT` in the configuration file {file}; did you mean `port`? (keys are the setting names in lower case, as in config.example.toml)")),
        ];
        for (source, key, value, expected) in rows {
            let got = load_one(&scratch, source, key, value)
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert_eq!(got, Err(expected), "row {source:?} {key} = {value}");
        }
    }

    #[test]
    fn lists_come_from_toml_arrays_and_comma_separated_text() {
        let scratch = Scratch::new("lists");
        for (source, value) in [
            (In::Toml, "[\"access_as_user\", \" files.read \", \"\"]"),
            (In::Toml, "\"access_as_user, files.read\""),
            (In::Env, "access_as_user, files.read,"),
        ] {
            let key = match source {
                In::Env => "AZURE_REQUIRED_SCOPES",
                _ => "azure_required_scopes",
            };
            let s = load_one(&scratch, source, key, value).unwrap();
            assert_eq!(
                s.http.scopes,
                [
                    format!("api://{CLIENT}/access_as_user"),
                    format!("api://{CLIENT}/files.read")
                ],
                "{source:?} {value}"
            );
        }
    }

    #[test]
    fn native_toml_numbers_booleans_and_durations_are_read() {
        let scratch = Scratch::new("native");
        let global = GlobalArgs {
            dev: true,
            config: Some(scratch.file(
                "port = 9001\nlegacy_sessions = false\nsession_idle_timeout_secs = 42\nmax_body_bytes = 2048\nazure_accept_v1_tokens = true\n",
            )),
            ..GlobalArgs::default()
        };
        let s = Settings::from_sources(&global, &ServeArgs::default(), &env(&[])).unwrap();
        assert_eq!(s.bind.port(), 9001);
        assert!(!s.http.legacy_sessions);
        assert_eq!(s.http.session_idle_timeout, Duration::from_secs(42));
        assert_eq!(s.http.max_body_bytes, 2048);
    }

    #[test]
    fn a_missing_config_file_is_named_as_missing() {
        let global = GlobalArgs {
            config: Some(PathBuf::from("missing.toml")),
            ..GlobalArgs::default()
        };
        let err = Settings::from_sources(&global, &ServeArgs::default(), &env(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the configuration file missing.toml does not exist (given with --config)"
        );
    }

    #[test]
    fn a_file_that_is_not_toml_says_so() {
        let scratch = Scratch::new("nottoml");
        let global = GlobalArgs {
            config: Some(scratch.file("port: 9001\n")),
            ..GlobalArgs::default()
        };
        let err = Settings::from_sources(&global, &ServeArgs::default(), &env(&[])).unwrap_err();
        let err = err.to_string();
        assert!(err.starts_with("cannot read the configuration file "), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[test]
    fn tool_overrides_are_read_from_the_tools_table() {
        let scratch = Scratch::new("tools");
        let global = GlobalArgs {
            dev: true,
            config: Some(scratch.file(
                "[tools.whoami]\nscopes = [\"profile.read\"]\n\n[tools.roll_dice]\napp_roles = \"Dice.Roll, Admin\"\n",
            )),
            ..GlobalArgs::default()
        };
        let s = Settings::from_sources(&global, &ServeArgs::default(), &env(&[])).unwrap();
        assert_eq!(
            s.tools.get("whoami"),
            Some(&ToolOverride {
                scopes: Some(vec!["profile.read".into()]),
                app_roles: None
            })
        );
        assert_eq!(
            s.tools.get("roll_dice"),
            Some(&ToolOverride {
                scopes: None,
                app_roles: Some(vec!["Dice.Roll".into(), "Admin".into()])
            })
        );
        assert_eq!(s.tools.len(), 2);
    }

    #[test]
    fn the_server_credential_is_chosen_by_the_settings_set_and_conflicts_stop_start_up() {
        let dir = std::env::temp_dir().join(format!("mcp-entra-dscfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token_file = dir.join("token");
        std::fs::write(&token_file, "federated").unwrap();
        let token_file = token_file.to_str().unwrap().to_owned();
        let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/client-cert.pem");
        let base = [("AZURE_CLIENT_ID", CLIENT), ("AZURE_TENANT_ID", "organizations")];
        // (extra settings, Ok(credential kind or "none") or Err(the start-up line))
        type Row<'a> = (Vec<(&'a str, &'a str)>, Result<&'a str, String>);
        let rows: Vec<Row> = vec![
            (vec![], Ok("none")),
            (vec![("IDENTITY_ENDPOINT", "http://127.0.0.1:4/msi"), ("IDENTITY_HEADER", "h")], Ok("none")),
            (vec![("AZURE_CLIENT_SECRET", "s")], Ok("secret")),
            (vec![("AZURE_CLIENT_CERTIFICATE_PATH", cert)], Ok("certificate")),
            (vec![("AZURE_FEDERATED_TOKEN_FILE", &token_file)], Ok("workload identity")),
            (vec![("DOWNSTREAM_MANAGED_IDENTITY", "true")], Ok("managed identity")),
            (
                vec![("DOWNSTREAM_MANAGED_IDENTITY", "true"), ("IDENTITY_ENDPOINT", "http://127.0.0.1:4/msi"), ("IDENTITY_HEADER", "h")],
                Ok("managed identity"),
            ),
            (
                vec![("AZURE_CLIENT_SECRET", "s"), ("AZURE_FEDERATED_TOKEN_FILE", &token_file)],
                Err("set one server credential for downstream calls, not several: AZURE_CLIENT_SECRET, AZURE_FEDERATED_TOKEN_FILE are all set".into()),
            ),
            (
                vec![("AZURE_CLIENT_CERTIFICATE_PATH", cert), ("DOWNSTREAM_MANAGED_IDENTITY", "yes")],
                Err("set one server credential for downstream calls, not several: AZURE_CLIENT_CERTIFICATE_PATH, DOWNSTREAM_MANAGED_IDENTITY are all set".into()),
            ),
            (
                vec![("AZURE_MANAGED_IDENTITY_CLIENT_ID", CLIENT)],
                Err("AZURE_MANAGED_IDENTITY_CLIENT_ID is set but DOWNSTREAM_MANAGED_IDENTITY is not true; set DOWNSTREAM_MANAGED_IDENTITY=true to use the managed identity".into()),
            ),
            (
                vec![("DOWNSTREAM_MANAGED_IDENTITY", "true"), ("IDENTITY_HEADER", "h")],
                Err("IDENTITY_ENDPOINT is required: IDENTITY_HEADER is set without it; both come from App Service or Container Apps".into()),
            ),
            (
                vec![("DOWNSTREAM_MANAGED_IDENTITY", "true"), ("IDENTITY_ENDPOINT", "http://127.0.0.1:4/msi")],
                Err("IDENTITY_ENDPOINT is set but IDENTITY_HEADER is empty; both come from the platform (App Service, Container Apps)".into()),
            ),
            (
                vec![("DOWNSTREAM_MANAGED_IDENTITY", "maybe")],
                Err("DOWNSTREAM_MANAGED_IDENTITY must be true or false, got \"maybe\"".into()),
            ),
            (
                vec![("AZURE_CLIENT_CERTIFICATE_PATH", "/nonexistent/cert.pem")],
                Err("AZURE_CLIENT_CERTIFICATE_PATH names /nonexistent/cert.pem, which cannot be read: No such file or directory (os error 2)".into()),
            ),
            (
                vec![("AZURE_CLIENT_SECRET", "s"), ("DOWNSTREAM_SCOPES", "User.Read Mail.Read")],
                Err("the downstream scopes must be full scope URIs such as https://graph.microsoft.com/User.Read, without spaces; got \"User.Read Mail.Read\"".into()),
            ),
            (
                vec![("AZURE_CLIENT_SECRET", "s"), ("GRAPH_BASE_URL", "http://graph.example")],
                Err("GRAPH_BASE_URL must be an https:// URL such as https://graph.microsoft.com (http:// only for loopback), got \"http://graph.example/\"".into()),
            ),
        ];
        for (extra, expected) in rows {
            let mut pairs = base.to_vec();
            pairs.extend(extra.iter().copied());
            let got = load(&pairs)
                .map(|s| s.downstream.map_or("none", |d| d.config.credential.kind()))
                .map_err(|e| e.to_string());
            assert_eq!(got, expected, "{extra:?}");
        }
        let dev = GlobalArgs {
            dev: true,
            ..GlobalArgs::default()
        };
        let err = Settings::from_sources(&dev, &ServeArgs::default(), &env(&[("AZURE_CLIENT_SECRET", "s")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--dev has no Entra tenant to call downstream APIs with; unset AZURE_CLIENT_SECRET or drop --dev"
        );
        let s = load(&[&base[..], &[("AZURE_CLIENT_SECRET", "s")]].concat()).unwrap();
        let d = s.downstream.unwrap();
        assert_eq!(d.config.scopes, ["https://graph.microsoft.com/User.Read"]);
        assert_eq!(d.graph_base_url.as_str(), "https://graph.microsoft.com/");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_example_toml_file_loads_and_matches_the_defaults() {
        let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"));
        let global = GlobalArgs {
            config: Some(path),
            ..GlobalArgs::default()
        };
        let s = Settings::from_sources(&global, &ServeArgs::default(), &env(&[])).unwrap();
        let AuthSettings::Entra { config, policy } = &s.auth else {
            panic!("the example configures Entra");
        };
        assert_eq!(config.client_id, "00000000-0000-0000-0000-000000000000");
        assert_eq!(policy.required_scopes, ["access_as_user"]);
        assert_eq!(s.bind, "127.0.0.1:8000".parse().unwrap());
        // Every setting appears in the example, as a key or a commented-out key.
        let text = include_str!("../config.example.toml");
        for setting in SETTINGS {
            let key = setting.name.to_ascii_lowercase();
            assert!(
                text.lines()
                    .any(|l| l.trim_start_matches("# ").starts_with(&format!("{key} = "))),
                "config.example.toml lacks {key}"
            );
        }
    }

    #[test]
    fn allowed_hosts_come_from_public_url_and_a_specific_bind_address() {
        let base = [("AZURE_CLIENT_ID", CLIENT), ("AZURE_TENANT_ID", "organizations")];
        let mut pairs = base.to_vec();
        pairs.extend([
            ("PUBLIC_URL", "https://mcp.contoso.example"),
            ("HOST", "10.1.2.3"),
        ]);
        let s = load(&pairs).unwrap();
        assert_eq!(
            s.http.allowed_hosts,
            [
                "mcp.contoso.example",
                "localhost",
                "127.0.0.1",
                "[::1]",
                "10.1.2.3"
            ]
        );
        let mut pairs = base.to_vec();
        pairs.extend([
            ("HOST", "0.0.0.0"),
            ("ALLOWED_HOSTS", "a.example, b.example:8443"),
        ]);
        assert_eq!(
            load(&pairs).unwrap().http.allowed_hosts,
            ["a.example", "b.example:8443"]
        );
    }

    #[test]
    fn dev_mode_needs_no_azure_but_refuses_non_loopback() {
        let dev = GlobalArgs {
            dev: true,
            ..GlobalArgs::default()
        };
        let s = Settings::from_sources(&dev, &ServeArgs::default(), &env(&[])).unwrap();
        assert!(matches!(s.auth, AuthSettings::Dev { .. }));
        let err =
            Settings::from_sources(&dev, &ServeArgs::default(), &env(&[("HOST", "0.0.0.0")])).unwrap_err();
        assert!(matches!(err, ConfigError::DevNotLoopback(_)));
    }

    #[test]
    fn flags_override_environment_which_overrides_the_file() {
        let scratch = Scratch::new("precedence");
        let global = GlobalArgs {
            dev: true,
            config: Some(scratch.file("port = 9001\nhost = \"127.0.0.1\"\n")),
            ..GlobalArgs::default()
        };
        let port = |serve: &ServeArgs, vars: &[(&str, &str)]| {
            Settings::from_sources(&global, serve, &env(vars))
                .unwrap()
                .bind
                .port()
        };
        let flag = ServeArgs {
            port: Some("9003".into()),
            ..ServeArgs::default()
        };
        assert_eq!(port(&ServeArgs::default(), &[]), 9001);
        assert_eq!(port(&ServeArgs::default(), &[("PORT", "9002")]), 9002);
        assert_eq!(
            port(&ServeArgs::default(), &[("PORT", "")]),
            9001,
            "an empty variable is unset"
        );
        assert_eq!(port(&flag, &[("PORT", "9002")]), 9003);
        let no_file = GlobalArgs {
            dev: true,
            ..GlobalArgs::default()
        };
        let s = Settings::from_sources(&no_file, &ServeArgs::default(), &env(&[])).unwrap();
        assert_eq!(s.bind.port(), 8000, "the default");
    }

    #[test]
    fn every_row_of_the_settings_table_is_a_field_and_vice_versa() {
        let mut fields: Vec<String> = raw_fields().iter().map(|f| f.to_string()).collect();
        fields.retain(|f| f != TOOLS_KEY);
        fields.sort();
        let mut rows: Vec<String> = SETTINGS.iter().map(|s| s.name.to_ascii_lowercase()).collect();
        rows.sort();
        assert_eq!(fields, rows);
    }

    #[test]
    fn the_defaults_in_the_table_are_valid_values() {
        // Dev mode needs no required setting: every other field comes from the table's defaults.
        let dev = GlobalArgs {
            dev: true,
            ..GlobalArgs::default()
        };
        let s = Settings::from_sources(&dev, &ServeArgs::default(), &env(&[])).unwrap();
        assert_eq!(s.stdio.command_timeout, Duration::from_secs(30));
        assert_eq!(s.http.max_body_bytes, 1_048_576);
        assert_eq!(s.log_format, LogFormat::Human);
    }

    /// The field names serde knows for `Raw`, read from its derived `Deserialize`.
    fn raw_fields() -> &'static [&'static str] {
        struct Fields(Option<&'static [&'static str]>);
        #[derive(Debug)]
        struct Stop;
        impl std::fmt::Display for Stop {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("stop")
            }
        }
        impl std::error::Error for Stop {}
        impl serde::de::Error for Stop {
            fn custom<T: std::fmt::Display>(_: T) -> Self {
                Stop
            }
        }
        impl<'de> serde::Deserializer<'de> for &mut Fields {
            type Error = Stop;
            fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
                Err(Stop)
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Stop> {
                self.0 = Some(fields);
                Err(Stop)
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
                option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
                ignored_any
            }
        }
        let mut fields = Fields(None);
        let _ = Raw::deserialize(&mut fields);
        fields.0.unwrap()
    }
}
