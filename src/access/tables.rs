//! What a `[tools.<name>]` table of the configuration file may say, and the one-line start-up
//! error for each way it can be wrong.

use std::collections::{BTreeSet, HashMap};

use thiserror::Error;
use verifiers::{is_guid, Requirement};

use super::ToolOverride;

/// The `[tools.<name>]` tables of the configuration file, by tool name (read by
/// [`crate::config`]). A table replaces the tool's declared requirement:
///
/// ```toml
/// [tools.roll_dice]
/// scopes = ["Dice.Roll"]          # a user's token needs every one of these in `scp`
/// app_roles = ["Dice.Roll.All"]   # an app-only token needs every one of these in `roles`
/// groups = ["<group object id>"]  # a user must be in one of these (any-of)
/// auth_context = "c1"             # a Conditional Access authentication context (step-up)
/// rate_limit = "10/min"           # calls one caller (tid, oid) may make, over HTTP
/// ```
///
/// A table without `scopes` and `app_roles` keeps the tool's declared requirement and adds the
/// rest to it.
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
    /// The table sets nothing.
    #[error("[tools.{0}] sets nothing; give scopes = [\"…\"] and/or app_roles = [\"…\"] (short names), groups = [\"<group object id>\"], auth_context = \"c1\" or rate_limit = \"10/min\", or remove the table")]
    Empty(String),
    /// `groups` holds something other than a group object id.
    #[error("[tools.{name}] groups holds {value:?}; use group object ids (GUIDs, from the group's Overview page in the Entra admin center)")]
    BadGroup {
        /// The table's tool name (or `AZURE_REQUIRED_GROUPS`).
        name: String,
        /// The offending entry.
        value: String,
    },
    /// `auth_context` is not `c1` … `c99`.
    #[error("[tools.{name}] auth_context is {value:?}; expected an authentication context id c1 … c99 (Entra admin center, Conditional Access, Authentication contexts)")]
    BadAuthContext {
        /// The table's tool name.
        name: String,
        /// As written.
        value: String,
    },
    /// An `[implies]` entry implies a name that no tool, no server-wide setting and no other
    /// entry uses: a typo, or a rule with no effect.
    #[error("[implies] implies {0:?}, which no tool, AZURE_REQUIRED_SCOPES, AZURE_REQUIRED_APP_ROLES or other entry requires; correct the name or remove it")]
    UnusedImplication(String),
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

/// `groups` as a set of group object ids (lower-case GUIDs, as Entra writes them).
pub(super) fn checked_groups(tool: &str, groups: &[String]) -> Result<BTreeSet<String>, ToolConfigError> {
    if groups.is_empty() {
        return Err(ToolConfigError::EmptyList {
            name: tool.to_owned(),
            key: "groups",
        });
    }
    groups
        .iter()
        .map(|group| {
            if is_guid(group) {
                Ok(group.to_ascii_lowercase())
            } else {
                Err(ToolConfigError::BadGroup {
                    name: tool.to_owned(),
                    value: group.clone(),
                })
            }
        })
        .collect()
}

/// The requirement a `[tools.<name>]` table stands for.
pub(super) fn requirement(table: &ToolOverride, tool: &str) -> Result<Requirement, ToolConfigError> {
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
