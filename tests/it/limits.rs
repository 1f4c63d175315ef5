//! Resource limits and failure containment of the HTTP transport.

use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::common::*;

async fn initialize(server: &TestServer, token: &str) -> reqwest::Response {
    post_mcp(&server.mcp_url(), Some(token), &initialize_body()).await
}

#[tokio::test]
async fn past_max_sessions_new_sessions_get_503_and_stateless_calls_still_work() {
    let server = spawn_http(static_verifier(), |c| c.max_sessions = 2).await;
    assert_eq!(initialize(&server, ALICE).await.status(), 200);
    assert_eq!(initialize(&server, BOB).await.status(), 200);
    let refused = initialize(&server, ALICE).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    assert!(refused.text().await.unwrap().contains("2 sessions are open"));
    // The 2026-07-28 protocol needs no session, so it is not limited.
    let client = discover_client(&server.mcp_url(), ALICE).await;
    client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
}

#[tokio::test]
async fn idle_sessions_expire() {
    let server = spawn_http(static_verifier(), |c| {
        c.session_idle_timeout = Duration::from_millis(500)
    })
    .await;
    let r = initialize(&server, ALICE).await;
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    // Expired when its binding is gone (no request may touch the session meanwhile, or it would
    // not be idle); waited for, not guessed.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !server.server.sessions().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle session never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = http()
        .post(server.mcp_url())
        .header("accept", ACCEPT)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .bearer_auth(ALICE)
        .json(&json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        server.server.sessions().len(),
        0,
        "the binding of an expired session is dropped"
    );
}

/// A request whose first bytes reached the server before shutdown began is read and answered,
/// never reset (a proxy cannot retry a POST it already sent: it would answer 502).
#[tokio::test]
async fn a_request_half_sent_when_shutdown_begins_is_answered() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let addr = server.server.local_addr();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAccept: {ACCEPT}\r\n").as_bytes())
        .await
        .unwrap();
    let stop = server.server.shutdown_token();
    stop.cancel();
    // Shutdown has begun once the listener is gone (bounded: 200 tries).
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_err() {
            break;
        }
        tokio::task::yield_now().await;
    }
    stream
        .write_all(b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut answer = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer)).await;
    assert!(matches!(read, Ok(Ok(_))), "{read:?}");
    assert!(
        answer.starts_with("HTTP/1.1 401"),
        "the request was answered: {answer:?}"
    );
}

#[tokio::test]
async fn a_slow_client_that_never_finishes_its_headers_is_disconnected() {
    let server = spawn_http(static_verifier(), |c| {
        c.header_read_timeout = Duration::from_millis(500)
    })
    .await;
    let mut stream = TcpStream::connect(server.server.local_addr()).await.unwrap();
    stream
        .write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("server closed the connection in time");
    // Closed (0 bytes) or answered with 408 and closed: either way the slot is freed.
    let text = String::from_utf8_lossy(&buf[..read.unwrap_or(0)]).to_string();
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn oversized_or_too_many_headers_are_refused() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let huge = "x".repeat(100 * 1024);
    let r = http()
        .get(format!("{}/health", server.base))
        .header("x-huge", huge)
        .send()
        .await;
    assert!(
        r.map(|r| r.status() == 431).unwrap_or(true),
        "a 100 KiB header must be refused"
    );
    let mut req = http().get(format!("{}/health", server.base));
    for i in 0..150 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let r = req.send().await;
    assert!(
        r.map(|r| r.status() == 431).unwrap_or(true),
        "150 headers must be refused"
    );
    // And the server still serves.
    assert_eq!(
        http()
            .get(format!("{}/health", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn connections_past_the_limit_wait_for_a_free_slot() {
    let server = spawn_http(static_verifier(), |c| {
        c.max_connections = 1;
        c.header_read_timeout = Duration::from_millis(600);
    })
    .await;
    // Hold the only slot with a connection that sends nothing.
    let idle = TcpStream::connect(server.server.local_addr()).await.unwrap();
    let started = std::time::Instant::now();
    let r = http()
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Served only once the idle connection timed out and freed its slot.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}

/// A handler whose tool panics.
#[derive(Clone)]
struct Panicky {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Panicky {
    #[tool(description = "Panics")]
    async fn boom(&self) -> Result<CallToolResult, rmcp::model::ErrorData> {
        panic!("a bug in a tool");
    }

    #[tool(description = "Answers")]
    async fn fine(&self) -> Result<CallToolResult, rmcp::model::ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text("still here")]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Panicky {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::test]
async fn a_panic_in_a_tool_never_kills_the_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (base, _running) = spawn_handler(listener, || Panicky {
        tool_router: Panicky::tool_router(),
    });
    let url = format!("{base}/mcp");
    for client in [
        discover_client(&url, ALICE).await,
        legacy_client(&url, ALICE).await,
    ] {
        let boom = tokio::time::timeout(
            Duration::from_secs(2),
            client.call_tool(CallToolRequestParams::new("boom")),
        )
        .await;
        assert!(!matches!(boom, Ok(Ok(_))), "a panicking tool cannot succeed");
    }
    let client = discover_client(&url, ALICE).await;
    let fine = client
        .call_tool(CallToolRequestParams::new("fine"))
        .await
        .unwrap();
    assert_eq!(fine.content[0].as_text().unwrap().text, "still here");
    assert_eq!(
        http()
            .get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
