//! Who may call which tool (docs/ARCHITECTURE.md#per-tool-authorization).
//!
//! Each tool declares its [`Requirement`] beside its definition (`tools.rs`); an administrator
//! may replace it in the configuration file with a `[tools.<name>]` table ([`ToolOverride`]).
//! [`ToolAccess`] holds the result for the process and is the one mechanism both transports
//! use:
//!
//! - the server's handler filters `tools/list` with it and refuses a forbidden `tools/call`
//!   before the tool runs, with a JSON-RPC error naming what is missing and what to request
//!   (every transport: stdio, and HTTP calls the HTTP layer could not see in advance);
//! - the HTTP transport asks it (as a [`ToolGate`]) before the MCP layer runs, and answers a
//!   forbidden call with a `403 insufficient_scope` step-up challenge.
//!
//! The server-wide floor (`AZURE_REQUIRED_SCOPES`, `AZURE_REQUIRED_APP_ROLES`) is applied by
//! the verifier to every request before any of this; a tool's requirement comes on top.
//! App-only callers are told the app role and `<identifier-uri>/.default`, never a delegated
//! scope.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use transports::http::{KeyedLimiter, Principal, Rate, RateLimited};
use transports::{ToolGate, ToolRefusal};
use verifiers::{
    check_auth_context, is_auth_context_id, AccessToken, ApplicationIdUri, AuthError, Forbidden, Grants,
    GroupMembership, Identity, Implications, Requirement,
};

/// Callers each tool's rate limit tracks unless [`ToolAccess::with_rate_limit_max_tracked`]
/// says otherwise (the default of `RATE_LIMIT_MAX_TRACKED`).
const DEFAULT_MAX_TRACKED: usize = 100_000;

pub use crate::config::ToolOverride;

mod denied;
mod tables;

pub(crate) use denied::insufficient_scope;
pub use denied::ToolDenied;
use tables::{checked_groups, requirement};
pub use tables::{ToolConfigError, ToolOverrides};

/// What one tool asks of a caller beyond the server-wide floor.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ToolRule {
    /// Scopes for users, app roles for applications.
    requirement: Requirement,
    /// Group object ids, any-of; users only (an application's own groups are not checked).
    groups: Option<BTreeSet<String>>,
    /// A Conditional Access authentication context (`c1` … `c99`) the token must show in `acrs`.
    auth_context: Option<String>,
}

impl ToolRule {
    fn declared(requirement: Requirement) -> Self {
        ToolRule {
            requirement,
            groups: None,
            auth_context: None,
        }
    }
}

/// Every tool's requirement, and what a refused caller should request.
#[derive(Debug)]
pub struct ToolAccess {
    /// By tool name; a handful of entries.
    tools: BTreeMap<String, ToolRule>,
    /// The server-wide scopes, short names.
    floor_scopes: Vec<String>,
    /// The Application ID URI.
    identifier_uri: ApplicationIdUri,
    /// The tools with a `rate_limit`, by name: one bucket per caller (`tid`, `oid`).
    limits: BTreeMap<String, KeyedLimiter<Principal>>,
    /// `[implies]`: which scopes and roles grant others.
    implications: Implications,
    /// `AZURE_REQUIRED_GROUPS`: a user must be in one of these for every tool.
    floor_groups: Option<BTreeSet<String>>,
    /// How group membership is found (the token, or Microsoft Graph on overage); set once the
    /// server's credential is ready ([`ToolAccess::set_group_membership`]). Unset: the token only.
    membership: OnceLock<Arc<GroupMembership>>,
}

