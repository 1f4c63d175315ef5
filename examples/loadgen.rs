//! Load generator for mcp-server-entra (and any streamable-HTTP MCP server with bearer auth).
//!
//! Keep-alive HTTP/1.1 connections on loopback, each sending authenticated `tools/call roll_dice`
//! back to back for a fixed time (or a fixed number of requests, `--requests`), checking every
//! answer. Reports throughput and latency percentiles; with `--json`, one JSON line for scripts.
//!
//! ```text
//! cargo run --release --example loadgen -- run --url http://127.0.0.1:8000/mcp --token T \
//!     --mode current --connections 16 --seconds 10
//! cargo run --release --example loadgen -- sessions --url … --token T --count 1000 --hold 30
//! cargo run --release --example loadgen -- coldstart --binary target/release/mcp-server-entra
//! ```
//!
//! Modes: `current` (2026-07-28, stateless, per-request `_meta`), `legacy` (2025-11-25 with a
//! session per connection), `stateless` (2025-11-25 without sessions; pair with a server run with
//! `LEGACY_SESSIONS=false`, which then answers in JSON).

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

#[derive(Parser)]
#[command(about = "Load generator for streamable-HTTP MCP servers (loopback only)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send tools/call roll_dice on N connections for D seconds.
    Run {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long, value_enum, default_value = "current")]
        mode: Mode,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Seconds of load before measuring starts.
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// Stop after exactly this many measured requests (across all connections) instead of
        /// after `--seconds`; with `--warmup 0` the server sees exactly this many tools/calls.
        #[arg(long)]
        requests: Option<u64>,
        /// The server's process id: report the CPU time (user + system, all threads, from
        /// /proc/PID/stat) the server spent per measured request, in µs.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Print one JSON line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Send a mix of hostile requests on N connections for D seconds; every answer must be the
    /// expected refusal.
    Hostile {
        #[arg(long)]
        url: String,
        /// A valid token (some hostile requests carry one with a bad body or origin).
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 4)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Open COUNT legacy sessions and keep them open for HOLD seconds.
    Sessions {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 30)]
        hold: u64,
    },
    /// Spawn `BINARY stdio --dev` RUNS times; report spawn → first tool result.
    Coldstart {
        #[arg(long)]
        binary: String,
        #[arg(long, default_value_t = 20)]
        runs: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum Mode {
    Current,
    Legacy,
    Stateless,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Target {
    host: String,
    addr: String,
    path: String,
    token: String,
}

impl Target {
    fn parse(url: &str, token: &str) -> Result<Target, Error> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("only http:// URLs on loopback")?;
        let (authority, path) = rest
            .split_once('/')
            .map(|(a, p)| (a, format!("/{p}")))
            .unwrap_or((rest, "/".into()));
        let host_only = authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority);
        if !matches!(host_only, "127.0.0.1" | "localhost" | "[::1]") {
            return Err("the load generator only talks to loopback addresses".into());
        }
        let addr = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Target {
            host: authority.to_owned(),
            addr: addr.replace("localhost", "127.0.0.1"),
            path,
            token: token.to_owned(),
        })
    }
}

struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    session: Option<String>,
}

impl Connection {
    async fn open(target: &Target) -> Result<Connection, Error> {
        let stream = TcpStream::connect(&target.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Connection {
            sender,
            session: None,
        })
    }

    async fn post(
        &mut self,
        target: &Target,
        body: &Value,
        extra: &[(&str, &str)],
    ) -> Result<(u16, Option<String>, Bytes), Error> {
        let mut req = Request::post(&target.path)
            .header("host", &target.host)
            .header("authorization", format!("Bearer {}", target.token))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(session) = &self.session {
            req = req.header("mcp-session-id", session);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
        if self.sender.ready().await.is_err() {
            // The server (or a proxy's keepalive_requests) closed the idle connection after the
            // previous answer; nothing of this request was sent, so open a new one.
            self.sender = Connection::open(target).await?.sender;
            self.sender.ready().await?;
        }
        let response = self.sender.send_request(req).await?;
        let status = response.status().as_u16();
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, session, body))
    }

    async fn initialize(&mut self, target: &Target) -> Result<(), Error> {
        let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"loadgen","version":"1"}}});
        let (status, session, _) = self.post(target, &init, &[]).await?;
        if status != 200 {
            return Err(format!("initialize answered {status}").into());
        }
        self.session = session;
        let initialized = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
        let (status, _, _) = self
            .post(target, &initialized, &[("mcp-protocol-version", "2025-11-25")])
            .await?;
        if status != 202 {
            return Err(format!("notifications/initialized answered {status}").into());
        }
        Ok(())
    }
}

