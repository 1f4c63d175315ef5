//! The operators' endpoint: `GET /metrics` in the Prometheus text format, on its own listener so
//! it is never reachable through the public MCP port.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::body::{full, Body};

/// Scrapes served at once; more wait in the listen backlog.
const MAX_SCRAPE_CONNECTIONS: usize = 16;
/// How long one metrics connection may stay open (a scrape takes milliseconds).
const SCRAPE_CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `GET /metrics` on `listener` with the text `render` returns, until `stop` is cancelled.
///
/// What is exposed is what the process records through the `metrics` facade: request counts by
/// route and status, auth rejections by reason, verification latency, JWKS refreshes, open
/// sessions. No token, identity or session id is ever a label.
pub fn serve_metrics(
    listener: TcpListener,
    render: impl Fn() -> String + Send + Sync + 'static,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let render = Arc::new(render);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPE_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                _ = stop.cancelled() => return,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let (stream, _) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let render = render.clone();
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let render = render.clone();
                async move { Ok::<_, Infallible>(answer(&request, render.as_ref())) }
            });
            tokio::spawn(async move {
                // A connection that never sends, or never finishes, loses its slot in time.
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(SCRAPE_CONNECTION_TIMEOUT, connection).await;
                drop(permit);
            });
        }
    })
}

fn answer(request: &Request<Incoming>, render: &(dyn Fn() -> String + Send + Sync)) -> Response<Body> {
    let mut response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(full(render()));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            return r;
        }
        (_, "/metrics") => Response::new(full("Method Not Allowed")),
        _ => Response::new(full("Not Found")),
    };
    *response.status_mut() = if request.uri().path() == "/metrics" {
        StatusCode::METHOD_NOT_ALLOWED
    } else {
        StatusCode::NOT_FOUND
    };
    response
}
