//! The verified caller.

use std::time::SystemTime;

use serde_json::{Map, Value};

/// A verified caller: who they are, what they may do, and every claim of their token.
///
/// Built by a [`TokenVerifier`](crate::TokenVerifier) after the token passed every check; tools
/// read it to act as the caller. Field names follow the Entra claims they come from.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// `sub`: the subject, stable per user *and* application.
    pub subject: String,
    /// `oid`: the object id, stable per user (or service principal) across applications. Empty
    /// when the token has none: never filled from `sub`, which is per application and could equal
    /// another user's `oid`. With `tid` it names the caller wherever one is remembered (sessions,
    /// the on-behalf-of cache); see [`principal`](Self::principal).
    pub object_id: String,
    /// `tid`: the tenant the caller signed in through.
    pub tenant_id: String,
    /// `name`: a display name, when the token carries one.
    pub name: Option<String>,
    /// The first of `preferred_username`, `upn`, `email` present in the token.
    pub username: Option<String>,
    /// `scp`, split on the space character (RFC 6749 §3.3): the delegated scopes granted.
    pub scopes: Vec<String>,
    /// `roles`: app roles granted (to the user, or to the application for app-only tokens).
    pub roles: Vec<String>,
    /// `azp` (v2) or `appid` (v1): the client application that requested the token.
    pub client_app: Option<String>,
    /// `true` for an application's own token (client credentials): `idtyp` = `app`, or (without
    /// `idtyp`) no `scp`, `oid` = `sub` and a client id in `azp`/`appid`. Never inferred from a
    /// missing `scp` alone.
    pub app_only: bool,
    /// `exp` (fraction included), when the token carried one.
    pub expires_at: Option<SystemTime>,
    /// Every claim of the token, for tools that need more than the fields above.
    pub claims: Map<String, Value>,
}

impl Identity {
    /// Starts building an identity by hand (tests, the static verifier).
    pub fn builder(object_id: impl Into<String>, tenant_id: impl Into<String>) -> IdentityBuilder {
        let object_id = object_id.into();
        IdentityBuilder {
            identity: Identity {
                subject: object_id.clone(),
                object_id,
                tenant_id: tenant_id.into(),
                name: None,
                username: None,
                scopes: Vec::new(),
                roles: Vec::new(),
                client_app: None,
                app_only: false,
                expires_at: None,
                claims: Map::new(),
            },
        }
    }

    /// `(tid, oid)`: who the caller is wherever the server remembers one (legacy sessions, the
    /// on-behalf-of token cache). `None` when the token lacks either claim: such a caller is
    /// never mistaken for another, it just gets nothing remembered.
    pub fn principal(&self) -> Option<(&str, &str)> {
        (!self.tenant_id.is_empty() && !self.object_id.is_empty())
            .then_some((self.tenant_id.as_str(), self.object_id.as_str()))
    }

    /// The name to greet the caller by: `name`, else the username, else the subject.
    pub fn display_name(&self) -> &str {
        self.name
            .as_deref()
            .or(self.username.as_deref())
            .unwrap_or(&self.subject)
    }

    /// `true` when the token carries `scope` in `scp` (whole word, case-sensitive).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// `true` when the token carries the app role `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// `true` when the identity has an expiry and it has passed.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|exp| exp <= now)
    }
}

/// Builds an [`Identity`] by hand; see [`Identity::builder`].
#[derive(Debug, Clone)]
pub struct IdentityBuilder {
    identity: Identity,
}

impl IdentityBuilder {
    /// Sets the display name (`name`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.identity.name = Some(name.into());
        self
    }

    /// Sets the username (`preferred_username`).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.identity.username = Some(username.into());
        self
    }

    /// Sets the subject (`sub`); defaults to the object id.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.identity.subject = subject.into();
        self
    }

    /// Sets the delegated scopes (`scp`).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.identity.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the app roles (`roles`).
    pub fn roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.identity.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the client application id (`azp`).
    pub fn client_app(mut self, app: impl Into<String>) -> Self {
        self.identity.client_app = Some(app.into());
        self
    }

    /// Marks the identity as an application's own (app-only) token.
    pub fn app_only(mut self, app_only: bool) -> Self {
        self.identity.app_only = app_only;
        self
    }

    /// Sets the expiry.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.identity.expires_at = Some(at);
        self
    }

    /// Finishes the identity, filling `claims` with the fields set so far.
    pub fn build(mut self) -> Identity {
        let id = &self.identity;
        let mut claims = Map::new();
        claims.insert("sub".into(), id.subject.clone().into());
        claims.insert("oid".into(), id.object_id.clone().into());
        claims.insert("tid".into(), id.tenant_id.clone().into());
        if let Some(name) = &id.name {
            claims.insert("name".into(), name.clone().into());
        }
        if let Some(username) = &id.username {
            claims.insert("preferred_username".into(), username.clone().into());
        }
        if !id.app_only {
            claims.insert("scp".into(), id.scopes.join(" ").into());
        }
        if !id.roles.is_empty() {
            claims.insert("roles".into(), id.roles.clone().into());
        }
        if let Some(app) = &id.client_app {
            claims.insert("azp".into(), app.clone().into());
        }
        self.identity.claims = claims;
        self.identity
    }
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub(crate) fn format_unix_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days: exact for every date a token can carry.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn identity(v: Value) -> Identity {
        Identity::from_claims(claims(v)).unwrap()
    }

    #[test]
    fn display_name_prefers_name_then_username_then_subject() {
        let full = identity(json!({"sub":"s","name":"Ada","preferred_username":"ada@x","scp":"a"}));
        assert_eq!(full.display_name(), "Ada");
        let upn = identity(json!({"sub":"s","upn":"ada@upn","scp":"a"}));
        assert_eq!(upn.display_name(), "ada@upn");
        let email = identity(json!({"sub":"s","email":"ada@mail","scp":"a"}));
        assert_eq!(email.display_name(), "ada@mail");
        let bare = identity(json!({"sub":"s","scp":"a"}));
        assert_eq!(bare.display_name(), "s");
    }

    #[test]
    fn scopes_split_on_space_and_app_only_needs_evidence() {
        let user = identity(json!({"sub":"s","scp":"a  b\tc"}));
        assert_eq!(user.scopes, ["a", "b\tc"]);
        assert!(!user.app_only);
        let roles_only = identity(json!({"sub":"s","oid":"o","roles":["Tasks.Read"]}));
        assert!(!roles_only.app_only, "no scp is not evidence of an app token");
        let app = identity(json!({"sub":"o","oid":"o","azp":"c","roles":["Tasks.Read"]}));
        assert!(app.app_only);
        assert_eq!(app.roles, ["Tasks.Read"]);
        let tagged = identity(json!({"sub":"s","oid":"o","idtyp":"app"}));
        assert!(tagged.app_only);
    }

    #[test]
    fn exp_is_read_once_with_its_fraction_and_out_of_range_is_refused() {
        let fractional = identity(json!({"scp":"a","exp": 1_700_000_006.5}));
        assert_eq!(
            fractional.expires_at,
            Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_006_500))
        );
        for huge in [json!(9_223_372_036_854_775_808u64), json!(1e19), json!(-1)] {
            assert!(
                Identity::from_claims(claims(json!({"scp":"a","exp": huge.clone()}))).is_err(),
                "{huge}"
            );
        }
    }

    #[test]
    fn unix_time_formats_as_utc() {
        assert_eq!(format_unix_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_unix_utc(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
