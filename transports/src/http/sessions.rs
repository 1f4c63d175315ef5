//! Binding legacy sessions to the principal that opened them.
//!
//! rmcp accepts any valid token on any session id it knows, so a user who learned another user's
//! `Mcp-Session-Id` could act inside their session. We record who opened each session (on the
//! response that issues the id) and answer `404` — as if the session did not exist — to anyone
//! else. The 2026-07-28 protocol has no sessions and needs none of this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;
use verifiers::Identity;

/// Who owns a session: tenant and object id, stable across token refreshes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// `tid`.
    pub tenant_id: String,
    /// `oid`.
    pub object_id: String,
}

impl Principal {
    /// The principal of a verified identity: `None` when its token lacks `tid` or `oid` (such
    /// a caller can own no session: `sub` is never a stand-in for `oid`).
    pub fn of(identity: &Identity) -> Option<Self> {
        let (tenant_id, object_id) = identity.principal()?;
        Some(Principal {
            tenant_id: tenant_id.to_owned(),
            object_id: object_id.to_owned(),
        })
    }

    /// The tenant alone (an empty object id): the coarse key of per-caller limits once they
    /// track as many callers as they may (see [`KeyedLimiter`](super::KeyedLimiter)).
    pub fn tenant(&self) -> Self {
        Principal {
            tenant_id: self.tenant_id.clone(),
            object_id: String::new(),
        }
    }

    /// The principal of `identity`, or for a token without `oid`, its tenant with an empty
    /// object id: the key of per-caller limits, where callers without `oid` share their
    /// tenant's allowance.
    pub fn or_tenant(identity: &Identity) -> Self {
        Principal::of(identity).unwrap_or_else(|| Principal {
            tenant_id: identity.tenant_id.clone(),
            object_id: String::new(),
        })
    }
}

/// How long a binding may wait for its session to appear (a restore in progress).
const RESTORE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// One bound session: its owner, its requests in flight, and when it was last used.
#[derive(Debug)]
struct Binding {
    owner: Principal,
    in_flight: usize,
    last_used: Instant,
    /// The protocol version `initialize` negotiated, once it has.
    protocol_version: Option<String>,
}

/// Session id → owner, shared by every connection of one server.
#[derive(Debug, Clone, Default)]
pub struct SessionBindings {
    inner: Arc<Mutex<HashMap<String, Binding>>>,
}

/// A request in flight on a session; dropped when its answer is done.
#[derive(Debug)]
pub(crate) struct SessionUse {
    bindings: SessionBindings,
    session: String,
}

impl Drop for SessionUse {
    fn drop(&mut self) {
        if let Some(binding) = self.bindings.map().get_mut(&self.session) {
            binding.in_flight = binding.in_flight.saturating_sub(1);
            binding.last_used = Instant::now();
        }
    }
}

/// What the bindings say about a request's session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// We never bound this id (rmcp will answer for unknown sessions).
    Unbound,
    /// The caller owns the session.
    Owner,
    /// Someone else owns it.
    Other,
}

impl SessionBindings {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Binding>> {
        // The map stays consistent even if a holder panicked: each operation is one call.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn bind(&self, session: String, owner: Principal) {
        let mut map = self.map();
        map.insert(
            session,
            Binding {
                owner,
                in_flight: 0,
                last_used: Instant::now(),
                protocol_version: None,
            },
        );
        publish(map.len());
    }

    /// Binds `session` to `owner` unless it is bound already (two requests restoring it at
    /// once bind it once).
    pub(crate) fn bind_if_absent(&self, session: &str, owner: Principal, protocol_version: Option<String>) {
        let mut map = self.map();
        map.entry(session.to_owned()).or_insert_with(|| Binding {
            owner,
            in_flight: 0,
            last_used: Instant::now(),
            protocol_version,
        });
        publish(map.len());
    }

