//! The authorization rule shared by every verifier: which scopes or app roles a token must carry.

use crate::{AuthError, Identity, ScopeProblem};

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
                let missing = missing(&self.required_app_roles, |r| identity.has_role(r));
                (!missing.is_empty()).then_some(ScopeProblem::MissingRoles { missing })
            }
        } else {
            // A delegated token with no scope at all grants nothing, whatever the policy
            // requires: absence never grants (DESIGN §3a).
            if identity.scopes.is_empty() {
                Some(ScopeProblem::NoDelegatedScopes {
                    missing: self.required_scopes.clone(),
                })
            } else {
                let missing = missing(&self.required_scopes, |s| identity.has_scope(s));
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
