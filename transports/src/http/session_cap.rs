//! The `MAX_SESSIONS` cap, enforced where rmcp issues a session id.
//!
//! [`CappedSessionManager`] wraps rmcp's [`LocalSessionManager`] and refuses `create_session`
//! (and a session restore) once `max` sessions are open. Every way rmcp can open a session goes
//! through those two calls, whatever the request looked like (an `initialize` with or without
//! `Mcp-Method`, concurrent or not), so no request shape can get around the cap. Creations are
//! serialised by a mutex, so the count check and the insert cannot race.
//!
//! rmcp answers a `create_session` error with a `500` (and logs an error line); the auth layer runs
//! each request inside [`watch_refusals`] and turns that answer into `503` with `Retry-After` (see
//! `auth.rs`). There is no earlier check on the request's shape: any guess at which requests open
//! a session either lets one through (`Mcp-Method: initialize`) or refuses requests that open
//! none (a malformed body must still get its `415`/`400`).

use std::cell::Cell;
use std::future::Future;

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{EventStore, ServerSseMessage};
use rmcp::transport::streamable_http_server::{RestoreOutcome, SessionId, SessionManager};
use std::sync::Arc;

use super::event_store::SessionEvents;
use super::sessions::{Principal, SessionBindings};

/// Why this request's session creation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `MAX_SESSIONS` sessions are open.
    Total(usize),
    /// The caller holds `MAX_SESSIONS_PER_PRINCIPAL` sessions, each with a request in flight.
    Principal(usize),
    /// The caller's token has no `oid` (or `tid`): it can own no session.
    NoPrincipal,
    /// The session's worker has ended (it was closed while this request ran): the session is
    /// gone, which the transport spec answers with `404`, never rmcp's `500`.
    SessionGone,
    /// `Last-Event-ID` names no event this server still holds: the stream cannot be resumed.
    UnknownEvent,
    /// The shared session store did not answer when a session was created.
    StoreUnavailable,
}

tokio::task_local! {
    /// Set when this request's session creation was refused.
    static REFUSED: Cell<Option<Refusal>>;
    /// Who is asking: `Some(None)` for a caller with no (`tid`, `oid`).
    static CALLER: Option<Principal>;
}

/// Runs `request` on behalf of `caller` and reports whether a session creation inside it was
/// refused, and why.
pub(crate) async fn watch_refusals<F: Future>(
    caller: Option<Principal>,
    request: F,
) -> (F::Output, Option<Refusal>) {
    REFUSED
        .scope(Cell::new(None), async move {
            let output = CALLER.scope(caller, request).await;
            (output, REFUSED.with(|r| r.take()))
        })
        .await
}

/// Why a session could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum CappedSessionError {
    /// `MAX_SESSIONS` sessions are open.
    #[error("the legacy session limit (MAX_SESSIONS={0}) is reached")]
    LimitReached(usize),
    /// The caller holds `MAX_SESSIONS_PER_PRINCIPAL` sessions, none of them idle.
    #[error("the caller's share of legacy sessions (MAX_SESSIONS_PER_PRINCIPAL={0}) is in use")]
    PrincipalLimitReached(usize),
    /// The caller has no (`tid`, `oid`) to bind a session to.
    #[error("the caller's token has no oid claim, so no session can be bound to it")]
    NoPrincipal,
    /// The session (or the stream to resume) is gone.
    #[error("the session or the event stream is gone")]
    Gone,
    /// The shared session store (Redis) did not answer.
    #[error("the shared session store does not answer")]
    StoreUnavailable,
    /// rmcp's own session error.
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

/// rmcp's [`LocalSessionManager`] with a cap on open sessions (see the module docs).
#[derive(Debug)]
pub struct CappedSessionManager {
    inner: Arc<LocalSessionManager>,
    max: usize,
    creating: tokio::sync::Mutex<()>,
    /// Who owns which session (bound here, as the session is created).
    bindings: SessionBindings,
    per_principal: usize,
    /// Where the sessions' events are kept for resumption, when they are.
    events: Option<Arc<dyn SessionEvents>>,
    /// Sessions shared with other replicas: each new one's owner is recorded there.
    shared: Option<Arc<crate::redis::RedisSessions>>,
}

impl CappedSessionManager {
    /// At most `max` sessions of `inner` open at once.
    pub fn new(inner: Arc<LocalSessionManager>, max: usize) -> Self {
        CappedSessionManager {
            inner,
            max,
            creating: tokio::sync::Mutex::new(()),
            bindings: SessionBindings::default(),
            per_principal: usize::MAX,
            events: None,
            shared: None,
        }
    }

