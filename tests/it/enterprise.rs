//! Enterprise authorization through the real binary, with a fake Entra (metadata, keys, token
//! endpoint) and a fake Microsoft Graph on 127.0.0.1: groups with overage, scope hierarchies,
//! Conditional Access authentication contexts, app-specific signing keys, and the External ID
//! and B2C issuer shapes. Each capability is one table of callers, on the 2026-07-28 path (the
//! `Mcp-Name` header) and the legacy path (a session, the body read by the gate).

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::common::*;
use crate::tool_access::chunked_post_to;

const EXE: &str = env!("CARGO_BIN_EXE_mcp-server-entra");
const SECRET: &str = "enterprise-test-client-secret";
const G1: &str = "11111111-0000-0000-0000-00000000000a";
const G2: &str = "22222222-0000-0000-0000-00000000000b";
const G3: &str = "33333333-0000-0000-0000-00000000000c";
/// In more groups than fit in a token; a member of G2 (Graph says so).
const OVERAGE_MEMBER: &str = "0000bbbb-0000-0000-0000-0000000000a1";
/// In more groups than fit in a token; in none of G1, G2.
const OVERAGE_OUTSIDER: &str = "0000bbbb-0000-0000-0000-0000000000a2";
/// Asked about only while Graph is down.
const OVERAGE_LATE: &str = "0000bbbb-0000-0000-0000-0000000000a3";

/// One request the fake Graph received.
#[derive(Debug, Clone)]
struct GraphRequest {
    path: String,
    authorization: String,
    group_ids: BTreeSet<String>,
}

/// The fake token endpoint and Microsoft Graph, and what they saw.
#[derive(Default)]
struct Seen {
    graph: Mutex<Vec<GraphRequest>>,
    /// Each token request's grant type, and whether it carried an `assertion` (a caller's token).
    grants: Mutex<Vec<(String, bool)>>,
    /// Downstream tokens issued: token → the user it acts for (empty: the app itself).
    issued: Mutex<HashMap<String, String>>,
    graph_down: AtomicBool,
    issued_count: AtomicUsize,
}

fn claim(token: &str, name: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get(name)?.as_str().map(str::to_owned)
}

/// The groups (of G1, G2, G3) each overage user is in, as Graph knows them.
fn groups_of(oid: &str) -> &'static [&'static str] {
    match oid {
        OVERAGE_MEMBER => &[G2],
        _ => &[],
    }
}

struct Fakes {
    key: TestKey,
    entra: FakeEntra,
    graph: String,
    seen: Arc<Seen>,
}

impl Fakes {
    async fn start() -> Fakes {
        let key = key1();
        let entra = FakeEntra::start(&[&key]).await;
        let seen = Arc::new(Seen::default());
        let hook = seen.clone();
        *entra.state.token_endpoint.lock().unwrap() = Some(Arc::new(move |_tenant: &str, fields| {
            let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
            let grant = field("grant_type");
            hook.grants
                .lock()
                .unwrap()
                .push((grant.clone(), fields.contains_key("assertion")));
            if field("client_secret") != SECRET || field("client_id") != CLIENT_ID {
                return (400, json!({"error": "invalid_client"}));
            }
            let n = hook.issued_count.fetch_add(1, Ordering::SeqCst);
            let user = match grant.as_str() {
                "client_credentials" if field("scope").ends_with("/.default") => String::new(),
                "urn:ietf:params:oauth:grant-type:jwt-bearer" => match claim(&field("assertion"), "oid") {
                    Some(oid) => oid,
                    None => return (400, json!({"error": "invalid_grant"})),
                },
                _ => return (400, json!({"error": "unsupported_grant_type"})),
            };
            let token = format!("graph-token-{n}-{}", "Qx7w".repeat(6));
            hook.issued.lock().unwrap().insert(token.clone(), user);
            (
                200,
                json!({"token_type": "Bearer", "expires_in": 3599, "access_token": token}),
            )
        }));
        let graph = fake_graph(seen.clone()).await;
        Fakes {
            key,
            entra,
            graph,
            seen,
        }
    }

