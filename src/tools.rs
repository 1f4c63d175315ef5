//! The example tools: `whoami`, `roll_dice`, `greeting_card`, and `my_profile` (Microsoft Graph
//! as the caller, listed only when a downstream credential is configured).
//!
//! Each reads the verified caller with [`caller`] and answers with a text part for people and
//! structured content (matching its output schema) for programs. Bad input is a tool error
//! (`isError: true`) with a sentence saying what was wrong, never a silent clamp.
//!
//! Who may call each tool is declared beside it (a `*_requirement` function, collected by
//! [`declared_requirements`]); see [`crate::access`] for how it is enforced and overridden.

use std::sync::{Arc, OnceLock};

use rand::Rng as _;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ErrorData as McpError, MetaObject, ResourceContents};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use verifiers::{ApplicationIdUri, Requirement};

use crate::access::ToolAccess;
use crate::caller::{caller, caller_token};
use crate::card::{self, CARD_MIME_TYPE, CARD_URI, DEFAULT_MESSAGE, MAX_MESSAGE_CHARS};
use crate::graph::{Graph, GraphProfile};

/// Fewest sides a die may have.
pub const MIN_SIDES: i64 = 2;
/// Most sides a die may have.
pub const MAX_SIDES: i64 = 1000;

/// The MCP server: the tools below plus the greeting-card resource (see `server.rs`).
///
/// rmcp makes one per session (legacy) or per request (stateless), so it must cost nothing to
/// create: it holds only shared handles to who may call which tool ([`ToolAccess`]) and, when a
/// server credential is configured, to the downstream token provider. The tool table, with its
/// JSON schemas, is built once for the process.
#[derive(Clone, Debug)]
pub struct EntraMcpServer {
    access: Arc<ToolAccess>,
    downstream: Option<Arc<Graph>>,
}

impl Default for EntraMcpServer {
    fn default() -> Self {
        EntraMcpServer::new()
    }
}

// The tools' names, for the code that refers to a tool by name (the declarations, the card's
// resource, `my_profile`'s visibility). Each is its method's name in the router below; a test
// checks that the two lists agree.
/// `whoami`: the caller's identity.
pub(crate) const WHOAMI: &str = "whoami";
/// `roll_dice`: dice for the caller.
pub(crate) const ROLL_DICE: &str = "roll_dice";
/// `greeting_card`: the MCP App's tool; its `ui://` resource is gated like the tool.
pub(crate) const GREETING_CARD: &str = "greeting_card";
/// The tool that needs a downstream credential; hidden without one.
pub const MY_PROFILE: &str = "my_profile";

impl EntraMcpServer {
    /// A server enforcing `access` (the declared requirements with the configuration's
    /// `[tools.<name>]` overrides; build it once and share it with the HTTP transport).
    pub fn from_access(access: Arc<ToolAccess>) -> Self {
        EntraMcpServer {
            access,
            downstream: None,
        }
    }

    /// Who may call which tool.
    pub fn access(&self) -> &Arc<ToolAccess> {
        &self.access
    }

    /// This server, also offering `my_profile`, which calls Microsoft Graph through
    /// `downstream` on the caller's behalf.
    pub fn with_downstream(mut self, downstream: Arc<Graph>) -> Self {
        self.downstream = Some(downstream);
        self
    }

    /// `true` when a downstream credential is configured (`my_profile` is listed).
    pub fn has_downstream(&self) -> bool {
        self.downstream.is_some()
    }
}

impl ToolAccess {
    /// This server's tools' declared requirements ([`declared_requirements`]) with the
    /// configuration's `overrides` applied; see [`ToolAccess::from_declarations`].
    pub fn new(
        identifier_uri: &ApplicationIdUri,
        floor_scopes: &[String],
        overrides: &crate::access::ToolOverrides,
    ) -> Result<ToolAccess, crate::access::ToolConfigError> {
        ToolAccess::from_declarations(
            declared_requirements()
                .into_iter()
                .map(|(name, requirement)| (name.to_owned(), requirement)),
            shared_router()
                .list_all()
                .into_iter()
                .map(|tool| tool.name.into_owned()),
            identifier_uri,
            floor_scopes,
            overrides,
        )
    }

