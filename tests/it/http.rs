//! The HTTP transport: the real server on 127.0.0.1:0 with the static verifier, driven by rmcp's
//! client (both lifecycles) and by raw HTTP for exact statuses and headers.

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use serde_json::{json, Value};

use crate::common::*;

async fn call_all_tools(client: &Client) {
    let whoami = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    assert_eq!(whoami.structured_content.unwrap()["object_id"], "alice-oid");
    let args = json!({"sides": 20}).as_object().unwrap().clone();
    let roll = client
        .call_tool(CallToolRequestParams::new("roll_dice").with_arguments(args))
        .await
        .unwrap();
    let n = roll.structured_content.unwrap()["roll"].as_i64().unwrap();
    assert!((1..=20).contains(&n));
    let card = client
        .call_tool(CallToolRequestParams::new("greeting_card"))
        .await
        .unwrap();
    assert_eq!(card.structured_content.unwrap()["username"], "Alice");
    assert_eq!(client.list_resources(None).await.unwrap().resources.len(), 1);
}

#[tokio::test]
async fn legacy_initialize_client_calls_every_tool() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let client = legacy_client(&server.mcp_url(), ALICE).await;
    assert_eq!(
        client.peer_info().unwrap().protocol_version.as_str(),
        "2025-11-25"
    );
    call_all_tools(&client).await;
    assert_eq!(
        server.server.sessions().len(),
        1,
        "the session is bound to its owner"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn current_spec_discover_client_calls_every_tool_without_a_session() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let client = discover_client(&server.mcp_url(), ALICE).await;
    call_all_tools(&client).await;
    assert_eq!(server.server.sessions().len(), 0, "2026-07-28 is stateless");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn trailing_slash_endpoint_works_without_redirect() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let client = discover_client(&format!("{}/mcp/", server.base), ALICE).await;
    call_all_tools(&client).await;
    let r = http().post(format!("{}/mcp/", server.base)).send().await.unwrap();
    assert_eq!(r.status(), 401, "no redirect, same auth");
}

#[tokio::test]
async fn stateless_legacy_mode_serves_old_clients_without_sessions() {
    let server = spawn_http(static_verifier(), |c| c.legacy_sessions = false).await;
    let client = legacy_client(&server.mcp_url(), ALICE).await;
    call_all_tools(&client).await;
    assert_eq!(server.server.sessions().len(), 0);
    let r = post(&server, Some(ALICE), &initialize_body()).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("mcp-session-id").is_none());
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
}

async fn post(server: &TestServer, token: Option<&str>, body: &Value) -> reqwest::Response {
    post_mcp(&server.mcp_url(), token, body).await
}

fn www_authenticate(r: &reqwest::Response) -> std::collections::HashMap<String, String> {
    challenge_params(r.headers()["www-authenticate"].to_str().unwrap())
}

#[tokio::test]
async fn no_token_gets_401_with_metadata_and_scope() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let r = post(&server, None, &initialize_body()).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!(
            "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\", scope=\"api://{CLIENT_ID}/access_as_user\"",
            server.base
        )
        .as_str()
    );
}

#[tokio::test]
async fn bad_token_gets_401_invalid_token_with_a_reason() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let r = post(&server, Some("not-a-known-token"), &initialize_body()).await;
    assert_eq!(r.status(), 401);
    let p = www_authenticate(&r);
    assert_eq!(p["error"], "invalid_token");
    assert_eq!(p["error_description"], "the token is not recognised");
    assert_eq!(
        p["resource_metadata"],
        format!("{}/.well-known/oauth-protected-resource/mcp", server.base)
    );
    assert_eq!(p["scope"], format!("api://{CLIENT_ID}/access_as_user"));
}

#[tokio::test]
async fn missing_scope_gets_403_insufficient_scope() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let r = post(&server, Some(NO_SCOPE), &initialize_body()).await;
    assert_eq!(r.status(), 403);
    let p = www_authenticate(&r);
    assert_eq!(p["error"], "insufficient_scope");
    assert_eq!(p["scope"], format!("api://{CLIENT_ID}/access_as_user"));
    assert_eq!(
        p["resource_metadata"],
        format!("{}/.well-known/oauth-protected-resource/mcp", server.base)
    );
    assert!(p["error_description"].contains("access_as_user"));
}

