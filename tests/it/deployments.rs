//! Real deployments and clients (docs/ARCHITECTURE.md#the-http-path): a gateway path in `PUBLIC_URL`, self-consistent
//! metadata, clients that accept only JSON, the discovered issuer, and challenges that say what
//! to request. The real server on 127.0.0.1:0; Entra cases against the fake Entra.

use std::sync::Arc;

use reqwest::Method;
use rmcp::model::CallToolRequestParams;
use serde_json::{json, Value};
use verifiers::{AccessPolicy, EntraVerifier, CONSUMER_TENANT_ID};

use crate::common::*;

const PUBLIC: &str = "https://api.contoso.com/entra";
const GATEWAY_HOST: &str = "api.contoso.com";
const PREFIXED_METADATA: &str = "https://api.contoso.com/.well-known/oauth-protected-resource/entra/mcp";

/// A server that believes it is reached at `https://api.contoso.com/entra` through a gateway.
async fn behind_gateway() -> TestServer {
    spawn_http(static_verifier(), |c| {
        c.public_url = url::Url::parse(PUBLIC).unwrap();
        c.allowed_hosts = vec![GATEWAY_HOST.into(), "127.0.0.1".into()];
        c.allowed_origins = vec!["https://api.contoso.com".into()];
    })
    .await
}

fn metadata_document(resource: &str) -> Value {
    json!({
        "resource": resource,
        "authorization_servers": [format!("https://login.microsoftonline.com/{TENANT}/v2.0")],
        "scopes_supported": [format!("api://{CLIENT_ID}/access_as_user")],
        "bearer_methods_supported": ["header"],
        "resource_name": "mcp-server-entra",
    })
}

