//! The Microsoft Entra ID verifier (docs/ARCHITECTURE.md#token-verification).
//!
//! A valid signature is necessary, never sufficient: a token passes only if it is an **access
//! token for this API**. Every claim and header field the verifier reads is in the table below:
//! what its absence means, what each JSON type means, and what another kind of token carries
//! there. **Absence never grants anything.** Claims are parsed once, into typed values that both
//! the checks and [`Identity`] use (`claims.rs`).
//!
//! | Field | Absent | Types | What another token carries there |
//! |---|---|---|---|
//! | JWK `issuer` (JWKS) | the key signs for the metadata issuer (single-tenant JWKS carry none) | string: the only issuer this key may sign for, `{tenantid}` := the token's `tid` (a v1 `https://sts.…/<tid>/` token is admitted by the same tenant's v2 issuer); anything else: key skipped | a token signed with a key of another issuer (the consumer key for an organisation's `iss`): refused, 401 naming both issuers |
//! | JWK `kid` (JWKS) | key skipped | string; a `kid` listed twice keeps every key, each tried (only those whose `issuer` admits the token) | — |
//! | JWK `n` | key skipped | base64url; leading zero bytes are stripped (RFC 7518 §6.3.1.1 asks only producers to omit them); under 2048 bits: skipped | — |
//! | header `alg` | 401 | `RS256` only (from our policy, never the header's choice) | `HS256`/`none` forgeries: 401 |
//! | header `kid` | 401 (no key can be chosen) | string naming a published key, else 401 after one rate-limited refresh | a token signed by another IdP: unknown `kid` |
//! | header `typ` | not read | not read: Entra writes `JWT` in access and ID tokens alike, so it tells nothing | — |
//! | header `crit` | fine | any value: 401 (we understand no extension, RFC 7515 §4.1.11) | — |
//! | header `nonce` | fine | present: 401 | a Microsoft Graph token (Graph's signed-nonce tokens) |
//! | `exp` | 401 | NumericDate in `0..=253402300799` (year 9999), fraction kept; other numbers, negative, strings: 401 malformed | — |
//! | `nbf` | fine | as `exp` | — |
//! | `iat` | fine | as `exp` (range only; decides nothing) | — |
//! | `aud` | 401 | one string: the client id (GUIDs compare case-insensitively) or the identifier URI; an array: 401 | a token for another resource (Graph, another API): 401 naming it |
//! | `iss` | 401 | string matching the tenant policy (exact metadata issuer, or the `{tenantid}` template with the token's `tid`) | a v1 token (`https://sts.…/`): 401 unless v1 tokens are enabled; another tenant: 401 |
//! | `tid` | 401 | string; multi-tenant: a GUID, the tenant of `iss`; single tenant: also the tenant of `iss` (401 otherwise) | — |
//! | `ver` | 401 | string agreeing with the issuer form: v2 issuer ⇔ `2.0`, v1 `sts.` issuer ⇔ `1.0`; otherwise 401 | a v1 token dressed with a v2 issuer, or the reverse |
//! | `scp` | not a delegated grant: the token is app-only only with the evidence below, else a user token missing its scopes (403) | string, split on the space character only (RFC 6749 §3.3); other types: 401 | an app-only token: none |
//! | `roles` | no roles | array of strings; other types: 401. Grants nothing to a user token without `scp` (403 naming the scope) | an ID token of a user assigned an app role: `roles`, no `scp` |
//! | `idtyp` | no evidence: fall back to `oid` = `sub` + `azp`/`appid` | `app`: app-only (with `scp`: 401, contradictory); `user`: delegated; other strings or types: 401 | only tokens of apps that configured the optional claim |
//! | `oid`, `sub` | no evidence of an app token | strings; `oid` = `sub` (a service principal is its own subject) is one of the three app-only signs without `idtyp`; other types: 401 | a user's tokens: `oid` ≠ `sub` |
//! | `azp` (v2), `appid` (v1) | no evidence of an app token | string: the client id, the third app-only sign; other types: 401 | — |
//! | `nonce`, `at_hash`, `c_hash` | fine | any, without `scp`: 401 "an ID token" (OpenID Connect Core §2, §3.1.3.6) | an ID token: one of them, no `scp` |

