//! The audit trail: who called which tool when, and what was refused.
//!
//! One structured event per `tools/call` and per refusal, under the tracing target `audit`, so an
//! operator can route it apart from the rest of the log (`RUST_LOG=info,audit=off` drops it,
//! `RUST_LOG=audit=info` keeps only it; `LOG_FORMAT=json` writes it as JSON with
//! `"target":"audit"`). Every event names the caller as the Entra claims do (`tid`, `oid`, `azp`,
//! app-only or delegated), never a token, a name or an e-mail address.
//!
//! Refusals before a caller is admitted (over the per-address rate limit, no token, a forged,
//! expired or foreign one, a token without the server-wide scope, Entra's keys not loaded) mostly
//! come from callers the server cannot name, and an attacker can send them as fast as the
//! network allows: the trail counts them, and one line at most every
//! [`UNAUTHENTICATED_LINE_INTERVAL`] says how many there were, by reason. An authenticated
//! caller over a rate limit is written once a minute and counted otherwise ([`rate_limited`]).
//! (The main log's one line per refusal, under the bearer layer's own target, is separate: see
//! docs/operations.md.)

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use verifiers::{CallerText, Identity};

use crate::http::{KeyedLimiter, Principal, Rate};

/// The tracing target of every audit event.
pub const TARGET: &str = "audit";

/// The most often a line about refusals before authentication is written: once a minute.
pub const UNAUTHENTICATED_LINE_INTERVAL: Duration = Duration::from_secs(60);

/// The client's address: as the server's TCP connection saw it (a proxy's, behind one), and as a
/// trusted proxy says it forwarded for (`TRUSTED_PROXIES`). The HTTP transport puts it into
/// every request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The address a trusted proxy forwarded for; `None` without trusted proxies, or when the
    /// peer is not one of them.
    pub forwarded_for: Option<IpAddr>,
}

impl ClientAddr {
    /// The address the request came from as far as the server can tell: the forwarded-for
    /// address when a trusted proxy gave one, else the peer's.
    pub fn ip(&self) -> IpAddr {
        self.forwarded_for.unwrap_or(self.peer.ip())
    }
}

/// The trace id of the current span (32 hex digits) when traces are exported, so an audit event
/// leads to its trace; empty otherwise.
fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if !verifiers::telemetry::enabled() {
        return None;
    }
    let context = tracing::Span::current().context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// The `client` and `forwarded_for` fields of an event: `client` empty over stdio,
/// `forwarded_for` absent unless a trusted proxy named the client.
fn addresses(client: Option<ClientAddr>) -> (String, Option<String>) {
    match client {
        None => (String::new(), None),
        Some(c) => (c.peer.to_string(), c.forwarded_for.map(|ip| ip.to_string())),
    }
}

/// How a `tools/call` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// The call completed (or was handed back to the client for input, or to a task).
    Ok,
    /// The tool answered with a tool error (`isError`), or the call failed with a JSON-RPC error
    /// other than a refusal (an unknown tool, arguments that do not fit, a tool that failed).
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
    let (peer, forwarded_for) = addresses(client);
    // Before the event, not in its fields: asking whether spans are exported while an event is
    // being dispatched would clobber the per-layer filters' verdict on that event.
    let trace_id = current_trace_id();
    tracing::info!(
        target: TARGET,
        event = "tools/call",
        trace_id = trace_id.as_deref(),
        tenant_id = %caller.tenant_id,
        object_id = %caller.object_id,
        client_app = caller.client_app.as_deref().unwrap_or(""),
        app_only = caller.app_only,
        tool = %CallerText::new(tool),
        outcome = outcome.label(),
        reason,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        client = %peer,
        forwarded_for = forwarded_for.as_deref(),
        "tools/call"
    );
}

/// Records a rate-limit refusal of an authenticated caller: `tool` names the tool whose own
/// limit it was (`None`: `RATE_LIMIT_PER_PRINCIPAL`). A caller over its limit can send refusals
/// as fast as the network allows, so the first of each caller in a minute is written (a
/// `tools/call` event refused `rate_limited`, or a `refused` event) and the rest are counted
/// into the counted line (`rate_limited=N`), like the refusals before authentication. Returns
/// whether it was written: the caller's main-log line follows the same rule.
pub fn rate_limited(caller: &Identity, tool: Option<&str>, client: Option<ClientAddr>) -> bool {
    static LINES: OnceLock<KeyedLimiter<Principal>> = OnceLock::new();
    let lines = LINES.get_or_init(|| {
        KeyedLimiter::unmetered(
            Rate::ONE_PER_MINUTE,
            RATE_LIMITED_CALLERS_TRACKED,
            Principal::tenant,
        )
    });
    if lines.check(&Principal::or_tenant(caller)).is_err() {
        counted().count("rate_limited");
        return false;
    }
    match tool {
        Some(tool) => tool_call(
            caller,
            tool,
            Outcome::Refused("rate_limited"),
            Duration::ZERO,
            client,
        ),
        None => refused(caller, "rate_limited", client),
    }
    true
}

/// Callers whose rate-limit refusals are remembered for [`rate_limited`]; past it, callers
/// share their tenant's line.
const RATE_LIMITED_CALLERS_TRACKED: usize = 100_000;

