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

use std::collections::{BTreeMap, HashMap};

use rmcp::model::{ErrorCode, ErrorData as McpError};
use serde_json::json;
use thiserror::Error;
use transports::http::{KeyedLimiter, Principal, Rate, RateLimited};
use transports::{ToolGate, ToolRefusal};

/// Callers each tool's rate limit tracks unless [`ToolAccess::with_rate_limit_max_tracked`]
/// says otherwise (the default of `RATE_LIMIT_MAX_TRACKED`).
const DEFAULT_MAX_TRACKED: usize = 100_000;
use verifiers::{ApplicationIdUri, AuthError, Identity, Requirement, ScopeProblem};

pub use crate::config::ToolOverride;

/// The `[tools.<name>]` tables of the configuration file, by tool name (read by
/// [`crate::config`]). A table replaces the tool's declared requirement:
///
/// ```toml
/// [tools.roll_dice]
/// scopes = ["Dice.Roll"]          # a user's token needs every one of these in `scp`
/// app_roles = ["Dice.Roll.All"]   # an app-only token needs every one of these in `roles`
/// rate_limit = "10/min"           # calls one caller (tid, oid) may make, over HTTP
/// ```
///
/// A table with only `rate_limit` keeps the tool's declared requirement.
///
/// Names are short, as under the app registration's "Expose an API" (scopes) and "App roles".
/// A key left out refuses that kind of caller: without `app_roles` the tool is delegated-only,
/// without `scopes` it is for applications only. The server-wide `AZURE_REQUIRED_SCOPES` /
/// `AZURE_REQUIRED_APP_ROLES` still apply to every call.
pub type ToolOverrides = HashMap<String, ToolOverride>;

/// A `[tools.<name>]` table that cannot work. The text names the table.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ToolConfigError {
    /// The table names a tool this server does not have.
    #[error("[tools.{name}] names no tool of this server; its tools are {known}")]
    UnknownTool {
        /// The table's tool name.
        name: String,
        /// The server's tools, comma-separated.
        known: String,
    },
    /// The table sets neither `scopes` nor `app_roles` nor `rate_limit`.
    #[error("[tools.{0}] sets nothing; give scopes = [\"…\"] and/or app_roles = [\"…\"] (short names), or rate_limit = \"10/min\", or remove the table")]
    Empty(String),
    /// `rate_limit` is not a rate.
    #[error("[tools.{name}] rate_limit is {value:?}; expected {expected}")]
    BadRate {
        /// The table's tool name.
        name: String,
        /// As written.
        value: String,
        /// What a rate looks like.
        expected: transports::http::RateParseError,
    },
    /// `scopes` or `app_roles` is an empty list.
    #[error(
        "[tools.{name}] {key} is empty; list at least one name, or leave {key} out to refuse those callers"
    )]
    EmptyList {
        /// The table's tool name.
        name: String,
        /// `scopes` or `app_roles`.
        key: &'static str,
    },
    /// A name that is not a short scope or role name.
    #[error("[tools.{name}] {key} holds {value:?}; use short names such as Dice.Roll (no spaces, not an api:// URI)")]
    BadName {
        /// The table's tool name.
        name: String,
        /// `scopes` or `app_roles`.
        key: &'static str,
        /// The offending entry.
        value: String,
    },
    /// A tool of the server declares no requirement (a programming error, caught at start-up).
    #[error("the tool {0} declares no requirement; add it to declared_requirements() in tools.rs")]
    Undeclared(String),
}