mod cache;
pub(crate) mod claims;
mod config;
mod error;
mod issuer;
mod jwt;
mod keys;
mod tenant;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use claims::{optional_time, CallerClaims};

use async_trait::async_trait;
use jsonwebtoken::Algorithm;

pub use config::{EntraConfig, DEFAULT_AUTHORITY_HOST};
pub use error::EntraConfigError;
pub use tenant::{TenantPolicy, CONSUMER_TENANT_ID};

use crate::downstream::{DownstreamConfig, DownstreamConfigError, OnBehalfOf};
use crate::telemetry;
use crate::{AccessPolicy, AuthError, Identity, InvalidToken, Readiness, TokenVerifier, Unavailable};
use cache::TokenCache;
use issuer::check_version;
use jwt::{required_str, UnverifiedToken};
use keys::{error_chain, KeyStore, Snapshot};
use tracing::Instrument as _;

/// Microsoft Graph's application id and URI: the audience of the most common wrong token.
const GRAPH_AUDIENCES: [&str; 3] = [
    "00000003-0000-0000-c000-000000000000",
    "https://graph.microsoft.com",
    "https://graph.microsoft.com/",
];

/// Validates Microsoft Entra ID access tokens.
///
/// Signature (RS256 only, keys from the tenant's JWKS via OIDC discovery, each key only for its
/// own `issuer`), issuer by [`TenantPolicy`], `tid` against `iss`, `ver` against the issuer's
/// form, audience (client id or identifier URI), `exp`/`nbf` with leeway, the token type from
/// positive evidence (no ID tokens), and then the shared [`AccessPolicy`]. Every rejection
/// carries a reason a person can act on; the module docs list every field read.
///
/// Cloning is cheap and clones share the key cache. Call [`EntraVerifier::start`] once, in a
/// Tokio runtime, to load the keys and keep them fresh.
#[derive(Clone)]
pub struct EntraVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: EntraConfig,
    tenant_policy: TenantPolicy,
    access: AccessPolicy,
    keys: KeyStore,
    cache: TokenCache,
    expected_audience: String,
    /// The scope URI(s) a client with a token for another audience should request.
    request_scope: String,
    /// The client every request to Entra goes through (timeouts, no redirects).
    http: reqwest::Client,
}

impl std::fmt::Debug for EntraVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraVerifier")
            .field("authority", &self.inner.config.authority())
            .field("tenant_policy", &self.inner.tenant_policy)
            .finish_non_exhaustive()
    }
}

impl EntraVerifier {
    /// Validates `config` and builds the verifier. Nothing is fetched until [`start`](Self::start).
    pub fn new(config: EntraConfig, access: AccessPolicy) -> Result<Self, EntraConfigError> {
        let http = Self::http_client(&config)?;
        let keys = KeyStore::new(
            http.clone(),
            config.metadata_url(),
            config.key_min_refresh_interval,
        );
        Self::with_key_store(config, access, keys, http)
    }

    /// A verifier that never contacts Entra: it trusts the given `issuer` (as the tenant's
    /// OpenID metadata would give it) and the keys of `jwks` (a JWKS document's `keys` array).
    ///
    /// For air-gapped deployments that ship keys out of band, and for fuzzing and benchmarks.
    /// Keys never rotate: refresh the process when Entra rolls its keys.
    pub fn offline(
        config: EntraConfig,
        access: AccessPolicy,
        issuer: impl Into<String>,
        jwks: &[serde_json::Value],
    ) -> Result<Self, EntraConfigError> {
        let http = Self::http_client(&config)?;
        let keys = KeyStore::fixed(http.clone(), issuer.into(), jwks);
        Self::with_key_store(config, access, keys, http)
    }

