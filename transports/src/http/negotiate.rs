//! Content negotiation on the MCP endpoint (RFC 9110 §12.5.1), in front of rmcp: see
//! [`NegotiateLayer`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use tower::{Layer, Service};

use super::body::{full, Body};

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";
/// What rmcp requires on a POST.
const RMCP_POST_ACCEPT: &str = "application/json, text/event-stream";
/// The most a streamed answer may hold before its JSON-RPC response, for a JSON-only client.
const MAX_BUFFERED_BYTES: usize = 16 * 1024 * 1024;

/// Layer that applies [`Negotiate`] to a service.
///
/// rmcp's `StreamableHttpService` answers `406` to a POST whose `Accept` does not name both
/// `application/json` and `text/event-stream` literally, and to a GET that does not name
/// `text/event-stream`; wildcards and an absent header count for nothing there. Clients in the
/// field send `Accept: */*`, `Accept: application/json` or no `Accept` at all, and RFC 9110
/// says those accept JSON. This layer therefore:
///
/// | request | what rmcp sees | answer |
/// |---|---|---|
/// | POST naming `text/event-stream` (q > 0) and allowing JSON | `application/json, text/event-stream` | as rmcp answers (SSE or JSON) |
/// | POST allowing JSON (`*/*`, `application/*`, `application/json`, no header) | `application/json, text/event-stream` | `application/json`: an SSE answer is read up to the JSON-RPC response, which becomes the body |
/// | POST whose `Accept` excludes JSON | nothing | `406` |
/// | GET allowing `text/event-stream` (also `*/*`, `text/*`, no header) | `text/event-stream` | rmcp's stream |
/// | GET excluding it | nothing | `406` |
///
/// rmcp cannot answer a request inside a legacy session with JSON (it always streams), so the
/// JSON answer is made here from the stream. Notifications the server sends before its response
/// (progress, logs) cannot reach a client that reads only JSON and are dropped; a server-to-client
/// request in that position (sampling, elicitation) would wait for an answer that cannot come,
/// so tools that make one need clients that accept SSE.
#[derive(Debug, Clone, Copy, Default)]
pub struct NegotiateLayer;

impl<S> Layer<S> for NegotiateLayer {
    type Service = Negotiate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Negotiate { inner }
    }
}

/// Middleware that serves clients accepting only JSON and refuses only those that exclude it
/// (see [`NegotiateLayer`]).
#[derive(Debug, Clone)]
pub struct Negotiate<S> {
    inner: S,
}

impl<S> Negotiate<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// What a request's `Accept` header lets us answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Pass through to rmcp unchanged in meaning (SSE where rmcp streams).
    AsIs,
    /// The client takes JSON but did not ask for SSE: answer `application/json`.
    Json,
    /// The header excludes every type this request could be answered with.
    NotAcceptable(&'static str),
}

impl<S, B> Service<Request<B>> for Negotiate<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let accept = request
            .headers()
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        let header_present = request.headers().contains_key(ACCEPT);
        let answer = negotiate(request.method(), header_present.then_some(accept.as_str()));
        if let Answer::NotAcceptable(why) = answer {
            tracing::info!(method = %request.method(), "refused a request whose Accept header excludes the answer (406)");
            return Box::pin(async move { Ok(not_acceptable(why)) });
        }
        match *request.method() {
            Method::POST => {
                request
                    .headers_mut()
                    .insert(ACCEPT, HeaderValue::from_static(RMCP_POST_ACCEPT));
            }
            Method::GET => {
                request
                    .headers_mut()
                    .insert(ACCEPT, HeaderValue::from_static(EVENT_STREAM));
            }
            _ => {}
        }
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok(match answer {
                Answer::Json if is_event_stream(&response) => into_json(response).await,
                _ => response,
            })
        })
    }
}