#[tokio::test]
async fn a_path_in_public_url_serves_prefixed_and_stripped_paths_and_self_consistent_metadata() {
    let server = behind_gateway().await;
    let challenge = format!(
        "Bearer resource_metadata=\"{PREFIXED_METADATA}\", scope=\"api://{CLIENT_ID}/access_as_user\""
    );
    // (method, path, token, extra headers, status, exact body or metadata `resource`)
    #[allow(clippy::type_complexity)]
    let rows: &[(Method, &str, Option<&str>, &[(&str, &str)], u16, Option<&str>)] = &[
        // RFC 9728 §3.1 path-inserted form, the prefix form, the root form: each names the URL it
        // was derived from (§3.3). The unprefixed endpoint form belongs to no resource here.
        (
            Method::GET,
            "/.well-known/oauth-protected-resource/entra/mcp",
            None,
            &[],
            200,
            Some("https://api.contoso.com/entra/mcp"),
        ),
        (
            Method::GET,
            "/.well-known/oauth-protected-resource/entra",
            None,
            &[],
            200,
            Some("https://api.contoso.com/entra"),
        ),
        (
            Method::GET,
            "/.well-known/oauth-protected-resource",
            None,
            &[],
            200,
            Some("https://api.contoso.com/entra"),
        ),
        (
            Method::GET,
            "/.well-known/oauth-protected-resource/mcp",
            None,
            &[],
            404,
            None,
        ),
        (
            Method::GET,
            "/entra/.well-known/oauth-protected-resource/entra/mcp",
            None,
            &[],
            404,
            None,
        ),
        // Forwarded headers change nothing: the document follows PUBLIC_URL only.
        (
            Method::GET,
            "/.well-known/oauth-protected-resource/entra/mcp",
            None,
            &[
                ("x-forwarded-host", "evil.example"),
                ("x-forwarded-proto", "http"),
                ("forwarded", "host=evil.example"),
            ],
            200,
            Some("https://api.contoso.com/entra/mcp"),
        ),
        // The endpoint with and without the prefix, with and without the trailing slash.
        (Method::POST, "/entra/mcp", None, &[], 401, None),
        (Method::POST, "/entra/mcp/", None, &[], 401, None),
        (Method::POST, "/mcp", None, &[], 401, None),
        (Method::POST, "/mcp/", None, &[], 401, None),
        (Method::POST, "/entra/mcp", Some(ALICE), &[], 200, None),
        (Method::POST, "/entra/mcp/", Some(ALICE), &[], 200, None),
        (Method::POST, "/mcp", Some(ALICE), &[], 200, None),
        (Method::POST, "/mcp/", Some(ALICE), &[], 200, None),
        (
            Method::POST,
            "/entrance/mcp",
            Some(ALICE),
            &[],
            404,
            Some("Not Found"),
        ),
        (Method::POST, "/entra", Some(ALICE), &[], 404, Some("Not Found")),
        (
            Method::POST,
            "/other/mcp",
            Some(ALICE),
            &[],
            404,
            Some("Not Found"),
        ),
        (Method::GET, "/entra/health", None, &[], 200, Some("ok")),
        (Method::GET, "/health", None, &[], 200, Some("ok")),
        // Host and Origin follow PUBLIC_URL; a trailing-dot FQDN is the same name; forwarded
        // headers never stand in for Host.
        (
            Method::POST,
            "/entra/mcp",
            Some(ALICE),
            &[("host", "api.contoso.com.")],
            200,
            None,
        ),
        (
            Method::POST,
            "/entra/mcp",
            Some(ALICE),
            &[("host", "API.contoso.com:443")],
            200,
            None,
        ),
        (
            Method::POST,
            "/entra/mcp",
            Some(ALICE),
            &[("host", "evil.example")],
            403,
            Some("Forbidden: Host not allowed (set ALLOWED_HOSTS or PUBLIC_URL to the name clients use)"),
        ),
        (
            Method::POST,
            "/entra/mcp",
            Some(ALICE),
            &[("host", "evil.example"), ("x-forwarded-host", "api.contoso.com")],
            403,
            Some("Forbidden: Host not allowed (set ALLOWED_HOSTS or PUBLIC_URL to the name clients use)"),
        ),
        (
            Method::POST,
            "/entra/mcp",
            Some(ALICE),
            &[("origin", "https://api.contoso.com")],
            200,
            None,
        ),
        (
            Method::POST,
            "/entra/mcp",
            Some(ALICE),
            &[("origin", "https://api.contoso.com.")],
            200,
            None,
        ),
        (
            Method::POST,
            "/entra/mcp",
            Some(ALICE),
            &[("origin", "http://api.contoso.com")],
            403,
            Some("Forbidden: Origin not allowed (see ALLOWED_ORIGINS)"),
        ),
    ];
    for (method, path, token, headers, status, expected) in rows {
        let host = headers
            .iter()
            .find(|(name, _)| *name == "host")
            .map_or(GATEWAY_HOST, |(_, value)| *value);
        let mut request = http()
            .request(method.clone(), format!("{}{path}", server.base))
            .header("host", host);
        for (name, value) in headers.iter().filter(|(name, _)| *name != "host") {
            request = request.header(*name, *value);
        }
        if *method == Method::POST {
            request = request.header("accept", ACCEPT).json(&initialize_body());
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        let row = format!("{method} {path} {headers:?}");
        assert_eq!(r.status().as_u16(), *status, "{row}");
        if *status == 401 {
            assert_eq!(r.headers()["www-authenticate"], challenge.as_str(), "{row}");
        }
        let is_metadata = path.starts_with("/.well-known") && *status == 200;
        let body = r.text().await.unwrap();
        match expected {
            Some(resource) if is_metadata => assert_eq!(
                serde_json::from_str::<Value>(&body).unwrap(),
                metadata_document(resource),
                "{row}"
            ),
            Some(text) => assert_eq!(body, *text, "{row}"),
            None => {}
        }
    }
}

#[tokio::test]
async fn rmcp_clients_work_through_the_prefixed_endpoint() {
    let server = behind_gateway().await;
    let url = format!("{}/entra/mcp", server.base);
    for client in [
        legacy_client(&url, ALICE).await,
        discover_client(&url, ALICE).await,
    ] {
        let who = client
            .call_tool(CallToolRequestParams::new("whoami"))
            .await
            .unwrap();
        assert_eq!(who.structured_content.unwrap()["object_id"], "alice-oid");
        client.cancel().await.unwrap();
    }
}

// ---- Accept ----

/// The `_meta` a 2026-07-28 request carries.
fn current_spec_call() -> Value {
    json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"roll_dice","arguments":{"sides":6},
        "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",
                 "io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},
                 "io.modelcontextprotocol/clientCapabilities":{}}}})
}