    /// The declared requirements with no overrides, for servers built without settings
    /// ([`EntraMcpServer::new`]): scope URIs are named under `api://<client-id>`.
    pub fn declared() -> Arc<ToolAccess> {
        static DECLARED: std::sync::OnceLock<Arc<ToolAccess>> = std::sync::OnceLock::new();
        DECLARED
            .get_or_init(|| {
                let identifier_uri = ApplicationIdUri::for_client_id("<client-id>");
                let access = ToolAccess::new(&identifier_uri, &[], &Default::default());
                // Fail closed: a tool without a declaration (a bug the tests catch) refuses every
                // caller for every tool.
                Arc::new(access.unwrap_or_else(|error| {
                    tracing::error!(%error, "the tools' declared requirements are broken; every tool call is refused");
                    ToolAccess::refusing_all(
                        shared_router().list_all().into_iter().map(|tool| tool.name.into_owned()),
                        identifier_uri,
                    )
                }))
            })
            .clone()
    }
}

/// Every tool's requirement as declared beside it. [`ToolAccess::new`] refuses to start if a
/// tool of the router is missing here.
pub fn declared_requirements() -> Vec<(&'static str, Requirement)> {
    vec![
        (WHOAMI, EntraMcpServer::whoami_requirement()),
        (ROLL_DICE, EntraMcpServer::roll_dice_requirement()),
        (GREETING_CARD, EntraMcpServer::greeting_card_requirement()),
        (MY_PROFILE, EntraMcpServer::my_profile_requirement()),
    ]
}

/// The tool table shared by every instance.
pub(crate) fn shared_router() -> &'static ToolRouter<EntraMcpServer> {
    static ROUTER: OnceLock<ToolRouter<EntraMcpServer>> = OnceLock::new();
    ROUTER.get_or_init(EntraMcpServer::tool_router)
}

/// Structured result of `whoami`.
#[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct WhoAmI {
    /// Display name (`name`, else username, else subject).
    pub name: String,
    /// `preferred_username`, `upn` or `email`, when the token has one.
    pub username: Option<String>,
    /// `oid`.
    pub object_id: String,
    /// `tid`.
    pub tenant_id: String,
    /// Delegated scopes (`scp`).
    pub scopes: Vec<String>,
    /// App roles (`roles`).
    pub roles: Vec<String>,
    /// The client application (`azp`/`appid`).
    pub app_id: Option<String>,
}

/// Arguments of `roll_dice`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RollDiceArgs {
    /// Number of sides, from 2 to 1000. Defaults to 6.
    #[serde(default = "default_sides")]
    #[schemars(range(min = 2, max = 1000))]
    pub sides: i64,
}

fn default_sides() -> i64 {
    6
}

/// Structured result of `roll_dice`.
#[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct DiceRoll {
    /// Who rolled.
    pub user: String,
    /// Number of sides of the die.
    pub sides: i64,
    /// The roll, from 1 to `sides`.
    pub roll: i64,
}

/// Arguments of `greeting_card`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct GreetingCardArgs {
    /// The message on the card, at most 500 characters.
    #[serde(default = "default_message")]
    pub message: String,
}

fn default_message() -> String {
    DEFAULT_MESSAGE.to_owned()
}

/// Structured result of `greeting_card`.
#[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct GreetingCard {
    /// Who the card is for.
    pub username: String,
    /// The message on the card.
    pub message: String,
}

/// `_meta.ui` of the greeting-card tool: the MCP Apps host renders [`CARD_URI`] for it.
fn greeting_card_meta() -> MetaObject {
    let mut meta = MetaObject::new();
    meta.0.insert(
        "ui".into(),
        json!({ "resourceUri": CARD_URI, "visibility": ["model", "app"] }),
    );
    meta
}

