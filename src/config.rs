//! Loading and validating settings: defaults < TOML file < environment (+ `.env`) < flags.
//!
//! The environment is read here and nowhere else. Every value is checked before anything starts;
//! a bad one stops start-up with one line that names the setting and what is wrong.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use transports::http::{HttpConfig, HttpConfigError};
use url::Url;
use verifiers::{AccessPolicy, EntraConfig, EntraConfigError};

use crate::cli::{GlobalArgs, LogFormat, ServeArgs};
use crate::settings::SETTINGS;

/// A setting that cannot work, or a file that cannot be read. One line, naming the setting.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value of the wrong shape.
    #[error("{name} must be {expected}, got {got:?}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it was.
        got: String,
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
    /// The `--config` file cannot be read or has unknown keys.
    #[error("cannot use the configuration file {path}: {cause}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong (not a `source`: it is printed here once).
        cause: Box<config::ConfigError>,
    },
    /// `--dev` with a non-loopback listen address.
    #[error("--dev serves only on loopback, but HOST is {0}; drop --dev or listen on 127.0.0.1")]
    DevNotLoopback(IpAddr),
}

/// Settings as written, before validation: every value is text, as in the environment.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Raw {
    azure_client_id: Option<String>,
    azure_tenant_id: Option<String>,
    azure_required_scopes: Option<String>,
    azure_identifier_uri: Option<String>,
    azure_authority_host: Option<String>,
    azure_allowed_tenants: Option<String>,
    azure_required_app_roles: Option<String>,
    azure_accept_v1_tokens: Option<String>,
    azure_clock_leeway_secs: Option<String>,
    azure_key_refresh_secs: Option<String>,
    azure_key_min_refresh_secs: Option<String>,
    azure_token_cache_entries: Option<String>,
    public_url: Option<String>,
    host: Option<String>,
    port: Option<String>,
    allowed_hosts: Option<String>,
    allowed_origins: Option<String>,
    max_body_bytes: Option<String>,
    legacy_sessions: Option<String>,
    session_idle_timeout_secs: Option<String>,
    max_sessions: Option<String>,
    session_id_prefix: Option<String>,
    max_connections: Option<String>,
    header_read_timeout_secs: Option<String>,
    shutdown_timeout_secs: Option<String>,
    metrics_addr: Option<String>,
    log_format: Option<String>,
    mcp_dev_token: Option<String>,
    mcp_access_token: Option<String>,
    mcp_access_token_file: Option<String>,
    mcp_access_token_command: Option<String>,
    mcp_access_token_command_timeout_secs: Option<String>,
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
        /// Required scopes (the dev identity has them).
        policy: AccessPolicy,
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
}

impl Settings {
    /// Loads settings from the TOML file, the process environment (after `.env`), and flags.
    pub fn load(global: &GlobalArgs, serve: &ServeArgs) -> Result<Settings, ConfigError> {
        // A missing .env is normal; it never overrides variables already set.
        let _ = dotenvy::dotenv();
        let env: HashMap<String, String> = std::env::vars().collect();
        Settings::from_sources(global, serve, &env)
    }

    /// Like [`load`](Self::load), with the environment given explicitly (tests).
    pub fn from_sources(
        global: &GlobalArgs,
        serve: &ServeArgs,
        env: &HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        let raw = merge(global, serve, env)?;
        validate(raw, global.dev)
    }
}

