//! The Entra verifier's part of the settings.

use std::time::Duration;

use verifiers::{ApplicationIdUri, EntraConfig};

use super::*;

/// `AZURE_IDENTIFIER_URI`, parsed; empty when not set.
pub(super) fn identifier_uris(raw: &Raw) -> Result<Vec<ApplicationIdUri>, ConfigError> {
    let Some(uris) = &raw.azure_identifier_uri else {
        return Ok(Vec::new());
    };
    uris.0
        .iter()
        .map(|uri| {
            ApplicationIdUri::parse(uri).map_err(|_| {
                invalid(
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
    let mut entra = EntraConfig::new(client_id.0.as_str(), tenant.0.as_str());
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
