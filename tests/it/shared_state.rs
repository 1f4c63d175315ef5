//! State shared by replicas in a real Redis (Debian's `redis-server`, installed by
//! `tests/redis/ensure.sh` and started here on a Unix socket with a password): the
//! downstream-token cache. Three replicas of the real binary, the fake Entra token endpoint and
//! the fake Microsoft Graph of `downstream.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::common::*;
use crate::downstream::{Expect, Fakes, ALICE_OID, BOB_OID, SECRET};

const EXE: &str = env!("CARGO_BIN_EXE_mcp-server-entra");
const PASSWORD: &str = "redis-test-password-Vq3";
/// Two AES-256 keys (32 bytes, base64).
const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
const CAROL_OID: &str = "0000aaaa-0000-0000-0000-0000000ca201";
const DAVE_OID: &str = "0000aaaa-0000-0000-0000-0000000da4e1";

/// A `redis-server` of its own, on a Unix socket in a scratch directory; killed on drop.
struct Redis {
    child: std::process::Child,
    socket: PathBuf,
}

impl Redis {
    fn start(dir: &Path) -> Redis {
        let ensure = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/redis/ensure.sh");
        let found = std::process::Command::new("bash").arg(ensure).output().unwrap();
        assert!(
            found.status.success(),
            "{}",
            String::from_utf8_lossy(&found.stderr)
        );
        let server = String::from_utf8(found.stdout).unwrap().trim().to_owned();
        let socket = dir.join("redis.sock");
        let child = std::process::Command::new(server)
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--save", "", "--appendonly", "no"])
            .args(["--requirepass", PASSWORD, "--dir"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let redis = Redis { child, socket };
        // Ready when it answers PING (at most 10 s).
        for _ in 0..200 {
            if redis.cli(&["PING"]).trim() == "PONG" {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not answer PING");
    }

    fn url(&self) -> String {
        format!("redis+unix://{}?pass={PASSWORD}", self.socket.display())
    }

    /// `redis-cli` against this server; its standard output.
    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .arg("-s")
            .arg(&self.socket)
            .args(["--no-auth-warning", "-a", PASSWORD])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn replica(fakes: &Fakes, dir: &Path, redis_url: &str, keys: &str) -> Binary {
    let mut command = tokio::process::Command::new(EXE);
    command
        .args(["serve", "--port", "0"])
        .env_clear()
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .env("AZURE_CLIENT_ID", CLIENT_ID)
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_AUTHORITY_HOST", &fakes.entra.base)
        .env("AZURE_CLIENT_SECRET", SECRET)
        .env("GRAPH_BASE_URL", &fakes.graph)
        .env("REDIS_URL", redis_url)
        .env("REDIS_TIMEOUT_MS", "300")
        .env("DOWNSTREAM_CACHE_KEYS", keys)
        .current_dir(dir);
    Binary::start(command).await
}

/// `my_profile` as the caller of `token`, on the 2026-07-28 path; asserts it worked.
async fn my_profile(url: &str, token: &str) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "my_profile", "arguments": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}}});
    let r = http()
        .post(url)
        .header("accept", ACCEPT)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "my_profile")
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("displayName") || text.contains("display_name"),
        "{text}"
    );
}

