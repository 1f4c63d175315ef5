//! Turning an [`AuthError`] into the HTTP answer RFC 6750 and the MCP spec expect.

use std::sync::Arc;

use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use verifiers::{AuthError, ScopeProblem};

use super::body::{full, Body};

/// What every challenge needs besides the error itself.
#[derive(Debug, Clone)]
pub(crate) struct ChallengeContext {
    /// `<PUBLIC_URL>/.well-known/oauth-protected-resource/mcp`.
    pub(crate) resource_metadata: String,
    /// Full scope URIs, space-separated.
    pub(crate) scope: String,
    /// What an app-only caller must request: `<identifier-uri>/.default` (the only scope the
    /// client-credentials flow can ask for). Empty: `scope` is named instead.
    pub(crate) app_only_scope: String,
}

/// The challenge context of a server, and the ones for clients that reached it by another
/// loopback host (see `HttpConfig::public_url_is_default`). Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Challenges {
    default: Arc<ChallengeContext>,
    by_host: Arc<Vec<(String, Arc<ChallengeContext>)>>,
}

impl Challenges {
    /// Challenges naming `resource_metadata` and `scope` (full scope URIs, space-separated).
    pub(crate) fn new(resource_metadata: String, scope: String) -> Self {
        Challenges {
            default: Arc::new(ChallengeContext {
                resource_metadata,
                scope,
                app_only_scope: String::new(),
            }),
            by_host: Arc::new(Vec::new()),
        }
    }

    /// App-only callers refused for a missing role are pointed at `scope`.
    pub(crate) fn set_app_only_scope(&mut self, scope: String) {
        Arc::make_mut(&mut self.default).app_only_scope = scope.clone();
        for (_, context) in Arc::make_mut(&mut self.by_host).iter_mut() {
            Arc::make_mut(context).app_only_scope = scope.clone();
        }
    }

    /// For each `(host:port, resource_metadata)`, the challenge a client that used that host gets.
    pub(crate) fn set_metadata_by_host(&mut self, hosts: Vec<(String, String)>) {
        let by_host = hosts
            .into_iter()
            .map(|(host, resource_metadata)| {
                let mut context = (*self.default).clone();
                context.resource_metadata = resource_metadata;
                (host, Arc::new(context))
            })
            .collect();
        self.by_host = Arc::new(by_host);
    }

    /// The resource metadata URL of the default context.
    pub(crate) fn resource_metadata(&self) -> &str {
        &self.default.resource_metadata
    }

    /// The context for a request that named `host`.
    pub(crate) fn for_host(&self, host: Option<&str>) -> &ChallengeContext {
        host.and_then(|host| {
            self.by_host
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(host))
                .map(|(_, context)| &**context)
        })
        .unwrap_or(&self.default)
    }
}

