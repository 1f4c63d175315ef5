//! Shared test helpers: test keys, token minting, a fake Entra, and servers on 127.0.0.1:0.
#![allow(dead_code)] // each test module uses a different part

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey};
use mcp_server_entra::EntraMcpServer;
use rmcp::model::ProtocolVersion;
use rmcp::service::{ClientLifecycleMode, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientServiceExt as _, RoleClient, ServiceExt as _};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use transports::http::{AccessControl, HttpConfig, RunningServer};
use verifiers::{
    AccessPolicy, AuthError, EntraConfig, EntraVerifier, Identity, StaticVerifier, TokenVerifier, Unavailable,
};

pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-000000000001";
pub const OTHER_TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-000000000002";

/// A signing key of the fake tenant.
pub struct TestKey {
    pub kid: &'static str,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

impl TestKey {
    pub fn load(kid: &'static str, pem: &[u8]) -> TestKey {
        let encoding = EncodingKey::from_rsa_pem(pem).unwrap();
        let mut jwk = serde_json::to_value(
            jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap(),
        )
        .unwrap();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        TestKey { kid, encoding, jwk }
    }
}

impl TestKey {
    /// This key's JWK tagged with the `issuer` it signs for, as Entra tags the keys of
    /// multi-tenant JWKS (`{tenantid}` stands for the token's `tid`).
    pub fn jwk_for_issuer(&self, issuer: &str) -> Value {
        let mut jwk = self.jwk.clone();
        jwk["issuer"] = json!(issuer);
        jwk
    }

    /// This key's JWK under another `kid`.
    pub fn jwk_with_kid(&self, kid: &str) -> Value {
        let mut jwk = self.jwk.clone();
        jwk["kid"] = json!(kid);
        jwk
    }
}

pub fn key1() -> TestKey {
    TestKey::load("key-1", include_bytes!("../fixtures/key1.pem"))
}

pub fn key2() -> TestKey {
    TestKey::load("key-2", include_bytes!("../fixtures/key2.pem"))
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Signs `claims` under an arbitrary `header` (which should carry `alg` and `kid`).
pub fn mint_raw(key: &TestKey, header: &Value, claims: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap());
    let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    let input = format!("{h}.{c}");
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key.encoding, Algorithm::RS256).unwrap();
    format!("{input}.{signature}")
}

/// Signs `claims` with `key` and the standard header.
pub fn mint(key: &TestKey, claims: &Value) -> String {
    mint_raw(
        key,
        &json!({"alg": "RS256", "typ": "JWT", "kid": key.kid}),
        claims,
    )
}

/// An Entra lookalike on 127.0.0.1: OpenID metadata per tenant and one JWKS. It can rotate keys,
/// count fetches, fail, and hang.
pub struct FakeEntra {
    pub base: String,
    pub state: Arc<FakeState>,
}

#[derive(Default)]
pub struct FakeState {
    pub jwks: Mutex<Vec<Value>>,
    pub metadata_fetches: AtomicUsize,
    pub jwks_fetches: AtomicUsize,
    pub down: AtomicBool,
    pub garbage: AtomicBool,
    pub hang: AtomicBool,
    /// Answers `POST /<tenant>/oauth2/v2.0/token` (the on-behalf-of grant): given the tenant
    /// and the form fields, the status and JSON body.
    pub token_endpoint: Mutex<Option<TokenEndpoint>>,
    /// The keys published with `?appid=<client id>` (app-specific signing keys); the metadata
    /// asked for with that query names a JWKS URL with it.
    pub app_jwks: Mutex<Vec<Value>>,
    /// The `issuer` of the metadata under a path (`<tenant>` or `<tenant>/<policy>`), where it
    /// is not this fake's own form (External ID, B2C).
    pub issuers: Mutex<HashMap<String, String>>,
}

/// A fake token endpoint: `(tenant, form fields) -> (status, JSON body)`.
pub type TokenEndpoint = Arc<dyn Fn(&str, HashMap<String, String>) -> (u16, Value) + Send + Sync>;

