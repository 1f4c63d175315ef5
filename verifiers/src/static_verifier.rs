//! A verifier with a fixed token → identity table, for tests and the local dev mode.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{AccessPolicy, AuthError, Identity, InvalidToken, TokenVerifier};

/// Maps fixed tokens to fixed identities, then applies the same [`AccessPolicy`] as the Entra
/// verifier.
///
/// Never use it in production: anyone who learns a token is that identity forever. The server only
/// builds one for `--dev`, which also refuses to listen on anything but loopback.
#[derive(Clone, Default)]
pub struct StaticVerifier {
    tokens: HashMap<String, Arc<Identity>>,
    policy: AccessPolicy,
}

impl std::fmt::Debug for StaticVerifier {
    // The tokens are credentials: show how many there are, never what they are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticVerifier")
            .field("tokens", &self.tokens.len())
            .field("policy", &self.policy)
            .finish()
    }
}

impl StaticVerifier {
    /// An empty verifier enforcing `policy`.
    pub fn new(policy: AccessPolicy) -> Self {
        StaticVerifier {
            tokens: HashMap::new(),
            policy,
        }
    }

    /// Adds a token that verifies as `identity`.
    pub fn with_token(mut self, token: impl Into<String>, identity: Identity) -> Self {
        self.tokens.insert(token.into(), Arc::new(identity));
        self
    }
}

#[async_trait]
impl TokenVerifier for StaticVerifier {
    async fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        let identity = self.tokens.get(token).ok_or(InvalidToken::Unknown)?;
        if let Some(expired_at) = identity
            .expires_at
            .filter(|_| identity.is_expired_at(std::time::SystemTime::now()))
        {
            return Err(InvalidToken::Expired { expired_at }.into());
        }
        self.policy.authorize(identity)?;
        Ok(Arc::clone(identity))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::ScopeProblem;

    fn verifier() -> StaticVerifier {
        StaticVerifier::new(AccessPolicy::scopes(["access_as_user"]))
            .with_token(
                "good",
                Identity::builder("a", "t").scopes(["access_as_user"]).build(),
            )
            .with_token("noscope", Identity::builder("b", "t").scopes(["other"]).build())
            .with_token(
                "old",
                Identity::builder("c", "t")
                    .scopes(["access_as_user"])
                    .expires_at(SystemTime::now() - Duration::from_secs(10))
                    .build(),
            )
    }

    #[tokio::test]
    async fn known_token_with_scope_verifies() {
        assert_eq!(verifier().verify("good").await.unwrap().object_id, "a");
    }

    #[tokio::test]
    async fn unknown_token_is_invalid() {
        assert_eq!(verifier().verify("nope").await, Err(InvalidToken::Unknown.into()));
    }

    #[tokio::test]
    async fn known_token_without_scope_is_insufficient() {
        let err = verifier().verify("noscope").await.unwrap_err();
        assert!(matches!(
            err,
            AuthError::InsufficientScope {
                problem: ScopeProblem::MissingScopes { .. },
                ..
            }
        ));
    }

    #[tokio::test]
    async fn expired_identity_is_rejected() {
        let err = verifier().verify("old").await.unwrap_err();
        assert!(matches!(
            err,
            AuthError::InvalidToken(InvalidToken::Expired { .. })
        ));
    }

    #[test]
    fn debug_output_never_shows_tokens() {
        let shown = format!("{:?}", verifier());
        assert!(!shown.contains("good") && !shown.contains("noscope"), "{shown}");
    }
}
