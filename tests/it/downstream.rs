//! Downstream calls on behalf of the caller (docs/ARCHITECTURE.md#calling-apis-on-behalf-of-the-caller): `my_profile` through a fake Entra token
//! endpoint, a fake managed-identity endpoint and a fake Microsoft Graph, all on 127.0.0.1.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcp_server_entra::graph::Graph;
use mcp_server_entra::EntraMcpServer;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use verifiers::{AccessPolicy, ClientCredential, DownstreamConfig, EntraVerifier, ManagedIdentityEndpoint};

use crate::common::*;

pub const SECRET: &str = "test-client-secret-value";
const MI_TOKEN: &str = "managed-identity-federated-assertion";
const MI_CLIENT_ID: &str = "99999999-8888-7777-6666-555555555555";
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/User.Read";
const CERT_PEM: &str = include_str!("../fixtures/client-cert.pem");

/// How the fake token endpoint expects the server to authenticate.
#[derive(Clone, Debug)]
pub enum Expect {
    Secret,
    Certificate,
    /// The federated token file's current content.
    Federated(Arc<Mutex<String>>),
    Managed,
}

/// The users the fake knows: object id → (display name, mail, job title).
fn profile_of(oid: &str) -> Option<Value> {
    let (name, mail, title) = match oid {
        ALICE_OID => ("Alice Example", "alice@contoso.example", "Engineer"),
        BOB_OID => ("Bob Example", "bob@contoso.example", "Designer"),
        FORBIDDEN_OID => ("Dora Forbidden", "dora@contoso.example", "Intern"),
        _ => ("Someone Example", "someone@contoso.example", "Tester"),
    };
    Some(json!({ "displayName": name, "mail": mail, "jobTitle": title }))
}

pub const ALICE_OID: &str = "0000aaaa-0000-0000-0000-00000000a11c";
pub const BOB_OID: &str = "0000aaaa-0000-0000-0000-000000000b0b";
const CONSENT_OID: &str = "0000aaaa-0000-0000-0000-0000000c0de5";
const CLAIMS_OID: &str = "0000aaaa-0000-0000-0000-0000000c1a15";
const FORBIDDEN_OID: &str = "0000aaaa-0000-0000-0000-0000000f0b1d";
const CLAIMS_CHALLENGE: &str = r#"{"access_token":{"capolids":{"essential":true,"values":["c1"]}}}"#;

/// What the fakes saw.
#[derive(Default)]
pub struct Seen {
    pub exchanges: AtomicUsize,
    pub mi_calls: AtomicUsize,
    pub graph_calls: AtomicUsize,
    /// Downstream token → the user it was issued for.
    pub issued: Mutex<HashMap<String, String>>,
    /// Downstream tokens the fake Graph now refuses with 401.
    pub revoked: Mutex<HashSet<String>>,
    /// Failed checks of the fake token endpoint (should stay empty).
    pub problems: Mutex<Vec<String>>,
    /// The `traceparent` of each Graph request (empty when it had none).
    pub graph_traceparents: Mutex<Vec<String>>,
}

/// Fake Entra (with the token endpoint), fake Graph and fake managed-identity endpoint.
pub struct Fakes {
    pub entra: FakeEntra,
    pub key: TestKey,
    pub graph: String,
    pub mi: String,
    pub seen: Arc<Seen>,
}

fn claim(token: &str, name: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get(name)?.as_str().map(str::to_owned)
}

fn cert_only() -> String {
    let start = CERT_PEM.find("-----BEGIN CERTIFICATE-----").unwrap();
    CERT_PEM[start..].to_owned()
}

