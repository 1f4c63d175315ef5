//! `examples/own_server.rs` (someone's own rmcp server behind this project's verifier and HTTP
//! layers), built by `cargo test`, run as a process and called with a minted token.

use std::process::Stdio;
use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::common::*;

#[tokio::test]
async fn an_rmcp_server_of_your_own_is_protected_by_the_entra_verifier() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    // target/debug/deps/it-… → target/debug/examples/own_server
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("own_server");
    assert!(
        example.exists(),
        "cargo test builds the examples: {}",
        example.display()
    );
    let mut child = tokio::process::Command::new(example)
        .env_clear()
        .env("AZURE_CLIENT_ID", CLIENT_ID)
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_AUTHORITY_HOST", &fake.base)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .expect("the example prints its endpoint");
    let mut ada = fake.claims(TENANT);
    ada["name"] = json!("Ada Lovelace");
    let mut other_scope = fake.claims(TENANT);
    other_scope["scp"] = json!("something_else");
    let no_scope = mint(&key, &other_scope);
    let client = legacy_client(&url, &mint(&key, &ada)).await;
    let hello = client
        .call_tool(CallToolRequestParams::new("hello"))
        .await
        .unwrap();
    assert_eq!(hello.content[0].as_text().unwrap().text, "Hello, Ada Lovelace!");
    client.cancel().await.unwrap();
    // No token, or one without the scope: refused by the same layers as the example server.
    for (token, status) in [(None, 401), (Some(no_scope.as_str()), 403)] {
        let r = post_mcp(&url, token, &initialize_body()).await;
        assert_eq!(r.status(), status, "{token:?}");
        assert!(r.headers().contains_key("www-authenticate"));
    }
}
