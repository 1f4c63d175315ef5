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