/// Every tool's requirement, and what a refused caller should request.
#[derive(Debug)]
pub struct ToolAccess {
    /// By tool name; a handful of entries.
    tools: BTreeMap<String, Requirement>,
    /// The server-wide scopes as full URIs (`api://…/access_as_user`).
    floor_scope_uris: Vec<String>,
    /// The Application ID URI.
    identifier_uri: ApplicationIdUri,
    /// The tools with a `rate_limit`, by name: one bucket per caller (`tid`, `oid`).
    limits: BTreeMap<String, KeyedLimiter<Principal>>,
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
        let declared: BTreeMap<String, Requirement> = declared.into_iter().collect();
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
                if table.scopes.is_none() && table.app_roles.is_none() {
                    continue;
                }
            }
            *slot = requirement(table, name)?;
        }
        Ok(ToolAccess {
            floor_scope_uris: floor_scopes.iter().map(|s| identifier_uri.scope(s)).collect(),
            identifier_uri: identifier_uri.clone(),
            tools,
            limits,
        })
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
        let refuse_all = Requirement {
            scopes: None,
            app_roles: None,
        };
        ToolAccess {
            tools: tools.into_iter().map(|tool| (tool, refuse_all.clone())).collect(),
            floor_scope_uris: Vec::new(),
            identifier_uri,
            limits: BTreeMap::new(),
        }
    }

    /// One line per tool, in name order: `roll_dice: users need scopes Dice.Roll; applications
    /// refused`, for the start-up log.
    pub fn describe(&self) -> Vec<String> {
        self.tools
            .iter()
            .map(|(name, requirement)| match self.limits.get(name) {
                Some(limiter) => format!("{name}: {requirement}; at most {} per caller", limiter.rate()),
                None => format!("{name}: {requirement}"),
            })
            .collect()
    }

    /// The requirement of the tool `name`, if the server has it.
    pub fn requirement(&self, name: &str) -> Option<&Requirement> {
        self.tools.get(name)
    }

    /// `true` when `identity` may call the tool `name` (and for unknown names).
    pub fn allows(&self, name: &str, identity: &Identity) -> bool {
        self.tools.get(name).is_none_or(|r| r.allows(identity))
    }

    /// `Ok` when `identity` may call the tool `name`, and for names the server does not have
    /// (the MCP layer answers those); otherwise what is missing and what to request.
    pub fn check(&self, name: &str, identity: &Identity) -> Result<(), Box<ToolDenied>> {
        let Some(requirement) = self.tools.get(name) else {
            return Ok(());
        };
        let Err(error) = requirement.check(identity) else {
            return Ok(());
        };
        let scope = if identity.app_only {
            self.identifier_uri.default_scope()
        } else {
            let mut uris = self.floor_scope_uris.clone();
            for scope in requirement.scopes.iter().flat_map(|s| s.names()) {
                let uri = self.identifier_uri.scope(scope);
                if !uris.contains(&uri) {
                    uris.push(uri);
                }
            }
            uris.join(" ")
        };
        Err(Box::new(ToolDenied {
            tool: name.to_owned(),
            refusal: ToolRefusal { error, scope },
            app_only: identity.app_only,
        }))
    }
}

impl ToolGate for ToolAccess {
    fn check_tool(&self, name: &str, identity: &Identity) -> Result<(), ToolRefusal> {
        self.check(name, identity).map_err(|denied| denied.refusal)
    }

    fn admit_call(&self, name: &str, identity: &Identity) -> Result<(), RateLimited> {
        self.admit(name, identity)
    }
}

/// The requirement a `[tools.<name>]` table stands for.
fn requirement(table: &ToolOverride, tool: &str) -> Result<Requirement, ToolConfigError> {
    let scopes = checked(tool, "scopes", table.scopes.as_deref())?;
    let roles = checked(tool, "app_roles", table.app_roles.as_deref())?;
    match (scopes, roles) {
        (None, None) => Err(ToolConfigError::Empty(tool.to_owned())),
        (Some(scopes), None) => Ok(Requirement::scopes(scopes)),
        (None, Some(roles)) => Ok(Requirement::app_roles(roles)),
        (Some(scopes), Some(roles)) => Ok(Requirement::scopes(scopes).or_app_roles(roles)),
    }
}

fn checked<'a>(
    tool: &str,
    key: &'static str,
    names: Option<&'a [String]>,
) -> Result<Option<&'a [String]>, ToolConfigError> {
    let Some(names) = names else {
        return Ok(None);
    };
    if names.is_empty() {
        return Err(ToolConfigError::EmptyList {
            name: tool.to_owned(),
            key,
        });
    }
    if let Some(bad) = names
        .iter()
        .find(|n| n.is_empty() || n.contains(|c: char| c.is_whitespace() || c == '/'))
    {
        return Err(ToolConfigError::BadName {
            name: tool.to_owned(),
            key,
            value: bad.clone(),
        });
    }
    Ok(Some(names))
}

