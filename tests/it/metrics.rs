//! Prometheus metrics of the real binary, on their own listener, moving with traffic.

use std::process::Stdio;
use std::time::Duration;

use rmcp::model::CallToolRequestParams;

use crate::common::*;

const EXE: &str = env!("CARGO_BIN_EXE_mcp-server-entra");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_rejections_and_verification_on_a_separate_port() {
    let (port, metrics_port) = (free_port(), free_port());
    let mut child = tokio::process::Command::new(EXE)
        .args(["serve", "--dev", "--port", &port.to_string()])
        .env_clear()
        .env("MCP_DEV_TOKEN", "metrics-dev-token")
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let mut ready = false;
    for _ in 0..100 {
        if http()
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok()
            && http().get(&metrics_url).send().await.is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "server did not start");
    let before = http()
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let url = format!("http://127.0.0.1:{port}/mcp");
    let client = discover_client(&url, "metrics-dev-token").await;
    for _ in 0..3 {
        client
            .call_tool(CallToolRequestParams::new("whoami"))
            .await
            .unwrap();
    }
    let r = http().post(&url).json(&initialize_body()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http()
        .post(&url)
        .bearer_auth("wrong-token")
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let after = http().get(&metrics_url).send().await.unwrap();
    assert!(after.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let after = after.text().await.unwrap();
    let ok = r#"mcp_http_requests_total{route="mcp",status="200"}"#;
    assert!(value(&after, ok) >= value(&before, ok) + 3.0, "{after}");
    assert!(
        value(&after, r#"mcp_auth_rejections_total{reason="missing_token"}"#) >= 1.0,
        "{after}"
    );
    assert!(
        value(&after, r#"mcp_auth_rejections_total{reason="unknown_token"}"#) >= 1.0,
        "{after}"
    );
    assert!(after.contains("mcp_token_verification_seconds_bucket"), "{after}");
    assert!(after.contains("mcp_token_verification_seconds_count"), "{after}");
    // Nothing a caller should not see.
    assert!(!after.contains("metrics-dev-token") && !after.contains("wrong-token"));
    // And not on the public port.
    let public = http()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    client.cancel().await.unwrap();
    child.start_kill().unwrap();
}
