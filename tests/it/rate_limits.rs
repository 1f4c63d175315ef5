//! Rate limits (docs/operations.md#rate-limits) through the real server on loopback with the real
//! Entra verifier against the fake Entra: per client address before any token work (the
//! verifier's calls and the fake's JWKS fetches are counted), the client address behind trusted
//! and untrusted proxies, per principal, and per tool (at the HTTP layer and in the handler).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use mcp_server_entra::access::{ToolAccess, ToolOverride, ToolOverrides};
use mcp_server_entra::EntraMcpServer;
use serde_json::json;
use tokio::net::TcpListener;
use transports::http::{AccessControl, HttpConfig, Rate, TrustedProxies};
use verifiers::{AccessPolicy, AuthError, EntraVerifier, Identity, Readiness, TokenVerifier};

use crate::common::*;
use crate::tool_access::{chunked_post, roll_body};

/// Counts every token the server hands to the verifier: any token work at all.
struct Counting {
    inner: EntraVerifier,
    calls: AtomicUsize,
}

#[async_trait]
impl TokenVerifier for Counting {
    async fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.verify(token).await
    }

    fn readiness(&self) -> Readiness {
        self.inner.readiness()
    }
}

/// A server on 127.0.0.1:0 verifying with the fake's keys, counting verifications; `access`
/// gates tools when given.
async fn server(
    fake: &FakeEntra,
    access: Option<Arc<ToolAccess>>,
    tweak: impl FnOnce(&mut HttpConfig),
) -> (TestServer, Arc<Counting>) {
    let verifier = EntraVerifier::new(fake.config(TENANT), AccessPolicy::scopes(["access_as_user"])).unwrap();
    verifier.start().await;
    let counting = Arc::new(Counting {
        inner: verifier,
        calls: AtomicUsize::new(0),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = HttpConfig::new(url::Url::parse(&base).unwrap());
    config.scopes = vec![format!("api://{CLIENT_ID}/access_as_user")];
    config.legacy_sessions = false;
    config.rate_limit_per_address = None;
    config.rate_limit_per_principal = None;
    tweak(&mut config);
    let mut control = AccessControl::new(counting.clone());
    let access = access.unwrap_or_else(ToolAccess::declared);
    control = control.with_tool_gate(access.clone());
    let server = transports::http::serve(listener, config, control, move || {
        EntraMcpServer::from_access(access.clone())
    })
    .unwrap();
    (TestServer { base, server }, counting)
}

fn rate(text: &str) -> Option<Rate> {
    Rate::parse_setting(text).unwrap()
}

/// A 2026-07-28 `tools/call` of `tool` by `token` through `client`, with `X-Forwarded-For`
/// when given.
async fn call(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    tool: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut body = roll_body(1, true);
    body["params"]["name"] = json!(tool);
    body["params"]["arguments"] = if tool == "roll_dice" {
        json!({"sides": 6})
    } else {
        json!({})
    };
    let mut request = client
        .post(url)
        .bearer_auth(token)
        .header("accept", ACCEPT)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .json(&body);
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    request.send().await.unwrap()
}

/// A token signed by a key the fake does not publish under the kid of one it does: a forgery
/// whose refusal takes an RSA verification.
fn forged(fake: &FakeEntra) -> String {
    let (real, other) = (key1(), key2());
    mint_raw(
        &other,
        &json!({"alg": "RS256", "typ": "JWT", "kid": real.kid}),
        &fake.claims(TENANT),
    )
}

#[tokio::test]
async fn a_flood_from_one_address_is_refused_before_any_token_work_while_others_are_served() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let (server, verifier) = server(&fake, None, |c| c.rate_limit_per_address = rate("10/min")).await;
    let url = server.mcp_url();
    let client = http();
    let forged = forged(&fake);
    // An unknown kid makes the verifier fetch Entra's keys again (at most once a second).
    let unknown_kid = mint_raw(
        &key,
        &json!({"alg": "RS256", "typ": "JWT", "kid": "not-published"}),
        &fake.claims(TENANT),
    );
    for i in 0..10 {
        let token = if i % 2 == 0 { &forged } else { &unknown_kid };
        assert_eq!(
            call(&client, &url, token, "whoami", None).await.status(),
            401,
            "request {i}"
        );
    }
    assert_eq!(verifier.calls.load(Ordering::SeqCst), 10);
    let fetches = fake.jwks_fetches();
    for i in 0..40 {
        let token = if i % 2 == 0 { &forged } else { &unknown_kid };
        let refused = call(&client, &url, token, "whoami", None).await;
        assert_eq!(refused.status(), 429, "request {}", 10 + i);
        let retry_after: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        // One request every 6 s comes back.
        assert!((1..=6).contains(&retry_after), "Retry-After: {retry_after}");
        // An unauthenticated caller learns nothing about the configured limit.
        let text = refused.text().await.unwrap();
        assert!(!text.contains("10") && !text.contains("RATE_LIMIT"), "{text}");
    }
    assert_eq!(
        verifier.calls.load(Ordering::SeqCst),
        10,
        "no token work for refused requests"
    );
    assert_eq!(fake.jwks_fetches(), fetches, "no JWKS fetch for refused requests");
    // Probes are exempt.
    for path in ["/health", "/ready"] {
        let probe = client.get(format!("{}{path}", server.base)).send().await.unwrap();
        assert_eq!(probe.status(), 200, "{path}");
    }
    // Another address (127.0.0.2 is loopback too) has its own allowance and is served.
    let other = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap();
    let token = mint(&key, &fake.claims(TENANT));
    let served = call(&other, &url, &token, "whoami", None).await;
    assert_eq!(served.status(), 200);
    assert_eq!(verifier.calls.load(Ordering::SeqCst), 11);
    server.server.shutdown().await;
}

#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let token = mint(&key, &fake.claims(TENANT));
    let trusted = TrustedProxies::parse(&["127.0.0.1".into()], Default::default()).unwrap();
    // (TRUSTED_PROXIES, X-Forwarded-For of each request, expected statuses): two requests per
    // address a minute.
    let rows: [(&str, &TrustedProxies, [&str; 5], [u16; 5]); 2] = [
        (
            "trusted",
            &trusted,
            [
                "203.0.113.1",
                "203.0.113.1",
                "203.0.113.1",
                // A client cannot escape its bucket by prepending an address: the proxy appends.
                "203.0.113.2, 203.0.113.1",
                "203.0.113.2",
            ],
            [200, 200, 429, 429, 200],
        ),
        (
            "untrusted",
            &TrustedProxies::default(),
            [
                "203.0.113.1",
                "203.0.113.2",
                "203.0.113.3",
                "203.0.113.4",
                "203.0.113.5",
            ],
            [200, 200, 429, 429, 429],
        ),
    ];
    for (name, proxies, forwarded, expected) in rows {
        let (server, _) = server(&fake, None, |c| {
            c.rate_limit_per_address = rate("2/min");
            c.trusted_proxies = proxies.clone();
        })
        .await;
        let client = http();
        let mut got = Vec::new();
        for forwarded_for in forwarded {
            got.push(
                call(&client, &server.mcp_url(), &token, "whoami", Some(forwarded_for))
                    .await
                    .status()
                    .as_u16(),
            );
        }
        assert_eq!(got, expected, "{name}");
        server.server.shutdown().await;
    }
}