fn call_body(mode: Mode, id: u64, sides: u64) -> Value {
    let mut params = json!({"name": "roll_dice", "arguments": {"sides": sides}});
    if mode == Mode::Current {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "loadgen", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}
        });
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

/// Checks one answer: HTTP 200, a JSON-RPC result (JSON or the last SSE event) with a roll in range.
fn check(status: u16, body: &[u8], sides: u64) -> Result<(), String> {
    if status != 200 {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(body)));
    }
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let json_text = if text.trim_start().starts_with('{') {
        text
    } else {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .rfind(|d| d.starts_with('{'))
            .ok_or("no SSE data event")?
    };
    let message: Value = serde_json::from_str(json_text).map_err(|e| e.to_string())?;
    let result = &message["result"];
    if result["isError"] != json!(false) {
        return Err(format!("not a successful result: {message}"));
    }
    let roll = result["structuredContent"]["roll"]
        .as_u64()
        .ok_or("no roll in structuredContent")?;
    if !(1..=sides).contains(&roll) {
        return Err(format!("roll {roll} out of 1..={sides}"));
    }
    Ok(())
}

/// Stops a `run` after a time or after a number of measured requests.
#[derive(Clone, Copy)]
enum Until {
    Seconds(u64),
    Requests(u64),
}

async fn run(
    target: Arc<Target>,
    mode: Mode,
    connections: usize,
    until: Until,
    warmup: u64,
    server_pid: Option<u32>,
    as_json: bool,
) -> Result<(), Error> {
    let measuring = Arc::new(AtomicBool::new(warmup == 0));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    // Measured requests started so far (with `--requests`: a worker claims one before sending).
    let claimed = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..connections {
        let (target, measuring, stop, errors, claimed) = (
            target.clone(),
            measuring.clone(),
            stop.clone(),
            errors.clone(),
            claimed.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut conn = Connection::open(&target).await?;
            if mode == Mode::Legacy {
                conn.initialize(&target).await?;
            }
            let extra: Vec<(&str, &str)> = match mode {
                Mode::Current => vec![
                    ("mcp-protocol-version", "2026-07-28"),
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "roll_dice"),
                ],
                Mode::Legacy | Mode::Stateless => vec![("mcp-protocol-version", "2025-11-25")],
            };
            let mut id = (worker as u64) << 32;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let sides = 2 + id % 99;
                let counted = match until {
                    Until::Requests(n) if measuring.load(Ordering::Relaxed) => {
                        if claimed.fetch_add(1, Ordering::Relaxed) >= n {
                            break;
                        }
                        true
                    }
                    Until::Requests(_) => false,
                    Until::Seconds(_) => true,
                };
                let body = call_body(mode, id, sides);
                let started = Instant::now();
                let outcome = conn.post(&target, &body, &extra).await;
                let elapsed = started.elapsed();
                let ok = match outcome {
                    Ok((status, _, body)) => match check(status, &body, sides) {
                        Ok(()) => true,
                        Err(why) => {
                            if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("bad answer: {why}");
                            }
                            false
                        }
                    },
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("request failed: {e}");
                        }
                        conn = Connection::open(&target).await?;
                        if mode == Mode::Legacy {
                            conn.initialize(&target).await?;
                        }
                        false
                    }
                };
                if ok && counted && measuring.load(Ordering::Relaxed) {
                    latencies.push(elapsed.as_micros().min(u32::MAX as u128) as u32);
                }
            }
            Ok::<_, Error>(latencies)
        }));
    }
    if warmup > 0 {
        tokio::time::sleep(Duration::from_secs(warmup)).await;
        errors.store(0, Ordering::Relaxed);
        measuring.store(true, Ordering::Relaxed);
    }
    let cpu_at_start = server_pid.and_then(cpu_seconds);
    let started = Instant::now();
    let mut all = Vec::new();
    let elapsed = match until {
        Until::Seconds(seconds) => {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            measuring.store(false, Ordering::Relaxed);
            let elapsed = started.elapsed();
            stop.store(true, Ordering::Relaxed);
            for w in workers {
                all.extend(w.await??);
            }
            elapsed
        }
        // The workers stop by themselves once every request is claimed.
        Until::Requests(_) => {
            for w in workers {
                all.extend(w.await??);
            }
            started.elapsed()
        }
    };
    // With `--seconds` a few requests in flight at the stop are served but not counted: a bias
    // of at most one request per connection.
    let server_cpu_us = match (cpu_at_start, server_pid.and_then(cpu_seconds)) {
        (Some(start), Some(end)) if !all.is_empty() => {
            Some(((end - start) * 1e6 / all.len() as f64 * 100.0).round() / 100.0)
        }
        _ => None,
    };
    let seconds = elapsed.as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let rps = all.len() as f64 / seconds;
    let errors = errors.load(Ordering::Relaxed);
    let seconds = match until {
        Until::Seconds(s) => json!(s),
        Until::Requests(_) => json!((seconds * 1000.0).round() / 1000.0),
    };
    if as_json {
        println!(
            "{}",
            json!({"mode": format!("{mode:?}").to_lowercase(), "connections": connections, "seconds": seconds,
                   "requests": all.len(), "errors": errors, "rps": rps.round(),
                   "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
                   "server_cpu_us": server_cpu_us})
        );
    } else {
        println!(
            "mode {mode:?}, {connections} connections, {seconds} s: {} ok, {errors} errors",
            all.len()
        );
        println!(
            "throughput {rps:.0} req/s; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
            pct(0.5),
            pct(0.9),
            pct(0.99)
        );
        if let Some(us) = server_cpu_us {
            println!("server CPU {us:.2} µs per request");
        }
    }
    if errors > 0 {
        return Err(format!("{errors} requests failed").into());
    }
    Ok(())
}

