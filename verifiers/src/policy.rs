//! Authorization rules over a verified [`Identity`]:
//!
//! - [`AccessPolicy`], the server-wide floor every verifier applies to every token
//!   (`AZURE_REQUIRED_SCOPES`, `AZURE_REQUIRED_APP_ROLES`);
//! - [`Requirement`], what one operation (an MCP tool, in the server) needs on top of the floor:
//!   all-of or any-of scopes for delegated tokens, all-of or any-of app roles for app-only
//!   tokens, and whether each kind of caller is accepted at all.
//!
//! Both speak only of tokens (Entra's `scp` and `roles` claims), never of MCP, so both transports
//! and the server can share them. Absence never grants: a requirement that does not name a kind
//! of caller refuses it.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use crate::{AuthError, Identity, ScopeProblem};

/// Scope and app-role hierarchies: a token that grants a name also grants every name it implies
/// (the MCP authorization specification, 2026-07-28, asks resource servers to account for scope
/// hierarchies; Entra itself has none, so the server is told). One table serves both kinds: a
/// delegated token's `scp` implies scopes, an app-only token's `roles` implies app roles, never
/// one kind for the other.
///
/// ```
/// use verifiers::Implications;
///
/// let implied = Implications::new([("Tools.ReadWrite", vec!["Tools.Read"])]).unwrap();
/// assert!(implied.grants(&["Tools.ReadWrite".to_owned()], "Tools.Read"));
/// assert!(!implied.grants(&["Tools.Read".to_owned()], "Tools.ReadWrite"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Implications {
    /// Every name that implies something, with everything it implies, transitively (never
    /// itself: cycles are refused).
    closure: BTreeMap<String, BTreeSet<String>>,
}

/// An implication table that cannot work (refused at start-up; the text names the entry).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImplicationError {
    /// Following the table from `name` leads back to it.
    #[error("[implies] has a cycle: {0}; a name cannot imply itself, directly or through others")]
    Cycle(String),
    /// A name that is not a short scope or role name.
    #[error("[implies] holds {0:?}; use short names such as Tools.Read (no spaces, not an api:// URI)")]
    BadName(String),
    /// An entry with nothing implied.
    #[error("[implies] \"{0}\" = [] implies nothing; list what it implies or remove it")]
    Empty(String),
}

impl Implications {
    /// The table `name → names it implies` (direct implications; the closure is computed here).
    ///
    /// # Errors
    /// A cycle (`A → B → A`), an empty list, or a name that is empty, holds whitespace or `/`.
    pub fn new<I, K, V, S>(table: I) -> Result<Self, ImplicationError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let direct: BTreeMap<String, Vec<String>> = table
            .into_iter()
            .map(|(k, v)| (k.into(), v.into_iter().map(Into::into).collect()))
            .collect();
        let bad = |n: &str| n.is_empty() || n.contains(|c: char| c.is_whitespace() || c == '/');
        for (name, implied) in &direct {
            if let Some(bad) = std::iter::once(name).chain(implied).find(|n| bad(n)) {
                return Err(ImplicationError::BadName(bad.clone()));
            }
            if implied.is_empty() {
                return Err(ImplicationError::Empty(name.clone()));
            }
        }
        let mut closure = BTreeMap::new();
        for name in direct.keys() {
            let mut reached = BTreeSet::new();
            let mut path = vec![name.clone()];
            walk(&direct, name, &mut path, &mut reached)?;
            closure.insert(name.clone(), reached);
        }
        Ok(Implications { closure })
    }

    /// `true` when there is nothing in the table.
    pub fn is_empty(&self) -> bool {
        self.closure.is_empty()
    }

    /// Every name that appears on the right of the table (what tokens can be granted through
    /// it), for the start-up check that each is required somewhere.
    pub fn implied_names(&self) -> BTreeSet<&str> {
        self.closure.values().flatten().map(String::as_str).collect()
    }

    /// `true` when `name` implies something.
    pub fn implies_something(&self, name: &str) -> bool {
        self.closure.contains_key(name)
    }

    /// `true` when `held` (a token's `scp` words or `roles`) holds `wanted` or a name that
    /// implies it.
    pub fn grants(&self, held: &[String], wanted: &str) -> bool {
        held.iter().any(|h| {
            h == wanted
                || self
                    .closure
                    .get(h)
                    .is_some_and(|implied| implied.contains(wanted))
        })
    }

    /// `names` without those another of `names` implies: the least that grants them all (what a
    /// challenge asks for: `Tools.ReadWrite`, not `Tools.ReadWrite Tools.Read`).
    pub fn least(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .filter(|n| {
                !names
                    .iter()
                    .any(|other| other != *n && self.closure.get(other).is_some_and(|i| i.contains(*n)))
            })
            .cloned()
            .collect()
    }
}

