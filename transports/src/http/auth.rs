//! Bearer authentication in front of the MCP service (RFC 6750), as a tower layer.
//!
//! [`BearerAuthLayer`] takes the one `Authorization: Bearer` credential, verifies it with the
//! configured [`TokenVerifier`], and either answers with the right challenge (401/400/403/503, see
//! `challenge.rs`) or passes the request on with the verified identity (an `Arc<`[`Identity`]`>`,
//! shared with the verifier's cache) and the opaque [`AccessToken`] (for on-behalf-of calls) in
//! its extensions. That is all it does: legacy sessions are the next layer's business
//! ([`SessionLayer`](super::SessionLayer)), the per-tool gate the one after
//! ([`ToolGateLayer`](super::ToolGateLayer)); the three are composed in `server.rs`. A stateless
//! server (or another rmcp server) can use this layer alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, Response, Uri};
use tower::{Layer, Service};
use verifiers::{AccessToken, AuthError, CallerText, MalformedCredentials, TokenVerifier};

#[cfg(doc)]
use verifiers::Identity;

use super::ambiguity::request_host;
use super::body::Body;
use super::challenge::{auth_error_response, Challenges};

/// Layer that applies [`BearerAuth`] to a service.
#[derive(Clone)]
pub struct BearerAuthLayer {
    verifier: Arc<dyn TokenVerifier>,
    challenges: Challenges,
}

impl std::fmt::Debug for BearerAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuthLayer")
            .field("resource_metadata", &self.challenges.resource_metadata())
            .finish_non_exhaustive()
    }
}

impl BearerAuthLayer {
    /// A layer verifying with `verifier`; challenges point at `resource_metadata` and name
    /// `scopes` (full scope URIs).
    pub fn new(
        verifier: Arc<dyn TokenVerifier>,
        resource_metadata: impl Into<String>,
        scopes: &[String],
    ) -> Self {
        BearerAuthLayer {
            verifier,
            challenges: Challenges::new(resource_metadata.into(), scopes.join(" ")),
        }
    }

    /// Challenges name the metadata URL of the host the client used, for each `(host:port,
    /// resource_metadata)`: see `HttpConfig::public_url_is_default`.
    pub fn with_metadata_by_host(mut self, hosts: Vec<(String, String)>) -> Self {
        self.challenges.set_metadata_by_host(hosts);
        self
    }

    /// Points app-only callers refused for a missing app role at `scope` (the
    /// `<identifier-uri>/.default` URI) instead of the delegated scopes.
    pub fn with_app_only_scope(mut self, scope: impl Into<String>) -> Self {
        self.challenges.set_app_only_scope(scope.into());
        self
    }

    /// The challenges this layer answers with, for the layers behind it that refuse too.
    pub(crate) fn challenges(&self) -> Challenges {
        self.challenges.clone()
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            layer: Arc::new(self.clone()),
        }
    }
}

/// Middleware that authenticates every request with a bearer token before `S` sees it.
#[derive(Clone, Debug)]
pub struct BearerAuth<S> {
    inner: S,
    layer: Arc<BearerAuthLayer>,
}

impl<S> BearerAuth<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for BearerAuth<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The instance that reported ready serves this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let verified = match bearer_token(request.headers(), request.uri()) {
                Ok(token) => {
                    let token = token.to_owned();
                    let started = std::time::Instant::now();
                    let verified = layer.verifier.verify(&token).await;
                    metrics::histogram!("mcp_token_verification_seconds")
                        .record(started.elapsed().as_secs_f64());
                    verified.map(|identity| (identity, AccessToken::new(token)))
                }
                Err(err) => Err(err),
            };
            let (identity, access_token) = match verified {
                Ok(verified) => verified,
                Err(err) => {
                    log_rejection(&err, &request);
                    let challenge = layer.challenges.for_host(request_host(&request));
                    return Ok(auth_error_response(&err, challenge));
                }
            };
            // Whatever logs the request further in (rmcp moves its Parts into the MCP context)
            // prints `Sensitive` instead of the credential.
            if let Some(value) = request.headers_mut().get_mut(AUTHORIZATION) {
                value.set_sensitive(true);
            }
            // The HTTP span (current here, when traces are exported) names the caller.
            if verifiers::telemetry::enabled() {
                verifiers::telemetry::record_caller(&tracing::Span::current(), &identity);
            }
            request.extensions_mut().insert(identity);
            // Beside the identity, opaque: only the on-behalf-of provider reads it
            // (docs/ARCHITECTURE.md#calling-apis-on-behalf-of-the-caller).
            request.extensions_mut().insert(access_token);
            inner.call(request).await
        })
    }
}