/// The checks of the fake token endpoint; `Err` names the first that failed.
fn check_exchange(
    base: &str,
    tenant: &str,
    f: &HashMap<String, String>,
    expect: &Expect,
) -> Result<String, String> {
    let field = |name: &str| f.get(name).map(String::as_str).unwrap_or("");
    let want = |name: &str, value: &str| {
        if field(name) == value {
            Ok(())
        } else {
            Err(format!("{name} is {:?}, expected {value:?}", field(name)))
        }
    };
    want("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")?;
    want("requested_token_use", "on_behalf_of")?;
    want("client_id", CLIENT_ID)?;
    want("scope", GRAPH_SCOPE)?;
    let oid = claim(field("assertion"), "oid").ok_or("the assertion is not the caller's token")?;
    if claim(field("assertion"), "aud").as_deref() != Some(CLIENT_ID) {
        return Err("the assertion is not a token for this API".into());
    }
    let assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    match expect {
        Expect::Secret => want("client_secret", SECRET)?,
        Expect::Managed => {
            want("client_assertion_type", assertion_type)?;
            want("client_assertion", MI_TOKEN)?;
        }
        Expect::Federated(current) => {
            want("client_assertion_type", assertion_type)?;
            want("client_assertion", &current.lock().unwrap())?;
        }
        Expect::Certificate => {
            want("client_assertion_type", assertion_type)?;
            if f.contains_key("client_secret") {
                return Err("a secret was sent with a certificate".into());
            }
            let jwt = field("client_assertion");
            let header = jsonwebtoken::decode_header(jwt).map_err(|e| format!("assertion header: {e}"))?;
            let x5t = header.x5t_s256.ok_or("no x5t#S256 header")?;
            if x5t.len() != 43 {
                return Err(format!("x5t#S256 is not a SHA-256 thumbprint: {x5t}"));
            }
            let key = DecodingKey::from_rsa_pem(cert_only().as_bytes()).unwrap();
            let mut validation = Validation::new(Algorithm::RS256);
            let endpoint = format!("{base}/{tenant}/oauth2/v2.0/token");
            validation.set_audience(&[endpoint]);
            validation.set_issuer(&[CLIENT_ID]);
            validation.sub = Some(CLIENT_ID.to_owned());
            validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
            let data = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
                .map_err(|e| format!("the certificate assertion does not verify: {e}"))?;
            if data
                .claims
                .get("jti")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err("no jti".into());
            }
        }
    }
    Ok(oid)
}

impl Fakes {
    pub async fn start(expect: Expect) -> Fakes {
        let key = key1();
        let entra = FakeEntra::start(&[&key]).await;
        let seen = Arc::new(Seen::default());
        let (hook_seen, base) = (seen.clone(), entra.base.clone());
        *entra.state.token_endpoint.lock().unwrap() = Some(Arc::new(move |tenant: &str, fields| {
            let n = hook_seen.exchanges.fetch_add(1, Ordering::SeqCst);
            let oid = match check_exchange(&base, tenant, &fields, &expect) {
                Ok(oid) => oid,
                Err(problem) => {
                    hook_seen.problems.lock().unwrap().push(problem.clone());
                    return (
                        400,
                        json!({"error": "invalid_client", "error_description": problem}),
                    );
                }
            };
            match oid.as_str() {
                CONSENT_OID => (
                    400,
                    json!({"error": "invalid_grant", "error_codes": [65001], "suberror": "consent_required",
                           "error_description": "AADSTS65001: The user or administrator has not consented to use the application."}),
                ),
                CLAIMS_OID => (
                    400,
                    json!({"error": "interaction_required", "error_codes": [53003],
                           "error_description": "AADSTS53003: Access has been blocked by Conditional Access policies.",
                           "claims": CLAIMS_CHALLENGE}),
                ),
                _ => {
                    let token = format!("graph-token-number-{n}-{}", "Zq8v".repeat(8));
                    hook_seen.issued.lock().unwrap().insert(token.clone(), oid);
                    (
                        200,
                        json!({"token_type": "Bearer", "scope": GRAPH_SCOPE, "expires_in": 3599, "access_token": token}),
                    )
                }
            }
        }));
        let graph = serve_fake(seen.clone(), fake_graph).await;
        let mi = serve_fake(seen.clone(), fake_managed_identity).await;
        Fakes {
            entra,
            key,
            graph,
            mi,
            seen,
        }
    }