#[derive(Debug, Clone, Copy)]
enum Call {
    /// A legacy `initialize` (opens a session in session mode).
    Initialize,
    /// `tools/call` inside a legacy session.
    InSession,
    /// A 2026-07-28 `tools/call` (always stateless).
    CurrentSpec,
}

/// Sends `call` with `accept` (`None`: no header); returns status, content type and body.
async fn send(server: &TestServer, call: Call, accept: Option<&str>) -> (u16, String, String) {
    let mut request = http().post(server.mcp_url()).bearer_auth(ALICE);
    request = match call {
        Call::Initialize => request.json(&initialize_body()),
        Call::InSession => {
            let session = open_session(&server.mcp_url(), ALICE).await;
            request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", "2025-11-25")
                .json(&json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"roll_dice","arguments":{"sides":6}}}))
        }
        Call::CurrentSpec => request
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "roll_dice")
            .json(&current_spec_call()),
    };
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, r.text().await.unwrap())
}

#[tokio::test]
async fn json_only_clients_get_json_sse_clients_get_sse_and_only_excluding_json_is_406() {
    const NOT_ACCEPTABLE: &str = "Not Acceptable: the Accept header must allow application/json (add text/event-stream to receive streamed answers)";
    // (server mode, call, Accept, status, content type, reply id or exact body)
    let sessions = spawn_http(static_verifier(), |_| {}).await;
    let stateless = spawn_http(static_verifier(), |c| c.legacy_sessions = false).await;
    let streaming = spawn_http(static_verifier(), |c| {
        c.legacy_sessions = false;
        c.json_response = false;
    })
    .await;
    let servers = [
        ("sessions", &sessions),
        ("stateless", &stateless),
        ("stateless+sse", &streaming),
    ];
    for (mode, server) in servers {
        for call in [Call::Initialize, Call::InSession, Call::CurrentSpec] {
            if matches!(call, Call::InSession) && mode != "sessions" {
                continue;
            }
            // rmcp's own choice when the client takes both: SSE in a session and for a session's
            // initialize, JSON for stateless one-shot answers unless json_response is off.
            let both = match (mode, call) {
                ("sessions", Call::CurrentSpec) | ("stateless", _) => "application/json",
                _ => "text/event-stream",
            };
            let rows: [(Option<&str>, u16, &str); 11] = [
                (None, 200, "application/json"),
                (Some("*/*"), 200, "application/json"),
                (Some("application/json"), 200, "application/json"),
                (Some("application/*;q=0.8"), 200, "application/json"),
                (Some("application/json, text/event-stream"), 200, both),
                (Some("text/event-stream, */*"), 200, both),
                (
                    Some("application/json, text/event-stream;q=0"),
                    200,
                    "application/json",
                ),
                (Some("text/event-stream"), 406, "text/plain; charset=utf-8"),
                (Some("text/html"), 406, "text/plain; charset=utf-8"),
                (
                    Some("*/*, application/json;q=0"),
                    406,
                    "text/plain; charset=utf-8",
                ),
                (Some("application/json;q=0"), 406, "text/plain; charset=utf-8"),
            ];
            for (accept, status, content_type) in rows {
                let row = format!("{mode} {call:?} Accept: {accept:?}");
                let (got_status, got_type, body) = send(server, call, accept).await;
                assert_eq!(
                    (got_status, got_type.as_str()),
                    (status, content_type),
                    "{row}: {body}"
                );
                match (status, content_type) {
                    (406, _) => assert_eq!(body, NOT_ACCEPTABLE, "{row}"),
                    (_, "application/json") => {
                        let reply: Value = serde_json::from_str(&body).unwrap();
                        assert_eq!(reply["jsonrpc"], "2.0", "{row}");
                        assert!(reply.get("result").is_some(), "{row}: {body}");
                    }
                    _ => assert!(body.contains("data:"), "{row}: {body}"),
                }
            }
        }
    }
}