#[tokio::test]
async fn unavailable_verifier_gets_503_with_retry_after_and_not_ready() {
    let server = spawn_http(Arc::new(UnavailableVerifier), |_| {}).await;
    let r = post(&server, Some(ALICE), &initialize_body()).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let ready = http().get(format!("{}/ready", server.base)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ok = spawn_http(static_verifier(), |_| {}).await;
    let ready = http().get(format!("{}/ready", ok.base)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn malformed_credentials_get_400_invalid_request() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let r = http()
        .post(format!("{}?access_token={ALICE}", server.mcp_url()))
        .header("accept", ACCEPT)
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(www_authenticate(&r)["error"], "invalid_request");
    let r = http()
        .post(server.mcp_url())
        .header("accept", ACCEPT)
        .header("authorization", format!("Bearer {ALICE}"))
        .header("authorization", format!("Bearer {BOB}"))
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let r = http()
        .post(server.mcp_url())
        .header("accept", ACCEPT)
        .header("authorization", format!("bEaReR {ALICE}"))
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn metadata_document_has_exactly_the_rfc9728_fields() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    for (path, resource) in [
        (
            "/.well-known/oauth-protected-resource/mcp",
            format!("{}/mcp", server.base),
        ),
        // RFC 9728 §3.3: the root document describes the resource it is derived from.
        ("/.well-known/oauth-protected-resource", server.base.clone()),
    ] {
        let r = http().get(format!("{}{path}", server.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let doc: Value = r.json().await.unwrap();
        assert_eq!(
            doc,
            json!({
                "resource": resource,
                "authorization_servers": [format!("https://login.microsoftonline.com/{TENANT}/v2.0")],
                "scopes_supported": [format!("api://{CLIENT_ID}/access_as_user")],
                "bearer_methods_supported": ["header"],
                "resource_name": "mcp-server-entra",
            })
        );
    }
}

#[tokio::test]
async fn health_is_ok_and_unknown_paths_are_404() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let r = http()
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    let r = http().get(format!("{}/nope", server.base)).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

async fn session_call(server: &TestServer, token: &str, session: &str, body: Value) -> reqwest::Response {
    http()
        .post(server.mcp_url())
        .header("accept", ACCEPT)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The JSON-RPC messages of an SSE or JSON response body.
async fn messages(r: reqwest::Response) -> Vec<Value> {
    let text = r.text().await.unwrap();
    if text.trim_start().starts_with('{') {
        return vec![serde_json::from_str(&text).unwrap()];
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

#[tokio::test]
async fn another_user_cannot_use_a_session_it_did_not_open() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let session = open_session(&server.mcp_url(), ALICE).await;
    let whoami =
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}});
    let stolen = session_call(&server, BOB, &session, whoami.clone()).await;
    assert_eq!(stolen.status(), 404);
    let own = session_call(&server, ALICE, &session, whoami).await;
    assert_eq!(own.status(), 200);
    let reply = messages(own).await;
    assert_eq!(
        reply.last().unwrap()["result"]["structuredContent"]["name"],
        "Alice"
    );
    // Bob cannot end Alice's session either.
    let delete = http()
        .delete(server.mcp_url())
        .header("mcp-session-id", &session)
        .bearer_auth(BOB)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 404);
    let delete = http()
        .delete(server.mcp_url())
        .header("mcp-session-id", &session)
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    // 204, not rmcp's 202: the Python SDK warns on anything but 200/204 (found by the interop run).
    assert_eq!(delete.status(), 204);
    assert_eq!(server.server.sessions().len(), 0);
}

#[tokio::test]
async fn unknown_method_gets_a_jsonrpc_error_not_a_hang() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let session = open_session(&server.mcp_url(), ALICE).await;
    let body = json!({"jsonrpc":"2.0","id":7,"method":"no/such/method","params":{}});
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        session_call(&server, ALICE, &session, body),
    )
    .await
    .unwrap();
    let reply = messages(r).await;
    assert_eq!(reply.last().unwrap()["error"]["code"], -32601);
    assert_eq!(reply.last().unwrap()["id"], 7);
}

#[tokio::test]
async fn malformed_json_gets_a_4xx() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let r = http()
        .post(server.mcp_url())
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .bearer_auth(ALICE)
        .body("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
}

