//! A refused tool call as the MCP layer answers it: the JSON-RPC error's message and `data`, and
//! its one log line.

use rmcp::model::{ErrorCode, ErrorData as McpError};
use serde_json::json;
use transports::ToolRefusal;
use verifiers::{AuthError, Identity, ScopeProblem};

/// A tool call refused by [`ToolAccess::check`](super::ToolAccess::check): the tool, what the token lacks, and what to
/// request. Its text is the JSON-RPC error message; it never holds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolDenied {
    /// The tool (one the server has).
    pub tool: String,
    /// What the token lacks and the scope URIs to request.
    pub refusal: ToolRefusal,
    /// Whether the caller is an application (told roles, never delegated scopes).
    pub app_only: bool,
}

impl std::fmt::Display for ToolDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not allowed to call {}: {}", self.tool, self.refusal.error)?;
        let problem = match &self.refusal.error {
            AuthError::InsufficientScope { problem, .. } => Some(problem),
            _ => None,
        };
        match problem {
            Some(ScopeProblem::MissingRoles { .. } | ScopeProblem::MissingAnyRole { .. }) => {
                write!(f, "; then request a new token for {}", self.refusal.scope)
            }
            Some(ScopeProblem::MissingScopes { .. } | ScopeProblem::MissingAnyScope { .. }) => {
                write!(f, "; the scopes to request: {}", self.refusal.scope)
            }
            _ => match &self.refusal.error {
                AuthError::InsufficientClaims { auth_context, .. } => write!(
                    f,
                    " (the claims request: {{\"access_token\":{{\"acrs\":{{\"essential\":true,\"value\":\"{auth_context}\"}}}}}}, base64 in data.claims), then retry with the new token"
                ),
                _ => Ok(()),
            },
        }
    }
}

impl ToolDenied {
    /// The one log line of this refusal (the tool name is one the server has; no token). The
    /// detail the caller is not told (which groups the tool admits) is logged here.
    pub fn log(&self, identity: &Identity) {
        self.refusal.log(&self.tool, identity);
    }
}

impl From<Box<ToolDenied>> for McpError {
    fn from(denied: Box<ToolDenied>) -> McpError {
        McpError::from(*denied)
    }
}

impl From<ToolDenied> for McpError {
    fn from(denied: ToolDenied) -> McpError {
        let message = denied.to_string();
        insufficient_scope(message, Some(&denied.refusal.scope), &denied.refusal.error)
    }
}

/// The JSON-RPC error of every authorization refusal inside the MCP layer (a forbidden tool,
/// or a tool's own check such as `require_role`): code `-32600`
/// (invalid request), the reason as the message, and `data` with `error` (as over HTTP:
/// `insufficient_scope`, `insufficient_claims` with the `claims` to request at sign-in,
/// `access_denied`, or `temporarily_unavailable` with `retry_after_secs`), the `scope` to
/// request (when one helps) and what is missing.
pub(crate) fn insufficient_scope(message: String, scope: Option<&str>, error: &AuthError) -> McpError {
    let label = match error {
        AuthError::InsufficientClaims { .. } => "insufficient_claims",
        AuthError::Forbidden(_) => "access_denied",
        AuthError::Unavailable(_) => "temporarily_unavailable",
        _ => "insufficient_scope",
    };
    let mut data = json!({ "error": label, "reason": error.kind() });
    if let Some(scope) = scope.filter(|s| !s.is_empty()) {
        data["scope"] = json!(scope);
    }
    match error {
        AuthError::InsufficientClaims { auth_context, claims } => {
            data["auth_context"] = json!(auth_context);
            data["claims"] = json!(claims);
        }
        AuthError::Unavailable(reason) => data["retry_after_secs"] = json!(reason.retry_after().as_secs()),
        _ => {}
    }
    if let AuthError::InsufficientScope { problem, .. } = error {
        match problem {
            ScopeProblem::MissingScopes { missing } => data["missing_scopes"] = json!(missing),
            ScopeProblem::MissingAnyScope { any_of } => data["any_of_scopes"] = json!(any_of),
            ScopeProblem::MissingRoles { missing } => data["missing_roles"] = json!(missing),
            ScopeProblem::MissingAnyRole { any_of } => data["any_of_roles"] = json!(any_of),
            _ => {}
        }
    }
    McpError::new(ErrorCode::INVALID_REQUEST, message, Some(data))
}