#[tokio::test]
async fn one_exchange_serves_every_replica_and_redis_holds_only_ciphertext() {
    let fakes = Fakes::start(Expect::Secret).await;
    let dir = std::env::temp_dir().join(format!("mcp-entra-shared-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let redis = Redis::start(&dir);
    let url = redis.url();
    let r1 = replica(&fakes, &dir, &url, K1).await;
    let r2 = replica(&fakes, &dir, &url, K1).await;
    let r3 = replica(&fakes, &dir, &url, K1).await;
    let alice = fakes.token_for(ALICE_OID, "Alice Example");
    let bob = fakes.token_for(BOB_OID, "Bob Example");

    // (caller, replicas called in turn, exchanges seen after)
    let rows = [(&alice, [&r1, &r2, &r3], 1), (&bob, [&r3, &r1, &r2], 2)];
    for (token, replicas, exchanges) in rows {
        for replica in replicas {
            my_profile(&replica.url, token).await;
        }
        assert_eq!(
            fakes.exchanges(),
            exchanges,
            "one exchange per user for three replicas"
        );
    }

    // What Redis holds: two entries, named by digests, neither holding a token.
    let keys: Vec<String> = redis.cli(&["--scan"]).lines().map(str::to_owned).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let issued: Vec<String> = fakes.seen.issued.lock().unwrap().keys().cloned().collect();
    for key in &keys {
        assert!(key.starts_with("mcp-server-entra:obo:"), "{key}");
        for name in [ALICE_OID, BOB_OID, TENANT] {
            assert!(!key.contains(name), "{key}");
        }
        let dump = redis.cli(&["GET", key]);
        for token in &issued {
            assert!(!dump.contains(token.as_str()), "a token readable in Redis");
            assert!(!dump.contains(&token[..16]), "part of a token readable in Redis");
        }
    }

    // Key rotation: a replica with the new key first reads what the old key wrote; what it
    // writes, a replica with only the old key cannot read (it exchanges), and a replica with
    // only the new key cannot read the old entries.
    let rotated = replica(&fakes, &dir, &url, &format!("{K2},{K1}")).await;
    my_profile(&rotated.url, &alice).await;
    assert_eq!(fakes.exchanges(), 2, "the old entry read with the old key");
    let carol = fakes.token_for(CAROL_OID, "Carol Example");
    my_profile(&rotated.url, &carol).await;
    assert_eq!(fakes.exchanges(), 3);
    my_profile(&r1.url, &carol).await;
    assert_eq!(
        fakes.exchanges(),
        4,
        "the old key cannot read the new key's entry"
    );
    let new_only = replica(&fakes, &dir, &url, K2).await;
    my_profile(&new_only.url, &bob).await;
    assert_eq!(fakes.exchanges(), 5, "a retired key's entries are not readable");

    // Redis gone: every replica still answers, exchanging for itself, each call bounded.
    drop(redis);
    let dave = fakes.token_for(DAVE_OID, "Dave Example");
    let started = std::time::Instant::now();
    my_profile(&r2.url, &dave).await;
    my_profile(&r2.url, &alice).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        fakes.exchanges(),
        6,
        "dave exchanged; alice's token was still in r2's own cache"
    );
    let log = r2.log_text();
    assert!(!log.contains(PASSWORD), "the Redis password in the log");
    assert!(fakes.seen.problems.lock().unwrap().is_empty());
    for replica in [r1, r2, r3, rotated, new_only] {
        replica.stop().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A replica with legacy sessions shared in `redis_url` (no server credential).
async fn session_replica(fake: &FakeEntra, dir: &Path, redis_url: &str) -> Binary {
    session_replica_with(fake, dir, redis_url, &[]).await
}

async fn session_replica_with(fake: &FakeEntra, dir: &Path, redis_url: &str, env: &[(&str, &str)]) -> Binary {
    let mut command = tokio::process::Command::new(EXE);
    command
        .args(["serve", "--port", "0"])
        .env_clear()
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .env("AZURE_CLIENT_ID", CLIENT_ID)
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_AUTHORITY_HOST", &fake.base)
        .env("REDIS_URL", redis_url)
        .env("REDIS_TIMEOUT_MS", "300")
        .current_dir(dir);
    for (name, value) in env {
        command.env(name, value);
    }
    Binary::start(command).await
}

/// `tools/call whoami` in `session` on `url`: the status, and the body.
async fn whoami_in(url: &str, token: &str, session: &str) -> (u16, String) {
    let r = http()
        .post(url)
        .header("accept", ACCEPT)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .bearer_auth(token)
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}}}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `GET` resuming `session`'s stream after `last_event_id`, on `url`, as the caller of `token`.
async fn resume(url: &str, token: &str, session: &str, last_event_id: &str) -> reqwest::Response {
    http()
        .get(url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", last_event_id)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_legacy_session_is_served_by_every_replica_to_its_owner_only() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let dir = std::env::temp_dir().join(format!("mcp-entra-shared-sessions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let redis = Redis::start(&dir);
    let url = redis.url();
    let mut r1 = session_replica(&fake, &dir, &url).await;
    let r2 = session_replica(&fake, &dir, &url).await;
    let r3 = session_replica(&fake, &dir, &url).await;
    let alice = mint(&key, &fake.claims(TENANT));
    let mut other = fake.claims(TENANT);
    other["oid"] = json!("0000aaaa-0000-0000-0000-0000000e7e11");
    let mallory = mint(&key, &other);

    // Opened on r1, used on r2 and r3 without a new initialize.
    let session = open_session(&r1.url, &alice).await;
    for replica in [&r2, &r3, &r1] {
        let (status, body) = whoami_in(&replica.url, &alice, &session).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("Alice Example"), "{body}");
    }
    // A stream dropped mid-call on r2 (after its first event) resumes on r3 with
    // Last-Event-ID, the answer included.
    let mut call = http()
        .post(&r2.url)
        .header("accept", "text/event-stream, application/json")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .bearer_auth(&alice)
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 200);
    let first = String::from_utf8(call.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    let last_event_id = first
        .lines()
        .find_map(|line| line.strip_prefix("id:"))
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|| panic!("no event id in {first:?}"));
    drop(call);
    let resumed = resume(&r3.url, &alice, &session, &last_event_id).await;
    assert_eq!(resumed.status(), 200);
    let replayed = resumed.text().await.unwrap();
    assert!(
        replayed.contains("\"id\":9") && replayed.contains("Alice Example"),
        "{replayed}"
    );
    // Nobody else can resume it, on any replica.
    assert_eq!(
        resume(&r1.url, &mallory, &session, &last_event_id).await.status(),
        404
    );

    // Another caller with the id: 404 everywhere, also on a replica that never saw it.
    let r4 = session_replica(&fake, &dir, &url).await;
    for replica in [&r4, &r1, &r2, &r3] {
        assert_eq!(whoami_in(&replica.url, &mallory, &session).await.0, 404);
    }
    // The owner still can on r4 (mallory's attempt bound nothing there).
    assert_eq!(whoami_in(&r4.url, &alice, &session).await.0, 200);

    // r1 dies: the session goes on elsewhere.
    r1.child.start_kill().unwrap();
    r1.child.wait().await.unwrap();
    assert_eq!(whoami_in(&r2.url, &alice, &session).await.0, 200);

    // DELETE on r3 ends it everywhere, r2's copy included.
    let deleted = http()
        .delete(&r3.url)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    for replica in [&r2, &r3, &r4] {
        assert_eq!(whoami_in(&replica.url, &alice, &session).await.0, 404);
    }

    // Redis down: a new session, and a restore, are 503 with Retry-After; the 2026-07-28
    // protocol is unaffected.
    let kept = open_session(&r2.url, &alice).await;
    let ready = |url: &str| url.trim_end_matches("/mcp").to_owned() + "/ready";
    let r = http().get(ready(&r3.url)).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "ready; redis: ok".to_owned())
    );
    drop(redis);
    // /ready says so, and stays 200: the replica still serves.
    let r = http().get(ready(&r3.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with("ready; redis: ") && body.contains("503"),
        "{body}"
    );
    let r = http()
        .post(&r3.url)
        .header("accept", ACCEPT)
        .bearer_auth(&alice)
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let (status, body) = whoami_in(&r3.url, &alice, &kept).await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = whoami_in(&r2.url, &alice, &kept).await;
    assert_eq!(status, 200, "a session already here goes on: {body}");
    let client = discover_client(&r3.url, &alice).await;
    assert!(!client.list_all_tools().await.unwrap().is_empty());
    client.cancel().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_callers_session_share_holds_on_every_replica_and_an_evicted_session_is_gone_everywhere() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let dir = std::env::temp_dir().join(format!("mcp-entra-shared-share-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let redis = Redis::start(&dir);
    let one = [("MAX_SESSIONS_PER_PRINCIPAL", "1")];
    let r1 = session_replica_with(&fake, &dir, &redis.url(), &one).await;
    let r2 = session_replica_with(&fake, &dir, &redis.url(), &one).await;
    let alice = mint(&key, &fake.claims(TENANT));
    let first = open_session(&r1.url, &alice).await;
    assert_eq!(whoami_in(&r2.url, &alice, &first).await.0, 200, "restored on r2");
    // A second session on r1 evicts the first (idle): on every replica, not only on r1.
    let second = open_session(&r1.url, &alice).await;
    for replica in [&r1, &r2] {
        assert_eq!(whoami_in(&replica.url, &alice, &first).await.0, 404);
    }
    // On r2 the second takes the caller's one place there (the first was closed when found gone).
    assert_eq!(whoami_in(&r2.url, &alice, &second).await.0, 200);
    // Another deployment on the same Redis (its own REDIS_KEY_PREFIX) sees none of it.
    let other = session_replica_with(
        &fake,
        &dir,
        &redis.url(),
        &[("REDIS_KEY_PREFIX", "other-deployment")],
    )
    .await;
    assert_eq!(whoami_in(&other.url, &alice, &second).await.0, 404);
    let keys = redis.cli(&["--scan", "--pattern", "mcp-server-entra:session-owner:*"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
