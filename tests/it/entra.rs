//! The Entra verifier through the real HTTP server, against a fake Entra on 127.0.0.1: one test per
//! rule of DESIGN §3, each asserting the exact status and `error` code.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
    let r = post_mcp(&env.server.mcp_url(), Some(token), &initialize_body()).await;
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

#[tokio::test]
async fn identifier_uri_audience_is_accepted() {
    let env = single().await;
    accepted(
        &env,
        &mint(
            &env.key,
            &with(valid(&env), json!({"aud": format!("api://{CLIENT_ID}")})),
        ),
    )
    .await;
}

#[tokio::test]
async fn tenant_given_as_a_domain_is_resolved_through_metadata() {
    let env = env_with("contoso.example", |_| {}).await;
    accepted(&env, &mint(&env.key, &valid(&env))).await;
}

#[tokio::test]
async fn exp_in_past_but_within_leeway_is_accepted() {
    let env = single().await;
    accepted(
        &env,
        &mint(&env.key, &with(valid(&env), json!({"exp": now() - 30}))),
    )
    .await;
}

#[tokio::test]
async fn nbf_in_future_but_within_leeway_is_accepted() {
    let env = single().await;
    accepted(
        &env,
        &mint(&env.key, &with(valid(&env), json!({"nbf": now() + 30}))),
    )
    .await;
}

#[tokio::test]
async fn fractional_numeric_dates_are_accepted() {
    let env = single().await;
    accepted(
        &env,
        &mint(&env.key, &with(valid(&env), json!({"exp": now() as f64 + 600.5}))),
    )
    .await;
}

#[tokio::test]
async fn app_only_token_with_required_role_is_accepted_only_when_roles_are_configured() {
    let policy = AccessPolicy::scopes(["access_as_user"]).with_app_roles(["Mcp.Invoke"]);
    let env = env_policy(TENANT, |_| {}, policy).await;
    let app = with(
        valid(&env),
        json!({"scp": null, "roles": ["Mcp.Invoke"], "idtyp": "app"}),
    );
    accepted(&env, &mint(&env.key, &app)).await;
    let no_role = with(valid(&env), json!({"scp": null, "roles": ["Other"]}));
    rejected(
        &env,
        &mint(&env.key, &no_role),
        403,
        "insufficient_scope",
        "Mcp.Invoke",
    )
    .await;

    let default = single().await;
    let app = with(valid(&default), json!({"scp": null, "roles": ["Mcp.Invoke"]}));
    rejected(
        &default,
        &mint(&default.key, &app),
        403,
        "insufficient_scope",
        "app-only tokens",
    )
    .await;
}

