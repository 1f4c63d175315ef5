//! Per-tool authorization (docs/ARCHITECTURE.md#per-tool-authorization) through the real HTTP server (2026-07-28 and legacy) and
//! the real binary over stdio, with tokens from the fake Entra.
//!
//! Every test uses the same configuration: `roll_dice` needs the `Dice.Roll` scope (users) or
//! the `Dice.Roll.All` app role (applications); the server-wide floor is `access_as_user` for
//! users and `Mcp.Invoke` for applications. One table of callers drives every path.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use mcp_server_entra::access::{ToolAccess, ToolOverride, ToolOverrides};
use mcp_server_entra::EntraMcpServer;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt as _;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use transports::http::{AccessControl, HttpConfig};
use verifiers::{AccessPolicy, EntraVerifier};

use crate::common::*;

const EXE: &str = env!("CARGO_BIN_EXE_mcp-server-entra");
const CONFIG: &str = "[tools.roll_dice]\nscopes = [\"Dice.Roll\"]\napp_roles = [\"Dice.Roll.All\"]\n";
const FLOOR_ROLE: &str = "Mcp.Invoke";

/// What calling `roll_dice` must give a caller.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// Listed and runs.
    Allowed,
    /// Not listed; refused naming `scope` (what to request) and `description` (what is missing).
    Refused {
        scope: &'static str,
        description: &'static str,
    },
}

struct Caller {
    name: &'static str,
    token: String,
    outcome: Outcome,
}

const USER_SCOPES: &str = "api://11111111-2222-3333-4444-555555555555/access_as_user api://11111111-2222-3333-4444-555555555555/Dice.Roll";
const APP_SCOPE: &str = "api://11111111-2222-3333-4444-555555555555/.default";

/// The table: one row per kind of caller.
fn callers(key: &TestKey, fake: &FakeEntra) -> Vec<Caller> {
    let user = |scp: &str| {
        let mut claims = fake.claims(TENANT);
        claims["scp"] = json!(scp);
        mint(key, &claims)
    };
    let app = |roles: &[&str]| {
        let mut claims = fake.claims(TENANT);
        let object = claims.as_object_mut().unwrap();
        object.remove("scp");
        object.remove("name");
        object.remove("preferred_username");
        object.insert("roles".into(), json!(roles));
        object.insert("idtyp".into(), json!("app"));
        object.insert("sub".into(), json!("0000aaaa-0000-0000-0000-00000000a11c"));
        mint(key, &claims)
    };
    vec![
        Caller {
            name: "user with access_as_user only",
            token: user("access_as_user"),
            outcome: Outcome::Refused {
                scope: USER_SCOPES,
                description: "the token lacks the required scope(s) Dice.Roll; request a token for Dice.Roll",
            },
        },
        Caller {
            name: "user with access_as_user Dice.Roll",
            token: user("access_as_user Dice.Roll"),
            outcome: Outcome::Allowed,
        },
        Caller {
            name: "app with the configured role",
            token: app(&[FLOOR_ROLE, "Dice.Roll.All"]),
            outcome: Outcome::Allowed,
        },
        Caller {
            name: "app without it",
            token: app(&[FLOOR_ROLE]),
            outcome: Outcome::Refused {
                scope: APP_SCOPE,
                description: "the app-only token lacks the required app role(s) Dice.Roll.All; grant them to the calling application",
            },
        },
        Caller {
            // A role with the scope's name is not the scope, and a scope's name is no role.
            name: "app with a role named like the scope",
            token: app(&[FLOOR_ROLE, "Dice.Roll"]),
            outcome: Outcome::Refused {
                scope: APP_SCOPE,
                description: "the app-only token lacks the required app role(s) Dice.Roll.All; grant them to the calling application",
            },
        },
    ]
}

fn access() -> Arc<ToolAccess> {
    let mut overrides = ToolOverrides::new();
    overrides.insert(
        "roll_dice".into(),
        ToolOverride {
            scopes: Some(vec!["Dice.Roll".into()]),
            app_roles: Some(vec!["Dice.Roll.All".into()]),
            ..ToolOverride::default()
        },
    );
    Arc::new(
        ToolAccess::new(
            &format!("api://{CLIENT_ID}").parse().unwrap(),
            &["access_as_user".into()],
            &overrides,
        )
        .unwrap(),
    )
}