    /// The sessions with a request in flight or a stream open.
    pub(crate) fn busy(&self) -> Vec<String> {
        self.map()
            .iter()
            .filter(|(_, binding)| binding.in_flight > 0)
            .map(|(session, _)| session.clone())
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn ownership(&self, session: &str, caller: Option<&Principal>) -> Ownership {
        match self.map().get(session) {
            None => Ownership::Unbound,
            Some(binding) if Some(&binding.owner) == caller => Ownership::Owner,
            Some(_) => Ownership::Other,
        }
    }

    /// Who owns `session`, and for its owner the request counted as in flight (until the guard
    /// is dropped), under one lock: a session the reaper has not taken stays until the request
    /// ends, one it has taken is unbound.
    pub(crate) fn begin_if_owner(
        &self,
        session: &str,
        caller: Option<&Principal>,
    ) -> (Ownership, Option<SessionUse>) {
        let mut map = self.map();
        match map.get_mut(session) {
            None => (Ownership::Unbound, None),
            Some(binding) if Some(&binding.owner) == caller => {
                binding.in_flight += 1;
                binding.last_used = Instant::now();
                drop(map);
                let guard = SessionUse {
                    bindings: self.clone(),
                    session: session.to_owned(),
                };
                (Ownership::Owner, Some(guard))
            }
            Some(_) => (Ownership::Other, None),
        }
    }

    /// Counts a request on `session` as in flight until the returned guard is dropped.
    #[cfg(test)]
    pub(crate) fn begin(&self, session: &str) -> SessionUse {
        if let Some(binding) = self.map().get_mut(session) {
            binding.in_flight += 1;
            binding.last_used = Instant::now();
        }
        SessionUse {
            bindings: self.clone(),
            session: session.to_owned(),
        }
    }

    /// Records the protocol version `session` negotiated.
    /// The owner of `session`, if it is bound.
    pub(crate) fn owner(&self, session: &str) -> Option<Principal> {
        self.map().get(session).map(|binding| binding.owner.clone())
    }

    pub(crate) fn set_protocol_version(&self, session: &str, version: String) {
        if let Some(binding) = self.map().get_mut(session) {
            binding.protocol_version = Some(version);
        }
    }

    /// The protocol version `session` negotiated, if known.
    pub(crate) fn protocol_version(&self, session: &str) -> Option<String> {
        self.map().get(session)?.protocol_version.clone()
    }

    /// Unbinds, and returns, the sessions with no request in flight whose last use ended
    /// `idle` ago or longer: under one lock, so none of them can become busy in between.
    pub(crate) fn take_idle_for(&self, idle: std::time::Duration) -> Vec<String> {
        let now = Instant::now();
        let mut map = self.map();
        let idle: Vec<String> = map
            .iter()
            .filter(|(_, b)| b.in_flight == 0 && now.saturating_duration_since(b.last_used) >= idle)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &idle {
            map.remove(id);
        }
        publish(map.len());
        idle
    }

    /// How many sessions `owner` holds.
    pub(crate) fn held_by(&self, owner: &Principal) -> usize {
        self.map().values().filter(|b| &b.owner == owner).count()
    }

    /// Unbinds, and returns, `owner`'s least recently used session with no request in flight.
    pub(crate) fn take_least_recent_idle(&self, owner: &Principal) -> Option<String> {
        let mut map = self.map();
        let id = map
            .iter()
            .filter(|(_, b)| &b.owner == owner && b.in_flight == 0)
            .min_by_key(|(_, b)| b.last_used)
            .map(|(id, _)| id.clone())?;
        map.remove(&id);
        publish(map.len());
        Some(id)
    }

    pub(crate) fn unbind(&self, session: &str) {
        let mut map = self.map();
        map.remove(session);
        publish(map.len());
    }

    /// Keeps only the bindings for which `alive` says the session still exists.
    pub(crate) fn retain(&self, mut alive: impl FnMut(&str) -> bool) {
        let mut map = self.map();
        // A binding made a moment ago may be a session being restored from the shared store,
        // which rmcp has not created yet; one with a request in flight is in use.
        map.retain(|session, binding| {
            alive(session) || binding.in_flight > 0 || binding.last_used.elapsed() < RESTORE_GRACE
        });
        publish(map.len());
    }

    /// How many sessions are bound.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// `true` when no session is bound.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `mcp_open_sessions`: legacy sessions currently open.
fn publish(open: usize) {
    metrics::gauge!("mcp_open_sessions").set(open as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(oid: &str) -> Principal {
        Principal {
            tenant_id: "t".into(),
            object_id: oid.into(),
        }
    }

    #[test]
    fn only_the_owner_matches() {
        let b = SessionBindings::default();
        b.bind("s1".into(), p("alice"));
        assert_eq!(b.ownership("s1", Some(&p("alice"))), Ownership::Owner);
        assert_eq!(b.ownership("s1", Some(&p("bob"))), Ownership::Other);
        assert_eq!(b.ownership("s1", None), Ownership::Other);
        assert_eq!(b.ownership("s2", Some(&p("bob"))), Ownership::Unbound);
        b.unbind("s1");
        assert!(b.is_empty());
    }

    #[test]
    fn same_object_id_in_another_tenant_is_someone_else() {
        let b = SessionBindings::default();
        b.bind("s".into(), p("alice"));
        let other_tenant = Principal {
            tenant_id: "t2".into(),
            object_id: "alice".into(),
        };
        assert_eq!(b.ownership("s", Some(&other_tenant)), Ownership::Other);
    }

    #[tokio::test(start_paused = true)]
    async fn the_least_recently_used_idle_session_is_the_one_to_go() {
        let b = SessionBindings::default();
        let tick = || tokio::time::advance(std::time::Duration::from_secs(1));
        for id in ["old", "busy", "new"] {
            b.bind(id.into(), p("alice"));
            tick().await;
        }
        b.bind("bobs".into(), p("bob"));
        let busy = b.begin("busy");
        tick().await;
        drop(b.begin("old")); // "old" was used last, and is idle again
        assert_eq!(b.held_by(&p("alice")), 3);
        assert_eq!(b.take_least_recent_idle(&p("alice")).as_deref(), Some("new"));
        assert_eq!(b.held_by(&p("alice")), 2);
        tick().await;
        drop(busy); // ends after "old" was last used
        assert_eq!(b.take_least_recent_idle(&p("alice")).as_deref(), Some("old"));
        assert_eq!(b.take_least_recent_idle(&p("carol")), None);
        assert_eq!(b.held_by(&p("bob")), 1);
    }
}

/// Requests in flight per principal (`MAX_STREAMS_PER_PRINCIPAL`): every request counts until
/// its answer is done, so an open event stream or a long tool call holds one of its owner's
/// slots, and nobody else's.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrincipalStreams {
    inner: Arc<Mutex<HashMap<Principal, usize>>>,
}

/// One request of a principal in flight.
#[derive(Debug)]
pub(crate) struct PrincipalStream {
    streams: PrincipalStreams,
    owner: Principal,
}

impl PrincipalStreams {
    fn map(&self) -> MutexGuard<'_, HashMap<Principal, usize>> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for one more request of `owner`, or `None` when it has `max` in flight.
    pub(crate) fn try_begin(&self, owner: &Principal, max: usize) -> Option<PrincipalStream> {
        let mut map = self.map();
        let open = map.entry(owner.clone()).or_default();
        if *open >= max {
            return None;
        }
        *open += 1;
        Some(PrincipalStream {
            streams: self.clone(),
            owner: owner.clone(),
        })
    }
}

impl Drop for PrincipalStream {
    fn drop(&mut self) {
        let mut map = self.streams.map();
        if let Some(open) = map.get_mut(&self.owner) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                // The map holds only principals with something in flight: bounded by requests.
                map.remove(&self.owner);
            }
        }
    }
}