impl ToolAccess {
    /// `declared` (each tool's requirement, as the server that owns the tools declares it; every
    /// tool of `tools` must have one) with the configuration's `overrides` applied.
    ///
    /// `identifier_uri` (`AZURE_IDENTIFIER_URI`) turns short scope names into the URIs a client
    /// requests; `floor_scopes` are `AZURE_REQUIRED_SCOPES` (short names). Fails on a tool
    /// without a declaration, a table for an unknown tool, an empty table or list, or a name that
    /// is not short. (`tools.rs` calls this with its own tools: [`ToolAccess::new`].)
    pub fn from_declarations(
        declared: impl IntoIterator<Item = (String, Requirement)>,
        tools: impl IntoIterator<Item = String>,
        identifier_uri: &ApplicationIdUri,
        floor_scopes: &[String],
        overrides: &ToolOverrides,
    ) -> Result<ToolAccess, ToolConfigError> {
        let declared: BTreeMap<String, ToolRule> = declared
            .into_iter()
            .map(|(name, requirement)| (name, ToolRule::declared(requirement)))
            .collect();
        if let Some(undeclared) = tools.into_iter().find(|tool| !declared.contains_key(tool)) {
            return Err(ToolConfigError::Undeclared(undeclared));
        }
        let mut tools = declared;
        let mut limits = BTreeMap::new();
        // In name order, so the first error reported does not depend on hashing.
        let mut tables: Vec<_> = overrides.iter().collect();
        tables.sort_by(|a, b| a.0.cmp(b.0));
        for (name, table) in tables {
            let Some(slot) = tools.get_mut(name) else {
                return Err(ToolConfigError::UnknownTool {
                    name: name.clone(),
                    known: tools.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            };
            if let Some(value) = &table.rate_limit {
                let rate = Rate::parse_setting(value).map_err(|expected| ToolConfigError::BadRate {
                    name: name.clone(),
                    value: value.clone(),
                    expected,
                })?;
                if let Some(rate) = rate {
                    limits.insert(
                        name.clone(),
                        KeyedLimiter::new("tool", rate, DEFAULT_MAX_TRACKED, Principal::tenant),
                    );
                }
            }
            if let Some(groups) = &table.groups {
                slot.groups = Some(checked_groups(name, groups)?);
            }
            if let Some(context) = &table.auth_context {
                if !is_auth_context_id(context) {
                    return Err(ToolConfigError::BadAuthContext {
                        name: name.clone(),
                        value: context.clone(),
                    });
                }
                slot.auth_context = Some(context.clone());
            }
            if table.scopes.is_some() || table.app_roles.is_some() {
                slot.requirement = requirement(table, name)?;
            } else if table.rate_limit.is_none() && table.groups.is_none() && table.auth_context.is_none() {
                return Err(ToolConfigError::Empty(name.clone()));
            }
            // An application has no groups to check: a tool limited to groups admits one only by
            // app roles named for it, never by the server-wide floor alone.
            if slot.groups.is_some() && slot.requirement.app_roles == Some(Grants::AllOf(Vec::new())) {
                slot.requirement.app_roles = None;
            }
        }
        Ok(ToolAccess {
            floor_scopes: floor_scopes.to_vec(),
            identifier_uri: identifier_uri.clone(),
            tools,
            limits,
            implications: Implications::default(),
            floor_groups: None,
            membership: OnceLock::new(),
        })
    }

    /// The same, counting what `implied` says each scope and app role grants (`[implies]`) in
    /// every check, in `tools/list` and in what a refusal asks for. `floor_roles` are
    /// `AZURE_REQUIRED_APP_ROLES`.
    ///
    /// # Errors
    /// [`ToolConfigError::UnusedImplication`] for an implied name nothing requires.
    pub fn with_implications(
        mut self,
        implied: Implications,
        floor_roles: &[String],
    ) -> Result<Self, ToolConfigError> {
        let mut required: BTreeSet<&str> = self.floor_scopes.iter().map(String::as_str).collect();
        required.extend(floor_roles.iter().map(String::as_str));
        for rule in self.tools.values() {
            let requirement = &rule.requirement;
            for grants in [&requirement.scopes, &requirement.app_roles]
                .into_iter()
                .flatten()
            {
                required.extend(grants.names().iter().map(String::as_str));
            }
        }
        // An implied name that itself implies something is part of a chain, and so used.
        let unused = implied
            .implied_names()
            .into_iter()
            .find(|name| !required.contains(name) && !implied.implies_something(name));
        if let Some(name) = unused {
            return Err(ToolConfigError::UnusedImplication(name.to_owned()));
        }
        self.implications = implied;
        Ok(self)
    }

    /// The same, with `AZURE_REQUIRED_GROUPS`: a user must be in one of `groups` (object ids)
    /// to call any tool. Empty: no such floor.
    ///
    /// # Errors
    /// [`ToolConfigError::BadGroup`] for an entry that is not a GUID.
    pub fn with_required_groups(mut self, groups: &[String]) -> Result<Self, ToolConfigError> {
        if !groups.is_empty() {
            self.floor_groups = Some(checked_groups("AZURE_REQUIRED_GROUPS", groups)?);
        }
        Ok(self)
    }

    /// How group membership is found from now on; only the first call counts.
    pub fn set_group_membership(&self, membership: GroupMembership) {
        let _ = self.membership.set(Arc::new(membership));
    }

    /// `true` when some tool, or the server, is limited to groups.
    pub fn uses_groups(&self) -> bool {
        self.floor_groups.is_some() || self.tools.values().any(|rule| rule.groups.is_some())
    }

    fn membership(&self) -> Arc<GroupMembership> {
        self.membership
            .get_or_init(|| Arc::new(GroupMembership::token_only()))
            .clone()
    }

    /// The same, with each tool's rate limit tracking at most `max` callers
    /// (`RATE_LIMIT_MAX_TRACKED`; past it, new callers share one bucket per tool).
    pub fn with_rate_limit_max_tracked(mut self, max: usize) -> Self {
        for limiter in self.limits.values_mut() {
            *limiter = KeyedLimiter::new("tool", limiter.rate(), max, Principal::tenant);
        }
        self
    }

    /// Counts one call of `name` by `identity` against the tool's `rate_limit`, if it has one.
    ///
    /// # Errors
    /// [`RateLimited`] past the limit.
    pub fn admit(&self, name: &str, identity: &Identity) -> Result<(), RateLimited> {
        match self.limits.get(name) {
            Some(limiter) => limiter.check(&Principal::or_tenant(identity)),
            None => Ok(()),
        }
    }

    /// Every one of `tools` refused to every caller: what a server falls back to when its
    /// declarations are broken (fail closed; an empty table would refuse nobody).
    pub fn refusing_all(
        tools: impl IntoIterator<Item = String>,
        identifier_uri: ApplicationIdUri,
    ) -> ToolAccess {
        let refuse_all = ToolRule::declared(Requirement {
            scopes: None,
            app_roles: None,
        });
        ToolAccess {
            tools: tools.into_iter().map(|tool| (tool, refuse_all.clone())).collect(),
            floor_scopes: Vec::new(),
            identifier_uri,
            limits: BTreeMap::new(),
            implications: Implications::default(),
            floor_groups: None,
            membership: OnceLock::new(),
        }
    }

    /// One line per tool, in name order: `roll_dice: users need scopes Dice.Roll; applications
    /// refused`, for the start-up log.
    pub fn describe(&self) -> Vec<String> {
        self.tools
            .iter()
            .map(|(name, rule)| {
                let mut line = format!("{name}: {}", rule.requirement);
                if let Some(groups) = &rule.groups {
                    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
                    line.push_str(&format!(
                        "; users must be in one of the groups {}",
                        groups.join(", ")
                    ));
                }
                if let Some(context) = &rule.auth_context {
                    line.push_str(&format!(
                        "; users must satisfy the authentication context {context}"
                    ));
                }
                if let Some(limiter) = self.limits.get(name) {
                    line.push_str(&format!("; at most {} per caller", limiter.rate()));
                }
                line
            })
            .collect()
    }

    /// The requirement (scopes and app roles) of the tool `name`, if the server has it.
    pub fn requirement(&self, name: &str) -> Option<&Requirement> {
        self.tools.get(name).map(|rule| &rule.requirement)
    }

    /// `Ok` when `identity` may call the tool `name`, and for names the server does not have
    /// (the MCP layer answers those); otherwise what is missing and what to request. In order:
    /// scopes or app roles (with `[implies]`), groups (users; Microsoft Graph on overage, with
    /// the caller's `token` when the lookup is on-behalf-of), the authentication context.
    pub async fn check(
        &self,
        name: &str,
        identity: &Identity,
        token: Option<&AccessToken>,
    ) -> Result<(), Box<ToolDenied>> {
        self.judge(name, identity, token, true).await
    }

    /// [`check`](Self::check) without the authentication context: whether the caller may see
    /// the tool (and its resource), stepping up when calling it if it must.
    pub async fn check_visible(
        &self,
        name: &str,
        identity: &Identity,
        token: Option<&AccessToken>,
    ) -> Result<(), Box<ToolDenied>> {
        self.judge(name, identity, token, false).await
    }

    /// Of `names`, those `identity` may see in `tools/list`: as [`check_visible`](Self::check_visible),
    /// with one group lookup for them all. A tool whose groups cannot be confirmed (Graph down)
    /// is left out.
    pub async fn visible<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
        identity: &Identity,
        token: Option<&AccessToken>,
    ) -> BTreeSet<&'a str> {
        let by_scope: Vec<&str> = names
            .into_iter()
            .filter(|name| {
                self.tools.get(*name).is_none_or(|rule| {
                    rule.requirement
                        .check_implied(identity, &self.implications)
                        .is_ok()
                        && !(identity.app_only
                            && rule
                                .auth_context
                                .as_ref()
                                .is_some_and(|c| check_auth_context(identity, c).is_err()))
                })
            })
            .collect();
        let sets: Vec<&BTreeSet<String>> = by_scope
            .iter()
            .filter_map(|name| self.tools.get(*name))
            .filter_map(|rule| rule.groups.as_ref())
            .chain(&self.floor_groups)
            .collect();
        if identity.app_only || sets.is_empty() {
            return by_scope.into_iter().collect();
        }
        let wanted: BTreeSet<String> = sets.iter().flat_map(|set| set.iter().cloned()).collect();
        let member = match self.membership().member_of(identity, token, &wanted).await {
            Ok(member) => member,
            Err(error) => {
                tracing::debug!(reason = %error, "tools limited to groups left out of the list");
                BTreeSet::new()
            }
        };
        let floor_ok = self
            .floor_groups
            .as_ref()
            .is_none_or(|floor| !floor.is_disjoint(&member));
        by_scope
            .into_iter()
            .filter(|name| {
                let tool_ok = self
                    .tools
                    .get(*name)
                    .and_then(|rule| rule.groups.as_ref())
                    .is_none_or(|groups| !groups.is_disjoint(&member));
                floor_ok && tool_ok
            })
            .collect()
    }

