//! One accepted connection, bounded in time in every phase.
//!
//! | phase | bound | setting |
//! |---|---|---|
//! | connected, nothing sent | closed after the header timeout | `HEADER_READ_TIMEOUT_SECS` |
//! | HTTP/1.1 request headers | hyper's header timer | `HEADER_READ_TIMEOUT_SECS` |
//! | no request in flight (HTTP/1.1 keep-alive, an HTTP/2 connection without streams, an HTTP/2 header block never finished) | graceful close, then dropped after the header timeout | `CONNECTION_IDLE_TIMEOUT_SECS` |
//! | a request body (HTTP/1.1 or an HTTP/2 stream that never sends its `DATA`) | the body read fails; the answer is `408` with `Connection: close` | `REQUEST_BODY_TIMEOUT_SECS` |
//! | an HTTP/2 peer that stops answering | keep-alive `PING`s; no answer closes the connection | `HTTP2_KEEPALIVE_SECS` |
//!
//! A request is in flight from the moment hyper hands it over until its response body has been
//! sent or dropped, so a long tool call or an open event stream never counts as idle.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt as _;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::body::{full, with_guard, Body};
use super::router::{route, App, McpService};

/// Time bounds of one connection (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// Nothing sent since connecting; also the grace a closing connection gets.
    pub(crate) first_byte: Duration,
    /// No request in flight.
    pub(crate) idle: Duration,
    /// One request's body, from the moment its headers arrived.
    pub(crate) request_body: Duration,
}

/// The request body every route sees: the connection's own, with a deadline.
pub(crate) type RequestBody = DeadlineBody<Incoming>;

/// What every connection of one server shares: how to speak HTTP, the time bounds, the signal
/// to close, and the tracker shutdown waits on.
pub(crate) struct Connections {
    pub(crate) builder: auto::Builder<TokioExecutor>,
    pub(crate) limits: ConnectionLimits,
    /// Cancelled when shutdown starts closing connections.
    pub(crate) close: CancellationToken,
    pub(crate) tracker: tokio_util::task::TaskTracker,
}

impl Connections {
    /// Serves one accepted connection in its own task, tracked by the tracker and closed
    /// gracefully when `close` is cancelled (shutdown) or when it has been idle for
    /// `limits.idle`.
    pub(crate) fn spawn<S>(
        &self,
        stream: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        app: &Arc<App<S>>,
    ) where
        S: McpService,
    {
        spawn(stream, peer, permit, app, self);
    }
}

fn spawn<S>(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    app: &Arc<App<S>>,
    shared: &Connections,
) where
    S: McpService,
{
    let (builder, limits, close, tracker) = (&shared.builder, shared.limits, &shared.close, &shared.tracker);
    // SSE responses leave in several small writes; without this, each waits ~40 ms for the
    // client's delayed ACK (measured: 22 → 778 req/s on one connection).
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
    let activity = Arc::new(Activity::default());
    let service = {
        let (app, activity) = (app.clone(), activity.clone());
        hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let in_flight = activity.begin();
            let state = Arc::new(AtomicU8::new(BODY_UNREAD));
            let http1 = request.version() < http::Version::HTTP_2;
            let has_body = !request.body().is_end_stream();
            let mut request = request.map(|body| DeadlineBody::new(body, limits.request_body, state.clone()));
            // For the audit trail: who, as the TCP connection saw it.
            request.extensions_mut().insert(crate::audit::ClientAddr {
                peer,
                forwarded_for: None,
            });
            route(app.clone(), request).map(move |response| {
                let mut response = match state.load(Ordering::Relaxed) {
                    // Whoever read the body (rmcp answers a failed read with a 500) gave up
                    // because the client did not send it: the client's 408 (RFC 9110 §15.5.9).
                    BODY_TIMED_OUT => request_timeout(limits.request_body),
                    _ => response.unwrap_or_else(|never| match never {}),
                };
                // Answered before the body was read (a 401 for an expired token, a 403, 413,
                // 429…): hyper will close the connection rather than read on, so say so. A
                // client that reuses it otherwise races the close and loses its next request.
                if http1 && has_body && state.load(Ordering::Relaxed) != BODY_DONE {
                    response
                        .headers_mut()
                        .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response.map(|body| with_guard(body, in_flight)))
            })
        })
    };
    let (builder, close) = (builder.clone(), close.clone());
    tracker.spawn(async move {
        // hyper's header timer starts with the first byte; a client that connects and sends
        // nothing would hold a connection slot forever without this.
        let mut probe = [0u8; 1];
        match tokio::time::timeout(limits.first_byte, stream.peek(&mut probe)).await {
            Ok(Ok(read)) if read > 0 => {}
            _ => {
                tracing::debug!(%peer, "closed a connection that sent nothing");
                return;
            }
        }
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut connection = std::pin::pin!(connection);
        let why = tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                drop(permit);
                return;
            }
            _ = activity.idle_for(limits.idle) => "idle",
            _ = close.cancelled() => "shutdown",
        };
        if why == "shutdown" && !activity.started.load(std::sync::atomic::Ordering::Relaxed) {
            // Its first bytes arrived but no request has reached us yet: the client has sent (or
            // is sending) one. Closing now would reset it (a proxy cannot retry a POST it already
            // sent), so it is read and answered first, within the header timeout; hyper then
            // closes the connection after the answer.
            let answered = tokio::time::timeout(limits.first_byte, async {
                tokio::select! {
                    ended = connection.as_mut() => Some(ended),
                    () = activity.first_request() => None,
                }
            })
            .await;
            if let Ok(Some(ended)) = answered {
                if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                metrics::counter!("mcp_http_connections_closed_total", "reason" => why).increment(1);
                drop(permit);
                return;
            }
        }
        connection.as_mut().graceful_shutdown();
        // Shutdown is bounded by the server's shutdown timeout (the accept loop stops waiting);
        // an idle close by the header timeout, for a peer that never finishes a header block.
        if why == "idle" {
            // A peer that never finishes closing (a header block never ended) is dropped after
            // the header timeout, unless a request it slipped in before the close is running.
            while tokio::time::timeout(limits.first_byte, connection.as_mut())
                .await
                .is_err()
            {
                if activity.in_flight() == 0 {
                    tracing::debug!(%peer, "dropped an idle connection that did not close in time");
                    break;
                }
            }
        } else {
            let _ = connection.await;
        }
        metrics::counter!("mcp_http_connections_closed_total", "reason" => why).increment(1);
        drop(permit);
    });
}

