//! The stdio caller: the token from a [`TokenSource`], verified, cached until it expires.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thiserror::Error;
use tokio::time::Instant;
use verifiers::{AccessToken, AuthError, Identity, TokenVerifier};

use super::source::{az_example, TokenSource, TokenSourceError};

/// Refresh a command token this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Run the token command at most this often while the old token is still valid.
const MIN_COMMAND_INTERVAL: Duration = Duration::from_secs(10);

/// Why the stdio caller has no valid identity. The text says how to fix it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StdioAuthError {
    /// The source could not produce a token.
    #[error(transparent)]
    Source(#[from] TokenSourceError),
    /// The token was rejected.
    #[error("{}", rejection(source_name, error, scope))]
    Rejected {
        /// Which variable the token came from.
        source_name: &'static str,
        /// Why it was rejected.
        error: AuthError,
        /// The scope URI a token needs, for the fix (empty: unknown).
        scope: String,
    },
}

/// The verifier's reason, and for an expired token the fix for this source in place of the
/// verifier's generic "get a new token" (said once, with the scope filled in).
fn rejection(source_name: &str, error: &AuthError, scope: &str) -> String {
    if let AuthError::Unavailable(_) = error {
        // Not the token's fault: say so, without HTTP wording (no status code on stdio).
        return format!(
            "cannot verify the token from {source_name}: the identity provider's signing keys could not be fetched; check the network path to AZURE_AUTHORITY_HOST, then start the server again"
        );
    }
    let expiry = match error {
        AuthError::InvalidToken(invalid) => invalid.expiry(),
        _ => None,
    };
    let Some(reason) = expiry else {
        return format!("the token from {source_name} was rejected: {error}");
    };
    let fix = match source_name {
        "MCP_ACCESS_TOKEN" => format!(
            "get a new token ({}) and restart the server, or set MCP_ACCESS_TOKEN_COMMAND so it refreshes the token itself",
            az_example(scope)
        ),
        "MCP_ACCESS_TOKEN_FILE" => "write a fresh token to the file; it is re-read when it changes".to_owned(),
        _ => "the command printed an expired token; check that it fetches a new one".to_owned(),
    };
    format!("the token from {source_name} was rejected: {reason}; {fix}")
}

struct Cached {
    token: Option<String>,
    identity: Option<Arc<Identity>>,
    file_stamp: Option<(SystemTime, u64)>,
    last_command_run: Option<Instant>,
}

/// The caller of a stdio server: where its token comes from, and the verifier that checks it.
///
/// [`identity`](Self::identity) is cheap when nothing changed (a cached identity, one `stat` for a
/// file source); it re-reads the file when it changed, re-runs the command shortly before expiry,
/// and re-verifies the token once the cached identity has expired.
pub struct StdioAuth {
    verifier: Arc<dyn TokenVerifier>,
    source: TokenSource,
    scope: String,
    cached: tokio::sync::Mutex<Cached>,
}

impl std::fmt::Debug for StdioAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioAuth")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl StdioAuth {
    /// A caller whose token comes from `source`, verified by `verifier`.
    pub fn new(verifier: Arc<dyn TokenVerifier>, source: TokenSource) -> Self {
        StdioAuth {
            verifier,
            source,
            scope: String::new(),
            cached: tokio::sync::Mutex::new(Cached {
                token: None,
                identity: None,
                file_stamp: None,
                last_command_run: None,
            }),
        }
    }

    /// Names the scope URI a token needs (`api://<client-id>/access_as_user`), so the fix for an
    /// expired token is a command that can be copied as it is.
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The verified caller now, refreshing the token if needed.
    pub async fn identity(&self) -> Result<Arc<Identity>, StdioAuthError> {
        self.caller().await.map(|(identity, _)| identity)
    }

    /// The verified caller now and its token (opaque, for on-behalf-of calls), refreshing the
    /// token if needed.
    pub async fn caller(&self) -> Result<(Arc<Identity>, AccessToken), StdioAuthError> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if self.needs_new_token(&mut cached, now).await {
            let token = self.source.fetch().await?;
            if matches!(self.source, TokenSource::Command { .. }) {
                cached.last_command_run = Some(Instant::now());
            }
            if cached.token.as_deref() != Some(token.as_str()) {
                tracing::debug!(source = self.source.name(), "using a new access token");
                cached.identity = None;
            }
            cached.token = Some(token);
        }
        let token = cached.token.clone().unwrap_or_default();
        if let Some(identity) = &cached.identity {
            if !identity.is_expired_at(now) {
                return Ok((Arc::clone(identity), AccessToken::new(token)));
            }
        }
        match self.verifier.verify(&token).await {
            Ok(identity) => {
                cached.identity = Some(Arc::clone(&identity));
                Ok((identity, AccessToken::new(token)))
            }
            Err(error) => {
                cached.identity = None;
                // The caller gets the full reason as an error; this is the trail for the log.
                tracing::info!(kind = error.kind(), reason = %error, source = self.source.name(), "access token rejected");
                Err(StdioAuthError::Rejected {
                    source_name: self.source.name(),
                    error,
                    scope: self.scope.clone(),
                })
            }
        }
    }

    async fn needs_new_token(&self, cached: &mut Cached, now: SystemTime) -> bool {
        if cached.token.is_none() {
            cached.file_stamp = self.source.file_stamp().await;
            return true;
        }
        match &self.source {
            TokenSource::Fixed(_) => false,
            TokenSource::File(_) => {
                let stamp = self.source.file_stamp().await;
                let changed = stamp != cached.file_stamp;
                cached.file_stamp = stamp;
                changed
            }
            TokenSource::Command { .. } => {
                let expires_soon = cached
                    .identity
                    .as_ref()
                    .and_then(|id| id.expires_at)
                    .is_none_or(|exp| exp <= now + REFRESH_MARGIN);
                let expired = cached.identity.as_ref().is_none_or(|id| id.is_expired_at(now));
                let ran_recently = cached
                    .last_command_run
                    .is_some_and(|at| at.elapsed() < MIN_COMMAND_INTERVAL);
                expires_soon && (expired || !ran_recently)
            }
        }
    }
}
