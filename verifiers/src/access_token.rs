//! The caller's raw bearer token, carried beside its verified identity (docs/ARCHITECTURE.md#calling-apis-on-behalf-of-the-caller).

use std::fmt;
use std::sync::Arc;

/// The raw access token the caller presented, kept beside its verified
/// [`Identity`](crate::Identity) so that a downstream token provider ([`OnBehalfOf`](crate::OnBehalfOf))
/// can exchange it for a token to another API.
///
/// Opaque on purpose: `Debug` and `Display` print no part of it, and only this crate's token
/// providers can read it, so a tool that logs its request context leaks nothing. Both transports
/// put one into the request's extensions after the token passed verification.
#[derive(Clone)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    /// Wraps a bearer token that has just been verified.
    pub fn new(token: impl Into<Arc<str>>) -> Self {
        AccessToken(token.into())
    }

    /// The token itself: for the on-behalf-of exchange only.
    pub(crate) fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_print_no_part_of_the_token() {
        let token = AccessToken::new("eyJhbGciOiJSUzI1NiJ9.secret-claims.signature");
        for printed in [format!("{token:?}"), format!("{token}"), format!("{token:#?}")] {
            assert!(!printed.contains("eyJ"), "{printed}");
            assert!(!printed.contains("secret"), "{printed}");
        }
        assert_eq!(token.secret(), "eyJhbGciOiJSUzI1NiJ9.secret-claims.signature");
    }
}