    /// An Entra access token for the user `oid`, as a client would send it.
    pub fn token_for(&self, oid: &str, name: &str) -> String {
        let mut claims = self.entra.claims(TENANT);
        claims["oid"] = json!(oid);
        claims["sub"] = json!(format!("{oid}-sub"));
        claims["name"] = json!(name);
        mint(&self.key, &claims)
    }

    /// An app-only token (client credentials) with the role the server accepts.
    pub fn app_token(&self) -> String {
        let mut claims = self.entra.claims(TENANT);
        claims["scp"] = Value::Null;
        claims.as_object_mut().unwrap().remove("scp");
        claims["roles"] = json!(["Mcp.Invoke"]);
        claims["idtyp"] = json!("app");
        mint(&self.key, &claims)
    }

    pub async fn verifier(&self) -> EntraVerifier {
        let policy = AccessPolicy::scopes(["access_as_user"]).with_app_roles(["Mcp.Invoke"]);
        let verifier = EntraVerifier::new(self.entra.config(TENANT), policy).unwrap();
        verifier.start().await;
        verifier
    }

    pub fn exchanges(&self) -> usize {
        self.seen.exchanges.load(Ordering::SeqCst)
    }

    /// An HTTP server with `my_profile` on, the server proving itself with `credential`.
    pub async fn server(&self, credential: ClientCredential) -> TestServer {
        let verifier = self.verifier().await;
        let provider = verifier.on_behalf_of(DownstreamConfig::new(credential)).unwrap();
        let downstream = Arc::new(Graph::new(provider, url::Url::parse(&self.graph).unwrap()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = transports::http::HttpConfig::new(url::Url::parse(&base).unwrap());
        let server = transports::http::serve(
            listener,
            config,
            transports::http::AccessControl::new(Arc::new(verifier)),
            move || EntraMcpServer::new().with_downstream(downstream.clone()),
        )
        .unwrap();
        TestServer { base, server }
    }
}

type Handler = fn(Arc<Seen>, Request<hyper::body::Incoming>) -> (u16, Value);

async fn serve_fake(seen: Arc<Seen>, handler: Handler) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let (status, body) = handler(seen.clone(), req);
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body.to_string())))
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
    base
}

/// `GET /v1.0/me` with a token the fake Entra issued: that user's profile.
fn fake_graph(seen: Arc<Seen>, req: Request<hyper::body::Incoming>) -> (u16, Value) {
    seen.graph_calls.fetch_add(1, Ordering::SeqCst);
    seen.graph_traceparents.lock().unwrap().push(
        req.headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    );
    if req.uri().path() != "/v1.0/me" || req.uri().query() != Some("%24select=displayName%2Cmail%2CjobTitle")
    {
        return (
            404,
            json!({"error": {"code": "NotFound", "message": req.uri().to_string()}}),
        );
    }
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    if seen.revoked.lock().unwrap().contains(&token) {
        return (401, json!({"error": {"code": "InvalidAuthenticationToken"}}));
    }
    let Some(oid) = seen.issued.lock().unwrap().get(&token).cloned() else {
        return (401, json!({"error": {"code": "InvalidAuthenticationToken"}}));
    };
    if oid == FORBIDDEN_OID {
        return (403, json!({"error": {"code": "Authorization_RequestDenied"}}));
    }
    (200, profile_of(&oid).unwrap())
}

