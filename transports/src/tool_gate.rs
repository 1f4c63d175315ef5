//! The interface through which a transport asks the server "may this caller call this tool?".
//!
//! The transports know nothing of concrete tools (docs/ARCHITECTURE.md#crates-and-direction): the server that owns them
//! implements [`ToolGate`] and hands it to the transport. The HTTP transport uses it to refuse a
//! forbidden `tools/call` before the MCP layer sees it, with a `403 insufficient_scope` step-up
//! challenge (docs/ARCHITECTURE.md#per-tool-authorization); the server's own handler asks the same gate again, so a call the HTTP
//! layer cannot see in advance (a batch, stdio) is refused by the same rule.

use verifiers::{AccessToken, AuthError, Identity};

/// Who may call which tool, as the server that owns the tools decides.
#[async_trait::async_trait]
pub trait ToolGate: Send + Sync + std::fmt::Debug + 'static {
    /// `Ok(())` when `identity` may call the tool `name`, and for names the server does not
    /// know (the MCP layer answers those with its own error). It runs on every `tools/call`, so
    /// it must be cheap when it can be; it may wait on a bounded lookup (group membership from
    /// Microsoft Graph). `token` is the caller's, for a lookup made on the caller's behalf.
    async fn check_tool(
        &self,
        name: &str,
        identity: &Identity,
        token: Option<&AccessToken>,
    ) -> Result<(), ToolRefusal>;

    /// Counts one call of the tool `name` by `identity` against the tool's own rate limit, if
    /// it has one (`[tools.<name>] rate_limit`). The HTTP transport asks it for every call it
    /// sees in advance (answering `429` with `Retry-After` past the limit) and marks the request
    /// [`ToolCallAdmitted`]; the server's handler asks it for the calls the transport could not
    /// see (a batch, a chunked body). By default no tool is limited.
    ///
    /// # Errors
    /// [`RateLimited`](crate::http::RateLimited) past the limit.
    fn admit_call(&self, name: &str, identity: &Identity) -> Result<(), crate::http::RateLimited> {
        let _ = (name, identity);
        Ok(())
    }
}

/// A request extension: the HTTP transport counted this request's `tools/call` of the named
/// tool against its rate limit ([`ToolGate::admit_call`]), so the handler must not count a call
/// of that tool again (a call of any other name, it must).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCallAdmitted(pub std::sync::Arc<str>);

/// Why a tool call is refused, and what the caller should ask for instead.
///
/// `error` decides the HTTP answer: [`AuthError::InsufficientScope`] a `403` step-up challenge,
/// [`AuthError::InsufficientClaims`] a `401` claims challenge, [`AuthError::Forbidden`] a `403`
/// without one, [`AuthError::Unavailable`] a `503`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRefusal {
    /// What the token lacks: [`AuthError::InsufficientScope`].
    pub error: AuthError,
    /// Full scope URIs to request, space-separated, for the challenge's `scope` (RFC 6750
    /// §3): every scope the call needs for a user, `<identifier-uri>/.default` for an app-only
    /// caller.
    pub scope: String,
    /// What the log line may add that the caller must not see (the groups the tool admits, for a
    /// caller who is in none of them). Never sent.
    pub log_detail: Option<String>,
}

impl ToolRefusal {
    /// The label of this refusal in logs, metrics and the audit trail: `tool_insufficient_scope`
    /// for a missing scope or role, else the error's own kind (`not_in_group`,
    /// `insufficient_claims`, …).
    pub fn reason(&self) -> &'static str {
        match self.error.kind() {
            "insufficient_scope" => "tool_insufficient_scope",
            other => other,
        }
    }

    /// The one log line of refusing `identity` the tool `tool` (a tool the server has, so safe
    /// to log): the reason, the caller's ids and the detail the caller is not told; never a
    /// token.
    pub fn log(&self, tool: &str, identity: &Identity) {
        tracing::info!(
            kind = self.reason(),
            tool,
            tenant = %identity.tenant_id,
            object_id = %identity.object_id,
            app_only = identity.app_only,
            reason = %self.error,
            detail = self.log_detail.as_deref(),
            "tool call refused"
        );
    }
}