#[tokio::test]
async fn v1_token_is_accepted_when_configured() {
    let env = env_with(TENANT, |c| c.accept_v1_tokens = true).await;
    let v1 = with(
        valid(&env),
        json!({"iss": format!("https://sts.windows.net/{TENANT}/"), "aud": format!("api://{CLIENT_ID}"), "ver": "1.0"}),
    );
    accepted(&env, &mint(&env.key, &v1)).await;
    let other = with(
        v1,
        json!({"iss": format!("https://sts.windows.net/{OTHER_TENANT}/")}),
    );
    rejected(&env, &mint(&env.key, &other), 401, "invalid_token", "issuer").await;
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

#[tokio::test]
async fn expired_token_is_rejected_saying_when() {
    let env = single().await;
    rejected(
        &env,
        &mint(&env.key, &with(valid(&env), json!({"exp": now() - 3600}))),
        401,
        "invalid_token",
        "expired at",
    )
    .await;
}

#[tokio::test]
async fn token_without_exp_is_rejected() {
    let env = single().await;
    rejected(
        &env,
        &mint(&env.key, &with(valid(&env), json!({"exp": null}))),
        401,
        "invalid_token",
        "no `exp` claim",
    )
    .await;
}

#[tokio::test]
async fn exp_of_the_wrong_type_is_rejected() {
    let env = single().await;
    let claims = with(valid(&env), json!({"exp": (now() + 600).to_string()}));
    rejected(
        &env,
        &mint(&env.key, &claims),
        401,
        "invalid_token",
        "`exp` claim is malformed",
    )
    .await;
}

#[tokio::test]
async fn nbf_an_hour_ahead_is_rejected() {
    let env = single().await;
    rejected(
        &env,
        &mint(&env.key, &with(valid(&env), json!({"nbf": now() + 3600}))),
        401,
        "invalid_token",
        "not valid before",
    )
    .await;
}

// ---- audience ----

#[tokio::test]
async fn wrong_audience_is_rejected_naming_both() {
    let env = single().await;
    let claims = with(valid(&env), json!({"aud": "api://someone-else"}));
    rejected(
        &env,
        &mint(&env.key, &claims),
        401,
        "invalid_token",
        "audience is api://someone-else, but this server expects",
    )
    .await;
}

#[tokio::test]
async fn microsoft_graph_token_is_rejected_with_the_classic_explanation() {
    let env = single().await;
    let claims = with(
        valid(&env),
        json!({"aud": "00000003-0000-0000-c000-000000000000"}),
    );
    rejected(
        &env,
        &mint(&env.key, &claims),
        401,
        "invalid_token",
        "Microsoft Graph",
    )
    .await;
    let header = json!({"alg": "RS256", "kid": env.key.kid, "nonce": "abc"});
    rejected(
        &env,
        &mint_raw(&env.key, &header, &valid(&env)),
        401,
        "invalid_token",
        "Graph",
    )
    .await;
}

#[tokio::test]
async fn audience_array_is_rejected() {
    let env = single().await;
    let claims = with(valid(&env), json!({"aud": [CLIENT_ID, "other"]}));
    rejected(
        &env,
        &mint(&env.key, &claims),
        401,
        "invalid_token",
        "single string",
    )
    .await;
}

#[tokio::test]
async fn token_without_aud_is_rejected() {
    let env = single().await;
    rejected(
        &env,
        &mint(&env.key, &with(valid(&env), json!({"aud": null}))),
        401,
        "invalid_token",
        "no `aud` claim",
    )
    .await;
}

// ---- issuer and tenant ----

#[tokio::test]
async fn token_without_iss_is_rejected() {
    let env = single().await;
    rejected(
        &env,
        &mint(&env.key, &with(valid(&env), json!({"iss": null}))),
        401,
        "invalid_token",
        "no `iss` claim",
    )
    .await;
}

#[tokio::test]
async fn token_without_tid_is_rejected() {
    let env = single().await;
    rejected(
        &env,
        &mint(&env.key, &with(valid(&env), json!({"tid": null}))),
        401,
        "invalid_token",
        "no `tid` claim",
    )
    .await;
}

#[tokio::test]
async fn another_tenants_issuer_is_rejected_by_a_single_tenant_server() {
    let env = single().await;
    let claims = env.fake.claims(OTHER_TENANT);
    rejected(&env, &mint(&env.key, &claims), 401, "invalid_token", "issuer").await;
}

#[tokio::test]
async fn v1_token_is_rejected_by_default_with_the_fix() {
    let env = single().await;
    let v1 = with(
        valid(&env),
        json!({"iss": format!("https://sts.windows.net/{TENANT}/"), "ver": "1.0"}),
    );
    rejected(
        &env,
        &mint(&env.key, &v1),
        401,
        "invalid_token",
        "requestedAccessTokenVersion",
    )
    .await;
}

#[tokio::test]
async fn multi_tenant_accepts_any_tenant_with_its_own_issuer() {
    let env = env_with("organizations", |_| {}).await;
    accepted(&env, &mint(&env.key, &env.fake.claims(TENANT))).await;
    accepted(&env, &mint(&env.key, &env.fake.claims(OTHER_TENANT))).await;
}

#[tokio::test]
async fn multi_tenant_rejects_an_issuer_of_another_tenant() {
    let env = env_with("organizations", |_| {}).await;
    let claims = with(
        env.fake.claims(TENANT),
        json!({"iss": env.fake.issuer(OTHER_TENANT)}),
    );
    rejected(&env, &mint(&env.key, &claims), 401, "invalid_token", "issuer").await;
}

#[tokio::test]
async fn multi_tenant_rejects_a_non_guid_tid() {
    let env = env_with("common", |_| {}).await;
    let claims = with(env.fake.claims("evil"), json!({"tid": "evil"}));
    rejected(&env, &mint(&env.key, &claims), 401, "invalid_token", "not a GUID").await;
}

#[tokio::test]
async fn organizations_rejects_personal_accounts_and_common_accepts_them() {
    let orgs = env_with("organizations", |_| {}).await;
    let msa = orgs.fake.claims(CONSUMER_TENANT_ID);
    rejected(
        &orgs,
        &mint(&orgs.key, &msa),
        401,
        "invalid_token",
        "personal Microsoft accounts",
    )
    .await;
    let common = env_with("common", |_| {}).await;
    accepted(
        &common,
        &mint(&common.key, &common.fake.claims(CONSUMER_TENANT_ID)),
    )
    .await;
}

#[tokio::test]
async fn consumers_accepts_only_personal_accounts() {
    let env = env_with("consumers", |_| {}).await;
    accepted(&env, &mint(&env.key, &env.fake.claims(CONSUMER_TENANT_ID))).await;
    rejected(
        &env,
        &mint(&env.key, &env.fake.claims(TENANT)),
        401,
        "invalid_token",
        "issuer",
    )
    .await;
}

#[tokio::test]
async fn allow_list_restricts_multi_tenant_callers() {
    let env = env_with("organizations", |c| c.allowed_tenants = vec![TENANT.into()]).await;
    accepted(&env, &mint(&env.key, &env.fake.claims(TENANT))).await;
    rejected(
        &env,
        &mint(&env.key, &env.fake.claims(OTHER_TENANT)),
        401,
        "invalid_token",
        "AZURE_ALLOWED_TENANTS",
    )
    .await;
}

// ---- header and signature ----

#[tokio::test]
async fn algorithms_other_than_rs256_are_rejected() {
    let env = single().await;
    for alg in ["HS256", "none", "PS256", "RS512"] {
        let token = mint_raw(&env.key, &json!({"alg": alg, "kid": env.key.kid}), &valid(&env));
        rejected(&env, &token, 401, "invalid_token", "only RS256 is accepted").await;
    }
}

#[tokio::test]
async fn unknown_critical_header_is_rejected() {
    let env = single().await;
    let token = mint_raw(
        &env.key,
        &json!({"alg": "RS256", "kid": env.key.kid, "crit": ["exp-ext"], "exp-ext": 1}),
        &valid(&env),
    );
    rejected(&env, &token, 401, "invalid_token", "critical").await;
}

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
async fn tampered_payload_fails_the_signature_check() {
    let env = single().await;
    let token = mint(&env.key, &valid(&env));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let forged = with(valid(&env), json!({"name": "Mallory"}));
    parts[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        serde_json::to_vec(&forged).unwrap(),
    );
    rejected(
        &env,
        &parts.join("."),
        401,
        "invalid_token",
        "signature is invalid",
    )
    .await;
}

#[tokio::test]
async fn token_signed_by_an_unpublished_key_is_rejected() {
    let env = single().await;
    let stranger = TestKey::load("key-1", include_bytes!("../fixtures/key2.pem"));
    rejected(
        &env,
        &mint(&stranger, &valid(&env)),
        401,
        "invalid_token",
        "signature is invalid",
    )
    .await;
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

#[tokio::test]
async fn oversized_token_is_rejected_before_parsing() {
    let env = single().await;
    let claims = with(valid(&env), json!({"padding": "x".repeat(20_000)}));
    rejected(
        &env,
        &mint(&env.key, &claims),
        401,
        "invalid_token",
        "over the 16384-byte limit",
    )
    .await;
}

#[tokio::test]
async fn garbage_and_duplicate_claims_are_rejected() {
    let env = single().await;
    rejected(&env, "not.a.jwt", 401, "invalid_token", "not a well-formed JWT").await;
    rejected(&env, "abc", 401, "invalid_token", "not a well-formed JWT").await;
    let h = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        format!("{{\"alg\":\"RS256\",\"kid\":\"{}\"}}", env.key.kid),
    );
    let c = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        format!(
            "{{\"aud\":\"{CLIENT_ID}\",\"aud\":\"other\",\"exp\":{}}}",
            now() + 600
        ),
    );
    rejected(
        &env,
        &format!("{h}.{c}.c2ln"),
        401,
        "invalid_token",
        "appears twice",
    )
    .await;
}

// ---- authorization ----

#[tokio::test]
async fn missing_scope_is_403_insufficient_scope() {
    let env = single().await;
    let claims = with(valid(&env), json!({"scp": "User.Read"}));
    rejected(
        &env,
        &mint(&env.key, &claims),
        403,
        "insufficient_scope",
        "access_as_user",
    )
    .await;
}

#[tokio::test]
async fn scope_substring_does_not_count() {
    let env = single().await;
    let claims = with(valid(&env), json!({"scp": "access_as_user_admin"}));
    rejected(
        &env,
        &mint(&env.key, &claims),
        403,
        "insufficient_scope",
        "access_as_user",
    )
    .await;
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
