//! What can go wrong when a caller presents credentials, as types a transport can map to a status.

use std::fmt;
use std::time::{Duration, SystemTime};

use thiserror::Error;

/// Text a caller chose (a claim such as `aud`, `iss`, `tid`, a header's `kid` or `alg`, a `Host`
/// header, a path), made safe to print in a log line or an `error_description`.
///
/// Log injection (CWE-117) is refused where the text is captured, not where it is printed: the
/// constructor escapes, and the value never holds the raw text.
///
/// - Every control character (`\n`, `\r`, ESC, DEL, C1 controls…), the Unicode line and paragraph
///   separators (U+2028, U+2029) and the bidirectional and zero-width formatting characters that
///   reorder or hide text on screen become `\u{…}` (the backslash itself becomes `\\`), so one
///   log line stays one line and a terminal shows the bytes, not their effect.
/// - Only the first [`CallerText::MAX_CHARS`] characters are kept; the rest is summarised as
///   `...(+N bytes)`, so a 16 KiB claim cannot fill a log.
///
/// Printable non-ASCII text (`é`, `東京`) is kept as is; an `error_description` header goes through
/// the transport's RFC 6750 quoting as well.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct CallerText(String);

impl CallerText {
    /// How many characters of the caller's text are kept.
    pub const MAX_CHARS: usize = 128;

    /// Escapes and truncates `raw`.
    pub fn new(raw: &str) -> Self {
        let mut out = String::with_capacity(raw.len().min(Self::MAX_CHARS + 16));
        for (kept, (at, c)) in raw.char_indices().enumerate() {
            if kept == Self::MAX_CHARS {
                out.push_str(&format!("...(+{} bytes)", raw.len() - at));
                break;
            }
            push_escaped(&mut out, c);
        }
        CallerText(out)
    }

