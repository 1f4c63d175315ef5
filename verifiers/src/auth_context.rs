//! Conditional Access authentication contexts: Entra's step-up for sensitive operations.
//!
//! An administrator defines authentication contexts (`c1` … `c99`) in the Entra admin center
//! (Conditional Access, Authentication contexts) and ties each to a Conditional Access policy
//! (multifactor authentication, a compliant device, …). When a user satisfied one at sign-in, the
//! access token lists it in the `acrs` claim. An operation that needs `c1` and gets a token
//! without it answers with a claims challenge (Microsoft identity platform, "Developer guide to
//! Conditional Access authentication context" and "Claims challenges, claims requests and client
//! capabilities"):
//!
//! ```text
//! HTTP/1.1 401 Unauthorized
//! WWW-Authenticate: Bearer realm="", error="insufficient_claims",
//!   claims="eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"
//! ```
//!
//! where `claims` is the base64 of `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`.
//! Microsoft asks that the challenge go only to clients that declared they can handle it: the
//! client capability `cp1`, which reaches the API as the `xms_cc` claim (an optional claim the
//! API's app registration must request). Other clients get a refusal that says what is missing.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use crate::{AuthError, Forbidden, Identity};

/// The client capability that says "I can handle claims challenges" (`xms_cc`).
pub const CLAIMS_CHALLENGE_CAPABILITY: &str = "cp1";

/// `true` for an authentication context id Entra allows: `c1` to `c99`.
pub fn is_auth_context_id(id: &str) -> bool {
    id.strip_prefix('c')
        .filter(|n| !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u8>().ok())
        .is_some_and(|n| (1..=99).contains(&n))
}

/// The claims request for `auth_context` as a challenge carries it: standard base64 (with
/// padding) of `{"access_token":{"acrs":{"essential":true,"value":"<id>"}}}`.
pub fn claims_request(auth_context: &str) -> String {
    let json = serde_json::json!({
        "access_token": { "acrs": { "essential": true, "value": auth_context } }
    });
    STANDARD.encode(json.to_string())
}

/// `true` when the claim `name` is `value` or an array holding it.
fn claim_holds(identity: &Identity, name: &str, value: &str) -> bool {
    match identity.claims.get(name) {
        Some(Value::Array(items)) => items.iter().any(|item| item.as_str() == Some(value)),
        Some(Value::String(one)) => one == value,
        _ => false,
    }
}

/// `Ok` when the token shows `auth_context` in `acrs`.
///
/// # Errors
/// - [`Forbidden::AuthContextAppOnly`] for an app-only token (contexts apply to users);
/// - [`AuthError::InsufficientClaims`] when the client declared `cp1` (`xms_cc`): the claims
///   challenge;
/// - [`Forbidden::ClientCannotStepUp`] otherwise.
pub fn check_auth_context(identity: &Identity, auth_context: &str) -> Result<(), AuthError> {
    if claim_holds(identity, "acrs", auth_context) {
        return Ok(());
    }
    if identity.app_only {
        return Err(Forbidden::AuthContextAppOnly(auth_context.to_owned()).into());
    }
    if claim_holds(identity, "xms_cc", CLAIMS_CHALLENGE_CAPABILITY) {
        return Err(AuthError::InsufficientClaims {
            auth_context: auth_context.to_owned(),
            claims: claims_request(auth_context),
        });
    }
    Err(Forbidden::ClientCannotStepUp(auth_context.to_owned()).into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ids_are_c1_to_c99() {
        for good in ["c1", "c9", "c10", "c99"] {
            assert!(is_auth_context_id(good), "{good}");
        }
        for bad in ["c0", "c100", "c01", "C1", "c", "1", "c1 ", "c-1", "c+1", "x1", ""] {
            assert!(!is_auth_context_id(bad), "{bad}");
        }
    }

    #[test]
    fn the_claims_request_is_microsofts() {
        // The value Microsoft's documentation shows for c1.
        assert_eq!(
            claims_request("c1"),
            "eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"
        );
    }

    /// One row per case: the token's claims, and the answer.
    #[test]
    fn step_up_rules() {
        let claims_c1 = AuthError::InsufficientClaims {
            auth_context: "c1".into(),
            claims: claims_request("c1"),
        };
        let rows: Vec<(&str, bool, Value, Result<(), AuthError>)> = vec![
            ("acrs holds it", false, json!({"acrs": ["c2", "c1"]}), Ok(())),
            ("acrs as one string", false, json!({"acrs": "c1"}), Ok(())),
            (
                "other context, cp1",
                false,
                json!({"acrs": ["c2"], "xms_cc": ["cp1"]}),
                Err(claims_c1.clone()),
            ),
            ("no acrs, cp1", false, json!({"xms_cc": ["cp1"]}), Err(claims_c1)),
            (
                "no acrs, no cp1",
                false,
                json!({"xms_cc": ["cp2"]}),
                Err(Forbidden::ClientCannotStepUp("c1".into()).into()),
            ),
            (
                "app-only",
                true,
                json!({"xms_cc": ["cp1"]}),
                Err(Forbidden::AuthContextAppOnly("c1".into()).into()),
            ),
            ("app-only with it", true, json!({"acrs": ["c1"]}), Ok(())),
        ];
        for (name, app_only, claims, expected) in rows {
            let mut identity = Identity::builder("oid", "tid").app_only(app_only).build();
            if let Value::Object(extra) = claims {
                identity.claims.extend(extra);
            }
            assert_eq!(check_auth_context(&identity, "c1"), expected, "{name}");
        }
    }
}
