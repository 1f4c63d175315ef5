//! RFC 9728 OAuth 2.0 Protected Resource Metadata.

use bytes::Bytes;
use serde::Serialize;
use verifiers::TokenVerifier;

use super::HttpConfig;

/// The document served at `/.well-known/oauth-protected-resource/mcp`: tells a client that tokens
/// for this resource come from Entra, and which scopes to ask for.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProtectedResourceMetadata {
    /// The protected resource: `<PUBLIC_URL>/mcp` (or `<PUBLIC_URL>` for the root document, see
    /// [`HttpConfig::metadata_documents`]).
    pub resource: String,
    /// Issuer identifiers of the authorization servers tokens come from (RFC 9728 §2): the
    /// issuer Entra's OpenID metadata states once the verifier has loaded it (see
    /// [`TokenVerifier::authorization_server`]), else the configured authority.
    pub authorization_servers: Vec<String>,
    /// Full scope URIs a client should request.
    pub scopes_supported: Vec<String>,
    /// Always `["header"]`: tokens are accepted only in the `Authorization` header.
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name.
    pub resource_name: String,
}

impl ProtectedResourceMetadata {
    /// The document for `config`'s MCP endpoint, with the configured authorization servers.
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

/// Every metadata path the server answers, rendered on request so that `authorization_servers`
/// follows what the verifier has discovered.
#[derive(Debug, Clone)]
pub(crate) struct MetadataDocuments {
    template: ProtectedResourceMetadata,
    /// Path → `resource`.
    paths: Vec<(String, String)>,
}

impl MetadataDocuments {
    pub(crate) fn new(config: &HttpConfig) -> Self {
        MetadataDocuments {
            template: ProtectedResourceMetadata::from_config(config),
            paths: config.metadata_documents(),
        }
    }

    /// The JSON document served at `path`, if `path` is a metadata path.
    pub(crate) fn render(&self, path: &str, verifier: &dyn TokenVerifier) -> Option<Bytes> {
        let (_, resource) = self.paths.iter().find(|(p, _)| p == path)?;
        let mut document = self.template.clone();
        document.resource = resource.clone();
        if let Some(issuer) = verifier.authorization_server() {
            document.authorization_servers = vec![issuer];
        }
        serde_json::to_vec(&document).ok().map(Bytes::from)
    }
}