    /// The escaped, truncated text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `true` for the characters [`CallerText`] escapes: controls, line/paragraph separators,
    /// and invisible or reordering format characters (bidi embeddings, overrides and isolates,
    /// zero-width spaces and joiners, the BOM).
    pub fn escapes(c: char) -> bool {
        c.is_control()
            || matches!(c,
                '\u{2028}' | '\u{2029}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
    }

    /// Escapes all of `raw` the same way, without truncating (for a log formatter's last line of
    /// defence, where the text is already bounded).
    pub fn escape_all(raw: &str) -> String {
        let mut out = String::with_capacity(raw.len());
        for c in raw.chars() {
            push_escaped(&mut out, c);
        }
        out
    }
}

fn push_escaped(out: &mut String, c: char) {
    if c == '\\' {
        out.push_str("\\\\");
    } else if CallerText::escapes(c) {
        out.push_str(&format!("\\u{{{:x}}}", c as u32));
    } else {
        out.push(c);
    }
}

impl fmt::Display for CallerText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CallerText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

impl From<&str> for CallerText {
    fn from(raw: &str) -> Self {
        CallerText::new(raw)
    }
}

impl From<String> for CallerText {
    fn from(raw: String) -> Self {
        CallerText::new(&raw)
    }
}

impl From<&String> for CallerText {
    fn from(raw: &String) -> Self {
        CallerText::new(raw)
    }
}

/// Why a request was not authenticated or not authorized.
///
/// Each variant maps to exactly one HTTP answer (see `transports`): [`AuthError::MissingToken`]
/// → 401 with a bare challenge, [`AuthError::Malformed`] → 400 `invalid_request`,
/// [`AuthError::InvalidToken`] → 401 `invalid_token`, [`AuthError::InsufficientScope`] → 403
/// `insufficient_scope`, [`AuthError::Unavailable`] → 503 with `Retry-After`. The `Display` text is
/// safe to send to the caller: it never contains the token or upstream error details.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials were presented.
    #[error("no bearer token was presented: send `Authorization: Bearer <access token>` with a token for the scope the challenge names")]
    MissingToken,
    /// Credentials were presented in a form we do not accept.
    #[error("{0}")]
    Malformed(#[from] MalformedCredentials),
    /// The token was presented but is not acceptable.
    #[error("{0}")]
    InvalidToken(#[from] InvalidToken),
    /// The token is valid but does not grant what this server requires.
    #[error("{problem}")]
    InsufficientScope {
        /// The scopes (short names, e.g. `access_as_user`) this server requires.
        required: Vec<String>,
        /// What exactly is missing.
        problem: ScopeProblem,
    },
    /// The verifier cannot verify anything right now (for example, no signing keys).
    #[error("{0}")]
    Unavailable(#[from] Unavailable),
    /// The token is valid, but this caller may not do this and asking for other scopes would
    /// not change it: group membership, or a step-up the caller or its client cannot make.
    #[error("{0}")]
    Forbidden(#[from] Forbidden),
    /// The call needs a Conditional Access authentication context the token does not show in
    /// `acrs`, and the client declared (`xms_cc` = `cp1`) that it can answer a claims challenge
    /// (Microsoft identity platform, "Claims challenges, claims requests and client
    /// capabilities"). HTTP: 401 `insufficient_claims` with `claims`.
    #[error("this operation needs the Conditional Access authentication context {auth_context} (for example multifactor authentication or a compliant device), which the token does not show (acrs); sign in again requesting the claims in the challenge")]
    InsufficientClaims {
        /// The authentication context id (`c1` … `c99`).
        auth_context: String,
        /// The claims request, base64 of `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`.
        claims: String,
    },
}

/// A valid token whose caller may not do this, where no scope would help (HTTP 403).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Forbidden {
    /// The user is in none of the groups the operation admits. The text names no group: a
    /// caller who is not a member should not learn which groups matter (the log has them).
    #[error("you are not a member of a group allowed to do this; ask your administrator for access")]
    NotInGroup,
    /// The operation is limited to groups and the token carries no `groups` claim and no
    /// overage marker: the app registration emits no group claims.
    #[error("this operation is limited to members of certain groups, and the token carries no groups claim; the app registration must emit group claims (Token configuration, Add groups claim, Security groups)")]
    NoGroupsClaim,
    /// The user is in more groups than fit in a token (overage), and the server cannot ask
    /// Microsoft Graph (no credential is configured, or the token has no `oid`).
    #[error("you are in more groups than fit in a token, and this server cannot look up your membership ({0}); ask your administrator")]
    GroupsNotResolvable(&'static str),
    /// An authentication context applies to users; an application's own token cannot satisfy it.
    #[error("this operation needs the Conditional Access authentication context {0}, which applies to users signing in; an app-only token (client credentials) cannot satisfy it")]
    AuthContextAppOnly(String),
    /// The token lacks the authentication context and the client did not declare that it can
    /// answer a claims challenge (`xms_cc` without `cp1`), so the challenge would be lost on it.
    #[error("this operation needs the Conditional Access authentication context {0} (for example multifactor authentication or a compliant device), which the token does not show (acrs), and the client did not declare the client capability cp1 (xms_cc), so it cannot be asked to step up; use a client that handles claims challenges, with the optional claim xms_cc in the app registration")]
    ClientCannotStepUp(String),
}

impl Forbidden {
    /// A short, stable label for logs, metrics and the audit trail.
    pub fn kind(&self) -> &'static str {
        match self {
            Forbidden::NotInGroup => "not_in_group",
            Forbidden::NoGroupsClaim => "no_groups_claim",
            Forbidden::GroupsNotResolvable(_) => "groups_not_resolvable",
            Forbidden::AuthContextAppOnly(_) => "auth_context_app_only",
            Forbidden::ClientCannotStepUp(_) => "client_cannot_step_up",
        }
    }
}

impl AuthError {
    /// A short, stable, machine-friendly label for logs and metrics (`expired`, `wrong_audience`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::Malformed(_) => "malformed_credentials",
            AuthError::InvalidToken(reason) => reason.kind(),
            AuthError::InsufficientScope { .. } => "insufficient_scope",
            AuthError::Unavailable(Unavailable::GroupMembership) => "group_check_unavailable",
            AuthError::Unavailable(_) => "verifier_unavailable",
            AuthError::Forbidden(reason) => reason.kind(),
            AuthError::InsufficientClaims { .. } => "insufficient_claims",
        }
    }
}

/// Credentials presented in a form the server does not accept (RFC 6750 `invalid_request`).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MalformedCredentials {
    /// More than one `Authorization` header.
    #[error("more than one Authorization header was sent; send exactly one `Authorization: Bearer <token>`")]
    MultipleAuthorizationHeaders,
    /// The `Authorization` header is not valid visible ASCII.
    #[error("the Authorization header is not valid ASCII")]
    NotAscii,
    /// `Authorization: Bearer` with no token after it.
    #[error("the Authorization header has the Bearer scheme but no token")]
    EmptyBearerToken,
    /// A token was sent in the URL query, which leaks into logs and histories.
    #[error("access tokens in the URL query are not accepted; send `Authorization: Bearer <token>`")]
    TokenInQuery,
}

