use std::sync::Arc;

use async_trait::async_trait;

use crate::{AuthError, Identity};

/// Turns a bearer token into a verified [`Identity`], or says why it cannot.
///
/// Implementations must be cheap to call concurrently: transports call `verify` once per request
/// (HTTP) or per tool call (stdio). They must never panic and never log the token itself.
#[async_trait]
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token` (the bare credential, without the `Bearer ` prefix).
    ///
    /// The identity is shared (`Arc`): a verifier that caches verified tokens hands every request
    /// carrying the same token the same identity, without copying its claims per request.
    async fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError>;

    /// Whether the verifier can currently accept tokens at all (for a readiness probe).
    ///
    /// The Entra verifier is not ready until it holds signing keys. Defaults to ready.
    fn readiness(&self) -> Readiness {
        Readiness::Ready
    }

    /// The issuer identifier of the authorization server this verifier trusts, as that server's
    /// own metadata states it (RFC 9728 §2 `authorization_servers`; RFC 8414 §3.3: clients compare
    /// it with the `issuer` they fetch). `None` when unknown (not discovered yet) or when no
    /// single issuer exists (Entra's multi-tenant `{tenantid}` template); the transport then
    /// advertises its configured authority. Defaults to `None`.
    fn authorization_server(&self) -> Option<String> {
        None
    }
}

/// Whether a verifier can accept tokens right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Tokens can be verified.
    Ready,
    /// No token can be verified yet; the reason says why (for example, no signing keys loaded).
    NotReady(String),
}

impl Readiness {
    /// `true` for [`Readiness::Ready`].
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

#[async_trait]
impl<T: TokenVerifier + ?Sized> TokenVerifier for Arc<T> {
    async fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        (**self).verify(token).await
    }

    fn readiness(&self) -> Readiness {
        (**self).readiness()
    }

    fn authorization_server(&self) -> Option<String> {
        (**self).authorization_server()
    }
}