/// Records a refusal of an authenticated caller outside a tool call (a session of someone else,
/// too many requests in flight): `reason` is a stable code.
pub fn refused(caller: &Identity, reason: &str, client: Option<ClientAddr>) {
    let (peer, forwarded_for) = addresses(client);
    let trace_id = current_trace_id();
    tracing::info!(
        target: TARGET,
        event = "refused",
        trace_id = trace_id.as_deref(),
        tenant_id = %caller.tenant_id,
        object_id = %caller.object_id,
        client_app = caller.client_app.as_deref().unwrap_or(""),
        app_only = caller.app_only,
        reason,
        client = %peer,
        forwarded_for = forwarded_for.as_deref(),
        "refused"
    );
}

/// Refusals counted since the last line, by reason.
#[derive(Debug, Default)]
struct Counted {
    last_line: Option<Instant>,
    counts: BTreeMap<&'static str, u64>,
}

impl Counted {
    /// Counts a refusal without writing a line (written by the next [`flush`](Self::flush)).
    fn count(&mut self, reason: &'static str) {
        *self.counts.entry(reason).or_default() += 1;
    }

    /// Records a refusal at `now`: `Some(counts since the last line)` when this one is to be
    /// written (the first ever, or the first [`UNAUTHENTICATED_LINE_INTERVAL`] after the last
    /// line), `None` when it is only counted.
    fn record(&mut self, reason: &'static str, now: Instant) -> Option<BTreeMap<&'static str, u64>> {
        let due = self
            .last_line
            .is_none_or(|at| now.duration_since(at) >= UNAUTHENTICATED_LINE_INTERVAL);
        if !due {
            *self.counts.entry(reason).or_default() += 1;
            return None;
        }
        self.last_line = Some(now);
        Some(std::mem::take(&mut self.counts))
    }

    /// The counts not yet written, if any and if a line is due at `now` (always, when
    /// `shutting_down`), taken as written at `now`.
    fn flush(&mut self, now: Instant, shutting_down: bool) -> Option<BTreeMap<&'static str, u64>> {
        let due = self
            .last_line
            .is_none_or(|at| now.duration_since(at) >= UNAUTHENTICATED_LINE_INTERVAL);
        if self.counts.is_empty() || !(due || shutting_down) {
            return None;
        }
        self.last_line = Some(now);
        Some(std::mem::take(&mut self.counts))
    }
}

static COUNTED: Mutex<Counted> = Mutex::new(Counted {
    last_line: None,
    counts: BTreeMap::new(),
});

fn counted() -> std::sync::MutexGuard<'static, Counted> {
    // A poisoned lock only means a panic elsewhere while counting: the counts stay usable.
    COUNTED.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn counts_text(counts: &BTreeMap<&'static str, u64>) -> String {
    counts
        .iter()
        .map(|(reason, count)| format!("{reason}={count}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counts a refusal by the bearer layer, before a caller is admitted (`reason`: the refusal's
/// kind, such as `missing_token`, `bad_signature`, `expired`, `insufficient_scope` for a token
/// without the server-wide scope, or `verifier_unavailable` while Entra's keys cannot be
/// loaded). The first in each [`UNAUTHENTICATED_LINE_INTERVAL`] is written, with how many of each
/// reason came since the previous line; the others are counted until then, or until
/// [`flush_unauthenticated`].
pub fn refused_before_authentication(reason: &'static str, client: Option<ClientAddr>) {
    let Some(since_last_line) = counted().record(reason, Instant::now()) else {
        return;
    };
    let (peer, forwarded_for) = addresses(client);
    tracing::info!(
        target: TARGET,
        event = "refused_counted",
        reason,
        client = %peer,
        forwarded_for = forwarded_for.as_deref(),
        refused_since_last_line = %counts_text(&since_last_line),
        interval_secs = UNAUTHENTICATED_LINE_INTERVAL.as_secs(),
        "refused before authentication (at most one such line a minute; the others are counted)"
    );
}

/// Writes the refusals before authentication counted since the last line, if any, when a line is
/// due (or always, when `shutting_down`). The HTTP transport calls it every
/// [`UNAUTHENTICATED_LINE_INTERVAL`] and at shutdown, so the end of a burst is reported too.
pub fn flush_unauthenticated(shutting_down: bool) {
    let Some(counts) = counted().flush(Instant::now(), shutting_down) else {
        return;
    };
    tracing::info!(
        target: TARGET,
        event = "refused_counted",
        reason = "",
        client = "",
        refused_since_last_line = %counts_text(&counts),
        interval_secs = UNAUTHENTICATED_LINE_INTERVAL.as_secs(),
        "refused before authentication, counted since the last such line"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_minute_carries_the_counts_of_the_rest() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut state = Counted::default();
        let counts = |pairs: &[(&'static str, u64)]| Some(pairs.iter().copied().collect::<BTreeMap<_, _>>());
        // (seconds, reason, what is written)
        let rows = [
            (0, "missing_token", counts(&[])),
            (1, "missing_token", None),
            (2, "bad_signature", None),
            (59, "missing_token", None),
            (
                60,
                "expired",
                counts(&[("bad_signature", 1), ("missing_token", 2)]),
            ),
            (61, "expired", None),
        ];
        for (secs, reason, written) in rows {
            assert_eq!(state.record(reason, at(secs)), written, "at {secs} s");
        }
        // The end of a burst is written by a flush once a line is due, and only once.
        assert_eq!(state.flush(at(70), false), None);
        assert_eq!(state.flush(at(120), false), counts(&[("expired", 1)]));
        assert_eq!(state.flush(at(200), false), None);
        // A flush starts a new interval; at shutdown it writes whatever is counted.
        assert_eq!(state.record("expired", at(130)), None);
        assert_eq!(state.flush(at(131), true), counts(&[("expired", 1)]));
        assert_eq!(state.flush(at(132), true), None);
    }
}