/// Why a presented token is not acceptable (RFC 6750 `invalid_token`).
///
/// The `Display` text is written for the person who has to fix it and is sent to the caller as
/// `error_description`.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidToken {
    /// The token is not a known static token (static verifier only).
    #[error("the token is not recognised")]
    Unknown,
    /// Larger than the configured maximum; rejected before any parsing.
    #[error("the token is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// The token's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a compact JWS (three base64url parts with a JSON header and payload).
    #[error("the token is not a well-formed JWT: {0}")]
    NotAJwt(&'static str),
    /// The header names an algorithm we do not accept.
    #[error("the token is signed with {found}, only RS256 is accepted")]
    UnsupportedAlgorithm {
        /// The header's `alg`.
        found: CallerText,
    },
    /// The header's `crit` names extensions we do not understand (RFC 7515 §4.1.11).
    #[error("the token header marks extensions as critical ({0}) that this server does not understand")]
    UnsupportedCritical(CallerText),
    /// The header carries a `nonce`, which Entra only puts in tokens meant for Microsoft Graph.
    #[error("the token header carries a nonce, as Microsoft Graph tokens do: request a token for this API's scope (api://<client-id>/access_as_user), not for Graph")]
    GraphNonce,
    /// The header has no `kid`, so no signing key can be chosen.
    #[error("the token header has no key id (kid)")]
    MissingKeyId,
    /// No published signing key has this `kid`, even after refreshing the keys.
    #[error("the token was signed with key {kid}, which the tenant does not publish")]
    UnknownSigningKey {
        /// The header's `kid`.
        kid: CallerText,
    },
    /// The signature does not match.
    #[error("the token signature is invalid")]
    BadSignature,
    /// A required claim is absent.
    #[error("the token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type, or appears twice.
    #[error("the token's `{claim}` claim is malformed: {problem}")]
    MalformedClaim {
        /// The claim's name.
        claim: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// `exp` is in the past (beyond the leeway).
    #[error("the token expired at {} ({} ago); get a new token", fmt_time(*expired_at), fmt_ago(*expired_at))]
    Expired {
        /// When it expired.
        expired_at: SystemTime,
    },
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid before {}; check this machine's clock and the caller's", fmt_time(*not_before))]
    NotYetValid {
        /// Its `nbf`.
        not_before: SystemTime,
    },
    /// A Microsoft Graph token was presented.
    #[error("the token's audience is Microsoft Graph ({found}), but this server expects {expected}; request a token for this API ({request}), not for Graph")]
    GraphAudience {
        /// The token's `aud`.
        found: CallerText,
        /// The accepted audiences.
        expected: String,
        /// What to request instead: the full URI of this API's scope, and `<uri>/.default` for
        /// an application.
        request: String,
    },
    /// The audience is neither the client id nor the identifier URI.
    #[error("the token's audience is {found}, but this server expects {expected}; request a token for this API ({request})")]
    WrongAudience {
        /// The token's `aud`.
        found: CallerText,
        /// The accepted audiences.
        expected: String,
        /// What to request instead: the full URI of this API's scope, and `<uri>/.default` for
        /// an application.
        request: String,
    },
    /// A v1.0 token, which this server is not configured to accept.
    #[error("the token is an Entra v1.0 token (issuer {issuer}); set \"requestedAccessTokenVersion\": 2 in the app registration's manifest, or enable v1 tokens on this server")]
    V1Token {
        /// The token's `iss`.
        issuer: CallerText,
    },
    /// The issuer is not the one the tenant policy expects.
    #[error("the token's issuer is {found}, but this server expects {expected}; get a token from the tenant this server trusts")]
    WrongIssuer {
        /// The token's `iss`.
        found: CallerText,
        /// The expected issuer.
        expected: String,
    },
    /// An Azure AD B2C token issued by another user flow or policy than `AZURE_B2C_POLICY`
    /// (its `tfp`, or `acr` in older tenants): every policy of a tenant shares the issuer and the
    /// keys, so the policy is what tells a sign-in from, say, a password reset.
    #[error("the token was issued by the B2C policy {found}, but this server accepts only {expected}; sign in through that user flow")]
    WrongB2cPolicy {
        /// The token's `tfp` (or `acr`), or `none`.
        found: CallerText,
        /// `AZURE_B2C_POLICY`.
        expected: String,
    },
    /// The signing key is bound to an issuer (its JWKS `issuer`, `{tenantid}` replaced by the
    /// token's `tid`) that is not the token's `iss`: a key of one issuer signed for another
    /// (docs/ARCHITECTURE.md#token-verification; Entra's "validate the signing key issuer" guidance).
    #[error("the token's issuer is {issuer}, but its signing key {kid} signs only for {key_issuer}")]
    KeyIssuerMismatch {
        /// The header's `kid`.
        kid: CallerText,
        /// The key's `issuer` in the JWKS (a `{tenantid}` template for multi-tenant keys).
        key_issuer: String,
        /// The token's `iss`.
        issuer: CallerText,
    },
    /// An OpenID Connect ID token (it carries `nonce`, `at_hash` or `c_hash`, and no `scp`).
    #[error("the token is an ID token (it carries `{marker}` and no `scp`): send an access token requested for this API's scope (api://<client-id>/access_as_user), not the ID token from sign-in")]
    IdToken {
        /// The ID-token claim found.
        marker: &'static str,
    },
    /// `idtyp` = `app` together with `scp`: a token cannot be both.
    #[error("the token says it is an app-only token (`idtyp` = app) but carries delegated scopes (`scp`)")]
    AppTokenWithScopes,
    /// `ver` does not match the issuer's form (v2 issuer ⇔ `2.0`, v1 `https://sts.…/` issuer ⇔ `1.0`).
    #[error("the token's `ver` is {ver}, but its issuer {issuer} issues version {expected} tokens")]
    VersionMismatch {
        /// The token's `ver`.
        ver: CallerText,
        /// The token's `iss`.
        issuer: CallerText,
        /// The version the issuer's form implies.
        expected: &'static str,
    },
    /// `tid` is not the tenant named in `iss`.
    #[error("the token's tenant id {tid} is not the tenant of its issuer {issuer}")]
    TenantMismatch {
        /// The token's `tid`.
        tid: CallerText,
        /// The token's `iss`.
        issuer: CallerText,
    },
    /// `tid` is not a GUID (multi-tenant policies require one).
    #[error("the token's tenant id `{0}` is not a GUID")]
    TenantNotGuid(CallerText),
    /// The tenant is not one this server accepts.
    #[error("tenant {tid} is not allowed to call this server{hint}")]
    TenantNotAllowed {
        /// The token's `tid`.
        tid: CallerText,
        /// Why, for the person fixing it.
        hint: &'static str,
    },
}

impl InvalidToken {
    /// For [`InvalidToken::Expired`]: when the token expired, without the generic fix ("get a
    /// new token"), for a transport that names the fix for where its token comes from.
    pub fn expiry(&self) -> Option<String> {
        match self {
            InvalidToken::Expired { expired_at } => Some(format!(
                "the token expired at {} ({} ago)",
                fmt_time(*expired_at),
                fmt_ago(*expired_at)
            )),
            _ => None,
        }
    }

    /// A short, stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            InvalidToken::Unknown => "unknown_token",
            InvalidToken::TooLarge { .. } => "too_large",
            InvalidToken::NotAJwt(_) => "not_a_jwt",
            InvalidToken::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
            InvalidToken::UnsupportedCritical(_) => "unsupported_crit",
            InvalidToken::GraphNonce => "graph_token",
            InvalidToken::MissingKeyId => "missing_kid",
            InvalidToken::UnknownSigningKey { .. } => "unknown_kid",
            InvalidToken::BadSignature => "bad_signature",
            InvalidToken::MissingClaim(_) => "missing_claim",
            InvalidToken::MalformedClaim { .. } => "malformed_claim",
            InvalidToken::Expired { .. } => "expired",
            InvalidToken::NotYetValid { .. } => "not_yet_valid",
            InvalidToken::GraphAudience { .. } => "graph_token",
            InvalidToken::WrongAudience { .. } => "wrong_audience",
            InvalidToken::V1Token { .. } => "v1_token",
            InvalidToken::WrongIssuer { .. } => "wrong_issuer",
            InvalidToken::WrongB2cPolicy { .. } => "wrong_b2c_policy",
            InvalidToken::KeyIssuerMismatch { .. } => "key_issuer_mismatch",
            InvalidToken::IdToken { .. } => "id_token",
            InvalidToken::AppTokenWithScopes => "app_token_with_scopes",
            InvalidToken::VersionMismatch { .. } => "version_mismatch",
            InvalidToken::TenantMismatch { .. } => "tenant_mismatch",
            InvalidToken::TenantNotGuid(_) => "tenant_not_guid",
            InvalidToken::TenantNotAllowed { .. } => "tenant_not_allowed",
        }
    }
}

