//! `mcp-server-entra`: a Model Context Protocol server whose callers authenticate with
//! Microsoft Entra ID access tokens.
//!
//! - [`tools`]: the example tools (`whoami`, `roll_dice`, `greeting_card`, and `my_profile`
//!   when a downstream credential is configured);
//! - [`graph`]: calls to Microsoft Graph as the caller (on-behalf-of);
//! - [`card`]: the greeting card's `ui://` HTML (an MCP App);
//! - [`caller()`]: how a tool learns who is calling, over either transport, and
//!   [`require_role`] for a tool's own check;
//! - [`access`]: who may call which tool (declared beside each tool, overridable in the
//!   configuration file), enforced the same way over HTTP and stdio;
//! - [`config`] (its [`config::table`] of every setting) and [`cli`]: settings and the command line;
//! - [`dev`]: the local dev identity.
//!
//! Authentication lives in the `verifiers` crate, the wire in `transports`; `main.rs` wires them.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![deny(clippy::print_stdout)]

pub mod access;
mod caller;
pub mod card;
pub mod cli;
pub mod config;
pub mod dev;
pub mod graph;
pub mod logging;
mod server;
pub mod telemetry;
pub mod tools;

pub use caller::{caller, caller_token, require_role};
pub use tools::EntraMcpServer;
