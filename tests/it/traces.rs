//! OpenTelemetry traces through the real binary: an OTLP/HTTP receiver on 127.0.0.1 decodes
//! what the server exports with the official OTLP protobuf definitions (`opentelemetry-proto`),
//! and the span tree and attributes of an authenticated call, a call whose `_meta` carries its
//! own trace context, a refused call and a `my_profile` call (on-behalf-of exchange and Graph,
//! whose request carries the trace) are checked. Also: nothing is exported without `OTEL_*`.

use std::convert::Infallible;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::common::*;
use crate::downstream::{Expect, Fakes, ALICE_OID, SECRET};

const EXE: &str = env!("CARGO_BIN_EXE_mcp-server-entra");

/// SpanKind of the OTLP definitions.
const INTERNAL: i32 = 1;
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
/// Status code ERROR.
const ERROR: i32 = 2;

/// Every span the receiver was sent, and a bell rung on each export.
#[derive(Default)]
struct Received {
    spans: Mutex<Vec<Span>>,
    requests: Mutex<usize>,
    bell: Notify,
}

/// An OTLP/HTTP trace receiver on 127.0.0.1: `POST /v1/traces` with a protobuf body.
async fn receiver() -> (String, Arc<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Received::default());
    let state = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let protobuf = req
                            .headers()
                            .get("content-type")
                            .is_some_and(|v| v == "application/x-protobuf");
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let status = if path == "/v1/traces" {
                            // OTLP/HTTP's default encoding (OTEL_EXPORTER_OTLP_PROTOCOL unset).
                            assert!(protobuf, "an export that is not protobuf");
                            let export = ExportTraceServiceRequest::decode(body).unwrap();
                            let mut spans = state.spans.lock().unwrap();
                            for resource in export.resource_spans {
                                for scope in resource.scope_spans {
                                    spans.extend(scope.spans);
                                }
                            }
                            *state.requests.lock().unwrap() += 1;
                            state.bell.notify_waiters();
                            200
                        } else {
                            404
                        };
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (base, received)
}

impl Received {
    /// Waits (at most 30 s) until `done` holds of the spans received.
    async fn until(&self, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.bell.notified();
            {
                let spans = self.spans.lock().unwrap();
                if done(&spans) {
                    return spans.clone();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let names: Vec<String> = self
                    .spans
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|s| s.name.clone())
                    .collect();
                panic!("the receiver never got {what}; it got {names:?}");
            }
        }
    }
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match attribute(span, key)? {
        AnyValue::StringValue(s) => Some(s),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The one span of `trace` (hex) named `name`.
fn find<'a>(spans: &'a [Span], trace: &str, name: &str) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == trace && s.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "spans named {name:?} in trace {trace}: {found:#?}"
    );
    found[0]
}

fn has(spans: &[Span], trace: &str, name: &str) -> bool {
    spans.iter().any(|s| hex(&s.trace_id) == trace && s.name == name)
}

/// A 2026-07-28 `tools/call`, with a `traceparent` header and optionally one in `_meta`.
async fn call(
    url: &str,
    token: &str,
    tool: &str,
    traceparent: &str,
    meta_traceparent: Option<&str>,
) -> reqwest::Response {
    let mut meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "trace-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    if let Some(parent) = meta_traceparent {
        meta["traceparent"] = json!(parent);
    }
    let arguments = if tool == "roll_dice" {
        json!({"sides": 6})
    } else {
        json!({})
    };
    http()
        .post(url)
        .bearer_auth(token)
        .header("accept", ACCEPT)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .header("traceparent", traceparent)
        .json(&json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": meta}}))
        .send()
        .await
        .unwrap()
}

/// Starts the binary against the fakes, exporting to `otlp` (when given).
async fn start(fakes: &Fakes, otlp: Option<&str>, config: &std::path::Path) -> Binary {
    let mut command = tokio::process::Command::new(EXE);
    command
        .args(["serve", "--port", "0", "--config", &config.display().to_string()])
        .env_clear()
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .env("AZURE_CLIENT_ID", CLIENT_ID)
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_AUTHORITY_HOST", &fakes.entra.base)
        .env("AZURE_CLIENT_SECRET", SECRET)
        .env("GRAPH_BASE_URL", &fakes.graph)
        .current_dir(std::env::temp_dir());
    if let Some(otlp) = otlp {
        // Export every 50 ms, so the test waits for little.
        command
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
            .env("OTEL_BSP_SCHEDULE_DELAY", "50")
            .env("OTEL_SERVICE_NAME", "entra-trace-test");
    }
    Binary::start(command).await
}

