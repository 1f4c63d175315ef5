//! The real binary over stdio, driven by rmcp's child-process client.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt as _;
use serde_json::{json, Value};

use crate::common::*;

const EXE: &str = env!("CARGO_BIN_EXE_mcp-server-entra");

/// A scratch directory (the child's working directory, so no `.env` of the developer leaks in).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-entra-stdio-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `mcp-server-entra stdio` with a clean environment plus `vars`.
fn command(dir: &Path, args: &[&str], vars: &[(&str, String)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(EXE);
    cmd.arg("stdio").args(args).current_dir(dir).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

fn entra_vars(fake: &FakeEntra) -> Vec<(&'static str, String)> {
    vec![
        ("AZURE_CLIENT_ID", CLIENT_ID.into()),
        ("AZURE_TENANT_ID", TENANT.into()),
        ("AZURE_AUTHORITY_HOST", fake.base.clone()),
        ("AZURE_CLOCK_LEEWAY_SECS", "0".into()),
    ]
}

async fn spawn_client(cmd: tokio::process::Command) -> Client {
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ().serve(transport).await.unwrap()
}

async fn whoami(client: &Client) -> Result<Value, String> {
    client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .map(|r| r.structured_content.unwrap())
        .map_err(|e| e.to_string())
}

/// Runs the binary to completion with no stdin; returns (exit code, stdout, stderr).
async fn run_to_exit(mut cmd: tokio::process::Command) -> (i32, String, String) {
    let out = cmd.stdin(Stdio::null()).output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn dev_mode_serves_every_tool_over_stdio() {
    let dir = scratch("dev");
    let started = Instant::now();
    let client = spawn_client(command(&dir, &["--dev"], &[])).await;
    let who = whoami(&client).await.unwrap();
    eprintln!(
        "stdio cold start (debug build, spawn → first tool result): {:?}",
        started.elapsed()
    );
    assert_eq!(who["name"], "Dev User");
    let args = json!({"sides": 20}).as_object().unwrap().clone();
    let roll = client
        .call_tool(CallToolRequestParams::new("roll_dice").with_arguments(args))
        .await
        .unwrap();
    assert!((1..=20).contains(&roll.structured_content.unwrap()["roll"].as_i64().unwrap()));
    let card = client
        .call_tool(CallToolRequestParams::new("greeting_card"))
        .await
        .unwrap();
    assert_eq!(card.structured_content.unwrap()["username"], "Dev User");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_dev_identity_takes_its_scopes_and_roles_from_settings() {
    let vars = [
        ("MCP_DEV_SCOPES", "access_as_user, files.read".to_owned()),
        ("MCP_DEV_ROLES", "Dice.Admin".to_owned()),
    ];
    let client = spawn_client(command(&scratch("dev-claims"), &["--dev"], &vars)).await;
    let who = whoami(&client).await.unwrap();
    client.cancel().await.unwrap();
    assert_eq!(who["scopes"], json!(["access_as_user", "files.read"]));
    assert_eq!(who["roles"], json!(["Dice.Admin"]));
    // Without the required scope the dev caller is refused, as an Entra caller would be.
    let vars = [("MCP_DEV_SCOPES", "files.read".to_owned())];
    let (code, _, stderr) = run_to_exit(command(&scratch("dev-noscope"), &["--dev"], &vars)).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("access_as_user"), "{stderr}");
}

#[tokio::test]
async fn entra_token_from_the_environment_is_verified_and_used() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let mut vars = entra_vars(&fake);
    vars.push(("MCP_ACCESS_TOKEN", mint(&key, &fake.claims(TENANT))));
    let client = spawn_client(command(&scratch("env"), &[], &vars)).await;
    assert_eq!(whoami(&client).await.unwrap()["name"], "Alice Example");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn missing_token_exits_non_zero_with_one_line_and_empty_stdout() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let (code, stdout, stderr) = run_to_exit(command(&scratch("missing"), &[], &entra_vars(&fake))).await;
    assert_eq!(code, 2);
    assert_eq!(stdout, "");
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("mcp-server-entra: no access token: set MCP_ACCESS_TOKEN"),
        "{stderr}"
    );
    assert!(
        lines[0].contains("az account get-access-token"),
        "the fix is named: {stderr}"
    );
}

/// A refused start-up token exits 2 with one line naming the reason, never 101 with a panic:
/// one row per kind of refusal (claim changes → words of the reason).
#[tokio::test]
async fn bad_token_exits_non_zero_with_the_reason_and_empty_stdout() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let rows = [
        (
            json!({"aud": "00000003-0000-0000-c000-000000000000"}),
            "Microsoft Graph",
        ),
        // 2^63 + 5: panicked in Identity::from_claims before issue 13.
        (
            json!({"exp": 9_223_372_036_854_775_813u64}),
            "`exp` claim is malformed",
        ),
        (json!({"exp": 1e19}), "`exp` claim is malformed"),
        (
            json!({"nbf": 9_223_372_036_854_775_808u64}),
            "`nbf` claim is malformed",
        ),
        (json!({"scp": null, "nonce": "n"}), "is an ID token"),
    ];
    for (i, (changes, reason)) in rows.into_iter().enumerate() {
        let mut claims = fake.claims(TENANT);
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        let mut vars = entra_vars(&fake);
        vars.push(("MCP_ACCESS_TOKEN", mint(&key, &claims)));
        let (code, stdout, stderr) = run_to_exit(command(&scratch(&format!("bad-{i}")), &[], &vars)).await;
        assert_eq!((code, stdout.as_str()), (2, ""), "{changes}: {stderr}");
        let lines: Vec<_> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{changes}: {stderr}");
        assert!(
            lines[0].starts_with("mcp-server-entra: the token from MCP_ACCESS_TOKEN was rejected:"),
            "{changes}: {stderr}"
        );
        assert!(lines[0].contains(reason), "{changes}: {stderr}");
    }
}

