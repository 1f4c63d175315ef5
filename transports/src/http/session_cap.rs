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

tokio::task_local! {
    /// Set (to the cap) when this request's session creation was refused.
    static REFUSED: Cell<Option<usize>>;
}

/// Runs `request` and reports whether a session creation inside it was refused (and the cap).
pub(crate) async fn watch_refusals<F: Future>(request: F) -> (F::Output, Option<usize>) {
    REFUSED
        .scope(Cell::new(None), async move {
            let output = request.await;
            (output, REFUSED.with(Cell::get))
        })
        .await
}

/// Why a session could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum CappedSessionError {
    /// `MAX_SESSIONS` sessions are open.
    #[error("the legacy session limit (MAX_SESSIONS={0}) is reached")]
    LimitReached(usize),
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
}

impl CappedSessionManager {
    /// At most `max` sessions of `inner` open at once.
    pub fn new(inner: Arc<LocalSessionManager>, max: usize) -> Self {
        CappedSessionManager {
            inner,
            max,
            creating: tokio::sync::Mutex::new(()),
        }
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

    fn refuse(&self) -> CappedSessionError {
        let _ = REFUSED.try_with(|refused| refused.set(Some(self.max)));
        metrics::counter!("mcp_sessions_refused_total").increment(1);
        tracing::warn!(
            max = self.max,
            "refused a new session: the session limit is reached"
        );
        CappedSessionError::LimitReached(self.max)
    }
}

impl SessionManager for CappedSessionManager {
    type Error = CappedSessionError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let _one_at_a_time = self.creating.lock().await;
        if self.open().await >= self.max {
            return Err(self.refuse());
        }
        Ok(self.inner.create_session().await?)
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.inner.initialize_session(id, message).await?)
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
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.resume(id, last_event_id).await?)
    }

    async fn restore_session(&self, id: SessionId) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        // A restore opens a session too (only with a session store configured, which we do not
        // do today): the same cap applies.
        let _one_at_a_time = self.creating.lock().await;
        if !self.inner.has_session(&id).await? && self.open().await >= self.max {
            return Err(self.refuse());
        }
        Ok(self.inner.restore_session(id).await?)
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn creation_past_the_cap_is_refused_and_flagged_even_when_concurrent() {
        let manager = Arc::new(CappedSessionManager::new(
            Arc::new(LocalSessionManager::default()),
            3,
        ));
        let attempts = (0..20).map(|_| {
            let manager = manager.clone();
            tokio::spawn(watch_refusals(
                async move { manager.create_session().await.is_ok() },
            ))
        });
        let mut opened = 0;
        let mut flagged = 0;
        for attempt in attempts {
            let (ok, refused) = attempt.await.unwrap();
            opened += usize::from(ok);
            flagged += usize::from(refused == Some(3));
            assert_eq!(ok, refused.is_none());
        }
        assert_eq!((opened, flagged), (3, 17));
        assert_eq!(manager.open().await, 3);
    }
}
