//! The MCP surface around the tools: server info, capabilities, and the card resource.

use std::panic::AssertUnwindSafe;
use std::sync::LazyLock;

use futures::FutureExt as _;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, ErrorData as McpError, ExtensionCapabilities,
    Implementation, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, MetaObject,
    PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{tool_handler, RoleServer, ServerHandler};
use serde_json::json;

use tracing::{Instrument as _, Span};
use transports::audit::{self, Outcome};
use transports::trace::{execute_tool_span, record_mcp_error};
use transports::ToolCallAdmitted;

use crate::caller::{caller, caller_token, client_addr, mcp_span, shared_caller};
use crate::card::{self, CARD_MIME_TYPE, CARD_URI, DEFAULT_MESSAGE};
use crate::tools::{shared_router, EntraMcpServer, GREETING_CARD, MY_PROFILE};

/// The MCP Apps extension id, advertised so hosts know we ship `ui://` resources.
const UI_EXTENSION: &str = "io.modelcontextprotocol/ui";

fn card_resource_meta() -> MetaObject {
    let mut meta = MetaObject::new();
    // Self-contained HTML: no network origins needed.
    meta.0.insert(
        "ui".into(),
        json!({ "csp": { "connectDomains": [], "resourceDomains": [] }, "prefersBorder": true }),
    );
    meta
}

/// What `get_info` answers: capabilities (tools, resources, the MCP Apps extension), name,
/// version and instructions.
fn server_config() -> ServerConfig {
    let mut extensions = ExtensionCapabilities::new();
    if let Ok(ui) = serde_json::from_value(json!({ "mimeTypes": [CARD_MIME_TYPE] })) {
        extensions.insert(UI_EXTENSION.to_owned(), ui);
    }
    let capabilities = ServerCapabilities::builder()
        .enable_extensions_with(extensions)
        .enable_resources()
        .enable_tools()
        .build();
    ServerConfig::new(capabilities)
        .with_server_info(Implementation::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "Example tools protected by Microsoft Entra ID: whoami tells you who your token says you are, \
                 roll_dice rolls a die, greeting_card makes a card (an MCP App).",
        )
}

/// Every list fits in one page, so this server issues no cursor: a request that carries one
/// carries a cursor the server never issued, which the MCP pagination rules answer with
/// `-32602` (Invalid params) rather than by silently starting over.
fn no_cursor(request: Option<&PaginatedRequestParams>) -> Result<(), McpError> {
    match request.and_then(|r| r.cursor.as_deref()) {
        None => Ok(()),
        Some(_) => Err(McpError::invalid_params(
            "unknown cursor: this server returns every list in one page and never issues a cursor; send the request without one",
            None,
        )),
    }
}