/// Decides how a request with this `method` and `Accept` value (`None`: no header) is answered.
/// An empty value counts as no header (some HTTP libraries send one).
pub(crate) fn negotiate(method: &Method, accept: Option<&str>) -> Answer {
    let ranges = accept.filter(|a| !a.trim().is_empty()).map(MediaRanges::parse);
    let quality = |media: &str| ranges.as_ref().map_or(1.0, |r| r.quality(media));
    match *method {
        Method::POST => {
            if quality(JSON) <= 0.0 {
                Answer::NotAcceptable(
                    "Not Acceptable: the Accept header must allow application/json (add text/event-stream to receive streamed answers)",
                )
            } else if ranges.as_ref().is_some_and(|r| r.names(EVENT_STREAM)) {
                Answer::AsIs
            } else {
                Answer::Json
            }
        }
        Method::GET if quality(EVENT_STREAM) <= 0.0 => Answer::NotAcceptable(
            "Not Acceptable: GET opens a text/event-stream; the Accept header must allow it",
        ),
        _ => Answer::AsIs,
    }
}

/// The media ranges of an `Accept` value with their weights.
struct MediaRanges(Vec<(String, f32)>);

impl MediaRanges {
    fn parse(value: &str) -> Self {
        MediaRanges(
            value
                .split(',')
                .filter_map(|entry| {
                    let mut parts = entry.split(';');
                    let range = parts.next()?.trim().to_ascii_lowercase();
                    if range.is_empty() {
                        return None;
                    }
                    // A weight that does not parse is ignored, as rmcp does: only an explicit
                    // zero excludes a range.
                    let q = parts
                        .filter_map(|p| p.split_once('='))
                        .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                        .and_then(|(_, v)| v.trim().parse::<f32>().ok())
                        .unwrap_or(1.0);
                    Some((range, q))
                })
                .collect(),
        )
    }

    /// The weight of `media` (`type/subtype`): that of the most specific range matching it
    /// (RFC 9110 §12.5.1), 0 when none does.
    fn quality(&self, media: &str) -> f32 {
        let kind = media.split('/').next().unwrap_or(media);
        let specificity = |range: &str| {
            if range == media {
                Some(3)
            } else if range.strip_suffix("/*") == Some(kind) {
                Some(2)
            } else if range == "*/*" {
                Some(1)
            } else {
                None
            }
        };
        self.0
            .iter()
            .filter_map(|(range, q)| specificity(range).map(|s| (s, *q)))
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
            .map_or(0.0, |(_, q)| q)
    }

    /// `true` when `media` is listed by name with a weight above zero.
    fn names(&self, media: &str) -> bool {
        self.0.iter().any(|(range, q)| range == media && *q > 0.0)
    }
}

fn is_event_stream(response: &Response<Body>) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with(EVENT_STREAM))
}

/// Reads an SSE answer up to its JSON-RPC response and returns that response as
/// `application/json`, keeping the status and every other header (`Mcp-Session-Id`).
async fn into_json(response: Response<Body>) -> Response<Body> {
    let (mut parts, mut body) = response.into_parts();
    let mut buffer = BytesMut::new();
    let mut dropped = 0usize;
    loop {
        while let Some(event) = next_event(&mut buffer) {
            match jsonrpc_response(&event) {
                Some(message) => {
                    if dropped > 0 {
                        tracing::debug!(dropped, "dropped messages a JSON-only client cannot receive");
                    }
                    parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
                    parts.headers.remove(CONTENT_LENGTH);
                    parts.headers.remove(http::header::CACHE_CONTROL);
                    return Response::from_parts(parts, full(message));
                }
                None if !event.is_empty() => dropped += 1,
                None => {}
            }
        }
        if buffer.len() > MAX_BUFFERED_BYTES {
            tracing::warn!(
                "a streamed answer grew past 16 MiB before its response; giving up on a JSON-only client"
            );
            return server_error();
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buffer.extend_from_slice(&data);
                }
            }
            Some(Err(never)) => match never {},
            None => {
                tracing::warn!("the MCP handler's stream ended without a response");
                return server_error();
            }
        }
    }
}

