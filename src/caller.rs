//! Who is calling: the one place tools learn the verified identity, whatever the transport.

use std::sync::Arc;

use rmcp::model::ErrorData as McpError;
use rmcp::service::RequestContext;
use rmcp::RoleServer;
use transports::audit::ClientAddr;
use transports::trace::McpSpan;
use verifiers::{AccessToken, Identity};

/// The verified caller of the current request.
///
/// Over HTTP the bearer-auth layer puts the identity (an `Arc<Identity>`, shared with the
/// verified-token cache) into the HTTP request's extensions, and rmcp moves the request's
/// `http::request::Parts` into the MCP context. Over stdio the transport puts it into the MCP
/// context directly. Tools call this and need not care which.
pub fn caller(ctx: &RequestContext<RoleServer>) -> Result<&Identity, McpError> {
    shared_caller(ctx).map(|identity| &**identity)
}

/// [`caller`], shared: the `Arc` the verifier returned, for code that keeps the caller past the
/// request context (the audit trail), without copying its claims.
pub fn shared_caller(ctx: &RequestContext<RoleServer>) -> Result<&Arc<Identity>, McpError> {
    ctx.extensions
        .get::<Arc<Identity>>()
        .or_else(|| {
            ctx.extensions
                .get::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Arc<Identity>>())
        })
        // Unreachable through our transports, which authenticate every request; a clear error
        // rather than a panic if someone mounts the server without them.
        .ok_or_else(|| McpError::invalid_request("this request carries no verified caller identity", None))
}

/// The request's MCP server span (when traces are exported): where the transport put it, in
/// the request context (stdio) or in the HTTP request's extensions.
pub fn mcp_span(ctx: &RequestContext<RoleServer>) -> Option<tracing::Span> {
    ctx.extensions
        .get::<McpSpan>()
        .or_else(|| {
            ctx.extensions
                .get::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<McpSpan>())
        })
        .map(|span| span.0.clone())
}

/// The client's address as the HTTP connection saw it; `None` over stdio.
pub fn client_addr(ctx: &RequestContext<RoleServer>) -> Option<ClientAddr> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<ClientAddr>())
        .copied()
}

/// The verified caller, if its token carries the app role `role` in `roles` (a user assigned
/// to the role, or an application granted it); otherwise the same JSON-RPC error a forbidden
/// tool gets (code `-32600`, `data.error` = `insufficient_scope`, `data.missing_roles`), saying
/// how to obtain the role.
///
/// For checks inside a tool, beyond what its declared requirement says (e.g. only admins may
/// pass a certain argument):
///
/// ```ignore
/// let who = require_role(&ctx, "Notes.Admin")?;
/// ```
pub fn require_role<'a>(ctx: &'a RequestContext<RoleServer>, role: &str) -> Result<&'a Identity, McpError> {
    let who = caller(ctx)?;
    if who.has_role(role) {
        return Ok(who);
    }
    let error = verifiers::AuthError::InsufficientScope {
        required: Vec::new(),
        problem: verifiers::ScopeProblem::MissingRoles {
            missing: vec![role.to_owned()],
        },
    };
    let how = if who.app_only {
        "grant it to the calling application (API permissions → Application permissions, then admin consent) and request a new token"
    } else {
        "ask an administrator to assign it to you (Enterprise applications → Users and groups) and sign in again"
    };
    tracing::info!(
        kind = "missing_role",
        role,
        app_only = who.app_only,
        "in-tool check refused the caller"
    );
    Err(crate::access::insufficient_scope(
        format!("this needs the app role {role}, which the token lacks; {how}"),
        None,
        &error,
    ))
}

/// The caller's raw token, opaque, for on-behalf-of calls ([`verifiers::OnBehalfOf`]).
///
/// Both transports put it beside the [`Identity`]; `None` only if the server is mounted without
/// them.
pub fn caller_token(ctx: &RequestContext<RoleServer>) -> Option<&AccessToken> {
    ctx.extensions.get::<AccessToken>().or_else(|| {
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<AccessToken>())
    })
}