    async fn judge(
        &self,
        name: &str,
        identity: &Identity,
        token: Option<&AccessToken>,
        step_up: bool,
    ) -> Result<(), Box<ToolDenied>> {
        let Some(rule) = self.tools.get(name) else {
            return Ok(());
        };
        if let Err(error) = rule.requirement.check_implied(identity, &self.implications) {
            return Err(self.denied(name, rule, identity, error, None));
        }
        // Groups are users' (an application's own groups are out of scope): an app-only caller
        // is judged by its app roles alone.
        if !identity.app_only {
            let sets: Vec<&BTreeSet<String>> = [self.floor_groups.as_ref(), rule.groups.as_ref()]
                .into_iter()
                .flatten()
                .collect();
            if !sets.is_empty() {
                let wanted: BTreeSet<String> = sets.iter().flat_map(|set| set.iter().cloned()).collect();
                let member = self
                    .membership()
                    .member_of(identity, token, &wanted)
                    .await
                    .map_err(|error| self.denied(name, rule, identity, error, None))?;
                if let Some(unmet) = sets.into_iter().find(|set| set.is_disjoint(&member)) {
                    let detail = format!(
                        "admitted groups: {}",
                        unmet.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
                    );
                    return Err(self.denied(
                        name,
                        rule,
                        identity,
                        Forbidden::NotInGroup.into(),
                        Some(detail),
                    ));
                }
            }
        }
        // A user may step up, so without `step_up` the context is not asked; an application
        // never can, so it never sees the tool.
        if let (true, Some(context)) = (step_up || identity.app_only, &rule.auth_context) {
            check_auth_context(identity, context)
                .map_err(|error| self.denied(name, rule, identity, error, None))?;
        }
        Ok(())
    }