    fn http_client(config: &EntraConfig) -> Result<reqwest::Client, EntraConfigError> {
        reqwest::Client::builder()
            .timeout(config.http_timeout)
            .connect_timeout(config.http_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mcp-server-entra/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(EntraConfigError::HttpClient)
    }

    fn with_key_store(
        config: EntraConfig,
        access: AccessPolicy,
        keys: KeyStore,
        http: reqwest::Client,
    ) -> Result<Self, EntraConfigError> {
        let tenant_policy = config.validate()?;
        let config = config.normalized();
        let expected_audience = std::iter::once(config.client_id.as_str())
            .chain(config.identifier_uris().map(|uri| uri.as_str()))
            .collect::<Vec<_>>()
            .join(" or ");
        // What a client should request instead of a token for another audience.
        let user_scopes: Vec<String> = access
            .required_scopes
            .iter()
            .map(|scope| config.identifier_uri.scope(scope))
            .collect();
        let request_scope = match (user_scopes.is_empty(), access.required_app_roles.is_empty()) {
            (false, true) => user_scopes.join(" "),
            (false, false) => format!(
                "{}; an application: {}",
                user_scopes.join(" "),
                config.identifier_uri.default_scope()
            ),
            (true, _) => config.identifier_uri.default_scope(),
        };
        let cache = TokenCache::new(config.token_cache_entries, config.token_cache_bytes);
        Ok(EntraVerifier {
            inner: Arc::new(Inner {
                cache,
                config,
                tenant_policy,
                access,
                keys,
                expected_audience,
                request_scope,
                http,
            }),
        })
    }

    /// An on-behalf-of token provider for this app registration (docs/ARCHITECTURE.md#calling-apis-on-behalf-of-the-caller): same authority
    /// host, client id, tenant and HTTP client (timeouts) as the verifier. For a multi-tenant
    /// server the exchange happens in the caller's tenant.
    pub fn on_behalf_of(&self, downstream: DownstreamConfig) -> Result<OnBehalfOf, DownstreamConfigError> {
        let config = &self.inner.config;
        OnBehalfOf::new(
            &config.client_id,
            &config.authority_host,
            (!self.inner.tenant_policy.is_multi_tenant()).then_some(config.tenant.as_str()),
            self.inner.http.clone(),
            downstream,
        )
    }

    /// The tenant policy `AZURE_TENANT_ID` selected.
    pub fn tenant_policy(&self) -> &TenantPolicy {
        &self.inner.tenant_policy
    }

    /// Loads the signing keys once, then keeps them fresh in a background task.
    ///
    /// Returns once the first load succeeded or failed: the server starts either way (answering
    /// 503 and reporting not-ready until keys arrive), because an Entra outage at deploy time
    /// should not crash-loop a fleet. The task stops when the last clone of the verifier is
    /// dropped.
    pub async fn start(&self) -> tokio::task::JoinHandle<()> {
        if self.inner.tenant_policy.is_multi_tenant() && self.inner.config.allowed_tenants.is_empty() {
            tracing::warn!(
                tenant = %self.inner.config.tenant,
                "multi-tenant server without AZURE_ALLOWED_TENANTS: any Entra tenant whose users consent can call it"
            );
        }
        let first = self.inner.keys.refresh().await;
        match &first {
            Ok(()) => tracing::info!(authority = %self.inner.config.authority(), "signing keys loaded"),
            Err(error) => tracing::error!(
                error = %error_chain(error),
                "could not load Entra signing keys; tokens cannot be verified until they load (retrying in the background)"
            ),
        }
        let weak = Arc::downgrade(&self.inner);
        let mut failures = u32::from(first.is_err());
        tokio::spawn(async move {
            loop {
                let delay = match weak.upgrade() {
                    None => return,
                    Some(inner) => next_refresh_delay(&inner, failures),
                };
                tokio::time::sleep(delay).await;
                let Some(inner) = weak.upgrade() else { return };
                match inner.keys.refresh().await {
                    Ok(()) => {
                        failures = 0;
                        tracing::debug!("scheduled signing-key refresh succeeded");
                    }
                    Err(error) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(error = %error_chain(&error), failures, "signing-key refresh failed; keeping the keys we have");
                    }
                }
            }
        })
    }

