//! The validated settings, and how they are built from the typed sources.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use transports::http::HttpConfig;
use verifiers::{AccessPolicy, ApplicationIdUri, DownstreamConfig, EntraConfig};

use crate::cli::{GlobalArgs, LogFormat, ServeArgs};

use super::*;

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
    /// `rate_limit = "10/min"`: how often one caller (`tid`, `oid`) may call this tool over
    /// HTTP (`N/s`, `N/min`, `N/h`), on top of `RATE_LIMIT_PER_PRINCIPAL`.
    #[serde(default)]
    pub rate_limit: Option<String>,
    /// `groups = [...]`: group object ids; a user must be in one of them (any-of).
    #[serde(default, deserialize_with = "value::optional_list")]
    pub groups: Option<Vec<String>>,
    /// `auth_context = "c1"`: a Conditional Access authentication context the user must have
    /// satisfied (`acrs`), else a claims challenge.
    #[serde(default)]
    pub auth_context: Option<String>,
}

/// Group membership lookups (docs/configuration.md#groups): for users in more groups than fit
/// in a token.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// `AZURE_REQUIRED_GROUPS`: group object ids, a user must be in one for every tool.
    pub required: Vec<String>,
    /// `GROUPS_GRAPH_AUTH`.
    pub graph_auth: verifiers::GraphAuth,
    /// `GROUPS_CACHE_SECS`.
    pub cache_ttl: Duration,
}

/// Downstream calls on the caller's behalf (docs/ARCHITECTURE.md#calling-apis-on-behalf-of-the-caller): present when a server credential is set.
#[derive(Debug, Clone)]
pub struct DownstreamSettings {
    /// The server credential, scopes and cache of the on-behalf-of provider.
    pub config: DownstreamConfig,
    /// `GRAPH_BASE_URL`.
    pub graph_base_url: url::Url,
    /// `DOWNSTREAM_CACHE_KEYS`, when the cache is shared in Redis.
    pub cache_keys: Option<std::sync::Arc<verifiers::TokenCacheKeys>>,
}

/// Redis, for state shared by replicas (`REDIS_URL`). Its `Debug` shows the URL without its
/// password.
#[derive(Clone)]
pub struct RedisSettings {
    /// `REDIS_URL` (holds credentials: never log it; `transports::redis::redacted` does).
    pub url: String,
    /// `REDIS_TIMEOUT_MS`.
    pub timeout: Duration,
    /// `REDIS_KEY_PREFIX`.
    pub key_prefix: String,
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
    /// The Application ID URI (`AZURE_IDENTIFIER_URI`, default `api://<client-id>`): the prefix
    /// of every scope URI a client requests.
    pub identifier_uri: ApplicationIdUri,
    /// Downstream calls, when a server credential is configured.
    pub downstream: Option<DownstreamSettings>,
    /// `TRACES_INCLUDE_USER_NAMES`: spans name the caller by name and username too.
    pub traces_include_user_names: bool,
    /// Group membership: the server-wide groups and how overage is resolved.
    pub groups: GroupSettings,
    /// Redis, when replicas share state.
    pub redis: Option<RedisSettings>,
    /// The settings files read, as `--config <path>` / `--env-file <path>`, for the start-up
    /// log; empty when every setting came from the environment, flags and defaults.
    pub files_read: Vec<String>,
}

impl Settings {
    /// The server-wide authorization policy (`AZURE_REQUIRED_SCOPES`, `AZURE_REQUIRED_APP_ROLES`).
    pub fn policy(&self) -> &AccessPolicy {
        match &self.auth {
            AuthSettings::Entra { policy, .. } | AuthSettings::Dev { policy, .. } => policy,
        }
    }

