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
fn documented_settings_table_matches_the_code() {
    let readme = include_str!("../../docs/configuration.md");
    let table = readme
        .split("<!-- settings-table")
        .nth(1)
        .and_then(|t| t.split("<!-- /settings-table -->").next())
        .expect("docs/configuration.md has the settings table");
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| `")).collect();
    assert_eq!(
        rows.len(),
        SETTINGS.len(),
        "the settings table has {} rows",
        rows.len()
    );
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

/// (what, arguments, environment, the line on stderr).
type MistakeRow<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, String)>, String);

/// Each mistake a newcomer makes with the settings stops start-up with one line that names the
/// setting as its source wrote it, the cause, and the fix. One row per mistake, through the binary.
#[test]
fn start_up_mistakes_are_named_with_their_fix() {
    let dir = std::env::temp_dir().join(format!("mcp-entra-cli-mistakes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let uri_scopes = toml(
        "uri-scopes.toml",
        "azure_required_scopes = [\"api://x/access_as_user\"]\n",
    );
    let unquoted = toml(
        "unquoted.toml",
        "azure_client_id = 11111111-2222-3333-4444-555555555555\n",
    );
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
    let folder = dir.display().to_string();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    const GUID: &str = "11111111-2222-3333-4444-555555555555";
    const ZERO: &str = "00000000-0000-0000-0000-000000000000";
    let entra = |client: &str, tenant: &str| {
        vec![
            ("AZURE_CLIENT_ID", client.to_owned()),
            ("AZURE_TENANT_ID", tenant.to_owned()),
        ]
    };
    // (what, arguments, environment, the line on stderr — whole, or its start when it ends in …)
    let rows: Vec<MistakeRow> = vec![
        ("a setting name one letter off", vec!["--dev"], vec![("AZURE_REQUIRED_SCOPE", "Notes.Read".into())],
            "AZURE_REQUIRED_SCOPE in the environment is not a setting of this server; did you mean AZURE_REQUIRED_SCOPES? A misspelt setting is never applied: rename it (or unset it)".into()),
        ("a setting name without its underscore", vec!["--dev"], vec![("PUBLICURL", "https://mcp.contoso.com".into())],
            "PUBLICURL in the environment is not a setting of this server; did you mean PUBLIC_URL? A misspelt setting is never applied: rename it (or unset it)".into()),
        ("a setting name in lower case", vec!["--dev"], vec![("azure_client_id", GUID.into())],
            "azure_client_id in the environment is not a setting of this server; did you mean AZURE_CLIENT_ID? A misspelt setting is never applied: rename it (or unset it)".into()),
        ("scopes separated by spaces, as in scp", vec!["--dev"], vec![("AZURE_REQUIRED_SCOPES", "access_as_user Notes.Read".into())],
            "AZURE_REQUIRED_SCOPES must be scope names such as access_as_user, separated by commas, not spaces (a token's scp separates them with spaces; this setting is a list): access_as_user,Notes.Read, got \"access_as_user Notes.Read\"".into()),
        ("app roles separated by spaces", vec!["--dev"], vec![("AZURE_REQUIRED_APP_ROLES", "A.Read B.Write".into())],
            "AZURE_REQUIRED_APP_ROLES must be app role names such as Mcp.Invoke, separated by commas, not spaces (a token's scp separates them with spaces; this setting is a list): A.Read,B.Write, got \"A.Read B.Write\"".into()),
        ("a full scope URI, in a TOML file", vec!["--dev", "--config", &uri_scopes], vec![],
            format!("azure_required_scopes in {uri_scopes} must be short scope names such as access_as_user, not full URIs (the server puts the Application ID URI in front itself): access_as_user, got \"api://x/access_as_user\"")),
        ("the example's placeholder client id", vec![], entra(ZERO, "organizations"),
            format!("AZURE_CLIENT_ID is still the example placeholder {ZERO}; put the Application (client) ID from your app registration's Overview page there")),
        ("the example file as shipped", vec!["--config", example], vec![],
            format!("azure_client_id in {example} is still the example placeholder {ZERO}; put the Application (client) ID from your app registration's Overview page there")),
        ("the placeholder tenant", vec![], entra(GUID, ZERO),
            format!("AZURE_TENANT_ID is still the example placeholder {ZERO}; put the Directory (tenant) ID from your app registration's Overview page (or organizations / common for a multi-tenant app) there")),
        ("a client id in braces", vec![], entra(&format!("{{{GUID}}}"), "organizations"),
            format!("AZURE_CLIENT_ID must be a GUID without braces: {GUID}, got \"{{{GUID}}}\"")),
        ("the Application ID URI as client id", vec![], entra(&format!("api://{GUID}"), "organizations"),
            format!("AZURE_CLIENT_ID must be the bare Application (client) ID, {GUID}, not the Application ID URI (an identifier URI other than api://<client-id> goes in AZURE_IDENTIFIER_URI), got \"api://{GUID}\"")),
        ("Redis with a server credential and no key", vec![],
            [entra(GUID, "organizations"), vec![("AZURE_CLIENT_SECRET", "s3cret-value".into()), ("REDIS_URL", "rediss://:pw-Zk9@cache.example:6380".into())]].concat(),
            "REDIS_URL is set with a server credential, so downstream tokens are shared in Redis, and they are stored only encrypted: set DOWNSTREAM_CACHE_KEYS to a key (openssl rand -base64 32)".into()),
        ("a cache key that is not a key", vec![],
            [entra(GUID, "organizations"), vec![("AZURE_CLIENT_SECRET", "s3cret-value".into()), ("REDIS_URL", "redis://10.0.0.4".into()), ("DOWNSTREAM_CACHE_KEYS", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=,hunter2".into())]].concat(),
            "DOWNSTREAM_CACHE_KEYS entry 2 is not 32 bytes of base64 (openssl rand -base64 32)".into()),
        ("cache keys without Redis", vec![],
            [entra(GUID, "organizations"), vec![("AZURE_CLIENT_SECRET", "s3cret-value".into()), ("DOWNSTREAM_CACHE_KEYS", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into())]].concat(),
            "DOWNSTREAM_CACHE_KEYS is set but REDIS_URL is not: the keys encrypt the downstream tokens shared in Redis; set REDIS_URL or unset the keys".into()),
        ("a Redis URL that is not one, its password hidden", vec!["--dev"], vec![("REDIS_URL", "https://:pw-Zk9@cache.example".into())],
            "REDIS_URL must be a redis://, rediss:// or redis+unix:// URL such as rediss://:<password>@<host>:6380, got \"https://:***@cache.example/\"".into()),
        ("a client id that is no GUID", vec![], entra("abc", "organizations"),
            "AZURE_CLIENT_ID must be a GUID (the app registration's Application (client) ID), got \"abc\"".into()),
        ("the authority URL as tenant", vec![], entra(GUID, &format!("https://login.microsoftonline.com/{GUID}/v2.0")),
            format!("AZURE_TENANT_ID must be the tenant alone ({GUID}), not an authority URL (its host goes in AZURE_AUTHORITY_HOST when it is not https://login.microsoftonline.com), got \"https://login.microsoftonline.com/{GUID}/v2.0\"")),
        ("an unquoted GUID in TOML", vec!["--config", &unquoted], vec![],
            format!("cannot read the configuration file {unquoted}: …")),
        ("a directory as --config", vec!["--dev", "--config", &folder], vec![],
            format!("{folder} is a directory, but --config takes a file (a TOML file such as config.example.toml)")),
        ("a directory as --env-file", vec!["--dev", "--env-file", &folder], vec![],
            format!("{folder} is a directory, but --env-file takes a file (NAME=value lines, as in .env.example)")),
        ("--dev beyond loopback, by flag", vec!["--dev", "--host", "0.0.0.0"], vec![],
            "--dev serves only on loopback, but --host is 0.0.0.0; drop --dev or listen on 127.0.0.1".into()),
        ("--dev beyond loopback, by variable", vec!["--dev"], vec![("HOST", "0.0.0.0".into())],
            "--dev serves only on loopback, but HOST is 0.0.0.0; drop --dev or listen on 127.0.0.1".into()),
        ("a busy metrics port", vec!["--dev", "--port", "0"], vec![("METRICS_ADDR", busy_addr.clone()), ("RUST_LOG", "off".into())],
            format!("cannot listen on {busy_addr}: …")),
    ];
    for (what, args, env, expected) in rows {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, out, err) = run(&args, &env);
        assert_eq!((code, out.as_str()), (2, ""), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: one line, got {err}");
        let line = err.trim_end().strip_prefix("mcp-server-entra: ").unwrap_or(&err);
        match expected.strip_suffix('…') {
            Some(start) => assert!(line.starts_with(start), "{what}: {line}"),
            None => assert_eq!(line, expected, "{what}"),
        }
    }
    // The fixes the two open-ended rows promise.
    let (_, _, err) = run(&["--config", &unquoted], &[]);
    assert!(
        err.contains("text values (GUIDs, URLs, names) must be quoted in TOML"),
        "{err}"
    );
    let (_, _, err) = run(
        &["--dev", "--port", "0"],
        &[("METRICS_ADDR", &busy_addr), ("RUST_LOG", "off")],
    );
    assert!(err.ends_with("(set METRICS_ADDR)\n"), "{err}");
    drop(busy);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The effective authorization policy is logged at start-up, one block of lines, so a setting
/// that did not take effect is visible.
#[test]
fn start_up_logs_the_effective_authorization_policy() {
    use std::io::BufRead as _;
    let dir = std::env::temp_dir().join(format!("mcp-entra-cli-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tools.toml");
    std::fs::write(
        &file,
        "[tools.roll_dice]\nscopes = [\"Dice.Roll\"]\napp_roles = [\"Dice.Roll.All\"]\n",
    )
    .unwrap();
    let mut child = Command::new(EXE)
        .args(["--dev", "--port", "0", "--config", &file.display().to_string()])
        .env_clear()
        .env("RUST_LOG", "info")
        .env("MCP_DEV_TOKEN", "t")
        .env("AZURE_REQUIRED_SCOPES", "access_as_user,Notes.Read")
        .env("AZURE_REQUIRED_APP_ROLES", "Mcp.Invoke")
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut policy = Vec::new();
    for line in std::io::BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        if let Some(rule) = line.split("authorization policy: ").nth(1) {
            policy.push(rule.to_owned());
        }
        if line.contains("serving MCP") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        policy,
        [
            "callers: the one dev identity (--dev: no token is verified against Entra)",
            "users need the scopes api://mcp-server-entra-dev/access_as_user and api://mcp-server-entra-dev/Notes.Read (AZURE_REQUIRED_SCOPES)",
            "applications need the app roles Mcp.Invoke (AZURE_REQUIRED_APP_ROLES) and request api://mcp-server-entra-dev/.default",
            "tool greeting_card: every caller the server-wide settings admit",
            "tool roll_dice: users need scopes Dice.Roll; applications need app roles Dice.Roll.All",
            "tool whoami: every caller the server-wide settings admit",
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn config_example_documents_every_setting_as_the_table_does() {
    let example = include_str!("../../config.example.toml");
    let lines: Vec<&str> = example.lines().collect();
    for setting in SETTINGS {
        let key = setting.name.to_ascii_lowercase();
        let at = lines
            .iter()
            .position(|l| {
                l.trim_start_matches("# ")
                    .split_once(" = ")
                    .is_some_and(|(k, _)| k == key)
            })
            .unwrap_or_else(|| panic!("config.example.toml lacks {key}"));
        assert_eq!(
            lines[at - 1],
            format!("# {}", setting.help),
            "the comment above {key}"
        );
        if let Some(commented) = lines[at].strip_prefix("# ") {
            // A commented line shows the default.
            let value = commented.split_once(" = ").unwrap().1;
            let bare = value.trim_matches(|c| c == '"' || c == '[' || c == ']');
            assert_eq!(bare, setting.default, "the default shown for {key}");
        }
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
            format!(
                "mcp-server-entra: the configuration file missing.toml does not exist (given with --config; a relative path is read from the working directory, {})\n",
                std::env::temp_dir().display()
            ),
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