/// Depth-first from `name`, collecting what it implies into `reached`; `path` is the chain so
/// far (for the cycle's text).
fn walk(
    direct: &BTreeMap<String, Vec<String>>,
    name: &str,
    path: &mut Vec<String>,
    reached: &mut BTreeSet<String>,
) -> Result<(), ImplicationError> {
    for next in direct.get(name).into_iter().flatten() {
        if path.contains(next) {
            path.push(next.clone());
            return Err(ImplicationError::Cycle(path.join(" → ")));
        }
        if reached.insert(next.clone()) {
            path.push(next.clone());
            walk(direct, next, path, reached)?;
            path.pop();
        }
    }
    Ok(())
}

/// What a verified token must grant to call this server.
///
/// - A delegated (user) token must carry **every** required scope in `scp`, matched as whole
///   words: `access_as_user` does not match `access_as_user_admin`.
/// - A delegated token without any scope (no `scp`, or an empty one; for example a user's token
///   that carries only `roles`) is refused with [`ScopeProblem::NoDelegatedScopes`], even by a
///   policy that requires no scope.
/// - An app-only token (see [`Identity::app_only`]) is accepted only when required app roles are configured, and
///   then must carry every one of them in `roles`. With no roles configured, app-only tokens are
///   refused: a daemon should not inherit what was designed for users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Scopes (short names, e.g. `access_as_user`) a delegated token must carry.
    pub required_scopes: Vec<String>,
    /// App roles an app-only token must carry. Empty: app-only tokens are refused.
    pub required_app_roles: Vec<String>,
    /// Which scopes and roles imply others (`[implies]`); empty by default.
    pub implications: Implications,
}

impl AccessPolicy {
    /// A policy requiring these delegated scopes and accepting no app-only tokens.
    pub fn scopes<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        AccessPolicy {
            required_scopes: scopes.into_iter().map(Into::into).collect(),
            required_app_roles: Vec::new(),
            implications: Implications::default(),
        }
    }

    /// Also accepts app-only tokens that carry all of these app roles.
    pub fn with_app_roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_app_roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Checks `identity` against the policy.
    pub fn authorize(&self, identity: &Identity) -> Result<(), AuthError> {
        let problem = if identity.app_only {
            if self.required_app_roles.is_empty() {
                Some(ScopeProblem::AppOnlyNotAccepted)
            } else {
                let implied = &self.implications;
                let missing = missing(&self.required_app_roles, |r| implied.grants(&identity.roles, r));
                (!missing.is_empty()).then_some(ScopeProblem::MissingRoles { missing })
            }
        } else {
            // A delegated token with no scope at all grants nothing, whatever the policy
            // requires: absence never grants (docs/ARCHITECTURE.md#token-verification).
            if identity.scopes.is_empty() {
                Some(ScopeProblem::NoDelegatedScopes {
                    missing: self.required_scopes.clone(),
                })
            } else {
                let implied = &self.implications;
                let missing = missing(&self.required_scopes, |s| implied.grants(&identity.scopes, s));
                (!missing.is_empty()).then_some(ScopeProblem::MissingScopes { missing })
            }
        };
        match problem {
            None => Ok(()),
            Some(problem) => Err(AuthError::InsufficientScope {
                required: self.required_scopes.clone(),
                problem,
            }),
        }
    }
}

/// A set of scopes or app roles, matched in one of two ways. Names are whole words, compared
/// case-sensitively, as Entra writes them in `scp` and `roles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grants {
    /// Every one of these. An empty list asks for nothing beyond the server-wide
    /// [`AccessPolicy`].
    AllOf(Vec<String>),
    /// At least one of these. An empty list is never satisfied.
    AnyOf(Vec<String>),
}

