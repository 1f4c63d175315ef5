//! Trust boundaries: where settings come from, how long a peer may hold a connection, and how
//! much one caller may hold.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::ServiceExt as _;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::common::*;

const EXE: &str = env!("CARGO_BIN_EXE_mcp-server-entra");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-entra-trust-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `mcp-server-entra <args>` in `dir` with only PATH and `vars` in its environment.
fn binary(dir: &Path, args: &[&str], vars: &[(&str, String)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(EXE);
    cmd.args(args).current_dir(dir).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
}

/// A repository a desktop host opened, with a `.env` in it and in the folder the server starts
/// in: every variable that once steered the server (a token command, another user's token, an
/// authority, a Graph URL, PATH). None of it may change anything.
#[tokio::test]
async fn a_planted_env_file_in_the_working_directory_or_a_parent_changes_nothing() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let repo = scratch("planted");
    let sub = repo.join("sub");
    std::fs::create_dir_all(repo.join("bin")).unwrap();
    std::fs::create_dir_all(&sub).unwrap();
    let pwned = repo.join("pwned");
    write_script(
        &repo.join("evil.sh"),
        &format!("touch {}\necho x", pwned.display()),
    );
    let mut mallory = fake.claims(TENANT);
    mallory["name"] = json!("Mallory");
    mallory["oid"] = json!("00000000-0000-0000-0000-00000000bad1");
    let planted = format!(
        "MCP_ACCESS_TOKEN_COMMAND=sh {evil}\nMCP_ACCESS_TOKEN={token}\nAZURE_AUTHORITY_HOST=http://127.0.0.1:9\nGRAPH_BASE_URL=http://127.0.0.1:9\nPATH={bin}\nAZURE_CLIENT_ID=22222222-2222-2222-2222-222222222222\n",
        evil = repo.join("evil.sh").display(),
        token = mint(&key, &mallory),
        bin = repo.join("bin").display(),
    );
    std::fs::write(repo.join(".env"), &planted).unwrap();
    std::fs::write(sub.join(".env"), &planted).unwrap();

    // The user's own host configuration: its token command and its tenant.
    let mut alice = fake.claims(TENANT);
    alice["name"] = json!("Alice");
    std::fs::write(repo.join("alice.tok"), mint(&key, &alice)).unwrap();
    let vars = vec![
        ("AZURE_CLIENT_ID", CLIENT_ID.to_owned()),
        ("AZURE_TENANT_ID", TENANT.to_owned()),
        ("AZURE_AUTHORITY_HOST", fake.base.clone()),
        (
            "MCP_ACCESS_TOKEN_COMMAND",
            format!("cat {}", repo.join("alice.tok").display()),
        ),
    ];
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(binary(&sub, &["stdio"], &vars))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = ().serve(transport).await.unwrap();
    let me = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap()
        .structured_content
        .unwrap();
    assert_eq!(me["name"], "Alice", "{me}");
    client.cancel().await.unwrap();
    assert!(!pwned.exists(), "the planted token command ran");
}

