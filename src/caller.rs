//! Who is calling: the one place tools learn the verified identity, whatever the transport.

use rmcp::model::ErrorData as McpError;
use rmcp::service::RequestContext;
use rmcp::RoleServer;
use verifiers::{AccessToken, Identity};

/// The verified caller of the current request.
///
/// Over HTTP the bearer-auth layer puts the [`Identity`] into the HTTP request's extensions, and
/// rmcp moves the request's `http::request::Parts` into the MCP context. Over stdio the transport
/// puts the identity into the MCP context directly. Tools call this and need not care which.
pub fn caller(ctx: &RequestContext<RoleServer>) -> Result<&Identity, McpError> {
    ctx.extensions
        .get::<Identity>()
        .or_else(|| {
            ctx.extensions
                .get::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Identity>())
        })
        // Unreachable through our transports, which authenticate every request; a clear error
        // rather than a panic if someone mounts the server without them.
        .ok_or_else(|| McpError::invalid_request("this request carries no verified caller identity", None))
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