impl Grants {
    /// The names, in the order given.
    pub fn names(&self) -> &[String] {
        match self {
            Grants::AllOf(names) | Grants::AnyOf(names) => names,
        }
    }

    /// `None` when `has` grants what is asked; otherwise the names that are missing (all-of) or
    /// the alternatives (any-of).
    fn unmet(&self, has: impl Fn(&str) -> bool) -> Option<Vec<String>> {
        match self {
            Grants::AllOf(names) => {
                let missing = missing(names, has);
                (!missing.is_empty()).then_some(missing)
            }
            Grants::AnyOf(names) => (!names.iter().any(|n| has(n))).then(|| names.clone()),
        }
    }
}

/// What a caller needs for one operation (in the server: one MCP tool), on top of the
/// server-wide [`AccessPolicy`] that the verifier has already applied.
///
/// Entra gives two kinds of access token (Microsoft identity platform, "Scopes and
/// permissions" and "App roles"): a user's delegated token carries the scopes the user
/// consented to in `scp`; an application's own (client-credentials) token carries the app roles
/// granted to it in `roles`. A requirement says what each kind must carry, or that it is not
/// accepted (`None`).
///
/// ```
/// use verifiers::{Identity, Requirement};
///
/// // Users need Notes.Write; daemons need the Notes.Write.All app role.
/// let write = Requirement::scopes(["Notes.Write"]).or_app_roles(["Notes.Write.All"]);
/// let user = Identity::builder("oid", "tid").scopes(["access_as_user", "Notes.Write"]).build();
/// assert!(write.check(&user).is_ok());
/// let reader = Identity::builder("oid", "tid").scopes(["access_as_user"]).build();
/// assert!(write.check(&reader).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// What a delegated (user) token must carry in `scp`. `None`: user tokens are refused.
    pub scopes: Option<Grants>,
    /// What an app-only token must carry in `roles`. `None`: app-only tokens are refused
    /// (delegated-only).
    pub app_roles: Option<Grants>,
}

/// `users need scopes Notes.Write; applications refused`: who the requirement admits, as the
/// start-up log and the documentation put it.
impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Requirement::floor() {
            return f.write_str("every caller the server-wide settings admit");
        }
        let part = |grants: &Option<Grants>, who: &str, what: &str| match grants {
            None => format!("{who} refused"),
            Some(Grants::AllOf(names)) if names.is_empty() => {
                format!("{who} as the server-wide settings say")
            }
            Some(Grants::AllOf(names)) => format!("{who} need {what} {}", names.join(" and ")),
            Some(Grants::AnyOf(names)) => format!("{who} need one of the {what} {}", names.join(", ")),
        };
        write!(
            f,
            "{}; {}",
            part(&self.scopes, "users", "scopes"),
            part(&self.app_roles, "applications", "app roles")
        )
    }
}

impl Requirement {
    /// Nothing beyond the server-wide [`AccessPolicy`]: every caller the verifier accepted,
    /// users and (when the server accepts them) app-only callers alike.
    pub fn floor() -> Self {
        Requirement {
            scopes: Some(Grants::AllOf(Vec::new())),
            app_roles: Some(Grants::AllOf(Vec::new())),
        }
    }

