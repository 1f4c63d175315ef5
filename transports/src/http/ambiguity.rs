//! Requests that two parsers could read two ways are refused before anything else looks at them.
//!
//! A proxy and this server must agree on which host, session or content type a request names;
//! where HTTP allows a second reading, we answer `400` instead of guessing:
//!
//! | request | answer | rule |
//! |---|---|---|
//! | HTTP/1.1 without `Host` | 400 | RFC 9112 §3.2 |
//! | two `Host` headers | 400 | RFC 9112 §3.2 |
//! | absolute-form target (`POST http://a/mcp`) whose authority differs from `Host` | 400 | RFC 9112 §3.2.2 (the target's authority is the host; a disagreeing `Host` means a confused or hostile hop) |
//! | two `Origin`, `Content-Type`, `Mcp-Session-Id`, `Mcp-Protocol-Version`, `Mcp-Method`, `Mcp-Name` or `Last-Event-ID` headers | 400 | each is a single value (RFC 6454 §7, RFC 9110 §8.3, MCP transport spec); the first and the last would name different things |
//!
//! Two `Authorization` headers are refused by the bearer layer (`400 invalid_request`, RFC 6750
//! §3.1) so that the answer carries a challenge. With an absolute-form target the host that
//! `ALLOWED_HOSTS` checks is the target's authority ([`request_host`]).

use http::header::{self, HeaderName};
use http::{Request, StatusCode, Version};

/// Headers that must appear at most once.
const SINGLE_VALUED: [&str; 7] = [
    "origin",
    "content-type",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
];

/// Why a request is ambiguous: the status and the plain-text answer.
pub(crate) fn ambiguity<B>(request: &Request<B>) -> Option<(StatusCode, String)> {
    let bad = |text: String| Some((StatusCode::BAD_REQUEST, format!("Bad Request: {text}")));
    let headers = request.headers();
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return bad("more than one Host header (RFC 9112 §3.2)".into());
    }
    match (host, request.uri().authority()) {
        (None, None) if request.version() == Version::HTTP_11 => {
            return bad("no Host header (RFC 9112 §3.2)".into());
        }
        (Some(host), Some(authority)) => {
            let default_port = if request.uri().scheme_str() == Some("https") {
                443
            } else {
                80
            };
            let same = host
                .to_str()
                .is_ok_and(|host| same_authority(host, authority.as_str(), default_port));
            if !same {
                return bad(
                    "the request target's authority and the Host header differ (RFC 9112 §3.2.2)".into(),
                );
            }
        }
        _ => {}
    }
    for name in SINGLE_VALUED {
        if headers
            .get_all(HeaderName::from_static(name))
            .iter()
            .nth(1)
            .is_some()
        {
            return bad(format!("more than one {name} header; send it once"));
        }
    }
    None
}

/// The host a request is for: the target's authority in absolute form (RFC 9112 §3.2.2, and
/// HTTP/2's `:authority`), else the `Host` header.
pub(crate) fn request_host<B>(request: &Request<B>) -> Option<&str> {
    match request.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => request.headers().get(header::HOST).and_then(|h| h.to_str().ok()),
    }
}

/// `host[:port]` equality, case-insensitive, with a missing port read as `default_port`.
fn same_authority(a: &str, b: &str, default_port: u16) -> bool {
    fn split(text: &str, default_port: u16) -> (String, Option<u16>) {
        let (name, port) = match text.rsplit_once(':') {
            Some((name, port)) if !port.contains(']') => (name, port.parse().ok()),
            _ => (text, Some(default_port)),
        };
        (name.trim_end_matches('.').to_ascii_lowercase(), port)
    }
    let (a, b) = (split(a, default_port), split(b, default_port));
    a.1.is_some() && a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, version: Version, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::post(target).version(version);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn each_ambiguity_is_refused_and_plain_requests_pass() {
        use Version as V;
        let h = "127.0.0.1:8000";
        /// Target, version, headers, and the expected refusal (`None`: passes).
        type Row<'a> = (&'a str, V, &'a [(&'a str, &'a str)], Option<&'a str>);
        let table: &[Row] = &[
            ("/mcp", V::HTTP_11, &[("host", h)], None),
            ("/mcp", V::HTTP_10, &[], None),
            ("/mcp", V::HTTP_11, &[], Some("Bad Request: no Host header (RFC 9112 §3.2)")),
            ("/mcp", V::HTTP_11, &[("host", h), ("host", "evil.example")], Some("Bad Request: more than one Host header (RFC 9112 §3.2)")),
            ("http://127.0.0.1:8000/mcp", V::HTTP_11, &[("host", h)], None),
            ("http://LOCALHOST/mcp", V::HTTP_11, &[("host", "localhost:80")], None),
            ("http://evil.example/mcp", V::HTTP_11, &[("host", h)], Some("Bad Request: the request target's authority and the Host header differ (RFC 9112 §3.2.2)")),
            ("http://127.0.0.1:9000/mcp", V::HTTP_11, &[("host", h)], Some("Bad Request: the request target's authority and the Host header differ (RFC 9112 §3.2.2)")),
            ("http://127.0.0.1:8000/mcp", V::HTTP_2, &[], None),
            ("/mcp", V::HTTP_11, &[("host", h), ("origin", "http://a"), ("origin", "http://b")], Some("Bad Request: more than one origin header; send it once")),
            ("/mcp", V::HTTP_11, &[("host", h), ("content-type", "application/json"), ("content-type", "text/plain")], Some("Bad Request: more than one content-type header; send it once")),
            ("/mcp", V::HTTP_11, &[("host", h), ("mcp-session-id", "a"), ("mcp-session-id", "b")], Some("Bad Request: more than one mcp-session-id header; send it once")),
            ("/mcp", V::HTTP_11, &[("host", h), ("mcp-protocol-version", "2025-11-25"), ("mcp-protocol-version", "2025-06-18")], Some("Bad Request: more than one mcp-protocol-version header; send it once")),
            ("/mcp", V::HTTP_11, &[("host", h), ("mcp-method", "tools/call"), ("mcp-method", "initialize")], Some("Bad Request: more than one mcp-method header; send it once")),
            ("/mcp", V::HTTP_11, &[("host", h), ("mcp-name", "a"), ("mcp-name", "b")], Some("Bad Request: more than one mcp-name header; send it once")),
            ("/mcp", V::HTTP_11, &[("host", h), ("last-event-id", "1"), ("last-event-id", "2")], Some("Bad Request: more than one last-event-id header; send it once")),
            ("/mcp", V::HTTP_11, &[("host", h), ("accept", "application/json"), ("accept", "text/event-stream")], None),
        ];
        for (target, version, headers, expected) in table {
            let got = ambiguity(&request(target, *version, headers));
            assert_eq!(
                got.as_ref()
                    .map(|(status, text)| (status.as_u16(), text.as_str())),
                expected.map(|text| (400, text)),
                "{target} {version:?} {headers:?}"
            );
        }
    }

    #[test]
    fn the_target_authority_is_the_host_that_is_checked() {
        let r = request(
            "http://evil.example/mcp",
            Version::HTTP_11,
            &[("host", "localhost")],
        );
        assert_eq!(request_host(&r), Some("evil.example"));
        let r = request("/mcp", Version::HTTP_11, &[("host", "localhost")]);
        assert_eq!(request_host(&r), Some("localhost"));
    }
}
