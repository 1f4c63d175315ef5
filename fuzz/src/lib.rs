//! Shared fixtures of the fuzz targets: an offline Entra verifier with a test key, a valid token
//! signed once, and a runtime to drive async code from libFuzzer's synchronous callback.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use verifiers::{AccessPolicy, EntraConfig, EntraVerifier};

pub const TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-000000000001";
pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
/// The claims of the valid token, byte for byte (also the seed of `verify_claims`).
pub const VALID_CLAIMS: &[u8] = include_bytes!("../seeds/verify_claims/valid.json");
/// The header of the valid token (also the seed of `verify_header`).
pub const VALID_HEADER: &[u8] = include_bytes!("../seeds/verify_header/valid.json");

pub struct Fixture {
    pub verifier: EntraVerifier,
    pub runtime: tokio::runtime::Runtime,
    pub valid_token: String,
    pub valid_signature: String,
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = EncodingKey::from_rsa_pem(include_bytes!("../../tests/fixtures/key1.pem")).unwrap();
        let mut jwk = serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap()).unwrap();
        jwk["kid"] = "key-1".into();
        let issuer = format!("https://login.microsoftonline.com/{TENANT}/v2.0");
        let verifier =
            EntraVerifier::offline(EntraConfig::new(CLIENT_ID, TENANT), AccessPolicy::scopes(["access_as_user"]), issuer, &[jwk])
                .unwrap();
        let input = format!("{}.{}", b64(VALID_HEADER), b64(VALID_CLAIMS));
        let valid_signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::RS256).unwrap();
        let valid_token = format!("{input}.{valid_signature}");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert!(runtime.block_on(verifiers::TokenVerifier::verify(&verifier, &valid_token)).is_ok(), "the fixture token must verify");
        Fixture { verifier, runtime, valid_token, valid_signature }
    })
}

/// Verifies `token`; the oracle: only the one validly signed token may ever be accepted.
pub fn check_only_valid_token_accepted(token: &str) {
    let f = fixture();
    let result = f.runtime.block_on(verifiers::TokenVerifier::verify(&f.verifier, token));
    if result.is_ok() {
        assert_eq!(token, f.valid_token, "a token other than the signed one was accepted");
    }
}

/// The issuer template Entra tags work-and-school keys of a multi-tenant JWKS with.
pub const ORG_KEY_ISSUER: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
/// The issuer Entra tags personal-account keys with.
pub const CONSUMER_KEY_ISSUER: &str = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0";

/// A `common` verifier whose JWKS is shaped like Entra's: `org` tagged with the `{tenantid}`
/// template, `msa` tagged with the consumer tenant's issuer. Accepts app-only tokens with the
/// `Tools.Run` role, so the token-type rules are reachable.
pub struct CommonFixture {
    pub verifier: EntraVerifier,
    /// (kid, signing key, the `issuer` its JWK carries).
    pub keys: Vec<(&'static str, EncodingKey, &'static str)>,
}

pub fn common_fixture() -> &'static CommonFixture {
    static FIXTURE: OnceLock<CommonFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let org = EncodingKey::from_rsa_pem(include_bytes!("../../tests/fixtures/key1.pem")).unwrap();
        let msa = EncodingKey::from_rsa_pem(include_bytes!("../../tests/fixtures/key2.pem")).unwrap();
        let jwk = |key: &EncodingKey, kid: &str, issuer: &str| {
            let mut jwk = serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(key, Algorithm::RS256).unwrap()).unwrap();
            jwk["kid"] = kid.into();
            jwk["issuer"] = issuer.into();
            jwk
        };
        let jwks = [jwk(&org, "org", ORG_KEY_ISSUER), jwk(&msa, "msa", CONSUMER_KEY_ISSUER)];
        let policy = AccessPolicy::scopes(["access_as_user"]).with_app_roles(["Tools.Run"]);
        let verifier = EntraVerifier::offline(EntraConfig::new(CLIENT_ID, "common"), policy, ORG_KEY_ISSUER, &jwks).unwrap();
        CommonFixture { verifier, keys: vec![("org", org, ORG_KEY_ISSUER), ("msa", msa, CONSUMER_KEY_ISSUER)] }
    })
}

/// The oracle of the token-integrity rules (docs/ARCHITECTURE.md#token-verification): `claims` signed with each key of a
/// `common` JWKS. Whatever verifies was signed by a key whose `issuer` admits the token's `iss`
/// (`{tenantid}` := `tid`), is no ID token, has `ver` 2.0, and is app-only only on evidence.
pub fn check_signed_claims(claims: &[u8]) {
    let f = common_fixture();
    let runtime = &fixture().runtime;
    let payload = b64(claims);
    for (kid, key, key_issuer) in &f.keys {
        let header = b64(format!("{{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"{kid}\"}}").as_bytes());
        let input = format!("{header}.{payload}");
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, Algorithm::RS256).unwrap();
        let token = format!("{input}.{signature}");
        let Ok(identity) = runtime.block_on(verifiers::TokenVerifier::verify(&f.verifier, &token)) else { continue };
        let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(claims).expect("accepted claims are a JSON object");
        let text = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
        let (iss, tid) = (text("iss").expect("accepted without iss"), text("tid").expect("accepted without tid"));
        assert_eq!(iss, key_issuer.replace("{tenantid}", tid), "key {kid} verified a token of another issuer");
        assert_eq!(text("ver"), Some("2.0"), "a v2 issuer's token without ver 2.0 was accepted");
        let scp = claims.contains_key("scp");
        assert!(scp || !["nonce", "at_hash", "c_hash"].iter().any(|m| claims.contains_key(*m)), "an ID token was accepted");
        if identity.app_only {
            let idtyp = text("idtyp").map(str::to_ascii_lowercase);
            let evidence = idtyp.as_deref() == Some("app")
                || (idtyp.is_none() && text("oid").is_some() && text("oid") == text("sub") && (text("azp").is_some() || text("appid").is_some()));
            assert!(!scp && evidence, "app-only without evidence");
        } else {
            assert!(scp, "a delegated token without scp was accepted");
        }
    }
}