    /// Refuses a token longer than `max_token_bytes`, before any work on it (the cache's hash
    /// included).
    fn check_size(&self, token: &str) -> Result<(), InvalidToken> {
        let max = self.inner.config.max_token_bytes;
        if token.len() > max {
            return Err(InvalidToken::TooLarge {
                len: token.len(),
                max,
            });
        }
        Ok(())
    }

    fn precheck(&self, token: &str, now: u64) -> Result<Checked, AuthError> {
        let cfg = &self.inner.config;
        self.check_size(token)?;
        let parsed = UnverifiedToken::parse(token)?;
        match parsed.header_str("alg")? {
            Some("RS256") => {}
            other => {
                return Err(InvalidToken::UnsupportedAlgorithm {
                    found: other.unwrap_or("no algorithm").into(),
                }
                .into())
            }
        }
        if let Some(crit) = parsed.header.get("crit") {
            return Err(InvalidToken::UnsupportedCritical(crit.to_string().into()).into());
        }
        let claims = &parsed.claims;
        let mut caller = CallerClaims::parse(claims)?;
        let leeway = cfg.leeway.as_secs();
        let exp = caller.expires.ok_or(InvalidToken::MissingClaim("exp"))?;
        if exp.secs().saturating_add(leeway) <= now {
            return Err(InvalidToken::Expired {
                expired_at: exp.system_time(),
            }
            .into());
        }
        if let Some(nbf) = optional_time(claims, "nbf")? {
            if nbf.secs() > now.saturating_add(leeway) {
                return Err(InvalidToken::NotYetValid {
                    not_before: nbf.system_time(),
                }
                .into());
            }
        }
        // `iat` decides nothing, but a token that carries one carries a real time.
        optional_time(claims, "iat")?;
        self.check_audience(claims)?;
        let iss = required_str(claims, "iss")?;
        let b2c = cfg.b2c_policy.is_some();
        // Azure AD B2C may leave `tid` out: its tenant is the issuer's (held to the metadata's
        // issuer like every other). Entra ID always writes it.
        let tid = match (&caller.tenant_id, b2c) {
            (Some(tid), _) => tid.clone(),
            (None, true) => issuer::b2c_issuer_tenant(iss)
                .map(str::to_ascii_lowercase)
                .ok_or(InvalidToken::MissingClaim("tid"))?,
            (None, false) => return Err(InvalidToken::MissingClaim("tid").into()),
        };
        caller.tenant_id = Some(tid.clone());
        if b2c {
            // B2C writes neither `idtyp` nor app roles for users, and a user's `sub` is their
            // `oid`: the app-only evidence Entra ID gives does not hold there, so every B2C token
            // is a user's (without `scp` it is refused as lacking scopes).
            caller.kind = claims::TokenKind::Delegated;
        }
        let ver = required_str(claims, "ver")?;
        // B2C writes `ver` 1.0 with its v2.0 issuer ("Overview of tokens in Azure AD B2C").
        if !(b2c && matches!(ver, "1.0" | "2.0")) {
            check_version(iss, ver)?;
        }
        Ok(Checked {
            expires: exp.secs(),
            issuer: iss.to_owned(),
            tenant: tid,
            kid: parsed.header_str("kid")?.map(str::to_owned),
            graph_nonce: parsed.header.contains_key("nonce"),
            signing_input: parsed.signing_input.len(),
            signature_at: token.len() - parsed.signature.len(),
            caller,
            claims: parsed.claims,
        })
    }

