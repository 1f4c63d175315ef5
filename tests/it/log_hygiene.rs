//! No token, nor any 20-character piece of one, ever reaches the logs: the real binary at the
//! most verbose level, over HTTP and stdio, with valid, invalid, expired and foreign tokens.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt as _;

use crate::common::*;

const EXE: &str = env!("CARGO_BIN_EXE_mcp-server-entra");

fn assert_no_token_in(log: &str, tokens: &[String]) {
    assert!(!log.is_empty(), "no log captured");
    for token in tokens {
        let bytes = token.as_bytes();
        for window in bytes.windows(20) {
            let piece = std::str::from_utf8(window).unwrap();
            assert!(
                !log.contains(piece),
                "a piece of a token reached the log: {piece}"
            );
        }
    }
}

fn entra_env(cmd: &mut tokio::process::Command, fake: &FakeEntra) {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "trace")
        .env("AZURE_CLIENT_ID", CLIENT_ID)
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_AUTHORITY_HOST", &fake.base)
        .current_dir(std::env::temp_dir());
}

#[tokio::test]
async fn http_logs_at_trace_level_never_contain_a_token() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let valid = mint(&key, &fake.claims(TENANT));
    let mut expired_claims = fake.claims(TENANT);
    expired_claims["exp"] = json!(now() - 3600);
    let expired = mint(&key, &expired_claims);
    let mut graph_claims = fake.claims(TENANT);
    graph_claims["aud"] = json!("https://graph.microsoft.com");
    let graph = mint(&key, &graph_claims);
    let tampered = format!("{}x", &valid[..valid.len() - 1]);
    let tokens = vec![valid.clone(), expired.clone(), graph.clone(), tampered.clone()];

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut cmd = tokio::process::Command::new(EXE);
    entra_env(&mut cmd, &fake);
    cmd.args(["serve", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    for _ in 0..100 {
        if http()
            .get(format!("http://127.0.0.1:{port}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = legacy_client(&url, &valid).await;
    client
        .call_tool(rmcp::model::CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    client.cancel().await.unwrap();
    for token in &tokens[1..] {
        let r = post_mcp(&url, Some(token), &initialize_body()).await;
        assert_eq!(r.status(), 401);
    }
    // A token in the query string is refused, and must not be logged either.
    let r = http()
        .post(format!("{url}?access_token={valid}"))
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("request rejected"), "rejections are logged");
    assert_no_token_in(&log, &tokens);
}

#[tokio::test]
async fn downstream_calls_at_trace_level_never_log_the_incoming_or_downstream_token() {
    use crate::downstream::{Expect, Fakes, ALICE_OID, SECRET};
    let fakes = Fakes::start(Expect::Secret).await;
    let alice = fakes.token_for(ALICE_OID, "Alice Example");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut cmd = tokio::process::Command::new(EXE);
    entra_env(&mut cmd, &fakes.entra);
    cmd.env("AZURE_CLIENT_SECRET", SECRET)
        .env("GRAPH_BASE_URL", &fakes.graph)
        .args(["serve", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    for _ in 0..100 {
        if http()
            .get(format!("http://127.0.0.1:{port}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = legacy_client(&format!("http://127.0.0.1:{port}/mcp"), &alice).await;
    for _ in 0..2 {
        let result = client
            .call_tool(rmcp::model::CallToolRequestParams::new("my_profile"))
            .await
            .unwrap();
        assert_eq!(result.is_error, Some(false), "{result:?}");
    }
    client.cancel().await.unwrap();
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("token request") && log.contains("on_behalf_of"),
        "the exchange is logged: {log}"
    );
    assert!(
        log.contains("client secret"),
        "the secret start-up note is logged"
    );
    let mut tokens = vec![alice, SECRET.to_owned()];
    tokens.extend(fakes.seen.issued.lock().unwrap().keys().cloned());
    assert_eq!(tokens.len(), 3, "one downstream token was issued");
    assert_no_token_in(&log, &tokens);
}

#[tokio::test]
async fn stdio_logs_at_trace_level_never_contain_a_token() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let mut claims = fake.claims(TENANT);
    claims["exp"] = json!(now() - 3600);
    let expired = mint(&key, &claims);
    let mut cmd = tokio::process::Command::new(EXE);
    entra_env(&mut cmd, &fake);
    cmd.arg("stdio")
        .env("MCP_ACCESS_TOKEN", &expired)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().shutdown().await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("expired"), "{log}");
    assert_no_token_in(&log, &[expired]);
}

/// Starts `serve` against `fake` with `LOG_FORMAT=format`; returns the child and the MCP URL.
async fn serve_with_log_format(fake: &FakeEntra, format: &str) -> (tokio::process::Child, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut cmd = tokio::process::Command::new(EXE);
    entra_env(&mut cmd, fake);
    cmd.env("RUST_LOG", "info")
        .env("LOG_FORMAT", format)
        .args(["serve", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap();
    for _ in 0..200 {
        if http()
            .get(format!("http://127.0.0.1:{port}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, format!("http://127.0.0.1:{port}/mcp"))
}

/// `true` for a character that is allowed in an RFC 6750 §3 `error_description`:
/// %x20-21 / %x23-5B / %x5D-7E.
fn rfc6750_char(c: char) -> bool {
    matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')
}

#[tokio::test]
async fn caller_text_cannot_forge_log_lines_or_break_challenges_in_either_log_format() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let forged = "x\u{1b}[2J\n2026-01-01T00:00:00Z  INFO token verified user=admin\r\u{2028}\u{202e}\"\\";
    let claims = fake.claims(TENANT);
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": key.kid});
    let with_claim = |name: &str| {
        let mut c = claims.clone();
        c[name] = json!(forged);
        mint(&key, &c)
    };
    let with_header = |name: &str| {
        let mut h = header.clone();
        h[name] = json!(forged);
        mint_raw(&key, &h, &claims)
    };
    // One row per caller-controlled field that reaches a rejection: the token, and the words
    // the description starts with.
    let rows = [
        (with_claim("aud"), "the token's audience is x\\u{1b}[2J\\u{a}2026"),
        (with_claim("iss"), "the token's issuer is x\\u{1b}[2J\\u{a}2026"),
        (
            with_header("alg"),
            "the token is signed with x\\u{1b}[2J\\u{a}2026",
        ),
        (
            with_header("kid"),
            "the token was signed with key x\\u{1b}[2J\\u{a}2026",
        ),
        (
            {
                let mut h = header.clone();
                h["crit"] = json!([forged]);
                mint_raw(&key, &h, &claims)
            },
            "the token header marks extensions as critical ([\"x\\\\u001b[2J\\\\n2026",
        ),
    ];
    for format in ["human", "json"] {
        let (child, url) = serve_with_log_format(&fake, format).await;
        for (token, description) in &rows {
            let r = http()
                .post(&url)
                .header("accept", ACCEPT)
                .bearer_auth(token)
                .json(&initialize_body())
                .send()
                .await
                .unwrap();
            let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            let text = body["error_description"].as_str().unwrap().to_owned();
            assert_eq!(status, 401, "{format} {description}");
            assert!(text.starts_with(description), "{format}: {text}");
            assert!(!text.chars().any(verifiers::CallerText::escapes), "{text:?}");
            let params = challenge_params(&challenge);
            assert!(
                params["error_description"].chars().all(rfc6750_char),
                "{challenge}"
            );
        }
        let mut child = child;
        child.start_kill().unwrap();
        let out = child.wait_with_output().await.unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            log.matches("request rejected").count() >= rows.len(),
            "{format}: {log}"
        );
        for line in log.lines() {
            assert!(
                !line.starts_with("2026-01-01T00:00:00Z") && !line.contains("\"timestamp\":\"2026-01-01"),
                "{format}: a forged line: {line}"
            );
            if line.contains("token verified user=admin") {
                assert!(
                    line.contains("request rejected") || line.contains("refreshed on demand"),
                    "{format}: forged text outside the line that carries it: {line}"
                );
            }
            assert!(
                !line
                    .chars()
                    .any(|c| c != '\t' && verifiers::CallerText::escapes(c)),
                "{format}: a control character reached the log: {line:?}"
            );
            if format == "json" && line.starts_with('{') {
                serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            }
        }
    }
}
