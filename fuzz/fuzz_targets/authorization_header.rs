//! The `Authorization` header parser: every line but the last is a header value, the last a URI.
#![no_main]
use http::{HeaderMap, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let uri = lines
        .pop()
        .and_then(|u| Uri::try_from(u).ok())
        .unwrap_or_else(|| Uri::from_static("/mcp"));
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(http::header::AUTHORIZATION, value);
        }
    }
    if let Ok(token) = transports::http::bearer_token(&headers, &uri) {
        assert!(!token.is_empty() && !token.starts_with(' ') && !token.ends_with(' '));
        assert_eq!(headers.get_all(http::header::AUTHORIZATION).iter().count(), 1);
    }
});