    /// The refusal of `name` for `error`, naming the least the caller should request.
    fn denied(
        &self,
        name: &str,
        rule: &ToolRule,
        identity: &Identity,
        error: AuthError,
        log_detail: Option<String>,
    ) -> Box<ToolDenied> {
        let scope = if !matches!(error, AuthError::InsufficientScope { .. }) {
            String::new()
        } else if identity.app_only {
            self.identifier_uri.default_scope()
        } else {
            let mut names = self.floor_scopes.clone();
            for scope in rule.requirement.scopes.iter().flat_map(|s| s.names()) {
                if !names.contains(scope) {
                    names.push(scope.clone());
                }
            }
            // The least that grants the call: a scope another one implies is not asked for.
            let names = self.implications.least(&names);
            names
                .iter()
                .map(|s| self.identifier_uri.scope(s))
                .collect::<Vec<_>>()
                .join(" ")
        };
        Box::new(ToolDenied {
            tool: name.to_owned(),
            refusal: ToolRefusal {
                error,
                scope,
                log_detail,
            },
            app_only: identity.app_only,
        })
    }
}

#[async_trait]
impl ToolGate for ToolAccess {
    async fn check_tool(
        &self,
        name: &str,
        identity: &Identity,
        token: Option<&AccessToken>,
    ) -> Result<(), ToolRefusal> {
        self.check(name, identity, token)
            .await
            .map_err(|denied| denied.refusal)
    }

