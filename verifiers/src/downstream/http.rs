//! Small HTTP helpers shared by the token exchange, the managed identity and downstream calls.

/// Largest response body read from Entra, a managed-identity endpoint or a downstream API.
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The body of `response` if it is at most [`MAX_RESPONSE_BYTES`]; a longer one is dropped
/// and read as empty, which makes any JSON expected in it fail to parse rather than exhaust
/// memory (each caller then reports a bad answer from that endpoint).
pub(crate) async fn read_limited(response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    match crate::net::read_limited(response, MAX_RESPONSE_BYTES).await {
        Ok(body) => Ok(body),
        Err(crate::net::ReadError::TooLarge(_)) => Ok(Vec::new()),
        Err(crate::net::ReadError::Http(error)) => Err(error),
    }
}

/// The longest lifetime believed of a token another server hands us (Entra's token endpoint, a
/// managed-identity endpoint): 24 hours, the longest Entra issues. A larger or absurd
/// `expires_in`/`expires_on` is clamped to it, so no outside number can overflow an `Instant`
/// or keep a token cached past any real expiry.
pub(crate) const MAX_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A token's lifetime from the endpoint's answer: `expires_on` (seconds since the Unix epoch, as
/// managed-identity endpoints send it) when given, else `expires_in` (seconds, RFC 6749 §5.1);
/// each a JSON number or a decimal string. Absent, malformed or already past: zero (use once,
/// cache nothing). Clamped to [`MAX_TOKEN_LIFETIME`].
pub(crate) fn token_lifetime(
    expires_on: Option<&serde_json::Value>,
    expires_in: Option<&serde_json::Value>,
    now_unix: u64,
) -> std::time::Duration {
    let seconds = |value: Option<&serde_json::Value>| match value? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    let secs = seconds(expires_on)
        .map(|on| on.saturating_sub(now_unix))
        .or_else(|| seconds(expires_in))
        .unwrap_or(0);
    std::time::Duration::from_secs(secs).min(MAX_TOKEN_LIFETIME)
}

/// Form-encodes `fields` (`application/x-www-form-urlencoded`).
pub(crate) fn form(fields: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        out.append_pair(name, value);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lifetimes_from_outside_are_clamped_and_checked() {
        let day = MAX_TOKEN_LIFETIME.as_secs();
        let now = 1_700_000_000;
        // (expires_on, expires_in, expected seconds)
        let rows = [
            (None, Some(json!(3599)), 3599),
            (None, Some(json!("3599")), 3599),
            (None, Some(json!(u64::MAX)), day),
            (None, Some(json!("18446744073709551615")), day),
            (None, Some(json!("99999999999999999999999")), 0),
            (None, Some(json!(-5)), 0),
            (None, Some(json!(1.5)), 0),
            (None, Some(json!(null)), 0),
            (None, None, 0),
            (Some(json!(now + 600)), Some(json!(10)), 600),
            (Some(json!(now - 600)), Some(json!(10)), 0),
            (Some(json!(u64::MAX)), None, day),
            (Some(json!("garbage")), Some(json!(10)), 10),
        ];
        for (on, expires_in, expected) in rows {
            let got = token_lifetime(on.as_ref(), expires_in.as_ref(), now);
            assert_eq!(got.as_secs(), expected, "{on:?} {expires_in:?}");
        }
    }
}