fn merge(global: &GlobalArgs, serve: &ServeArgs, env: &HashMap<String, String>) -> Result<Raw, ConfigError> {
    let known: HashMap<String, String> = env
        .iter()
        .filter(|(name, value)| !value.is_empty() && SETTINGS.iter().any(|s| s.name == name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let mut builder = config::Config::builder();
    if let Some(path) = &global.config {
        if !path.is_file() {
            return Err(ConfigError::File {
                path: path.clone(),
                cause: Box::new(config::ConfigError::NotFound(path.display().to_string())),
            });
        }
        builder = builder.add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml));
    }
    builder = builder.add_source(config::Environment::default().source(Some(known)));
    let flags = [
        ("host", serve.host.clone()),
        ("port", serve.port.clone()),
        ("public_url", serve.public_url.clone()),
        (
            "log_format",
            global.log_format.map(|f| format!("{f:?}").to_ascii_lowercase()),
        ),
    ];
    for (key, value) in flags {
        if let Some(value) = value {
            builder = builder
                .set_override(key, value)
                .map_err(|cause| file_error(global, cause))?;
        }
    }
    builder
        .build()
        .and_then(|c| c.try_deserialize::<Raw>())
        .map_err(|cause| file_error(global, cause))
}

fn file_error(global: &GlobalArgs, cause: config::ConfigError) -> ConfigError {
    ConfigError::File {
        path: global.config.clone().unwrap_or_default(),
        cause: Box::new(cause),
    }
}