impl FakeEntra {
    pub async fn start(keys: &[&TestKey]) -> FakeEntra {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(FakeState::default());
        *state.jwks.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
        let (task_state, task_base) = (state.clone(), base.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (state, base) = (task_state.clone(), task_base.clone());
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req| fake_entra(state.clone(), base.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeEntra { base, state }
    }

    /// The v2 issuer of `tenant`, as this fake writes it.
    pub fn issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.base)
    }

    /// A fake publishing what Entra's `common` JWKS publishes: `org` tagged with the issuer
    /// template (`{tenantid}`, work and school accounts) and `msa` tagged with the consumer
    /// tenant's issuer (personal accounts).
    pub async fn start_common(org: &TestKey, msa: &TestKey) -> FakeEntra {
        let fake = FakeEntra::start(&[]).await;
        fake.set_jwks(vec![
            org.jwk_for_issuer(&fake.issuer("{tenantid}")),
            msa.jwk_for_issuer(&fake.issuer(verifiers::CONSUMER_TENANT_ID)),
        ]);
        fake
    }

    /// Publishes exactly these JWKs.
    pub fn set_jwks(&self, jwks: Vec<Value>) {
        *self.state.jwks.lock().unwrap() = jwks;
    }

    pub fn set_keys(&self, keys: &[&TestKey]) {
        *self.state.jwks.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Valid v2 delegated-token claims for `tenant`, lasting an hour.
    pub fn claims(&self, tenant: &str) -> Value {
        let now = now();
        json!({
            "aud": CLIENT_ID,
            "iss": self.issuer(tenant),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "tid": tenant,
            "oid": "0000aaaa-0000-0000-0000-00000000a11c",
            "sub": "alice-sub",
            "name": "Alice Example",
            "preferred_username": "alice@contoso.example",
            "scp": "access_as_user",
            "azp": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
            "ver": "2.0",
        })
    }

    /// An Entra configuration pointing at this fake, for `tenant` (GUID or keyword).
    pub fn config(&self, tenant: &str) -> EntraConfig {
        let mut cfg = EntraConfig::new(CLIENT_ID, tenant);
        cfg.authority_host = url::Url::parse(&self.base).unwrap();
        cfg.http_timeout = Duration::from_secs(2);
        cfg.key_min_refresh_interval = Duration::from_secs(1);
        cfg
    }

    /// A started Entra verifier for `tenant` requiring `access_as_user`.
    pub async fn verifier(&self, cfg: EntraConfig) -> EntraVerifier {
        let verifier = EntraVerifier::new(cfg, AccessPolicy::scopes(["access_as_user"])).unwrap();
        verifier.start().await;
        verifier
    }
}

async fn fake_entra(
    state: Arc<FakeState>,
    base: String,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if state.hang.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    let path = req.uri().path().to_owned();
    let json_response = |status: u16, body: String| {
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap())
    };
    if path.ends_with("/v2.0/.well-known/openid-configuration") {
        state.metadata_fetches.fetch_add(1, Ordering::SeqCst);
    } else if path == "/common/discovery/v2.0/keys" {
        state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    }
    if state.down.load(Ordering::SeqCst) {
        return json_response(500, "{\"error\":\"server_error\"}".into());
    }
    if state.garbage.load(Ordering::SeqCst) {
        return json_response(200, "<html>not json".into());
    }
    let token_endpoint = state.token_endpoint.lock().unwrap().clone();
    if let (Some(tenant), Some(endpoint)) = (path.strip_suffix("/oauth2/v2.0/token"), token_endpoint) {
        use http_body_util::BodyExt as _;
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let fields: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
        let (status, body) = endpoint(tenant.trim_start_matches('/'), fields);
        return json_response(status, body.to_string());
    }
    // `?appid=<client id>`: the app-specific keys (claims mapping).
    let appid = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find(|p| p.starts_with("appid=")))
        .map(str::to_owned);
    if let Some(tenant) = path
        .strip_suffix("/v2.0/.well-known/openid-configuration")
        .map(|p| p.trim_start_matches('/'))
    {
        let issuer_tenant = match tenant {
            "organizations" | "common" => "{tenantid}",
            "consumers" => verifiers::CONSUMER_TENANT_ID,
            "contoso.example" => TENANT,
            other => other,
        };
        let issuer = state.issuers.lock().unwrap().get(tenant).cloned();
        let jwks_uri = match &appid {
            Some(appid) => format!("{base}/common/discovery/v2.0/keys?{appid}"),
            None => format!("{base}/common/discovery/v2.0/keys"),
        };
        let doc = json!({
            "issuer": issuer.unwrap_or_else(|| format!("{base}/{issuer_tenant}/v2.0")),
            "jwks_uri": jwks_uri,
        });
        return json_response(200, doc.to_string());
    }
    if path == "/common/discovery/v2.0/keys" {
        let keys = match appid {
            Some(appid) if appid == format!("appid={CLIENT_ID}") => state.app_jwks.lock().unwrap().clone(),
            Some(_) => Vec::new(),
            None => state.jwks.lock().unwrap().clone(),
        };
        return json_response(200, json!({ "keys": keys }).to_string());
    }
    json_response(404, "{}".into())
}