/// CPU seconds (user + system, every thread) process `pid` has used: fields 14 and 15 of
/// /proc/PID/stat, in clock ticks (`getconf CLK_TCK`, 100 on Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it do not.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    let ticks = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    Some((user + system) as f64 / ticks)
}

/// How many kinds of hostile request there are.
const HOSTILE_KINDS: u64 = 13;

/// One hostile request and the statuses it may get.
fn hostile_request(kind: u64, target: &Target) -> (Request<Full<Bytes>>, &'static [u16]) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let init = serde_json::to_vec(&json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"hostile","version":"1"}}}))
    .unwrap_or_default();
    let base = || {
        Request::post(&target.path)
            .header("host", &target.host)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
    };
    let bearer = format!("Bearer {}", target.token);
    let forged_jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6InJhbmRvbSJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl";
    // An unsigned token whose `aud` tries to forge a log line and clear the terminal (CWE-117).
    let log_forger = format!(
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InJhbmRvbSJ9.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(
            json!({"aud": "x\u{1b}[2J\n2026-01-01T00:00:00Z  INFO token verified user=admin", "exp": 4_000_000_000u64})
                .to_string()
        )
    );
    let (builder, body, expected): (_, Vec<u8>, &'static [u16]) = match kind % HOSTILE_KINDS {
        0 => (base(), init, &[401]),
        1 => (base().header("authorization", "Bearer not-a-token"), init, &[401]),
        2 => (
            base().header("authorization", format!("Bearer {forged_jwt}")),
            init,
            &[401],
        ),
        3 => (
            base().header("authorization", &bearer),
            b"{\"jsonrpc\": ".to_vec(),
            // rmcp's answer to a body that is not JSON.
            &[415],
        ),
        4 => (
            base()
                .header("authorization", &bearer)
                .header("origin", "https://evil.example"),
            init,
            &[403],
        ),
        5 => (base().header("authorization", "Basic dXNlcjpwYXNz"), init, &[401]),
        6 => (
            Request::post(format!("{}?access_token=abc", target.path))
                .header("host", &target.host)
                .header("content-type", "application/json"),
            init,
            &[400],
        ),
        // Issue 19: ambiguous requests, an encoded query token, the session cap, log forging.
        7 => (
            base()
                .header("host", "evil.example")
                .header("authorization", &bearer),
            init,
            &[400],
        ),
        8 => (
            Request::post(format!("http://evil.example{}", target.path))
                .header("host", &target.host)
                .header("content-type", "application/json")
                .header("authorization", &bearer),
            init,
            &[400],
        ),
        9 => (
            Request::post(format!("{}?access%5Ftoken=abc", target.path))
                .header("host", &target.host)
                .header("content-type", "application/json")
                .header("authorization", &bearer),
            init,
            &[400],
        ),
        // A legacy session under the 2026-07-28 header: opens one until MAX_SESSIONS, then 503.
        10 => (
            base()
                .header("authorization", &bearer)
                .header("mcp-method", "initialize"),
            init,
            &[200, 503],
        ),
        11 => (
            base().header("authorization", format!("Bearer {log_forger}")),
            init,
            &[401],
        ),
        _ => (
            base()
                .header("authorization", &bearer)
                .header("mcp-session-id", "a")
                .header("mcp-session-id", "b"),
            init,
            &[400],
        ),
    };
    let request = builder.body(Full::new(Bytes::from(body))).unwrap_or_default();
    (request, expected)
}