#[tokio::test]
async fn a_json_only_client_keeps_its_session_and_get_streams_follow_accept() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    // A whole session with `Accept: */*`: the session id comes back on the JSON answer.
    let session = open_session_accepting(&server.mcp_url(), ALICE, "*/*").await;
    let list = http()
        .post(server.mcp_url())
        .header("accept", "*/*")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .bearer_auth(ALICE)
        .json(&json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    assert_eq!(list.headers()["content-type"], "application/json");
    let reply: Value = list.json().await.unwrap();
    assert_eq!(reply["id"], 2);
    assert!(reply["result"]["tools"].as_array().unwrap().len() >= 3);
    // GET opens the server's event stream: any Accept that allows text/event-stream.
    for (accept, status) in [
        (None, 200),
        (Some("*/*"), 200),
        (Some("text/*"), 200),
        (Some("application/json"), 406),
    ] {
        let mut get = http()
            .get(server.mcp_url())
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .bearer_auth(ALICE);
        if let Some(accept) = accept {
            get = get.header("accept", accept);
        }
        let r = get.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "GET Accept: {accept:?}");
        if status == 200 {
            assert_eq!(r.headers()["content-type"], "text/event-stream", "{accept:?}");
        } else {
            assert_eq!(
                r.text().await.unwrap(),
                "Not Acceptable: GET opens a text/event-stream; the Accept header must allow it"
            );
        }
    }
    // Without a token the answer is still the 401 challenge, whatever Accept says.
    let r = http()
        .post(server.mcp_url())
        .header("accept", "text/html")
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

// ---- Entra: issuer and challenges ----