    fn check_audience(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), InvalidToken> {
        let aud = match claims.get("aud") {
            None => return Err(InvalidToken::MissingClaim("aud")),
            Some(serde_json::Value::String(aud)) if aud.is_empty() => {
                return Err(InvalidToken::MissingClaim("aud"))
            }
            Some(serde_json::Value::String(aud)) => aud,
            Some(_) => {
                return Err(InvalidToken::MalformedClaim {
                    claim: "aud",
                    problem: "must be a single string (Entra access tokens carry exactly one audience)",
                })
            }
        };
        let cfg = &self.inner.config;
        // GUIDs compare case-insensitively (RFC 4122 §3); the configuration is normalised to
        // lower case at load, as Entra writes them.
        if cfg.is_audience(aud) {
            return Ok(());
        }
        let expected = self.inner.expected_audience.clone();
        if GRAPH_AUDIENCES.iter().any(|g| aud.eq_ignore_ascii_case(g)) {
            return Err(InvalidToken::GraphAudience {
                found: aud.into(),
                expected,
                request: self.inner.request_scope.clone(),
            });
        }
        Err(InvalidToken::WrongAudience {
            found: aud.into(),
            expected,
            request: self.inner.request_scope.clone(),
        })
    }

    /// The issuer verdict for `checked` (see `issuer.rs`); unavailable until the metadata is
    /// known.
    fn check_issuer(&self, snapshot: &Snapshot, checked: &Checked) -> Result<(), AuthError> {
        let Some(metadata_issuer) = snapshot.issuer.as_deref() else {
            return Err(Unavailable::NoSigningKeys.into());
        };
        // `checked.tenant` is normalised to lower case for comparisons elsewhere; the token's own
        // spelling is read here.
        let tid_as_written = checked
            .claims
            .get("tid")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(&checked.tenant);
        let b2c_policy = ["tfp", "acr"]
            .iter()
            .find_map(|name| checked.claims.get(*name).and_then(serde_json::Value::as_str));
        let token = issuer::TokenIssuer {
            iss: &checked.issuer,
            tid: &checked.tenant,
            tid_as_written,
            b2c_policy,
        };
        Ok(issuer::check(
            &self.inner.tenant_policy,
            &self.inner.config,
            metadata_issuer,
            &token,
        )?)
    }

    async fn verify_token(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        self.check_size(token)?;
        let now = unix_now();
        let cache_key = TokenCache::key(token);
        let generation = self.inner.keys.snapshot().generation;
        let cached = self.inner.cache.get(&cache_key, now, generation);
        if telemetry::enabled() {
            tracing::Span::current().record("entra.token.cache_hit", cached.is_some());
        }
        if let Some(identity) = cached {
            return Ok(identity);
        }
        let checked = self.precheck(token, now)?;
        let mut snapshot = self.inner.keys.snapshot();
        if snapshot.issuer.is_none() {
            snapshot = self.inner.keys.refresh_on_demand(None).await;
        }
        // The issuer policy (allowed tenants, v1 acceptance, single or multi-tenant) is
        // configuration: a caller whose signature has not been verified learns nothing of it. Its
        // verdict waits until the signature is checked; a forged token hears only "signature".
        let issuer_verdict = match self.check_issuer(&snapshot, &checked) {
            Ok(()) => Ok(()),
            Err(AuthError::InvalidToken(refusal)) => Err(refusal),
            Err(other) => return Err(other),
        };
        if checked.graph_nonce {
            return Err(InvalidToken::GraphNonce.into());
        }
        let kid = checked.kid.as_deref().ok_or(InvalidToken::MissingKeyId)?;
        if !snapshot.keys.contains_key(kid) {
            snapshot = self.inner.keys.refresh_on_demand(Some(kid)).await;
        }
        let Some(candidates) = snapshot.keys.get(kid) else {
            if snapshot.keys.is_empty() {
                return Err(Unavailable::NoSigningKeys.into());
            }
            return Err(InvalidToken::UnknownSigningKey { kid: kid.into() }.into());
        };
        // The signature first, so that the reason a token is refused (the issuer policy, or a
        // key that signs only for another issuer) is told only about tokens Entra signed. Keys
        // that may sign for this issuer are tried first; the others only to tell a real
        // key-issuer mismatch from a forgery.
        let (iss, tid) = (checked.issuer.as_str(), checked.tenant.as_str());
        let signing_input = &token.as_bytes()[..checked.signing_input];
        let signature = &token[checked.signature_at..];
        let verifies = |key: &jsonwebtoken::DecodingKey| {
            matches!(
                jsonwebtoken::crypto::verify(signature, signing_input, key, Algorithm::RS256),
                Ok(true)
            )
        };
        let by_admitted_key = candidates
            .iter()
            .filter(|k| k.signs_for(iss, tid))
            .any(|k| verifies(&k.key));
        let by_other_key = !by_admitted_key
            && candidates
                .iter()
                .filter(|k| !k.signs_for(iss, tid))
                .any(|k| verifies(&k.key));
        if !by_admitted_key && !by_other_key {
            if let Err(policy) = &issuer_verdict {
                tracing::debug!(policy = %policy, "an unsigned token also broke the issuer policy; the caller is told only that the signature is invalid");
            }
            return Err(InvalidToken::BadSignature.into());
        }
        issuer_verdict?;
        if !by_admitted_key {
            let key_issuer = candidates
                .iter()
                .find_map(|k| k.issuer.clone())
                .unwrap_or_default();
            return Err(InvalidToken::KeyIssuerMismatch {
                kid: kid.into(),
                key_issuer,
                issuer: iss.into(),
            }
            .into());
        }
        let identity = Arc::new(Identity::from_parsed(checked.caller, checked.claims));
        self.inner.access.authorize(&identity)?;
        let valid_until = checked.expires.saturating_add(self.inner.config.leeway.as_secs());
        self.inner.cache.insert(
            cache_key,
            Arc::clone(&identity),
            valid_until,
            now,
            snapshot.generation,
        );
        Ok(identity)
    }
}