#[tokio::test]
async fn a_token_that_expires_mid_session_makes_the_next_call_fail_with_the_fix() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    // A whole-second and a fractional `exp` (RFC 7519 NumericDate): both must expire.
    let mut clients = Vec::new();
    for (i, exp) in [json!(now() + 2), json!(now() as f64 + 2.5)]
        .into_iter()
        .enumerate()
    {
        let mut claims = fake.claims(TENANT);
        claims["exp"] = exp;
        let mut vars = entra_vars(&fake);
        vars.push(("MCP_ACCESS_TOKEN", mint(&key, &claims)));
        let client = spawn_client(command(&scratch(&format!("expiry-{i}")), &[], &vars)).await;
        assert_eq!(whoami(&client).await.unwrap()["name"], "Alice Example");
        clients.push(client);
    }
    tokio::time::sleep(Duration::from_millis(3600)).await;
    for client in clients {
        let err = whoami(&client).await.unwrap_err();
        assert!(err.contains("expired at"), "{err}");
        assert!(
            err.contains("MCP_ACCESS_TOKEN_COMMAND"),
            "the fix is named: {err}"
        );
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn the_file_source_picks_up_a_replaced_token_without_a_restart() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let dir = scratch("file");
    let file = dir.join("token");
    std::fs::write(&file, mint(&key, &fake.claims(TENANT))).unwrap();
    let mut vars = entra_vars(&fake);
    vars.push(("MCP_ACCESS_TOKEN_FILE", file.display().to_string()));
    let client = spawn_client(command(&dir, &[], &vars)).await;
    assert_eq!(whoami(&client).await.unwrap()["name"], "Alice Example");

    let mut bob = fake.claims(TENANT);
    bob["name"] = json!("Bob Example, the second user");
    bob["oid"] = json!("0000bbbb-0000-0000-0000-00000000b0b0");
    std::fs::write(&file, mint(&key, &bob)).unwrap();
    assert_eq!(
        whoami(&client).await.unwrap()["name"],
        "Bob Example, the second user"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_command_source_is_run_again_after_expiry() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let dir = scratch("command");
    // The "credential command": prints the next pre-minted token and counts its runs.
    let mut first = fake.claims(TENANT);
    first["name"] = json!("First Token");
    first["exp"] = json!(now() + 2);
    let mut second = fake.claims(TENANT);
    second["name"] = json!("Second Token");
    std::fs::write(dir.join("token-1"), mint(&key, &first)).unwrap();
    std::fs::write(dir.join("token-2"), mint(&key, &second)).unwrap();
    let script = dir.join("get-token.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nn=$(cat runs 2>/dev/null || echo 0)\nn=$((n + 1))\necho $n > runs\ncat token-$n\n",
    )
    .unwrap();
    let mut vars = entra_vars(&fake);
    vars.push(("MCP_ACCESS_TOKEN_COMMAND", format!("sh {}", script.display())));
    let client = spawn_client(command(&dir, &[], &vars)).await;
    assert_eq!(whoami(&client).await.unwrap()["name"], "First Token");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(whoami(&client).await.unwrap()["name"], "Second Token");
    assert_eq!(std::fs::read_to_string(dir.join("runs")).unwrap().trim(), "2");
    client.cancel().await.unwrap();
}

/// What a token source row expects: the binary serves, or exits 2 with exactly this one line.
enum Outcome {
    Serves,
    Refused(String),
}

#[tokio::test]
async fn token_sources_are_read_with_a_cap_until_the_process_exits_and_only_from_regular_files() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let dir = scratch("bounded-sources");
    let token_file = dir.join("tok");
    std::fs::write(&token_file, mint(&key, &fake.claims(TENANT))).unwrap();
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let big = dir.join("big");
    std::fs::write(&big, vec![b'a'; 70 * 1024]).unwrap();
    // What Windows tools write: a UTF-8 BOM (tolerated), UTF-16LE with a BOM (refused, named).
    let token = mint(&key, &fake.claims(TENANT));
    let bom = dir.join("bom");
    std::fs::write(
        &bom,
        [b"\xEF\xBB\xBF".as_slice(), token.as_bytes(), b"\r\n"].concat(),
    )
    .unwrap();
    let utf16 = dir.join("utf16");
    let wide: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(token.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    std::fs::write(&utf16, wide).unwrap();
    let utf16_line = "mcp-server-entra: MCP_ACCESS_TOKEN_FILE is UTF-16 text (what Windows PowerShell 5.1 writes with `>` or Out-File); write it as UTF-8 or ASCII: `Out-File -Encoding ascii`, or `Set-Content -Encoding utf8`";
    let cap = "produced more than 65536 bytes, which is no access token; it must hold only the token";
    let not_regular = |path: &Path, what: &str| {
        Outcome::Refused(format!(
            "mcp-server-entra: MCP_ACCESS_TOKEN_FILE {} is {what}; point it at a regular file holding the token",
            path.display()
        ))
    };
    let rows: Vec<(&str, String, Outcome)> = vec![
        // A background child keeps stdout open after the command exits: stop at the exit.
        (
            "MCP_ACCESS_TOKEN_COMMAND",
            format!("sh -c 'cat {}; (sleep 20 &)'", token_file.display()),
            Outcome::Serves,
        ),
        (
            "MCP_ACCESS_TOKEN_COMMAND",
            "head -c 1000000000 /dev/zero".into(),
            Outcome::Refused(format!("mcp-server-entra: MCP_ACCESS_TOKEN_COMMAND {cap}")),
        ),
        (
            "MCP_ACCESS_TOKEN_COMMAND",
            "sh -c 'head -c 1000000 /dev/zero >&2; printf \"\\033[2Jbad\\nthing\" >&2; exit 3'".into(),
            Outcome::Refused("…".into()),
        ),
        (
            "MCP_ACCESS_TOKEN_FILE",
            token_file.display().to_string(),
            Outcome::Serves,
        ),
        (
            "MCP_ACCESS_TOKEN_FILE",
            fifo.display().to_string(),
            not_regular(&fifo, "a FIFO (named pipe)"),
        ),
        (
            "MCP_ACCESS_TOKEN_FILE",
            dir.display().to_string(),
            not_regular(&dir, "a directory"),
        ),
        (
            "MCP_ACCESS_TOKEN_FILE",
            "/dev/zero".into(),
            not_regular(Path::new("/dev/zero"), "a device"),
        ),
        (
            "MCP_ACCESS_TOKEN_FILE",
            big.display().to_string(),
            Outcome::Refused(format!("mcp-server-entra: MCP_ACCESS_TOKEN_FILE {cap}")),
        ),
        ("MCP_ACCESS_TOKEN_FILE", bom.display().to_string(), Outcome::Serves),
        ("MCP_ACCESS_TOKEN_FILE", utf16.display().to_string(), Outcome::Refused(utf16_line.into())),
        (
            "MCP_ACCESS_TOKEN",
            format!("\"{token}\""),
            Outcome::Refused("mcp-server-entra: MCP_ACCESS_TOKEN is wrapped in quotes (some env-file loaders keep them); give the token without quotes".into()),
        ),
        (
            "MCP_ACCESS_TOKEN",
            format!("Bearer {token}"),
            Outcome::Refused("mcp-server-entra: MCP_ACCESS_TOKEN starts with `Bearer `; give the token alone: the server sends it as a bearer token itself".into()),
        ),
        ("MCP_ACCESS_TOKEN", format!("  {token}\n"), Outcome::Serves),
    ];
    for (name, value, outcome) in rows {
        let mut vars = entra_vars(&fake);
        vars.push((name, value.clone()));
        let started = Instant::now();
        match outcome {
            Outcome::Serves => {
                let client =
                    tokio::time::timeout(Duration::from_secs(10), spawn_client(command(&dir, &[], &vars)))
                        .await
                        .unwrap_or_else(|_| panic!("{name}={value} did not start in time"));
                assert_eq!(
                    whoami(&client).await.unwrap()["tenant_id"],
                    TENANT,
                    "{name}={value}"
                );
                client.cancel().await.unwrap();
            }
            Outcome::Refused(line) => {
                let (code, stdout, stderr) =
                    tokio::time::timeout(Duration::from_secs(10), run_to_exit(command(&dir, &[], &vars)))
                        .await
                        .unwrap_or_else(|_| panic!("{name}={value} did not end in time"));
                assert_eq!((code, stdout.as_str()), (2, ""), "{name}={value}: {stderr}");
                let lines: Vec<_> = stderr.lines().collect();
                assert_eq!(lines.len(), 1, "{name}={value}: {stderr}");
                match line.strip_suffix('…') {
                    // A failing command: its stderr's end, escaped, on the one line.
                    Some(_) => {
                        assert!(lines[0].contains("failed (exit status: 3)"), "{stderr}");
                        assert!(lines[0].ends_with(r"\u{1b}[2Jbad | thing"), "{stderr}");
                    }
                    None => assert_eq!(lines[0], line, "{name}={value}"),
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}={value}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_token_command_that_cannot_be_found_fails_fast_naming_the_setting_program_and_fix() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let fix = "give its absolute path (e.g. /usr/bin/az, /opt/homebrew/bin/az), or on Windows start it through the shell: cmd /c az account get-access-token ...";
    // (PATH passed to the binary, command line, expected reason)
    let rows = [
        (
            None,
            "az account get-access-token --query accessToken -o tsv",
            "`az` not found (PATH is not set: desktop hosts may pass only their env block)",
        ),
        (
            Some("/nonexistent-bin"),
            "az account get-access-token",
            "`az` not found (not on PATH)",
        ),
        (
            Some("/nonexistent-bin"),
            "/nonexistent-bin/az.cmd account get-access-token",
            "`/nonexistent-bin/az.cmd` not found (no such file)",
        ),
    ];
    for (path, line, reason) in rows {
        let dir = scratch("notfound");
        let mut cmd = tokio::process::Command::new(EXE);
        cmd.arg("stdio").current_dir(&dir).env_clear();
        if let Some(path) = path {
            cmd.env("PATH", path);
        }
        for (k, v) in entra_vars(&fake) {
            cmd.env(k, v);
        }
        cmd.env("MCP_ACCESS_TOKEN_COMMAND", line);
        let started = Instant::now();
        let (code, stdout, stderr) = run_to_exit(cmd).await;
        assert!(started.elapsed() < Duration::from_secs(10), "{line}: fails fast");
        assert_eq!(code, 2, "{line}: {stderr}");
        assert_eq!(stdout, "", "{line}");
        assert_eq!(
            stderr,
            format!("mcp-server-entra: MCP_ACCESS_TOKEN_COMMAND: program {reason}; {fix}\n"),
            "{line}"
        );
    }
}

/// What the stdio process says at start-up, one row per message: the token's state and the
/// reachability of Entra → exit code, words the message must have, words it must not have.
#[tokio::test]
async fn start_up_messages_name_the_fix_once_with_this_servers_scope_and_no_http_wording() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let scope = format!(
        "az account get-access-token --scope api://{CLIENT_ID}/access_as_user --query accessToken -o tsv"
    );
    let mut expired = fake.claims(TENANT);
    expired["exp"] = json!(now() - 120);
    struct Row {
        name: &'static str,
        token: Option<String>,
        entra_down: bool,
        must: Vec<String>,
    }
    let rows = [
        Row {
            name: "expired",
            token: Some(mint(&key, &expired)),
            entra_down: false,
            must: vec![
                "mcp-server-entra: the token from MCP_ACCESS_TOKEN was rejected: the token expired at".into(),
                scope.clone(),
                "set MCP_ACCESS_TOKEN_COMMAND".into(),
            ],
        },
        Row {
            name: "missing",
            token: None,
            entra_down: false,
            must: vec!["mcp-server-entra: no access token:".into(), scope.clone()],
        },
        Row {
            name: "entra-down",
            token: Some(mint(&key, &fake.claims(TENANT))),
            entra_down: true,
            must: vec![
                "mcp-server-entra: cannot verify the token from MCP_ACCESS_TOKEN: the identity provider's signing keys could not be fetched".into(),
                "AZURE_AUTHORITY_HOST".into(),
            ],
        },
    ];
    for row in rows {
        fake.set_down(row.entra_down);
        let mut vars = entra_vars(&fake);
        if let Some(token) = row.token {
            vars.push(("MCP_ACCESS_TOKEN", token));
        }
        let (code, stdout, stderr) = run_to_exit(command(&scratch(row.name), &[], &vars)).await;
        assert_eq!((code, stdout.as_str()), (2, ""), "{}: {stderr}", row.name);
        let last = stderr.lines().last().unwrap_or_default();
        for must in &row.must {
            assert!(
                last.contains(must.as_str()),
                "{}: lacks {must:?}: {stderr}",
                row.name
            );
        }
        for never in ["503", "answering", "<client-id>"] {
            assert!(!stderr.contains(never), "{}: says {never:?}: {stderr}", row.name);
        }
        assert!(
            last.to_lowercase().matches("get a new token").count() <= 1,
            "{}: repeats itself: {stderr}",
            row.name
        );
    }
}