    /// A user's token with `extra` claims set (a `null` removes the claim).
    fn user(&self, oid: &str, scp: &str, extra: Value) -> String {
        let mut claims = self.entra.claims(TENANT);
        claims["oid"] = json!(oid);
        claims["sub"] = json!(format!("{oid}-sub"));
        claims["scp"] = json!(scp);
        merge(&mut claims, extra);
        mint(&self.key, &claims)
    }

    /// An app-only token with `roles`.
    fn app(&self, roles: &[&str], extra: Value) -> String {
        let mut claims = self.entra.claims(TENANT);
        claims.as_object_mut().unwrap().remove("scp");
        claims["roles"] = json!(roles);
        claims["idtyp"] = json!("app");
        merge(&mut claims, extra);
        mint(&self.key, &claims)
    }

    /// The binary against these fakes, with the server credential, `config` as its `--config`
    /// file and `env` on top.
    async fn binary(&self, name: &str, config: &str, env: &[(&str, &str)]) -> Binary {
        let dir = std::env::temp_dir().join(format!("mcp-entra-enterprise-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(&path, config).unwrap();
        let mut command = tokio::process::Command::new(EXE);
        command
            .args(["serve", "--port", "0", "--config", &path.display().to_string()])
            .env_clear()
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .env("AZURE_CLIENT_ID", CLIENT_ID)
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_AUTHORITY_HOST", &self.entra.base)
            .env("AZURE_REQUIRED_APP_ROLES", "Mcp.Invoke")
            .env("AZURE_CLIENT_SECRET", SECRET)
            .env("GRAPH_BASE_URL", &self.graph)
            .env("RATE_LIMIT_PER_ADDRESS", "off")
            .env("RATE_LIMIT_PER_PRINCIPAL", "off")
            .current_dir(&dir);
        for (name, value) in env {
            command.env(name, value);
        }
        Binary::start(command).await
    }

    fn graph_requests(&self) -> Vec<GraphRequest> {
        self.seen.graph.lock().unwrap().clone()
    }
}

fn merge(claims: &mut Value, extra: Value) {
    if let Value::Object(extra) = extra {
        for (name, value) in extra {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(&name);
            } else {
                claims[name] = value;
            }
        }
    }
}

/// `POST /v1.0/users/{oid}/checkMemberGroups` (the server's own token) and
/// `POST /v1.0/me/checkMemberGroups` (an on-behalf-of token): the asked ids the user is in.
async fn fake_graph(seen: Arc<Seen>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let (status, body) = graph_answer(&seen, req).await;
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body.to_string())))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    base
}

async fn graph_answer(seen: &Seen, req: Request<hyper::body::Incoming>) -> (u16, Value) {
    let path = req.uri().path().to_owned();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let asked: Value = serde_json::from_slice(&body).unwrap_or_default();
    let group_ids: BTreeSet<String> = asked["groupIds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect();
    seen.graph.lock().unwrap().push(GraphRequest {
        path: path.clone(),
        authorization: authorization.clone(),
        group_ids: group_ids.clone(),
    });
    if seen.graph_down.load(Ordering::SeqCst) {
        return (503, json!({"error": {"code": "serviceNotAvailable"}}));
    }
    let token = authorization.strip_prefix("Bearer ").unwrap_or_default();
    let Some(acting_for) = seen.issued.lock().unwrap().get(token).cloned() else {
        return (401, json!({"error": {"code": "InvalidAuthenticationToken"}}));
    };
    let user = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["", "v1.0", "users", oid, "checkMemberGroups"] if acting_for.is_empty() => (*oid).to_owned(),
        ["", "v1.0", "me", "checkMemberGroups"] if !acting_for.is_empty() => acting_for,
        _ => return (404, json!({"error": {"code": "Request_ResourceNotFound"}})),
    };
    let member: Vec<&str> = groups_of(&user)
        .iter()
        .copied()
        .filter(|g| group_ids.contains(*g))
        .collect();
    (200, json!({ "value": member }))
}

