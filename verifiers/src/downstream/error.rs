//! Why a downstream call failed, in words a person can act on.

use thiserror::Error;

use super::credential::{CredentialConfigError, CredentialError};

/// A downstream setting that cannot work, found at start-up.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DownstreamConfigError {
    /// The server's own credential is misconfigured.
    #[error(transparent)]
    Credential(#[from] CredentialConfigError),
    /// No downstream scope, or one with spaces.
    #[error("the downstream scopes must be full scope URIs such as https://graph.microsoft.com/User.Read, without spaces; got {0:?}")]
    BadScopes(String),
}

/// Why the server could not call a downstream API as the caller. The text is meant for the
/// caller (as a tool error): it says what happened and who can fix it, and never holds a token.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DownstreamError {
    /// An app-only token (client credentials) has no user to act for.
    #[error("this tool acts on behalf of a signed-in user, but the caller's token is an application's own (app-only) token; call it with a delegated token obtained by a user sign-in")]
    AppOnlyCaller,
    /// The caller's token has no `oid` (or no `tid`): tokens are cached per (tenant, object id),
    /// and `sub` is never a stand-in (it could equal another user's `oid`).
    #[error("this tool acts on behalf of a signed-in user identified by tenant (tid) and object id (oid), but the caller's token has no oid claim; sign in again to get a token from Microsoft Entra ID")]
    NoObjectId,
    /// AADSTS65001: nobody consented to this server calling the downstream API for the user.
    #[error("consent is missing (AADSTS65001): the user or an administrator has not consented to this server calling {scopes} on the user's behalf. An administrator of tenant {tenant} can grant it: Entra admin center > App registrations > the app {client_id} > API permissions > add the delegated permission(s) {scopes} > Grant admin consent (or the user consents by signing in to the client again)")]
    ConsentRequired {
        /// The downstream scopes asked for.
        scopes: String,
        /// The server's app registration (`AZURE_CLIENT_ID`).
        client_id: String,
        /// The caller's tenant.
        tenant: String,
    },
    /// Conditional access (MFA, device compliance, …) or continuous access evaluation wants the
    /// user to sign in again, possibly with extra claims.
    #[error("{} (interaction_required): the user must sign in again{}, then retry with the new token", origin, claims.as_deref().map(|c| format!(" requesting these claims (pass them as the claims parameter of the sign-in): {c}")).unwrap_or_default())]
    InteractionRequired {
        /// Who asked: Entra, or the downstream API.
        origin: &'static str,
        /// The claims challenge (JSON), when there is one.
        claims: Option<String>,
    },
    /// Entra refused the exchange for another reason.
    #[error("Entra refused the on-behalf-of exchange with HTTP {status}: {error}{}", code.map(|c| format!(" (AADSTS{c})")).unwrap_or_default())]
    ExchangeRefused {
        /// The HTTP status.
        status: u16,
        /// Entra's `error` code (`invalid_grant`, `unauthorized_client`, …).
        error: String,
        /// The first AADSTS number of `error_codes`.
        code: Option<u64>,
    },
    /// The server's own credential failed: a server-side problem for its administrator.
    #[error("the server could not prove its own identity to Entra ({0}); its administrator must check the server's credential")]
    Credential(#[source] CredentialError),
    /// Entra or the downstream API did not answer (or not in time).
    #[error("{what} did not answer{}; try again later", if source.is_timeout() { " in time" } else { "" })]
    Unreachable {
        /// `Entra's token endpoint` or `the downstream API`.
        what: &'static str,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// Entra or the downstream API sent something that is not the expected JSON.
    #[error("{0} sent an answer that is not the expected JSON")]
    BadResponse(&'static str),
    /// The downstream API refused the call.
    #[error("the downstream API answered HTTP {status}: {}", status_meaning(*status))]
    DownstreamStatus {
        /// The HTTP status.
        status: u16,
    },
}

fn status_meaning(status: u16) -> &'static str {
    match status {
        401 => "Unauthorized — it did not accept the on-behalf-of token (the token was revoked, or the API expects other scopes than the ones configured)",
        403 => "Forbidden — the signed-in user, or this app's delegated permissions, do not allow this request",
        404 => "Not Found — the resource does not exist for this user",
        429 => "Too Many Requests — the API is throttling; try again later",
        500..=599 => "the API failed; try again later",
        _ => "the request was not accepted",
    }
}

impl DownstreamError {
    /// `true` when the fault is the server's (its credential, or Entra refusing the server's own
    /// exchange): the caller can do nothing about it, and the detail (file paths, AADSTS codes of
    /// the app registration) is for the administrator's log only.
    pub fn is_server_side(&self) -> bool {
        matches!(
            self,
            DownstreamError::Credential(_) | DownstreamError::ExchangeRefused { .. }
        )
    }

    /// What the caller is told: the error itself when the caller can act on it, otherwise one
    /// sentence with `correlation_id`, the id under which the server logged the detail.
    pub fn caller_message(&self, correlation_id: &str) -> String {
        if self.is_server_side() {
            format!("the server's credential for calls on your behalf is not working; its administrator can find the cause in the server log under correlation id {correlation_id}")
        } else {
            self.to_string()
        }
    }

    /// A short, stable name of the kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DownstreamError::AppOnlyCaller => "app_only_caller",
            DownstreamError::NoObjectId => "no_object_id",
            DownstreamError::ConsentRequired { .. } => "consent_required",
            DownstreamError::InteractionRequired { .. } => "interaction_required",
            DownstreamError::ExchangeRefused { .. } => "exchange_refused",
            DownstreamError::Credential(_) => "server_credential",
            DownstreamError::Unreachable { .. } => "unreachable",
            DownstreamError::BadResponse(_) => "bad_response",
            DownstreamError::DownstreamStatus { .. } => "downstream_status",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn the_caller_learns_the_servers_faults_only_as_a_correlation_id() {
        let path = PathBuf::from("/var/run/secrets/azure/tokens/azure-identity-token");
        // (error, what the caller may read, what it must not)
        let rows: Vec<(DownstreamError, &str, &str)> = vec![
            (
                DownstreamError::Credential(CredentialError::EmptyFederatedToken(path)),
                "correlation id abc123",
                "/var/run/secrets",
            ),
            (
                DownstreamError::ExchangeRefused {
                    status: 400,
                    error: "unauthorized_client".into(),
                    code: Some(700016),
                },
                "correlation id abc123",
                "AADSTS700016",
            ),
            (
                DownstreamError::AppOnlyCaller,
                "delegated token",
                "correlation id",
            ),
            (DownstreamError::NoObjectId, "no oid claim", "correlation id"),
            (
                DownstreamError::DownstreamStatus { status: 404 },
                "HTTP 404",
                "correlation id",
            ),
        ];
        for (error, shown, hidden) in rows {
            let message = error.caller_message("abc123");
            assert!(message.contains(shown), "{message}");
            assert!(!message.contains(hidden), "{message}");
            // The log keeps the detail.
            assert!(!error.to_string().is_empty());
        }
    }
}
