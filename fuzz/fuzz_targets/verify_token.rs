//! Arbitrary bytes as a bearer token for the Entra verifier (fixed keys, no network).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_support::check_only_valid_token_accepted(&String::from_utf8_lossy(data));
});
