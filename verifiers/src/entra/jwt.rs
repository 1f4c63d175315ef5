//! Splitting a compact JWS into a header, claims and signature, strictly.
//!
//! We parse by hand rather than through `jsonwebtoken::decode` so that every rule of docs/ARCHITECTURE.md#token-verification is
//! ours to enforce and to explain: duplicate claims are refused (serde_json would silently keep
//! the last), types are checked claim by claim, and claims can be diagnosed *before* the RSA
//! work, so a Graph token or an expired token gets a precise reason cheaply.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::InvalidToken;

/// A token split and decoded, not yet verified.
#[derive(Debug)]
pub(crate) struct UnverifiedToken<'a> {
    pub(crate) header: Map<String, Value>,
    pub(crate) claims: Map<String, Value>,
    /// `base64(header) . base64(claims)`: the bytes the signature covers.
    pub(crate) signing_input: &'a str,
    pub(crate) signature: &'a str,
}

impl<'a> UnverifiedToken<'a> {
    pub(crate) fn parse(token: &'a str) -> Result<Self, InvalidToken> {
        let mut parts = token.splitn(3, '.');
        let (Some(header), Some(claims), Some(signature)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(InvalidToken::NotAJwt("expected three dot-separated parts"));
        };
        if signature.contains('.') {
            return Err(InvalidToken::NotAJwt("expected three dot-separated parts"));
        }
        if signature.is_empty() {
            return Err(InvalidToken::NotAJwt("the signature part is empty"));
        }
        let signing_input = &token[..header.len() + 1 + claims.len()];
        Ok(UnverifiedToken {
            header: decode_object(header, "the header is not base64url-encoded JSON")?,
            claims: decode_object(claims, "the payload is not base64url-encoded JSON")?,
            signing_input,
            signature,
        })
    }

    /// A string header parameter.
    pub(crate) fn header_str(&self, name: &'static str) -> Result<Option<&str>, InvalidToken> {
        optional_str(&self.header, name)
    }
}

fn decode_object(part: &str, problem: &'static str) -> Result<Map<String, Value>, InvalidToken> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| InvalidToken::NotAJwt(problem))?;
    serde_json::from_slice::<UniqueKeys>(&bytes)
        .map(|u| u.0)
        .map_err(|e| {
            if e.to_string().starts_with(DUPLICATE) {
                InvalidToken::NotAJwt("a header parameter or claim appears twice")
            } else {
                InvalidToken::NotAJwt(problem)
            }
        })
}

/// A string claim or header parameter that may be absent, but if present must be a string.
///
/// An empty string is an absent value: `"oid": ""` is no object id, `"azp": ""` no client, so
/// an empty claim can never stand as evidence (app-only by `oid` = `sub`) or as an identity
/// that every such token would share.
pub(crate) fn optional_str<'m>(
    map: &'m Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'m str>, InvalidToken> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(InvalidToken::MalformedClaim {
            claim: name,
            problem: "must be a string",
        }),
    }
}

/// A required string claim.
pub(crate) fn required_str<'m>(
    map: &'m Map<String, Value>,
    name: &'static str,
) -> Result<&'m str, InvalidToken> {
    optional_str(map, name)?.ok_or(InvalidToken::MissingClaim(name))
}

const DUPLICATE: &str = "duplicate key";

/// A JSON object that refuses duplicate keys (RFC 7515 §5.2 lets us; RFC 8725 tells us to).
struct UniqueKeys(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueKeys, A::Error> {
                let mut map = Map::new();
                while let Some((key, value)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom(DUPLICATE));
                    }
                    map.insert(key, value);
                }
                Ok(UniqueKeys(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn splits_a_well_formed_token() {
        let token = format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64(r#"{"a":1}"#));
        let parsed = UnverifiedToken::parse(&token).unwrap();
        assert_eq!(parsed.header_str("alg").unwrap(), Some("RS256"));
        assert_eq!(parsed.claims["a"], 1);
        assert_eq!(parsed.signature, "c2ln");
        assert_eq!(parsed.signing_input.len(), token.len() - 5);
    }

    #[test]
    fn refuses_wrong_part_counts_and_empty_signature() {
        let h = b64(r#"{"alg":"RS256"}"#);
        for bad in [
            String::new(),
            "a.b".into(),
            format!("{h}.{h}.x.y"),
            format!("{h}.{h}."),
        ] {
            assert!(
                matches!(UnverifiedToken::parse(&bad), Err(InvalidToken::NotAJwt(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_duplicate_claims() {
        let token = format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"aud":"a","aud":"b"}"#)
        );
        assert_eq!(
            UnverifiedToken::parse(&token).unwrap_err(),
            InvalidToken::NotAJwt("a header parameter or claim appears twice")
        );
    }

    #[test]
    fn refuses_non_object_json_and_bad_base64() {
        let token = format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64("[1,2]"));
        assert!(UnverifiedToken::parse(&token).is_err());
        assert!(UnverifiedToken::parse("!!!.???.sig").is_err());
    }

    #[test]
    fn claim_types_are_checked() {
        let map: Map<String, Value> =
            serde_json::from_str(r#"{"s":"x","n":5,"f":5.9,"neg":-1,"arr":["x"]}"#).unwrap();
        assert_eq!(required_str(&map, "s"), Ok("x"));
        assert_eq!(
            required_str(&map, "missing"),
            Err(InvalidToken::MissingClaim("missing"))
        );
        assert!(required_str(&map, "arr").is_err());
        assert_eq!(optional_str(&map, "absent"), Ok(None));
        assert!(optional_str(&map, "n").is_err());
    }
}