/// How a tool is called.
#[derive(Debug, Clone, Copy)]
enum Path {
    /// 2026-07-28: stateless, the tool named in `Mcp-Name`.
    Current,
    /// A legacy session; the gate reads the tool from the body.
    Legacy,
}

const PATHS: [Path; 2] = [Path::Current, Path::Legacy];

/// `tools/call` of `tool` on `path`.
async fn call(url: &str, token: &str, tool: &str, path: Path) -> reqwest::Response {
    let mut params = json!({"name": tool, "arguments": {}});
    let request = http().post(url).header("accept", ACCEPT).bearer_auth(token);
    let request = match path {
        Path::Current => {
            params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}});
            request
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", tool)
        }
        Path::Legacy => {
            let session = open_session(url, token).await;
            request
                .header("mcp-protocol-version", "2025-11-25")
                .header("mcp-session-id", session)
        }
    };
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params});
    request.json(&body).send().await.unwrap()
}

/// The tool names a `tools/list` on the 2026-07-28 path shows.
async fn listed(url: &str, token: &str) -> Vec<String> {
    let client = discover_client(url, token).await;
    let tools = client.list_all_tools().await.unwrap();
    client.cancel().await.unwrap();
    tools.iter().map(|t| t.name.to_string()).collect()
}

/// What a call must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// 200 with the tool's result.
    Ok,
    /// This status, with this `error` in the JSON body.
    Refused(u16, &'static str),
}

/// Checks `r` against `expected`; returns the body text.
async fn check(
    row: &str,
    path: Path,
    r: reqwest::Response,
    expected: Expect,
) -> (reqwest::header::HeaderMap, String) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    match expected {
        Expect::Ok => {
            assert_eq!(status, 200, "{row} ({path:?}): {text}");
            assert!(
                text.contains("\"result\"") && !text.contains("\"isError\":true"),
                "{row} ({path:?}): {text}"
            );
        }
        Expect::Refused(want, error) => {
            assert_eq!(status, want, "{row} ({path:?}): {text}");
            let body: Value = serde_json::from_str(&text).unwrap_or_default();
            assert_eq!(body["error"], error, "{row} ({path:?}): {text}");
        }
    }
    (headers, text)
}