async fn server(fake: &FakeEntra, legacy_sessions: bool) -> (TestServer, HttpConfig) {
    let policy = AccessPolicy::scopes(["access_as_user"]).with_app_roles([FLOOR_ROLE]);
    let verifier = EntraVerifier::new(fake.config(TENANT), policy).unwrap();
    verifier.start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = HttpConfig::new(url::Url::parse(&base).unwrap());
    config.scopes = vec![format!("api://{CLIENT_ID}/access_as_user")];
    config.legacy_sessions = legacy_sessions;
    let access = access();
    let control = AccessControl::new(Arc::new(verifier)).with_tool_gate(access.clone());
    let server = transports::http::serve(listener, config.clone(), control, move || {
        EntraMcpServer::from_access(access.clone())
    })
    .unwrap();
    (TestServer { base, server }, config)
}

pub(crate) fn roll_body(id: u64, meta_2026: bool) -> Value {
    let mut params = json!({"name": "roll_dice", "arguments": {"sides": 6}});
    if meta_2026 {
        params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}});
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

/// The JSON-RPC messages of an SSE or JSON body.
fn messages(text: &str) -> Vec<Value> {
    if text.trim_start().starts_with('{') {
        return vec![serde_json::from_str(text.trim()).unwrap()];
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

/// Asserts `r` is the outcome's answer: a result, or the exact 403 step-up challenge.
async fn assert_http_outcome(
    row: &str,
    path: &str,
    r: reqwest::Response,
    outcome: Outcome,
    config: &HttpConfig,
) {
    match outcome {
        Outcome::Allowed => {
            assert_eq!(r.status(), 200, "{row} ({path})");
            let reply = messages(&r.text().await.unwrap()).pop().unwrap();
            assert!(
                reply["result"]["structuredContent"]["roll"].is_i64(),
                "{row} ({path}): {reply}"
            );
        }
        Outcome::Refused { scope, description } => {
            assert_eq!(r.status(), 403, "{row} ({path})");
            let challenge = challenge_params(r.headers()["www-authenticate"].to_str().unwrap());
            let expected: std::collections::HashMap<String, String> = [
                ("error", "insufficient_scope"),
                ("scope", scope),
                ("resource_metadata", config.metadata_url().as_str()),
                ("error_description", description),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            assert_eq!(challenge, expected, "{row} ({path})");
        }
    }
}

#[tokio::test]
async fn http_2026_callers_see_and_run_only_the_tools_their_token_allows() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let (server, config) = server(&fake, true).await;
    for caller in callers(&key, &fake) {
        // The header as plain text and in the protocol's `=?base64?…?=` form: the same tool.
        for (spelling, name) in [
            ("plain Mcp-Name", "roll_dice"),
            ("base64 Mcp-Name", "=?base64?cm9sbF9kaWNl?="),
        ] {
            let r = http()
                .post(server.mcp_url())
                .header("accept", ACCEPT)
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", name)
                .bearer_auth(&caller.token)
                .json(&roll_body(1, true))
                .send()
                .await
                .unwrap();
            assert_http_outcome(caller.name, spelling, r, caller.outcome, &config).await;
        }

        let client = discover_client(&server.mcp_url(), &caller.token).await;
        let listed = client.list_all_tools().await.unwrap();
        let names: Vec<_> = listed.iter().map(|t| t.name.to_string()).collect();
        assert_eq!(
            names.contains(&"roll_dice".to_owned()),
            matches!(caller.outcome, Outcome::Allowed),
            "{}: {names:?}",
            caller.name
        );
        assert!(names.contains(&"whoami".to_owned()), "{}: {names:?}", caller.name);
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn http_legacy_callers_see_and_run_only_the_tools_their_token_allows() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    for legacy_sessions in [true, false] {
        let (server, config) = server(&fake, legacy_sessions).await;
        for caller in callers(&key, &fake) {
            let path = if legacy_sessions {
                "legacy session"
            } else {
                "legacy stateless"
            };
            let client = legacy_client(&server.mcp_url(), &caller.token).await;
            let listed = client.list_all_tools().await.unwrap();
            assert_eq!(
                listed.iter().any(|t| t.name == "roll_dice"),
                matches!(caller.outcome, Outcome::Allowed),
                "{} ({path})",
                caller.name
            );
            client.cancel().await.unwrap();

            let mut request = http()
                .post(server.mcp_url())
                .header("accept", ACCEPT)
                .header("mcp-protocol-version", "2025-11-25")
                .bearer_auth(&caller.token)
                .json(&roll_body(2, false));
            if legacy_sessions {
                request = request.header(
                    "mcp-session-id",
                    open_session(&server.mcp_url(), &caller.token).await,
                );
            }
            let r = request.send().await.unwrap();
            assert_http_outcome(caller.name, path, r, caller.outcome, &config).await;
        }
    }
}

/// A call the HTTP layer cannot see in advance (a chunked body, so no peeking) reaches the
/// handler, which refuses it by the same rule with a JSON-RPC error.
#[tokio::test]
async fn http_calls_the_layer_cannot_peek_get_the_json_rpc_error() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let (server, _) = server(&fake, false).await;
    for caller in callers(&key, &fake) {
        let reply = chunked_post(&server, &caller.token, &roll_body(3, false)).await;
        match caller.outcome {
            Outcome::Allowed => assert!(
                reply["result"]["structuredContent"]["roll"].is_i64(),
                "{}",
                caller.name
            ),
            Outcome::Refused { scope, .. } => {
                assert_eq!(reply["error"]["code"], -32600, "{}", caller.name);
                assert_eq!(
                    reply["error"]["data"]["error"], "insufficient_scope",
                    "{}",
                    caller.name
                );
                assert_eq!(reply["error"]["data"]["scope"], scope, "{}", caller.name);
                assert!(
                    reply["error"]["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("not allowed to call roll_dice: "),
                    "{}: {reply}",
                    caller.name
                );
            }
        }
    }
}

/// POSTs `body` with `Transfer-Encoding: chunked` over a raw connection; returns the reply.
pub(crate) async fn chunked_post(server: &TestServer, token: &str, body: &Value) -> Value {
    chunked_post_to(server.server.local_addr(), token, body).await
}

/// [`chunked_post`] to the server at `addr`.
pub(crate) async fn chunked_post_to(addr: std::net::SocketAddr, token: &str, body: &Value) -> Value {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: {ACCEPT}\r\n\
         Content-Type: application/json\r\nMcp-Protocol-Version: 2025-11-25\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // The first JSON-RPC message of the body (chunk framing may follow it).
    let start = response.find("{\"jsonrpc\"").unwrap();
    serde_json::Deserializer::from_str(&response[start..])
        .into_iter::<Value>()
        .next()
        .unwrap()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-entra-tools-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), CONFIG).unwrap();
    dir
}

/// `mcp-server-entra stdio --config config.toml` against the fake Entra, with `token`.
fn stdio_command(dir: &Path, fake: &FakeEntra, token: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(EXE);
    cmd.args(["stdio", "--config", "config.toml"])
        .current_dir(dir)
        .env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("AZURE_CLIENT_ID", CLIENT_ID)
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_AUTHORITY_HOST", &fake.base)
        .env("AZURE_REQUIRED_APP_ROLES", FLOOR_ROLE)
        .env("MCP_ACCESS_TOKEN", token);
    cmd
}

#[tokio::test]
async fn stdio_callers_see_and_run_only_the_tools_their_token_allows() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let dir = scratch("stdio");
    for caller in callers(&key, &fake) {
        let (transport, _) = TokioChildProcess::builder(stdio_command(&dir, &fake, &caller.token))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let client = ().serve(transport).await.unwrap();
        let listed = client.list_all_tools().await.unwrap();
        assert_eq!(
            listed.iter().any(|t| t.name == "roll_dice"),
            matches!(caller.outcome, Outcome::Allowed),
            "{}",
            caller.name
        );
        let args = json!({"sides": 6}).as_object().unwrap().clone();
        let result = client
            .call_tool(CallToolRequestParams::new("roll_dice").with_arguments(args))
            .await;
        match caller.outcome {
            Outcome::Allowed => {
                assert!(
                    result.unwrap().structured_content.unwrap()["roll"].is_i64(),
                    "{}",
                    caller.name
                )
            }
            Outcome::Refused { scope, description } => {
                let error = match result.unwrap_err() {
                    rmcp::ServiceError::McpError(error) => error,
                    other => panic!("{}: expected a JSON-RPC error, got {other}", caller.name),
                };
                let how = if scope == APP_SCOPE {
                    format!("; then request a new token for {scope}")
                } else {
                    format!("; the scopes to request: {scope}")
                };
                assert_eq!(
                    error.message,
                    format!("not allowed to call roll_dice: {description}{how}"),
                    "{}",
                    caller.name
                );
                assert_eq!(error.code.0, -32600, "{}", caller.name);
                assert_eq!(error.data.unwrap()["scope"], scope, "{}", caller.name);
            }
        }
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn a_config_naming_an_unknown_tool_stops_start_up_with_one_line() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let dir = scratch("unknown");
    std::fs::write(
        dir.join("config.toml"),
        "[tools.roll_dic]\nscopes = [\"Dice.Roll\"]\n",
    )
    .unwrap();
    for command in ["stdio", "serve"] {
        let mut cmd = tokio::process::Command::new(EXE);
        cmd.args([command, "--config", "config.toml"])
            .current_dir(&dir)
            .env_clear()
            .env("AZURE_CLIENT_ID", CLIENT_ID)
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_AUTHORITY_HOST", &fake.base)
            .env("PORT", "0");
        let out = cmd.stdin(Stdio::null()).output().await.unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert_eq!(out.stdout, b"", "{command}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "mcp-server-entra: [tools.roll_dic] names no tool of this server; its tools are greeting_card, my_profile, roll_dice, whoami\n",
            "{command}"
        );
    }
}

/// The greeting card's `ui://` resource follows `greeting_card`: hidden from and refused to a
/// caller who may not call the tool (in-process, over the stdio transport).
#[tokio::test]
async fn the_card_resource_follows_its_tool() {
    let mut overrides = ToolOverrides::new();
    overrides.insert(
        "greeting_card".into(),
        ToolOverride {
            scopes: Some(vec!["Card.Make".into()]),
            ..ToolOverride::default()
        },
    );
    let access = Arc::new(
        ToolAccess::new(
            &format!("api://{CLIENT_ID}").parse().unwrap(),
            &["access_as_user".into()],
            &overrides,
        )
        .unwrap(),
    );
    for (scopes, allowed) in [
        (&["access_as_user"][..], false),
        (&["access_as_user", "Card.Make"][..], true),
    ] {
        let identity = verifiers::Identity::builder("oid", TENANT)
            .scopes(scopes.iter().copied())
            .build();
        let verifier = verifiers::StaticVerifier::new(AccessPolicy::scopes(["access_as_user"]))
            .with_token("t", identity);
        let auth = Arc::new(transports::stdio::StdioAuth::new(
            Arc::new(verifier),
            transports::stdio::TokenSource::Fixed("t".into()),
        ));
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let server = EntraMcpServer::from_access(access.clone());
        tokio::spawn(async move {
            let _ = transports::stdio::serve(server, auth, server_io).await;
        });
        let client = ().serve(client_io).await.unwrap();
        let listed = client.list_all_resources().await.unwrap();
        assert_eq!(listed.len(), usize::from(allowed), "{scopes:?}");
        let read = client
            .read_resource(rmcp::model::ReadResourceRequestParams::new(
                "ui://acme/greeting-card",
            ))
            .await;
        assert_eq!(read.is_ok(), allowed, "{scopes:?}: {read:?}");
        let tools = client.list_all_tools().await.unwrap();
        assert_eq!(
            tools.iter().any(|t| t.name == "greeting_card"),
            allowed,
            "{scopes:?}"
        );
        client.cancel().await.unwrap();
    }
}
