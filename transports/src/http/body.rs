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