#[tokio::test]
async fn groups_from_the_token_or_from_graph_once_per_cache_lifetime() {
    let fakes = Fakes::start().await;
    let config = format!(
        "[tools.roll_dice]\ngroups = [\"{G1}\", \"{G2}\"]\napp_roles = [\"Mcp.Invoke\"]\nscopes = [\"access_as_user\"]\n"
    );
    let server = fakes
        .binary("groups", &config, &[("GROUPS_CACHE_SECS", "600")])
        .await;
    let overage = json!({"_claim_names": {"groups": "src1"},
        "_claim_sources": {"src1": {"endpoint": "https://graph.windows.net/tenant/users/x/getMemberObjects"}}});
    let member = fakes.user(
        "0000bbbb-0000-0000-0000-0000000000b1",
        "access_as_user",
        json!({"groups": [G3, G1]}),
    );
    let outsider = fakes.user(
        "0000bbbb-0000-0000-0000-0000000000b2",
        "access_as_user",
        json!({"groups": [G3]}),
    );
    let no_claim = fakes.user(
        "0000bbbb-0000-0000-0000-0000000000b3",
        "access_as_user",
        json!({}),
    );
    let over_member = fakes.user(OVERAGE_MEMBER, "access_as_user", overage.clone());
    let over_outsider = fakes.user(OVERAGE_OUTSIDER, "access_as_user", overage.clone());
    let app = fakes.app(&["Mcp.Invoke"], json!({}));
    // (row, token, expected, listed)
    let rows: Vec<(&str, &String, Expect, bool)> = vec![
        ("member by the token's groups", &member, Expect::Ok, true),
        (
            "not a member",
            &outsider,
            Expect::Refused(403, "access_denied"),
            false,
        ),
        (
            "no groups claim",
            &no_claim,
            Expect::Refused(403, "access_denied"),
            false,
        ),
        ("overage, a member by Graph", &over_member, Expect::Ok, true),
        (
            "overage, not a member by Graph",
            &over_outsider,
            Expect::Refused(403, "access_denied"),
            false,
        ),
        ("app-only: roles alone", &app, Expect::Ok, true),
    ];
    for (row, token, expected, shown) in &rows {
        for path in PATHS {
            let (_, text) = check(
                row,
                path,
                call(&server.url, token, "roll_dice", path).await,
                *expected,
            )
            .await;
            // A caller outside the groups is not told which groups matter.
            for group in [G1, G2] {
                assert!(!text.contains(group), "{row}: {text}");
            }
        }
        assert_eq!(
            listed(&server.url, token).await.contains(&"roll_dice".to_owned()),
            *shown,
            "{row}"
        );
    }
    // Graph was asked once per overage user, with exactly the ids the tool admits, whatever the
    // number of calls and lists; with the server's own token, never a caller's.
    let asked = fakes.graph_requests();
    let wanted: BTreeSet<String> = [G1, G2].iter().map(|g| g.to_string()).collect();
    let paths: Vec<&str> = asked.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [OVERAGE_MEMBER, OVERAGE_OUTSIDER].map(|oid| format!("/v1.0/users/{oid}/checkMemberGroups")),
        "{asked:?}"
    );
    for request in &asked {
        assert_eq!(request.group_ids, wanted);
        let token = request.authorization.strip_prefix("Bearer ").unwrap();
        assert_eq!(
            fakes.seen.issued.lock().unwrap().get(token).map(String::as_str),
            Some(""),
            "an app token"
        );
    }
    let grants = fakes.seen.grants.lock().unwrap().clone();
    assert_eq!(
        grants,
        vec![("client_credentials".to_owned(), false)],
        "one app token, no caller token sent"
    );

    // Graph down: a user not yet cached is refused with 503 (never let in); the cached are not
    // affected.
    fakes.seen.graph_down.store(true, Ordering::SeqCst);
    let late = fakes.user(OVERAGE_LATE, "access_as_user", overage);
    for path in PATHS {
        let (headers, _) = check(
            "Graph down",
            path,
            call(&server.url, &late, "roll_dice", path).await,
            Expect::Refused(503, "temporarily_unavailable"),
        )
        .await;
        assert!(headers.contains_key("retry-after"));
        check(
            "Graph down, cached member",
            path,
            call(&server.url, &over_member, "roll_dice", path).await,
            Expect::Ok,
        )
        .await;
    }
    assert!(!listed(&server.url, &late).await.contains(&"roll_dice".to_owned()));

    // The log names the groups the refused caller is not in, and holds no token.
    let log = server.log_text();
    assert!(log.contains(&format!("admitted groups: {G1}, {G2}")), "{log}");
    assert!(
        log.contains("could not check group membership with Microsoft Graph"),
        "{log}"
    );
    for token in [&member, &outsider, &over_member, &late, &app] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(&signature[..20]), "a token in the log");
    }
    for issued in fakes.seen.issued.lock().unwrap().keys() {
        assert!(!log.contains(issued.as_str()), "a Graph token in the log");
    }
}

