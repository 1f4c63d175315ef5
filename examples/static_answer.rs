//! The ceiling for `bench/run.sh`: a server that does no work.
//!
//! It answers every POST with a fixed, valid MCP answer (an `initialize` result with a session id,
//! `202` for notifications, a `tools/call roll_dice` result that rolled a 1 otherwise), on the same
//! stack as the real server (hyper 1, Tokio multi-thread, `TCP_NODELAY`) but with no auth, no JSON
//! parsing and no tool. What the load generator reaches against it is what the machine can carry;
//! every figure of the real server is reported as a fraction of it.
//!
//! ```text
//! cargo run --release --example static_answer          # prints "listening 127.0.0.1:PORT"
//! ```
//!
//! Loopback only, port 0: the operating system picks a free port.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A `tools/call` result the load generator accepts for any `sides` ≥ 1.
const CALL_RESULT: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"Static rolled a 1 (1–6)."}],"structuredContent":{"roll":1,"sides":6},"isError":false}}"#;
const INITIALIZE_RESULT: &str = r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"static","version":"1"}}}"#;

async fn answer(request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the whole body, as any server must before it answers.
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    let mut response = if contains(b"\"notifications/") {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::ACCEPTED;
        r
    } else if contains(b"\"initialize\"") {
        let mut r = Response::new(Full::new(Bytes::from_static(INITIALIZE_RESULT.as_bytes())));
        r.headers_mut()
            .insert("mcp-session-id", http::HeaderValue::from_static("static-session"));
        r
    } else {
        Response::new(Full::new(Bytes::from_static(CALL_RESULT.as_bytes())))
    };
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}