/// What the cheap, pre-signature checks learned about a token.
struct Checked {
    expires: u64,
    issuer: String,
    tenant: String,
    kid: Option<String>,
    graph_nonce: bool,
    signing_input: usize,
    signature_at: usize,
    caller: CallerClaims,
    claims: serde_json::Map<String, serde_json::Value>,
}

#[async_trait]
impl TokenVerifier for EntraVerifier {
    async fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        if !telemetry::enabled() {
            return self.verify_token(token).await;
        }
        let span = tracing::info_span!(
            target: telemetry::TARGET,
            "verify",
            otel.name = "verify token",
            otel.kind = "internal",
            otel.status_code = tracing::field::Empty,
            entra.token.cache_hit = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        let verified = self.verify_token(token).instrument(span.clone()).await;
        if let Err(error) = &verified {
            span.record("error.type", error.kind());
            span.record("otel.status_code", "ERROR");
        }
        verified
    }

    fn readiness(&self) -> Readiness {
        let snapshot = self.inner.keys.snapshot();
        if snapshot.issuer.is_some() && !snapshot.keys.is_empty() {
            Readiness::Ready
        } else {
            Readiness::NotReady("Entra signing keys are not loaded yet".to_owned())
        }
    }

    /// The `issuer` of the tenant's OpenID metadata once discovered: the GUID form for a tenant
    /// configured as a domain, the personal-account tenant's issuer for `consumers`. `None` for
    /// `organizations`/`common`, whose metadata states a `{tenantid}` template rather than an
    /// issuer identifier, and for Azure AD B2C, whose issuer names no policy and so serves no
    /// metadata: there the configured authority (with the policy) is advertised.
    fn authorization_server(&self) -> Option<String> {
        if self.inner.config.b2c_policy.is_some() {
            return None;
        }
        self.inner
            .keys
            .snapshot()
            .issuer
            .clone()
            .filter(|issuer| !issuer.contains("{tenantid}"))
    }
}

fn next_refresh_delay(inner: &Inner, failures: u32) -> Duration {
    if failures == 0 {
        return inner.config.key_refresh_interval;
    }
    // Retry quickly while we have no keys at all (we are answering 503), gently otherwise.
    let have_keys = !inner.keys.snapshot().keys.is_empty();
    let base = if have_keys {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(2)
    };
    let cap = if have_keys {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(30)
    };
    base.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(10)))
        .min(cap)
        .min(inner.config.key_refresh_interval)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
