//! Calling other APIs as the caller: Entra's on-behalf-of grant (docs/ARCHITECTURE.md#calling-apis-on-behalf-of-the-caller).
//!
//! [`OnBehalfOf`] exchanges the caller's verified access token ([`AccessToken`]) for a token to a
//! downstream API (Microsoft Graph, the company's own API) with the jwt-bearer grant:
//!
//! ```text
//! POST <AZURE_AUTHORITY_HOST>/<tenant>/oauth2/v2.0/token
//! grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&requested_token_use=on_behalf_of
//! &assertion=<caller's token>&scope=<downstream scopes>&client_id=<AZURE_CLIENT_ID>&<client auth>
//! ```
//!
//! (Microsoft identity platform, "OAuth 2.0 On-Behalf-Of flow"; RFC 7523.) The tenant is the
//! configured one for a single-tenant server and the caller's `tid` for a multi-tenant one. The
//! server authenticates with a [`ClientCredential`], preferably one with no secret.
//!
//! It lives in this crate because it talks to Entra on the server's behalf with the verifier's
//! configuration and HTTP client (authority host, client id, timeouts, no redirects), and like
//! the verifier it knows nothing of MCP: tools reach it through the server.
//!
//! Tokens are cached per (tenant, user object id, client app, scopes) until shortly before they expire, with
//! one exchange in flight per key, and dropped when the downstream API answers 401.

mod cache;
mod credential;
mod error;
mod http;
mod shared;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

pub use credential::{
    ClientCredential, CredentialConfigError, CredentialError, ManagedIdentityEndpoint, IMDS_TOKEN_ENDPOINT,
    TOKEN_EXCHANGE_AUDIENCE,
};
pub use error::{DownstreamConfigError, DownstreamError};
pub use shared::{CacheKeyError, SharedStoreError, SharedTokenStore, TokenCacheKeys};

use crate::{telemetry, AccessToken, Identity};
use cache::{Cached, Key, TokenCache};
use http::{form, read_limited};
use tracing::Instrument as _;

/// The OAuth grant type of the on-behalf-of exchange (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The default downstream scope: the user's own Graph profile.
pub const DEFAULT_DOWNSTREAM_SCOPE: &str = "https://graph.microsoft.com/User.Read";

/// What to ask for and how the server authenticates.
#[derive(Debug, Clone)]
pub struct DownstreamConfig {
    /// The server's own credential.
    pub credential: ClientCredential,
    /// Scopes of the downstream token, as full URIs. Defaults to [`DEFAULT_DOWNSTREAM_SCOPE`].
    pub scopes: Vec<String>,
    /// How many users' tokens to keep. Defaults to 10,000; 0 disables caching (every call
    /// exchanges).
    pub cache_entries: usize,
    /// A cached token is renewed this long before it expires. Defaults to 5 minutes.
    pub refresh_margin: Duration,
    /// A second level shared by every replica (Redis), encrypted; `None`: this replica only.
    pub shared: Option<SharedCache>,
}

/// The second level of the downstream-token cache (see [`SharedTokenStore`]).
#[derive(Debug, Clone)]
pub struct SharedCache {
    /// Where entries live.
    pub store: Arc<dyn SharedTokenStore>,
    /// How they are encrypted.
    pub keys: Arc<TokenCacheKeys>,
    /// The longest one store operation may take before the replica goes on without it.
    pub timeout: Duration,
}

impl SharedCache {
    /// `operation` within the timeout; `None` (counted and logged) when it fails or is late.
    async fn bounded<T>(
        &self,
        name: &'static str,
        operation: impl std::future::Future<Output = Result<T, SharedStoreError>>,
    ) -> Option<T> {
        match tokio::time::timeout(self.timeout, operation).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                shared_error(name, &error.to_string());
                None
            }
            Err(_) => {
                shared_error(name, "timed out");
                None
            }
        }
    }

    /// The token cached under `key` by any replica, if it is readable and still usable.
    async fn fetch(&self, key: &Key) -> Option<(Arc<str>, Duration)> {
        let store_key = shared::store_key(key);
        let Some(sealed) = self.bounded("get", self.store.get(&store_key)).await? else {
            metrics::counter!("mcp_downstream_shared_cache_total", "result" => "miss").increment(1);
            return None;
        };
        let Some((token, use_until)) = self.keys.open(&store_key, &sealed) else {
            // Written with a key no longer configured, or altered: not a token.
            metrics::counter!("mcp_downstream_shared_cache_total", "result" => "unreadable").increment(1);
            return None;
        };
        let left = use_until.duration_since(std::time::SystemTime::now()).ok()?;
        metrics::counter!("mcp_downstream_shared_cache_total", "result" => "hit").increment(1);
        Some((Arc::from(token), left))
    }

    /// Shares `token` under `key` for `keep`.
    async fn save(&self, key: &Key, token: &str, keep: Duration) {
        if keep.is_zero() {
            return;
        }
        let store_key = shared::store_key(key);
        let Some(sealed) = self
            .keys
            .seal(&store_key, token, std::time::SystemTime::now() + keep)
        else {
            return;
        };
        self.bounded("put", self.store.put(&store_key, &sealed, keep))
            .await;
    }

    /// Forgets the entry under `key` (a downstream API refused its token).
    async fn forget(&self, key: &Key) {
        let store_key = shared::store_key(key);
        self.bounded("delete", self.store.delete(&store_key)).await;
    }
}

