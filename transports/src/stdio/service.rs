//! Authenticating every stdio request before the handler sees it.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{ClientNotification, ClientRequest, ErrorData as McpError, ProtocolVersion, ServerResult};
use rmcp::service::{NotificationContext, RequestContext, RoleServer, Service};
use rmcp::ServerHandler;

use super::auth::StdioAuth;
use crate::trace::McpSpan;
use tracing::Instrument as _;

/// An MCP service that checks the stdio caller's token before each request and puts the verified
/// [`Identity`](verifiers::Identity) and its opaque [`AccessToken`](verifiers::AccessToken) into the
/// request context, where the tools find them.
///
/// The lifecycle requests (`initialize`, `server/discover`, `ping`) pass without a check, so a
/// host can still connect and show the error the first real request returns.
pub struct Authenticated<H> {
    inner: H,
    auth: Arc<StdioAuth>,
}

impl<H> Authenticated<H> {
    /// Wraps `inner`, authenticating with `auth`.
    pub fn new(inner: H, auth: Arc<StdioAuth>) -> Self {
        Authenticated { inner, auth }
    }
}

impl<H: ServerHandler> Service<RoleServer> for Authenticated<H> {
    async fn handle_request(
        &self,
        request: ClientRequest,
        mut context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, McpError> {
        if !verifiers::telemetry::enabled() {
            return self.handle(request, context).await;
        }
        let span = crate::trace::stdio_server_span(
            request.method(),
            &serde_json::to_value(&context.id).unwrap_or_default(),
            match &request {
                ClientRequest::CallToolRequest(call) => Some(&*call.params.name),
                ClientRequest::GetPromptRequest(get) => Some(&*get.params.name),
                _ => None,
            },
            match &request {
                ClientRequest::ReadResourceRequest(read) => Some(read.params.uri.as_str()),
                _ => None,
            },
            &context.meta,
        );
        context.extensions.insert(McpSpan(span.clone()));
        // Errors are recorded where they are decided: the caller's token below, a tool's in the
        // server's handler (recording twice would give the span two error types).
        self.handle(request, context).instrument(span).await
    }

    async fn handle_notification(
        &self,
        notification: ClientNotification,
        context: NotificationContext<RoleServer>,
    ) -> Result<(), McpError> {
        Service::handle_notification(&self.inner, notification, context).await
    }

    fn get_info(&self) -> rmcp::model::ServerConfig {
        Service::get_info(&self.inner)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Service::supported_protocol_versions(&self.inner)
    }
}

impl<H: ServerHandler> Authenticated<H> {
    /// Authenticates (all but the lifecycle requests) and hands the request on.
    async fn handle(
        &self,
        request: ClientRequest,
        mut context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, McpError> {
        let lifecycle = matches!(
            request,
            ClientRequest::InitializeRequest(_)
                | ClientRequest::DiscoverRequest(_)
                | ClientRequest::PingRequest(_)
        );
        if !lifecycle {
            match self.auth.caller().await {
                Ok((identity, token)) => {
                    verifiers::telemetry::record_caller(&tracing::Span::current(), &identity);
                    context.extensions.insert(identity);
                    context.extensions.insert(token);
                }
                Err(error) => {
                    let error = McpError::invalid_request(error.to_string(), None);
                    crate::trace::record_mcp_error(
                        &tracing::Span::current(),
                        "invalid_token",
                        Some(error.code.0),
                    );
                    return Err(error);
                }
            }
        }
        Service::handle_request(&self.inner, request, context).await
    }
}
