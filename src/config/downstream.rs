//! The server credential for on-behalf-of calls (`my_profile`).

use verifiers::{
    ClientCredential, DownstreamConfig, DownstreamConfigError, ManagedIdentityEndpoint, IMDS_TOKEN_ENDPOINT,
};

use super::value::Text;

use super::*;

/// The server credential chosen by which settings are set: none (no downstream calls), or
/// exactly one kind. Files are read and checked now, so a bad one stops start-up.
pub(super) fn downstream_settings(raw: &Raw, dev: bool) -> Result<Option<DownstreamSettings>, ConfigError> {
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
        [one]
            if raw
                .azure_b2c_policy
                .as_ref()
                .is_some_and(|p| !p.0.trim().is_empty()) =>
        {
            return Err(ConfigError::B2cDownstream(one))
        }
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
        return Err(raw.invalid(
            "GRAPH_BASE_URL",
            "an https:// URL such as https://graph.microsoft.com (http:// only for loopback)",
            graph_base_url.as_str(),
        ));
    }
    // Tokens go to Redis only encrypted, under the operator's keys.
    let redis = raw.redis_url.as_ref().is_some_and(|u| !u.0.trim().is_empty());
    let cache_keys = match (redis, &raw.downstream_cache_keys) {
        (false, None) => None,
        (false, Some(_)) => return Err(ConfigError::CacheKeysWithoutRedis),
        (true, None) => return Err(ConfigError::RedisWithoutCacheKeys),
        (true, Some(keys)) => Some(std::sync::Arc::new(
            verifiers::TokenCacheKeys::parse(&keys.0).map_err(ConfigError::CacheKeys)?,
        )),
    };
    Ok(Some(DownstreamSettings {
        config,
        graph_base_url,
        cache_keys,
    }))
}

pub(super) fn managed_identity(raw: &Raw) -> Result<ClientCredential, ConfigError> {
    let local_url = |name: &'static str, text: &str| {
        url::Url::parse(text.trim())
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| raw.invalid(name, "an http:// URL", text))
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