#[tokio::test]
async fn authorization_servers_lists_the_discovered_issuer() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    // (AZURE_TENANT_ID, advertised issuer once discovered)
    let consumer_issuer = fake.issuer(CONSUMER_TENANT_ID);
    let tenant_issuer = fake.issuer(TENANT);
    let rows = [
        ("contoso.example", tenant_issuer.clone()),
        (TENANT, tenant_issuer.clone()),
        ("consumers", consumer_issuer),
        // No single issuer exists (Entra's metadata has a `{tenantid}` template): the authority.
        ("organizations", format!("{}/organizations/v2.0", fake.base)),
        ("common", format!("{}/common/v2.0", fake.base)),
    ];
    for (tenant, expected) in rows {
        let cfg = fake.config(tenant);
        let authority = cfg.authority();
        let verifier = fake.verifier(cfg).await;
        let server = spawn_http(Arc::new(verifier), |c| c.authorization_servers = vec![authority]).await;
        for path in [
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource",
        ] {
            let doc: Value = http()
                .get(format!("{}{path}", server.base))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(doc["authorization_servers"], json!([expected]), "{tenant} {path}");
        }
    }
    // Before discovery (Entra unreachable at start-up) the configured authority stands in, and
    // the discovered issuer replaces it once the keys load.
    fake.set_down(true);
    let cfg = fake.config("contoso.example");
    let authority = cfg.authority();
    let verifier = fake.verifier(cfg).await;
    let server = spawn_http(Arc::new(verifier), |c| {
        c.authorization_servers = vec![authority.clone()]
    })
    .await;
    let metadata = || async {
        http()
            .get(format!(
                "{}/.well-known/oauth-protected-resource/mcp",
                server.base
            ))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["authorization_servers"]
            .clone()
    };
    assert_eq!(metadata().await, json!([authority]));
    fake.set_down(false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while metadata().await != json!([tenant_issuer]) {
        assert!(
            std::time::Instant::now() < deadline,
            "the issuer never replaced the authority"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Token (none: no header), status, `error`, `error_description`, `scope`.
type ChallengeRow<'a> = (Option<String>, u16, Option<&'a str>, String, &'a str);

#[tokio::test]
async fn every_401_and_403_names_the_metadata_and_what_to_request() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let identifier = "https://api.contoso.com/entra/mcp";
    let mut cfg = fake.config(TENANT);
    cfg.identifier_uri = identifier.parse().unwrap();
    let policy = AccessPolicy::scopes(["access_as_user"]).with_app_roles(["Mcp.Invoke"]);
    let verifier = EntraVerifier::new(cfg, policy).unwrap();
    verifier.start().await;
    let server = spawn_http(Arc::new(verifier), |c| {
        c.public_url = url::Url::parse(PUBLIC).unwrap();
        c.allowed_hosts = vec![];
        c.scopes = vec![format!("{identifier}/access_as_user")];
        c.identifier_uri = identifier.parse().ok();
    })
    .await;
    let valid = fake.claims(TENANT);
    let with = |changes: Value| {
        let mut claims = valid.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        mint(&key, &claims)
    };
    let delegated = format!("{identifier}/access_as_user");
    let app_default = format!("{identifier}/.default");
    let expired_at = now() - 7200;
    let expired_text = verifiers::InvalidToken::Expired {
        expired_at: std::time::UNIX_EPOCH + std::time::Duration::from_secs(expired_at),
    }
    .to_string();
    // (token, status, error, error_description, scope)
    let rows: Vec<ChallengeRow> = vec![
        (None, 401, None, String::new(), &delegated),
        (Some(with(json!({"exp": expired_at}))), 401, Some("invalid_token"), expired_text, &delegated),
        (Some(with(json!({"aud": "api://someone-else"}))), 401, Some("invalid_token"),
            format!("the token's audience is api://someone-else, but this server expects {CLIENT_ID} or {identifier}; request a token for this API ({delegated}; an application: {app_default})"), &delegated),
        (Some(with(json!({"scp": "User.Read"}))), 403, Some("insufficient_scope"),
            "the token lacks the required scope(s) access_as_user; request a token for access_as_user".into(), &delegated),
        (Some(with(json!({"scp": null, "roles": ["Other"], "idtyp": "app"}))), 403, Some("insufficient_scope"),
            "the app-only token lacks the required app role(s) Mcp.Invoke; grant them to the calling application".into(), &app_default),
        // Trailing slashes never make an audience mismatch.
        (Some(with(json!({"aud": format!("{identifier}/")}))), 200, None, String::new(), ""),
        (Some(with(json!({"aud": identifier}))), 200, None, String::new(), ""),
    ];
    for (token, status, error, description, scope) in rows {
        let r = post_mcp(
            &format!("{}/entra/mcp", server.base),
            token.as_deref(),
            &initialize_body(),
        )
        .await;
        let row = format!("{status} {error:?} {description}");
        assert_eq!(r.status().as_u16(), status, "{row}");
        if status == 200 {
            continue;
        }
        let mut expected = format!("Bearer resource_metadata=\"{PREFIXED_METADATA}\"");
        if let Some(error) = error {
            expected.push_str(&format!(
                ", error=\"{error}\", error_description=\"{description}\""
            ));
        }
        expected.push_str(&format!(", scope=\"{scope}\""));
        assert_eq!(r.headers()["www-authenticate"], expected.as_str(), "{row}");
    }
}
