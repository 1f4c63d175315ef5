//! The sources of settings and their precedence: built-in defaults < the `--config` TOML file <
//! the `--env-file` file < the environment < flags. Only files named on the command line are read.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::table::SETTINGS;
use super::value::{
    AbsoluteUrl, Count, Flag, Format, GroupsGraphAuth, Host, List, Port, ProxyHeader, RateValue, Secs, Text,
};
use crate::cli::{GlobalArgs, ServeArgs};

use super::*;

/// Settings as the sources give them, typed. One field per row of [`SETTINGS`] (its name in lower
/// case), plus `tools` and `implies`. A field is `Option` exactly when its row has no default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub(super) azure_client_id: Option<Text>,
    pub(super) azure_tenant_id: Option<Text>,
    pub(super) azure_required_scopes: List,
    pub(super) azure_identifier_uri: Option<List>,
    pub(super) azure_authority_host: AbsoluteUrl,
    pub(super) azure_allowed_tenants: Option<List>,
    pub(super) azure_required_app_roles: Option<List>,
    pub(super) azure_required_groups: Option<List>,
    pub(super) azure_accept_v1_tokens: Flag,
    pub(super) azure_app_specific_signing_keys: Flag,
    pub(super) azure_b2c_policy: Option<Text>,
    pub(super) azure_clock_leeway_secs: Secs,
    pub(super) azure_key_refresh_secs: Secs,
    pub(super) azure_key_min_refresh_secs: Secs,
    pub(super) azure_token_cache_entries: Count,
    pub(super) azure_token_cache_bytes: Count,
    pub(super) public_url: Option<AbsoluteUrl>,
    pub(super) host: Host,
    pub(super) port: Port,
    pub(super) allowed_hosts: Option<List>,
    pub(super) allowed_origins: Option<List>,
    pub(super) max_body_bytes: Count,
    pub(super) legacy_sessions: Flag,
    pub(super) session_idle_timeout_secs: Secs,
    pub(super) max_sessions: Count,
    pub(super) session_id_prefix: Option<Text>,
    pub(super) max_connections: Count,
    pub(super) header_read_timeout_secs: Secs,
    pub(super) connection_idle_timeout_secs: Secs,
    pub(super) sse_retention_secs: Secs,
    pub(super) sse_retention_bytes: Count,
    pub(super) request_body_timeout_secs: Secs,
    pub(super) http2: Flag,
    pub(super) http2_keepalive_secs: Secs,
    pub(super) max_sessions_per_principal: Count,
    pub(super) max_streams_per_principal: Count,
    pub(super) rate_limit_per_address: RateValue,
    pub(super) rate_limit_per_principal: RateValue,
    pub(super) rate_limit_max_tracked: Count,
    pub(super) trusted_proxies: Option<List>,
    pub(super) trusted_proxies_header: ProxyHeader,
    pub(super) shutdown_timeout_secs: Secs,
    pub(super) metrics_addr: Option<Text>,
    pub(super) log_format: Format,
    pub(super) traces_include_user_names: Flag,
    pub(super) mcp_dev_token: Option<Text>,
    pub(super) mcp_dev_scopes: Option<List>,
    pub(super) mcp_dev_roles: Option<List>,
    pub(super) mcp_access_token: Option<Text>,
    pub(super) mcp_access_token_file: Option<Text>,
    pub(super) mcp_access_token_command: Option<Text>,
    pub(super) mcp_access_token_command_timeout_secs: Secs,
    pub(super) azure_client_secret: Option<Text>,
    pub(super) azure_client_certificate_path: Option<Text>,
    pub(super) azure_federated_token_file: Option<Text>,
    pub(super) downstream_managed_identity: Flag,
    pub(super) azure_managed_identity_client_id: Option<Text>,
    pub(super) identity_endpoint: Option<Text>,
    pub(super) identity_header: Option<Text>,
    pub(super) azure_pod_identity_authority_host: Option<Text>,
    pub(super) downstream_scopes: List,
    pub(super) graph_base_url: AbsoluteUrl,
    pub(super) groups_graph_auth: GroupsGraphAuth,
    pub(super) groups_cache_secs: Secs,
    pub(super) redis_url: Option<Text>,
    pub(super) redis_timeout_ms: Count,
    pub(super) redis_key_prefix: Text,
    pub(super) downstream_cache_keys: Option<List>,
    #[serde(default)]
    pub(super) tools: HashMap<String, ToolOverride>,
    /// `[implies]`: scope or app role → the names it implies.
    #[serde(default)]
    pub(super) implies: std::collections::BTreeMap<String, List>,
    /// Each setting (lower-case key) as the source that set it writes it, for messages.
    #[serde(skip)]
    pub(super) written: HashMap<String, String>,
}