#[tokio::test]
async fn groups_on_behalf_of_the_caller_and_server_wide() {
    let fakes = Fakes::start().await;
    let config = "[tools.whoami]\nscopes = [\"access_as_user\"]\n";
    let server = fakes
        .binary(
            "groups-obo",
            config,
            &[
                ("GROUPS_GRAPH_AUTH", "on_behalf_of"),
                ("AZURE_REQUIRED_GROUPS", &format!("{G2}, {G3}")),
            ],
        )
        .await;
    let overage = json!({"hasgroups": true});
    let over_member = fakes.user(OVERAGE_MEMBER, "access_as_user", overage.clone());
    let over_outsider = fakes.user(OVERAGE_OUTSIDER, "access_as_user", overage);
    let rows = [
        (
            "server-wide group, by Graph on the caller's behalf",
            &over_member,
            Expect::Ok,
        ),
        (
            "in no server-wide group",
            &over_outsider,
            Expect::Refused(403, "access_denied"),
        ),
    ];
    for (row, token, expected) in rows {
        for tool in ["whoami", "roll_dice"] {
            check(
                row,
                Path::Current,
                call(&server.url, token, tool, Path::Current).await,
                expected,
            )
            .await;
        }
        assert_eq!(
            listed(&server.url, token).await.is_empty(),
            expected != Expect::Ok,
            "{row}"
        );
    }
    let asked = fakes.graph_requests();
    assert_eq!(asked.len(), 2, "{asked:?}");
    let wanted: BTreeSet<String> = [G2, G3].iter().map(|g| g.to_string()).collect();
    for request in &asked {
        assert_eq!(request.path, "/v1.0/me/checkMemberGroups");
        assert_eq!(request.group_ids, wanted);
    }
    // On behalf of: the caller's token went to Entra's token endpoint, and only there.
    let grants = fakes.seen.grants.lock().unwrap().clone();
    assert!(
        grants
            .iter()
            .all(|g| g == &("urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(), true)),
        "{grants:?}"
    );
    let tokens = [&over_member];
    for request in &asked {
        assert!(tokens.iter().all(|t| !request.authorization.contains(t.as_str())));
    }
}

#[tokio::test]
async fn implied_scopes_and_roles_count_in_checks_lists_and_challenges() {
    let fakes = Fakes::start().await;
    let config = "[tools.roll_dice]\nscopes = [\"Dice.Roll\"]\napp_roles = [\"Dice.Roll.All\"]\n\
                  [implies]\n\"Dice.Admin\" = [\"Dice.Roll\"]\n\"Mcp.All\" = [\"access_as_user\", \"Dice.Admin\"]\n\
                  \"Dice.Admin.All\" = [\"Mcp.Invoke\", \"Dice.Roll.All\"]\n";
    let server = fakes.binary("implies", config, &[]).await;
    let uri = |s: &str| format!("api://{CLIENT_ID}/{s}");
    let least = format!("{} {}", uri("access_as_user"), uri("Dice.Roll"));
    let rows: Vec<(&str, String, Expect, bool, Option<String>)> = vec![
        (
            "the scope itself",
            fakes.user(OVERAGE_MEMBER, "access_as_user Dice.Roll", json!({})),
            Expect::Ok,
            true,
            None,
        ),
        (
            "a scope that implies it",
            fakes.user(OVERAGE_MEMBER, "access_as_user Dice.Admin", json!({})),
            Expect::Ok,
            true,
            None,
        ),
        (
            "the floor and the tool, through a chain",
            fakes.user(OVERAGE_MEMBER, "Mcp.All", json!({})),
            Expect::Ok,
            true,
            None,
        ),
        (
            "neither: the challenge names the least scope",
            fakes.user(OVERAGE_MEMBER, "access_as_user", json!({})),
            Expect::Refused(403, "insufficient_scope"),
            false,
            Some(least),
        ),
        (
            "an app role that implies both",
            fakes.app(&["Dice.Admin.All"], json!({})),
            Expect::Ok,
            true,
            None,
        ),
        (
            "an app role implied by nothing held",
            fakes.app(&["Mcp.Invoke"], json!({})),
            Expect::Refused(403, "insufficient_scope"),
            false,
            Some(uri(".default")),
        ),
    ];
    for (row, token, expected, shown, scope) in &rows {
        for path in PATHS {
            let (headers, _) = check(
                row,
                path,
                call(&server.url, token, "roll_dice", path).await,
                *expected,
            )
            .await;
            if let Some(scope) = scope {
                let challenge = challenge_params(headers["www-authenticate"].to_str().unwrap());
                assert_eq!(challenge.get("scope"), Some(scope), "{row}");
            }
        }
        assert_eq!(
            listed(&server.url, token).await.contains(&"roll_dice".to_owned()),
            *shown,
            "{row}"
        );
    }
}

/// The base64 claims request of `c1`, decoded.
fn decoded_claims(claims: &str) -> Value {
    serde_json::from_slice(&STANDARD.decode(claims).unwrap()).unwrap()
}

#[tokio::test]
async fn an_authentication_context_is_asked_for_with_a_claims_challenge() {
    let fakes = Fakes::start().await;
    let config = "[tools.greeting_card]\nauth_context = \"c1\"\napp_roles = [\"Mcp.Invoke\"]\nscopes = [\"access_as_user\"]\n";
    let server = fakes.binary("acrs", config, &[]).await;
    let stepped_up = fakes.user(
        OVERAGE_MEMBER,
        "access_as_user",
        json!({"acrs": ["c1"], "xms_cc": ["cp1"]}),
    );
    let capable = fakes.user(
        OVERAGE_MEMBER,
        "access_as_user",
        json!({"acrs": ["c2"], "xms_cc": ["cp1"]}),
    );
    let incapable = fakes.user(OVERAGE_MEMBER, "access_as_user", json!({}));
    let app = fakes.app(&["Mcp.Invoke"], json!({}));
    let rows = [
        ("acrs holds c1", &stepped_up, Expect::Ok),
        (
            "no c1, the client declared cp1",
            &capable,
            Expect::Refused(401, "insufficient_claims"),
        ),
        ("no c1, no cp1", &incapable, Expect::Refused(403, "access_denied")),
        ("app-only", &app, Expect::Refused(403, "access_denied")),
    ];
    for (row, token, expected) in rows {
        for path in PATHS {
            let (headers, text) = check(
                row,
                path,
                call(&server.url, token, "greeting_card", path).await,
                expected,
            )
            .await;
            match expected {
                Expect::Refused(401, _) => {
                    let value = headers["www-authenticate"].to_str().unwrap();
                    assert!(value.starts_with("Bearer realm=\"\", "), "{value}");
                    let challenge = challenge_params(value);
                    assert_eq!(challenge["error"], "insufficient_claims");
                    assert_eq!(
                        decoded_claims(&challenge["claims"]),
                        json!({"access_token": {"acrs": {"essential": true, "value": "c1"}}})
                    );
                }
                Expect::Refused(403, _) => {
                    assert!(
                        !headers.contains_key("www-authenticate"),
                        "{row}: no step-up to offer"
                    );
                    let needle = if token == &app { "app-only" } else { "cp1" };
                    assert!(text.contains(needle), "{row}: {text}");
                }
                _ => {}
            }
        }
        // Listed for every caller who may call it after stepping up (not the app).
        assert_eq!(
            listed(&server.url, token)
                .await
                .contains(&"greeting_card".to_owned()),
            token != &app,
            "{row}"
        );
    }
    // A body the gate cannot read in advance (chunked, to a server without sessions): the same
    // refusal as a JSON-RPC error.
    drop(server);
    let stateless = fakes
        .binary("acrs-stateless", config, &[("LEGACY_SESSIONS", "false")])
        .await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "greeting_card", "arguments": {}}});
    let reply = chunked_post_to(stateless.addr, &capable, &body).await;
    let error = &reply["error"];
    assert_eq!(error["code"], -32600, "{reply}");
    assert_eq!(error["data"]["error"], "insufficient_claims", "{error}");
    assert_eq!(
        decoded_claims(error["data"]["claims"].as_str().unwrap())["access_token"]["acrs"]["value"],
        "c1"
    );
}

