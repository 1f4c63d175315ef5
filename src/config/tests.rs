//! The settings rules, one table per kind.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::table::SETTINGS;
use crate::cli::{GlobalArgs, LogFormat, ServeArgs};

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
    // Without PUBLIC_URL (a first run, the local issuer) the resource is a localhost URL that no
    // app registration can hold: nothing to act on, no warning.
    assert_eq!(load(&base).unwrap().resource_mismatch(), None);
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
        (In::Env, "LEGACY_SESSIONS", "maybe", "LEGACY_SESSIONS must be true or false (yes/no, on/off and 1/0 work too), got \"maybe\"".into()),
        (In::Toml, "legacy_sessions", "\"maybe\"", format!("legacy_sessions in {file} must be true or false (yes/no, on/off and 1/0 work too), got \"maybe\"")),
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
        (In::Toml, "azure_required_scopes", "[]", format!("azure_required_scopes in {file} must be at least one scope name such as access_as_user, got \"\"")),
        (In::Env, "AZURE_REQUIRED_SCOPES", ",", "AZURE_REQUIRED_SCOPES must be at least one scope name such as access_as_user, got \"\"".into()),
        (In::Toml, "azure_required_scopes", "[\"api://x/access_as_user\"]", format!("azure_required_scopes in {file} must be short scope names such as access_as_user, not full URIs (the server puts the Application ID URI in front itself): access_as_user, got \"api://x/access_as_user\"")),
        (In::Toml, "tools", "{ whoami = { scope = [\"a\"] } }", format!("tools.whoami in {file} is wrong: unknown field `scope`, expected one of `scopes`, `app_roles`, `rate_limit`, `groups`, `auth_context`")),
        (In::Env, "RATE_LIMIT_PER_ADDRESS", "100 per second", "RATE_LIMIT_PER_ADDRESS must be a rate such as 100/s, 600/min or 50/h, or off, got \"100 per second\"".into()),
        (In::Toml, "rate_limit_per_principal", "100", format!("rate_limit_per_principal in {file} must be a rate such as 100/s, 600/min or 50/h, or off, got 100")),
        (In::Env, "TRUSTED_PROXIES", "10.0.0.0/8, nginx", "TRUSTED_PROXIES must be IP addresses or CIDR blocks such as 10.0.0.0/8 (not /0, which trusts every client), comma-separated, got \"nginx\"".into()),
        (In::Env, "TRUSTED_PROXIES", "0.0.0.0/0", "TRUSTED_PROXIES must be IP addresses or CIDR blocks such as 10.0.0.0/8 (not /0, which trusts every client), comma-separated, got \"0.0.0.0/0\"".into()),
        (In::Env, "TRUSTED_PROXIES_HEADER", "x-real-ip", "TRUSTED_PROXIES_HEADER must be x-forwarded-for or forwarded, got \"x-real-ip\"".into()),
        (In::Env, "RATE_LIMIT_MAX_TRACKED", "0", "RATE_LIMIT_MAX_TRACKED must be greater than zero".into()),
        (In::Env, "REDIS_KEY_PREFIX", "prod:mcp", "REDIS_KEY_PREFIX must be 1 to 64 letters, digits, dots, underscores or hyphens, such as mcp-server-entra-prod, got \"prod:mcp\"".into()),
        (In::Env, "GROUPS_CACHE_SECS", "3601", "GROUPS_CACHE_SECS must be at most 3600 seconds (a user removed from a group keeps access while the answer is cached), got \"3601\"".into()),
        (In::Env, "GROUPS_GRAPH_AUTH", "delegated", "GROUPS_GRAPH_AUTH must be app or on_behalf_of, got \"delegated\"".into()),
        (In::Toml, "implies", "{ \"A\" = [\"A\"] }", "[implies] has a cycle: A → A; a name cannot imply itself, directly or through others".into()),
        (In::Env, "AZURE_B2C_POLICY", "B2C_1 signin", "AZURE_B2C_POLICY must be a user flow or custom policy name such as B2C_1_signupsignin, got \"B2C_1 signin\"".into()),
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
        format!(
            "the configuration file missing.toml does not exist (given with --config; a relative path is read from the working directory, {})",
            std::env::current_dir().unwrap().display()
        )
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
            app_roles: None,
            rate_limit: None,
            ..ToolOverride::default()
        })
    );
    assert_eq!(
        s.tools.get("roll_dice"),
        Some(&ToolOverride {
            scopes: None,
            app_roles: Some(vec!["Dice.Roll".into(), "Admin".into()]),
            rate_limit: None,
            ..ToolOverride::default()
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
            Err("DOWNSTREAM_MANAGED_IDENTITY must be true or false (yes/no, on/off and 1/0 work too), got \"maybe\"".into()),
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
    // As shipped, its placeholder ids are refused; with real ids in the environment (which
    // outranks the file) the rest loads as the defaults.
    let shipped = Settings::from_sources(&global, &ServeArgs::default(), &env(&[]));
    assert!(matches!(shipped, Err(ConfigError::Placeholder { .. })));
    let ids = env(&[("AZURE_CLIENT_ID", CLIENT), ("AZURE_TENANT_ID", CLIENT)]);
    let s = Settings::from_sources(&global, &ServeArgs::default(), &ids).unwrap();
    let AuthSettings::Entra { config, policy } = &s.auth else {
        panic!("the example configures Entra");
    };
    assert_eq!(config.client_id, CLIENT);
    assert_eq!(policy.required_scopes, ["access_as_user"]);
    assert_eq!(s.bind, "127.0.0.1:8000".parse().unwrap());
    // Every setting appears in the example, as a key or a commented-out key.
    let text = include_str!("../../config.example.toml");
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
    let err = Settings::from_sources(&dev, &ServeArgs::default(), &env(&[("HOST", "0.0.0.0")])).unwrap_err();
    assert!(matches!(err, ConfigError::DevNotLoopback { .. }));
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
    fields.retain(|f| f != TOOLS_KEY && f != IMPLIES_KEY);
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

#[test]
fn the_policy_block_names_tenants_issuer_and_audiences() {
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    // (AZURE_TENANT_ID, AZURE_ALLOWED_TENANTS, AZURE_ACCEPT_V1_TOKENS, the first two lines)
    let rows = [
        (tenant, None, "false", [format!("callers: tenant {tenant} only"), format!("tokens: Entra v2.0 access tokens from https://login.microsoftonline.com/{tenant}/v2.0")]),
        ("organizations", Some(tenant), "true", [format!("callers: the tenants {tenant} only (AZURE_ALLOWED_TENANTS)"), "tokens: Entra v2.0 and v1.0 access tokens from https://login.microsoftonline.com/organizations/v2.0".to_owned()]),
        ("common", None, "false", ["callers: any tenant, personal Microsoft accounts included (set AZURE_ALLOWED_TENANTS to name them)".to_owned(), "tokens: Entra v2.0 access tokens from https://login.microsoftonline.com/common/v2.0".to_owned()]),
    ];
    for (tenant_id, allowed, v1, expected) in rows {
        let mut pairs = vec![
            ("AZURE_CLIENT_ID", CLIENT),
            ("AZURE_TENANT_ID", tenant_id),
            ("AZURE_ACCEPT_V1_TOKENS", v1),
        ];
        if let Some(allowed) = allowed {
            pairs.push(("AZURE_ALLOWED_TENANTS", allowed));
        }
        let lines = load(&pairs).unwrap().policy_lines();
        assert_eq!(lines[..2], expected, "{tenant_id}");
        assert_eq!(lines[2], format!("audience: {CLIENT} or api://{CLIENT}"));
    }
}

#[test]
fn only_our_misspelt_names_stop_start_up() {
    // (variable in the environment, the setting it is taken for)
    let rows: [(&str, Option<&str>); 16] = [
        ("AZURE_REQUIRED_SCOPE", Some("AZURE_REQUIRED_SCOPES")),
        ("PUBLICURL", Some("PUBLIC_URL")),
        ("azure_client_id", Some("AZURE_CLIENT_ID")),
        ("port", Some("PORT")),
        ("AZURE_TENANT_IDS", Some("AZURE_TENANT_ID")),
        ("LOGFORMAT", Some("LOG_FORMAT")),
        // Someone else's: the environment is shared.
        ("HTTPS", None),
        ("HTTP", None),
        ("PORT0", None),
        ("HOSTS", None),
        ("HOME", None),
        ("HOSTNAME", None),
        ("AZURE_CLIENT_CERTIFICATE_PASSWORD", None),
        ("AZURE_CONFIG_DIR", None),
        ("AZURE_SUBSCRIPTION_ID", None),
        ("AZURE_USERNAME", None),
    ];
    for (name, expected) in rows {
        let env: HashMap<String, String> = [(name.to_owned(), "x".to_owned())].into();
        let found = super::sources::misspelt_variable(&env).map(|(_, setting)| setting);
        assert_eq!(found, expected, "{name}");
    }
}

#[test]
fn app_role_values_may_hold_a_slash_but_not_a_uri() {
    let base = [("AZURE_CLIENT_ID", CLIENT), ("AZURE_TENANT_ID", "organizations")];
    let with_roles = |roles| load(&[&base[..], &[("AZURE_REQUIRED_APP_ROLES", roles)]].concat());
    assert_eq!(
        with_roles("Tasks/Write").unwrap().policy().required_app_roles,
        ["Tasks/Write"]
    );
    assert!(with_roles("api://x/Tasks.Write").is_err());
}
