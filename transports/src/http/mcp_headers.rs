//! The `Mcp-*` request headers of the 2026-07-28 protocol (SEP-2243), read exactly as the
//! protocol defines them.
//!
//! A value that cannot travel as a plain header value (non-ASCII, leading or trailing space, or
//! one that looks like the sentinel itself) is sent as `=?base64?<standard base64 of the UTF-8
//! value>?=`. Every reader of these headers in this crate goes through [`header_value`], so the
//! per-tool gate sees `roll_dice` whether the client wrote `roll_dice` or
//! `=?base64?cm9sbF9kaWNl?=`, just as rmcp's own validation does.

use base64::Engine as _;
use http::HeaderMap;
use rmcp::transport::common::http_header::{BASE64_HEADER_PREFIX, BASE64_HEADER_SUFFIX};

/// `Mcp-Method`: the JSON-RPC method of a 2026-07-28 request.
pub(crate) const METHOD: &str = "mcp-method";
/// `Mcp-Name`: the tool, prompt or resource a 2026-07-28 request names.
pub(crate) const NAME: &str = "mcp-name";
/// `MCP-Protocol-Version`: the version a request is made at.
pub(crate) const PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// The first protocol version whose requests carry `Mcp-Method` and `Mcp-Name` (and whose
/// server checks them against the body). Versions are ISO dates: text order is time order.
pub(crate) const FIRST_VERSION_WITH_HEADERS: &str = "2026-07-28";

/// A header value that is not what the protocol allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum McpHeaderError {
    /// Not visible ASCII, or a base64 sentinel whose content is not base64 of UTF-8 text.
    #[error("the {0} header is not a valid value (plain text, or =?base64?<base64 of UTF-8>?=)")]
    Malformed(&'static str),
}

/// The decoded value of the `Mcp-*` header `name`, `None` when absent.
pub(crate) fn header_value(
    headers: &HeaderMap,
    name: &'static str,
) -> Result<Option<String>, McpHeaderError> {
    let Some(raw) = headers.get(name) else {
        return Ok(None);
    };
    let raw = raw.to_str().map_err(|_| McpHeaderError::Malformed(name))?;
    decode(raw).map(Some).ok_or(McpHeaderError::Malformed(name))
}

/// `=?base64?<b64>?=` decoded; any other value as it is.
fn decode(raw: &str) -> Option<String> {
    match raw
        .strip_prefix(BASE64_HEADER_PREFIX)
        .and_then(|inner| inner.strip_suffix(BASE64_HEADER_SUFFIX))
    {
        Some(inner) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(inner).ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_encoded_values_read_the_same() {
        // (raw header value, decoded)
        let rows = [
            ("roll_dice", Some("roll_dice")),
            ("=?base64?cm9sbF9kaWNl?=", Some("roll_dice")),
            ("=?base64?w6lsw6h2ZQ==?=", Some("élève")),
            ("=?base64?not base64?=", None),
            ("=?base64?/w==?=", None), // 0xFF is not UTF-8
            ("=?base64?cm9sbF9kaWNl", Some("=?base64?cm9sbF9kaWNl")),
        ];
        for (raw, expected) in rows {
            assert_eq!(decode(raw).as_deref(), expected, "{raw}");
        }
    }
}
