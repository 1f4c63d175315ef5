//! The wire for `mcp-server-entra`: streamable HTTP with bearer auth, and stdio.
//!
//! Both transports serve any rmcp [`ServerHandler`](rmcp::ServerHandler) and authenticate with
//! any [`TokenVerifier`](verifiers::TokenVerifier); they know nothing of the concrete tools.
//! Either way, the verified identity reaches the handler through the MCP request context, as an
//! `Arc<`[`Identity`](verifiers::Identity)`>` (the one the verifier returned):
//!
//! - [`http`]: hyper serving rmcp's streamable-HTTP service behind [`http::BearerAuthLayer`],
//!   with RFC 9728 protected-resource metadata, `/health`, `/ready`, Host/Origin checks, CORS and
//!   graceful shutdown. Legacy sessions are bound to the identity that opened them.
//! - [`stdio`]: JSON-RPC on stdin/stdout for desktop hosts, the token taken from the environment
//!   (a variable, a file, or a credential command) and re-checked before each request.
//!
//! Per-tool authorization is the server's: it implements [`ToolGate`], which the HTTP transport
//! consults to answer a forbidden `tools/call` with a `403` step-up challenge.
//!
//! # Example
//!
//! Your own rmcp handler behind bearer authentication. The [`StaticVerifier`](verifiers::StaticVerifier)
//! stands in for [`EntraVerifier`](verifiers::EntraVerifier) here (`examples/own_server.rs` uses
//! Entra); everything else is what production runs:
//!
//! ```
//! use std::sync::Arc;
//!
//! use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
//! use transports::http::{AccessControl, HttpConfig};
//! use verifiers::{AccessPolicy, Identity, StaticVerifier};
//!
//! /// An MCP server with nothing in it: rmcp's defaults answer `initialize` and `ping`.
//! #[derive(Clone)]
//! struct Empty;
//! impl rmcp::ServerHandler for Empty {}
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let ada = Identity::builder("ada-oid", "tenant-1").scopes(["access_as_user"]).build();
//! let verifier = StaticVerifier::new(AccessPolicy::scopes(["access_as_user"])).with_token("dev-token", ada);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let config = HttpConfig::new(format!("http://{addr}").parse()?);
//! let server = transports::http::serve(listener, config, AccessControl::new(Arc::new(verifier)), || Empty)?;
//!
//! // A request without a token is challenged to read the RFC 9728 metadata (RFC 6750 §3).
//! let mut tcp = tokio::net::TcpStream::connect(addr).await?;
//! let request = format!("POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
//! tcp.write_all(request.as_bytes()).await?;
//! let mut answer = String::new();
//! tcp.read_to_string(&mut answer).await?;
//! assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
//! let metadata = format!("resource_metadata=\"http://{addr}/.well-known/oauth-protected-resource/mcp\"");
//! assert!(answer.contains(&metadata), "{answer}");
//!
//! server.shutdown().await;
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
//! ```
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![deny(clippy::print_stdout)]

pub mod audit;
pub mod http;
pub mod redis;
pub mod stdio;
mod tool_gate;

pub mod trace;
pub use tool_gate::{ToolCallAdmitted, ToolGate, ToolRefusal};
