//! stdio transport (docs/ARCHITECTURE.md#the-stdio-path): JSON-RPC on stdin/stdout for desktop MCP hosts.
//!
//! The host launches the server as a subprocess with the caller's token in the environment (see
//! [`TokenSource`]). The token is verified once at start-up — a missing or invalid one ends the
//! process with one line on stderr — and again before every request through [`Authenticated`],
//! which also puts the verified `Arc<`[`Identity`](verifiers::Identity)`>` into the request context for the tools.
//! stdout carries only JSON-RPC; logs must go to stderr.

mod auth;
mod command;
mod service;
mod source;

use std::sync::Arc;

use rmcp::service::{RoleServer, ServiceExt as _};
use rmcp::transport::IntoTransport;
use rmcp::ServerHandler;
use thiserror::Error;

pub use auth::{StdioAuth, StdioAuthError};
pub use command::TOKEN_COMMAND_ENV;
pub use service::Authenticated;
pub use source::{az_example, TokenSource, TokenSourceError};

/// Why the stdio server could not start or stopped with an error.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StdioError {
    /// No usable token at start-up.
    #[error(transparent)]
    Auth(#[from] StdioAuthError),
    /// The MCP session could not start (for example, stdin closed before initialization).
    #[error("the MCP session did not start: {0}")]
    Start(String),
    /// The MCP session ended with an error.
    #[error("the MCP session failed: {0}")]
    Session(#[from] tokio::task::JoinError),
}

/// Verifies the caller once, then serves `handler` on `transport` until the peer disconnects.
///
/// Use [`rmcp::transport::stdio()`] as the transport for a real stdio server; tests can pass an
/// in-memory duplex pipe.
pub async fn serve<H, T, E, A>(handler: H, auth: Arc<StdioAuth>, transport: T) -> Result<(), StdioError>
where
    H: ServerHandler,
    T: IntoTransport<RoleServer, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let identity = auth.identity().await?;
    tracing::info!(
        caller = identity.display_name(),
        tenant = %identity.tenant_id,
        "access token verified; serving MCP on stdio"
    );
    let running = Authenticated::new(handler, auth)
        .serve(transport)
        .await
        .map_err(|e| StdioError::Start(e.to_string()))?;
    running.waiting().await?;
    Ok(())
}
