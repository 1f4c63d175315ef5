//! The Entra verifier's rules at the crate boundary: what a user of `verifiers` sees, through its
//! public API only (an offline verifier with a test key; tokens minted here).
//!
//! One row per rule: a change to a valid token's claims (or header), and the refusal's `kind`.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use verifiers::{AccessPolicy, ApplicationIdUri, AuthError, EntraConfig, EntraVerifier, TokenVerifier};

const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const OTHER_TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-ffffffffffff";
const APP_ID_URI: &str = "https://mcp.contoso.example/mcp";

fn key() -> EncodingKey {
    EncodingKey::from_rsa_pem(include_bytes!("../../tests/fixtures/key1.pem")).unwrap()
}

fn issuer(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/v2.0")
}

fn verifier() -> EntraVerifier {
    verifier_with(AccessPolicy::scopes(["access_as_user"]).with_app_roles(["Tools.Run"]))
}

fn verifier_with(policy: AccessPolicy) -> EntraVerifier {
    let mut jwk =
        serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(&key(), Algorithm::RS256).unwrap())
            .unwrap();
    jwk["kid"] = json!("key-1");
    let mut config = EntraConfig::new(CLIENT_ID, TENANT);
    config.additional_identifier_uris = vec![ApplicationIdUri::parse(APP_ID_URI).unwrap()];
    EntraVerifier::offline(config, policy, issuer(TENANT), &[jwk]).unwrap()
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A delegated v2.0 access token for this API, valid for an hour.
fn valid_claims() -> Value {
    json!({
        "aud": CLIENT_ID, "iss": issuer(TENANT), "tid": TENANT, "ver": "2.0",
        "oid": "00000000-0000-0000-0000-0000000000a1", "sub": "subject-1", "azp": "client-app",
        "scp": "access_as_user", "name": "Ada Lovelace",
        "iat": now() - 60, "nbf": now() - 60, "exp": now() + 3600,
    })
}

fn mint(header: &Value, claims: &Value) -> String {
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let input = format!("{}.{}", encode(header), encode(claims));
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key(), Algorithm::RS256).unwrap();
    format!("{input}.{signature}")
}

/// `base` with every key of `patch` set, `null` removing it.
fn patched(mut base: Value, patch: &Value) -> Value {
    for (name, value) in patch.as_object().unwrap() {
        if value.is_null() {
            base.as_object_mut().unwrap().remove(name);
        } else {
            base[name] = value.clone();
        }
    }
    base
}