#[tool_router]
impl EntraMcpServer {
    /// A server with the tools and their declared requirements (no configuration overrides,
    /// no downstream credential).
    pub fn new() -> Self {
        EntraMcpServer::from_access(ToolAccess::declared())
    }

    /// Who may call `my_profile`: any caller the server accepts. An app-only caller has no user
    /// to act for; the tool itself says so (a clear tool error, docs/ARCHITECTURE.md#calling-apis-on-behalf-of-the-caller).
    fn my_profile_requirement() -> Requirement {
        Requirement::floor()
    }

    /// The caller's Microsoft Graph profile, fetched on the caller's behalf.
    #[tool(
        description = "Return your Microsoft Graph profile (display name, mail, job title), fetched from Microsoft Graph on your behalf.",
        annotations(read_only_hint = true, open_world_hint = true),
        output_schema = schema_for_output::<GraphProfile>()
    )]
    async fn my_profile(&self, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, McpError> {
        let who = caller(&ctx)?;
        let Some(downstream) = &self.downstream else {
            return Ok(tool_error(
                "my_profile is not available: the server has no downstream credential configured".to_owned(),
            ));
        };
        let Some(token) = caller_token(&ctx) else {
            return Err(McpError::invalid_request(
                "this request carries no caller token",
                None,
            ));
        };
        match downstream.graph_me(who, token).await {
            Ok(profile) => {
                let text = format!(
                    "{} — {} — {}",
                    profile.display_name.as_deref().unwrap_or("(no display name)"),
                    profile.mail.as_deref().unwrap_or("(no mail)"),
                    profile.job_title.as_deref().unwrap_or("(no job title)"),
                );
                structured(text, profile)
            }
            Err(error) => {
                // The detail goes to the log under an id the caller is given; the caller gets
                // it only when it can act on it (never the server's paths or AADSTS codes).
                let correlation_id = format!("{:016x}", rand::random::<u64>());
                tracing::info!(
                    tool = MY_PROFILE,
                    kind = error.kind(),
                    reason = %error,
                    correlation_id,
                    tenant = %who.tenant_id,
                    object_id = %who.object_id,
                    "downstream call failed"
                );
                Ok(tool_error(error.caller_message(&correlation_id)))
            }
        }
    }

    /// Who may call `whoami`: any caller the server accepts (`AZURE_REQUIRED_SCOPES`, by
    /// default `access_as_user`; app-only callers with `AZURE_REQUIRED_APP_ROLES`).
    fn whoami_requirement() -> Requirement {
        Requirement::floor()
    }

    /// Tells the caller who the token says they are.
    #[tool(
        description = "Return who you are, as Microsoft Entra ID sees you: name, username, object and tenant ids, scopes and roles.",
        annotations(read_only_hint = true, open_world_hint = false),
        output_schema = schema_for_output::<WhoAmI>()
    )]
    async fn whoami(&self, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, McpError> {
        let who = caller(&ctx)?;
        let text = format!(
            "You are {} ({}).",
            who.display_name(),
            who.username.as_deref().unwrap_or(&who.subject)
        );
        structured(
            text,
            WhoAmI {
                name: who.display_name().to_owned(),
                username: who.username.clone(),
                object_id: who.object_id.clone(),
                tenant_id: who.tenant_id.clone(),
                scopes: who.scopes.clone(),
                roles: who.roles.clone(),
                app_id: who.client_app.clone(),
            },
        )
    }

    /// Who may call `roll_dice`: any caller the server accepts. A deployment that wants
    /// rolling to need its own scope says so in the configuration file
    /// (`[tools.roll_dice] scopes = ["Dice.Roll"]`).
    fn roll_dice_requirement() -> Requirement {
        Requirement::floor()
    }

    /// Rolls a fair die with a cryptographically secure generator.
    #[tool(
        description = "Roll a fair die with 2 to 1000 sides (default 6) and say who rolled what.",
        annotations(read_only_hint = true, open_world_hint = false),
        output_schema = schema_for_output::<DiceRoll>()
    )]
    async fn roll_dice(
        &self,
        Parameters(args): Parameters<RollDiceArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let who = caller(&ctx)?;
        if !(MIN_SIDES..=MAX_SIDES).contains(&args.sides) {
            return Ok(tool_error(format!(
                "sides must be a whole number from {MIN_SIDES} to {MAX_SIDES}, got {}",
                args.sides
            )));
        }
        // ThreadRng is a CSPRNG (ChaCha, reseeded from the OS); `random_range` is unbiased.
        let roll = rand::rng().random_range(1..=args.sides);
        let user = who.display_name().to_owned();
        let text = format!("{user} rolled a {roll} (1–{}).", args.sides);
        structured(
            text,
            DiceRoll {
                user,
                sides: args.sides,
                roll,
            },
        )
    }

    /// Who may call `greeting_card`: any caller the server accepts.
    fn greeting_card_requirement() -> Requirement {
        Requirement::floor()
    }

    /// Makes a greeting card for the caller, as text and as an MCP App.
    #[tool(
        description = "Make a greeting card for you with a message (at most 500 characters). Hosts that support MCP Apps show it as a card.",
        annotations(read_only_hint = true, open_world_hint = false),
        output_schema = schema_for_output::<GreetingCard>(),
        meta = greeting_card_meta()
    )]
    async fn greeting_card(
        &self,
        Parameters(args): Parameters<GreetingCardArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let who = caller(&ctx)?;
        let chars = args.message.chars().count();
        if chars > MAX_MESSAGE_CHARS {
            return Ok(tool_error(format!(
                "message is {chars} characters long; the limit is {MAX_MESSAGE_CHARS}"
            )));
        }
        if args.message.trim().is_empty() {
            return Ok(tool_error("message must not be empty".to_owned()));
        }
        let username = who.display_name().to_owned();
        let html = card::render(&username, &args.message);
        let mut result = CallToolResult::success(vec![
            ContentBlock::text(format!("A greeting card for {username}: {}", args.message)),
            ContentBlock::resource(ResourceContents::text(html, CARD_URI).with_mime_type(CARD_MIME_TYPE)),
        ]);
        result.structured_content = Some(to_json(&GreetingCard {
            username,
            message: args.message,
        })?);
        Ok(result)
    }
}