async fn hostile(target: Arc<Target>, connections: usize, seconds: u64) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for worker in 0..connections as u64 {
        let target = target.clone();
        workers.push(tokio::spawn(async move {
            let (mut sent, mut wrong) = (0u64, 0u64);
            let mut conn = Connection::open(&target).await?;
            let mut kind = worker;
            while Instant::now() < deadline {
                kind += 1;
                let (request, expected) = hostile_request(kind, &target);
                if conn.sender.ready().await.is_err() {
                    // The server closed the connection after its last answer (a refusal sent
                    // before the body was read says `Connection: close`): reconnect, as every
                    // HTTP client does.
                    conn = Connection::open(&target).await?;
                    conn.sender.ready().await?;
                }
                let status = match conn.sender.send_request(request).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.into_body().collect().await;
                        status
                    }
                    Err(_) => {
                        conn = Connection::open(&target).await?;
                        0
                    }
                };
                sent += 1;
                if !expected.contains(&status) {
                    wrong += 1;
                    if wrong <= 3 {
                        eprintln!(
                            "hostile kind {}: expected {expected:?}, got {status}",
                            kind % HOSTILE_KINDS
                        );
                    }
                }
            }
            Ok::<_, Error>((sent, wrong))
        }));
    }
    let (mut sent, mut wrong) = (0, 0);
    for w in workers {
        let (s, x) = w.await??;
        sent += s;
        wrong += x;
    }
    println!(
        "{}",
        json!({"hostile_requests": sent, "unexpected_answers": wrong})
    );
    if wrong > 0 {
        return Err(format!("{wrong} hostile requests got an unexpected answer").into());
    }
    Ok(())
}

async fn sessions(target: Arc<Target>, count: usize, hold: u64) -> Result<(), Error> {
    let mut open = Vec::with_capacity(count);
    let mut conn = Connection::open(&target).await?;
    for _ in 0..count {
        let session_conn = {
            conn.session = None;
            conn.initialize(&target).await?;
            conn.session.take()
        };
        open.push(session_conn.ok_or("no session id issued")?);
    }
    println!("{} sessions open; holding {hold} s", open.len());
    tokio::time::sleep(Duration::from_secs(hold)).await;
    Ok(())
}

async fn coldstart(binary: &str, runs: usize, as_json: bool) -> Result<(), Error> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut child = tokio::process::Command::new(binary)
            .args(["stdio", "--dev"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let script = concat!(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"coldstart","version":"1"}}}"#,
            "\n",
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            "\n",
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#,
            "\n",
        );
        stdin.write_all(script.as_bytes()).await?;
        loop {
            let line = lines
                .next_line()
                .await?
                .ok_or("stdout closed before the tool result")?;
            if line.contains(r#""id":2"#) {
                if !line.contains("Dev User") {
                    return Err(format!("unexpected answer: {line}").into());
                }
                break;
            }
        }
        times.push(started.elapsed());
        drop(stdin);
        let _ = child.wait().await;
    }
    times.sort();
    let median = times[times.len() / 2].as_secs_f64() * 1000.0;
    let min = times[0].as_secs_f64() * 1000.0;
    if as_json {
        println!("{}", json!({"runs": runs, "median_ms": median, "min_ms": min}));
    } else {
        println!("stdio cold start over {runs} runs: median {median:.1} ms, min {min:.1} ms");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    match Cli::parse().command {
        Cmd::Run {
            url,
            token,
            mode,
            connections,
            seconds,
            warmup,
            requests,
            server_pid,
            json,
        } => {
            let until = match requests {
                Some(n) => Until::Requests(n.min(10_000_000)),
                None => Until::Seconds(seconds.min(600)),
            };
            run(
                Arc::new(Target::parse(&url, &token)?),
                mode,
                connections,
                until,
                warmup.min(60),
                server_pid,
                json,
            )
            .await
        }
        Cmd::Hostile {
            url,
            token,
            connections,
            seconds,
        } => {
            hostile(
                Arc::new(Target::parse(&url, &token)?),
                connections.clamp(1, 256),
                seconds.min(600),
            )
            .await
        }
        Cmd::Sessions {
            url,
            token,
            count,
            hold,
        } => {
            sessions(
                Arc::new(Target::parse(&url, &token)?),
                count.min(100_000),
                hold.min(600),
            )
            .await
        }
        Cmd::Coldstart { binary, runs, json } => coldstart(&binary, runs.clamp(1, 200), json).await,
    }
}