fn log_rejection<B>(err: &AuthError, request: &Request<B>) {
    metrics::counter!("mcp_auth_rejections_total", "reason" => err.kind()).increment(1);
    crate::audit::refused_before_authentication(err.kind(), request.extensions().get().copied());
    // Never the token: only the reason, which is built from claims and settings.
    // Caller text inside `err` is already escaped (`CallerText`); the path is escaped here.
    let path = CallerText::new(request.uri().path());
    match err {
        AuthError::Unavailable(_) => {
            tracing::warn!(kind = err.kind(), reason = %err, path = %path, "request rejected")
        }
        _ => {
            tracing::info!(kind = err.kind(), reason = %err, path = %path, "request rejected")
        }
    }
}

/// The bearer token of a request: exactly one `Authorization: Bearer <token>` header (scheme
/// case-insensitive), and no `access_token` in the query.
pub fn bearer_token<'a>(headers: &'a HeaderMap, uri: &Uri) -> Result<&'a str, AuthError> {
    if uri.query().is_some_and(query_has_access_token) {
        return Err(MalformedCredentials::TokenInQuery.into());
    }
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::MissingToken);
    };
    if values.next().is_some() {
        return Err(MalformedCredentials::MultipleAuthorizationHeaders.into());
    }
    let value = value.to_str().map_err(|_| MalformedCredentials::NotAscii)?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme (Basic, …) is not a bearer credential at all: challenge for one.
        return Err(AuthError::MissingToken);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err(MalformedCredentials::EmptyBearerToken.into());
    }
    Ok(token)
}