    /// Records each new session's owner in `shared` before the client learns its id; a
    /// session whose owner cannot be recorded is closed and refused
    /// ([`CappedSessionError::StoreUnavailable`]).
    pub fn with_shared(mut self, shared: Arc<crate::redis::RedisSessions>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Checks each resume against `events`, the store `inner` keeps its sessions' events in: a
    /// `Last-Event-ID` that is not one of the session's own kept events is refused (`400`)
    /// instead of rmcp's empty `200`.
    pub fn with_events(mut self, events: Arc<dyn SessionEvents>) -> Self {
        self.events = Some(events);
        self
    }

    /// `stream` of session `id`, its events claimed for the session as they pass.
    fn claimed(
        &self,
        id: &SessionId,
        stream: impl Stream<Item = ServerSseMessage> + Send + Sync + 'static,
    ) -> impl Stream<Item = ServerSseMessage> + Send + Sync + 'static {
        use futures::StreamExt as _;
        let claim = self
            .events
            .clone()
            .map(|events| (events, Arc::<str>::from(id.as_ref())));
        // Every event, not just the first: a stream whose events all expired starts afresh in
        // the store, and must still be its session's. The claim is made before the client sees
        // the event, so a resume anywhere (shared events) finds it.
        let claimed = stream.then(move |event| {
            let claim = claim.clone();
            async move {
                if let (Some((events, session)), Some(event_id)) = (&claim, &event.event_id) {
                    events.claim(event_id, session).await;
                }
                event
            }
        });
        SyncStream(std::sync::Mutex::new(Box::pin(claimed)))
    }

    /// Closes every session that has had no request in flight for `idle` (rmcp's own timer
    /// counts from the last event, which would close a session during a long call or with a
    /// GET stream open). Returns how many were closed.
    pub(crate) async fn close_idle(&self, idle: std::time::Duration) -> usize {
        let idle_sessions = self.bindings.take_idle_for(idle);
        for id in &idle_sessions {
            if let Err(error) = self.inner.close_session(&SessionId::from(id.as_str())).await {
                tracing::debug!(%error, "an idle session was already gone");
            }
        }
        idle_sessions.len()
    }

    /// Binds each new session to the caller it is created for, in `bindings`, and lets one
    /// principal hold at most `per_principal` sessions: past it, the principal's least recently
    /// used session with no request in flight is closed to make room, and when every one is
    /// busy the new session is refused.
    pub fn with_principal_share(mut self, bindings: SessionBindings, per_principal: usize) -> Self {
        self.bindings = bindings;
        self.per_principal = per_principal;
        self
    }