fn structured<T: Serialize>(text: String, value: T) -> Result<CallToolResult, McpError> {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(to_json(&value)?);
    Ok(result)
}

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, McpError> {
    serde_json::to_value(value)
        .map_err(|e| McpError::internal_error(format!("could not encode the result: {e}"), None))
}

fn tool_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use verifiers::Requirement;

    #[test]
    fn the_names_typed_here_are_the_routers_names() {
        let mut routed: Vec<String> = shared_router()
            .list_all()
            .into_iter()
            .map(|t| t.name.into_owned())
            .collect();
        let mut declared: Vec<String> = declared_requirements()
            .into_iter()
            .map(|(n, _)| n.to_owned())
            .collect();
        routed.sort();
        declared.sort();
        assert_eq!(routed, declared);
        let mut named = vec![WHOAMI, ROLL_DICE, GREETING_CARD, MY_PROFILE];
        named.sort_unstable();
        assert_eq!(declared, named);
    }

    #[test]
    fn every_tool_declares_a_requirement_and_the_examples_ask_only_for_the_floor() {
        let access = ToolAccess::new(
            &"api://x".parse().unwrap(),
            &[],
            &crate::access::ToolOverrides::new(),
        )
        .unwrap();
        for tool in shared_router().list_all() {
            assert_eq!(
                access.requirement(&tool.name),
                Some(&Requirement::floor()),
                "{}",
                tool.name
            );
        }
    }
}
