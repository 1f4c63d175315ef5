//! Where tokens and keys may travel, and how much of an answer is read: the rules shared by the
//! Entra verifier (metadata and keys), the on-behalf-of exchange, the managed-identity endpoint
//! and downstream calls.

use thiserror::Error;

/// `true` for `localhost` (any case), `127.0.0.0/8` and `::1`, bracketed or not (`[::1]`).
///
/// The one definition of "loopback" for every rule that relaxes something on the local machine
/// (plain `http` to a test server).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The rule for every document the verifier fetches and every URL a token is sent to: `https`,
/// or plain `http` to a loopback host only (test servers on 127.0.0.1). A fetched document that
/// names another URL (the metadata's `jwks_uri`) is held to the same rule as the configured one.
pub fn is_secure_transport(url: &url::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => is_loopback_host(url.host_str().unwrap_or_default()),
        _ => false,
    }
}

/// Why [`read_limited`] returned no body.
#[derive(Debug, Error)]
pub(crate) enum ReadError {
    /// The connection failed while the body was read.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// The body is longer than the limit (bytes); what arrived is dropped.
    #[error("the answer is longer than {0} bytes")]
    TooLarge(usize),
}

/// The body of `response`, if it is at most `max` bytes; reading stops at the first chunk past
/// the limit, so a hostile or broken server cannot make us hold more than `max` bytes.
pub(crate) async fn read_limited(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_token_urls_are_https_or_loopback_http() {
        // (URL, accepted) — the rule for the authority, every fetched document (`jwks_uri`
        // included) and GRAPH_BASE_URL.
        let rows = [
            ("https://login.microsoftonline.com/x/discovery/v2.0/keys", true),
            ("http://127.0.0.1:8080/keys", true),
            ("http://127.8.0.1:8080/keys", true),
            ("http://localhost/keys", true),
            ("http://LocalHost/keys", true),
            ("http://[::1]:9/keys", true),
            ("http://login.microsoftonline.com/keys", false),
            ("http://127.0.0.1.evil.example/keys", false),
            ("http://localhost.evil.example/keys", false),
            ("http://10.0.0.1/keys", false),
            ("http://[::ffff:10.0.0.1]/keys", false),
            ("ftp://127.0.0.1/keys", false),
            ("file:///etc/passwd", false),
        ];
        for (url, accepted) in rows {
            let url = url::Url::parse(url).unwrap();
            assert_eq!(is_secure_transport(&url), accepted, "{url}");
        }
    }
}
