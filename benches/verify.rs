//! Token verification with cached keys: a valid token, rejected tokens, and the bare RS256 check
//! for comparison. Run: `cargo bench --bench verify`.

#[path = "../tests/it/common.rs"]
#[allow(unused_imports)]
mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::json;
use verifiers::TokenVerifier;

use common::{key1, mint, FakeEntra, TENANT};

fn verification(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = key1();
    let (fake, verifier, uncached) = rt.block_on(async {
        let fake = FakeEntra::start(&[&key]).await;
        let verifier = fake.verifier(fake.config(TENANT)).await;
        let mut no_cache = fake.config(TENANT);
        no_cache.token_cache_entries = 0;
        let uncached = fake.verifier(no_cache).await;
        (fake, verifier, uncached)
    });
    let valid = mint(&key, &fake.claims(TENANT));
    let mut expired_claims = fake.claims(TENANT);
    expired_claims["exp"] = json!(common::now() - 7200);
    let expired = mint(&key, &expired_claims);
    let mut forged = valid.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    rt.block_on(async {
        assert!(verifier.verify(&valid).await.is_ok());
        assert!(verifier.verify(&expired).await.is_err());
        assert!(verifier.verify(&forged).await.is_err());
    });

    let mut group = c.benchmark_group("verify");
    group.bench_function("valid token, cached keys, full verification", |b| {
        b.to_async(&rt)
            .iter(|| async { uncached.verify(&valid).await.unwrap() })
    });
    group.bench_function("valid token seen before (verified-token cache hit)", |b| {
        b.to_async(&rt)
            .iter(|| async { verifier.verify(&valid).await.unwrap() })
    });
    group.bench_function("rejected: expired (no RSA work)", |b| {
        b.to_async(&rt)
            .iter(|| async { uncached.verify(&expired).await.unwrap_err() })
    });
    group.bench_function("rejected: bad signature", |b| {
        b.to_async(&rt)
            .iter(|| async { uncached.verify(&forged).await.unwrap_err() })
    });
    // The floor: the RS256 signature check alone, as jsonwebtoken does it.
    let n = key.jwk["n"].as_str().unwrap().to_owned();
    let e = key.jwk["e"].as_str().unwrap().to_owned();
    let decoding = DecodingKey::from_rsa_components(&n, &e).unwrap();
    let (input, signature) = valid.rsplit_once('.').unwrap();
    group.bench_function("RS256 signature check alone", |b| {
        b.iter(|| {
            jsonwebtoken::crypto::verify(signature, input.as_bytes(), &decoding, Algorithm::RS256).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