    /// The wrapped manager.
    pub fn inner(&self) -> &Arc<LocalSessionManager> {
        &self.inner
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Sessions open now.
    pub async fn open(&self) -> usize {
        self.inner.sessions.read().await.len()
    }

    fn refuse(&self, why: Refusal) -> CappedSessionError {
        let _ = REFUSED.try_with(|refused| refused.set(Some(why.clone())));
        metrics::counter!("mcp_sessions_refused_total").increment(1);
        match why {
            Refusal::Total(max) => {
                tracing::warn!(max, "refused a new session: the session limit is reached");
                CappedSessionError::LimitReached(max)
            }
            Refusal::Principal(max) => {
                tracing::info!(max, "refused a new session: the caller's sessions are all busy");
                CappedSessionError::PrincipalLimitReached(max)
            }
            Refusal::NoPrincipal => {
                tracing::info!("refused a new session: the caller's token has no oid");
                CappedSessionError::NoPrincipal
            }
            Refusal::SessionGone | Refusal::UnknownEvent => CappedSessionError::Gone,
            Refusal::StoreUnavailable => {
                tracing::warn!("refused a new session: the shared session store does not answer");
                CappedSessionError::StoreUnavailable
            }
        }
    }

    /// rmcp's error for `id`, with a session whose worker has ended removed at once and the
    /// request's answer turned into `404` (see [`Refusal::SessionGone`]).
    async fn gone_if_terminated(
        &self,
        id: &SessionId,
        error: LocalSessionManagerError,
    ) -> CappedSessionError {
        use rmcp::transport::streamable_http_server::session::local::SessionError;
        if matches!(
            error,
            LocalSessionManagerError::SessionError(SessionError::SessionServiceTerminated)
                | LocalSessionManagerError::SessionNotFound(_)
        ) {
            let _ = self.inner.close_session(id).await;
            self.bindings.unbind(id);
            return self.refuse(Refusal::SessionGone);
        }
        error.into()
    }

    /// Makes room for one more session of the caller (closing its least recently used idle
    /// session when it holds its share), or says why not.
    pub(crate) async fn make_room(&self, caller: &Principal) -> Result<(), CappedSessionError> {
        if self.bindings.held_by(caller) < self.per_principal {
            return Ok(());
        }
        // Taken (unbound) under the bindings' lock only if still idle, so a request that starts
        // on it from now on finds no session (404) rather than one being closed under it.
        let Some(victim) = self.bindings.take_least_recent_idle(caller) else {
            return Err(self.refuse(Refusal::Principal(self.per_principal)));
        };
        if let Err(error) = self.inner.close_session(&SessionId::from(victim.as_str())).await {
            tracing::debug!(%error, "closing a session to make room failed; it was already gone");
        }
        // Evicted everywhere: another replica must not bring it back.
        if let Some(shared) = &self.shared {
            if let Err(error) = shared.forget(&victim).await {
                tracing::debug!(%error, "could not end an evicted session in the shared store");
            }
        }
        metrics::counter!("mcp_sessions_evicted_total").increment(1);
        tracing::info!(
            tenant = %caller.tenant_id,
            object_id = %caller.object_id,
            "closed the caller's least recently used idle session: it holds MAX_SESSIONS_PER_PRINCIPAL sessions"
        );
        Ok(())
    }
}

impl SessionManager for CappedSessionManager {
    type Error = CappedSessionError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let _one_at_a_time = self.creating.lock().await;
        // Every session has an owner: outside a request run by the auth layer (no caller in
        // scope) or for a caller without (tid, oid), none is opened.
        let Some(caller) = CALLER.try_with(Clone::clone).ok().flatten() else {
            return Err(self.refuse(Refusal::NoPrincipal));
        };
        self.make_room(&caller).await?;
        if self.open().await >= self.max {
            return Err(self.refuse(Refusal::Total(self.max)));
        }
        let (id, transport) = self.inner.create_session().await?;
        // Bound under the lock, so the caller's share counts it at once; the store is written
        // outside it, so a slow Redis delays this creation only.
        self.bindings.bind(id.to_string(), caller.clone());
        drop(_one_at_a_time);
        if let Some(shared) = &self.shared {
            let owner = crate::redis::SharedOwner {
                owner: caller,
                protocol_version: None,
            };
            if let Err(error) = shared.set_owner(&id, &owner, false).await {
                tracing::debug!(%error, "could not record a new session's owner in the shared store");
                self.bindings.unbind(&id);
                let _ = self.inner.close_session(&id).await;
                return Err(self.refuse(Refusal::StoreUnavailable));
            }
        }
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        let response = self.inner.initialize_session(id, message).await?;
        // The negotiated version decides whether the session's streams carry priming events.
        if let Some(version) = negotiated_version(&response) {
            if let (Some(shared), Some(owner)) = (&self.shared, self.bindings.owner(id)) {
                let owner = crate::redis::SharedOwner {
                    owner,
                    protocol_version: Some(version.clone()),
                };
                // Best effort: without it, another replica decides on priming events by the
                // request's own version header.
                if let Err(error) = shared.set_owner(id, &owner, true).await {
                    tracing::debug!(%error, "could not record a session's protocol version in the shared store");
                }
            }
            self.bindings.set_protocol_version(id, version);
        }
        Ok(response)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        Ok(self.inner.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        match self.inner.create_stream(id, message).await {
            Ok(stream) => Ok(self.claimed(id, stream)),
            Err(error) => Err(self.gone_if_terminated(id, error).await),
        }
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        match self.inner.accept_message(id, message).await {
            Ok(()) => Ok(()),
            Err(error) => Err(self.gone_if_terminated(id, error).await),
        }
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        match self.inner.create_standalone_stream(id).await {
            Ok(stream) => Ok(self.claimed(id, stream)),
            Err(error) => Err(self.gone_if_terminated(id, error).await),
        }
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        type Events = std::pin::Pin<Box<dyn Stream<Item = ServerSseMessage> + Send + Sync>>;
        use futures::StreamExt as _;
        if !self.inner.has_session(id).await? {
            return Err(self.refuse(Refusal::SessionGone));
        }
        let Some(events) = &self.events else {
            return match self.inner.resume(id, last_event_id).await {
                Ok(stream) => Ok(Box::pin(stream) as Events),
                Err(error) => Err(self.gone_if_terminated(id, error).await),
            };
        };
        // The standalone GET stream (rmcp's priming id for it is "0"): what it missed, then
        // live again, so server-to-client messages keep flowing after a reconnect.
        let common = format!("{id}:common");
        let missed = if last_event_id == "0" {
            Some(events.stream_after(&common, None).await)
        } else if events.stream_of(&last_event_id).await.as_deref() == Some(common.as_str()) {
            Some(events.stream_after(&common, Some(&last_event_id)).await)
        } else {
            None
        };
        if let Some(missed) = missed {
            let live = match self.inner.create_standalone_stream(id).await {
                Ok(live) => self.claimed(id, live),
                Err(error) => return Err(self.gone_if_terminated(id, error).await),
            };
            return Ok(Box::pin(futures::stream::iter(missed).chain(live)) as Events);
        }
        // A request's stream: replayed from the store, the final answer included. rmcp answers
        // a failed resume with an empty 200, which a client re-polls for ever: an id the store
        // does not hold for this session (never issued, expired, another session's) is said.
        if !events.belongs_to(&last_event_id, id).await {
            return Err(self.refuse(Refusal::UnknownEvent));
        }
        match self.inner.resume(id, last_event_id).await {
            Ok(stream) => Ok(Box::pin(stream) as Events),
            Err(error) => Err(self.gone_if_terminated(id, error).await),
        }
    }