/// Takes one complete SSE event off the front of `buffer` and returns its `data` (the lines
/// joined by `\n`; empty for events without data, such as priming events and comments).
fn next_event(buffer: &mut BytesMut) -> Option<Bytes> {
    let text = buffer.as_ref();
    let (end, separator) = [&b"\r\n\r\n"[..], b"\n\n", b"\r\r"]
        .iter()
        .filter_map(|sep| find(text, sep).map(|at| (at, sep.len())))
        .min()?;
    let event = buffer.split_to(end + separator).freeze();
    let mut data = BytesMut::new();
    for line in event[..end].split(|b| *b == b'\n' || *b == b'\r') {
        if let Some(value) = line.strip_prefix(b"data:") {
            if !data.is_empty() {
                data.extend_from_slice(b"\n");
            }
            data.extend_from_slice(value.strip_prefix(b" ").unwrap_or(value));
        }
    }
    Some(data.freeze())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `data` when it is a JSON-RPC response or error (has `id`, no `method`).
fn jsonrpc_response(data: &[u8]) -> Option<Bytes> {
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    let object = value.as_object()?;
    (object.contains_key("id") && !object.contains_key("method")).then(|| Bytes::copy_from_slice(data))
}

fn not_acceptable(why: &'static str) -> Response<Body> {
    let mut response = Response::new(full(why));
    *response.status_mut() = StatusCode::NOT_ACCEPTABLE;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn server_error() -> Response<Body> {
    let mut response = Response::new(full(
        "Internal Server Error: the answer could not be given as application/json",
    ));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_rules() {
        use Answer::*;
        let post = Method::POST;
        let get = Method::GET;
        for (method, accept, expected) in [
            (&post, None, Json),
            (&post, Some(" "), Json),
            (&post, Some("*/*"), Json),
            (&post, Some("application/json"), Json),
            (&post, Some("application/*"), Json),
            (&post, Some("Application/JSON; charset=utf-8"), Json),
            (&post, Some("application/json, text/event-stream"), AsIs),
            (&post, Some("text/event-stream, */*"), AsIs),
            (&post, Some("application/json, text/event-stream;q=0"), Json),
            (
                &post,
                Some("application/json;q=0.5, text/event-stream;q=0.9"),
                AsIs,
            ),
            (&post, Some("*/*, text/*"), Json),
            (&post, Some("text/event-stream"), NotAcceptable("")),
            (&post, Some("text/html"), NotAcceptable("")),
            (&post, Some("*/*, application/json;q=0"), NotAcceptable("")),
            (&post, Some("application/json;q=0"), NotAcceptable("")),
            (&post, Some("application/json;q=bogus"), Json),
            (&get, None, AsIs),
            (&get, Some("*/*"), AsIs),
            (&get, Some("text/*"), AsIs),
            (&get, Some("text/event-stream"), AsIs),
            (&get, Some("application/json"), NotAcceptable("")),
            (&get, Some("*/*, text/event-stream;q=0"), NotAcceptable("")),
            (&Method::DELETE, Some("text/html"), AsIs),
        ] {
            let got = match negotiate(method, accept) {
                NotAcceptable(_) => NotAcceptable(""),
                other => other,
            };
            assert_eq!(got, expected, "{method} Accept: {accept:?}");
        }
    }

    #[test]
    fn sse_events_are_split_and_their_data_joined() {
        let mut buffer = BytesMut::from(
            &b"id: 0\nretry: 3000\ndata:\n\n: keep-alive\n\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata: partial"[..],
        );
        assert_eq!(next_event(&mut buffer).unwrap(), Bytes::new());
        assert_eq!(next_event(&mut buffer).unwrap(), Bytes::new());
        assert_eq!(next_event(&mut buffer).unwrap(), Bytes::from("{\"a\":\n1}"));
        assert_eq!(next_event(&mut buffer), None);
        assert_eq!(&buffer[..], b"data: partial");
    }

    #[test]
    fn only_responses_and_errors_end_the_wait() {
        assert!(jsonrpc_response(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).is_some());
        assert!(
            jsonrpc_response(br#"{"jsonrpc":"2.0","id":"a","error":{"code":1,"message":"x"}}"#).is_some()
        );
        assert!(jsonrpc_response(br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#).is_none());
        assert!(jsonrpc_response(br#"{"jsonrpc":"2.0","id":9,"method":"elicitation/create"}"#).is_none());
        assert!(jsonrpc_response(b"").is_none());
    }
}
