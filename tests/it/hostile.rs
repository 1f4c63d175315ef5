//! Hostile input, second pass (issue 19): ambiguous requests, tokens in the query in any
//! spelling, and the session cap against every request shape that can open a session.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::common::*;

/// Sends `head` (request line and headers, without the final blank line) and a JSON `body` on
/// a fresh connection; returns the status and the body text.
async fn raw(server: &TestServer, head: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(server.server.local_addr()).await.unwrap();
    let request = format!(
        "{head}\r\nAccept: {ACCEPT}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Until the server closes, or (an event stream that stays open) has been quiet for a second.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn ambiguous_requests_get_400_and_the_target_authority_is_the_checked_host() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let host = server.base.trim_start_matches("http://").to_owned();
    let init = initialize_body().to_string();
    let auth = format!("Authorization: Bearer {ALICE}");
    let differ = "Bad Request: the request target's authority and the Host header differ (RFC 9112 §3.2.2)";
    // (request line and headers, expected status, expected body: exact, or a prefix ending in '…')
    let table: Vec<(String, u16, String)> = vec![
        (format!("POST /mcp HTTP/1.1\r\nHost: {host}\r\n{auth}"), 200, "…".into()),
        (
            format!("POST /mcp HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\n{auth}"),
            400,
            "Bad Request: more than one Host header (RFC 9112 §3.2)".into(),
        ),
        (
            format!("POST /mcp HTTP/1.1\r\nHost: evil.example\r\nHost: {host}\r\n{auth}"),
            400,
            "Bad Request: more than one Host header (RFC 9112 §3.2)".into(),
        ),
        (format!("POST /mcp HTTP/1.1\r\n{auth}"), 400, "Bad Request: no Host header (RFC 9112 §3.2)".into()),
        (format!("POST http://evil.example/mcp HTTP/1.1\r\nHost: {host}\r\n{auth}"), 400, differ.into()),
        (
            format!("POST http://evil.example/mcp HTTP/1.1\r\nHost: evil.example\r\n{auth}"),
            403,
            "Forbidden: Host not allowed (set ALLOWED_HOSTS or PUBLIC_URL to the name clients use)".into(),
        ),
        (format!("POST http://{host}/mcp HTTP/1.1\r\nHost: {host}\r\n{auth}"), 200, "…".into()),
        (
            format!("POST /mcp HTTP/1.1\r\nHost: {host}\r\nOrigin: http://localhost\r\nOrigin: https://evil.example\r\n{auth}"),
            400,
            "Bad Request: more than one origin header; send it once".into(),
        ),
        (
            format!("POST /mcp HTTP/1.1\r\nHost: {host}\r\nMcp-Protocol-Version: 2025-11-25\r\nMcp-Protocol-Version: 2025-06-18\r\n{auth}"),
            400,
            "Bad Request: more than one mcp-protocol-version header; send it once".into(),
        ),
        (
            format!("POST /mcp HTTP/1.1\r\nHost: {host}\r\nMcp-Session-Id: a\r\nMcp-Session-Id: b\r\n{auth}"),
            400,
            "Bad Request: more than one mcp-session-id header; send it once".into(),
        ),
        (
            format!("GET /health HTTP/1.1\r\nHost: {host}\r\nHost: evil.example"),
            400,
            "Bad Request: more than one Host header (RFC 9112 §3.2)".into(),
        ),
    ];
    for (head, status, body) in &table {
        let got = raw(&server, head, &init).await;
        let ok = got.0 == *status
            && match body.strip_suffix('…') {
                Some(prefix) => got.1.starts_with(prefix),
                None => got.1 == *body,
            };
        assert!(ok, "{head:?}: expected {status} {body:?}, got {got:?}");
    }
}

#[tokio::test]
async fn an_access_token_in_the_query_is_refused_in_every_spelling() {
    let server = spawn_http(static_verifier(), |_| {}).await;
    let refused = "access tokens in the URL query are not accepted; send `Authorization: Bearer <token>`";
    let table = [
        ("access_token=x", 400),
        ("ACCESS_TOKEN=x", 400),
        ("access%5Ftoken=x", 400),
        ("access%5ftoken=x", 400),
        ("%61ccess_token=x", 400),
        ("%41CCESS%5FTOKEN=x", 400),
        ("a=1;access_token=x", 400),
        // Names a framework reads as `access_token`: arrays, NUL-terminated, PHP's mangling.
        ("access_token[]=x", 400),
        ("access_token%5B0%5D=x", 400),
        ("access_token%00=x", 400),
        ("access_token%00junk=x", 400),
        ("access.token=x", 400),
        ("access+token=x", 400),
        ("+access_token=x", 400),
        ("access_tokens=x", 200),
        ("access_token_hint=x", 200),
        ("access%255Ftoken=x", 200),
    ];
    for (query, status) in table {
        let r = http()
            .post(format!("{}?{query}", server.mcp_url()))
            .header("accept", ACCEPT)
            .bearer_auth(ALICE)
            .json(&initialize_body())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{query}");
        if status == 400 {
            let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
            assert_eq!(
                challenge_params(&challenge)["error"],
                "invalid_request",
                "{query}"
            );
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error_description"], refused, "{query}");
        }
    }
}

#[tokio::test]
async fn the_session_cap_holds_for_every_initialize_shape_and_under_concurrency() {
    let server = spawn_http(static_verifier(), |c| c.max_sessions = 3).await;
    let initialize = |extra: Option<(&'static str, &'static str)>| {
        let url = server.mcp_url();
        async move {
            let mut req = http()
                .post(url)
                .header("accept", ACCEPT)
                .bearer_auth(ALICE)
                .json(&initialize_body());
            if let Some((name, value)) = extra {
                req = req.header(name, value);
            }
            req.send().await.unwrap()
        }
    };
    // Fill the cap with the shape that used to slip past it, all at once.
    let shapes = [
        None,
        Some(("mcp-method", "initialize")),
        Some(("mcp-protocol-version", "2025-11-25")),
    ];
    let answers = futures::future::join_all((0..24).map(|i| initialize(shapes[i % 3]))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [vec![200; 3], vec![503; 21]].concat());
    for shape in shapes {
        let refused = initialize(shape).await;
        assert_eq!(refused.status(), 503, "{shape:?}");
        assert_eq!(refused.headers()["retry-after"], "5", "{shape:?}");
        assert_eq!(
            refused.text().await.unwrap(),
            "Service Unavailable: 3 sessions are open, the most this server keeps; retry later or use the 2026-07-28 protocol, which needs no session",
            "{shape:?}"
        );
    }
    assert_eq!(server.server.sessions().len(), 3);
    // The 2026-07-28 protocol needs no session, so it is not limited.
    let discover = http()
        .post(server.mcp_url())
        .header("accept", ACCEPT)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "server/discover")
        .bearer_auth(ALICE)
        .json(&json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}))
        .send()
        .await
        .unwrap();
    assert_ne!(discover.status(), 503);
}