/// App Service (`X-IDENTITY-HEADER`) and IMDS (`Metadata: true`) token endpoints in one.
fn fake_managed_identity(seen: Arc<Seen>, req: Request<hyper::body::Incoming>) -> (u16, Value) {
    seen.mi_calls.fetch_add(1, Ordering::SeqCst);
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let ok = match req.uri().path() {
        "/msi/token" => {
            header("x-identity-header") == "the-identity-header"
                && query.get("api-version").is_some_and(|v| v == "2019-08-01")
        }
        "/metadata/identity/oauth2/token" => {
            header("metadata") == "true"
                && query.get("api-version").is_some_and(|v| v == "2018-02-01")
                && query.get("client_id").is_some_and(|v| v == MI_CLIENT_ID)
        }
        _ => false,
    };
    if !ok
        || query
            .get("resource")
            .is_none_or(|r| r != "api://AzureADTokenExchange")
    {
        return (400, json!({"error": "invalid_request"}));
    }
    let expires_on = (now() + 86_400).to_string();
    (
        200,
        json!({"access_token": MI_TOKEN, "expires_on": expires_on, "resource": "api://AzureADTokenExchange", "token_type": "Bearer"}),
    )
}

async fn my_profile(url: &str, token: &str) -> CallToolResult {
    let client = discover_client(url, token).await;
    let result = client
        .call_tool(CallToolRequestParams::new("my_profile"))
        .await
        .unwrap();
    client.cancel().await.unwrap();
    result
}

fn text(result: &CallToolResult) -> String {
    result.content[0].as_text().unwrap().text.clone()
}

