//! SSE priming events only for clients that know them.
//!
//! A priming event (SEP-1699: an id, a `retry` delay and empty `data`) tells a client where it
//! may resume a stream. It was introduced with protocol version 2025-11-25; clients of earlier
//! versions treat every event as a JSON-RPC message and fail on its empty data (the TypeScript,
//! Python and Go SDKs send priming events only to 2025-11-25 and later). rmcp sends them to
//! every legacy session, so the answers of sessions that negotiated an earlier version pass
//! through [`without_priming`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body as HttpBody, Frame};

use super::body::Body;

/// The first protocol version whose clients expect priming events.
pub(crate) const FIRST_PRIMING_VERSION: &str = "2025-11-25";

/// `true` when a client of `version` must not be sent priming events. Versions are dates
/// (`YYYY-MM-DD`), so they compare as text; no header at all means 2025-03-26 (the transport
/// spec's rule for a missing `MCP-Protocol-Version`).
pub(crate) fn predates_priming(version: Option<&str>) -> bool {
    version.is_none_or(|v| v < FIRST_PRIMING_VERSION)
}

/// `body` (an SSE stream) with its priming events left out.
pub(crate) fn without_priming(body: Body) -> Body {
    WithoutPriming { inner: body }.boxed()
}

struct WithoutPriming {
    inner: Body,
}

impl HttpBody for WithoutPriming {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        loop {
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if frame.data_ref().is_some_and(|data| is_priming(data)) {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// `true` for one SSE event whose `data` lines are all empty (rmcp writes one event per frame;
/// a keep-alive comment has no `data` line and stays).
fn is_priming(event: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(event) else {
        return false;
    };
    let mut data_lines = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .peekable();
    data_lines.peek().is_some() && data_lines.all(|value| value.trim_start_matches(' ').is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_empty_data_events_are_priming() {
        // (event as written, is priming)
        let rows: [(&str, bool); 6] = [
            ("id: 0\nretry: 3000\ndata: \n\n", true),
            ("id: 0\nretry: 3000\ndata:\n\n", true),
            (
                "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\nid: 1\n\n",
                false,
            ),
            (":\n\n", false),
            ("retry: 3000\n\n", false),
            ("data: \ndata: x\n\n", false),
        ];
        for (event, priming) in rows {
            assert_eq!(is_priming(event.as_bytes()), priming, "{event:?}");
        }
        for (version, predates) in [
            (None, true),
            (Some("2025-03-26"), true),
            (Some("2025-06-18"), true),
            (Some("2025-11-25"), false),
            (Some("2026-07-28"), false),
        ] {
            assert_eq!(predates_priming(version), predates, "{version:?}");
        }
    }
}
