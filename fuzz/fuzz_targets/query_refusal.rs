//! The "no token in the query string" refusal (RFC 6750 §2.3 not supported): any query in which
//! a form decoder (the `url` crate's, an independent implementation) finds a parameter named
//! `access_token` in any case must be refused, however it is percent-encoded.
#![no_main]
use http::{HeaderMap, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use verifiers::{AuthError, MalformedCredentials};

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let Ok(uri) = Uri::try_from(format!("/mcp?{query}")) else { return };
    let Some(query) = uri.query() else { return };
    let named = query.split(';').any(|part| {
        url::form_urlencoded::parse(part.as_bytes())
            .any(|(name, _)| !name.contains(' ') && name.eq_ignore_ascii_case("access_token"))
    });
    if named {
        assert!(transports::http::query_has_access_token(query), "{query}");
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Bearer good"));
        assert_eq!(
            transports::http::bearer_token(&headers, &uri),
            Err(AuthError::from(MalformedCredentials::TokenInQuery)),
            "{query}"
        );
    }
});
