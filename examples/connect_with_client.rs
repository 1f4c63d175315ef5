//! Calls mcp-server-entra the way any MCP client would: with a bearer token over streamable HTTP.
//!
//! ```text
//! MCP_ACCESS_TOKEN=<token> cargo run --example connect_with_client                 # http://localhost:8000
//! MCP_ACCESS_TOKEN=<token> cargo run --example connect_with_client -- --port 8013
//! MCP_ACCESS_TOKEN=<token> cargo run --example connect_with_client -- https://mcp.contoso.com
//! ```
//!
//! The server's address is, first found: a URL argument (with or without `/mcp`), `--port P`
//! (`http://localhost:P`), `PUBLIC_URL`, then `http://localhost:8000`. It prints the one it uses.
//!
//! Against `serve --dev`, the token is the dev token the server printed (or `MCP_DEV_TOKEN`).
//! Against Entra, get one with
//! `az account get-access-token --scope api://<client-id>/access_as_user --query accessToken -o tsv`.
//! When the server refuses the token, this explains why, from its `WWW-Authenticate` answer.

use std::process::ExitCode;

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::ClientInitializeError;
use rmcp::transport::streamable_http_client::{StreamableHttpClientTransportConfig, StreamableHttpError};
use rmcp::transport::worker::WorkerQuitReason;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt as _;
use serde_json::json;

#[tokio::main]
async fn main() -> ExitCode {
    let base = match server_base(std::env::args().skip(1)) {
        Ok(base) => base,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let Ok(token) = std::env::var("MCP_ACCESS_TOKEN") else {
        eprintln!("set MCP_ACCESS_TOKEN: the dev token `serve --dev` printed, or an Entra access token");
        return ExitCode::from(2);
    };
    let base = base.trim_end_matches('/');
    let url = format!("{}/mcp", base.strip_suffix("/mcp").unwrap_or(base));
    eprintln!("connecting to {url}");
    let config = StreamableHttpClientTransportConfig::with_uri(url.clone()).auth_header(token);
    let client = match ().serve(StreamableHttpClientTransport::from_config(config)).await {
        Ok(client) => client,
        Err(error) => {
            eprintln!("could not connect to {url}: {}", explain(&error));
            return ExitCode::FAILURE;
        }
    };
    match run(&client).await {
        Ok(()) => {
            let _ = client.cancel().await;
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("call failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The server's base URL from the arguments (`URL` or `--port P`), else `PUBLIC_URL`, else port 8000.
fn server_base(mut args: impl Iterator<Item = String>) -> Result<String, String> {
    let usage = "usage: connect_with_client [URL | --port PORT]  (MCP_ACCESS_TOKEN holds the token)";
    let base = match args.next().as_deref() {
        None => std::env::var("PUBLIC_URL").unwrap_or_else(|_| "http://localhost:8000".to_owned()),
        Some("--port") => match args.next().map(|p| p.parse::<u16>()) {
            Some(Ok(port)) => format!("http://localhost:{port}"),
            _ => return Err(format!("--port needs a port number; {usage}")),
        },
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => url.to_owned(),
        Some(other) => return Err(format!("unexpected argument {other:?}; {usage}")),
    };
    match args.next() {
        Some(extra) => Err(format!("unexpected argument {extra:?}; {usage}")),
        None => Ok(base),
    }
}

async fn run(client: &rmcp::service::RunningService<rmcp::RoleClient, ()>) -> Result<(), rmcp::ServiceError> {
    let tools = client.list_all_tools().await?;
    let names: Vec<_> = tools.iter().map(|t| t.name.as_ref()).collect();
    println!("tools: {}", names.join(", "));

    let whoami = client.call_tool(CallToolRequestParams::new("whoami")).await?;
    println!("whoami: {}", text(&whoami));

    let sides = json!({"sides": 20}).as_object().cloned().unwrap_or_default();
    let roll = client
        .call_tool(CallToolRequestParams::new("roll_dice").with_arguments(sides))
        .await?;
    println!("roll_dice: {}", text(&roll));

    let card = client
        .call_tool(CallToolRequestParams::new("greeting_card"))
        .await?;
    println!("greeting_card: {}", text(&card));
    if let Some(structured) = &card.structured_content {
        println!("greeting_card structured content: {structured}");
    }
    Ok(())
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Turns a failed connection into a sentence, using the server's `WWW-Authenticate` challenge.
fn explain(error: &ClientInitializeError) -> String {
    let challenge = find_http_error(error).and_then(|e| match e {
        StreamableHttpError::AuthRequired(e) => Some(e.www_authenticate_header.clone()),
        StreamableHttpError::InsufficientScope(e) => Some(e.www_authenticate_header.clone()),
        _ => None,
    });
    let Some(challenge) = challenge else {
        return error.to_string();
    };
    let param = |name: &str| {
        challenge
            .split(&format!("{name}=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(str::to_owned)
    };
    match (param("error").as_deref(), param("error_description")) {
        (Some("invalid_token"), Some(why)) => format!("the server rejected the token: {why}"),
        (Some("insufficient_scope"), Some(why)) => format!(
            "the token lacks a required scope: {why} (request {})",
            param("scope").unwrap_or_default()
        ),
        (Some(code), why) => format!("{code}: {}", why.unwrap_or_default()),
        (None, _) => format!(
            "the server wants a bearer token; get one for {} (see {})",
            param("scope").unwrap_or_else(|| "its scope".into()),
            param("resource_metadata").unwrap_or_default()
        ),
    }
}

fn find_http_error(error: &ClientInitializeError) -> Option<&StreamableHttpError<reqwest::Error>> {
    // rmcp keeps the transport error in a field rather than as the `source`: start from there.
    let ClientInitializeError::TransportError { error, .. } = error else {
        return None;
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(http) = e.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            return Some(http);
        }
        // The transport's worker wraps the HTTP error without exposing it as a `source`.
        if let Some(WorkerQuitReason::Fatal { error, .. }) =
            e.downcast_ref::<WorkerQuitReason<StreamableHttpError<reqwest::Error>>>()
        {
            return Some(error);
        }
        source = e.source();
    }
    None
}