impl Raw {
    /// The setting `name` (upper case, as in the table) as its source wrote it: `HOST`,
    /// `host in settings.toml`, `HOST in app.env` or `--host`.
    pub(super) fn written(&self, name: &str) -> String {
        self.written
            .get(&name.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| name.to_owned())
    }

    /// The setting `name` has a value of the wrong shape: `expected` says what it must be.
    pub(super) fn invalid(&self, name: &str, expected: impl Into<String>, got: &str) -> ConfigError {
        ConfigError::Invalid {
            name: self.written(name),
            expected: expected.into(),
            got: got.to_owned(),
        }
    }
}

/// An environment variable that is a setting's name in another case, or within two edits of a
/// setting name of 10 characters or more: `(variable, setting)`, the first in name order. Short
/// names are matched only by case, because the environment is shared: `HTTPS` (Node tooling),
/// `PORT0` (Marathon) or `HOSTS` are someone else's, while `AZURE_REQUIRED_SCOPE` and
/// `PUBLICURL` are ours misspelt.
pub(super) fn misspelt_variable(env: &HashMap<String, String>) -> Option<(String, &'static str)> {
    let mut names: Vec<&String> = env
        .keys()
        .filter(|name| !SETTINGS.iter().any(|s| s.name == name.as_str()))
        .collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let upper = name.to_ascii_uppercase();
        SETTINGS
            .iter()
            .map(|s| s.name)
            .filter(|setting| {
                upper == *setting || (setting.len() >= 10 && edit_distance(&upper, setting) <= 2)
            })
            .min_by_key(|setting| edit_distance(&upper, setting))
            .map(|setting| (name.clone(), setting))
    })
}

/// Where a key's value came from: the highest-precedence source that sets it.
pub(super) enum Source<'a> {
    Flag,
    Environment,
    EnvFile(&'a Path),
    File(&'a Path),
    Default,
}

/// Merges the sources into typed [`Raw`] settings.
pub(super) fn merge(
    global: &GlobalArgs,
    serve: &ServeArgs,
    env: &HashMap<String, String>,
) -> Result<Raw, ConfigError> {
    if let Some((name, setting)) = misspelt_variable(env) {
        return Err(ConfigError::MisspeltVariable { name, setting });
    }
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
    let mut raw = builder
        .build()
        .and_then(|c| c.try_deserialize::<Raw>())
        .map_err(|cause| value_error(cause, &source_of))?;
    raw.written = SETTINGS
        .iter()
        .map(|s| {
            let key = s.name.to_ascii_lowercase();
            let written = match source_of(&key) {
                // A default is named as the variable that would change it.
                Source::Default => s.name.to_owned(),
                source => written_name(&key, &source),
            };
            (key, written)
        })
        .collect();
    Ok(raw)
}

/// The `--config` file, parsed, and its top-level keys, checked against the settings.
pub(super) fn read_file(path: &Path) -> Result<(config::Config, Vec<String>), ConfigError> {
    if !path.exists() {
        return Err(ConfigError::FileMissing(path.to_owned()));
    }
    if path.is_dir() {
        return Err(ConfigError::NotAFile {
            flag: "--config",
            path: path.to_owned(),
            example: "a TOML file such as config.example.toml",
        });
    }
    let file = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .build()
        .map_err(|cause| unreadable(path, cause))?;
    let keys = config::Source::collect(&file).map_err(|cause| unreadable(path, cause))?;
    let names: Vec<String> = SETTINGS
        .iter()
        .map(|s| s.name.to_ascii_lowercase())
        .chain([TOOLS_KEY.to_owned(), IMPLIES_KEY.to_owned()])
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
pub(super) fn read_env_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    if path.is_dir() {
        return Err(ConfigError::NotAFile {
            flag: "--env-file",
            path: path.to_owned(),
            example: "NAME=value lines, as in .env.example",
        });
    }
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

/// Levenshtein distance, for "did you mean" on a mistyped key.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
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