/// One failed shared-cache operation: counted, logged at debug (a store that is down fails every
/// call, and the replica goes on without it).
fn shared_error(operation: &'static str, reason: &str) {
    metrics::counter!("mcp_downstream_shared_cache_total", "result" => "error").increment(1);
    tracing::debug!(
        operation,
        reason,
        "the shared downstream-token cache failed; exchanging without it"
    );
}

impl DownstreamConfig {
    /// Every default, with `credential`.
    pub fn new(credential: ClientCredential) -> Self {
        DownstreamConfig {
            credential,
            scopes: vec![DEFAULT_DOWNSTREAM_SCOPE.to_owned()],
            cache_entries: 10_000,
            refresh_margin: Duration::from_secs(5 * 60),
            shared: None,
        }
    }

    /// Checks the scopes.
    pub fn validate(&self) -> Result<(), DownstreamConfigError> {
        if self.scopes.is_empty()
            || self
                .scopes
                .iter()
                .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(DownstreamConfigError::BadScopes(self.scopes.join(",")));
        }
        Ok(())
    }
}

/// The on-behalf-of token provider. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct OnBehalfOf {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    client_id: String,
    authority_host: Url,
    /// `Some` for a single-tenant server; `None`: the caller's `tid`.
    fixed_tenant: Option<String>,
    scopes: String,
    credential: ClientCredential,
    cache: TokenCache,
    refresh_margin: Duration,
    shared: Option<SharedCache>,
}

impl std::fmt::Debug for OnBehalfOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnBehalfOf")
            .field("client_id", &self.inner.client_id)
            .field("scopes", &self.inner.scopes)
            .field("credential", &self.inner.credential)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_codes: Vec<u64>,
    #[serde(default)]
    suberror: Option<String>,
    #[serde(default)]
    claims: Option<String>,
}

impl OnBehalfOf {
    /// A provider for the app registration `client_id` at `authority_host`, exchanging in
    /// `fixed_tenant` (a single-tenant server) or in each caller's own tenant (`None`), sending
    /// requests with `http` (the verifier's client: its timeouts bound every call, so nothing
    /// hangs).
    pub(crate) fn new(
        client_id: &str,
        authority_host: &Url,
        fixed_tenant: Option<&str>,
        http: reqwest::Client,
        config: DownstreamConfig,
    ) -> Result<Self, DownstreamConfigError> {
        config.validate()?;
        Ok(OnBehalfOf {
            inner: Arc::new(Inner {
                http,
                client_id: client_id.to_owned(),
                authority_host: authority_host.clone(),
                fixed_tenant: fixed_tenant.map(str::to_owned),
                scopes: config.scopes.join(" "),
                credential: config.credential,
                cache: TokenCache::new(config.cache_entries),
                refresh_margin: config.refresh_margin,
                shared: config.shared,
            }),
        })
    }