    fn admit_call(&self, name: &str, identity: &Identity) -> Result<(), RateLimited> {
        self.admit(name, identity)
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{ErrorCode, ErrorData as McpError};
    use serde_json::json;

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct File {
        tools: ToolOverrides,
    }

    /// Reads `[tools]` tables the way the server does: through the `config` crate.
    fn parse(toml: &str) -> Result<ToolOverrides, config::ConfigError> {
        config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .build()?
            .try_deserialize::<File>()
            .map(|f| f.tools)
    }

    fn overrides(toml: &str) -> ToolOverrides {
        parse(toml).unwrap()
    }

    /// One row per configuration rule: the `[tools]` tables, and the start-up error (or none).
    #[test]
    fn tool_table_rules() {
        let rows: &[(&str, Result<(), &str>)] = &[
            ("[tools.roll_dice]\nscopes = [\"Dice.Roll\"]", Ok(())),
            ("[tools.roll_dice]\napp_roles = [\"Dice.Roll.All\"]", Ok(())),
            ("[tools.whoami]\nscopes = [\"a\"]\napp_roles = [\"b\"]", Ok(())),
            ("[tools.whoami]\nscopes = \"a, b\"", Ok(())),
            (
                "[tools.roll_dic]\nscopes = [\"Dice.Roll\"]",
                Err("[tools.roll_dic] names no tool of this server; its tools are greeting_card, my_profile, roll_dice, whoami"),
            ),
            (
                "[tools.roll_dice]",
                Err("[tools.roll_dice] sets nothing; give scopes = [\"…\"] and/or app_roles = [\"…\"] (short names), groups = [\"<group object id>\"], auth_context = \"c1\" or rate_limit = \"10/min\", or remove the table"),
            ),
            (
                "[tools.roll_dice]\nscopes = []",
                Err("[tools.roll_dice] scopes is empty; list at least one name, or leave scopes out to refuse those callers"),
            ),
            (
                "[tools.roll_dice]\nscopes = [\"a\"]\napp_roles = []",
                Err("[tools.roll_dice] app_roles is empty; list at least one name, or leave app_roles out to refuse those callers"),
            ),
            (
                "[tools.roll_dice]\nscopes = [\"api://x/Dice.Roll\"]",
                Err("[tools.roll_dice] scopes holds \"api://x/Dice.Roll\"; use short names such as Dice.Roll (no spaces, not an api:// URI)"),
            ),
            (
                "[tools.roll_dice]\napp_roles = [\"\"]",
                Err("[tools.roll_dice] app_roles is empty; list at least one name, or leave app_roles out to refuse those callers"),
            ),
            (
                "[tools.roll_dice]\nscopes = [\"a b\"]",
                Err("[tools.roll_dice] scopes holds \"a b\"; use short names such as Dice.Roll (no spaces, not an api:// URI)"),
            ),
        ];
        for (toml, expected) in rows {
            let got = ToolAccess::new(&"api://x".parse().unwrap(), &[], &overrides(toml))
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert_eq!(got, expected.map_err(str::to_owned), "{toml}");
        }
    }

    #[test]
    fn an_unknown_key_in_a_tool_table_is_refused() {
        let err = parse("[tools.roll_dice]\nscope = [\"a\"]").unwrap_err();
        assert!(err.to_string().contains("unknown field `scope`"), "{err}");
    }

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

    /// One row per refusal: caller, and the exact message and challenge scope.
    #[tokio::test]
    async fn refusals_name_what_is_missing_and_what_to_request() {
        let access = ToolAccess::new(
            &"api://x/".parse().unwrap(),
            &["access_as_user".to_owned()],
            &overrides("[tools.roll_dice]\nscopes = [\"Dice.Roll\"]\napp_roles = [\"Dice.Roll.All\"]\n[tools.whoami]\nscopes = [\"access_as_user\"]"),
        )
        .unwrap();
        /// (tool, row name, caller, expected (message, challenge scope) or `None` for allowed)
        type Row = (
            &'static str,
            &'static str,
            Identity,
            Option<(&'static str, &'static str)>,
        );
        let rows: Vec<Row> = vec![
            ("roll_dice", "user with the scope", user(&["access_as_user", "Dice.Roll"]), None),
            (
                "roll_dice",
                "user without it",
                user(&["access_as_user"]),
                Some((
                    "not allowed to call roll_dice: the token lacks the required scope(s) Dice.Roll; request a token for Dice.Roll; the scopes to request: api://x/access_as_user api://x/Dice.Roll",
                    "api://x/access_as_user api://x/Dice.Roll",
                )),
            ),
            ("roll_dice", "app with the role", app(&["Dice.Roll.All"]), None),
            (
                "roll_dice",
                "app without it",
                app(&["Other"]),
                Some((
                    "not allowed to call roll_dice: the app-only token lacks the required app role(s) Dice.Roll.All; grant them to the calling application; then request a new token for api://x/.default",
                    "api://x/.default",
                )),
            ),
            (
                "whoami",
                "app on a delegated-only tool",
                app(&["Dice.Roll.All"]),
                Some((
                    "not allowed to call whoami: this operation accepts only a user's delegated token, not an app-only token (client credentials)",
                    "api://x/.default",
                )),
            ),
            ("greeting_card", "app on a floor tool", app(&[]), None),
            ("no_such_tool", "unknown tools are the MCP layer's", user(&[]), None),
        ];
        for (tool, name, identity, expected) in rows {
            let got = access
                .check(tool, &identity, None)
                .await
                .err()
                .map(|d| (d.to_string(), d.refusal.scope));
            assert_eq!(got, expected.map(|(m, s)| (m.to_owned(), s.to_owned())), "{name}");
            let visible = access.visible([tool], &identity, None).await.contains(tool);
            assert_eq!(visible, expected.is_none(), "{name}");
        }
    }

    const G1: &str = "11111111-1111-1111-1111-111111111111";
    const G2: &str = "22222222-2222-2222-2222-222222222222";

    fn with_claims(mut identity: Identity, claims: serde_json::Value) -> Identity {
        if let serde_json::Value::Object(extra) = claims {
            identity.claims.extend(extra);
        }
        identity
    }

    /// One row per rule of groups, implications and authentication contexts, on one
    /// configuration: the caller, whether `tools/list` shows the tool, and the refusal's kind
    /// and challenge scope (or `None`: the call is allowed).
    #[tokio::test]
    async fn groups_implications_and_auth_contexts() {
        let toml = format!(
            "[tools.roll_dice]\nscopes = [\"Dice.Roll\"]\ngroups = [\"{G1}\", \"{}\"]\n\
             [tools.greeting_card]\nscopes = [\"Cards.Read\"]\napp_roles = [\"Cards.All\"]\nauth_context = \"c7\"\n\
             [tools.whoami]\nscopes = [\"Tools.Read\", \"Tools.ReadWrite\"]\n\
             [tools.my_profile]\ngroups = [\"{G1}\"]",
            G2.to_uppercase()
        );
        let implied = Implications::new([
            ("Dice.Admin", vec!["Dice.Roll"]),
            ("Cards.Write", vec!["Cards.Read"]),
            ("Tools.ReadWrite", vec!["Tools.Read"]),
        ])
        .unwrap();
        let access = ToolAccess::new(
            &"api://x".parse().unwrap(),
            &["access_as_user".to_owned()],
            &overrides(&toml),
        )
        .unwrap()
        .with_implications(implied, &[])
        .unwrap();
        type Row = (
            &'static str,
            &'static str,
            Identity,
            bool,
            Option<(&'static str, &'static str)>,
        );
        let member =
            |scopes: &[&str], groups: &[&str]| with_claims(user(scopes), json!({ "groups": groups }));
        let rows: Vec<Row> = vec![
            (
                "roll_dice",
                "member with the scope",
                member(&["access_as_user", "Dice.Roll"], &[G1]),
                true,
                None,
            ),
            (
                "roll_dice",
                "group ids compare without case",
                member(&["access_as_user", "Dice.Roll"], &[G2]),
                true,
                None,
            ),
            (
                "roll_dice",
                "an implying scope",
                member(&["access_as_user", "Dice.Admin"], &[G1]),
                true,
                None,
            ),
            (
                "roll_dice",
                "not a member",
                member(
                    &["access_as_user", "Dice.Roll"],
                    &["33333333-3333-3333-3333-333333333333"],
                ),
                false,
                Some(("not_in_group", "")),
            ),
            (
                "roll_dice",
                "no groups claim",
                user(&["access_as_user", "Dice.Roll"]),
                false,
                Some(("no_groups_claim", "")),
            ),
            (
                "roll_dice",
                "overage without a way to ask Graph",
                with_claims(
                    user(&["access_as_user", "Dice.Roll"]),
                    json!({"_claim_names": {"groups": "src1"}}),
                ),
                false,
                Some(("groups_not_resolvable", "")),
            ),
            (
                "roll_dice",
                "scopes before groups",
                member(&["access_as_user"], &[G1]),
                false,
                Some(("insufficient_scope", "api://x/access_as_user api://x/Dice.Roll")),
            ),
            (
                "greeting_card",
                "context satisfied",
                with_claims(user(&["access_as_user", "Cards.Write"]), json!({"acrs": ["c7"]})),
                true,
                None,
            ),
            (
                "greeting_card",
                "context missing, cp1: listed, challenged",
                with_claims(
                    user(&["access_as_user", "Cards.Read"]),
                    json!({"xms_cc": ["cp1"]}),
                ),
                true,
                Some(("insufficient_claims", "")),
            ),
            (
                "greeting_card",
                "context missing, no cp1",
                user(&["access_as_user", "Cards.Read"]),
                true,
                Some(("client_cannot_step_up", "")),
            ),
            (
                "greeting_card",
                "app-only: never listed",
                app(&["Cards.All"]),
                false,
                Some(("auth_context_app_only", "")),
            ),
            (
                "whoami",
                "the challenge names the least scope",
                user(&["access_as_user"]),
                false,
                Some((
                    "insufficient_scope",
                    "api://x/access_as_user api://x/Tools.ReadWrite",
                )),
            ),
            (
                "whoami",
                "ReadWrite grants both",
                user(&["access_as_user", "Tools.ReadWrite"]),
                true,
                None,
            ),
            (
                "my_profile",
                "groups alone: a member",
                member(&["access_as_user"], &[G1]),
                true,
                None,
            ),
            (
                "my_profile",
                "groups alone admit no application by the floor",
                app(&["Cards.All"]),
                false,
                Some(("insufficient_scope", "api://x/.default")),
            ),
        ];
        for (tool, name, identity, listed, expected) in rows {
            let got = access.check(tool, &identity, None).await.err();
            let got = got.map(|d| (d.refusal.error.kind(), d.refusal.scope.clone()));
            assert_eq!(got, expected.map(|(k, s)| (k, s.to_owned())), "{name}");
            let visible = access.visible([tool], &identity, None).await.contains(tool);
            assert_eq!(visible, listed, "{name}: listed");
        }
        // The not-a-member refusal names no group to the caller; the log line has them.
        let outsider = member(&["access_as_user", "Dice.Roll"], &[]);
        let denied = access.check("roll_dice", &outsider, None).await.unwrap_err();
        assert!(!denied.to_string().contains(G1), "{denied}");
        let error: McpError = denied.clone().into();
        assert!(!error.to_string().contains(G1) && !error.data.as_ref().unwrap().to_string().contains(G1));
        assert_eq!(
            denied.refusal.log_detail.as_deref(),
            Some(format!("admitted groups: {G1}, {G2}").as_str())
        );
    }

    /// One row per start-up rule of groups, contexts and implications.
    #[test]
    fn group_context_and_implication_rules() {
        type Implied = Vec<(&'static str, Vec<&'static str>)>;
        let rows: Vec<(String, Implied, Result<(), String>)> = vec![
            (format!("[tools.roll_dice]\ngroups = [\"{G1}\"]"), vec![], Ok(())),
            ("[tools.roll_dice]\nauth_context = \"c99\"".into(), vec![], Ok(())),
            (
                "[tools.roll_dice]\ngroups = [\"Finance\"]".into(),
                vec![],
                Err("[tools.roll_dice] groups holds \"Finance\"; use group object ids (GUIDs, from the group's Overview page in the Entra admin center)".into()),
            ),
            (
                "[tools.roll_dice]\ngroups = []".into(),
                vec![],
                Err("[tools.roll_dice] groups is empty; list at least one name, or leave groups out to refuse those callers".into()),
            ),
            (
                "[tools.roll_dice]\nauth_context = \"C1\"".into(),
                vec![],
                Err("[tools.roll_dice] auth_context is \"C1\"; expected an authentication context id c1 … c99 (Entra admin center, Conditional Access, Authentication contexts)".into()),
            ),
            (
                "[tools.roll_dice]\nscopes = [\"Dice.Roll\"]".into(),
                vec![("Dice.Admin", vec!["Dice.Rol"])],
                Err("[implies] implies \"Dice.Rol\", which no tool, AZURE_REQUIRED_SCOPES, AZURE_REQUIRED_APP_ROLES or other entry requires; correct the name or remove it".into()),
            ),
            (
                "[tools.roll_dice]\nscopes = [\"Dice.Roll\"]".into(),
                vec![("Dice.Owner", vec!["Dice.Admin"]), ("Dice.Admin", vec!["Dice.Roll"])],
                Ok(()),
            ),
        ];
        for (toml, implied, expected) in rows {
            let got = ToolAccess::new(
                &"api://x".parse().unwrap(),
                &["access_as_user".to_owned()],
                &overrides(&toml),
            )
            .and_then(|access| access.with_implications(Implications::new(implied).unwrap(), &[]))
            .map(|_| ())
            .map_err(|e| e.to_string());
            assert_eq!(got, expected, "{toml}");
        }
    }

    #[tokio::test]
    async fn the_json_rpc_error_carries_the_scope_and_what_is_missing() {
        let access = ToolAccess::new(
            &"api://x".parse().unwrap(),
            &[],
            &overrides("[tools.roll_dice]\nscopes = [\"Dice.Roll\"]"),
        )
        .unwrap();
        let error: McpError = access
            .check("roll_dice", &user(&[]), None)
            .await
            .unwrap_err()
            .into();
        assert_eq!(error.code, ErrorCode::INVALID_REQUEST);
        assert_eq!(
            error.data,
            Some(
                json!({"error": "insufficient_scope", "reason": "insufficient_scope", "scope": "api://x/Dice.Roll", "missing_scopes": ["Dice.Roll"]})
            )
        );
    }
}