#[tokio::test]
async fn one_call_is_one_span_tree_from_the_client_to_graph() {
    let fakes = Fakes::start(Expect::Secret).await;
    let (otlp, received) = receiver().await;
    let dir = std::env::temp_dir().join(format!("mcp-entra-traces-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tools.toml");
    std::fs::write(&config, "[tools.roll_dice]\nscopes = [\"Dice.Roll\"]\n").unwrap();
    let server = start(&fakes, Some(&otlp), &config).await;
    let url = server.url.clone();
    let alice = fakes.token_for(ALICE_OID, "Alice Example");

    // 1. An authenticated call with the client's traceparent header.
    let trace_a = "0af7651916cd43dd8448eb211c80319c";
    let client_span = "b7ad6b7169203331";
    let ok = call(
        &url,
        &alice,
        "whoami",
        &format!("00-{trace_a}-{client_span}-01"),
        None,
    )
    .await;
    assert_eq!(ok.status(), 200);
    // 2. A call whose _meta names its own parent: the MCP span joins that trace, linked to the
    //    HTTP span (SEP-414; the MCP conventions).
    let (trace_b, meta_span) = ("11111111111111111111111111111111", "2222222222222222");
    let (trace_c, header_span) = ("33333333333333333333333333333333", "4444444444444444");
    let both = call(
        &url,
        &alice,
        "whoami",
        &format!("00-{trace_c}-{header_span}-01"),
        Some(&format!("00-{trace_b}-{meta_span}-01")),
    )
    .await;
    assert_eq!(both.status(), 200);
    // 3. A refused call (roll_dice needs Dice.Roll).
    let trace_d = "55555555555555555555555555555555";
    let refused = call(
        &url,
        &alice,
        "roll_dice",
        &format!("00-{trace_d}-6666666666666666-01"),
        None,
    )
    .await;
    assert_eq!(refused.status(), 403);
    // 4. my_profile: on-behalf-of, then Graph.
    let trace_e = "77777777777777777777777777777777";
    let profile = call(
        &url,
        &alice,
        "my_profile",
        &format!("00-{trace_e}-8888888888888888-01"),
        None,
    )
    .await;
    assert_eq!(profile.status(), 200);
    // 5. Hostile text: a 10,000-character tool name and request id never reach a span whole.
    let trace_f = "99999999999999999999999999999999";
    let long = "x".repeat(10_000);
    let hostile = http()
        .post(&url)
        .bearer_auth(&alice)
        .header("accept", ACCEPT)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", &long)
        .header("traceparent", format!("00-{trace_f}-aaaaaaaaaaaaaaaa-01"))
        .json(
            &json!({"jsonrpc": "2.0", "id": long, "method": "tools/call", "params": {
            "name": long, "arguments": {},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "trace-test", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}}}}),
        )
        .send()
        .await
        .unwrap();
    // An unknown tool: the JSON-RPC error, not a failure of the server.
    assert!(hostile.status().is_success(), "{}", hostile.status());

    let spans = received
        .until("every span of the four calls", |spans| {
            has(spans, trace_a, "execute_tool whoami")
                && has(spans, trace_b, "tools/call whoami")
                && has(spans, trace_c, "POST /mcp")
                && has(spans, trace_d, "tools/call roll_dice")
                && has(spans, trace_e, "GET")
                && has(spans, trace_e, "POST /mcp")
                && has(spans, trace_f, "tools/call")
        })
        .await;

    // 1. POST /mcp (SERVER, child of the client's span) → verify token, tools/call whoami
    //    (SERVER) → execute_tool whoami.
    let http_span = find(&spans, trace_a, "POST /mcp");
    assert_eq!(http_span.kind, SERVER);
    assert_eq!(hex(&http_span.parent_span_id), client_span);
    assert_eq!(text(http_span, "http.request.method"), Some("POST"));
    assert_eq!(text(http_span, "http.route"), Some("/mcp"));
    assert_eq!(
        attribute(http_span, "http.response.status_code"),
        Some(&AnyValue::IntValue(200))
    );
    assert_eq!(text(http_span, "client.address"), Some("127.0.0.1"));
    let verify = find(&spans, trace_a, "verify token");
    assert_eq!(verify.parent_span_id, http_span.span_id);
    assert_eq!(
        attribute(verify, "entra.token.cache_hit"),
        Some(&AnyValue::BoolValue(false))
    );
    let mcp = find(&spans, trace_a, "tools/call whoami");
    assert_eq!(mcp.kind, SERVER);
    assert_eq!(mcp.parent_span_id, http_span.span_id);
    // (attribute, value) of the MCP conventions and the caller by its Entra ids.
    for (key, value) in [
        ("mcp.method.name", "tools/call"),
        ("gen_ai.tool.name", "whoami"),
        ("gen_ai.operation.name", "execute_tool"),
        ("jsonrpc.request.id", "41"),
        ("mcp.protocol.version", "2026-07-28"),
        ("network.transport", "tcp"),
        ("network.protocol.name", "http"),
        ("entra.tid", TENANT),
        ("entra.oid", ALICE_OID),
        ("enduser.id", ALICE_OID),
        ("entra.azp", "04b07795-8ddb-461a-bbee-02f9e1bf7b46"),
    ] {
        assert_eq!(text(mcp, key), Some(value), "{key} on {mcp:#?}");
    }
    let tool = find(&spans, trace_a, "execute_tool whoami");
    assert_eq!(tool.kind, INTERNAL);
    assert_eq!(tool.parent_span_id, mcp.span_id);

    // 2. The _meta parent wins; the HTTP span (in the header's trace) is a link.
    let mcp_b = find(&spans, trace_b, "tools/call whoami");
    assert_eq!(hex(&mcp_b.parent_span_id), meta_span);
    let http_c = find(&spans, trace_c, "POST /mcp");
    assert_eq!(hex(&http_c.parent_span_id), header_span);
    assert!(
        mcp_b
            .links
            .iter()
            .any(|l| l.trace_id == http_c.trace_id && l.span_id == http_c.span_id),
        "{mcp_b:#?}"
    );
    // The second verification of the same token is a cache hit.
    let verify_c = find(&spans, trace_c, "verify token");
    assert_eq!(
        attribute(verify_c, "entra.token.cache_hit"),
        Some(&AnyValue::BoolValue(true))
    );

    // 3. The refusal: a 403 on the HTTP span, an error on the MCP span, no tool span.
    let http_d = find(&spans, trace_d, "POST /mcp");
    // A 4xx is the client's error: the HTTP server span is not marked failed.
    assert_eq!(attribute(http_d, "error.type"), None);
    assert_ne!(http_d.status.as_ref().map(|s| s.code), Some(ERROR));
    assert_eq!(
        attribute(http_d, "http.response.status_code"),
        Some(&AnyValue::IntValue(403))
    );
    let mcp_d = find(&spans, trace_d, "tools/call roll_dice");
    assert_eq!(text(mcp_d, "error.type"), Some("insufficient_scope"));
    assert_eq!(mcp_d.status.as_ref().map(|s| s.code), Some(ERROR));
    assert!(!has(&spans, trace_d, "execute_tool roll_dice"));

    // 4. execute_tool my_profile → on_behalf_of → POST (the token endpoint); GET (Graph), whose
    //    request carried this trace with the GET span as parent.
    let tool_e = find(&spans, trace_e, "execute_tool my_profile");
    let obo = find(&spans, trace_e, "on_behalf_of");
    assert_eq!(obo.parent_span_id, tool_e.span_id);
    assert_eq!(
        attribute(obo, "entra.obo.cache_hit"),
        Some(&AnyValue::BoolValue(false))
    );
    let exchange = find(&spans, trace_e, "POST");
    assert_eq!(exchange.kind, CLIENT);
    assert_eq!(exchange.parent_span_id, obo.span_id);
    assert!(text(exchange, "url.full")
        .unwrap()
        .ends_with("/oauth2/v2.0/token"));
    let graph = find(&spans, trace_e, "GET");
    assert_eq!(graph.kind, CLIENT);
    assert_eq!(graph.parent_span_id, tool_e.span_id);
    assert_eq!(
        attribute(graph, "http.response.status_code"),
        Some(&AnyValue::IntValue(200))
    );
    let sent = fakes.seen.graph_traceparents.lock().unwrap().clone();
    assert_eq!(sent, [format!("00-{trace_e}-{}-01", hex(&graph.span_id))]);

    // Each audit event leads to its trace: the MCP span's.
    let audited: Vec<(String, String)> = server
        .audit()
        .iter()
        .filter(|e| e["event"] == "tools/call")
        .map(|e| {
            (
                e["tool"].as_str().unwrap().to_owned(),
                e["trace_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // The hostile call's tool name is audited cut and escaped (CallerText), in its own trace.
    let (last_tool, last_trace) = audited.last().cloned().unwrap();
    assert!(
        last_tool.len() < 200 && last_trace == trace_f,
        "{last_tool} {last_trace}"
    );
    assert_eq!(
        &audited[..audited.len() - 1],
        [
            ("whoami".to_owned(), trace_a.to_owned()),
            ("whoami".to_owned(), trace_b.to_owned()),
            ("roll_dice".to_owned(), trace_d.to_owned()),
            ("my_profile".to_owned(), trace_e.to_owned()),
        ]
    );

    // 5. The span is named after the method alone; the id is cut (128 characters and a note of
    //    what was cut).
    let mcp_f = find(&spans, trace_f, "tools/call");
    assert_eq!(text(mcp_f, "gen_ai.tool.name"), None);
    assert!(text(mcp_f, "jsonrpc.request.id").unwrap().chars().count() < 200);
    assert!(
        spans.iter().all(|s| s.name.len() <= 200),
        "a span name over 200 bytes"
    );

    // Never a token (its claims or its signature), a name or an e-mail address in any span
    // (names only on opt-in).
    let everything = format!("{spans:?}");
    let parts: Vec<&str> = alice.split('.').collect();
    for secret in [
        &parts[1][..40],
        &parts[2][..40],
        "Alice Example",
        "alice@contoso.example",
        SECRET,
        "graph-token-number",
    ] {
        assert!(!everything.contains(secret), "{secret} in the spans");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn nothing_is_exported_without_otel_settings() {
    let fakes = Fakes::start(Expect::Secret).await;
    let (otlp, received) = receiver().await;
    let dir = std::env::temp_dir().join(format!("mcp-entra-notrace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("empty.toml");
    std::fs::write(&config, "").unwrap();
    let server = start(&fakes, None, &config).await;
    let url = server.url.clone();
    let alice = fakes.token_for(ALICE_OID, "Alice Example");
    let trace = "99999999999999999999999999999999";
    let ok = call(
        &url,
        &alice,
        "whoami",
        &format!("00-{trace}-aaaaaaaaaaaaaaaa-01"),
        None,
    )
    .await;
    assert_eq!(ok.status(), 200);
    // The server stops (SIGTERM) with nothing to flush: the receiver was never called.
    server.stop().await;
    assert_eq!(*received.requests.lock().unwrap(), 0);
    drop(otlp);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn over_stdio_the_mcp_span_takes_its_parent_from_meta() {
    use tokio::io::AsyncWriteExt as _;
    let fakes = Fakes::start(Expect::Secret).await;
    let (otlp, received) = receiver().await;
    let alice = fakes.token_for(ALICE_OID, "Alice Example");
    let mut child = tokio::process::Command::new(EXE)
        .arg("stdio")
        .env_clear()
        .env("AZURE_CLIENT_ID", CLIENT_ID)
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_AUTHORITY_HOST", &fakes.entra.base)
        .env("MCP_ACCESS_TOKEN", &alice)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp)
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        // The operator opted in: the caller's name too.
        .env("TRACES_INCLUDE_USER_NAMES", "true")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let (trace, parent) = ("abababababababababababababababab", "cdcdcdcdcdcdcdcd");
    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "trace-test", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "whoami", "arguments": {},
            "_meta": {"traceparent": format!("00-{trace}-{parent}-01")}}}),
    ];
    for message in messages {
        stdin.write_all(format!("{message}\n").as_bytes()).await.unwrap();
    }
    // The answer to the call (id 2), then the spans.
    loop {
        let line = stdout.next_line().await.unwrap().expect("an answer on stdout");
        let message: serde_json::Value = serde_json::from_str(&line).unwrap();
        if message["id"] == 2 {
            assert!(message["result"]["structuredContent"].is_object(), "{message}");
            break;
        }
    }
    let spans = received
        .until("the stdio call's spans", |spans| {
            has(spans, trace, "tools/call whoami") && has(spans, trace, "execute_tool whoami")
        })
        .await;
    let mcp = find(&spans, trace, "tools/call whoami");
    assert_eq!(mcp.kind, SERVER);
    assert_eq!(hex(&mcp.parent_span_id), parent);
    assert_eq!(text(mcp, "network.transport"), Some("pipe"));
    assert_eq!(text(mcp, "jsonrpc.request.id"), Some("2"));
    assert_eq!(text(mcp, "entra.oid"), Some(ALICE_OID));
    assert_eq!(text(mcp, "user.full_name"), Some("Alice Example"));
    let tool = find(&spans, trace, "execute_tool whoami");
    assert_eq!(tool.parent_span_id, mcp.span_id);
}
