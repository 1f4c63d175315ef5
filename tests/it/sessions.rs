//! Long-lived legacy sessions as clients in the field use them: priming events only for clients
//! that know them, no busy session cut by the idle timer, a gone session always `404`, an answer
//! resumable after the call finished, list cursors, and early refusals that never close a
//! connection silently.

use std::time::{Duration, Instant};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use transports::http::{AccessControl, HttpConfig};

use crate::common::*;

/// A handler whose one tool sleeps as long as it is asked to.
#[derive(Clone)]
struct Sleepy {
    tool_router: ToolRouter<Self>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct Nap {
    /// Milliseconds.
    ms: u64,
}

#[tool_router]
impl Sleepy {
    #[tool(description = "Sleeps `ms` milliseconds, then answers")]
    async fn nap(
        &self,
        Parameters(Nap { ms }): Parameters<Nap>,
    ) -> Result<CallToolResult, rmcp::model::ErrorData> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(CallToolResult::success(vec![ContentBlock::text("rested")]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Sleepy {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

async fn sleepy_server(tweak: impl FnOnce(&mut HttpConfig)) -> (String, transports::http::RunningServer) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = HttpConfig::new(url::Url::parse(&base).unwrap());
    tweak(&mut config);
    let running = transports::http::serve(listener, config, AccessControl::new(static_verifier()), || {
        Sleepy {
            tool_router: Sleepy::tool_router(),
        }
    })
    .unwrap();
    (format!("{base}/mcp"), running)
}

/// `initialize` at `version`, then `notifications/initialized`; the session id and the raw
/// body of the `initialize` answer.
async fn open_at(url: &str, version: &str) -> (String, String) {
    let body = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":version,"capabilities":{},"clientInfo":{"name":"raw","version":"1"}}});
    let r = post(url, None, version, &body).await;
    assert_eq!(r.status(), 200);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let text = r.text().await.unwrap();
    let r = post(
        url,
        Some(&session),
        version,
        &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    (session, text)
}

async fn post(url: &str, session: Option<&str>, version: &str, body: &Value) -> reqwest::Response {
    let mut request = http()
        .post(url)
        .header("accept", ACCEPT)
        .header("mcp-protocol-version", version)
        .bearer_auth(ALICE)
        .json(body);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request.send().await.unwrap()
}

fn nap(id: u64, ms: u64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"nap","arguments":{"ms":ms}}})
}

/// The SSE events of `text`: (id, data) per event.
fn events(text: &str) -> Vec<(Option<String>, String)> {
    text.split("\n\n")
        .filter(|e| e.lines().any(|l| l.starts_with("data:")))
        .map(|e| {
            let field = |name: &str| {
                e.lines()
                    .filter_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim_start_matches(' ').to_owned())
                    .collect::<Vec<_>>()
            };
            (field("id:").pop(), field("data:").join("\n"))
        })
        .collect()
}

/// Clients older than 2025-11-25 read every SSE event as a JSON-RPC message: they get none with
/// empty data. 2025-11-25 clients get the priming event they resume from.
#[tokio::test]
async fn priming_events_go_only_to_sessions_that_negotiated_2025_11_25_or_later() {
    let (url, _server) = sleepy_server(|_| {}).await;
    // (negotiated version, priming expected)
    for (version, priming) in [("2025-03-26", false), ("2025-06-18", false), ("2025-11-25", true)] {
        let (session, init) = open_at(&url, version).await;
        let call = post(&url, Some(&session), version, &nap(2, 1))
            .await
            .text()
            .await
            .unwrap();
        for (what, text) in [("initialize", init), ("tools/call", call)] {
            let events = events(&text);
            let empty = events.iter().filter(|(_, data)| data.is_empty()).count();
            assert_eq!(empty > 0, priming, "{version} {what}: {text}");
            let messages: Vec<Value> = events
                .iter()
                .filter(|(_, d)| !d.is_empty())
                .map(|(_, d)| serde_json::from_str(d).unwrap())
                .collect();
            assert!(
                messages.iter().any(|m| m.get("result").is_some()),
                "{version} {what}: {text}"
            );
        }
    }
}

async fn status_of_ping(url: &str, session: &str) -> u16 {
    post(
        url,
        Some(session),
        "2025-11-25",
        &json!({"jsonrpc":"2.0","id":9,"method":"ping"}),
    )
    .await
    .status()
    .as_u16()
}

/// A session is idle only with nothing in flight: a call longer than the idle time finishes, an
/// open GET stream keeps its session; once idle it is gone, and its id gets 404 at once, never
/// rmcp's 500.
#[tokio::test]
async fn the_idle_timer_never_cuts_a_busy_session_and_a_gone_one_is_404() {
    let idle = Duration::from_secs(1);
    let (url, server) = sleepy_server(|c| c.session_idle_timeout = idle).await;
    let (session, _) = open_at(&url, "2025-11-25").await;
    // A call three times the idle time: its answer arrives.
    let answer = post(&url, Some(&session), "2025-11-25", &nap(2, 3000))
        .await
        .text()
        .await
        .unwrap();
    assert!(answer.contains("rested"), "{answer}");
    // A GET stream open for three times the idle time keeps the session.
    let stream = http()
        .get(&url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    tokio::time::sleep(idle * 3).await;
    assert_eq!(status_of_ping(&url, &session).await, 200);
    drop(stream);
    // Idle now (no request may touch it, or it would not be): gone within the idle time plus
    // the reaper's period, and 404 from then on, never 500.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.sessions().is_empty() {
        assert!(Instant::now() < deadline, "the idle session never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..20 {
        assert_eq!(status_of_ping(&url, &session).await, 404);
    }
}

/// The connection drops after the priming event; the call finishes; the client resumes with
/// `Last-Event-ID` and gets the answer. An id the server never issued is refused, not answered
/// with an empty stream to re-poll for ever.
#[tokio::test]
async fn a_finished_answer_can_be_resumed_and_an_unknown_event_id_is_refused() {
    let (url, server) = sleepy_server(|_| {}).await;
    let (session, _) = open_at(&url, "2025-11-25").await;
    // Raw HTTP, so the connection can be dropped right after the first event.
    let body = serde_json::to_string(&nap(7, 300)).unwrap();
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ALICE}\r\nAccept: {ACCEPT}\r\nContent-Type: application/json\r\nMcp-Session-Id: {session}\r\nMcp-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\n\r\n{body}",
        server.local_addr(),
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while events(seen.split_once("\r\n\r\n").map_or("", |(_, b)| b)).is_empty() {
        let n = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before the priming event: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let (_, body) = seen.split_once("\r\n\r\n").unwrap();
    let first = events(body).remove(0);
    assert_eq!(first.1, "", "the first event is the priming event: {body}");
    let last_event_id = first.0.expect("the priming event has an id");
    drop(tcp);
    let resume = |id: String| {
        http()
            .get(&url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .header("last-event-id", id)
            .bearer_auth(ALICE)
            .send()
    };
    // Until the call has finished, a resume replays what there is so far; then the answer.
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let r = resume(last_event_id.clone()).await.unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        if let Some((_, data)) = events(&text).into_iter().find(|(_, d)| d.contains("\"id\":7")) {
            break data;
        }
        assert!(
            Instant::now() < deadline,
            "the answer never became resumable: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["result"]["content"][0]["text"], "rested");
    // An id this server never issued, or one of a stream it no longer keeps: refused.
    for id in ["not-an-id", "ffffffffffffffffffffffffffffffff"] {
        let r = resume(id.to_owned()).await.unwrap();
        assert_eq!(r.status(), 400, "{id}");
        assert!(r.text().await.unwrap().contains("cannot be resumed"), "{id}");
    }
    // The GET stream's own priming id ("0"): its reconnect is a live stream again.
    let get_again = resume("0".to_owned()).await.unwrap();
    assert_eq!(get_again.status(), 200);
    assert!(get_again.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    drop(get_again);
    // Another principal cannot resume this session's stream (the session is not theirs).
    let other = http()
        .get(&url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", &last_event_id)
        .bearer_auth(BOB)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

/// This server issues no cursor, so any cursor is one it never issued: -32602, in every list.
#[tokio::test]
async fn a_cursor_the_server_never_issued_is_invalid_params() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let session = open_session(&server.mcp_url(), ALICE).await;
    for method in ["tools/list", "resources/list", "resources/templates/list"] {
        for (cursor, error) in [(None, false), (Some("bogus"), true), (Some(""), true)] {
            let mut params = json!({});
            if let Some(cursor) = cursor {
                params["cursor"] = json!(cursor);
            }
            let body = json!({"jsonrpc":"2.0","id":3,"method":method,"params":params});
            let text = post(&server.mcp_url(), Some(&session), "2025-11-25", &body)
                .await
                .text()
                .await
                .unwrap();
            let reply: Value = events(&text)
                .into_iter()
                .filter(|(_, d)| !d.is_empty())
                .map(|(_, d)| serde_json::from_str(&d).unwrap())
                .next_back()
                .unwrap();
            assert_eq!(
                reply["error"]["code"] == -32602,
                error,
                "{method} {cursor:?}: {reply}"
            );
            assert_eq!(
                reply.get("result").is_some(),
                !error,
                "{method} {cursor:?}: {reply}"
            );
        }
    }
}

/// Answered before its body was read (an expired token is refused this way, then refreshed and
/// retried on the same connection by every client library): the answer says `Connection: close`,
/// so no client races a silent close. A request whose body was read keeps its connection.
#[tokio::test]
async fn an_early_answer_says_connection_close_and_no_keep_alive_request_is_lost() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let body = serde_json::to_string(&initialize_body()).unwrap();
    // (token, expected status, connection closed)
    for (token, status, closes) in [("not-a-valid-token", 401, true), (ALICE, 200, false)] {
        let mut tcp = tokio::net::TcpStream::connect(server.server.local_addr())
            .await
            .unwrap();
        let request = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            server.server.local_addr(),
            body.len()
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tokio::time::timeout(Duration::from_secs(30), tcp.read_exact(&mut byte))
                .await
                .unwrap()
                .unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with(&format!("http/1.1 {status}")), "{head}");
        assert_eq!(head.contains("connection: close"), closes, "{head}");
    }
    // 500 keep-alive POSTs refused for their token, one client: every one gets its 401.
    let client = http();
    for _ in 0..500 {
        let r = client
            .post(server.mcp_url())
            .header("accept", ACCEPT)
            .bearer_auth("expired-or-bad")
            .body(body.clone())
            .send()
            .await
            .expect("no request is lost to a silent close");
        assert_eq!(r.status(), 401);
    }
}

/// With no `PUBLIC_URL`, a client that connected to `127.0.0.1` (or `[::1]`, or `localhost`) is
/// answered with URLs of that host, every one of them self-consistent (RFC 9728 §3.3); with
/// `PUBLIC_URL` set, nothing changes.
#[tokio::test]
async fn a_default_public_url_describes_the_loopback_host_the_client_used() {
    for public_url_is_default in [true, false] {
        let server = spawn_http(static_verifier(), |c| {
            c.public_url_is_default = public_url_is_default
        })
        .await;
        let port = server.server.local_addr().port();
        for host in ["localhost", "127.0.0.1", "[::1]"] {
            let authority = format!("{host}:{port}");
            // The URL the configured PUBLIC_URL names (127.0.0.1 in these tests), or the host used.
            let described = if public_url_is_default {
                authority.clone()
            } else {
                format!("127.0.0.1:{port}")
            };
            let r = http()
                .post(server.mcp_url())
                .header("host", &authority)
                .header("accept", ACCEPT)
                .json(&initialize_body())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{authority}");
            let challenge = challenge_params(r.headers()["www-authenticate"].to_str().unwrap());
            let metadata_url = format!("http://{described}/.well-known/oauth-protected-resource/mcp");
            assert_eq!(challenge["resource_metadata"], metadata_url, "{authority}");
            let document: Value = http()
                .get(format!(
                    "{}/.well-known/oauth-protected-resource/mcp",
                    server.base
                ))
                .header("host", &authority)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                document["resource"],
                format!("http://{described}/mcp"),
                "{authority}"
            );
        }
    }
}