/// What a valid token lacks.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScopeProblem {
    /// A delegated token without every required scope.
    #[error("the token lacks the required scope(s) {}; request a token for {}", missing.join(" "), missing.join(" "))]
    MissingScopes {
        /// The required scopes the token does not carry.
        missing: Vec<String>,
    },
    /// A token without `scp` that is not an app-only token either (no `idtyp` = `app`; or `oid`
    /// ≠ `sub`, or no client id in `azp`/`appid`): a user's token missing its scopes, whatever
    /// `roles` it carries (docs/ARCHITECTURE.md#token-verification).
    #[error("the token carries no delegated scopes (`scp`) and is not an app-only token (no `idtyp` = app; `oid` differs from `sub` or no `azp`/`appid`), so it lacks the required scope(s) {}; a user must request a token for {}; a daemon's app registration needs the `idtyp` optional claim", missing.join(" "), missing.join(" "))]
    NoDelegatedScopes {
        /// The required scopes, all missing.
        missing: Vec<String>,
    },
    /// An app-only token, but this server accepts none (no required app roles configured).
    #[error("app-only tokens (client credentials) are not accepted: this server requires a user's delegated token; to accept daemon callers, list the app roles they must carry in AZURE_REQUIRED_APP_ROLES")]
    AppOnlyNotAccepted,
    /// An app-only token without every required app role.
    #[error("the app-only token lacks the required app role(s) {}; grant them to the calling application", missing.join(" "))]
    MissingRoles {
        /// The required roles the token does not carry.
        missing: Vec<String>,
    },
    /// A delegated token with none of the scopes of which one is required.
    #[error("the token carries none of the scopes {}; request a token for one of them", any_of.join(" "))]
    MissingAnyScope {
        /// The alternatives.
        any_of: Vec<String>,
    },
    /// An app-only token with none of the app roles of which one is required.
    #[error("the app-only token carries none of the app roles {}; grant one of them to the calling application", any_of.join(" "))]
    MissingAnyRole {
        /// The alternatives.
        any_of: Vec<String>,
    },
    /// An app-only token where only users' delegated tokens are accepted.
    #[error(
        "this operation accepts only a user's delegated token, not an app-only token (client credentials)"
    )]
    DelegatedOnly,
    /// A user's delegated token where only app-only tokens are accepted.
    #[error("this operation accepts only an application's own token (client credentials) with the app role(s) {}, not a user's token", roles.join(" "))]
    AppOnly {
        /// The app roles an application's token needs.
        roles: Vec<String>,
    },
}