#[tokio::test]
async fn body_over_the_limit_gets_413() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let big = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"greeting_card","arguments":{"message":"x".repeat(2 * 1024 * 1024)}}});
    let r = post(&server, Some(ALICE), &big).await;
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn foreign_host_and_origin_get_403_allowed_origin_gets_cors() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let r = http()
        .post(server.mcp_url())
        .header("host", "evil.example")
        .header("accept", ACCEPT)
        .bearer_auth(ALICE)
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http()
        .post(server.mcp_url())
        .header("origin", "https://evil.example")
        .header("accept", ACCEPT)
        .bearer_auth(ALICE)
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Even without a token: the Origin check comes first.
    let r = http()
        .post(server.mcp_url())
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let r = http()
        .post(server.mcp_url())
        .header("origin", "http://localhost:6274")
        .header("accept", ACCEPT)
        .bearer_auth(ALICE)
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:6274"
    );
    let exposed = r.headers()["access-control-expose-headers"].to_str().unwrap();
    assert!(exposed.contains("mcp-session-id") && exposed.contains("www-authenticate"));

    let preflight = http()
        .request(reqwest::Method::OPTIONS, server.mcp_url())
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert!(preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
}

/// A handler with one slow tool, to show that shutdown lets it finish. It says when it starts.
#[derive(Clone)]
struct Slow {
    tool_router: ToolRouter<Self>,
    started: Arc<tokio::sync::Notify>,
}

#[tool_router]
impl Slow {
    #[tool(description = "Sleeps a second, then answers")]
    async fn slow(&self) -> Result<CallToolResult, rmcp::model::ErrorData> {
        self.started.notify_one();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        Ok(CallToolResult::success(vec![ContentBlock::text("done")]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Slow {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let call_started = Arc::new(tokio::sync::Notify::new());
    let signal = call_started.clone();
    let (base, running) = spawn_handler(listener, move || Slow {
        tool_router: Slow::tool_router(),
        started: signal.clone(),
    });
    let client = discover_client(&format!("{base}/mcp"), ALICE).await;
    let call = tokio::spawn(async move { client.call_tool(CallToolRequestParams::new("slow")).await });
    // Shut down once the call is running (an event, not a guessed time).
    call_started.notified().await;
    let stop = running.shutdown_token();
    stop.cancel();
    let started = std::time::Instant::now();
    let result = call.await.unwrap().expect("the in-flight call completes");
    assert_eq!(result.content[0].as_text().unwrap().text, "done");
    tokio::time::timeout(Duration::from_secs(5), running.wait())
        .await
        .expect("server stops after draining");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        http().get(format!("{base}/health")).send().await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test]
async fn current_spec_requests_get_json_answers_even_with_legacy_sessions_on() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"roll_dice","arguments":{"sides":6},
        "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",
                 "io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},
                 "io.modelcontextprotocol/clientCapabilities":{}}}});
    let r = http()
        .post(server.mcp_url())
        .header("accept", ACCEPT)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "roll_dice")
        .bearer_auth(ALICE)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("mcp-session-id").is_none());
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let reply: Value = r.json().await.unwrap();
    assert_eq!(reply["result"]["structuredContent"]["user"], "Alice");
}

#[tokio::test]
async fn session_ids_carry_the_replica_prefix_and_foreign_prefixes_are_unknown() {
    let server = spawn_http(static_verifier(), |c| c.session_id_prefix = "r7-".into()).await;
    let session = open_session(&server.mcp_url(), ALICE).await;
    assert!(session.starts_with("r7-"), "{session}");
    let whoami =
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}});
    let r = session_call(&server, ALICE, &session, whoami.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        messages(r).await.last().unwrap()["result"]["structuredContent"]["name"],
        "Alice"
    );
    let elsewhere = session.replacen("r7-", "r8-", 1);
    assert_eq!(
        session_call(&server, ALICE, &elsewhere, whoami.clone())
            .await
            .status(),
        404
    );
    let bare = session.trim_start_matches("r7-").to_owned();
    assert_eq!(session_call(&server, ALICE, &bare, whoami).await.status(), 404);
    // The owner binding still applies behind the prefix.
    let r = session_call(
        &server,
        BOB,
        &session,
        json!({"jsonrpc":"2.0","id":3,"method":"tools/list"}),
    )
    .await;
    assert_eq!(r.status(), 404);
}
