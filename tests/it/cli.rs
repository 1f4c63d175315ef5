//! The binary's command line, and the docs that describe it.

use std::process::Command;

use mcp_server_entra::config::SETTINGS;

const EXE: &str = env!("CARGO_BIN_EXE_mcp-server-entra");

fn run(args: &[&str], vars: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(EXE);
    cmd.args(args).env_clear().current_dir(std::env::temp_dir());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_explains_the_commands_and_options() {
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for expected in [
        "resource server",
        "serve",
        "stdio",
        "--dev",
        "--config",
        "--log-format",
        ".env",
        "--host",
        "--port",
        "--public-url",
        "RFC 9728",
    ] {
        assert!(out.contains(expected), "--help lacks {expected:?}:\n{out}");
    }
    let (code, out, _) = run(&["serve", "--help"], &[]);
    assert_eq!(code, 0);
    for expected in ["--host", "--port", "--public-url", "/health", "/ready", "SIGTERM"] {
        assert!(out.contains(expected), "serve --help lacks {expected:?}:\n{out}");
    }
    let (_, out, _) = run(&["stdio", "--help"], &[]);
    assert!(out.contains("MCP_ACCESS_TOKEN_COMMAND"), "{out}");
}

#[test]
fn a_bad_setting_exits_non_zero_with_one_line_naming_it() {
    let (code, out, err) = run(
        &["serve"],
        &[("AZURE_CLIENT_ID", "abc"), ("AZURE_TENANT_ID", "organizations")],
    );
    assert_eq!(code, 2);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "mcp-server-entra: AZURE_CLIENT_ID must be a GUID (the app registration's Application (client) ID), got \"abc\"\n"
    );
    let (code, _, err) = run(&["serve", "--dev", "--port", "http"], &[]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "mcp-server-entra: --port must be a port number from 0 to 65535, got \"http\"\n"
    );
    let (code, _, err) = run(&["serve", "--dev", "--host", "0.0.0.0"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("mcp-server-entra: --dev serves only on loopback"),
        "{err}"
    );
}

#[test]
fn missing_entra_settings_point_at_dev_mode() {
    let (code, _, err) = run(&["serve"], &[]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("AZURE_CLIENT_ID is required") && err.contains("--dev"),
        "{err}"
    );
}

#[test]
fn env_example_documents_exactly_the_settings_the_code_reads() {
    let example = include_str!("../../.env.example");
    let mut documented: Vec<(String, String)> = example
        .lines()
        .map(|l| l.trim_start_matches("# "))
        .filter_map(|l| l.split_once('='))
        .filter(|(name, _)| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(|(name, default)| (name.to_owned(), default.to_owned()))
        .collect();
    documented.sort();
    let mut expected: Vec<(String, String)> = SETTINGS
        .iter()
        .map(|s| (s.name.to_owned(), s.default.to_owned()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);
}

#[test]
fn readme_settings_table_matches_the_code() {
    let readme = include_str!("../../README.md");
    let table = readme
        .split("<!-- settings-table")
        .nth(1)
        .and_then(|t| t.split("<!-- /settings-table -->").next())
        .expect("README has the settings table");
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| `")).collect();
    assert_eq!(rows.len(), SETTINGS.len(), "README table has {} rows", rows.len());
    for (row, setting) in rows.iter().zip(SETTINGS) {
        let default = if setting.default.is_empty() {
            "—".to_owned()
        } else {
            format!("`{}`", setting.default)
        };
        assert_eq!(
            *row,
            format!("| `{}` | {default} | {} |", setting.name, setting.help)
        );
    }
}

#[test]
fn readme_gives_the_two_commands_ci_runs() {
    let readme = include_str!("../../README.md");
    assert!(readme.contains("cargo run -- serve --dev     # run the server locally"));
    assert!(readme.contains("cargo test --workspace       # run the tests"));
    let ci = include_str!("../../.ci/run");
    assert!(ci.contains("cargo test --workspace"));
    assert!(ci.contains("tests/readme.sh"));
}

/// Starts the binary, waits (at most 30 s) for its "serving" log line, returns the child and the
/// address it listens on.
fn start_serving(args: &[&str], vars: &[(&str, &str)]) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut cmd = Command::new(EXE);
    cmd.args(args)
        .env_clear()
        .env("RUST_LOG", "info")
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("address=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the server logs its address");
    (child, addr)
}

#[tokio::test]
async fn serve_flags_work_without_the_serve_command() {
    let (mut child, addr) = start_serving(&["--port", "0", "--dev"], &[("MCP_DEV_TOKEN", "t")]);
    let health = reqwest::get(format!("http://{addr}/health")).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(health.unwrap().text().await.unwrap(), "ok");
    let (code, _, err) = run(&["--port", "8013", "stdio"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--host, --port and --public-url apply to `serve`, not `stdio`"),
        "{err}"
    );
}

#[test]
fn config_file_problems_are_one_line_each() {
    let dir = std::env::temp_dir().join(format!("mcp-entra-cli-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "port: 9001\n").unwrap();
    let bad = bad.display().to_string();
    for (args, expected) in [
        (
            vec!["--dev", "--config", "missing.toml"],
            "mcp-server-entra: the configuration file missing.toml does not exist (given with --config)\n".to_owned(),
        ),
        (
            vec!["--dev", "--config", bad.as_str()],
            format!("mcp-server-entra: cannot read the configuration file {bad}: TOML parse error at line 1, column 7: key with no value, expected `=`\n"),
        ),
    ] {
        let (code, out, err) = run(&args, &[]);
        assert_eq!((code, out.as_str(), err), (2, "", expected), "{args:?}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_example_toml_file_serves_with_the_dev_identity() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
    let (mut child, addr) = start_serving(
        &["--dev", "--config", example, "--port", "0"],
        &[("MCP_DEV_TOKEN", "t")],
    );
    let metadata = reqwest::get(format!("http://{addr}/.well-known/oauth-protected-resource/mcp")).await;
    let _ = child.kill();
    let _ = child.wait();
    let metadata: serde_json::Value = metadata.unwrap().json().await.unwrap();
    assert_eq!(
        metadata["scopes_supported"],
        serde_json::json!(["api://mcp-server-entra-dev/access_as_user"])
    );
}

/// The resource/identifier-URI warning comes from the real binary, once, at start-up.
#[tokio::test]
async fn start_up_warns_once_when_the_resource_is_not_an_identifier_uri() {
    use tokio::io::{AsyncBufReadExt as _, BufReader};

    let key = crate::common::key1();
    let fake = crate::common::FakeEntra::start(&[&key]).await;
    let resource = "https://api.contoso.com/entra/mcp";
    let expected = format!(
        "the metadata advertises resource {resource} but the Application ID URI is api://{client}: clients that send the RFC 8707 resource parameter with the scopes get AADSTS9010010 or AADSTS500011 from Entra; add {resource} to the app registration's Application ID URIs (Expose an API; an https URI needs a verified domain) and set AZURE_IDENTIFIER_URI={resource}",
        client = crate::common::CLIENT_ID
    );
    // (AZURE_IDENTIFIER_URI, warned)
    for (identifier, warned) in [(None, true), (Some(format!("{resource}/")), false)] {
        let mut cmd = tokio::process::Command::new(EXE);
        cmd.args(["serve", "--port", "0"])
            .env_clear()
            .current_dir(std::env::temp_dir())
            .env("AZURE_CLIENT_ID", crate::common::CLIENT_ID)
            .env("AZURE_TENANT_ID", crate::common::TENANT)
            .env("AZURE_AUTHORITY_HOST", &fake.base)
            .env("PUBLIC_URL", "https://api.contoso.com/entra")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(identifier) = &identifier {
            cmd.env("AZURE_IDENTIFIER_URI", identifier);
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut warnings = 0;
        // Read until the server says it is serving: the warning comes before that line.
        let serving = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("the metadata advertises resource") {
                    assert!(line.contains(&expected), "{line}");
                    warnings += 1;
                }
                if line.contains("serving MCP over streamable HTTP") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(serving, Ok(true), "{identifier:?}: the server started");
        assert_eq!(warnings, usize::from(warned), "{identifier:?}");
        child.kill().await.unwrap();
    }
}