/// Why nothing can be verified right now. Sent to callers as a 503.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unavailable {
    /// No signing keys have been loaded from the identity provider yet.
    #[error("the server has not yet loaded the identity provider's signing keys; retry shortly")]
    NoSigningKeys,
    /// Group membership had to be asked of Microsoft Graph, which did not answer in time or
    /// answered with an error. Never taken as membership.
    #[error("the server could not confirm your group membership with Microsoft Graph; retry shortly")]
    GroupMembership,
}

impl Unavailable {
    /// How long a client should wait before retrying.
    pub fn retry_after(&self) -> Duration {
        match self {
            Unavailable::NoSigningKeys => Duration::from_secs(5),
            Unavailable::GroupMembership => Duration::from_secs(10),
        }
    }
}

fn fmt_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::identity::format_unix_utc(secs)
}

fn fmt_ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        _ => format!("{} h", secs / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_text_escapes_and_truncates() {
        let table = [
            ("api://x", "api://x"),
            ("a\nb\rc\u{1b}[2J", r"a\u{a}b\u{d}c\u{1b}[2J"),
            (
                "line\u{2028}para\u{2029}bidi\u{202e}zw\u{200b}bom\u{feff}",
                r"line\u{2028}para\u{2029}bidi\u{202e}zw\u{200b}bom\u{feff}",
            ),
            ("c1\u{85}del\u{7f}tab\t", r"c1\u{85}del\u{7f}tab\u{9}"),
            (r"back\slash", r"back\\slash"),
            ("ünïcødé 東京", "ünïcødé 東京"),
        ];
        for (raw, escaped) in table {
            assert_eq!(CallerText::new(raw).as_str(), escaped, "{raw:?}");
            assert_eq!(CallerText::escape_all(raw), escaped, "{raw:?}");
        }
        let long = "é".repeat(300);
        assert_eq!(
            CallerText::new(&long).as_str(),
            format!(
                "{}...(+{} bytes)",
                "é".repeat(CallerText::MAX_CHARS),
                2 * (300 - CallerText::MAX_CHARS)
            )
        );
        let err = InvalidToken::WrongAudience {
            found: "x\n2026-01-01T00:00:00Z INFO forged".into(),
            expected: "api://x".into(),
            request: "api://x/access_as_user".into(),
        };
        assert_eq!(
            err.to_string(),
            r"the token's audience is x\u{a}2026-01-01T00:00:00Z INFO forged, but this server expects api://x; request a token for this API (api://x/access_as_user)"
        );
    }
}
