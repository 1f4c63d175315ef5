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
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![deny(clippy::print_stdout)]

pub mod http;
pub mod stdio;
mod tool_gate;

pub use tool_gate::{ToolGate, ToolRefusal};