/// A server under test on 127.0.0.1:0.
pub struct TestServer {
    pub base: String,
    pub server: RunningServer,
}

impl TestServer {
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }
}

pub async fn spawn_http(verifier: Arc<dyn TokenVerifier>, tweak: impl FnOnce(&mut HttpConfig)) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://127.0.0.1:{}", addr.port());
    let mut config = HttpConfig::new(url::Url::parse(&base).unwrap());
    config.scopes = vec![format!("api://{CLIENT_ID}/access_as_user")];
    config.authorization_servers = vec![format!("https://login.microsoftonline.com/{TENANT}/v2.0")];
    tweak(&mut config);
    let server = transports::http::serve(
        listener,
        config,
        AccessControl::new(verifier),
        EntraMcpServer::new,
    )
    .unwrap();
    TestServer { base, server }
}

/// Any MCP handler (a test's slow or panicking tools) served on 127.0.0.1:0 with the static verifier.
pub fn spawn_handler<H, F>(listener: TcpListener, handler: F) -> (String, RunningServer)
where
    H: rmcp::ServerHandler,
    F: Fn() -> H + Send + Sync + 'static,
{
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = HttpConfig::new(url::Url::parse(&base).unwrap());
    let running =
        transports::http::serve(listener, config, AccessControl::new(static_verifier()), handler).unwrap();
    (base, running)
}

pub const ALICE: &str = "alice-token";
pub const BOB: &str = "bob-token";
pub const NO_SCOPE: &str = "noscope-token";

/// Alice and Bob (with the scope), and a user without it.
pub fn static_verifier() -> Arc<dyn TokenVerifier> {
    let policy = AccessPolicy::scopes(["access_as_user"]);
    let user = |oid: &str, name: &str, scopes: &[&str]| {
        Identity::builder(oid, TENANT)
            .name(name)
            .username(format!("{}@contoso.example", name.to_lowercase()))
            .scopes(scopes.iter().copied())
            .client_app("test-client")
            .build()
    };
    Arc::new(
        StaticVerifier::new(policy)
            .with_token(ALICE, user("alice-oid", "Alice", &["access_as_user"]))
            .with_token(BOB, user("bob-oid", "Bob", &["access_as_user"]))
            .with_token(NO_SCOPE, user("carol-oid", "Carol", &["User.Read"])),
    )
}

/// A verifier that can verify nothing (no signing keys).
pub struct UnavailableVerifier;

#[async_trait]
impl TokenVerifier for UnavailableVerifier {
    async fn verify(&self, _token: &str) -> Result<std::sync::Arc<Identity>, AuthError> {
        Err(Unavailable::NoSigningKeys.into())
    }

    fn readiness(&self) -> verifiers::Readiness {
        verifiers::Readiness::NotReady("no keys".into())
    }
}

pub type Client = RunningService<RoleClient, ()>;

fn transport(url: &str, token: &str) -> StreamableHttpClientTransport<reqwest::Client> {
    StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned()),
    )
}

/// An rmcp client speaking the legacy `initialize` lifecycle (2025-11-25, with a session).
pub async fn legacy_client(url: &str, token: &str) -> Client {
    ().serve(transport(url, token)).await.unwrap()
}