#[tokio::test]
async fn every_rule_at_the_crate_boundary() {
    let verifier = verifier();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "key-1"});
    // (rule, header patch, claims patch, refusal kind or None when accepted)
    let rows: Vec<(&str, Value, Value, Option<&str>)> = vec![
        ("a valid delegated token", json!({}), json!({}), None),
        (
            "audience: the client id",
            json!({}),
            json!({"aud": CLIENT_ID}),
            None,
        ),
        (
            "audience: an Application ID URI, trailing slash",
            json!({}),
            json!({"aud": format!("{APP_ID_URI}/")}),
            None,
        ),
        (
            "audience: api://<client-id>",
            json!({}),
            json!({"aud": format!("api://{CLIENT_ID}")}),
            None,
        ),
        (
            "audience: another API",
            json!({}),
            json!({"aud": "api://someone-else"}),
            Some("wrong_audience"),
        ),
        (
            "audience: Microsoft Graph",
            json!({}),
            json!({"aud": "00000003-0000-0000-c000-000000000000"}),
            Some("graph_token"),
        ),
        (
            "expired beyond the leeway",
            json!({}),
            json!({"exp": now() - 3600}),
            Some("expired"),
        ),
        (
            "not yet valid beyond the leeway",
            json!({}),
            json!({"nbf": now() + 3600}),
            Some("not_yet_valid"),
        ),
        ("no exp", json!({}), json!({"exp": null}), Some("missing_claim")),
        (
            "another tenant's issuer",
            json!({}),
            json!({"iss": issuer(OTHER_TENANT), "tid": OTHER_TENANT}),
            Some("wrong_issuer"),
        ),
        (
            "tid disagrees with iss",
            json!({}),
            json!({"tid": OTHER_TENANT}),
            Some("tenant_mismatch"),
        ),
        (
            "a v1.0 token, not enabled",
            json!({}),
            json!({"iss": format!("https://sts.windows.net/{TENANT}/"), "ver": "1.0"}),
            Some("v1_token"),
        ),
        (
            "ver disagrees with the issuer",
            json!({}),
            json!({"ver": "1.0"}),
            Some("version_mismatch"),
        ),
        (
            "delegated without the scope",
            json!({}),
            json!({"scp": "Other.Read"}),
            Some("insufficient_scope"),
        ),
        (
            "app-only with the role",
            json!({}),
            json!({"scp": null, "roles": ["Tools.Run"], "idtyp": "app", "sub": "00000000-0000-0000-0000-0000000000a1"}),
            None,
        ),
        (
            "app-only without the role",
            json!({}),
            json!({"scp": null, "roles": ["Other"], "idtyp": "app", "sub": "00000000-0000-0000-0000-0000000000a1"}),
            Some("insufficient_scope"),
        ),
        (
            "alg none",
            json!({"alg": "none"}),
            json!({}),
            Some("unsupported_algorithm"),
        ),
        (
            "HS256",
            json!({"alg": "HS256"}),
            json!({}),
            Some("unsupported_algorithm"),
        ),
        ("no kid", json!({"kid": null}), json!({}), Some("missing_kid")),
        (
            "a kid the tenant never published",
            json!({"kid": "key-9"}),
            json!({}),
            Some("unknown_kid"),
        ),
    ];
    for (rule, header_patch, claims_patch, expected) in rows {
        let token = mint(
            &patched(header.clone(), &header_patch),
            &patched(valid_claims(), &claims_patch),
        );
        let got = verifier.verify(&token).await;
        match (expected, got) {
            (None, Ok(identity)) => assert_eq!(identity.tenant_id, TENANT, "{rule}"),
            (Some(kind), Err(error)) => assert_eq!(error.kind(), kind, "{rule}: {error}"),
            (expected, got) => panic!("{rule}: expected {expected:?}, got {got:?}"),
        }
    }
}

#[tokio::test]
async fn tampering_and_size_are_refused_before_any_claim_is_believed() {
    let verifier = verifier();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "key-1"});
    let valid = mint(&header, &valid_claims());
    assert!(verifier.verify(&valid).await.is_ok());

    // Another payload under the valid signature: refused for the signature, not for its claims.
    let (head, rest) = valid.split_once('.').unwrap();
    let signature = rest.rsplit_once('.').unwrap().1;
    let forged_claims = patched(
        valid_claims(),
        &json!({"tid": OTHER_TENANT, "iss": issuer(OTHER_TENANT)}),
    );
    let forged = format!(
        "{head}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap())
    );
    let error = verifier.verify(&forged).await.unwrap_err();
    assert_eq!(error.kind(), "bad_signature", "{error}");

    let huge = format!("{valid}{}", "A".repeat(20 * 1024));
    assert_eq!(verifier.verify(&huge).await.unwrap_err().kind(), "too_large");
    assert!(matches!(
        verifier.verify("").await,
        Err(AuthError::InvalidToken(_) | AuthError::MissingToken)
    ));
}

#[tokio::test]
async fn refusals_say_what_to_request_and_which_setting_admits_daemons() {
    let verifier = verifier_with(AccessPolicy::scopes(["access_as_user"]));
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "key-1"});
    let refusal = |claims: Value| {
        let token = mint(&header, &patched(valid_claims(), &claims));
        let verifier = &verifier;
        async move { verifier.verify(&token).await.unwrap_err().to_string() }
    };
    let other_api = refusal(json!({"aud": "api://someone-else"})).await;
    assert!(
        other_api.ends_with(&format!(
            "; request a token for this API (api://{CLIENT_ID}/access_as_user)"
        )),
        "{other_api}"
    );
    let daemon = refusal(json!({"scp": null, "roles": ["Tools.Run"], "idtyp": "app"})).await;
    assert!(
        daemon.contains("list the app roles they must carry in AZURE_REQUIRED_APP_ROLES"),
        "{daemon}"
    );
}