/// `--env-file` is the one way to read an env file; it holds only settings, and start-up says
/// which files it read.
#[tokio::test]
async fn an_env_file_is_read_only_when_named_and_holds_only_settings() {
    let dir = scratch("envfile");
    // (file content, exit code, words on stderr)
    let rows: [(&str, i32, &[&str]); 4] = [
        // Read: its bad value is named as being in the file, and start-up stops.
        ("PORT=http\n", 2, &["PORT in ", "must be a port number"]),
        // A name that is no setting stops start-up, with the closest setting named.
        (
            "PATH=/tmp/evil\n",
            2,
            &["`PATH` in the env file", "is not a setting"],
        ),
        (
            "AZURE_REQUIRED_SCOPE=x\n",
            2,
            &["did you mean `AZURE_REQUIRED_SCOPES`?"],
        ),
        // Never echoes a line that does not parse (it may hold a secret).
        ("SECRET-LINE value\n", 2, &["does not read as NAME=value"]),
    ];
    for (content, code, words) in rows {
        let file = dir.join("settings.env");
        std::fs::write(&file, content).unwrap();
        let out = binary(
            &dir,
            &["serve", "--dev", "--env-file", file.to_str().unwrap()],
            &[],
        )
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{content}: {err}");
        for word in words {
            assert!(err.contains(word), "{content}: {err}");
        }
        assert!(!err.contains("SECRET-LINE"), "{err}");
    }
    // The same bad value in a .env beside the server is not read at all: it starts.
    std::fs::write(dir.join(".env"), "PORT=http\nMCP_DEV_TOKEN=planted\n").unwrap();
    let mut server = binary(
        &dir,
        &["serve", "--dev", "--port", "0"],
        &[("RUST_LOG", "info".into())],
    )
    .stdin(Stdio::null())
    .stderr(Stdio::piped())
    .kill_on_drop(true)
    .spawn()
    .unwrap();
    let mut stderr = server.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.contains("serving MCP over streamable HTTP") && Instant::now() < deadline {
        let n = tokio::time::timeout(Duration::from_secs(60), stderr.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the server exited: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("no settings file read"), "{seen}");
    assert!(!seen.contains("planted"), "{seen}");
    server.kill().await.unwrap();
}

/// The token command gets what a credential helper needs, and none of the server's secrets.
#[tokio::test]
async fn the_token_command_inherits_only_what_a_credential_helper_needs() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let dir = scratch("childenv");
    std::fs::write(dir.join("token"), mint(&key, &fake.claims(TENANT))).unwrap();
    write_script(&dir.join("helper.sh"), "env > seen-env\ncat token");
    let vars = vec![
        ("AZURE_CLIENT_ID", CLIENT_ID.to_owned()),
        ("AZURE_TENANT_ID", TENANT.to_owned()),
        ("AZURE_AUTHORITY_HOST", fake.base.clone()),
        (
            "MCP_ACCESS_TOKEN_COMMAND",
            format!("sh {}", dir.join("helper.sh").display()),
        ),
        ("AZURE_CLIENT_SECRET", "server-secret-value".to_owned()),
        ("IDENTITY_HEADER", "identity-header-value".to_owned()),
        ("HOME", dir.display().to_string()),
        ("HTTPS_PROXY", "http://proxy.example:3128".to_owned()),
    ];
    // The token is fetched (and verified) at start-up; with no client on stdin the server
    // then stops.
    let out = binary(&dir, &["stdio"], &vars)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(dir.join("seen-env").exists(), "the command did not run: {stderr}");
    let seen = std::fs::read_to_string(dir.join("seen-env")).unwrap();
    for kept in ["PATH=", "HOME=", "HTTPS_PROXY="] {
        assert!(
            seen.lines().any(|l| l.starts_with(kept)),
            "{kept} missing:\n{seen}"
        );
    }
    for withheld in [
        "server-secret-value",
        "identity-header-value",
        "AZURE_CLIENT_ID",
        "AZURE_AUTHORITY_HOST",
    ] {
        assert!(!seen.contains(withheld), "{withheld} leaked:\n{seen}");
    }
}

/// Reads from `stream` until the peer closes it (EOF or reset), at most `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// The HTTP/2 client preface and an empty SETTINGS frame: 33 bytes.
const H2C_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// 2,000 peers that each send the HTTP/2 preface and then nothing: /health still answers at
/// once, and every idle connection is closed by the idle timer.
#[tokio::test]
async fn idle_h2c_connections_are_closed_and_never_starve_the_server() {
    let idle = Duration::from_secs(2);
    let server = spawn_http(static_verifier(), |c| {
        c.connection_idle_timeout = idle;
        c.header_read_timeout = Duration::from_secs(2);
    })
    .await;
    let addr = server.server.local_addr();
    let mut peers = Vec::new();
    for _ in 0..2000 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(H2C_PREFACE).await.unwrap();
        peers.push(stream);
    }
    let opened = Instant::now();
    // Each connection is being served: the server's own SETTINGS frame (type 4) arrives.
    for stream in peers.iter_mut() {
        let mut header = [0u8; 9];
        tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut header))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(header[3], 4, "the first frame is SETTINGS");
    }
    let health = tokio::time::timeout(
        Duration::from_secs(1),
        http().get(format!("{}/health", server.base)).send(),
    )
    .await
    .expect("/health answered within 1 s beside 2,000 idle connections")
    .unwrap();
    assert_eq!(health.status(), 200);
    // Closed by the idle timer: within the idle time plus the grace, with room for a busy machine.
    let bound = idle + Duration::from_secs(2) + Duration::from_secs(30);
    for stream in peers.iter_mut() {
        assert!(closed_within(stream, bound.saturating_sub(opened.elapsed())).await);
    }
    assert!(opened.elapsed() >= idle, "closed before the idle time");
}

