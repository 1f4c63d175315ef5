//! Small HTTP helpers shared by the token exchange, the managed identity and downstream calls.

/// Largest response body read from Entra, a managed-identity endpoint or a downstream API.
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Reads at most [`MAX_RESPONSE_BYTES`] of `response`; the rest is dropped, which makes any
/// JSON in it fail to parse rather than exhaust memory.
pub(crate) async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Form-encodes `fields` (`application/x-www-form-urlencoded`).
pub(crate) fn form(fields: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        out.append_pair(name, value);
    }
    out.finish()
}