fn validate(raw: Raw, dev: bool) -> Result<Settings, ConfigError> {
    let port = match raw.port.as_deref() {
        None => 8000,
        Some(p) => p
            .trim()
            .parse::<u16>()
            .map_err(|_| invalid("PORT", "a port number from 0 to 65535", p))?,
    };
    let host = match raw.host.as_deref().map(str::trim) {
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| invalid("HOST", "an IP address such as 127.0.0.1 or 0.0.0.0", h))?,
    };
    if dev && !host.is_loopback() {
        return Err(ConfigError::DevNotLoopback(host));
    }
    let public_url_set = raw.public_url.is_some();
    let public_url_text = raw
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://localhost:{port}"));
    let public_url = Url::parse(public_url_text.trim()).map_err(|_| {
        invalid(
            "PUBLIC_URL",
            "an absolute URL such as https://mcp.contoso.com",
            &public_url_text,
        )
    })?;

    let scopes = list(raw.azure_required_scopes.as_deref().unwrap_or("access_as_user"));
    if let Some(bad) = scopes.iter().find(|s| s.contains(['/', ' '])) {
        return Err(invalid(
            "AZURE_REQUIRED_SCOPES",
            "short scope names such as access_as_user (not full api:// URIs)",
            bad,
        ));
    }
    let policy = AccessPolicy::scopes(scopes.clone())
        .with_app_roles(list(raw.azure_required_app_roles.as_deref().unwrap_or("")));

    let (auth, identifier_uri, authorization_servers) = if dev {
        let identifier = raw
            .azure_identifier_uri
            .clone()
            .unwrap_or_else(|| "api://mcp-server-entra-dev".to_owned());
        (
            AuthSettings::Dev {
                token: raw.mcp_dev_token.clone(),
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
    http.authorization_servers = authorization_servers;
    http.scopes = scopes
        .iter()
        .map(|s| format!("{}/{s}", identifier_uri.trim_end_matches('/')))
        .collect();
    if let Some(hosts) = &raw.allowed_hosts {
        http.allowed_hosts = list(hosts);
    } else if !host.is_unspecified() && !host.is_loopback() {
        // Clients that reach the server by its bind address (HOST=10.0.0.5) are allowed too.
        http.allowed_hosts.push(match host {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    if let Some(origins) = &raw.allowed_origins {
        http.allowed_origins = list(origins);
    }
    if let Some(v) = &raw.max_body_bytes {
        http.max_body_bytes = number("MAX_BODY_BYTES", v)? as usize;
    }
    if let Some(v) = &raw.legacy_sessions {
        http.legacy_sessions = boolean("LEGACY_SESSIONS", v)?;
    }
    if let Some(v) = &raw.session_idle_timeout_secs {
        http.session_idle_timeout = seconds("SESSION_IDLE_TIMEOUT_SECS", v)?;
    }
    if let Some(v) = &raw.max_sessions {
        http.max_sessions = number("MAX_SESSIONS", v)? as usize;
    }
    if let Some(v) = &raw.session_id_prefix {
        http.session_id_prefix = v.trim().to_owned();
    }
    if let Some(v) = &raw.max_connections {
        http.max_connections = number("MAX_CONNECTIONS", v)? as usize;
    }
    if let Some(v) = &raw.header_read_timeout_secs {
        http.header_read_timeout = seconds("HEADER_READ_TIMEOUT_SECS", v)?;
    }
    if let Some(v) = &raw.shutdown_timeout_secs {
        http.shutdown_timeout = seconds("SHUTDOWN_TIMEOUT_SECS", v)?;
    }
    http.validate()?;

    let log_format = match raw.log_format.as_deref().map(str::trim) {
        None | Some("human") => LogFormat::Human,
        Some("json") => LogFormat::Json,
        Some(other) => return Err(invalid("LOG_FORMAT", "human or json", other)),
    };
    let stdio = StdioSettings {
        token: raw.mcp_access_token.clone().filter(|t| !t.trim().is_empty()),
        token_file: raw.mcp_access_token_file.clone().map(PathBuf::from),
        token_command: raw.mcp_access_token_command.clone(),
        command_timeout: match &raw.mcp_access_token_command_timeout_secs {
            Some(v) => seconds("MCP_ACCESS_TOKEN_COMMAND_TIMEOUT_SECS", v)?,
            None => Duration::from_secs(30),
        },
    };
    let metrics_addr = match raw.metrics_addr.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(addr) => Some(addr.parse().map_err(|_| {
            invalid(
                "METRICS_ADDR",
                "an address with a port such as 0.0.0.0:9464",
                addr,
            )
        })?),
    };
    Ok(Settings {
        metrics_addr,
        auth,
        bind: SocketAddr::new(host, port),
        http,
        public_url_set,
        stdio,
        log_format,
    })
}

fn entra_config(raw: &Raw) -> Result<EntraConfig, ConfigError> {
    let client_id = raw.azure_client_id.as_deref().ok_or(ConfigError::Missing {
        name: "AZURE_CLIENT_ID",
        hint: "the Application (client) ID from your app registration's Overview page (or run with --dev to try the server without Azure)",
    })?;
    let tenant = raw.azure_tenant_id.as_deref().ok_or(ConfigError::Missing {
        name: "AZURE_TENANT_ID",
        hint: "the Directory (tenant) ID from your app registration's Overview page, or organizations/common for multi-tenant",
    })?;
    let mut entra = EntraConfig::new(client_id.trim(), tenant.trim());
    if let Some(uri) = &raw.azure_identifier_uri {
        entra.identifier_uri = uri.trim().to_owned();
    }
    if let Some(host) = &raw.azure_authority_host {
        entra.authority_host = Url::parse(host.trim()).map_err(|_| {
            invalid(
                "AZURE_AUTHORITY_HOST",
                "an https:// URL such as https://login.microsoftonline.com",
                host,
            )
        })?;
    }
    if let Some(tenants) = &raw.azure_allowed_tenants {
        entra.allowed_tenants = list(tenants);
    }
    if let Some(v) = &raw.azure_accept_v1_tokens {
        entra.accept_v1_tokens = boolean("AZURE_ACCEPT_V1_TOKENS", v)?;
    }
    if let Some(v) = &raw.azure_clock_leeway_secs {
        entra.leeway = seconds("AZURE_CLOCK_LEEWAY_SECS", v)?;
        if entra.leeway > Duration::from_secs(600) {
            return Err(invalid("AZURE_CLOCK_LEEWAY_SECS", "at most 600 seconds", v));
        }
    }
    if let Some(v) = &raw.azure_key_refresh_secs {
        entra.key_refresh_interval = seconds("AZURE_KEY_REFRESH_SECS", v)?;
    }
    if let Some(v) = &raw.azure_key_min_refresh_secs {
        entra.key_min_refresh_interval = seconds("AZURE_KEY_MIN_REFRESH_SECS", v)?;
    }
    if let Some(v) = &raw.azure_token_cache_entries {
        entra.token_cache_entries = number("AZURE_TOKEN_CACHE_ENTRIES", v)?.min(10_000_000) as usize;
    }
    Ok(entra)
}

fn invalid(name: &'static str, expected: &'static str, got: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        expected,
        got: got.to_owned(),
    }
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn number(name: &'static str, text: &str) -> Result<u64, ConfigError> {
    text.trim()
        .parse()
        .map_err(|_| invalid(name, "a whole number", text))
}

fn seconds(name: &'static str, text: &str) -> Result<Duration, ConfigError> {
    text.trim()
        .parse()
        .map(Duration::from_secs)
        .map_err(|_| invalid(name, "a whole number of seconds", text))
}

fn boolean(name: &'static str, text: &str) -> Result<bool, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, "true or false", text)),
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

    #[test]
    fn bad_numbers_and_booleans_name_the_setting() {
        let base = [("AZURE_CLIENT_ID", CLIENT), ("AZURE_TENANT_ID", "organizations")];
        for (name, value, expected) in [
            (
                "PORT",
                "eighty",
                "PORT must be a port number from 0 to 65535, got \"eighty\"",
            ),
            (
                "PORT",
                "70000",
                "PORT must be a port number from 0 to 65535, got \"70000\"",
            ),
            (
                "LEGACY_SESSIONS",
                "maybe",
                "LEGACY_SESSIONS must be true or false, got \"maybe\"",
            ),
            (
                "HOST",
                "example.com",
                "HOST must be an IP address such as 127.0.0.1 or 0.0.0.0, got \"example.com\"",
            ),
            (
                "LOG_FORMAT",
                "xml",
                "LOG_FORMAT must be human or json, got \"xml\"",
            ),
        ] {
            let mut pairs = base.to_vec();
            pairs.push((name, value));
            assert_eq!(load(&pairs).unwrap_err().to_string(), expected);
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
        let dir = std::env::temp_dir().join(format!("mcp-entra-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("settings.toml");
        std::fs::write(
            &file,
            "port = 9001\nhost = \"127.0.0.1\"\nlegacy_sessions = false\n",
        )
        .unwrap();
        let global = GlobalArgs {
            dev: true,
            config: Some(file.clone()),
            ..GlobalArgs::default()
        };
        let from_file = Settings::from_sources(&global, &ServeArgs::default(), &env(&[])).unwrap();
        assert_eq!(from_file.bind.port(), 9001);
        assert!(!from_file.http.legacy_sessions);
        let from_env =
            Settings::from_sources(&global, &ServeArgs::default(), &env(&[("PORT", "9002")])).unwrap();
        assert_eq!(from_env.bind.port(), 9002);
        let flags = ServeArgs {
            port: Some("9003".into()),
            ..ServeArgs::default()
        };
        let from_flag = Settings::from_sources(&global, &flags, &env(&[("PORT", "9002")])).unwrap();
        assert_eq!(from_flag.bind.port(), 9003);
        std::fs::write(&file, "prot = 9001\n").unwrap();
        let err = Settings::from_sources(&global, &ServeArgs::default(), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_setting_in_the_table_is_read_and_vice_versa() {
        // Each documented setting, set to an unknown-key-proof value, must deserialize into Raw…
        let all: HashMap<String, String> = SETTINGS
            .iter()
            .map(|s| (s.name.to_owned(), "x".to_owned()))
            .collect();
        let merged = merge(&GlobalArgs::default(), &ServeArgs::default(), &all);
        assert!(merged.is_ok(), "a documented setting is not a field of Raw");
        // …and each field of Raw must be documented: a TOML file with every documented key parses,
        // and Raw has no more fields than the table has rows.
        let fields = include_str!("config.rs")
            .split("struct Raw {")
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .unwrap()
            .lines()
            .filter(|l| l.contains(": Option<String>"))
            .count();
        assert_eq!(fields, SETTINGS.len());
    }
}