    /// The server credential's kind, for start-up logs.
    pub fn credential_kind(&self) -> &'static str {
        self.inner.credential.kind()
    }

    /// The downstream scopes, space-separated.
    pub fn scopes(&self) -> &str {
        &self.inner.scopes
    }

    /// `GET url` as the caller and parse the JSON answer.
    ///
    /// The caller's token is exchanged (or a cached exchange reused); a 401 from the API drops
    /// the cached token and the call is tried once more with a fresh exchange.
    pub async fn get_json(
        &self,
        caller: &Identity,
        token: &AccessToken,
        url: Url,
    ) -> Result<serde_json::Value, DownstreamError> {
        let key = self.key(caller)?;
        self.call_json(&key, Some(token), url, None).await
    }

    /// `POST url` with the JSON `body` as the caller, and parse the JSON answer; otherwise as
    /// [`get_json`](Self::get_json).
    pub async fn post_json(
        &self,
        caller: &Identity,
        token: &AccessToken,
        url: Url,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, DownstreamError> {
        let key = self.key(caller)?;
        self.call_json(&key, Some(token), url, Some(body)).await
    }

    /// `POST url` with the JSON `body` as the server itself: with a token for `scope` (a
    /// `<resource>/.default` URI) from Entra's client-credentials grant in `tenant` (Microsoft
    /// identity platform, "OAuth 2.0 client credentials flow"), proven with the server's
    /// [`ClientCredential`]. No caller's token is sent anywhere. App tokens are cached per
    /// (tenant, scope) like exchanged ones.
    pub async fn post_json_as_app(
        &self,
        tenant: &str,
        scope: &str,
        url: Url,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, DownstreamError> {
        let key = Key {
            tenant: self
                .inner
                .fixed_tenant
                .clone()
                .unwrap_or_else(|| tenant.to_owned()),
            // No user: a user's key always has an object id, so the two never meet.
            object_id: String::new(),
            client_app: String::new(),
            scopes: scope.to_owned(),
        };
        self.call_json(&key, None, url, Some(body)).await
    }

    /// Calls `url` (GET, or POST with `body`) with the token of `key`: exchanged from `token`
    /// (on-behalf-of), or the server's own when `token` is `None`.
    async fn call_json(
        &self,
        key: &Key,
        token: Option<&AccessToken>,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, DownstreamError> {
        let mut retried = false;
        loop {
            let downstream = self.token(key, token).await?;
            // The call continues the caller's trace: its span's context goes in `traceparent`.
            let (request, method) = match body {
                None => (self.inner.http.get(url.clone()), "GET"),
                Some(body) => (
                    self.inner
                        .http
                        .post(url.clone())
                        .header("content-type", "application/json")
                        .body(body.to_string()),
                    "POST",
                ),
            };
            let request = request
                .bearer_auth(&*downstream)
                .header("accept", "application/json");
            let sent = telemetry::send(request, method, url.as_str(), true).await;
            let response = sent.map_err(|source| DownstreamError::Unreachable {
                what: "the downstream API",
                source,
            })?;
            let status = response.status().as_u16();
            if status == 401 {
                if let Some(claims) = claims_challenge(response.headers()) {
                    self.forget(key, &downstream).await;
                    return Err(DownstreamError::InteractionRequired {
                        origin: "the downstream API asks for a new sign-in",
                        claims: Some(claims),
                    });
                }
                self.forget(key, &downstream).await;
                if !retried {
                    retried = true;
                    tracing::debug!("the downstream API refused a cached token; exchanging again");
                    continue;
                }
            }
            if !(200..300).contains(&status) {
                return Err(DownstreamError::DownstreamStatus { status });
            }
            let body = read_limited(response)
                .await
                .map_err(|source| DownstreamError::Unreachable {
                    what: "the downstream API",
                    source,
                })?;
            return serde_json::from_slice(&body)
                .map_err(|_| DownstreamError::BadResponse("the downstream API"));
        }
    }

    /// The cache key of `caller`: (tenant, `oid`, client app, scopes). The client app (`azp`) is
    /// part of it because Entra evaluates Conditional Access at exchange time for the client the
    /// user signed in with: a token obtained through one client never serves another.
    fn key(&self, caller: &Identity) -> Result<Key, DownstreamError> {
        if caller.app_only {
            return Err(DownstreamError::AppOnlyCaller);
        }
        let Some((tid, oid)) = caller.principal() else {
            return Err(DownstreamError::NoObjectId);
        };
        Ok(Key {
            tenant: self.inner.fixed_tenant.clone().unwrap_or_else(|| tid.to_owned()),
            object_id: oid.to_owned(),
            client_app: caller.client_app.clone().unwrap_or_default(),
            scopes: self.inner.scopes.clone(),
        })
    }

    /// The downstream token for `key`: cached, or exchanged (from `token`; the server's own
    /// token when `None`) once however many calls wait.
    async fn token(&self, key: &Key, token: Option<&AccessToken>) -> Result<Arc<str>, DownstreamError> {
        if !telemetry::enabled() {
            return self.cached_or_exchanged(key, token).await;
        }
        let span = tracing::info_span!(
            target: telemetry::TARGET,
            "on_behalf_of",
            otel.name = if token.is_some() { "on_behalf_of" } else { "client_credentials" },
            otel.kind = "internal",
            otel.status_code = tracing::field::Empty,
            entra.obo.cache_hit = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        let result = self
            .cached_or_exchanged(key, token)
            .instrument(span.clone())
            .await;
        if result.is_err() {
            span.record("error.type", "exchange_failed");
            span.record("otel.status_code", "ERROR");
        }
        result
    }

    async fn cached_or_exchanged(
        &self,
        key: &Key,
        token: Option<&AccessToken>,
    ) -> Result<Arc<str>, DownstreamError> {
        let slot = self.inner.cache.slot(key);
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.use_until {
                if telemetry::enabled() {
                    tracing::Span::current().record("entra.obo.cache_hit", true);
                }
                return Ok(c.token.clone());
            }
        }
        // Another replica may have exchanged already (one exchange per user for them all).
        if let Some(shared) = &self.inner.shared {
            if let Some((token, left)) = shared.fetch(key).await {
                if telemetry::enabled() {
                    tracing::Span::current().record("entra.obo.cache_hit", true);
                }
                *cached = Some(Cached {
                    token: token.clone(),
                    use_until: Instant::now() + left,
                });
                return Ok(token);
            }
        }
        if telemetry::enabled() {
            tracing::Span::current().record("entra.obo.cache_hit", false);
        }
        let (fresh, lifetime) = self.exchange(key, token).await?;
        let keep = lifetime.saturating_sub(self.inner.refresh_margin);
        *cached = Some(Cached {
            token: fresh.clone(),
            use_until: Instant::now() + keep,
        });
        if let Some(shared) = &self.inner.shared {
            shared.save(key, &fresh, keep).await;
        }
        Ok(fresh)
    }

    /// Drops `token` from both levels (a downstream API refused it).
    async fn forget(&self, key: &Key, token: &str) {
        self.inner.cache.invalidate(key, token).await;
        if let Some(shared) = &self.inner.shared {
            shared.forget(key).await;
        }
    }

    fn token_endpoint(&self, tenant: &str) -> String {
        let mut url = self.inner.authority_host.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend([tenant, "oauth2", "v2.0", "token"]);
        }
        url.to_string()
    }

    /// A token for `key` from Entra's token endpoint: on-behalf-of `token`, or with the
    /// client-credentials grant for `key.scopes` when `token` is `None`.
    async fn exchange(
        &self,
        key: &Key,
        token: Option<&AccessToken>,
    ) -> Result<(Arc<str>, Duration), DownstreamError> {
        let inner = &self.inner;
        let endpoint = self.token_endpoint(&key.tenant);
        let client_auth = inner
            .credential
            .client_auth(&inner.http, &endpoint, &inner.client_id)
            .await
            .map_err(DownstreamError::Credential)?;
        let mut fields: Vec<(&str, &str)> = match token {
            Some(token) => vec![
                ("grant_type", JWT_BEARER_GRANT),
                ("requested_token_use", "on_behalf_of"),
                ("client_id", &inner.client_id),
                ("assertion", token.secret()),
                ("scope", &key.scopes),
            ],
            None => vec![
                ("grant_type", "client_credentials"),
                ("client_id", &inner.client_id),
                ("scope", &key.scopes),
            ],
        };
        fields.extend(client_auth.iter().map(|(k, v)| (*k, v.as_str())));
        let started = std::time::Instant::now();
        let request = inner
            .http
            .post(&endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&fields));
        let sent = telemetry::send(request, "POST", &endpoint, false).await;
        let response = sent.map_err(|source| DownstreamError::Unreachable {
            what: "Entra's token endpoint",
            source,
        })?;
        let status = response.status().as_u16();
        let body = read_limited(response)
            .await
            .map_err(|source| DownstreamError::Unreachable {
                what: "Entra's token endpoint",
                source,
            })?;
        tracing::debug!(
            tenant = %key.tenant,
            object_id = %key.object_id,
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            grant = if token.is_some() { "on_behalf_of" } else { "client_credentials" },
            "token request"
        );
        if status != 200 {
            let error: TokenError = serde_json::from_slice(&body).unwrap_or_default();
            return Err(self.refusal(status, error, key));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| DownstreamError::BadResponse("Entra's token endpoint"))?;
        if parsed.access_token.is_empty() {
            return Err(DownstreamError::BadResponse("Entra's token endpoint"));
        }
        // `expires_in` only: the token endpoint's `expires_on` is not part of RFC 6749.
        let lifetime = http::token_lifetime(None, parsed.expires_in.as_ref(), 0);
        Ok((Arc::from(parsed.access_token), lifetime))
    }

    fn refusal(&self, status: u16, error: TokenError, key: &Key) -> DownstreamError {
        if error.error_codes.contains(&65001) || error.suberror.as_deref() == Some("consent_required") {
            return DownstreamError::ConsentRequired {
                scopes: key.scopes.clone(),
                client_id: self.inner.client_id.clone(),
                tenant: key.tenant.clone(),
            };
        }
        if error.error == "interaction_required" || error.claims.is_some() {
            return DownstreamError::InteractionRequired {
                origin: "Entra's conditional access asks for a new sign-in",
                claims: error.claims.map(|c| printable(&c, 2048)),
            };
        }
        DownstreamError::ExchangeRefused {
            status,
            error: if error.error.is_empty() {
                "no error code".to_owned()
            } else {
                printable(&error.error, 64)
            },
            code: error.error_codes.first().copied(),
        }
    }
}