#[tokio::test]
async fn each_principal_and_each_tool_has_its_own_allowance() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let mut overrides = ToolOverrides::new();
    overrides.insert(
        "roll_dice".into(),
        ToolOverride {
            rate_limit: Some("2/min".into()),
            ..Default::default()
        },
    );
    let access = Arc::new(
        ToolAccess::new(
            &format!("api://{CLIENT_ID}").parse().unwrap(),
            &["access_as_user".into()],
            &overrides,
        )
        .unwrap(),
    );
    let (server, _) = server(&fake, Some(access), |c| {
        c.rate_limit_per_principal = rate("6/min")
    })
    .await;
    let url = server.mcp_url();
    let client = http();
    let alice = mint(&key, &fake.claims(TENANT));
    let mut bob_claims = fake.claims(TENANT);
    bob_claims["oid"] = json!("0000bbbb-0000-0000-0000-000000000b0b");
    let bob = mint(&key, &bob_claims);

    // (caller, tool, expected status, what a 429 names): each request counts against the
    // caller's 6 a minute; roll_dice also against its own 2 a minute per caller.
    let rows = [
        ("alice", "roll_dice", 200, ""),
        ("alice", "roll_dice", 200, ""),
        ("alice", "roll_dice", 429, "roll_dice"),
        ("alice", "whoami", 200, ""),
        ("bob", "roll_dice", 200, ""),
        ("alice", "whoami", 200, ""),
        ("alice", "whoami", 200, ""),
        ("alice", "whoami", 429, "RATE_LIMIT_PER_PRINCIPAL (6/min)"),
        ("bob", "whoami", 200, ""),
    ];
    for (i, (who, tool, status, names)) in rows.into_iter().enumerate() {
        let token = if who == "alice" { &alice } else { &bob };
        let response = call(&client, &url, token, tool, None).await;
        assert_eq!(response.status(), status, "row {i}: {who} {tool}");
        if status == 429 {
            assert!(response.headers().contains_key("retry-after"), "row {i}");
            let text = response.text().await.unwrap();
            assert!(text.contains(names), "row {i}: {text}");
        }
    }
    // A call the HTTP layer cannot see in advance (a chunked legacy body) is counted by the
    // handler: bob's second roll passes, the third is refused with a JSON-RPC error.
    let reply = chunked_post(&server, &bob, &roll_body(2, false)).await;
    assert!(reply["result"]["structuredContent"]["roll"].is_i64(), "{reply}");
    let reply = chunked_post(&server, &bob, &roll_body(3, false)).await;
    assert_eq!(reply["error"]["data"]["error"], "rate_limited", "{reply}");
    assert!(
        reply["error"]["data"]["retry_after_secs"].as_u64().unwrap() >= 1,
        "{reply}"
    );
    // Headers that name another tool than the body do not move a call out of its tool's
    // limit: before 2026-07-28 they are the client's word alone, and the body is counted.
    let mut carol_claims = fake.claims(TENANT);
    carol_claims["oid"] = json!("0000cccc-0000-0000-0000-00000000ca01");
    let carol = mint(&key, &carol_claims);
    let mut statuses = Vec::new();
    for id in 1..=3 {
        let response = client
            .post(&url)
            .bearer_auth(&carol)
            .header("accept", ACCEPT)
            .header("mcp-protocol-version", "2025-11-25")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "whoami")
            .json(&roll_body(id, false))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    server.server.shutdown().await;
}

#[test]
fn a_tool_table_with_only_a_rate_limit_keeps_the_declared_requirement() {
    let mut overrides = ToolOverrides::new();
    overrides.insert(
        "roll_dice".into(),
        ToolOverride {
            rate_limit: Some("5/s".into()),
            ..Default::default()
        },
    );
    let uri = format!("api://{CLIENT_ID}").parse().unwrap();
    let limited = ToolAccess::new(&uri, &["access_as_user".into()], &overrides).unwrap();
    let declared = ToolAccess::new(&uri, &["access_as_user".into()], &Default::default()).unwrap();
    let line = |access: &ToolAccess| {
        access
            .describe()
            .into_iter()
            .find(|l| l.starts_with("roll_dice:"))
            .unwrap()
    };
    assert_eq!(
        line(&limited),
        format!("{}; at most 5/s per caller", line(&declared))
    );
    overrides.get_mut("roll_dice").unwrap().rate_limit = Some("5 per second".into());
    let error = ToolAccess::new(&uri, &[], &overrides).unwrap_err().to_string();
    assert!(
        error.starts_with("[tools.roll_dice] rate_limit is \"5 per second\"; expected a rate such as 100/s"),
        "{error}"
    );
}
