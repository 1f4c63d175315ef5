//! The Application ID URI: one value, normalised once.

use std::fmt;

use thiserror::Error;

use crate::guid::is_guid;

/// An app registration's Application ID URI (`AZURE_IDENTIFIER_URI`): the prefix of every scope
/// a client requests for this API, and an accepted audience.
///
/// Normalised once, when parsed: surrounding whitespace and trailing `/` removed, and the GUID
/// of an `api://<GUID>[/…]` URI in lower case (GUIDs compare case-insensitively, RFC 4122 §3,
/// and Entra writes them in lower case in `aud`). Any other part is kept as written: Entra
/// compares Application ID URIs as strings. See
/// <https://learn.microsoft.com/entra/identity-platform/reference-app-manifest#identifieruris-attribute>.
///
/// ```
/// use verifiers::ApplicationIdUri;
///
/// let uri = ApplicationIdUri::parse(" api://11111111-2222-3333-4444-55555555555A/ ").unwrap();
/// assert_eq!(uri.as_str(), "api://11111111-2222-3333-4444-55555555555a");
/// assert_eq!(uri.scope("access_as_user"), "api://11111111-2222-3333-4444-55555555555a/access_as_user");
/// assert_eq!(uri.default_scope(), "api://11111111-2222-3333-4444-55555555555a/.default");
/// assert!(uri.matches("api://11111111-2222-3333-4444-55555555555a/"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApplicationIdUri(String);

/// An Application ID URI that is empty (or only whitespace and slashes).
#[derive(Debug, Error, PartialEq, Eq)]
#[error("AZURE_IDENTIFIER_URI must not be empty (it defaults to api://<client-id>)")]
pub struct EmptyApplicationIdUri;

impl ApplicationIdUri {
    /// `uri` normalised (see the type's documentation).
    ///
    /// # Errors
    /// [`EmptyApplicationIdUri`] when nothing is left after trimming.
    pub fn parse(uri: &str) -> Result<Self, EmptyApplicationIdUri> {
        let trimmed = uri.trim().trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(EmptyApplicationIdUri);
        }
        let normalised = match trimmed.strip_prefix("api://") {
            Some(rest) => {
                let guid_end = rest.find('/').unwrap_or(rest.len());
                let (guid, path) = rest.split_at(guid_end);
                if is_guid(guid) {
                    format!("api://{}{path}", guid.to_ascii_lowercase())
                } else {
                    trimmed.to_owned()
                }
            }
            None => trimmed.to_owned(),
        };
        Ok(ApplicationIdUri(normalised))
    }

    /// Entra's default Application ID URI of an app registration: `api://<client-id>` (the
    /// client id in lower case when it is a GUID).
    pub fn for_client_id(client_id: &str) -> Self {
        let client_id = if is_guid(client_id) {
            client_id.to_ascii_lowercase()
        } else {
            client_id.to_owned()
        };
        ApplicationIdUri(format!("api://{client_id}"))
    }

    /// The URI, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The full URI of the scope `name` (`access_as_user` → `api://…/access_as_user`): what a
    /// client requests, and what 401/403 challenges name.
    pub fn scope(&self, name: &str) -> String {
        format!("{}/{name}", self.0)
    }

    /// `<uri>/.default`: the only scope an app-only (client-credentials) caller can request
    /// (<https://learn.microsoft.com/entra/identity-platform/scopes-oidc#the-default-scope>).
    pub fn default_scope(&self) -> String {
        self.scope(".default")
    }

    /// `true` when `aud` (or an RFC 8707 `resource`) names this URI, a trailing slash ignored:
    /// Entra writes the URI as the client requested it, and `https://api.contoso.com/mcp/` is the
    /// same registration as `https://api.contoso.com/mcp`.
    pub fn matches(&self, aud: &str) -> bool {
        aud.trim_end_matches('/') == self.0
    }
}

impl fmt::Display for ApplicationIdUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ApplicationIdUri {
    type Err = EmptyApplicationIdUri;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ApplicationIdUri::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPPER: &str = "ABCDEF00-2222-3333-4444-555555555555";
    const LOWER: &str = "abcdef00-2222-3333-4444-555555555555";

    #[test]
    fn normalised_once() {
        // (written, normalised or None for refused)
        let rows: [(String, Option<String>); 8] = [
            (format!("api://{UPPER}"), Some(format!("api://{LOWER}"))),
            (
                format!("api://{UPPER}/Scope.Path/"),
                Some(format!("api://{LOWER}/Scope.Path")),
            ),
            (
                " https://Contoso.example/API/ ".into(),
                Some("https://Contoso.example/API".into()),
            ),
            ("api://Not-A-Guid".into(), Some("api://Not-A-Guid".into())),
            ("urn:contoso:mcp".into(), Some("urn:contoso:mcp".into())),
            ("".into(), None),
            ("  ".into(), None),
            ("///".into(), None),
        ];
        for (written, expected) in rows {
            let parsed = ApplicationIdUri::parse(&written)
                .ok()
                .map(|u| u.as_str().to_owned());
            assert_eq!(parsed, expected, "{written:?}");
        }
    }

    #[test]
    fn scopes_and_audiences() {
        let uri = ApplicationIdUri::for_client_id(UPPER);
        assert_eq!(uri.as_str(), format!("api://{LOWER}"));
        assert_eq!(uri.scope("Notes.Read"), format!("api://{LOWER}/Notes.Read"));
        assert_eq!(uri.default_scope(), format!("api://{LOWER}/.default"));
        assert!(uri.matches(&format!("api://{LOWER}")));
        assert!(uri.matches(&format!("api://{LOWER}/")));
        assert!(!uri.matches(&format!("api://{LOWER}/x")));
        assert!(!uri.matches(""));
    }
}
