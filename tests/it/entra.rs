//! The Entra verifier through the real HTTP server, against a fake Entra on 127.0.0.1. The rules
//! of docs/ARCHITECTURE.md#token-verification (the claim table in `verifiers/src/entra/mod.rs`) are one table,
//! `token_rules`: one row per rule with the exact status, `error` and the words of
//! `error_description`. Behaviours over time (caching, key rollover, outages) have their own tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use verifiers::{AccessPolicy, EntraConfig, EntraVerifier, TokenVerifier, CONSUMER_TENANT_ID};

use crate::common::*;

struct Env {
    fake: FakeEntra,
    server: TestServer,
    key: TestKey,
}

async fn env_with(tenant: &str, tweak: impl FnOnce(&mut EntraConfig)) -> Env {
    env_policy(tenant, tweak, AccessPolicy::scopes(["access_as_user"])).await
}

async fn env_policy(tenant: &str, tweak: impl FnOnce(&mut EntraConfig), policy: AccessPolicy) -> Env {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let mut cfg = fake.config(tenant);
    tweak(&mut cfg);
    let verifier = EntraVerifier::new(cfg, policy).unwrap();
    verifier.start().await;
    let server = spawn_http(Arc::new(verifier), |_| {}).await;
    Env { fake, server, key }
}

async fn single() -> Env {
    env_with(TENANT, |_| {}).await
}

/// Status, `error` and `error_description` of an authenticated initialize with `token`.
async fn attempt(env: &Env, token: &str) -> (u16, Option<String>, String) {
    attempt_on(&env.server, token).await
}

/// Status, `error` and `error_description` of an authenticated initialize on `server`.
async fn attempt_on(server: &TestServer, token: &str) -> (u16, Option<String>, String) {
    let r = post_mcp(&server.mcp_url(), Some(token), &initialize_body()).await;
    let status = r.status().as_u16();
    let params = r
        .headers()
        .get("www-authenticate")
        .map(|v| challenge_params(v.to_str().unwrap()))
        .unwrap_or_default();
    (
        status,
        params.get("error").cloned(),
        params.get("error_description").cloned().unwrap_or_default(),
    )
}

async fn accepted(env: &Env, token: &str) {
    let (status, error, description) = attempt(env, token).await;
    assert_eq!(status, 200, "expected acceptance, got {error:?}: {description}");
}