/// How many requests of one connection are in flight, and since when it has had none.
#[derive(Debug)]
struct Activity {
    state: Mutex<(usize, Instant)>,
    changed: Notify,
    /// A request has reached the service on this connection.
    started: std::sync::atomic::AtomicBool,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            state: Mutex::new((0, Instant::now())),
            changed: Notify::new(),
            started: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, Instant)> {
        // Each update is one assignment: the state is consistent even after a panic elsewhere.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn in_flight(&self) -> usize {
        self.lock().0
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.lock().0 += 1;
        self.started.store(true, std::sync::atomic::Ordering::Relaxed);
        self.changed.notify_waiters();
        InFlight(self.clone())
    }

    /// Resolves once a request has reached the service on this connection.
    async fn first_request(&self) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if self.started.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            changed.await;
        }
    }

    /// Resolves once no request has been in flight for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            let (in_flight, idle_since) = *self.lock();
            if in_flight > 0 {
                changed.await;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(idle_since + limit) => {
                    let (in_flight, since) = *self.lock();
                    if in_flight == 0 && since == idle_since {
                        return;
                    }
                }
                _ = changed => {}
            }
        }
    }
}

/// One request in flight; dropped when its response body is done.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.0 = state.0.saturating_sub(1);
        if state.0 == 0 {
            state.1 = Instant::now();
        }
        drop(state);
        self.0.changed.notify_waiters();
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestBodyError {
    /// The body did not arrive in full within `REQUEST_BODY_TIMEOUT_SECS`.
    #[error("the request body did not arrive within {0:?} (REQUEST_BODY_TIMEOUT_SECS)")]
    TimedOut(Duration),
    /// The connection failed while the body was read.
    #[error(transparent)]
    Connection(#[from] hyper::Error),
}

/// A request body that fails once `limit` has passed since the request arrived, so a client
/// that sends headers and then trickles (or never sends) its body cannot hold the request, its
/// connection and its slot forever.
pub(crate) struct DeadlineBody<B> {
    inner: B,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
    /// [`BODY_UNREAD`], [`BODY_DONE`] or [`BODY_TIMED_OUT`], for the connection to see.
    state: Arc<AtomicU8>,
}

/// The body has not been read to its end (perhaps not at all).
const BODY_UNREAD: u8 = 0;
/// The body was read to its end.
const BODY_DONE: u8 = 1;
/// The body did not arrive in time.
const BODY_TIMED_OUT: u8 = 2;

impl<B> DeadlineBody<B> {
    fn new(inner: B, limit: Duration, state: Arc<AtomicU8>) -> Self {
        DeadlineBody {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
            state,
        }
    }
}

/// `408 Request Timeout` with `Connection: close`: the rest of the body may still arrive.
fn request_timeout(limit: Duration) -> http::Response<Body> {
    let mut response = http::Response::new(full(format!(
        "Request Timeout: the request body did not arrive within {} s (REQUEST_BODY_TIMEOUT_SECS)",
        limit.as_secs()
    )));
    *response.status_mut() = http::StatusCode::REQUEST_TIMEOUT;
    response
        .headers_mut()
        .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    response
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if frame.is_none() || this.inner.is_end_stream() {
                    this.state.store(BODY_DONE, Ordering::Relaxed);
                }
                Poll::Ready(frame.map(|f| f.map_err(RequestBodyError::from)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.state.store(BODY_TIMED_OUT, Ordering::Relaxed);
                    tracing::debug!(limit = ?this.limit, "a request body did not arrive in time");
                    metrics::counter!("mcp_http_body_timeouts_total").increment(1);
                    Poll::Ready(Some(Err(RequestBodyError::TimedOut(this.limit))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_end_of_the_last_request() {
        let activity = Arc::new(Activity::default());
        let request = activity.begin();
        let idle = activity.idle_for(Duration::from_secs(5));
        let mut idle = std::pin::pin!(idle);
        // A request in flight for far longer than the limit: never idle.
        tokio::select! {
            _ = idle.as_mut() => panic!("idle while a request was in flight"),
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        drop(request);
        let ended = Instant::now();
        idle.await;
        assert_eq!(ended.elapsed(), Duration::from_secs(5));
    }
}
