//! The audit trail: who called which tool when, and what was refused.
//!
//! One structured event per `tools/call` and per refusal, under the tracing target `audit`, so an
//! operator can route it apart from the rest of the log (`RUST_LOG=info,audit=off` drops it,
//! `RUST_LOG=audit=info` keeps only it; `LOG_FORMAT=json` writes it as JSON with
//! `"target":"audit"`). Every event names the caller as the Entra claims do (`tid`, `oid`, `azp`,
//! app-only or delegated), never a token, a name or an e-mail address.
//!
//! Refusals before authentication (no token, a forged or expired one) come from callers the
//! server cannot name, and an attacker can send them as fast as the network allows: they are
//! counted, and one line at most every [`UNAUTHENTICATED_LINE_INTERVAL`] says how many there were,
//! by reason, so they cannot fill a disk.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use verifiers::{CallerText, Identity};

/// The tracing target of every audit event.
pub const TARGET: &str = "audit";

/// The most often a line about refusals before authentication is written: once a minute.
pub const UNAUTHENTICATED_LINE_INTERVAL: Duration = Duration::from_secs(60);

/// The client's address as the server's TCP connection saw it (a proxy's, behind one). The HTTP
/// transport puts it into every request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// How a `tools/call` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// The tool ran and answered.
    Ok,
    /// The tool ran and answered with a tool error (`isError`), or failed with a JSON-RPC error.
    ToolError,
    /// The call was refused before the tool ran; the reason is a stable code such as
    /// `insufficient_scope`.
    Refused(&'a str),
}

impl Outcome<'_> {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::Refused(_) => "refused",
        }
    }
}

/// Records one `tools/call` by `caller` of `tool`: its outcome and how long it took. `client` is
/// `None` over stdio.
pub fn tool_call(
    caller: &Identity,
    tool: &str,
    outcome: Outcome<'_>,
    elapsed: Duration,
    client: Option<ClientAddr>,
) {
    let reason = match outcome {
        Outcome::Refused(reason) => reason,
        _ => "",
    };
    tracing::info!(
        target: TARGET,
        event = "tools/call",
        tenant_id = %caller.tenant_id,
        object_id = %caller.object_id,
        client_app = caller.client_app.as_deref().unwrap_or(""),
        app_only = caller.app_only,
        tool = %CallerText::new(tool),
        outcome = outcome.label(),
        reason,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        client = %client.map(|c| c.0.to_string()).unwrap_or_default(),
        "tools/call"
    );
}

/// Records a refusal of an authenticated caller outside a tool call (a session of someone else,
/// too many requests in flight): `reason` is a stable code.
pub fn refused(caller: &Identity, reason: &str, client: Option<ClientAddr>) {
    tracing::info!(
        target: TARGET,
        event = "refused",
        tenant_id = %caller.tenant_id,
        object_id = %caller.object_id,
        client_app = caller.client_app.as_deref().unwrap_or(""),
        app_only = caller.app_only,
        reason,
        client = %client.map(|c| c.0.to_string()).unwrap_or_default(),
        "refused"
    );
}

/// Refusals before authentication since the last line, by reason.
struct Unauthenticated {
    last_line: Option<Instant>,
    counts: BTreeMap<&'static str, u64>,
}

static UNAUTHENTICATED: Mutex<Unauthenticated> = Mutex::new(Unauthenticated {
    last_line: None,
    counts: BTreeMap::new(),
});

/// Counts a refusal before authentication (`reason`: the refusal's kind, such as `missing_token`
/// or `bad_signature`). The first in each [`UNAUTHENTICATED_LINE_INTERVAL`] is written, with how
/// many of each reason came since the previous line; the others are only counted.
pub fn refused_before_authentication(reason: &'static str, client: Option<ClientAddr>) {
    let now = Instant::now();
    let since_last_line = {
        // A poisoned lock only means a panic elsewhere while counting: the counts stay usable.
        let mut state = UNAUTHENTICATED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = state
            .last_line
            .is_none_or(|at| now.duration_since(at) >= UNAUTHENTICATED_LINE_INTERVAL);
        if !due {
            *state.counts.entry(reason).or_default() += 1;
            return;
        }
        state.last_line = Some(now);
        std::mem::take(&mut state.counts)
    };
    let since: Vec<String> = since_last_line
        .iter()
        .map(|(reason, count)| format!("{reason}={count}"))
        .collect();
    tracing::info!(
        target: TARGET,
        event = "refused_unauthenticated",
        reason,
        client = %client.map(|c| c.0.to_string()).unwrap_or_default(),
        refused_since_last_line = %since.join(" "),
        interval_secs = UNAUTHENTICATED_LINE_INTERVAL.as_secs(),
        "refused before authentication (at most one such line a minute; the others are counted)"
    );
}