async fn rejected(env: &Env, token: &str, status: u16, error: &str, description_has: &str) {
    let (got_status, got_error, description) = attempt(env, token).await;
    assert_eq!(
        (got_status, got_error.as_deref()),
        (status, Some(error)),
        "{description}"
    );
    assert!(
        description.contains(description_has),
        "description {description:?} lacks {description_has:?}"
    );
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

fn valid(env: &Env) -> Value {
    env.fake.claims(TENANT)
}

// ---- accepted forms ----

#[tokio::test]
async fn valid_v2_user_token_is_accepted_and_reaches_the_tools() {
    let env = single().await;
    let token = mint(&env.key, &valid(&env));
    accepted(&env, &token).await;
    let client = discover_client(&env.server.mcp_url(), &token).await;
    let who = client
        .call_tool(rmcp::model::CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    let who = who.structured_content.unwrap();
    assert_eq!(who["name"], "Alice Example");
    assert_eq!(who["tenant_id"], TENANT);
    assert_eq!(who["scopes"], json!(["access_as_user"]));
}

// ---- the rules, one row each ----

/// The servers the rows run against. All share one fake Entra whose JWKS is shaped like a
/// multi-tenant one: `key-1` tagged with the `{tenantid}` template (work and school), `key-2`
/// tagged with the consumer tenant's issuer (personal accounts), plus keys that exercise the
/// key rules (see [`Rules::start`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Server {
    /// `AZURE_TENANT_ID` = TENANT, `AZURE_REQUIRED_APP_ROLES` = Tools.Run.
    Single,
    /// As `Single`, v1 tokens accepted.
    SingleV1,
    /// `AZURE_TENANT_ID` = a domain resolved through the metadata.
    Domain,
    /// `AZURE_TENANT_ID` = common, no app roles.
    Common,
    /// `AZURE_TENANT_ID` = organizations.
    Organizations,
    /// `organizations` with `AZURE_ALLOWED_TENANTS` = TENANT.
    AllowList,
    /// `AZURE_TENANT_ID` = consumers.
    Consumers,
    /// `AZURE_CLIENT_ID` in upper case.
    UpperClientId,
}

const SERVERS: [Server; 8] = [
    Server::Single,
    Server::SingleV1,
    Server::Domain,
    Server::Common,
    Server::Organizations,
    Server::AllowList,
    Server::Consumers,
    Server::UpperClientId,
];

/// The expected answer: accepted, or (status, `error`, words of `error_description`).
enum Outcome {
    Accepted,
    Refused(u16, &'static str, &'static [&'static str]),
}

use Outcome::{Accepted, Refused};

/// What a row's token is made from.
struct Ctx {
    fake: FakeEntra,
    key1: TestKey,
    key2: TestKey,
}

impl Ctx {
    /// Valid delegated claims of `tenant` with `changes` (null removes a claim).
    fn claims(&self, tenant: &str, changes: Value) -> Value {
        with(self.fake.claims(tenant), changes)
    }

    /// Claims of TENANT with `changes`, signed with key-1.
    fn user(&self, changes: Value) -> String {
        mint(&self.key1, &self.claims(TENANT, changes))
    }

    /// An app-only token's claims without `idtyp`: no `scp`, `oid` = `sub`, a client id.
    fn app(&self, changes: Value) -> String {
        let base = json!({"scp": null, "sub": APP_OID, "oid": APP_OID, "roles": ["Tools.Run"]});
        let claims = with(with(self.fake.claims(TENANT), base), changes);
        mint(&self.key1, &claims)
    }

    /// `claims` signed by `key` under header `kid`.
    fn signed(&self, key: &TestKey, kid: &str, claims: &Value) -> String {
        mint_raw(key, &json!({"alg": "RS256", "typ": "JWT", "kid": kid}), claims)
    }
}

const APP_OID: &str = "0000aaaa-0000-0000-0000-0000000da3e0";
const FAR_FUTURE: u64 = 9_223_372_036_854_775_808; // 2^63

struct Rules {
    ctx: Ctx,
    servers: Vec<(Server, TestServer)>,
}

impl Rules {
    /// One fake Entra, one HTTP server per [`Server`].
    async fn start() -> Rules {
        let (key1, key2) = (key1(), key2());
        let fake = FakeEntra::start(&[]).await;
        let mut padded_n = vec![0u8];
        padded_n.extend(URL_SAFE_NO_PAD.decode(key1.jwk["n"].as_str().unwrap()).unwrap());
        let mut padded = key1.jwk_with_kid("padded");
        padded["n"] = json!(URL_SAFE_NO_PAD.encode(padded_n));
        fake.set_jwks(vec![
            key1.jwk_for_issuer(&fake.issuer("{tenantid}")),
            key2.jwk_for_issuer(&fake.issuer(CONSUMER_TENANT_ID)),
            // Untagged: signs for the metadata issuer (today's rule for single-tenant JWKS).
            key1.jwk_with_kid("untagged"),
            // Tagged with another tenant's issuer.
            {
                let mut jwk = key2.jwk_for_issuer(&fake.issuer(OTHER_TENANT));
                jwk["kid"] = json!("other-tenant");
                jwk
            },
            // RFC 7518 §6.3.1.1 asks producers to omit a leading zero; we accept one.
            padded,
            // One kid, two keys: both are kept and tried.
            key1.jwk_with_kid("dup"),
            key2.jwk_with_kid("dup"),
        ]);
        let mut servers = Vec::new();
        for server in SERVERS {
            let tenant = match server {
                Server::Single | Server::SingleV1 | Server::UpperClientId => TENANT,
                Server::Domain => "contoso.example",
                Server::Common => "common",
                Server::Organizations | Server::AllowList => "organizations",
                Server::Consumers => "consumers",
            };
            let mut cfg = fake.config(tenant);
            let mut policy = AccessPolicy::scopes(["access_as_user"]);
            match server {
                Server::Single => policy = policy.with_app_roles(["Tools.Run"]),
                Server::SingleV1 => cfg.accept_v1_tokens = true,
                Server::AllowList => cfg.allowed_tenants = vec![TENANT.into()],
                Server::UpperClientId => {
                    cfg.client_id = CLIENT_ID.to_uppercase();
                    cfg.identifier_uri = format!("api://{}", CLIENT_ID.to_uppercase()).parse().unwrap();
                }
                _ => {}
            }
            let verifier = EntraVerifier::new(cfg, policy).unwrap();
            verifier.start().await;
            servers.push((server, spawn_http(Arc::new(verifier), |_| {}).await));
        }
        Rules {
            ctx: Ctx { fake, key1, key2 },
            servers,
        }
    }

    fn env(&self, server: Server) -> &TestServer {
        &self.servers.iter().find(|(s, _)| *s == server).unwrap().1
    }
}

type MakeToken = Box<dyn Fn(&Ctx) -> String>;

/// `token` with its signature replaced by four base64url zero bytes' worth of `A`s.
fn unsigned(token: String) -> String {
    let (signed, _) = token.rsplit_once('.').unwrap();
    format!("{signed}.AAAA")
}

fn row(
    rule: &'static str,
    server: Server,
    token: impl Fn(&Ctx) -> String + 'static,
    outcome: Outcome,
) -> (&'static str, Server, MakeToken, Outcome) {
    (rule, server, Box::new(token), outcome)
}

const INVALID: &str = "invalid_token";
const SCOPE: &str = "insufficient_scope";

/// Every rule of the claim table (docs/ARCHITECTURE.md#token-verification) through the real HTTP server.
#[tokio::test]
async fn token_rules() {
    use Server::*;
    let rules = Rules::start().await;
    let n = now();
    let rows = vec![
        // -- accepted forms --
        row("a valid v2 user token", Single, |c| c.user(json!({})), Accepted),
        row(
            "identifier URI as audience",
            Single,
            |c| c.user(json!({"aud": format!("api://{CLIENT_ID}")})),
            Accepted,
        ),
        row(
            "tenant given as a domain",
            Domain,
            |c| c.user(json!({})),
            Accepted,
        ),
        row(
            "exp in the past but within leeway",
            Single,
            move |c| c.user(json!({"exp": n - 30})),
            Accepted,
        ),
        row(
            "nbf in the future but within leeway",
            Single,
            move |c| c.user(json!({"nbf": n + 30})),
            Accepted,
        ),
        row(
            "fractional NumericDates",
            Single,
            move |c| c.user(json!({"exp": n as f64 + 600.5, "nbf": n as f64 - 0.25, "iat": n as f64 - 0.25})),
            Accepted,
        ),
        row(
            "upper-case AZURE_CLIENT_ID matches a lower-case aud",
            UpperClientId,
            |c| c.user(json!({})),
            Accepted,
        ),
        row(
            "upper-case AZURE_CLIENT_ID: the identifier URI too",
            UpperClientId,
            |c| c.user(json!({"aud": format!("api://{CLIENT_ID}")})),
            Accepted,
        ),
        row(
            "scp split on spaces",
            Single,
            |c| c.user(json!({"scp": "openid  access_as_user profile"})),
            Accepted,
        ),
        // -- key issuer (example 1 of issue 13) --
        row(
            "common: an organisation's token signed with the consumer key",
            Common,
            |c| c.signed(&c.key2, c.key2.kid, &c.claims(TENANT, json!({}))),
            Refused(
                401,
                INVALID,
                &["signs only for", "9188040d-6c67-4c5b-b112-36a304b66dad"],
            ),
        ),
        row(
            "common: an organisation's token signed with the {tenantid} key",
            Common,
            |c| c.user(json!({})),
            Accepted,
        ),
        row(
            "common: a personal account's token signed with the consumer key",
            Common,
            |c| c.signed(&c.key2, c.key2.kid, &c.claims(CONSUMER_TENANT_ID, json!({}))),
            Accepted,
        ),
        row(
            "single: a key tagged with another tenant's issuer",
            Single,
            |c| c.signed(&c.key2, "other-tenant", &c.claims(TENANT, json!({}))),
            Refused(
                401,
                INVALID,
                &["signing key other-tenant signs only for", OTHER_TENANT],
            ),
        ),
        row(
            "single: an untagged key signs for the metadata issuer",
            Single,
            |c| c.signed(&c.key1, "untagged", &c.claims(TENANT, json!({}))),
            Accepted,
        ),
        row(
            "v1 token and the same tenant's v2-tagged key",
            SingleV1,
            |c| c.user(json!({"iss": format!("https://sts.windows.net/{TENANT}/"), "ver": "1.0"})),
            Accepted,
        ),
        row(
            "JWKS modulus with a leading zero byte",
            Single,
            |c| c.signed(&c.key1, "padded", &c.claims(TENANT, json!({}))),
            Accepted,
        ),
        row(
            "duplicate kid: the first key verifies",
            Single,
            |c| c.signed(&c.key1, "dup", &c.claims(TENANT, json!({}))),
            Accepted,
        ),
        row(
            "duplicate kid: the second key verifies",
            Single,
            |c| c.signed(&c.key2, "dup", &c.claims(TENANT, json!({}))),
            Accepted,
        ),
        row(
            "duplicate kid: a signature neither key made",
            Single,
            |c| {
                let token = c.signed(&c.key1, "dup", &c.claims(TENANT, json!({})));
                let other = c.signed(&c.key2, "dup", &c.claims(TENANT, json!({"name": "Mallory"})));
                format!(
                    "{}.{}",
                    token.rsplit_once('.').unwrap().0,
                    other.rsplit_once('.').unwrap().1
                )
            },
            Refused(401, INVALID, &["signature is invalid"]),
        ),
        // -- token type (example 2 of issue 13) --
        row(
            "a user's ID token with an assigned app role",
            Single,
            |c| c.user(json!({"scp": null, "roles": ["Tools.Run"], "nonce": "n-0S6_WzA2Mj"})),
            Refused(
                401,
                INVALID,
                &[
                    "is an ID token (it carries `nonce` and no `scp`)",
                    "not the ID token",
                ],
            ),
        ),
        row(
            "ID token marker at_hash",
            Single,
            |c| c.user(json!({"scp": null, "at_hash": "77QmUPtjPfzWtF2AnpK9RQ"})),
            Refused(401, INVALID, &["carries `at_hash`"]),
        ),
        row(
            "ID token marker c_hash",
            Single,
            |c| c.user(json!({"scp": null, "c_hash": "LDktKdoQak3Pk0cnXxCltA"})),
            Refused(401, INVALID, &["carries `c_hash`"]),
        ),
        row(
            "ID token markers even on an app-looking token",
            Single,
            |c| c.app(json!({"nonce": "n"})),
            Refused(401, INVALID, &["ID token"]),
        ),
        row(
            "app-only by idtyp",
            Single,
            |c| c.user(json!({"scp": null, "idtyp": "app", "roles": ["Tools.Run"]})),
            Accepted,
        ),
        row(
            "app-only without idtyp: oid = sub and azp",
            Single,
            |c| c.app(json!({})),
            Accepted,
        ),
        row(
            "app-only without idtyp: oid = sub and appid (v1 client id)",
            Single,
            |c| c.app(json!({"azp": null, "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46"})),
            Accepted,
        ),
        row(
            "app-only without the required role",
            Single,
            |c| c.app(json!({"roles": ["Other"]})),
            Refused(
                403,
                SCOPE,
                &["app-only token lacks the required app role(s) Tools.Run"],
            ),
        ),
        row(
            "app-only on a server without app roles",
            Common,
            |c| c.app(json!({})),
            Refused(
                403,
                SCOPE,
                &["app-only tokens (client credentials) are not accepted"],
            ),
        ),
        row(
            "user token with roles but no scp is not an app token",
            Single,
            |c| c.user(json!({"scp": null, "roles": ["Tools.Run"]})),
            Refused(
                403,
                SCOPE,
                &[
                    "carries no delegated scopes (`scp`)",
                    "lacks the required scope(s) access_as_user",
                    "`idtyp` optional claim",
                ],
            ),
        ),
        row(
            "empty scp is no delegated grant",
            Single,
            |c| c.user(json!({"scp": ""})),
            Refused(403, SCOPE, &["carries no delegated scopes", "access_as_user"]),
        ),
        row(
            "upper-case tid and issuer on a multi-tenant server: tid is compared in lower case",
            Common,
            |c| {
                let upper = TENANT.to_uppercase();
                let claims = c.claims(TENANT, json!({"tid": upper, "iss": c.fake.issuer(&upper)}));
                mint(&c.key1, &claims)
            },
            Refused(
                401,
                INVALID,
                &["the token's issuer is", "but this server expects"],
            ),
        ),
        row(
            "tid spelled in another case than the issuer's tenant (found by the fuzz oracle)",
            Common,
            |c| {
                let mixed = format!("aaAa{}", &TENANT[4..]);
                mint(&c.key1, &c.claims(TENANT, json!({"tid": mixed})))
            },
            Refused(401, INVALID, &["is not the tenant of its issuer"]),
        ),
        row(
            "no scp, oid = sub but no client id",
            Single,
            |c| c.app(json!({"azp": null})),
            Refused(403, SCOPE, &["carries no delegated scopes", "access_as_user"]),
        ),
        row(
            "idtyp user without scp",
            Single,
            |c| c.user(json!({"scp": null, "idtyp": "user", "roles": ["Tools.Run"]})),
            Refused(403, SCOPE, &["carries no delegated scopes"]),
        ),
        row(
            "scp together with idtyp app",
            Single,
            |c| c.user(json!({"idtyp": "app", "roles": ["Tools.Run"]})),
            Refused(
                401,
                INVALID,
                &["says it is an app-only token (`idtyp` = app) but carries delegated scopes (`scp`)"],
            ),
        ),
        row(
            "idtyp of an unknown value",
            Single,
            |c| c.user(json!({"idtyp": "device"})),
            Refused(
                401,
                INVALID,
                &["`idtyp` claim is malformed: must be `app` or `user`"],
            ),
        ),
        row(
            "roles not an array of strings",
            Single,
            |c| c.app(json!({"roles": "Tools.Run"})),
            Refused(
                401,
                INVALID,
                &["`roles` claim is malformed: must be an array of strings"],
            ),
        ),
        row(
            "scp not a string",
            Single,
            |c| c.user(json!({"scp": ["access_as_user"]})),
            Refused(401, INVALID, &["`scp` claim is malformed: must be a string"]),
        ),
        // -- scopes --
        row(
            "missing scope",
            Single,
            |c| c.user(json!({"scp": "User.Read"})),
            Refused(403, SCOPE, &["lacks the required scope(s) access_as_user"]),
        ),
        row(
            "a scope substring does not count",
            Single,
            |c| c.user(json!({"scp": "access_as_user_admin"})),
            Refused(403, SCOPE, &["lacks the required scope(s) access_as_user"]),
        ),
        row(
            "scp does not split on a tab (RFC 6749 §3.3)",
            Single,
            |c| c.user(json!({"scp": "openid\taccess_as_user"})),
            Refused(403, SCOPE, &["lacks the required scope(s) access_as_user"]),
        ),
        row(
            "scp does not split on a no-break space",
            Single,
            |c| c.user(json!({"scp": "openid\u{a0}access_as_user"})),
            Refused(403, SCOPE, &["lacks the required scope(s) access_as_user"]),
        ),
        // -- ver --
        row(
            "ver 1.0 with a v2 issuer",
            Single,
            |c| c.user(json!({"ver": "1.0"})),
            Refused(
                401,
                INVALID,
                &["`ver` is 1.0, but its issuer", "issues version 2.0 tokens"],
            ),
        ),
        row(
            "ver 2.0 with a v1 issuer",
            SingleV1,
            |c| c.user(json!({"iss": format!("https://sts.windows.net/{TENANT}/"), "ver": "2.0"})),
            Refused(
                401,
                INVALID,
                &[
                    "`ver` is 2.0, but its issuer https://sts.windows.net/",
                    "issues version 1.0 tokens",
                ],
            ),
        ),
        row(
            "no ver",
            Single,
            |c| c.user(json!({"ver": null})),
            Refused(401, INVALID, &["no `ver` claim"]),
        ),
        row(
            "ver not a string",
            Single,
            |c| c.user(json!({"ver": 2.0})),
            Refused(401, INVALID, &["`ver` claim is malformed"]),
        ),
        // -- lifetime --
        row(
            "expired",
            Single,
            move |c| c.user(json!({"exp": n - 3600})),
            Refused(401, INVALID, &["expired at"]),
        ),
        row(
            "no exp",
            Single,
            |c| c.user(json!({"exp": null})),
            Refused(401, INVALID, &["no `exp` claim"]),
        ),
        row(
            "exp a string",
            Single,
            move |c| c.user(json!({"exp": (n + 600).to_string()})),
            Refused(401, INVALID, &["`exp` claim is malformed"]),
        ),
        row(
            "nbf an hour ahead",
            Single,
            move |c| c.user(json!({"nbf": n + 3600})),
            Refused(401, INVALID, &["not valid before"]),
        ),
        row(
            "nbf 2^63, unsigned (no panic before the signature)",
            Single,
            |c| {
                format!(
                    "{}.AAAA",
                    c.user(json!({"nbf": FAR_FUTURE})).rsplit_once('.').unwrap().0
                )
            },
            Refused(401, INVALID, &["`nbf` claim is malformed", "year 9999"]),
        ),
        row(
            "nbf 1e19",
            Single,
            |c| c.user(json!({"nbf": 1e19})),
            Refused(401, INVALID, &["`nbf` claim is malformed"]),
        ),
        row(
            "exp between 2^63 and 2^64, signed",
            Single,
            |c| c.user(json!({"exp": FAR_FUTURE + 5})),
            Refused(401, INVALID, &["`exp` claim is malformed", "year 9999"]),
        ),
        row(
            "exp 2^64 - 1",
            Single,
            |c| c.user(json!({"exp": u64::MAX})),
            Refused(401, INVALID, &["`exp` claim is malformed"]),
        ),
        row(
            "exp 1e19",
            Single,
            |c| c.user(json!({"exp": 1e19})),
            Refused(401, INVALID, &["`exp` claim is malformed"]),
        ),
        row(
            "exp past year 9999",
            Single,
            |c| c.user(json!({"exp": 253_402_300_800u64})),
            Refused(401, INVALID, &["`exp` claim is malformed"]),
        ),
        row(
            "exp negative",
            Single,
            |c| c.user(json!({"exp": -1})),
            Refused(401, INVALID, &["`exp` claim is malformed"]),
        ),
        row(
            "iat out of range",
            Single,
            |c| c.user(json!({"iat": FAR_FUTURE})),
            Refused(401, INVALID, &["`iat` claim is malformed"]),
        ),
        // -- audience --
        row(
            "wrong audience",
            Single,
            |c| c.user(json!({"aud": "api://someone-else"})),
            Refused(
                401,
                INVALID,
                &["audience is api://someone-else, but this server expects"],
            ),
        ),
        row(
            "a Microsoft Graph token",
            Single,
            |c| c.user(json!({"aud": "00000003-0000-0000-c000-000000000000"})),
            Refused(401, INVALID, &["Microsoft Graph"]),
        ),
        row(
            "a Graph header nonce",
            Single,
            |c| {
                mint_raw(
                    &c.key1,
                    &json!({"alg": "RS256", "kid": c.key1.kid, "nonce": "abc"}),
                    &c.claims(TENANT, json!({})),
                )
            },
            Refused(401, INVALID, &["header carries a nonce", "Graph"]),
        ),
        row(
            "audience array",
            Single,
            |c| c.user(json!({"aud": [CLIENT_ID, "other"]})),
            Refused(401, INVALID, &["single string"]),
        ),
        row(
            "no aud",
            Single,
            |c| c.user(json!({"aud": null})),
            Refused(401, INVALID, &["no `aud` claim"]),
        ),
        // -- issuer and tenant --
        row(
            "no iss",
            Single,
            |c| c.user(json!({"iss": null})),
            Refused(401, INVALID, &["no `iss` claim"]),
        ),
        row(
            "no tid",
            Single,
            |c| c.user(json!({"tid": null})),
            Refused(401, INVALID, &["no `tid` claim"]),
        ),
        row(
            "another tenant's issuer, single tenant",
            Single,
            |c| mint(&c.key1, &c.fake.claims(OTHER_TENANT)),
            Refused(401, INVALID, &["issuer is", "but this server expects"]),
        ),
        row(
            "single tenant: tid is not the tenant of iss",
            Single,
            |c| c.user(json!({"tid": OTHER_TENANT})),
            Refused(
                401,
                INVALID,
                &["tenant id aaaaaaaa-bbbb-cccc-dddd-000000000002 is not the tenant of its issuer"],
            ),
        ),
        row(
            "v1 token refused by default",
            Single,
            |c| c.user(json!({"iss": format!("https://sts.windows.net/{TENANT}/"), "ver": "1.0"})),
            Refused(401, INVALID, &["requestedAccessTokenVersion"]),
        ),
        row(
            "v1 token of another tenant",
            SingleV1,
            |c| {
                c.user(json!({"iss": format!("https://sts.windows.net/{OTHER_TENANT}/"), "ver": "1.0", "aud": format!("api://{CLIENT_ID}")}))
            },
            Refused(401, INVALID, &["issuer is https://sts.windows.net/"]),
        ),
        row(
            "v1 token: tid is not the tenant of iss",
            SingleV1,
            |c| {
                c.user(json!({"iss": format!("https://sts.windows.net/{TENANT}/"), "ver": "1.0", "tid": OTHER_TENANT}))
            },
            Refused(401, INVALID, &["is not the tenant of its issuer"]),
        ),
        row(
            "organizations: one tenant",
            Organizations,
            |c| c.user(json!({})),
            Accepted,
        ),
        row(
            "organizations: another tenant",
            Organizations,
            |c| mint(&c.key1, &c.fake.claims(OTHER_TENANT)),
            Accepted,
        ),
        row(
            "organizations: issuer of another tenant",
            Organizations,
            |c| c.user(json!({"iss": c.fake.issuer(OTHER_TENANT)})),
            Refused(401, INVALID, &["issuer is"]),
        ),
        row(
            "common: a non-GUID tid",
            Common,
            |c| mint(&c.key1, &c.claims("evil", json!({"tid": "evil"}))),
            Refused(401, INVALID, &["`evil` is not a GUID"]),
        ),
        row(
            "organizations: personal accounts",
            Organizations,
            |c| c.signed(&c.key2, c.key2.kid, &c.claims(CONSUMER_TENANT_ID, json!({}))),
            Refused(401, INVALID, &["personal Microsoft accounts are not accepted"]),
        ),
        row(
            "consumers: a personal account",
            Consumers,
            |c| c.signed(&c.key2, c.key2.kid, &c.claims(CONSUMER_TENANT_ID, json!({}))),
            Accepted,
        ),
        row(
            "consumers: a work account",
            Consumers,
            |c| c.user(json!({})),
            Refused(401, INVALID, &["issuer is"]),
        ),
        row(
            "allow-list: a listed tenant",
            AllowList,
            |c| c.user(json!({})),
            Accepted,
        ),
        row(
            "allow-list: another tenant",
            AllowList,
            |c| mint(&c.key1, &c.fake.claims(OTHER_TENANT)),
            Refused(401, INVALID, &["AZURE_ALLOWED_TENANTS"]),
        ),
        // -- an unsigned token learns nothing of the configuration (allow-list, v1 policy) --
        row(
            "allow-list, unsigned token of another tenant: only the signature is named",
            AllowList,
            |c| unsigned(mint(&c.key1, &c.fake.claims(OTHER_TENANT))),
            Refused(401, INVALID, &["signature is invalid"]),
        ),
        row(
            "allow-list, unsigned token of the listed tenant: the same answer",
            AllowList,
            |c| unsigned(c.user(json!({}))),
            Refused(401, INVALID, &["signature is invalid"]),
        ),
        row(
            "v1 policy, unsigned v1 token: only the signature is named",
            Single,
            |c| unsigned(c.user(json!({"iss": format!("https://sts.windows.net/{TENANT}/"), "ver": "1.0"}))),
            Refused(401, INVALID, &["signature is invalid"]),
        ),
        // -- an empty claim is an absent claim --
        row(
            "empty oid and sub are no evidence of an app token",
            Single,
            |c| c.app(json!({"oid": "", "sub": ""})),
            Refused(403, SCOPE, &["carries no delegated scopes", "access_as_user"]),
        ),
        row(
            "empty azp and appid are no client id",
            Single,
            |c| c.app(json!({"azp": "", "appid": ""})),
            Refused(403, SCOPE, &["carries no delegated scopes", "access_as_user"]),
        ),
        row(
            "empty aud is no audience",
            Single,
            |c| c.user(json!({"aud": ""})),
            Refused(401, INVALID, &["`aud`"]),
        ),
        row(
            "empty tid is no tenant",
            Single,
            |c| c.user(json!({"tid": ""})),
            Refused(401, INVALID, &["`tid`"]),
        ),
        // -- header and signature --
        row(
            "alg HS256",
            Single,
            |c| {
                mint_raw(
                    &c.key1,
                    &json!({"alg": "HS256", "kid": c.key1.kid}),
                    &c.claims(TENANT, json!({})),
                )
            },
            Refused(401, INVALID, &["signed with HS256, only RS256 is accepted"]),
        ),
        row(
            "alg none",
            Single,
            |c| {
                mint_raw(
                    &c.key1,
                    &json!({"alg": "none", "kid": c.key1.kid}),
                    &c.claims(TENANT, json!({})),
                )
            },
            Refused(401, INVALID, &["only RS256 is accepted"]),
        ),
        row(
            "alg PS256",
            Single,
            |c| {
                mint_raw(
                    &c.key1,
                    &json!({"alg": "PS256", "kid": c.key1.kid}),
                    &c.claims(TENANT, json!({})),
                )
            },
            Refused(401, INVALID, &["only RS256 is accepted"]),
        ),
        row(
            "alg RS512",
            Single,
            |c| {
                mint_raw(
                    &c.key1,
                    &json!({"alg": "RS512", "kid": c.key1.kid}),
                    &c.claims(TENANT, json!({})),
                )
            },
            Refused(401, INVALID, &["only RS256 is accepted"]),
        ),
        row(
            "no alg",
            Single,
            |c| mint_raw(&c.key1, &json!({"kid": c.key1.kid}), &c.claims(TENANT, json!({}))),
            Refused(401, INVALID, &["signed with no algorithm"]),
        ),
        row(
            "crit",
            Single,
            |c| {
                mint_raw(
                    &c.key1,
                    &json!({"alg": "RS256", "kid": c.key1.kid, "crit": ["exp-ext"], "exp-ext": 1}),
                    &c.claims(TENANT, json!({})),
                )
            },
            Refused(401, INVALID, &["critical"]),
        ),
        row(
            "no kid",
            Single,
            |c| mint_raw(&c.key1, &json!({"alg": "RS256"}), &c.claims(TENANT, json!({}))),
            Refused(401, INVALID, &["no key id (kid)"]),
        ),
        row(
            "tampered payload",
            Single,
            |c| {
                let token = c.user(json!({}));
                let parts: Vec<&str> = token.split('.').collect();
                let forged = URL_SAFE_NO_PAD
                    .encode(serde_json::to_vec(&c.claims(TENANT, json!({"name": "Mallory"}))).unwrap());
                format!("{}.{forged}.{}", parts[0], parts[2])
            },
            Refused(401, INVALID, &["signature is invalid"]),
        ),
        row(
            "an unpublished key under a published kid",
            Single,
            |c| {
                mint(
                    &TestKey::load("key-1", include_bytes!("../fixtures/key2.pem")),
                    &c.claims(TENANT, json!({})),
                )
            },
            Refused(401, INVALID, &["signature is invalid"]),
        ),
        row(
            "oversized token",
            Single,
            |c| c.user(json!({"padding": "x".repeat(20_000)})),
            Refused(401, INVALID, &["over the 16384-byte limit"]),
        ),
        row(
            "not a JWT",
            Single,
            |_| "not.a.jwt".into(),
            Refused(401, INVALID, &["not a well-formed JWT"]),
        ),
        row(
            "one part",
            Single,
            |_| "abc".into(),
            Refused(401, INVALID, &["not a well-formed JWT"]),
        ),
        row(
            "a duplicate claim",
            Single,
            move |c| {
                let h = URL_SAFE_NO_PAD.encode(format!("{{\"alg\":\"RS256\",\"kid\":\"{}\"}}", c.key1.kid));
                let p = URL_SAFE_NO_PAD.encode(format!(
                    "{{\"aud\":\"{CLIENT_ID}\",\"aud\":\"other\",\"exp\":{}}}",
                    n + 600
                ));
                format!("{h}.{p}.c2ln")
            },
            Refused(401, INVALID, &["appears twice"]),
        ),
    ];
    let mut failures = Vec::new();
    for (rule, server, token, outcome) in &rows {
        let env = rules.env(*server);
        let (status, error, description) = attempt_on(env, &token(&rules.ctx)).await;
        let ok = match outcome {
            Accepted => status == 200,
            Refused(want_status, want_error, words) => {
                status == *want_status
                    && error.as_deref() == Some(*want_error)
                    && words.iter().all(|w| description.contains(w))
            }
        };
        if !ok {
            failures.push(format!(
                "{rule} ({server:?}): got {status} {error:?} {description:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

// ---- lifetime ----

#[tokio::test]
async fn a_cached_token_is_refused_once_it_expires() {
    let env = env_with(TENANT, |c| c.leeway = Duration::ZERO).await;
    let token = mint(&env.key, &with(valid(&env), json!({"exp": now() + 2})));
    accepted(&env, &token).await;
    accepted(&env, &token).await; // served from the cache
    tokio::time::sleep(Duration::from_millis(2100)).await;
    rejected(&env, &token, 401, "invalid_token", "expired at").await;
}

// ---- header and signature ----

#[tokio::test]
async fn embedded_jwk_and_jku_are_never_followed() {
    let env = single().await;
    let attacker = key2();
    let elsewhere = FakeEntra::start(&[&attacker]).await;
    let header = json!({
        "alg": "RS256", "kid": attacker.kid,
        "jku": format!("{}/common/discovery/v2.0/keys", elsewhere.base),
        "jwk": attacker.jwk,
        "x5u": format!("{}/cert", elsewhere.base),
    });
    rejected(
        &env,
        &mint_raw(&attacker, &header, &valid(&env)),
        401,
        "invalid_token",
        "does not publish",
    )
    .await;
    assert_eq!(elsewhere.jwks_fetches(), 0, "the jku was fetched");
}

#[tokio::test]
async fn keys_under_2048_bits_are_never_used() {
    // Our crypto backend will not even sign with a 1024-bit key, so publish one that is
    // otherwise well-formed and check that a token naming it finds no key.
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    let mut modulus = vec![0xffu8; 128];
    modulus[0] = 0x80;
    let small = json!({"kty": "RSA", "use": "sig", "kid": "small", "e": "AQAB",
        "n": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, modulus)});
    fake.state.jwks.lock().unwrap().push(small);
    let verifier = fake.verifier(fake.config(TENANT)).await;
    let token = mint_raw(
        &key,
        &json!({"alg": "RS256", "kid": "small"}),
        &fake.claims(TENANT),
    );
    let err = verifier.verify(&token).await.unwrap_err();
    assert_eq!(err.kind(), "unknown_kid");
}

// ---- key cache ----

#[tokio::test]
async fn key_rollover_is_picked_up_within_seconds() {
    let env = single().await;
    let new_key = key2();
    env.fake.set_keys(&[&env.key, &new_key]);
    let token = mint(&new_key, &valid(&env));
    let started = Instant::now();
    loop {
        let (status, ..) = attempt(&env, &token).await;
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "rollover not picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_flood_of_random_kids_causes_at_most_one_fetch_per_interval() {
    let env = env_with(TENANT, |c| c.key_min_refresh_interval = Duration::from_secs(30)).await;
    let before = env.fake.jwks_fetches();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let header = json!({"alg": "RS256", "kid": format!("random-{i}-{}", now())});
            let token = mint_raw(&env.key, &header, &valid(&env));
            let url = env.server.mcp_url();
            tokio::spawn(async move { post_mcp(&url, Some(&token), &initialize_body()).await.status() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 401);
    }
    // The start-up fetch set the interval running: a flood inside it fetches nothing more.
    assert!(
        env.fake.jwks_fetches() - before <= 1,
        "{} fetches",
        env.fake.jwks_fetches() - before
    );
}

#[tokio::test]
async fn an_entra_outage_after_start_up_does_not_reject_valid_tokens() {
    let env = single().await;
    env.fake.set_down(true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // An unknown kid forces a refresh attempt, which fails; the known keys stay.
    let stranger = mint_raw(&env.key, &json!({"alg": "RS256", "kid": "unknown"}), &valid(&env));
    rejected(&env, &stranger, 401, "invalid_token", "does not publish").await;
    accepted(&env, &mint(&env.key, &valid(&env))).await;
    let ready = http()
        .get(format!("{}/ready", env.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn no_keys_at_start_up_is_503_and_not_ready_until_they_load() {
    let key = key1();
    let fake = FakeEntra::start(&[&key]).await;
    fake.set_down(true);
    let verifier = fake.verifier(fake.config(TENANT)).await;
    let server = spawn_http(Arc::new(verifier), |_| {}).await;
    let env = Env { fake, server, key };
    let token = mint(&env.key, &valid(&env));
    let (status, ..) = attempt(&env, &token).await;
    assert_eq!(status, 503);
    let ready = http()
        .get(format!("{}/ready", env.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    env.fake.set_down(false);
    let started = Instant::now();
    while http()
        .get(format!("{}/ready", env.server.base))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(started.elapsed() < Duration::from_secs(10), "keys never loaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    accepted(&env, &token).await;
}

#[tokio::test]
async fn garbage_from_entra_keeps_the_keys_we_have() {
    let env = single().await;
    env.fake
        .state
        .garbage
        .store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stranger = mint_raw(&env.key, &json!({"alg": "RS256", "kid": "unknown"}), &valid(&env));
    rejected(&env, &stranger, 401, "invalid_token", "does not publish").await;
    accepted(&env, &mint(&env.key, &valid(&env))).await;
}

#[tokio::test]
async fn a_key_removed_from_the_jwks_stops_verifying_after_refresh() {
    let env = single().await;
    // Verified (and cached) under the old key set first: the refresh must invalidate that too.
    let old_token = mint(&env.key, &valid(&env));
    accepted(&env, &old_token).await;
    let new_key = key2();
    env.fake.set_keys(&[&new_key]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A token with the new key triggers the refresh, which drops the old key.
    accepted(&env, &mint(&new_key, &valid(&env))).await;
    rejected(
        &env,
        &mint(&env.key, &valid(&env)),
        401,
        "invalid_token",
        "does not publish",
    )
    .await;
}

#[tokio::test]
async fn a_hung_entra_does_not_stall_requests_beyond_the_timeout() {
    let env = single().await;
    env.fake
        .state
        .hang
        .store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stranger = mint_raw(&env.key, &json!({"alg": "RS256", "kid": "unknown"}), &valid(&env));
    let started = Instant::now();
    rejected(&env, &stranger, 401, "invalid_token", "does not publish").await;
    // Metadata fetch times out after the 2 s client timeout; the JWKS is never reached.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    accepted(&env, &mint(&env.key, &valid(&env))).await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "known keys must not wait for Entra"
    );
}