/// Every phase of a connection is bounded: a body that never arrives, a keep-alive connection
/// that sends no second request, a connection that sends nothing.
#[tokio::test]
async fn every_phase_of_a_connection_is_bounded_in_time() {
    let server = spawn_http(static_verifier(), |c| {
        c.connection_idle_timeout = Duration::from_secs(1);
        c.request_body_timeout = Duration::from_secs(1);
        c.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = server.server.local_addr();
    let bound = Duration::from_secs(30);
    let body = serde_json::to_string(&initialize_body()).unwrap();
    // (what the peer sends, expected status of an answer before the close, if any)
    let rows: [(&str, String, Option<u16>); 3] = [
        (
            "headers with a valid token, then a tenth of the body, then nothing",
            format!(
                "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ALICE}\r\nAccept: {ACCEPT}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                body.len(),
                &body[..body.len() / 10]
            ),
            Some(408),
        ),
        (
            "one keep-alive request, then nothing",
            format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
            Some(200),
        ),
        ("nothing at all", String::new(), None),
    ];
    for (what, sent, status) in rows {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(sent.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(bound, stream.read_to_end(&mut answer)).await;
        assert!(closed.is_ok(), "{what}: still open after {bound:?}");
        let answer = String::from_utf8_lossy(&answer);
        match status {
            Some(status) => assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")),
                "{what}: {answer}"
            ),
            None => assert!(answer.is_empty(), "{what}: {answer}"),
        }
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{what}: closed too early"
        );
    }
}

async fn session_status(url: &str, token: &str, session: &str) -> u16 {
    http()
        .post(url)
        .header("accept", ACCEPT)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .bearer_auth(token)
        .json(&json!({"jsonrpc":"2.0","id":7,"method":"ping"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A GET event stream on `session`, held open until dropped.
async fn event_stream(url: &str, token: &str, session: &str) -> reqwest::Response {
    let r = http()
        .get(url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r
}

/// One caller cannot take every session or every stream: its own least recently used idle
/// session makes room for its next one, and its requests in flight are capped, while another
/// caller is served.
#[tokio::test]
async fn one_principal_cannot_hold_every_session_or_stream() {
    let server = spawn_http(static_verifier(), |c| {
        c.max_sessions_per_principal = 2;
        c.max_streams_per_principal = 3;
    })
    .await;
    let url = server.mcp_url();
    let s1 = open_session(&url, ALICE).await;
    let s2 = open_session(&url, ALICE).await;
    let s3 = open_session(&url, ALICE).await;
    // (session, expected status of a ping)
    for (session, status) in [(&s1, 404), (&s2, 200), (&s3, 200)] {
        assert_eq!(session_status(&url, ALICE, session).await, status, "{session}");
    }
    // Both remaining sessions busy (an open GET stream each): a third is refused, not evicted.
    let _g2 = event_stream(&url, ALICE, &s2).await;
    let g3 = event_stream(&url, ALICE, &s3).await;
    let refused = post_mcp(&url, Some(ALICE), &initialize_body()).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    // Another caller is not affected.
    let _bob = open_session(&url, BOB).await;
    drop(g3);
    // Once s3's stream is gone, s3 is idle again and makes room for a new session.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = post_mcp(&url, Some(ALICE), &initialize_body()).await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(Instant::now() < deadline, "s3 never became idle");
        tokio::task::yield_now().await;
    }
    assert_eq!(session_status(&url, ALICE, &s3).await, 404);
}

/// Past `MAX_STREAMS_PER_PRINCIPAL` requests in flight, the caller gets 429 with Retry-After.
#[tokio::test]
async fn requests_in_flight_per_principal_are_capped_with_429() {
    let server = spawn_http(static_verifier(), |c| c.max_streams_per_principal = 1).await;
    let url = server.mcp_url();
    let session = open_session(&url, ALICE).await;
    let stream = event_stream(&url, ALICE, &session).await;
    let refused = post_mcp(
        &url,
        Some(ALICE),
        &json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
    )
    .await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("MAX_STREAMS_PER_PRINCIPAL"));
    // Bob has his own slots.
    let bob = open_session(&url, BOB).await;
    assert!(!bob.is_empty());
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(30);
    while session_status(&url, ALICE, &session).await == 429 {
        assert!(Instant::now() < deadline, "the stream's slot was never released");
        tokio::task::yield_now().await;
    }
}