/// `true` when a parameter of `query` is named `access_token` (RFC 6750 §2.3) as any server,
/// framework or proxy could read it: in any case, with the name percent-decoded first
/// (`access%5Ftoken`, `%61ccess_token`), `;` accepted as a separator as well as `&`, and the name
/// read up to the first byte that cannot continue a name. So `access_token[]` (PHP, Rails
/// arrays), `access_token%00` (C strings end at NUL), `access_token.x` and `access_token+` are
/// refused too, while `access_tokens` is another parameter; and as PHP reads names, leading
/// spaces are dropped and ` `, `.`, `+` or an unmatched `[` stand for `_` (`access.token`,
/// `access[token`, ` access_token`).
pub fn query_has_access_token(query: &str) -> bool {
    const NAME: &[u8] = b"access_token";
    query.split(['&', ';']).any(|pair| {
        let raw = pair.split('=').next().unwrap_or_default().as_bytes();
        // Enough to decide: the name and the byte after it.
        let mut decoded = Vec::with_capacity(NAME.len() + 1);
        let mut i = 0;
        while i < raw.len() && decoded.len() <= NAME.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            match (
                raw[i],
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            ) {
                (b'%', Some(hi), Some(lo)) => {
                    decoded.push((hi * 16 + lo) as u8);
                    i += 3;
                }
                (byte, _, _) => {
                    decoded.push(byte);
                    i += 1;
                }
            }
            if decoded.len() == 1 && matches!(decoded[0], b' ' | b'+') {
                decoded.clear();
            }
        }
        let (name, next) = decoded.split_at(decoded.len().min(NAME.len()));
        let php = |b: &u8| {
            if matches!(b, b' ' | b'.' | b'+' | b'[') {
                b'_'
            } else {
                b.to_ascii_lowercase()
            }
        };
        name.iter().map(php).eq(NAME.iter().copied())
            && next
                .first()
                .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[tokio::test]
    async fn passes_on_only_a_verified_caller_and_answers_the_rest_with_a_challenge() {
        use tower::ServiceExt as _;
        use verifiers::{AccessPolicy, Identity, StaticVerifier};
        let alice = Identity::builder("alice", "t").scopes(["access_as_user"]).build();
        let verifier =
            StaticVerifier::new(AccessPolicy::scopes(["access_as_user"])).with_token("good", alice);
        let layer = BearerAuthLayer::new(
            Arc::new(verifier),
            "http://localhost/.well-known/oauth-protected-resource/mcp",
            &["api://x/access_as_user".to_owned()],
        );
        // The inner service answers with the caller it was handed (no session bindings needed).
        let inner = tower::service_fn(|request: Request<()>| async move {
            let who = request
                .extensions()
                .get::<Arc<Identity>>()
                .map(|identity| identity.object_id.clone())
                .unwrap_or_default();
            Ok::<_, std::convert::Infallible>(Response::new(super::super::body::full(who)))
        });
        // (Authorization header, expected status, `WWW-Authenticate` expected)
        let rows = [
            (Some("Bearer good"), 200, false),
            (None, 401, true),
            (Some("Bearer bad"), 401, true),
            (Some("Basic dXNlcjpwdw=="), 401, true),
            (Some("Bearer "), 400, true),
        ];
        for (authorization, status, challenged) in rows {
            let mut request = Request::post("/mcp");
            if let Some(value) = authorization {
                request = request.header(AUTHORIZATION, value);
            }
            let response = layer
                .layer(inner)
                .oneshot(request.body(()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), status, "{authorization:?}");
            assert_eq!(
                response.headers().contains_key(http::header::WWW_AUTHENTICATE),
                challenged,
                "{authorization:?}"
            );
        }
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn scheme_is_case_insensitive() {
        for v in ["Bearer abc", "bearer abc", "BEARER abc", "BeArEr   abc"] {
            assert_eq!(bearer_token(&headers(&[v]), &uri("/mcp")), Ok("abc"), "{v}");
        }
    }

    #[test]
    fn missing_or_foreign_scheme_is_missing_token() {
        assert_eq!(
            bearer_token(&headers(&[]), &uri("/mcp")),
            Err(AuthError::MissingToken)
        );
        assert_eq!(
            bearer_token(&headers(&["Basic dXNlcjpwdw=="]), &uri("/mcp")),
            Err(AuthError::MissingToken)
        );
        assert_eq!(
            bearer_token(&headers(&["Bearerabc"]), &uri("/mcp")),
            Err(AuthError::MissingToken)
        );
    }

    #[test]
    fn empty_token_and_duplicate_headers_are_malformed() {
        assert_eq!(
            bearer_token(&headers(&["Bearer "]), &uri("/mcp")),
            Err(MalformedCredentials::EmptyBearerToken.into())
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer"]), &uri("/mcp")),
            Err(MalformedCredentials::EmptyBearerToken.into())
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer a", "Bearer b"]), &uri("/mcp")),
            Err(MalformedCredentials::MultipleAuthorizationHeaders.into())
        );
    }

    #[test]
    fn token_in_query_is_refused_even_with_a_header() {
        for q in [
            "/mcp?access_token=abc",
            "/mcp?x=1&ACCESS_TOKEN=abc",
            "/mcp?access_token",
            "/mcp?access%5Ftoken=abc",
            "/mcp?access%5ftoken=abc",
            "/mcp?%61ccess_token=abc",
            "/mcp?%41%43%43%45%53%53%5F%54%4F%4B%45%4E=abc",
            "/mcp?x=1;access_token=abc",
            "/mcp?access_token[]=abc",
            "/mcp?access_token%5B%5D=abc",
            "/mcp?access_token%00=abc",
            "/mcp?access_token%00x=abc",
            "/mcp?access_token.x=abc",
            "/mcp?access_token+=abc",
            "/mcp?access_token%20=abc",
            "/mcp?access.token=abc",
            "/mcp?access[token=abc",
            "/mcp?access+token=abc",
            "/mcp?%20access_token=abc",
            "/mcp?+access_token=abc",
        ] {
            assert_eq!(
                bearer_token(&headers(&["Bearer abc"]), &uri(q)),
                Err(MalformedCredentials::TokenInQuery.into()),
                "{q}"
            );
        }
        for q in [
            "/mcp?access_tokens=1",
            "/mcp?access%255Ftoken=1",
            "/mcp?x=access_token",
            "/mcp?access%5Ftoke",
            "/mcp?%zzaccess_token=1",
            "/mcp?access_token_2=1",
            "/mcp?access_token-x=1",
        ] {
            assert_eq!(bearer_token(&headers(&["Bearer abc"]), &uri(q)), Ok("abc"), "{q}");
        }
    }
}