#[tool_handler(router = shared_router())]
impl ServerHandler for EntraMcpServer {
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let started = std::time::Instant::now();
        let who = shared_caller(&context)?.clone();
        let client = client_addr(&context);
        let span = if verifiers::telemetry::enabled() {
            mcp_span(&context).unwrap_or_else(Span::none)
        } else {
            Span::none()
        };
        // Refused before the tool runs: the same gate the HTTP layer asks for its 403.
        let token = caller_token(&context).cloned();
        if let Err(denied) = self.access().check(&request.name, &who, token.as_ref()).await {
            denied.log(&who);
            let kind = denied.refusal.error.kind();
            record_mcp_error(&span, kind, Some(rmcp::model::ErrorCode::INVALID_REQUEST.0));
            span.in_scope(|| {
                audit::tool_call(
                    &who,
                    &request.name,
                    Outcome::Refused(kind),
                    started.elapsed(),
                    client,
                )
            });
            return Err(denied.into());
        }
        // The tool's rate limit, for an HTTP call the transport could not count in advance (a
        // batch, a chunked body); over stdio there is none.
        let counted = context.extensions.get::<http::request::Parts>().map(|parts| {
            parts
                .extensions
                .get::<ToolCallAdmitted>()
                .is_some_and(|admitted| *admitted.0 == *request.name)
        });
        if counted == Some(false) {
            if let Err(limited) = self.access().admit(&request.name, &who) {
                span.in_scope(|| audit::rate_limited(&who, Some(&request.name), client));
                record_mcp_error(
                    &span,
                    "rate_limited",
                    Some(rmcp::model::ErrorCode::INVALID_REQUEST.0),
                );
                return Err(McpError::new(
                    rmcp::model::ErrorCode::INVALID_REQUEST,
                    format!(
                        "too many calls of {}: over the tool's rate_limit; retry in {} s",
                        request.name,
                        limited.retry_after_secs()
                    ),
                    Some(json!({ "error": "rate_limited", "retry_after_secs": limited.retry_after_secs() })),
                ));
            }
        }
        let name = request.name.clone();
        // The tool's own span, under the MCP span (set explicitly: rmcp may run this on another
        // task); on-behalf-of exchanges and downstream calls hang under it.
        let tool_span = execute_tool_span(&span, &name);
        let call = shared_router().call(ToolCallContext::new(self, request, context));
        // Instrumented only when traced: the wrapper costs a little on every poll.
        let call = if tool_span.is_disabled() {
            futures::future::Either::Left(call)
        } else {
            futures::future::Either::Right(call.instrument(tool_span.clone()))
        };
        // Tools must not panic (clippy denies unwrap/expect/panic), but if one ever does, the
        // caller gets an error instead of a request that never ends.
        let result = match AssertUnwindSafe(call).catch_unwind().await {
            Ok(result) => result,
            Err(_) => {
                tracing::error!(tool = %name, "a tool panicked; answered with an internal error");
                Err(McpError::internal_error(
                    format!("the tool {name} failed unexpectedly"),
                    None,
                ))
            }
        };
        let outcome = match &result {
            Ok(CallToolResponse::Complete(done)) if done.is_error == Some(true) => Outcome::ToolError,
            Ok(_) => Outcome::Ok,
            // A tool's own check (`require_role`) refuses with the same error shape as the gate.
            Err(error)
                if error
                    .data
                    .as_ref()
                    .and_then(|d| d.get("error"))
                    .and_then(|e| e.as_str())
                    == Some("insufficient_scope") =>
            {
                Outcome::Refused("insufficient_scope")
            }
            Err(_) => Outcome::ToolError,
        };
        match &result {
            Ok(_) if outcome == Outcome::ToolError => {
                for span in [&span, &tool_span] {
                    record_mcp_error(span, "tool_error", None);
                }
            }
            Ok(_) => {}
            Err(error) => {
                // A tool's own refusal (`require_role`) by its reason, anything else by its code.
                let error_type = match outcome {
                    Outcome::Refused(reason) => reason.to_owned(),
                    _ => error.code.0.to_string(),
                };
                for span in [&span, &tool_span] {
                    record_mcp_error(span, &error_type, Some(error.code.0));
                }
            }
        }
        span.in_scope(|| audit::tool_call(&who, &name, outcome, started.elapsed(), client));
        result
    }

    /// Only the tools the caller may call. The list depends on the token, so 2026-07-28 clients
    /// are told it is private to them.
    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        no_cursor(request.as_ref())?;
        let who = caller(&context)?;
        // Only the tools this caller may call (or may step up to call), and my_profile only
        // when a downstream credential is configured (docs/ARCHITECTURE.md#per-tool-authorization,
        // docs/ARCHITECTURE.md#calling-apis-on-behalf-of-the-caller).
        let mut tools = shared_router().list_all();
        tools.retain(|tool| self.has_downstream() || tool.name != MY_PROFILE);
        let names: Vec<String> = tools.iter().map(|tool| tool.name.to_string()).collect();
        let visible = self
            .access()
            .visible(names.iter().map(String::as_str), who, caller_token(&context))
            .await;
        tools.retain(|tool| visible.contains(&*tool.name));
        let mut result = ListToolsResult::with_all_items(tools);
        if context
            .protocol_version()
            .is_some_and(|version| version >= ProtocolVersion::V_2026_07_28)
        {
            result.ttl_ms = Some(0);
            result.cache_scope = Some(CacheScope::Private);
        }
        Ok(result)
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        if name == MY_PROFILE && !self.has_downstream() {
            return None;
        }
        shared_router().get(name).cloned()
    }

    /// Built once: rmcp asks for it on every request (each 2026-07-28 request configures a fresh
    /// peer with it), and it never changes.
    fn get_info(&self) -> ServerConfig {
        static INFO: LazyLock<ServerConfig> = LazyLock::new(server_config);
        INFO.clone()
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        no_cursor(request.as_ref())?;
        // The card belongs to greeting_card: a caller who may not call the tool does not see it.
        let visible = self
            .access()
            .check_visible(GREETING_CARD, caller(&ctx)?, caller_token(&ctx));
        if visible.await.is_err() {
            return Ok(ListResourcesResult::with_all_items(Vec::new()));
        }
        let card = Resource::new(CARD_URI, "greeting-card")
            .with_title("Greeting card")
            .with_description("The HTML template of the greeting_card tool's MCP App")
            .with_mime_type(CARD_MIME_TYPE)
            .with_meta(card_resource_meta());
        Ok(ListResourcesResult::with_all_items(vec![card]))
    }

    /// No templates; a cursor is refused as in every list.
    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        no_cursor(request.as_ref())?;
        Ok(ListResourceTemplatesResult::default())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if request.uri != CARD_URI {
            return Err(McpError::resource_not_found(
                format!("no resource {}; this server has only {CARD_URI}", request.uri),
                None,
            ));
        }
        // The template is the tool's, not its data: seeing the tool is enough (no step-up).
        let who = caller(&ctx)?;
        if let Err(denied) = self
            .access()
            .check_visible(GREETING_CARD, who, caller_token(&ctx))
            .await
        {
            denied.log(who);
            return Err(denied.into());
        }
        let html = card::render("you", DEFAULT_MESSAGE);
        let contents = ResourceContents::text(html, CARD_URI)
            .with_mime_type(CARD_MIME_TYPE)
            .with_meta(card_resource_meta());
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}