    async fn restore_session(&self, id: SessionId) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        // A restore opens a session too (only with a session store configured, which we do not
        // do today): the same cap applies.
        let _one_at_a_time = self.creating.lock().await;
        if !self.inner.has_session(&id).await? && self.open().await >= self.max {
            return Err(self.refuse(Refusal::Total(self.max)));
        }
        Ok(self.inner.restore_session(id).await?)
    }

    /// None, on purpose: the sessions keep their events in `inner`'s store, and rmcp would
    /// otherwise also persist every 2026-07-28 answer and replay any event id on a session-less
    /// `GET`. 2026-07-28 requests have no session to resume in.
    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        None
    }
}

/// The `protocolVersion` of an `initialize` response, if `response` is one.
fn negotiated_version(response: &ServerJsonRpcMessage) -> Option<String> {
    let value = serde_json::to_value(response).ok()?;
    Some(value.get("result")?.get("protocolVersion")?.as_str()?.to_owned())
}

/// A stream that is `Sync` because its inner stream sits behind a mutex, locked only by the one
/// task that polls it (rmcp asks for `Sync` streams; a stream of boxed futures is not).
struct SyncStream(std::sync::Mutex<std::pin::Pin<Box<dyn Stream<Item = ServerSseMessage> + Send>>>);

impl Stream for SyncStream {
    type Item = ServerSseMessage;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ServerSseMessage>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.as_mut().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Principal {
        Principal {
            tenant_id: "t".into(),
            object_id: "alice".into(),
        }
    }

    #[tokio::test]
    async fn a_principal_at_its_share_gives_up_its_idle_session_or_is_refused() {
        let bindings = SessionBindings::default();
        let manager = CappedSessionManager::new(Arc::new(LocalSessionManager::default()), 100)
            .with_principal_share(bindings.clone(), 2);
        let open = |who: Option<Principal>| watch_refusals(who, manager.create_session());
        let (first, _) = open(Some(alice())).await;
        let first = first.unwrap().0;
        let (second, _) = open(Some(alice())).await;
        let second = second.unwrap().0;
        let _busy = bindings.begin(&second);
        // At the share: the idle one (first) goes, the busy one stays.
        let (third, refused) = open(Some(alice())).await;
        assert!(third.is_ok() && refused.is_none());
        assert!(!manager.has_session(&first).await.unwrap());
        assert!(manager.has_session(&second).await.unwrap());
        assert_eq!(bindings.held_by(&alice()), 2);
        // Both busy now: refused, and nobody else is affected.
        let third = third.unwrap().0;
        let _busy_too = bindings.begin(&third);
        let (_, refused) = open(Some(alice())).await;
        assert_eq!(refused, Some(Refusal::Principal(2)));
        let bob = Principal {
            object_id: "bob".into(),
            ..alice()
        };
        assert!(open(Some(bob)).await.0.is_ok());
        // No oid: no session at all.
        let (_, refused) = open(None).await;
        assert_eq!(refused, Some(Refusal::NoPrincipal));
    }

    #[tokio::test]
    async fn creation_past_the_cap_is_refused_and_flagged_even_when_concurrent() {
        let manager = Arc::new(CappedSessionManager::new(
            Arc::new(LocalSessionManager::default()),
            3,
        ));
        let attempts = (0..20).map(|_| {
            let manager = manager.clone();
            tokio::spawn(watch_refusals(Some(alice()), async move {
                manager.create_session().await.is_ok()
            }))
        });
        let mut opened = 0;
        let mut flagged = 0;
        for attempt in attempts {
            let (ok, refused) = attempt.await.unwrap();
            opened += usize::from(ok);
            flagged += usize::from(refused == Some(Refusal::Total(3)));
            assert_eq!(ok, refused.is_none());
        }
        assert_eq!((opened, flagged), (3, 17));
        assert_eq!(manager.open().await, 3);
    }
}
