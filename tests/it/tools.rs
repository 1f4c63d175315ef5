//! The three tools and the card resource, through a real rmcp client over an in-memory pipe.

use std::sync::Arc;

use rmcp::model::{CallToolRequestParams, CallToolResult, ReadResourceRequestParams, ResourceContents};
use rmcp::ServiceExt as _;
use serde_json::{json, Value};
use transports::stdio::{StdioAuth, TokenSource};

use crate::common::{static_verifier, Client, ALICE};

async fn connect() -> Client {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let auth = Arc::new(StdioAuth::new(
        static_verifier(),
        TokenSource::Fixed(ALICE.into()),
    ));
    tokio::spawn(async move {
        let _ = transports::stdio::serve(mcp_server_entra::EntraMcpServer::new(), auth, server_io).await;
    });
    ().serve(client_io).await.unwrap()
}

async fn call(client: &Client, tool: &'static str, args: Value) -> CallToolResult {
    let params = CallToolRequestParams::new(tool).with_arguments(args.as_object().unwrap().clone());
    client.call_tool(params).await.unwrap()
}

fn text(result: &CallToolResult) -> String {
    result.content[0].as_text().unwrap().text.clone()
}

#[tokio::test]
async fn whoami_returns_the_callers_identity_as_text_and_structured_content() {
    let client = connect().await;
    let result = call(&client, "whoami", json!({})).await;
    assert_eq!(result.is_error, Some(false));
    assert_eq!(text(&result), "You are Alice (alice@contoso.example).");
    assert_eq!(
        result.structured_content.unwrap(),
        json!({
            "name": "Alice", "username": "alice@contoso.example", "object_id": "alice-oid",
            "tenant_id": crate::common::TENANT, "scopes": ["access_as_user"], "roles": [], "app_id": "test-client"
        })
    );
}

#[tokio::test]
async fn every_tool_declares_an_output_schema_that_its_result_matches() {
    let client = connect().await;
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["greeting_card", "roll_dice", "whoami"]);
    for tool in &tools {
        let schema = tool
            .output_schema
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no output schema", tool.name));
        let result = call(
            &client,
            match tool.name.as_ref() {
                "whoami" => "whoami",
                "roll_dice" => "roll_dice",
                _ => "greeting_card",
            },
            json!({}),
        )
        .await;
        let structured = result.structured_content.unwrap();
        let required = schema["required"].as_array().unwrap();
        for field in required {
            let field = field.as_str().unwrap();
            assert!(structured.get(field).is_some(), "{}: {field} missing", tool.name);
        }
        for key in structured.as_object().unwrap().keys() {
            assert!(
                schema["properties"].get(key).is_some(),
                "{}: {key} not in schema",
                tool.name
            );
        }
    }
}

#[tokio::test]
async fn roll_dice_rolls_within_range_and_defaults_to_six() {
    let client = connect().await;
    for _ in 0..20 {
        let result = call(&client, "roll_dice", json!({"sides": 20})).await;
        let roll = result.structured_content.clone().unwrap();
        let n = roll["roll"].as_i64().unwrap();
        assert!((1..=20).contains(&n), "{n}");
        assert_eq!(roll["sides"], 20);
        assert_eq!(text(&result), format!("Alice rolled a {n} (1–20)."));
    }
    let default = call(&client, "roll_dice", json!({})).await;
    assert_eq!(default.structured_content.unwrap()["sides"], 6);
}

#[tokio::test]
async fn roll_dice_refuses_out_of_range_sides_with_a_clear_tool_error() {
    let client = connect().await;
    for sides in [
        json!(0),
        json!(1),
        json!(-5),
        json!(1_000_000_000_000i64),
        json!(1001),
    ] {
        let result = call(&client, "roll_dice", json!({ "sides": sides })).await;
        assert_eq!(result.is_error, Some(true), "{sides}");
        assert_eq!(
            text(&result),
            format!("sides must be a whole number from 2 to 1000, got {sides}")
        );
    }
}

#[tokio::test]
async fn roll_dice_refuses_a_string_with_a_clear_tool_error() {
    let client = connect().await;
    let result = call(&client, "roll_dice", json!({"sides": "twenty"})).await;
    assert_eq!(result.is_error, Some(true));
    assert_eq!(
        text(&result),
        "failed to deserialize parameters: invalid type: string \"twenty\", expected i64"
    );
}