#[tokio::test]
async fn over_stdio_a_missing_authentication_context_says_what_to_do() {
    let fakes = Fakes::start().await;
    let dir = std::env::temp_dir().join(format!("mcp-entra-enterprise-stdio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        "[tools.roll_dice]\nauth_context = \"c3\"\n",
    )
    .unwrap();
    let rows = [
        (
            "cp1",
            json!({"xms_cc": ["cp1"]}),
            "insufficient_claims",
            "sign in again",
        ),
        ("no cp1", json!({}), "access_denied", "cp1"),
        ("stepped up", json!({"acrs": ["c3"]}), "", ""),
    ];
    for (row, extra, error, says) in rows {
        let token = fakes.user(OVERAGE_MEMBER, "access_as_user", extra);
        let mut command = tokio::process::Command::new(EXE);
        command
            .args([
                "stdio",
                "--config",
                &dir.join("config.toml").display().to_string(),
            ])
            .env_clear()
            .env("AZURE_CLIENT_ID", CLIENT_ID)
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_AUTHORITY_HOST", &fakes.entra.base)
            .env("MCP_ACCESS_TOKEN", &token)
            .current_dir(&dir);
        let transport = rmcp::transport::TokioChildProcess::new(command).unwrap();
        let client = rmcp::ServiceExt::serve((), transport).await.unwrap();
        let result = client
            .call_tool(rmcp::model::CallToolRequestParams::new("roll_dice"))
            .await;
        match result {
            Ok(_) if error.is_empty() => {}
            Err(rmcp::ServiceError::McpError(e)) if !error.is_empty() => {
                let data = e.data.unwrap();
                assert_eq!(data["error"], error, "{row}");
                assert!(e.message.contains(says), "{row}: {}", e.message);
                if error == "insufficient_claims" {
                    assert_eq!(
                        decoded_claims(data["claims"].as_str().unwrap())["access_token"]["acrs"]["value"],
                        "c3"
                    );
                }
            }
            other => panic!("{row}: {other:?}"),
        }
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn app_specific_signing_keys_are_read_with_appid() {
    let fakes = Fakes::start().await;
    // The app's own key signs; the tenant's JWKS does not have it.
    let app_key = key2();
    fakes
        .entra
        .state
        .app_jwks
        .lock()
        .unwrap()
        .push(app_key.jwk.clone());
    let token = mint(&app_key, &fakes.entra.claims(TENANT));
    let tenant_token = mint(&fakes.key, &fakes.entra.claims(TENANT));
    // (AZURE_APP_SPECIFIC_SIGNING_KEYS, token, expected status)
    let rows = [
        ("false", &token, 401),
        ("true", &token, 200),
        ("true", &tenant_token, 401),
    ];
    for (setting, token, status) in rows {
        let server = fakes
            .binary("appid", "", &[("AZURE_APP_SPECIFIC_SIGNING_KEYS", setting)])
            .await;
        let r = call(&server.url, token, "whoami", Path::Current).await;
        assert_eq!(r.status(), status, "AZURE_APP_SPECIFIC_SIGNING_KEYS={setting}");
    }
}

#[tokio::test]
async fn external_id_and_b2c_issuers_end_to_end() {
    let fakes = Fakes::start().await;
    let base = &fakes.entra.base;
    // External ID: the metadata lives under the ciamlogin.com authority, its issuer names the
    // tenant id as host and path.
    let ciam_issuer = format!("https://{TENANT}.ciamlogin.com/{TENANT}/v2.0");
    fakes
        .entra
        .state
        .issuers
        .lock()
        .unwrap()
        .insert(TENANT.to_owned(), ciam_issuer.clone());
    let server = fakes.binary("ciam", "", &[]).await;
    let mut claims = fakes.entra.claims(TENANT);
    claims["iss"] = json!(ciam_issuer);
    let ciam = mint(&fakes.key, &claims);
    let workforce = mint(&fakes.key, &fakes.entra.claims(TENANT));
    check(
        "External ID token",
        Path::Current,
        call(&server.url, &ciam, "whoami", Path::Current).await,
        Expect::Ok,
    )
    .await;
    let r = call(&server.url, &workforce, "whoami", Path::Current).await;
    assert_eq!(r.status(), 401, "another issuer of the same tenant");
    drop(server);

    // B2C: per-policy metadata, an issuer with a trailing slash, ver 1.0 and no tid.
    let b2c_issuer = format!("https://contoso.b2clogin.com/{TENANT}/v2.0/");
    fakes
        .entra
        .state
        .issuers
        .lock()
        .unwrap()
        .insert("contoso.onmicrosoft.com/B2C_1_signin".into(), b2c_issuer.clone());
    let server = fakes
        .binary(
            "b2c",
            "",
            &[
                ("AZURE_TENANT_ID", "contoso.onmicrosoft.com"),
                ("AZURE_B2C_POLICY", "B2C_1_signin"),
                ("AZURE_CLIENT_SECRET", ""),
            ],
        )
        .await;
    let mut claims = fakes.entra.claims(TENANT);
    claims["iss"] = json!(b2c_issuer);
    claims["ver"] = json!("1.0");
    claims["tfp"] = json!("B2C_1_signin");
    claims.as_object_mut().unwrap().remove("tid");
    let b2c = mint(&fakes.key, &claims);
    let (_, text) = check(
        "B2C token",
        Path::Current,
        call(&server.url, &b2c, "whoami", Path::Current).await,
        Expect::Ok,
    )
    .await;
    assert!(text.contains(TENANT), "the tenant comes from the issuer: {text}");
    // (row, claims changed, status): the issuer exactly, and the policy configured.
    let rows: Vec<(&str, Value, u16)> = vec![
        (
            "the issuer without its slash",
            json!({"iss": b2c_issuer.trim_end_matches('/')}),
            401,
        ),
        (
            "another user flow of the tenant",
            json!({"tfp": "B2C_1_passwordreset"}),
            401,
        ),
        (
            "the policy in acr (older tenants)",
            json!({"tfp": null, "acr": "b2c_1_signin"}),
            200,
        ),
        ("no policy claim", json!({"tfp": null}), 401),
        (
            "a tid that is not the issuer's",
            json!({"tid": "aaaaaaaa-bbbb-cccc-dddd-000000000002"}),
            401,
        ),
        (
            "no scp: never taken for an app",
            json!({"scp": null, "sub": OVERAGE_MEMBER, "oid": OVERAGE_MEMBER}),
            403,
        ),
    ];
    for (row, change, status) in rows {
        let mut changed = claims.clone();
        merge(&mut changed, change);
        let token = mint(&fakes.key, &changed);
        assert_eq!(
            call(&server.url, &token, "whoami", Path::Current).await.status(),
            status,
            "{row}"
        );
    }
    let log = server.log_text();
    assert!(log.contains("wrong_b2c_policy"), "{log}");
    // The metadata URL has the policy in it; RFC 9728 metadata names that authority.
    let metadata: Value = http()
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            server.url.trim_end_matches("/mcp")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["authorization_servers"],
        json!([format!("{base}/contoso.onmicrosoft.com/B2C_1_signin/v2.0")])
    );
}

#[tokio::test]
async fn b2c_with_a_server_credential_is_refused_at_start_up() {
    let output = std::process::Command::new(EXE)
        .args(["serve", "--port", "0"])
        .env_clear()
        .env("AZURE_CLIENT_ID", CLIENT_ID)
        .env("AZURE_TENANT_ID", "contoso.onmicrosoft.com")
        .env("AZURE_AUTHORITY_HOST", "https://contoso.b2clogin.com")
        .env("AZURE_B2C_POLICY", "B2C_1_signin")
        .env("AZURE_CLIENT_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no on-behalf-of flow"), "{stderr}");
    assert!(!stderr.contains(SECRET));
}