#[tokio::test]
async fn my_profile_returns_the_graph_profile_for_each_credential_kind() {
    let dir = std::env::temp_dir().join(format!("mcp-entra-obo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("federated-token");
    let current = Arc::new(Mutex::new("federated-token-one".to_owned()));
    std::fs::write(&token_file, "federated-token-one\n").unwrap();
    let cert_file = dir.join("client-cert.pem");
    std::fs::write(&cert_file, CERT_PEM).unwrap();

    type Make = Box<dyn Fn(&Fakes) -> ClientCredential>;
    let rows: Vec<(&str, Expect, Make)> = vec![
        (
            "secret",
            Expect::Secret,
            Box::new(|_| ClientCredential::secret(SECRET).unwrap()),
        ),
        (
            "certificate",
            Expect::Certificate,
            Box::new({
                let cert_file = cert_file.clone();
                move |_| ClientCredential::certificate_file(&cert_file).unwrap()
            }),
        ),
        (
            "workload identity",
            Expect::Federated(current.clone()),
            Box::new({
                let token_file = token_file.clone();
                move |_| ClientCredential::workload_identity(&token_file).unwrap()
            }),
        ),
        (
            "managed identity, App Service",
            Expect::Managed,
            Box::new(|f| {
                let endpoint = url::Url::parse(&format!("{}/msi/token", f.mi)).unwrap();
                ClientCredential::managed_identity(
                    ManagedIdentityEndpoint::AppService {
                        endpoint,
                        header: "the-identity-header".into(),
                    },
                    None,
                )
                .unwrap()
            }),
        ),
        (
            "managed identity, IMDS, user-assigned",
            Expect::Managed,
            Box::new(|f| {
                let endpoint = url::Url::parse(&format!("{}/metadata/identity/oauth2/token", f.mi)).unwrap();
                ClientCredential::managed_identity(
                    ManagedIdentityEndpoint::Imds { endpoint },
                    Some(MI_CLIENT_ID.into()),
                )
                .unwrap()
            }),
        ),
    ];
    for (kind, expect, make) in rows {
        let federated = matches!(expect, Expect::Federated(_));
        let fakes = Fakes::start(expect).await;
        let server = fakes.server(make(&fakes)).await;
        let alice = fakes.token_for(ALICE_OID, "Alice Example");
        let result = my_profile(&server.mcp_url(), &alice).await;
        assert_eq!(result.is_error, Some(false), "{kind}: {}", text(&result));
        assert_eq!(
            result.structured_content.clone().unwrap(),
            json!({"display_name": "Alice Example", "mail": "alice@contoso.example", "job_title": "Engineer"}),
            "{kind}"
        );
        assert_eq!(
            text(&result),
            "Alice Example — alice@contoso.example — Engineer",
            "{kind}"
        );
        assert!(
            fakes.seen.problems.lock().unwrap().is_empty(),
            "{kind}: {:?}",
            fakes.seen.problems
        );
        assert_eq!(fakes.exchanges(), 1, "{kind}");
        if federated {
            // The platform rotates the file: the next exchange must send the new token.
            *current.lock().unwrap() = "federated-token-two".into();
            std::fs::write(&token_file, "federated-token-two").unwrap();
            let bob = fakes.token_for(BOB_OID, "Bob Example");
            let result = my_profile(&server.mcp_url(), &bob).await;
            assert_eq!(
                result.is_error,
                Some(false),
                "{kind} after rotation: {}",
                text(&result)
            );
            assert!(
                fakes.seen.problems.lock().unwrap().is_empty(),
                "{:?}",
                fakes.seen.problems
            );
        }
        if kind.starts_with("managed") {
            assert_eq!(fakes.seen.mi_calls.load(Ordering::SeqCst), 1, "{kind}");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn concurrent_and_repeated_calls_make_one_exchange_and_two_users_never_share_a_token() {
    let fakes = Fakes::start(Expect::Secret).await;
    let server = fakes.server(ClientCredential::secret(SECRET).unwrap()).await;
    let url = server.mcp_url();
    let alice = fakes.token_for(ALICE_OID, "Alice Example");
    let bob = fakes.token_for(BOB_OID, "Bob Example");
    let (a, b, c) = tokio::join!(
        my_profile(&url, &alice),
        my_profile(&url, &alice),
        my_profile(&url, &alice)
    );
    for r in [a, b, c] {
        assert_eq!(r.is_error, Some(false), "{}", text(&r));
    }
    assert_eq!(my_profile(&url, &alice).await.is_error, Some(false));
    assert_eq!(fakes.exchanges(), 1, "four calls by Alice, one exchange");
    let result = my_profile(&url, &bob).await;
    assert_eq!(result.structured_content.unwrap()["display_name"], "Bob Example");
    assert_eq!(fakes.exchanges(), 2, "Bob gets his own exchange");
    let issued = fakes.seen.issued.lock().unwrap();
    let users: HashSet<&String> = issued.values().collect();
    assert_eq!(issued.len(), 2);
    assert_eq!(users.len(), 2, "one token per user");
}

#[tokio::test]
async fn a_downstream_401_drops_the_cached_token_and_exchanges_again() {
    let fakes = Fakes::start(Expect::Secret).await;
    let server = fakes.server(ClientCredential::secret(SECRET).unwrap()).await;
    let alice = fakes.token_for(ALICE_OID, "Alice Example");
    assert_eq!(my_profile(&server.mcp_url(), &alice).await.is_error, Some(false));
    let first: Vec<String> = fakes.seen.issued.lock().unwrap().keys().cloned().collect();
    fakes.seen.revoked.lock().unwrap().extend(first);
    let result = my_profile(&server.mcp_url(), &alice).await;
    assert_eq!(result.is_error, Some(false), "{}", text(&result));
    assert_eq!(fakes.exchanges(), 2, "the refused token was dropped and replaced");
}

#[tokio::test]
async fn refusals_are_tool_errors_that_say_how_to_fix_them() {
    let fakes = Fakes::start(Expect::Secret).await;
    let server = fakes.server(ClientCredential::secret(SECRET).unwrap()).await;
    let rows: Vec<(&str, String, Vec<String>)> = vec![
        (
            "consent missing",
            fakes.token_for(CONSENT_OID, "Carl Consent"),
            vec![
                "consent is missing (AADSTS65001)".into(),
                format!("calling {GRAPH_SCOPE} on the user's behalf"),
                format!("App registrations > the app {CLIENT_ID} > API permissions"),
                "Grant admin consent".into(),
                format!("administrator of tenant {TENANT}"),
            ],
        ),
        (
            "claims challenge",
            fakes.token_for(CLAIMS_OID, "Cleo Claims"),
            vec![
                "interaction_required".into(),
                "the user must sign in again requesting these claims".into(),
                CLAIMS_CHALLENGE.into(),
            ],
        ),
        (
            "app-only caller",
            fakes.app_token(),
            vec![
                "application's own (app-only) token".into(),
                "delegated token".into(),
            ],
        ),
        (
            "downstream 403",
            fakes.token_for(FORBIDDEN_OID, "Dora Forbidden"),
            vec!["the downstream API answered HTTP 403: Forbidden".into()],
        ),
    ];
    for (name, token, expected) in rows {
        let result = my_profile(&server.mcp_url(), &token).await;
        assert_eq!(result.is_error, Some(true), "{name}");
        let message = text(&result);
        for words in expected {
            assert!(message.contains(&words), "{name}: {message:?} lacks {words:?}");
        }
        assert!(
            !message.contains(&token[..40]),
            "{name}: the caller's token is in the error"
        );
        assert!(
            !message.contains("graph-token-"),
            "{name}: a downstream token is in the error"
        );
    }
}

#[tokio::test]
async fn a_hanging_token_endpoint_is_a_timeout_error_not_a_hang() {
    let fakes = Fakes::start(Expect::Secret).await;
    let server = fakes.server(ClientCredential::secret(SECRET).unwrap()).await;
    let alice = fakes.token_for(ALICE_OID, "Alice Example");
    let client = discover_client(&server.mcp_url(), &alice).await;
    fakes.entra.state.hang.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        client.call_tool(CallToolRequestParams::new("my_profile")),
    )
    .await
    .expect("the call ends")
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(result.is_error, Some(true));
    assert_eq!(
        text(&result),
        "Entra's token endpoint did not answer in time; try again later"
    );
}

#[tokio::test]
async fn my_profile_is_listed_only_with_a_downstream_credential() {
    let fakes = Fakes::start(Expect::Secret).await;
    let alice = fakes.token_for(ALICE_OID, "Alice Example");
    let with = fakes.server(ClientCredential::secret(SECRET).unwrap()).await;
    let without = spawn_http(Arc::new(fakes.verifier().await), |_| {}).await;
    for (server, listed) in [(&with, true), (&without, false)] {
        let client = discover_client(&server.mcp_url(), &alice).await;
        let names: Vec<String> = client
            .list_all_tools()
            .await
            .unwrap()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(names.iter().any(|n| n == "my_profile"), listed, "{names:?}");
        let result = client
            .call_tool(CallToolRequestParams::new("my_profile"))
            .await
            .unwrap();
        assert_eq!(result.is_error, Some(!listed));
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn my_profile_works_over_stdio_too() {
    use rmcp::ServiceExt as _;
    use transports::stdio::{StdioAuth, TokenSource};
    let fakes = Fakes::start(Expect::Secret).await;
    let verifier = fakes.verifier().await;
    let provider = verifier
        .on_behalf_of(DownstreamConfig::new(ClientCredential::secret(SECRET).unwrap()))
        .unwrap();
    let downstream = Arc::new(Graph::new(provider, url::Url::parse(&fakes.graph).unwrap()));
    let alice = fakes.token_for(ALICE_OID, "Alice Example");
    let auth = Arc::new(StdioAuth::new(Arc::new(verifier), TokenSource::Fixed(alice)));
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let _ = transports::stdio::serve(EntraMcpServer::new().with_downstream(downstream), auth, server_io)
            .await;
    });
    let client: Client = ().serve(client_io).await.unwrap();
    let result = client
        .call_tool(CallToolRequestParams::new("my_profile"))
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false), "{}", text(&result));
    assert_eq!(
        result.structured_content.unwrap()["mail"],
        "alice@contoso.example"
    );
    assert_eq!(fakes.exchanges(), 1);
}