    /// Users whose token carries every one of `scopes`; app-only tokens are refused until
    /// [`or_app_roles`](Self::or_app_roles) or [`or_any_app_role`](Self::or_any_app_role) says
    /// which roles admit them.
    pub fn scopes<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Requirement {
            scopes: Some(Grants::AllOf(names(scopes))),
            app_roles: None,
        }
    }

    /// Users whose token carries at least one of `scopes`; app-only tokens are refused unless
    /// roles are added.
    pub fn any_scope<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Requirement {
            scopes: Some(Grants::AnyOf(names(scopes))),
            app_roles: None,
        }
    }

    /// App-only callers whose token carries every one of `roles`; user tokens are refused.
    pub fn app_roles<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Requirement {
            scopes: None,
            app_roles: Some(Grants::AllOf(names(roles))),
        }
    }

    /// Also admits app-only callers whose token carries every one of `roles`.
    pub fn or_app_roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.app_roles = Some(Grants::AllOf(names(roles)));
        self
    }

    /// Also admits app-only callers whose token carries at least one of `roles`.
    pub fn or_any_app_role<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.app_roles = Some(Grants::AnyOf(names(roles)));
        self
    }

    /// Checks `identity` (already accepted by the server-wide [`AccessPolicy`]) against this
    /// requirement. A refusal is [`AuthError::InsufficientScope`] whose `required` lists the
    /// scopes a user needs here (empty when users are not accepted) and whose problem names what
    /// is missing.
    pub fn check(&self, identity: &Identity) -> Result<(), AuthError> {
        self.check_implied(identity, &Implications::default())
    }

    /// [`check`](Self::check), counting what the token's scopes and roles imply.
    pub fn check_implied(&self, identity: &Identity, implied: &Implications) -> Result<(), AuthError> {
        let has_role = |r: &str| implied.grants(&identity.roles, r);
        let has_scope = |s: &str| implied.grants(&identity.scopes, s);
        let problem = if identity.app_only {
            match &self.app_roles {
                None => Some(ScopeProblem::DelegatedOnly),
                Some(roles @ Grants::AllOf(_)) => roles
                    .unmet(has_role)
                    .map(|missing| ScopeProblem::MissingRoles { missing }),
                Some(roles @ Grants::AnyOf(_)) => roles
                    .unmet(has_role)
                    .map(|any_of| ScopeProblem::MissingAnyRole { any_of }),
            }
        } else {
            match &self.scopes {
                None => Some(ScopeProblem::AppOnly {
                    roles: self
                        .app_roles
                        .as_ref()
                        .map(|r| r.names().to_vec())
                        .unwrap_or_default(),
                }),
                Some(scopes @ Grants::AllOf(_)) => scopes
                    .unmet(has_scope)
                    .map(|missing| ScopeProblem::MissingScopes { missing }),
                Some(scopes @ Grants::AnyOf(_)) => scopes
                    .unmet(has_scope)
                    .map(|any_of| ScopeProblem::MissingAnyScope { any_of }),
            }
        };
        match problem {
            None => Ok(()),
            Some(problem) => Err(AuthError::InsufficientScope {
                required: self
                    .scopes
                    .as_ref()
                    .map(|s| s.names().to_vec())
                    .unwrap_or_default(),
                problem,
            }),
        }
    }

    /// `true` when [`check`](Self::check) passes.
    pub fn allows(&self, identity: &Identity) -> bool {
        self.check(identity).is_ok()
    }
}

fn names<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