/// The one place auth errors become responses: status, `WWW-Authenticate`, and a JSON body.
pub(crate) fn auth_error_response(err: &AuthError, ctx: &ChallengeContext) -> Response<Body> {
    let (status, error_code) = match err {
        AuthError::MissingToken => (StatusCode::UNAUTHORIZED, None),
        AuthError::Malformed(_) => (StatusCode::BAD_REQUEST, Some("invalid_request")),
        AuthError::InvalidToken(_) => (StatusCode::UNAUTHORIZED, Some("invalid_token")),
        AuthError::InsufficientScope { .. } => (StatusCode::FORBIDDEN, Some("insufficient_scope")),
        AuthError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, None),
        // No scope would help, so no challenge: `access_denied` is RFC 6749's word (§4.1.2.1).
        AuthError::Forbidden(_) => (StatusCode::FORBIDDEN, None),
        // Entra's claims challenge ("Claims challenges, claims requests and client capabilities").
        AuthError::InsufficientClaims { .. } => (StatusCode::UNAUTHORIZED, Some("insufficient_claims")),
    };
    let description = err.to_string();
    let mut challenge = format!("Bearer resource_metadata=\"{}\"", quote(&ctx.resource_metadata));
    if let AuthError::InsufficientClaims { claims, .. } = err {
        // `realm=""` first, as Microsoft's examples (and MSAL's parsers) have it.
        challenge = format!("Bearer realm=\"\", {}", &challenge["Bearer ".len()..]);
        challenge.push_str(&format!(", claims=\"{}\"", quote(claims)));
    }
    if let Some(code) = error_code {
        challenge.push_str(&format!(
            ", error=\"{code}\", error_description=\"{}\"",
            quote(&description)
        ));
    }
    // Every challenge names what to request (MCP authorization spec: clients re-authorise from
    // it), an app-only caller refused for a missing role the `.default` scope.
    let scope = match err {
        AuthError::InsufficientScope {
            problem: ScopeProblem::MissingRoles { .. } | ScopeProblem::MissingAnyRole { .. },
            ..
        } if !ctx.app_only_scope.is_empty() => &ctx.app_only_scope,
        _ => &ctx.scope,
    };
    if !scope.is_empty() && !matches!(err, AuthError::InsufficientClaims { .. }) {
        challenge.push_str(&format!(", scope=\"{}\"", quote(scope)));
    }
    let mut body = serde_json::json!({
        "error": error_code.unwrap_or(match status {
            StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
            StatusCode::FORBIDDEN => "access_denied",
            _ => "unauthorized",
        }),
        "error_description": description,
    });
    if let AuthError::InsufficientClaims { claims, auth_context } = err {
        body["claims"] = serde_json::json!(claims);
        body["auth_context"] = serde_json::json!(auth_context);
    }
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let AuthError::Unavailable(reason) = err {
        headers.insert(RETRY_AFTER, HeaderValue::from(reason.retry_after().as_secs()));
    } else if let AuthError::Forbidden(_) = err {
        // Nothing to request: a challenge would only send the client round a sign-in loop.
    } else if let Ok(value) = HeaderValue::from_str(&challenge) {
        headers.insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// The `403 insufficient_scope` step-up challenge for a forbidden tool call: the same answer as
/// any missing scope, naming the scopes this call needs.
pub(crate) fn tool_refusal_response(refusal: &crate::ToolRefusal, ctx: &ChallengeContext) -> Response<Body> {
    // The refusal already names what this caller must request (the `.default` scope for an
    // app-only caller), so it replaces both scopes of the context.
    let ctx = ChallengeContext {
        resource_metadata: ctx.resource_metadata.clone(),
        scope: refusal.scope.clone(),
        app_only_scope: String::new(),
    };
    auth_error_response(&refusal.error, &ctx)
}

/// Makes `text` safe inside a quoted-string (RFC 9110 §5.6.4): no `"` or `\`, visible ASCII only.
fn quote(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use verifiers::{InvalidToken, Unavailable};

    fn ctx() -> ChallengeContext {
        ChallengeContext {
            resource_metadata: "http://localhost:8000/.well-known/oauth-protected-resource/mcp".into(),
            scope: "api://x/access_as_user".into(),
            app_only_scope: "api://x/.default".into(),
        }
    }

    fn challenge(r: &Response<Body>) -> &str {
        r.headers()[WWW_AUTHENTICATE].to_str().unwrap()
    }

    #[test]
    fn missing_token_gets_bare_challenge_with_scope() {
        let r = auth_error_response(&AuthError::MissingToken, &ctx());
        assert_eq!(r.status(), 401);
        assert_eq!(
            challenge(&r),
            "Bearer resource_metadata=\"http://localhost:8000/.well-known/oauth-protected-resource/mcp\", scope=\"api://x/access_as_user\""
        );
    }

    #[test]
    fn invalid_token_names_the_reason_and_the_scope() {
        let r = auth_error_response(&InvalidToken::BadSignature.into(), &ctx());
        assert_eq!(r.status(), 401);
        assert_eq!(
            challenge(&r),
            "Bearer resource_metadata=\"http://localhost:8000/.well-known/oauth-protected-resource/mcp\", error=\"invalid_token\", error_description=\"the token signature is invalid\", scope=\"api://x/access_as_user\""
        );
    }

    #[test]
    fn app_only_missing_role_is_pointed_at_default_scope() {
        let err = AuthError::InsufficientScope {
            required: vec!["access_as_user".into()],
            problem: ScopeProblem::MissingRoles {
                missing: vec!["Tools.Call".into()],
            },
        };
        let r = auth_error_response(&err, &ctx());
        assert_eq!(r.status(), 403);
        assert!(
            challenge(&r).ends_with(", scope=\"api://x/.default\""),
            "{}",
            challenge(&r)
        );
        let no_identifier = ChallengeContext {
            app_only_scope: String::new(),
            ..ctx()
        };
        let r = auth_error_response(&err, &no_identifier);
        assert!(challenge(&r).ends_with(", scope=\"api://x/access_as_user\""));
    }

    #[test]
    fn insufficient_scope_is_403_with_scope() {
        let err = AuthError::InsufficientScope {
            required: vec!["access_as_user".into()],
            problem: ScopeProblem::MissingScopes {
                missing: vec!["access_as_user".into()],
            },
        };
        let r = auth_error_response(&err, &ctx());
        assert_eq!(r.status(), 403);
        assert!(challenge(&r).contains("error=\"insufficient_scope\""));
        assert!(challenge(&r).contains("scope=\"api://x/access_as_user\""));
    }

    #[test]
    fn unavailable_is_503_with_retry_after() {
        let r = auth_error_response(&Unavailable::NoSigningKeys.into(), &ctx());
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[RETRY_AFTER], "5");
    }

    #[test]
    fn quoted_strings_cannot_break_the_header() {
        assert_eq!(quote("a\"b\\c\nd"), "a'b/c?d");
    }

    /// RFC 6750 §3: `error_description` is %x20-21 / %x23-5B / %x5D-7E, whatever the reason holds.
    #[test]
    fn every_error_description_is_an_rfc6750_quoted_string() {
        let hostile: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let err: AuthError = InvalidToken::WrongAudience {
            found: hostile.as_str().into(),
            expected: "api://x".into(),
            request: "api://x/access_as_user".into(),
        }
        .into();
        let r = auth_error_response(&err, &ctx());
        let value = challenge(&r);
        let description = value
            .split("error_description=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap();
        assert!(
            description.starts_with("the token's audience is "),
            "{description}"
        );
        assert!(
            description
                .chars()
                .all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')),
            "{description}"
        );
        assert!(quote(&hostile)
            .chars()
            .all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')));
    }
}
