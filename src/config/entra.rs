//! The Entra verifier's part of the settings.

use std::time::Duration;

use verifiers::{is_guid, ApplicationIdUri, EntraConfig};

use super::*;

/// The all-zero GUID that `config.example.toml` and the shipped ConfigMap hold.
const PLACEHOLDER_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// `{GUID}` (as some portals and PowerShell print it) → the GUID.
fn braced_guid(value: &str) -> Option<&str> {
    value
        .strip_prefix('{')
        .and_then(|v| v.strip_suffix('}'))
        .filter(|inner| is_guid(inner))
}

/// The mistakes an id setting `name` shares: still the example's placeholder (`what` says what
/// belongs there), or a GUID in braces.
fn copied_id_mistake(raw: &Raw, name: &str, value: &str, what: &'static str) -> Result<(), ConfigError> {
    if value == PLACEHOLDER_GUID {
        return Err(ConfigError::Placeholder {
            name: raw.written(name),
            got: value.to_owned(),
            what,
        });
    }
    if let Some(guid) = braced_guid(value) {
        return Err(raw.invalid(name, format!("a GUID without braces: {guid}"), value));
    }
    Ok(())
}

/// `AZURE_CLIENT_ID`: a GUID, with a message naming the mistake for the usual wrong values.
fn checked_client_id<'a>(raw: &Raw, value: &'a str) -> Result<&'a str, ConfigError> {
    const NAME: &str = "AZURE_CLIENT_ID";
    copied_id_mistake(
        raw,
        NAME,
        value,
        "the Application (client) ID from your app registration's Overview page",
    )?;
    if let Some(guid) = value
        .strip_prefix("api://")
        .map(|rest| rest.trim_end_matches('/'))
        .filter(|rest| is_guid(rest))
    {
        return Err(raw.invalid(
            NAME,
            format!("the bare Application (client) ID, {guid}, not the Application ID URI (an identifier URI other than api://<client-id> goes in AZURE_IDENTIFIER_URI)"),
            value,
        ));
    }
    if !is_guid(value) {
        return Err(raw.invalid(
            NAME,
            "a GUID (the app registration's Application (client) ID)",
            &shown(value),
        ));
    }
    Ok(value)
}

/// `value` as a message may show it: as written when it looks like an identifier (at most 80
/// characters of letters, digits and `-._:/{}`), otherwise only its length, since a value that
/// does not look like an id may be a secret pasted into the wrong setting.
fn shown(value: &str) -> String {
    let id_like = value.len() <= 80
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:/{}".contains(c));
    if id_like {
        value.to_owned()
    } else {
        format!("<{} characters, not shown>", value.chars().count())
    }
}

/// `AZURE_TENANT_ID`: placeholders, braces and authority URLs named; the rest is checked with
/// the Entra settings.
fn checked_tenant<'a>(raw: &Raw, value: &'a str) -> Result<&'a str, ConfigError> {
    const NAME: &str = "AZURE_TENANT_ID";
    copied_id_mistake(
        raw,
        NAME,
        value,
        "the Directory (tenant) ID from your app registration's Overview page (or organizations / common for a multi-tenant app)",
    )?;
    if let Some(url) = url::Url::parse(value)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
    {
        let tenant = url.path_segments().and_then(|mut s| s.next()).unwrap_or_default();
        let expected = if tenant.is_empty() {
            "a tenant GUID, a domain, or organizations / common / consumers, not a URL (the host goes in AZURE_AUTHORITY_HOST)".to_owned()
        } else {
            format!("the tenant alone ({tenant}), not an authority URL (its host goes in AZURE_AUTHORITY_HOST when it is not https://login.microsoftonline.com)")
        };
        return Err(raw.invalid(NAME, expected, value));
    }
    Ok(value)
}

/// `AZURE_IDENTIFIER_URI`, parsed; empty when not set.
pub(super) fn identifier_uris(raw: &Raw) -> Result<Vec<ApplicationIdUri>, ConfigError> {
    let Some(uris) = &raw.azure_identifier_uri else {
        return Ok(Vec::new());
    };
    uris.0
        .iter()
        .map(|uri| {
            ApplicationIdUri::parse(uri).map_err(|_| {
                raw.invalid(
                    "AZURE_IDENTIFIER_URI",
                    "Application ID URIs such as api://<client-id> or https://mcp.contoso.com",
                    uri,
                )
            })
        })
        .collect()
}

pub(super) fn entra_config(raw: &Raw) -> Result<EntraConfig, ConfigError> {
    let client_id = raw.azure_client_id.as_ref().ok_or(ConfigError::Missing {
        name: "AZURE_CLIENT_ID",
        hint: "the Application (client) ID from your app registration's Overview page (or run with --dev to try the server without Azure)",
    })?;
    let tenant = raw.azure_tenant_id.as_ref().ok_or(ConfigError::Missing {
        name: "AZURE_TENANT_ID",
        hint: "the Directory (tenant) ID from your app registration's Overview page, or organizations/common for multi-tenant",
    })?;
    let client_id = checked_client_id(raw, &client_id.0)?;
    let tenant = checked_tenant(raw, &tenant.0)?;
    let mut entra = EntraConfig::new(client_id, tenant);
    // A list: the first is where scopes are advertised, every entry is accepted as audience.
    let mut uris = identifier_uris(raw)?.into_iter();
    if let Some(first) = uris.next() {
        entra.identifier_uri = first;
    }
    entra.additional_identifier_uris = uris.collect();
    entra.authority_host = raw.azure_authority_host.0.clone();
    if let Some(tenants) = &raw.azure_allowed_tenants {
        entra.allowed_tenants = tenants.0.clone();
    }
    entra.accept_v1_tokens = raw.azure_accept_v1_tokens.0;
    entra.app_specific_signing_keys = raw.azure_app_specific_signing_keys.0;
    entra.b2c_policy = raw
        .azure_b2c_policy
        .as_ref()
        .map(|policy| policy.0.trim().to_owned())
        .filter(|policy| !policy.is_empty());
    entra.leeway = raw.azure_clock_leeway_secs.0;
    if entra.leeway > Duration::from_secs(600) {
        return Err(raw.invalid(
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
