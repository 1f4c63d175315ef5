//! Arbitrary claims, validly signed by each key of a multi-tenant JWKS whose keys carry an
//! `issuer`: a signature is never enough. Only access tokens for this API, signed by a key of
//! their own issuer, may verify (see `check_signed_claims`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_support::check_signed_claims(data);
});