fn missing(required: &[String], has: impl Fn(&str) -> bool) -> Vec<String> {
    required.iter().filter(|r| !has(r)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(scopes: &[&str]) -> Identity {
        Identity::builder("oid", "tid")
            .scopes(scopes.iter().copied())
            .build()
    }

    fn app(roles: &[&str]) -> Identity {
        Identity::builder("oid", "tid")
            .app_only(true)
            .roles(roles.iter().copied())
            .build()
    }

    fn problem(result: Result<(), AuthError>) -> ScopeProblem {
        match result {
            Err(AuthError::InsufficientScope { problem, .. }) => problem,
            other => panic!("expected insufficient scope, got {other:?}"),
        }
    }

    /// One row per implication table: what it is refused with, or what it grants.
    #[test]
    fn implication_rules() {
        type Table = Vec<(&'static str, Vec<&'static str>)>;
        let refused: Vec<(Table, &str)> = vec![
            (vec![("A", vec!["A"])], "[implies] has a cycle: A → A; a name cannot imply itself, directly or through others"),
            (
                vec![("A", vec!["B"]), ("B", vec!["C"]), ("C", vec!["A"])],
                "[implies] has a cycle: A → B → C → A; a name cannot imply itself, directly or through others",
            ),
            (vec![("A", vec![])], "[implies] \"A\" = [] implies nothing; list what it implies or remove it"),
            (
                vec![("A", vec!["api://x/B"])],
                "[implies] holds \"api://x/B\"; use short names such as Tools.Read (no spaces, not an api:// URI)",
            ),
            (vec![("A B", vec!["C"])], "[implies] holds \"A B\"; use short names such as Tools.Read (no spaces, not an api:// URI)"),
        ];
        for (table, message) in refused {
            assert_eq!(Implications::new(table).unwrap_err().to_string(), message);
        }
        let implied = Implications::new([
            ("Tools.Admin", vec!["Tools.ReadWrite"]),
            ("Tools.ReadWrite", vec!["Tools.Read"]),
            ("Other", vec!["Tools.Read"]),
        ])
        .unwrap();
        let held = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert!(
            implied.grants(&held(&["Tools.Admin"]), "Tools.Read"),
            "transitive"
        );
        assert!(implied.grants(&held(&["Tools.Read"]), "Tools.Read"));
        assert!(
            !implied.grants(&held(&["Tools.Read"]), "Tools.ReadWrite"),
            "never upwards"
        );
        assert!(
            !implied.grants(&held(&["Tools.Admi"]), "Tools.Read"),
            "whole names"
        );
        assert_eq!(
            implied.least(&held(&["Tools.Read", "Tools.Admin", "Tools.ReadWrite", "x"])),
            held(&["Tools.Admin", "x"])
        );
        // The floor counts implications too.
        let mut policy = AccessPolicy::scopes(["Tools.Read"]).with_app_roles(["Tools.Read"]);
        policy.implications = implied;
        assert_eq!(policy.authorize(&user(&["Tools.Admin"])), Ok(()));
        assert_eq!(policy.authorize(&app(&["Tools.ReadWrite"])), Ok(()));
        assert!(policy.authorize(&app(&["Tools.Rea"])).is_err());
    }

    #[test]
    fn delegated_token_with_required_scope_ok() {
        let policy = AccessPolicy::scopes(["access_as_user"]);
        assert_eq!(policy.authorize(&user(&["openid", "access_as_user"])), Ok(()));
    }

    #[test]
    fn scope_match_is_whole_word_not_substring() {
        let policy = AccessPolicy::scopes(["access_as_user"]);
        for near_miss in [
            "access_as_user_admin",
            "access_as_use",
            "Access_As_User",
            "xaccess_as_user",
        ] {
            let p = problem(policy.authorize(&user(&[near_miss])));
            assert_eq!(
                p,
                ScopeProblem::MissingScopes {
                    missing: vec!["access_as_user".into()]
                },
                "{near_miss}"
            );
        }
    }

    #[test]
    fn every_required_scope_is_needed_and_missing_ones_are_named() {
        let policy = AccessPolicy::scopes(["read", "write", "admin"]);
        assert_eq!(policy.authorize(&user(&["admin", "write", "read"])), Ok(()));
        let p = problem(policy.authorize(&user(&["write"])));
        assert_eq!(
            p,
            ScopeProblem::MissingScopes {
                missing: vec!["read".into(), "admin".into()]
            }
        );
    }

    #[test]
    fn delegated_token_without_any_scope_fails_even_when_no_scope_is_required() {
        for required in [vec!["access_as_user"], vec![]] {
            let policy = AccessPolicy::scopes(required.clone());
            assert_eq!(
                problem(policy.authorize(&user(&[]))),
                ScopeProblem::NoDelegatedScopes {
                    missing: required.iter().map(|s| s.to_string()).collect()
                },
                "{required:?}"
            );
        }
        // Any scope at all satisfies an empty policy: the floor is the audience check.
        assert_eq!(
            AccessPolicy::scopes(Vec::<String>::new()).authorize(&user(&["x"])),
            Ok(())
        );
    }

    #[test]
    fn user_token_with_roles_but_no_scp_claim_names_the_missing_scope() {
        let policy = AccessPolicy::scopes(["access_as_user"]).with_app_roles(["Mcp.Call"]);
        let mut id = user(&[]);
        id.roles = vec!["Mcp.Call".into()];
        id.claims.remove("scp");
        assert_eq!(
            problem(policy.authorize(&id)),
            ScopeProblem::NoDelegatedScopes {
                missing: vec!["access_as_user".into()]
            }
        );
    }

    #[test]
    fn app_only_token_refused_without_configured_roles() {
        let policy = AccessPolicy::scopes(["access_as_user"]);
        assert_eq!(
            problem(policy.authorize(&app(&["Anything"]))),
            ScopeProblem::AppOnlyNotAccepted
        );
    }

    #[test]
    fn app_only_token_with_required_roles_ok() {
        let policy = AccessPolicy::scopes(["access_as_user"]).with_app_roles(["Mcp.Call"]);
        assert_eq!(policy.authorize(&app(&["Other", "Mcp.Call"])), Ok(()));
    }

    #[test]
    fn app_only_token_missing_a_role_fails_naming_it() {
        let policy = AccessPolicy::scopes(["access_as_user"]).with_app_roles(["Mcp.Call", "Mcp.Admin"]);
        let p = problem(policy.authorize(&app(&["Mcp.Call"])));
        assert_eq!(
            p,
            ScopeProblem::MissingRoles {
                missing: vec!["Mcp.Admin".into()]
            }
        );
    }

    #[test]
    fn delegated_token_is_not_authorized_by_roles_alone() {
        let policy = AccessPolicy::scopes(["access_as_user"]).with_app_roles(["Mcp.Call"]);
        let mut id = user(&["openid"]);
        id.roles = vec!["Mcp.Call".into()];
        assert!(matches!(
            problem(policy.authorize(&id)),
            ScopeProblem::MissingScopes { .. }
        ));
    }

    /// One row per rule of [`Requirement::check`]: the requirement, the caller, the outcome.
    #[test]
    fn requirement_rules() {
        let users_dice = || Requirement::scopes(["Dice.Roll"]);
        let dice_or_app = || Requirement::scopes(["Dice.Roll"]).or_app_roles(["Dice.Roll.All"]);
        let rows: Vec<(&str, Requirement, Identity, Result<(), ScopeProblem>)> = vec![
            (
                "floor admits a user",
                Requirement::floor(),
                user(&["access_as_user"]),
                Ok(()),
            ),
            ("floor admits an app", Requirement::floor(), app(&[]), Ok(())),
            (
                "all-of: user with it",
                users_dice(),
                user(&["access_as_user", "Dice.Roll"]),
                Ok(()),
            ),
            (
                "all-of: user without it",
                users_dice(),
                user(&["access_as_user"]),
                Err(ScopeProblem::MissingScopes {
                    missing: vec!["Dice.Roll".into()],
                }),
            ),
            (
                "all-of: a longer word is not the scope",
                users_dice(),
                user(&["Dice.Roll.All"]),
                Err(ScopeProblem::MissingScopes {
                    missing: vec!["Dice.Roll".into()],
                }),
            ),
            (
                "all-of: every one is needed",
                Requirement::scopes(["a", "b", "c"]),
                user(&["b"]),
                Err(ScopeProblem::MissingScopes {
                    missing: vec!["a".into(), "c".into()],
                }),
            ),
            (
                "any-of: one suffices",
                Requirement::any_scope(["r", "rw"]),
                user(&["rw"]),
                Ok(()),
            ),
            (
                "any-of: none is named as the alternatives",
                Requirement::any_scope(["r", "rw"]),
                user(&["x"]),
                Err(ScopeProblem::MissingAnyScope {
                    any_of: vec!["r".into(), "rw".into()],
                }),
            ),
            (
                "any-of: empty is never satisfied",
                Requirement::any_scope(Vec::<String>::new()),
                user(&["x"]),
                Err(ScopeProblem::MissingAnyScope { any_of: vec![] }),
            ),
            (
                "delegated-only refuses an app",
                users_dice(),
                app(&["Dice.Roll"]),
                Err(ScopeProblem::DelegatedOnly),
            ),
            (
                "app with the role",
                dice_or_app(),
                app(&["Dice.Roll.All"]),
                Ok(()),
            ),
            (
                "app without the role",
                dice_or_app(),
                app(&["Other"]),
                Err(ScopeProblem::MissingRoles {
                    missing: vec!["Dice.Roll.All".into()],
                }),
            ),
            (
                "an app's role is not a scope",
                dice_or_app(),
                app(&["Dice.Roll"]),
                Err(ScopeProblem::MissingRoles {
                    missing: vec!["Dice.Roll.All".into()],
                }),
            ),
            (
                "a user's role does not stand in for the scope",
                dice_or_app(),
                {
                    let mut id = user(&["access_as_user"]);
                    id.roles = vec!["Dice.Roll.All".into()];
                    id
                },
                Err(ScopeProblem::MissingScopes {
                    missing: vec!["Dice.Roll".into()],
                }),
            ),
            (
                "any role of several",
                Requirement::scopes(["s"]).or_any_app_role(["A", "B"]),
                app(&["B"]),
                Ok(()),
            ),
            (
                "none of several roles",
                Requirement::scopes(["s"]).or_any_app_role(["A", "B"]),
                app(&["C"]),
                Err(ScopeProblem::MissingAnyRole {
                    any_of: vec!["A".into(), "B".into()],
                }),
            ),
            (
                "app-only requirement refuses a user, naming the roles",
                Requirement::app_roles(["Jobs.Run"]),
                user(&["access_as_user", "Jobs.Run"]),
                Err(ScopeProblem::AppOnly {
                    roles: vec!["Jobs.Run".into()],
                }),
            ),
            (
                "app-only requirement admits the app",
                Requirement::app_roles(["Jobs.Run"]),
                app(&["Jobs.Run"]),
                Ok(()),
            ),
        ];
        for (name, requirement, identity, expected) in rows {
            let got = requirement.check(&identity).map_err(|e| match e {
                AuthError::InsufficientScope { problem, .. } => problem,
                other => panic!("{name}: expected insufficient scope, got {other:?}"),
            });
            assert_eq!(got, expected, "{name}");
            assert_eq!(requirement.allows(&identity), expected.is_ok(), "{name}");
        }
    }

    #[test]
    fn a_refusal_names_the_scopes_users_need() {
        let err = Requirement::scopes(["Dice.Roll"]).check(&user(&[])).unwrap_err();
        assert!(
            matches!(err, AuthError::InsufficientScope { ref required, .. } if required == &["Dice.Roll"])
        );
        assert_eq!(
            err.to_string(),
            "the token lacks the required scope(s) Dice.Roll; request a token for Dice.Roll"
        );
        let err = Requirement::app_roles(["Jobs.Run"])
            .check(&user(&[]))
            .unwrap_err();
        assert!(matches!(err, AuthError::InsufficientScope { ref required, .. } if required.is_empty()));
    }

    mod properties {
        use std::collections::BTreeSet;

        use proptest::prelude::*;

        use super::*;

        fn scope() -> impl Strategy<Value = String> {
            "[a-z_.]{1,12}"
        }

        proptest! {
            #[test]
            fn delegated_ok_iff_every_required_scope_is_granted(
                required in proptest::collection::btree_set(scope(), 0..4),
                granted in proptest::collection::btree_set(scope(), 0..6),
            ) {
                let policy = AccessPolicy::scopes(required.iter().cloned());
                let identity = user(&granted.iter().map(String::as_str).collect::<Vec<_>>());
                // A token with no scope at all is never enough, even for an empty policy.
                prop_assert_eq!(
                    policy.authorize(&identity).is_ok(),
                    !granted.is_empty() && required.is_subset(&granted)
                );
            }

            #[test]
            fn a_scope_never_matches_a_longer_or_shorter_word(base in scope(), extra in "[a-z_]{1,5}") {
                let policy = AccessPolicy::scopes([base.clone()]);
                let longer = format!("{base}{extra}");
                prop_assert!(policy.authorize(&user(&[longer.as_str()])).is_err());
                if base.len() > 1 {
                    prop_assert!(policy.authorize(&user(&[&base[..base.len() - 1]])).is_err());
                }
            }

            #[test]
            fn app_only_ok_iff_roles_configured_and_all_granted(
                required in proptest::collection::btree_set(scope(), 0..3),
                granted in proptest::collection::btree_set(scope(), 0..5),
            ) {
                let policy = AccessPolicy::scopes(["access_as_user"]).with_app_roles(required.iter().cloned());
                let identity = app(&granted.iter().map(String::as_str).collect::<Vec<_>>());
                let expected = !required.is_empty() && required.is_subset(&granted);
                prop_assert_eq!(policy.authorize(&identity).is_ok(), expected);
            }

            #[test]
            fn roles_never_stand_in_for_scopes(roles in proptest::collection::btree_set(scope(), 0..4)) {
                let policy = AccessPolicy::scopes(["access_as_user"]).with_app_roles(roles.iter().cloned());
                let mut identity = user(&[]);
                identity.roles = roles.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
                prop_assert!(policy.authorize(&identity).is_err());
            }
        }
    }
}
