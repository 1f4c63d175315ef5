//! Streamable HTTP transport (docs/ARCHITECTURE.md#the-http-path).
//!
//! Routes:
//!
//! | path | auth | what |
//! |---|---|---|
//! | `/mcp`, `/mcp/`, and under `PUBLIC_URL`'s path (`/entra/mcp`) | bearer | the MCP endpoint (no redirect) |
//! | `/.well-known/oauth-protected-resource<path>/mcp`, `…<path>`, and the root form | none | RFC 9728 metadata (see [`HttpConfig::metadata_documents`]) |
//! | `/health` | none | `200 ok`, no I/O (liveness) |
//! | `/ready` | none | `200` once the verifier can verify (readiness), else `503` |
//!
//! Everything else is `404`. Prometheus metrics are served on a separate listener
//! ([`serve_metrics`]), never on this port.

mod ambiguity;
mod auth;
mod body;
mod challenge;
mod config;
mod connection;
mod event_store;
mod gate;
mod mcp_headers;
mod metadata;
mod metrics;
mod negotiate;
mod origin;
mod priming;
mod rate_limit;
mod router;
mod server;
mod session_cap;
mod session_layer;
mod sessions;

pub use auth::{bearer_token, query_has_access_token, BearerAuth, BearerAuthLayer};
pub use config::{HttpConfig, HttpConfigError, MCP_PATH, METADATA_PATH, WELL_KNOWN_PATH};
pub use event_store::{EventRetention, MemoryEventStore, SessionEvents};
pub use gate::{PeekedBody, ToolGateLayer, ToolGateService};
pub use metadata::ProtectedResourceMetadata;
pub use metrics::serve_metrics;
pub use negotiate::{Negotiate, NegotiateLayer};
pub use rate_limit::{
    ForwardedHeader, KeyedLimiter, ProxyParseError, Rate, RateLimited, RateParseError, TrustedProxies,
};
pub use server::{serve, AccessControl, RunningServer};
pub use session_cap::{CappedSessionError, CappedSessionManager};
pub use session_layer::{SessionLayer, Sessions};
pub use sessions::{Principal, SessionBindings};
