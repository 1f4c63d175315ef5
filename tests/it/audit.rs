//! The audit trail, from the real binary's JSON log: one event per `tools/call` (ok, tool
//! error, refused) naming the caller by its Entra claims, and refusals before authentication
//! counted rather than written one line each.

use futures::StreamExt as _;
use serde_json::{json, Value};

use crate::common::{http, key1, mint, Binary, FakeEntra, CLIENT_ID, TENANT};

const EXE: &str = env!("CARGO_BIN_EXE_mcp-server-entra");

/// A 2026-07-28 `tools/call` of `tool` with `arguments`, as one POST.
async fn call(url: &str, token: Option<&str>, tool: &str, arguments: Value) -> reqwest::Response {
    call_with(&http(), url, token, tool, arguments, None).await
}

/// [`call`] through `client`, with `X-Forwarded-For` when given.
async fn call_with(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    tool: &str,
    arguments: Value,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "audit-test", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}
        }
    }});
    let mut request = client
        .post(url)
        .header("accept", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn every_tool_call_and_refusal_is_one_audit_event_naming_the_caller() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let dir = std::env::temp_dir().join(format!("mcp-entra-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tools.toml");
    std::fs::write(&config, "[tools.roll_dice]\nscopes = [\"Dice.Roll\"]\n").unwrap();
    let mut command = tokio::process::Command::new(EXE);
    command
        .args(["serve", "--port", "0", "--config", &config.display().to_string()])
        .env_clear()
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .env("AZURE_CLIENT_ID", CLIENT_ID)
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_AUTHORITY_HOST", &fake.base)
        // The client address a proxy forwarded for, believed from loopback; no rate limit, so
        // every refusal below is counted as what it is.
        .env("TRUSTED_PROXIES", "127.0.0.1")
        .env("RATE_LIMIT_PER_ADDRESS", "off")
        .current_dir(std::env::temp_dir());
    let server = Binary::start(command).await;
    let url = server.url.clone();
    let token = mint(&key, &fake.claims(TENANT));

    let ok = call_with(
        &http(),
        &url,
        Some(&token),
        "whoami",
        json!({}),
        Some("203.0.113.7"),
    )
    .await;
    assert_eq!(ok.status(), 200);
    let too_long = call(
        &url,
        Some(&token),
        "greeting_card",
        json!({"message": "x".repeat(501)}),
    )
    .await;
    assert_eq!(too_long.status(), 200);
    let refused = call(&url, Some(&token), "roll_dice", json!({})).await;
    assert_eq!(refused.status(), 403);
    // A flood of 10,000 refusals before authentication (half without a token, half forged)
    // writes two lines to the trail, whatever its size.
    let forged = {
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[2] = "AAAA";
        parts.join(".")
    };
    let client = http();
    let statuses: Vec<u16> = futures::stream::iter(0..10_000)
        .map(|i| {
            let (client, url, forged) = (&client, &url, &forged);
            async move {
                let token = (i % 2 == 1).then_some(forged.as_str());
                call_with(client, url, token, "whoami", json!({}), None)
                    .await
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 401));
    // A graceful stop (SIGTERM) writes what was only counted.
    let audit: Vec<Value> = server
        .stop()
        .await
        .into_iter()
        .filter(|event| event["target"] == "audit")
        .collect();
    std::fs::remove_dir_all(dir).unwrap();

    // The flood's first refusal is written (either kind: the requests race), the other 9,999
    // are counted and written at shutdown.
    let first = audit[3]["reason"].as_str().unwrap_or_default().to_owned();
    let counted = match first.as_str() {
        "missing_token" => "bad_signature=5000 missing_token=4999",
        "bad_signature" => "bad_signature=4999 missing_token=5000",
        other => panic!("the first refusal of the flood: {other:?}"),
    };
    // (event, tool, outcome, reason), in order.
    let expected = [
        ("tools/call", "whoami", "ok", ""),
        ("tools/call", "greeting_card", "tool_error", ""),
        ("tools/call", "roll_dice", "refused", "insufficient_scope"),
        ("refused_counted", "", "", first.as_str()),
        ("refused_counted", "", "", ""),
    ];
    assert_eq!(audit.len(), expected.len(), "{audit:#?}");
    for (fields, (event, tool, outcome, reason)) in audit.iter().zip(expected) {
        assert_eq!(fields["event"], event, "{fields}");
        assert_eq!(fields["reason"], reason, "{fields}");
        if event == "tools/call" {
            assert_eq!(fields["tool"], tool, "{fields}");
            assert_eq!(fields["outcome"], outcome, "{fields}");
            // The caller as Entra names it, and where it connected from; never a name or a token.
            assert_eq!(fields["tenant_id"], TENANT);
            assert_eq!(fields["object_id"], "0000aaaa-0000-0000-0000-00000000a11c");
            assert_eq!(fields["client_app"], "04b07795-8ddb-461a-bbee-02f9e1bf7b46");
            assert_eq!(fields["app_only"], false);
            assert!(
                fields["client"].as_str().unwrap().starts_with("127.0.0.1:"),
                "{fields}"
            );
            // Only where a trusted proxy named the client; no trace id without traces.
            let forwarded_for = if tool == "whoami" {
                json!("203.0.113.7")
            } else {
                Value::Null
            };
            assert_eq!(fields["forwarded_for"], forwarded_for, "{fields}");
            assert_eq!(fields["trace_id"], Value::Null, "{fields}");
            assert!(fields["duration_ms"].as_f64().is_some(), "{fields}");
        }
        if event == "refused_counted" {
            let since_last_line = if reason.is_empty() { counted } else { "" };
            assert_eq!(fields["refused_since_last_line"], since_last_line, "{fields}");
        }
        let text = fields.to_string();
        assert!(
            !text.contains("Alice") && !text.contains("alice@") && !text.contains(&token[..20]),
            "{text}"
        );
    }
}
