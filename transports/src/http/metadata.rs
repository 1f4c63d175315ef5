//! RFC 9728 OAuth 2.0 Protected Resource Metadata.

use serde::Serialize;

use super::HttpConfig;

/// The document served at `/.well-known/oauth-protected-resource/mcp`: tells a client that tokens
/// for this resource come from Entra, and which scopes to ask for.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProtectedResourceMetadata {
    /// The protected resource: `<PUBLIC_URL>/mcp`.
    pub resource: String,
    /// Where tokens come from: `<authority>/<tenant>/v2.0`.
    pub authorization_servers: Vec<String>,
    /// Full scope URIs a client should request.
    pub scopes_supported: Vec<String>,
    /// Always `["header"]`: tokens are accepted only in the `Authorization` header.
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name.
    pub resource_name: String,
}

impl ProtectedResourceMetadata {
    /// The document for `config`.
    pub fn from_config(config: &HttpConfig) -> Self {
        ProtectedResourceMetadata {
            resource: config.resource(),
            authorization_servers: config.authorization_servers.clone(),
            scopes_supported: config.scopes.clone(),
            bearer_methods_supported: vec!["header".to_owned()],
            resource_name: config.resource_name.clone(),
        }
    }
}