#[tokio::test]
async fn greeting_card_returns_text_embedded_app_and_structured_content() {
    let client = connect().await;
    let result = call(&client, "greeting_card", json!({"message": "Happy launch day!"})).await;
    assert_eq!(result.is_error, Some(false));
    assert_eq!(text(&result), "A greeting card for Alice: Happy launch day!");
    let resource = result.content[1].as_resource().unwrap();
    let ResourceContents::TextResourceContents {
        uri, mime_type, text, ..
    } = &resource.resource
    else {
        panic!("expected text contents");
    };
    assert_eq!(uri, "ui://acme/greeting-card");
    assert_eq!(mime_type.as_deref(), Some("text/html;profile=mcp-app"));
    assert!(text.contains("<span id=\"username\">Alice</span>"));
    assert!(text.contains("Happy launch day!"));
    assert_eq!(
        result.structured_content.unwrap(),
        json!({"username": "Alice", "message": "Happy launch day!"})
    );
}

#[tokio::test]
async fn greeting_card_escapes_html_exactly_once() {
    let client = connect().await;
    let result = call(&client, "greeting_card", json!({"message": "<script>&\"'"})).await;
    let resource = result.content[1].as_resource().unwrap();
    let ResourceContents::TextResourceContents { text, .. } = &resource.resource else {
        panic!()
    };
    assert!(
        text.contains("&lt;script&gt;&amp;&quot;&#39;"),
        "escaped form missing"
    );
    assert!(!text.contains("&amp;lt;"), "double-escaped");
    assert!(!text.contains("<script>&"), "unescaped");
    // Structured content carries the message as data, unescaped.
    assert_eq!(result.structured_content.unwrap()["message"], "<script>&\"'");
}

#[tokio::test]
async fn greeting_card_refuses_an_over_long_message() {
    let client = connect().await;
    let result = call(
        &client,
        "greeting_card",
        json!({"message": "x".repeat(100 * 1024)}),
    )
    .await;
    assert_eq!(result.is_error, Some(true));
    assert_eq!(
        text(&result),
        "message is 102400 characters long; the limit is 500"
    );
}

#[tokio::test]
async fn greeting_card_tool_meta_points_at_the_ui_resource() {
    let client = connect().await;
    let tools = client.list_all_tools().await.unwrap();
    let card = tools.iter().find(|t| t.name == "greeting_card").unwrap();
    let meta = serde_json::to_value(card.meta.as_ref().unwrap()).unwrap();
    assert_eq!(
        meta["ui"],
        json!({"resourceUri": "ui://acme/greeting-card", "visibility": ["model", "app"]})
    );
}

#[tokio::test]
async fn card_resource_is_listed_and_readable_with_its_ui_meta() {
    let client = connect().await;
    let listed = client.list_resources(None).await.unwrap();
    assert_eq!(listed.resources.len(), 1);
    let card = &listed.resources[0];
    assert_eq!(card.uri, "ui://acme/greeting-card");
    assert_eq!(card.mime_type.as_deref(), Some("text/html;profile=mcp-app"));
    let meta = serde_json::to_value(card.meta.as_ref().unwrap()).unwrap();
    assert_eq!(meta["ui"]["prefersBorder"], true);
    assert!(meta["ui"]["csp"].is_object());

    let read = client
        .read_resource(ReadResourceRequestParams::new("ui://acme/greeting-card"))
        .await
        .unwrap();
    let ResourceContents::TextResourceContents {
        text,
        mime_type,
        meta,
        ..
    } = &read.contents[0]
    else {
        panic!()
    };
    assert_eq!(mime_type.as_deref(), Some("text/html;profile=mcp-app"));
    assert!(text.starts_with("<!doctype html>"));
    assert!(meta.is_some());

    let missing = client
        .read_resource(ReadResourceRequestParams::new("ui://acme/nope"))
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("no resource ui://acme/nope"), "{missing}");
}

#[tokio::test]
async fn server_advertises_the_mcp_apps_extension() {
    let client = connect().await;
    let info = serde_json::to_value(client.peer_info().unwrap()).unwrap();
    assert_eq!(
        info["capabilities"]["extensions"]["io.modelcontextprotocol/ui"]["mimeTypes"],
        json!(["text/html;profile=mcp-app"])
    );
    assert_eq!(info["serverInfo"]["name"], "mcp-server-entra");
}
