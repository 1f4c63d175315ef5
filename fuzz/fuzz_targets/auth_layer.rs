//! The bearer-auth layer in front of a service: arbitrary headers ("name: value" lines), then a
//! blank line and an arbitrary body. A stateless user needs nothing but the verifier. The layer must answer with one of its statuses, never panic,
//! and pass a request on only with a verified identity attached.
#![no_main]
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use libfuzzer_sys::fuzz_target;
use tower::{Layer as _, ServiceExt as _};
use transports::http::BearerAuthLayer;
use verifiers::{AccessPolicy, Identity, StaticVerifier};

fn layer() -> &'static BearerAuthLayer {
    static LAYER: OnceLock<BearerAuthLayer> = OnceLock::new();
    LAYER.get_or_init(|| {
        let good = Identity::builder("oid", "tid").scopes(["access_as_user"]).build();
        let verifier = StaticVerifier::new(AccessPolicy::scopes(["access_as_user"])).with_token("good-token", good);
        BearerAuthLayer::new(Arc::new(verifier), "http://localhost/.well-known/oauth-protected-resource/mcp", &[])
    })
}

fuzz_target!(|data: &[u8]| {
    let split = data.windows(2).position(|w| w == b"\n\n").unwrap_or(data.len());
    let (head, body) = data.split_at(split);
    let mut request = Request::post("/mcp");
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (name, value) = line.split_at(colon);
        if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(name), http::HeaderValue::from_bytes(value[1..].trim_ascii())) {
            request = request.header(name, value);
        }
    }
    let Ok(request) = request.body(Full::new(Bytes::copy_from_slice(body))) else { return };
    let inner = tower::service_fn(|req: Request<Full<Bytes>>| async move {
        assert!(req.extensions().get::<Arc<Identity>>().is_some(), "passed on without an identity");
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner")).map_err(|never| match never {}).boxed()))
    });
    let service = layer().layer(inner);
    let f = fuzz_support::fixture();
    let response = f.runtime.block_on(service.oneshot(request)).unwrap();
    assert!(matches!(response.status().as_u16(), 200 | 400 | 401 | 403 | 404 | 503), "{}", response.status());
});
