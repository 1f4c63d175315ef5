//! One in-process tool call: an rmcp client and the server over an in-memory pipe, no HTTP and no
//! token check (the caller is fixed). Shows the cost of the MCP layer and the tools themselves.
//! Run: `cargo bench --bench tool_call`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use rmcp::model::CallToolRequestParams;
use rmcp::ServiceExt as _;
use serde_json::json;
use transports::stdio::{StdioAuth, TokenSource};
use verifiers::{AccessPolicy, Identity, StaticVerifier};

fn tool_call(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async {
        let identity = Identity::builder("oid", "tid")
            .name("Bench")
            .scopes(["access_as_user"])
            .build();
        let verifier =
            StaticVerifier::new(AccessPolicy::scopes(["access_as_user"])).with_token("t", identity);
        let auth = Arc::new(StdioAuth::new(Arc::new(verifier), TokenSource::Fixed("t".into())));
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        tokio::spawn(transports::stdio::serve(
            mcp_server_entra::EntraMcpServer::new(),
            auth,
            server_io,
        ));
        ().serve(client_io).await.unwrap()
    });
    let args = json!({"sides": 20}).as_object().unwrap().clone();
    c.bench_function("tools/call roll_dice (in-process, rmcp client)", |b| {
        b.to_async(&rt).iter(|| async {
            let params = CallToolRequestParams::new("roll_dice").with_arguments(args.clone());
            client.call_tool(params).await.unwrap()
        })
    });
    c.bench_function("tools/call whoami (in-process, rmcp client)", |b| {
        b.to_async(&rt).iter(|| async {
            client
                .call_tool(CallToolRequestParams::new("whoami"))
                .await
                .unwrap()
        })
    });
}

/// The per-tool check alone (docs/ARCHITECTURE.md#per-tool-authorization): what every allowed `tools/call` pays on top, once in
/// the handler and, over HTTP, once in the auth layer.
fn tool_check(c: &mut Criterion) {
    use mcp_server_entra::access::{ToolAccess, ToolOverride, ToolOverrides};
    let mut overrides = ToolOverrides::new();
    overrides.insert(
        "roll_dice".into(),
        ToolOverride {
            scopes: Some(vec!["Dice.Roll".into()]),
            app_roles: Some(vec!["Dice.Roll.All".into()]),
            ..ToolOverride::default()
        },
    );
    let access = ToolAccess::new(
        &"api://bench".parse().unwrap(),
        &["access_as_user".into()],
        &overrides,
    )
    .unwrap();
    let user = Identity::builder("oid", "tid")
        .scopes(["openid", "access_as_user", "Dice.Roll"])
        .build();
    // Without groups the check never waits: polled once, it is ready.
    use futures::FutureExt as _;
    c.bench_function("ToolAccess::check roll_dice (configured scope, allowed)", |b| {
        b.iter(|| {
            access
                .check(std::hint::black_box("roll_dice"), &user, None)
                .now_or_never()
        })
    });
    c.bench_function("ToolAccess::check whoami (declared floor, allowed)", |b| {
        b.iter(|| {
            access
                .check(std::hint::black_box("whoami"), &user, None)
                .now_or_never()
        })
    });
}

criterion_group!(benches, tool_call, tool_check);
criterion_main!(benches);