    /// The authorization policy these settings enforce, one line per rule, for the start-up log:
    /// who issues accepted tokens, for which audience, and what every caller needs.
    pub fn policy_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        match &self.auth {
            AuthSettings::Entra { config, .. } => {
                let tenants = match config.tenant.as_str() {
                    "organizations" | "common" if !config.allowed_tenants.is_empty() => {
                        format!("the tenants {} only (AZURE_ALLOWED_TENANTS)", config.allowed_tenants.join(", "))
                    }
                    "organizations" => "any work or school tenant (set AZURE_ALLOWED_TENANTS to name them)".to_owned(),
                    "common" => "any tenant, personal Microsoft accounts included (set AZURE_ALLOWED_TENANTS to name them)".to_owned(),
                    "consumers" => "personal Microsoft accounts only".to_owned(),
                    tenant => format!("tenant {tenant} only"),
                };
                lines.push(format!("callers: {tenants}"));
                let versions = if config.accept_v1_tokens {
                    "v2.0 and v1.0"
                } else {
                    "v2.0"
                };
                lines.push(format!(
                    "tokens: Entra {versions} access tokens from {}",
                    config.authority()
                ));
                let uris: Vec<&str> = config.identifier_uris().map(ApplicationIdUri::as_str).collect();
                lines.push(format!("audience: {} or {}", config.client_id, uris.join(" or ")));
            }
            AuthSettings::Dev { .. } => {
                lines.push(
                    "callers: the one dev identity (--dev: no token is verified against Entra)".to_owned(),
                );
            }
        }
        let policy = self.policy();
        let scopes: Vec<String> = policy
            .required_scopes
            .iter()
            .map(|s| self.identifier_uri.scope(s))
            .collect();
        lines.push(format!(
            "users need the scopes {} (AZURE_REQUIRED_SCOPES)",
            scopes.join(" and ")
        ));
        lines.push(if policy.required_app_roles.is_empty() {
            "applications (app-only tokens): refused (AZURE_REQUIRED_APP_ROLES is empty)".to_owned()
        } else {
            format!(
                "applications need the app roles {} (AZURE_REQUIRED_APP_ROLES) and request {}",
                policy.required_app_roles.join(" and "),
                self.identifier_uri.default_scope()
            )
        });
        lines
    }

    /// The full URI of the first required scope (`api://<client-id>/access_as_user`): what the
    /// messages that say how to get a token name.
    pub fn first_scope_uri(&self) -> Option<String> {
        let first = self.policy().required_scopes.first()?;
        Some(self.identifier_uri.scope(first))
    }

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
        // Without PUBLIC_URL the resource is a localhost URL no app registration can hold (the
        // local issuer, a first run): nothing to act on yet.
        if !self.public_url_set {
            return None;
        }
        let resource = self.http.resource();
        if config.identifier_uris().any(|uri| uri.matches(&resource)) {
            return None;
        }
        Some(format!(
            "the metadata advertises resource {resource} but the Application ID URI is {}: clients that send the RFC 8707 resource parameter with the scopes get AADSTS9010010 or AADSTS500011 from Entra; add {resource} to the app registration's Application ID URIs (Expose an API; an https URI needs a verified domain) and set AZURE_IDENTIFIER_URI={resource}",
            config
                .identifier_uris()
                .map(ApplicationIdUri::as_str)
                .collect::<Vec<_>>()
                .join(", ")
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

/// The client id `--dev` pretends to have: its Application ID URI is
/// `api://mcp-server-entra-dev` unless `AZURE_IDENTIFIER_URI` is set.
const DEV_CLIENT_ID: &str = "mcp-server-entra-dev";

/// A list of scope or app-role names (`what`) as Entra writes them in `scp` and `roles`: short,
/// one per entry. The two usual mistakes get their own fix: names separated by spaces (as `scp`
/// separates them) and full URIs (a name containing `uri_marker`).
fn check_names(
    raw: &Raw,
    name: &str,
    names: &[String],
    what: &str,
    uri_marker: &str,
) -> Result<(), ConfigError> {
    if let Some(bad) = names.iter().find(|n| n.contains(char::is_whitespace)) {
        let fixed = names
            .iter()
            .flat_map(|n| n.split_whitespace())
            .collect::<Vec<_>>()
            .join(",");
        return Err(raw.invalid(
            name,
            format!("{what}, separated by commas, not spaces (a token's scp separates them with spaces; this setting is a list): {fixed}"),
            bad,
        ));
    }
    if let Some(bad) = names.iter().find(|n| n.contains(uri_marker)) {
        let short = bad.rsplit('/').next().unwrap_or_default();
        return Err(raw.invalid(
            name,
            format!("short {what}, not full URIs (the server puts the Application ID URI in front itself): {short}"),
            bad,
        ));
    }
    Ok(())
}

pub(super) fn validate(raw: Raw, dev: bool) -> Result<Settings, ConfigError> {
    let port = raw.port.0;
    let host = raw.host.0;
    if dev && !host.is_loopback() {
        return Err(ConfigError::DevNotLoopback {
            setting: raw.written("HOST"),
            host,
        });
    }
    let public_url_set = raw.public_url.is_some();
    let public_url = match &raw.public_url {
        Some(url) => url.0.clone(),
        None => url::Url::parse(&format!("http://localhost:{port}")).map_err(|_| {
            raw.invalid(
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
        return Err(raw.invalid(
            "AZURE_REQUIRED_SCOPES",
            "at least one scope name such as access_as_user",
            "",
        ));
    }
    check_names(
        &raw,
        "AZURE_REQUIRED_SCOPES",
        &scopes,
        "scope names such as access_as_user",
        "/",
    )?;
    let app_roles = raw.azure_required_app_roles.clone().unwrap_or_default().0;
    // An app role's value may hold `/` (Entra allows it); only a URI is a mistake there.
    check_names(
        &raw,
        "AZURE_REQUIRED_APP_ROLES",
        &app_roles,
        "app role names such as Mcp.Invoke",
        "://",
    )?;
    if let Some(list) = &raw.mcp_dev_scopes {
        check_names(&raw, "MCP_DEV_SCOPES", &list.0, "scope names", "/")?;
    }
    if let Some(list) = &raw.mcp_dev_roles {
        check_names(&raw, "MCP_DEV_ROLES", &list.0, "app role names", "://")?;
    }
    let mut policy = AccessPolicy::scopes(scopes.clone()).with_app_roles(app_roles);
    policy.implications = verifiers::Implications::new(
        raw.implies
            .iter()
            .map(|(name, implied)| (name.clone(), implied.0.clone())),
    )?;

    let (auth, identifier_uri, authorization_servers) = if dev {
        let identifier = super::entra::identifier_uris(&raw)?
            .into_iter()
            .next()
            .unwrap_or_else(|| ApplicationIdUri::for_client_id(DEV_CLIENT_ID));
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
    http.identifier_uri = Some(identifier_uri.clone());
    http.scopes = scopes.iter().map(|s| identifier_uri.scope(s)).collect();
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
    http.rate_limit_per_address = raw.rate_limit_per_address.0;
    http.rate_limit_per_principal = raw.rate_limit_per_principal.0;
    http.rate_limit_max_tracked = raw.rate_limit_max_tracked.0;
    let proxies = raw.trusted_proxies.as_ref().map_or(&[][..], |list| &list.0[..]);
    http.trusted_proxies = transports::http::TrustedProxies::parse(proxies, raw.trusted_proxies_header.0)
        .map_err(|error| {
            raw.invalid(
                "TRUSTED_PROXIES",
                "IP addresses or CIDR blocks such as 10.0.0.0/8 (not /0, which trusts every client), comma-separated",
                &error.0,
            )
        })?;
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
            raw.invalid(
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
        traces_include_user_names: raw.traces_include_user_names.0,
        redis: redis_settings(&raw)?,
        groups: GroupSettings {
            required: raw.azure_required_groups.clone().unwrap_or_default().0,
            graph_auth: raw.groups_graph_auth.0,
            cache_ttl: checked_group_cache_ttl(&raw)?,
        },
        tools: raw.tools,
        identifier_uri,
        files_read: Vec::new(),
    })
}

/// `GROUPS_CACHE_SECS`, at most an hour: a user removed from a group keeps access while the
/// cached answer lives.
fn checked_group_cache_ttl(raw: &Raw) -> Result<Duration, ConfigError> {
    let ttl = raw.groups_cache_secs.0;
    if ttl > verifiers::MAX_GROUP_CACHE_TTL {
        return Err(raw.invalid(
            "GROUPS_CACHE_SECS",
            "at most 3600 seconds (a user removed from a group keeps access while the answer is cached)",
            &ttl.as_secs().to_string(),
        ));
    }
    Ok(ttl)
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &transports::redis::redacted(&self.url))
            .field("timeout", &self.timeout)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// `REDIS_URL` and `REDIS_TIMEOUT_MS`, checked.
fn redis_settings(raw: &Raw) -> Result<Option<RedisSettings>, ConfigError> {
    let key_prefix = raw.redis_key_prefix.0.trim().to_owned();
    let prefix_ok = !key_prefix.is_empty()
        && key_prefix.len() <= 64
        && key_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !prefix_ok {
        return Err(raw.invalid(
            "REDIS_KEY_PREFIX",
            "1 to 64 letters, digits, dots, underscores or hyphens, such as mcp-server-entra-prod",
            &key_prefix,
        ));
    }
    let Some(url) = raw
        .redis_url
        .as_ref()
        .map(|u| u.0.trim())
        .filter(|u| !u.is_empty())
    else {
        return Ok(None);
    };
    let scheme_ok =
        url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "redis" | "rediss" | "redis+unix" | "unix"));
    if !scheme_ok {
        return Err(raw.invalid(
            "REDIS_URL",
            "a redis://, rediss:// or redis+unix:// URL such as rediss://:<password>@<host>:6380",
            &transports::redis::redacted(url),
        ));
    }
    if raw.session_id_prefix.as_ref().is_some_and(|p| !p.0.is_empty()) {
        return Err(ConfigError::PrefixWithRedis);
    }
    let millis = raw.redis_timeout_ms.0;
    if !(1..=60_000).contains(&millis) {
        return Err(raw.invalid(
            "REDIS_TIMEOUT_MS",
            "from 1 to 60000 milliseconds",
            &millis.to_string(),
        ));
    }
    Ok(Some(RedisSettings {
        url: url.to_owned(),
        timeout: Duration::from_millis(millis as u64),
        key_prefix,
    }))
}
