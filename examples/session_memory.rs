//! Heap bytes held per open legacy (2025-11-25) session, counted by the allocator, in two shapes:
//!
//! - `http`: the real HTTP server (`transports::http::serve`, rmcp's `LocalSessionManager` behind
//!   our session cap, the static verifier) with N sessions opened over loopback by a client in
//!   the same process: what one session costs this server.
//! - `service`: N instances of our handler each served by rmcp's service loop (`serve`, the
//!   `serve_inner` every session runs on, whatever session manager creates it) over a transport
//!   that holds nothing (two queued messages, then silence): the floor a leaner `SessionManager`
//!   could not go below without changing rmcp.
//!
//! Only allocations made on the server's threads are counted (a thread-local flag set on the
//! server runtime's threads); the client runs on other threads and shares nothing with the server
//! but loopback sockets. Connections are closed after each session is opened, so idle keep-alive
//! connections are not counted as sessions.
//!
//! ```text
//! cargo run --release --example session_memory -- 1000
//! ```
//! Prints one JSON line: `{"sessions":N,"http_bytes_per_session":…,"service_bytes_per_session":…,
//! "server_message_bytes":…,"client_message_bytes":…}` (the last two: the size of one JSON-RPC
//! message value each way, what every slot of rmcp's channels holds).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use mcp_server_entra::EntraMcpServer;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::ServiceExt as _;
use serde_json::json;
use transports::http::{AccessControl, HttpConfig};
use verifiers::{AccessPolicy, Identity, StaticVerifier};

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting the live bytes allocated on counted threads.
struct Counting;

/// Adds `delta` bytes to the live count when the calling thread is counted.
fn count(delta: isize) {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const TOKEN: &str = "session-memory-token";

fn initialize(id: u64) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "session-memory", "version": "1"}}})
}

fn initialized() -> serde_json::Value {
    json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
}

/// Live counted bytes once the server has settled (connection teardown, timers).
async fn settled() -> isize {
    tokio::time::sleep(Duration::from_millis(500)).await;
    LIVE.load(Ordering::Relaxed)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sessions: usize = std::env::args().nth(1).map_or(Ok(1000), |n| n.parse())?;
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(|| COUNTED.with(|c| c.set(true)))
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;

    // http: the real server, sessions opened over loopback.
    let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut config = HttpConfig::new(url::Url::parse(&base)?);
    config.max_sessions = sessions + 10;
    let identity = Identity::builder("oid", "tid").scopes(["access_as_user"]).build();
    let verifier = StaticVerifier::new(AccessPolicy::scopes(["access_as_user"])).with_token(TOKEN, identity);
    let server = {
        let _guard = server_rt.enter();
        transports::http::serve(
            listener,
            config,
            AccessControl::new(Arc::new(verifier)),
            EntraMcpServer::new,
        )?
    };
    let http_before = server_rt.block_on(settled());
    let url = format!("{base}/mcp");
    client_rt.block_on(async {
        // No pooled connections: each session's connection closes once it is open.
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
        for i in 0..sessions {
            let post = |body: serde_json::Value| {
                client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .header("accept", "application/json, text/event-stream")
                    .json(&body)
            };
            let response = post(initialize(i as u64)).send().await?.error_for_status()?;
            let id = response
                .headers()
                .get("mcp-session-id")
                .ok_or("no session id")?
                .clone();
            response.bytes().await?;
            post(initialized())
                .header("mcp-session-id", id)
                .header("mcp-protocol-version", "2025-11-25")
                .send()
                .await?
                .error_for_status()?;
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    let http_after = server_rt.block_on(settled());
    let open = server.sessions().len();
    if open != sessions {
        return Err(format!("{open} sessions open, expected {sessions}").into());
    }
    server_rt.block_on(server.shutdown());

    // service: the handler on rmcp's service loop, over a transport that holds nothing.
    let service_before = server_rt.block_on(settled());
    // Spawned, so the service set-up runs on a counted thread (`block_on` runs on this one).
    let running = server_rt
        .block_on(server_rt.spawn(async move {
            let mut running = Vec::with_capacity(sessions);
            for i in 0..sessions {
                let incoming: Vec<ClientJsonRpcMessage> = vec![
                    serde_json::from_value(initialize(i as u64))?,
                    serde_json::from_value(initialized())?,
                ];
                let stream = futures::stream::iter(incoming).chain(futures::stream::pending());
                let transport = (futures::sink::drain(), Box::pin(stream));
                running.push(EntraMcpServer::new().serve(transport).await?);
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(running)
        }))?
        .map_err(|e| e.to_string())?;
    let service_after = server_rt.block_on(settled());
    let per = |after: isize, before: isize| (after - before) as f64 / sessions as f64;
    println!(
        "{}",
        json!({
            "sessions": sessions,
            "http_bytes_per_session": per(http_after, http_before).round(),
            "service_bytes_per_session": per(service_after, service_before).round(),
            // A tokio mpsc channel allocates its first block of 32 slots when it is created,
            // whatever its capacity: this many bytes per channel of each message type.
            "server_message_bytes": std::mem::size_of::<ServerJsonRpcMessage>(),
            "client_message_bytes": std::mem::size_of::<ClientJsonRpcMessage>(),
        })
    );
    drop(running);
    Ok(())
}
