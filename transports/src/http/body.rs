//! Response bodies: the boxed type rmcp uses, and small constructors.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Frame;

/// The response body of every route: rmcp's own type, so MCP responses pass through unboxed.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A plain-text answer with `status`.
pub(crate) fn text(status: http::StatusCode, body: &str) -> http::Response<Body> {
    let mut response = http::Response::new(full(body.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

/// `body`, holding `guard` until the body has produced its last frame (or is dropped): what
/// counts a request as in flight (per connection, per session, per principal) lives as long as
/// the server is still producing its answer. Not until the peer has taken it: hyper holds a
/// frame until an HTTP/2 peer grants window and only then asks for the next, so each frame is
/// read one ahead, and a peer that grants none cannot hold the count, and its connection, for
/// ever once the answer is complete.
pub(crate) fn with_guard<G: Send + Sync + Unpin + 'static>(body: Body, guard: G) -> Body {
    Guarded {
        inner: body,
        guard: Some(guard),
        ahead: None,
        finished: false,
    }
    .boxed()
}

struct Guarded<G> {
    inner: Body,
    guard: Option<G>,
    /// The next frame, read ahead.
    ahead: Option<Frame<Bytes>>,
    /// The inner body has ended.
    finished: bool,
}

impl<G: Unpin> Guarded<G> {
    fn end(&mut self) {
        self.finished = true;
        self.guard = None;
    }
}

impl<G: Unpin> hyper::body::Body for Guarded<G> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        // `Body` is `Unpin` (a boxed body), so the projection is safe without pin-project.
        let this = self.get_mut();
        let frame = match this.ahead.take() {
            Some(frame) => frame,
            None if this.finished => return Poll::Ready(None),
            None => match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => {
                    this.end();
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            },
        };
        if this.inner.is_end_stream() {
            this.end();
        } else {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(next))) => this.ahead = Some(next),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => this.end(),
                Poll::Pending => {}
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.ahead.is_none() && (self.finished || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        let mut hint = self.inner.size_hint();
        if let Some(len) = self
            .ahead
            .as_ref()
            .and_then(|f| f.data_ref())
            .map(|d| d.len() as u64)
        {
            hint.set_lower(hint.lower() + len);
            if let Some(upper) = hint.upper() {
                hint.set_upper(upper + len);
            }
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    struct Flag(Arc<AtomicBool>);

    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_guard_goes_with_the_last_frame_not_when_the_peer_takes_it() {
        // A body of two frames: the guard is released as the last one is handed over, before
        // anyone asks for the end.
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
        tx.send(Bytes::from_static(b"one")).await.unwrap();
        tx.send(Bytes::from_static(b"two")).await.unwrap();
        drop(tx);
        let stream = futures::StreamExt::map(tokio_stream_from(rx), |b| Ok::<_, Infallible>(Frame::data(b)));
        let released = Arc::new(AtomicBool::new(false));
        let mut body = with_guard(
            http_body_util::StreamBody::new(stream).boxed(),
            Flag(released.clone()),
        );
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "one");
        assert!(
            !released.load(Ordering::SeqCst),
            "released with a frame still to come"
        );
        let second = body.frame().await.unwrap().unwrap();
        assert_eq!(second.into_data().unwrap(), "two");
        assert!(released.load(Ordering::SeqCst), "held after the last frame");
        assert!(body.frame().await.is_none());
    }

    fn tokio_stream_from(mut rx: tokio::sync::mpsc::Receiver<Bytes>) -> impl futures::Stream<Item = Bytes> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