/// A tool call refused by [`ToolAccess::check`]: the tool, what the token lacks, and what to
/// request. Its text is the JSON-RPC error message; it never holds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolDenied {
    /// The tool (one the server has).
    pub tool: String,
    /// What the token lacks and the scope URIs to request.
    pub refusal: ToolRefusal,
    /// Whether the caller is an application (told roles, never delegated scopes).
    pub app_only: bool,
}

impl std::fmt::Display for ToolDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not allowed to call {}: {}", self.tool, self.refusal.error)?;
        let problem = match &self.refusal.error {
            AuthError::InsufficientScope { problem, .. } => Some(problem),
            _ => None,
        };
        match problem {
            Some(ScopeProblem::MissingRoles { .. } | ScopeProblem::MissingAnyRole { .. }) => {
                write!(f, "; then request a new token for {}", self.refusal.scope)
            }
            Some(ScopeProblem::MissingScopes { .. } | ScopeProblem::MissingAnyScope { .. }) => {
                write!(f, "; the scopes to request: {}", self.refusal.scope)
            }
            _ => Ok(()),
        }
    }
}

impl ToolDenied {
    /// The one log line of this refusal (the tool name is one the server has; no token).
    pub fn log(&self) {
        tracing::info!(
            kind = "tool_insufficient_scope",
            tool = %self.tool,
            app_only = self.app_only,
            reason = %self.refusal.error,
            "tool call refused"
        );
    }
}

impl From<Box<ToolDenied>> for McpError {
    fn from(denied: Box<ToolDenied>) -> McpError {
        McpError::from(*denied)
    }
}

impl From<ToolDenied> for McpError {
    fn from(denied: ToolDenied) -> McpError {
        let message = denied.to_string();
        insufficient_scope(message, Some(&denied.refusal.scope), &denied.refusal.error)
    }
}

/// The JSON-RPC error of every authorization refusal inside the MCP layer (a forbidden tool,
/// or a tool's own check such as `require_role`): code `-32600`
/// (invalid request), the reason as the message, and `data` with `error:
/// "insufficient_scope"`, the `scope` to request (when one helps) and what is missing.
pub(crate) fn insufficient_scope(message: String, scope: Option<&str>, error: &AuthError) -> McpError {
    let mut data = json!({ "error": "insufficient_scope" });
    if let Some(scope) = scope {
        data["scope"] = json!(scope);
    }
    if let AuthError::InsufficientScope { problem, .. } = error {
        match problem {
            ScopeProblem::MissingScopes { missing } => data["missing_scopes"] = json!(missing),
            ScopeProblem::MissingAnyScope { any_of } => data["any_of_scopes"] = json!(any_of),
            ScopeProblem::MissingRoles { missing } => data["missing_roles"] = json!(missing),
            ScopeProblem::MissingAnyRole { any_of } => data["any_of_roles"] = json!(any_of),
            _ => {}
        }
    }
    McpError::new(ErrorCode::INVALID_REQUEST, message, Some(data))
}

#[cfg(test)]
mod tests {
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
                Err("[tools.roll_dice] sets nothing; give scopes = [\"…\"] and/or app_roles = [\"…\"] (short names), or rate_limit = \"10/min\", or remove the table"),
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
    #[test]
    fn refusals_name_what_is_missing_and_what_to_request() {
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
                .check(tool, &identity)
                .err()
                .map(|d| (d.to_string(), d.refusal.scope));
            assert_eq!(got, expected.map(|(m, s)| (m.to_owned(), s.to_owned())), "{name}");
            assert_eq!(access.allows(tool, &identity), expected.is_none(), "{name}");
        }
    }

    #[test]
    fn the_json_rpc_error_carries_the_scope_and_what_is_missing() {
        let access = ToolAccess::new(
            &"api://x".parse().unwrap(),
            &[],
            &overrides("[tools.roll_dice]\nscopes = [\"Dice.Roll\"]"),
        )
        .unwrap();
        let error: McpError = access.check("roll_dice", &user(&[])).unwrap_err().into();
        assert_eq!(error.code, ErrorCode::INVALID_REQUEST);
        assert_eq!(
            error.data,
            Some(
                json!({"error": "insufficient_scope", "scope": "api://x/Dice.Roll", "missing_scopes": ["Dice.Roll"]})
            )
        );
    }
}