/// An rmcp client speaking the current spec (2026-07-28: `server/discover`, no session).
pub async fn discover_client(url: &str, token: &str) -> Client {
    ().serve_with_lifecycle(
        transport(url, token),
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .unwrap()
}

/// Raw HTTP against the server, for statuses and headers.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The parameters of a `WWW-Authenticate: Bearer k="v", …` challenge.
pub fn challenge_params(value: &str) -> HashMap<String, String> {
    let rest = value.strip_prefix("Bearer ").expect("a Bearer challenge");
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").unwrap();
        let (val, after) = after.split_once('"').unwrap();
        params.insert(key.trim().to_owned(), val.to_owned());
        rest = after.trim_start_matches(',').trim();
    }
    params
}

/// The `Accept` header streamable HTTP requires on a POST.
pub const ACCEPT: &str = "application/json, text/event-stream";

/// POSTs `body` to the MCP endpoint `url`, with `token` as bearer credential when given.
pub async fn post_mcp(url: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = http().post(url).header("accept", ACCEPT).json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

/// Opens a legacy (2025-11-25) session by raw HTTP, sending `accept` on both requests
/// (`initialize`, then `notifications/initialized`), and returns its `Mcp-Session-Id`.
pub async fn open_session_accepting(url: &str, token: &str, accept: &str) -> String {
    let r = http()
        .post(url)
        .header("accept", accept)
        .bearer_auth(token)
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = r.text().await;
    let r = http()
        .post(url)
        .header("accept", accept)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .bearer_auth(token)
        .json(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    session
}

/// [`open_session_accepting`] with the `Accept` header streamable HTTP requires.
pub async fn open_session(url: &str, token: &str) -> String {
    open_session_accepting(url, token, ACCEPT).await
}

/// A minimal JSON-RPC initialize body.
pub fn initialize_body() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}})
}

/// The real binary, serving HTTP, with its JSON log read as it comes.
pub struct Binary {
    /// `http://<address>/mcp`.
    pub url: String,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Killed on drop.
    pub child: tokio::process::Child,
    /// Every log event so far (stderr, `LOG_FORMAT=json`).
    pub log: Arc<Mutex<Vec<Value>>>,
    /// Ends when stderr does (the process exited and every line is in `log`).
    drained: tokio::task::JoinHandle<()>,
}

impl Binary {
    /// Starts `command` (the binary with its arguments and environment; `serve --port 0` and
    /// `LOG_FORMAT=json` are the caller's) and waits for the line that says where it listens.
    pub async fn start(mut command: tokio::process::Command) -> Binary {
        use tokio::io::AsyncBufReadExt as _;
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let log: Arc<Mutex<Vec<Value>>> = Arc::default();
        let address = loop {
            let Some(line) = lines.next_line().await.unwrap() else {
                panic!("the server stopped before serving: {:?}", log.lock().unwrap());
            };
            let event: Value = serde_json::from_str(&line).unwrap_or(Value::String(line));
            let address = event["address"].as_str().map(str::to_owned);
            log.lock().unwrap().push(event);
            if let Some(address) = address {
                break address;
            }
        };
        // Keep draining stderr, so a full pipe never stalls the server.
        let events = log.clone();
        let drained = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let event: Value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                events.lock().unwrap().push(event);
            }
        });
        Binary {
            url: format!("http://{address}/mcp"),
            addr: address.parse().unwrap(),
            child,
            log,
            drained,
        }
    }

    /// Stops the server gracefully (SIGTERM), checks that it exited with success, and returns
    /// its whole log, the lines written while stopping included.
    pub async fn stop(mut self) -> Vec<Value> {
        let pid = self.child.id().unwrap().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        assert!(self.child.wait().await.unwrap().success());
        (&mut self.drained).await.unwrap();
        let log = self.log.lock().unwrap().clone();
        log
    }

    /// The `audit` events logged so far.
    pub fn audit(&self) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|event| event["target"] == "audit")
            .cloned()
            .collect()
    }

    /// The log so far, one JSON event per line, as text.
    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}