/// The `claims` of a `WWW-Authenticate: Bearer error="insufficient_claims", claims="…"`
/// challenge (continuous access evaluation), base64 as sent.
fn claims_challenge(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.contains("insufficient_claims"))
        .find_map(|v| {
            let start = v.find("claims=\"")? + "claims=\"".len();
            let end = v[start..].find('"')? + start;
            Some(printable(&v[start..end], 2048))
        })
}

/// Keeps only printable ASCII of text that came from a remote server, at most `max` characters.
fn printable(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(tenant: &str, multi: bool) -> OnBehalfOf {
        let credential = ClientCredential::secret("s").unwrap();
        OnBehalfOf::new(
            "11111111-2222-3333-4444-555555555555",
            &Url::parse(crate::DEFAULT_AUTHORITY_HOST).unwrap(),
            (!multi).then_some(tenant),
            reqwest::Client::new(),
            DownstreamConfig::new(credential),
        )
        .unwrap()
    }

    #[test]
    fn token_endpoint_is_per_tenant_and_refusals_read_as_the_fix() {
        let single = provider("contoso.onmicrosoft.com", false);
        assert_eq!(
            single.token_endpoint("contoso.onmicrosoft.com"),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let caller = Identity::builder("oid-1", "tid-of-caller")
            .scopes(["access_as_user"])
            .build();
        assert_eq!(single.key(&caller).unwrap().tenant, "contoso.onmicrosoft.com");
        let multi = provider("organizations", true);
        assert_eq!(multi.key(&caller).unwrap().tenant, "tid-of-caller");
        let app = Identity::builder("oid-2", "t")
            .roles(["Mcp.Invoke"])
            .app_only(true)
            .build();
        assert!(matches!(multi.key(&app), Err(DownstreamError::AppOnlyCaller)));
        // No oid: no key, whatever `sub` says (it could equal another user's oid).
        let mut no_oid = caller.clone();
        no_oid.object_id = String::new();
        no_oid.subject = "oid-1".into();
        assert!(matches!(multi.key(&no_oid), Err(DownstreamError::NoObjectId)));
        // The client app separates entries: Conditional Access is evaluated per client.
        let mut other_client = caller.clone();
        other_client.client_app = Some("another-client".into());
        assert_ne!(multi.key(&caller).unwrap(), multi.key(&other_client).unwrap());

        let key = multi.key(&caller).unwrap();
        let rows: Vec<(TokenError, &str)> = vec![
            (
                TokenError {
                    error: "invalid_grant".into(),
                    error_codes: vec![65001],
                    ..Default::default()
                },
                "consent is missing (AADSTS65001)",
            ),
            (
                TokenError {
                    error: "interaction_required".into(),
                    claims: Some("{\"access_token\":{\"capolids\":{\"essential\":true}}}".into()),
                    ..Default::default()
                },
                "the user must sign in again requesting these claims",
            ),
            (
                TokenError {
                    error: "unauthorized_client".into(),
                    error_codes: vec![700016],
                    ..Default::default()
                },
                "HTTP 400: unauthorized_client (AADSTS700016)",
            ),
            (TokenError::default(), "HTTP 400: no error code"),
        ];
        for (error, expected) in rows {
            let text = multi.refusal(400, error, &key).to_string();
            assert!(text.contains(expected), "{text}");
        }
    }

    #[test]
    fn scopes_must_be_present_and_without_spaces() {
        let mut config = DownstreamConfig::new(ClientCredential::secret("s").unwrap());
        assert!(config.validate().is_ok());
        for bad in [vec![], vec!["".to_owned()], vec!["a b".to_owned()]] {
            config.scopes = bad;
            assert!(matches!(
                config.validate(),
                Err(DownstreamConfigError::BadScopes(_))
            ));
        }
    }
}
