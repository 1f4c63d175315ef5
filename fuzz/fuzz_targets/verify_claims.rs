//! Mutations of a valid token's claims (the input is the claims JSON), under its real header and
//! signature: exercises every claim rule; only the original claims may verify.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fuzz_support::fixture();
    let token = format!(
        "{}.{}.{}",
        fuzz_support::b64(fuzz_support::VALID_HEADER),
        fuzz_support::b64(data),
        f.valid_signature
    );
    fuzz_support::check_only_valid_token_accepted(&token);
});
