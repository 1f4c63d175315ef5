//! Binding legacy sessions to the principal that opened them.
//!
//! rmcp accepts any valid token on any session id it knows, so a user who learned another user's
//! `Mcp-Session-Id` could act inside their session. We record who opened each session (on the
//! response that issues the id) and answer `404` — as if the session did not exist — to anyone
//! else. The 2026-07-28 protocol has no sessions and needs none of this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// The principal of a verified identity.
    pub fn of(identity: &Identity) -> Self {
        Principal {
            tenant_id: identity.tenant_id.clone(),
            object_id: identity.object_id.clone(),
        }
    }
}

/// Session id → owner, shared by every connection of one server.
#[derive(Debug, Clone, Default)]
pub struct SessionBindings {
    inner: Arc<Mutex<HashMap<String, Principal>>>,
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
    fn map(&self) -> MutexGuard<'_, HashMap<String, Principal>> {
        // The map stays consistent even if a holder panicked: each operation is one call.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn bind(&self, session: String, owner: Principal) {
        let mut map = self.map();
        map.insert(session, owner);
        publish(map.len());
    }

    pub(crate) fn ownership(&self, session: &str, caller: &Principal) -> Ownership {
        match self.map().get(session) {
            None => Ownership::Unbound,
            Some(owner) if owner == caller => Ownership::Owner,
            Some(_) => Ownership::Other,
        }
    }

    pub(crate) fn unbind(&self, session: &str) {
        let mut map = self.map();
        map.remove(session);
        publish(map.len());
    }

    /// Keeps only the bindings for which `alive` says the session still exists.
    pub(crate) fn retain(&self, mut alive: impl FnMut(&str) -> bool) {
        let mut map = self.map();
        map.retain(|session, _| alive(session));
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
        assert_eq!(b.ownership("s1", &p("alice")), Ownership::Owner);
        assert_eq!(b.ownership("s1", &p("bob")), Ownership::Other);
        assert_eq!(b.ownership("s2", &p("bob")), Ownership::Unbound);
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
        assert_eq!(b.ownership("s", &other_tenant), Ownership::Other);
    }
}
