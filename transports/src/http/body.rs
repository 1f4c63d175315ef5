//! Response bodies: the boxed type rmcp uses, and small constructors.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};

/// The response body of every route: rmcp's own type, so MCP responses pass through unboxed.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

/// `body`, holding `guard` until the body has produced its last frame (or is dropped): what
/// counts a request as in flight (per connection, per session, per principal) lives as long as
/// the server is still producing its answer. Not until the peer has taken it: an HTTP/2 peer
/// that grants no send window would otherwise hold the count, and its connection, for ever.
pub(crate) fn with_guard<G: Send + Sync + Unpin + 'static>(body: Body, guard: G) -> Body {
    Guarded {
        inner: body,
        guard: Some(guard),
    }
    .boxed()
}

struct Guarded<G> {
    inner: Body,
    guard: Option<G>,
}

impl<G: Unpin> hyper::body::Body for Guarded<G> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        // `Body` is `Unpin` (a boxed body), so the projection is safe without pin-project.
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) || this.inner.is_end_stream() {
            this.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
