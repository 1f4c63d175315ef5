//! Mutations of a valid token's header (the input is the header JSON: alg, kid, crit, jku, …)
//! with its real claims and signature; only the original header may verify.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fuzz_support::fixture();
    let token = format!(
        "{}.{}.{}",
        fuzz_support::b64(data),
        fuzz_support::b64(fuzz_support::VALID_CLAIMS),
        f.valid_signature
    );
    fuzz_support::check_only_valid_token_accepted(&token);
});
