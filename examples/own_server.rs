//! Your own rmcp server, protected by Microsoft Entra ID with this project's crates: the
//! `EntraVerifier` (verifiers) and the HTTP transport's bearer auth, sessions and limits
//! (transports). No code of the example server is used.
//!
//! `AZURE_CLIENT_ID=… AZURE_TENANT_ID=… cargo run --example own_server` prints the endpoint;
//! `AZURE_AUTHORITY_HOST` points it at another Entra (a sovereign cloud, or a local issuer).

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use transports::http::{AccessControl, HttpConfig};
use verifiers::{AccessPolicy, EntraConfig, EntraVerifier, Identity};

/// One tool that greets the verified caller.
#[derive(Clone)]
struct Greeter {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Greeter {
    #[tool(description = "Greets you by the name in your Entra token")]
    async fn hello(&self, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        // The transport put the verified caller in the HTTP request's extensions.
        let who = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Arc<Identity>>())
            .ok_or_else(|| ErrorData::invalid_request("no verified caller", None))?;
        let text = format!("Hello, {}!", who.display_name());
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Greeter {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("set {name}"));
    let mut entra = EntraConfig::new(var("AZURE_CLIENT_ID")?, var("AZURE_TENANT_ID")?);
    if let Ok(host) = var("AZURE_AUTHORITY_HOST") {
        entra.authority_host = host.parse()?;
    }
    // Every caller needs the `access_as_user` scope of your app registration.
    let verifier = EntraVerifier::new(entra, AccessPolicy::scopes(["access_as_user"]))?;
    verifier.start().await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let config = HttpConfig::new(base.parse()?);
    let server = transports::http::serve(listener, config, AccessControl::new(Arc::new(verifier)), || {
        Greeter {
            tool_router: Greeter::tool_router(),
        }
    })?;
    println!("{base}/mcp");
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
