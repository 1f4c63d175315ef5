//! A token's claims parsed once into typed values, which the verifier checks and
//! [`Identity`](crate::Identity) is built from: no claim is read twice by two rules that could
//! disagree (docs/ARCHITECTURE.md#token-verification).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Number, Value};

use super::jwt::optional_str;
use crate::Identity;
use crate::InvalidToken;

/// The latest NumericDate accepted: 9999-12-31T23:59:59Z. Later (or negative, or non-finite)
/// times are malformed: no real token carries them, and they would overflow time arithmetic.
pub(crate) const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

const TIME_PROBLEM: &str =
    "must be a number of seconds since 1970 (RFC 7519 NumericDate) between 0 and 253402300799 (year 9999)";

/// An RFC 7519 §2 NumericDate: seconds since 1970, possibly fractional, within
/// `0..=MAX_NUMERIC_DATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NumericDate(Duration);

impl NumericDate {
    /// `None` for negative, non-finite or out-of-range values.
    fn from_number(n: &Number) -> Option<NumericDate> {
        if let Some(secs) = n.as_u64() {
            return (secs <= MAX_NUMERIC_DATE).then_some(NumericDate(Duration::from_secs(secs)));
        }
        if n.is_i64() {
            return None; // negative
        }
        let f = n.as_f64()?;
        if !(f.is_finite() && f >= 0.0 && f <= MAX_NUMERIC_DATE as f64) {
            return None;
        }
        Duration::try_from_secs_f64(f).ok().map(NumericDate)
    }

    /// Whole seconds since 1970 (the fraction truncated).
    pub(crate) fn secs(self) -> u64 {
        self.0.as_secs()
    }

    /// The instant, fraction included.
    pub(crate) fn system_time(self) -> SystemTime {
        // Within year 9999 this never overflows; the fallback only satisfies the type.
        UNIX_EPOCH.checked_add(self.0).unwrap_or(UNIX_EPOCH)
    }
}

/// An optional NumericDate claim.
pub(crate) fn optional_time(
    map: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<NumericDate>, InvalidToken> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => NumericDate::from_number(n)
            .map(Some)
            .ok_or(InvalidToken::MalformedClaim {
                claim: name,
                problem: TIME_PROBLEM,
            }),
        Some(_) => Err(InvalidToken::MalformedClaim {
            claim: name,
            problem: TIME_PROBLEM,
        }),
    }
}

/// What kind of token the claims say this is, from positive evidence only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A user's (delegated) access token: `scp` present, or `idtyp` = `user`, or no evidence of
    /// an app token (then, without `scp`, it lacks every scope: a 403, never an app token).
    Delegated,
    /// An application's own token: `idtyp` = `app`, or (no `idtyp`) no `scp`, `oid` = `sub` and a
    /// client id in `azp`/`appid`.
    AppOnly,
}

/// The claims that say who the caller is and what kind of token this is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallerClaims {
    pub(crate) kind: TokenKind,
    /// `scp` split on the space character (RFC 6749 §3.3); `None` when absent.
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) roles: Vec<String>,
    pub(crate) subject: Option<String>,
    pub(crate) object_id: Option<String>,
    pub(crate) tenant_id: Option<String>,
    pub(crate) client_app: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) expires: Option<NumericDate>,
}

/// The ID-token markers (OpenID Connect Core §2, §3.1.3.6, §3.3.2.11): never in access tokens.
const ID_TOKEN_MARKERS: [&str; 3] = ["nonce", "at_hash", "c_hash"];

impl CallerClaims {
    /// Parses and classifies. Errors: a claim of the wrong type or range, an ID token, or a
    /// token that claims to be an app token while carrying delegated scopes.
    pub(crate) fn parse(claims: &Map<String, Value>) -> Result<CallerClaims, InvalidToken> {
        let text = |name: &'static str| optional_str(claims, name).map(|s| s.map(str::to_owned));
        let scopes = text("scp")?.map(|scp| {
            scp.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
        let roles = match claims.get("roles") {
            None => Vec::new(),
            // An empty role is no role (as an empty claim is no claim).
            Some(Value::Array(roles)) => roles
                .iter()
                .filter(|r| r.as_str() != Some(""))
                .map(|r| r.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(InvalidToken::MalformedClaim {
                    claim: "roles",
                    problem: "must be an array of strings",
                })?,
            Some(_) => {
                return Err(InvalidToken::MalformedClaim {
                    claim: "roles",
                    problem: "must be an array of strings",
                })
            }
        };
        let idtyp = match optional_str(claims, "idtyp")? {
            None => None,
            Some(t) if t.eq_ignore_ascii_case("app") => Some(TokenKind::AppOnly),
            Some(t) if t.eq_ignore_ascii_case("user") => Some(TokenKind::Delegated),
            Some(_) => {
                return Err(InvalidToken::MalformedClaim {
                    claim: "idtyp",
                    problem: "must be `app` or `user`",
                })
            }
        };
        let subject = text("sub")?;
        let object_id = text("oid")?;
        let client_app = match text("azp")? {
            Some(azp) => Some(azp),
            None => text("appid")?,
        };
        let kind = match (idtyp, &scopes) {
            (Some(TokenKind::AppOnly), Some(_)) => return Err(InvalidToken::AppTokenWithScopes),
            (_, Some(_)) => TokenKind::Delegated,
            (_, None) => {
                if let Some(marker) = ID_TOKEN_MARKERS.into_iter().find(|m| claims.contains_key(*m)) {
                    return Err(InvalidToken::IdToken { marker });
                }
                match idtyp {
                    Some(kind) => kind,
                    None if object_id.is_some() && object_id == subject && client_app.is_some() => {
                        TokenKind::AppOnly
                    }
                    None => TokenKind::Delegated,
                }
            }
        };
        let username = match text("preferred_username")? {
            Some(u) => Some(u),
            None => match text("upn")? {
                Some(u) => Some(u),
                None => text("email")?,
            },
        };
        Ok(CallerClaims {
            kind,
            scopes,
            roles,
            // GUIDs compare case-insensitively; one spelling everywhere the tenant is used
            // (issuer template, session owner, downstream token cache key).
            tenant_id: text("tid")?.map(|tid| tid.to_ascii_lowercase()),
            name: text("name")?,
            expires: optional_time(claims, "exp")?,
            subject,
            object_id,
            client_app,
            username,
        })
    }
}

/// How a verified token's claims become an [`Identity`]: here, beside the parser, so the generic
/// `Identity` knows nothing of Entra's claims.
impl Identity {
    /// Builds an identity from a token's verified claims.
    ///
    /// The claims are read by the same typed parser the Entra verifier uses (docs/ARCHITECTURE.md#token-verification), so the
    /// two never disagree: `scp` splits on the space character (RFC 6749 §3.3), `exp` may be
    /// fractional (RFC 7519 NumericDate), and the token is app-only only on positive evidence
    /// (`idtyp` = `app`, or no `idtyp`, no `scp`, `oid` = `sub` and a client id in `azp`/`appid`).
    ///
    /// # Errors
    ///
    /// [`InvalidToken`] when a claim has the wrong type or range (`exp` past year 9999, `roles`
    /// not an array of strings, …), when the claims are an ID token's (`nonce`, `at_hash`,
    /// `c_hash` without `scp`), or when `idtyp` = `app` comes with `scp`.
    pub fn from_claims(claims: Map<String, Value>) -> Result<Identity, InvalidToken> {
        let parsed = CallerClaims::parse(&claims)?;
        Ok(Identity::from_parsed(parsed, claims))
    }

    /// Builds an identity from claims already parsed (by the verifier) and the raw claims.
    pub(crate) fn from_parsed(parsed: CallerClaims, claims: Map<String, Value>) -> Identity {
        let subject = parsed.subject.unwrap_or_default();
        Identity {
            app_only: parsed.kind == TokenKind::AppOnly,
            object_id: parsed.object_id.unwrap_or_default(),
            subject,
            tenant_id: parsed.tenant_id.unwrap_or_default(),
            name: parsed.name,
            username: parsed.username,
            scopes: parsed.scopes.unwrap_or_default(),
            roles: parsed.roles,
            client_app: parsed.client_app,
            expires_at: parsed.expires.map(|exp| exp.system_time()),
            claims,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn time(raw: &str) -> Result<Option<NumericDate>, InvalidToken> {
        let claims: Map<String, Value> = serde_json::from_str(&format!("{{\"t\":{raw}}}")).unwrap();
        optional_time(&claims, "t")
    }

    #[test]
    fn numeric_dates_in_range_are_typed_and_the_rest_malformed() {
        let secs = |raw: &str| time(raw).map(|t| t.map(NumericDate::secs));
        assert_eq!(secs("0"), Ok(Some(0)));
        assert_eq!(secs("1700000000"), Ok(Some(1_700_000_000)));
        assert_eq!(secs("1700000000.75"), Ok(Some(1_700_000_000)));
        assert_eq!(secs("253402300799"), Ok(Some(MAX_NUMERIC_DATE)));
        assert_eq!(secs("-0.0"), Ok(Some(0)));
        let malformed = Err(InvalidToken::MalformedClaim {
            claim: "t",
            problem: TIME_PROBLEM,
        });
        for raw in [
            "253402300800",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "1e19",
            "1e308",
            "-1",
            "-1.5",
            "-9223372036854775808",
            "253402300799.5",
            "\"1700000000\"",
            "null",
            "true",
            "[1]",
        ] {
            assert_eq!(time(raw), malformed, "{raw}");
        }
    }

    #[test]
    fn fractional_exp_keeps_its_fraction() {
        let t = time("1700000006.5").unwrap().unwrap();
        assert_eq!(
            t.system_time(),
            UNIX_EPOCH + Duration::from_millis(1_700_000_006_500)
        );
    }

    #[test]
    fn scp_splits_on_the_space_character_only() {
        let c = CallerClaims::parse(&map(json!({"scp": "a  b\tc\u{a0}d "}))).unwrap();
        assert_eq!(c.scopes.unwrap(), ["a", "b\tc\u{a0}d"]);
    }

    #[test]
    fn token_kind_needs_positive_evidence() {
        use TokenKind::*;
        let app_id = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
        // One row per rule: claims → kind or refusal.
        let rows: Vec<(Value, Result<TokenKind, InvalidToken>)> = vec![
            (json!({"scp": "x"}), Ok(Delegated)),
            (json!({"scp": "x", "idtyp": "user"}), Ok(Delegated)),
            (json!({"idtyp": "app", "roles": ["R"]}), Ok(AppOnly)),
            (json!({"idtyp": "APP"}), Ok(AppOnly)),
            (json!({"idtyp": "user", "roles": ["R"]}), Ok(Delegated)),
            (json!({"oid": "o", "sub": "o", "azp": app_id}), Ok(AppOnly)),
            (json!({"oid": "o", "sub": "o", "appid": app_id}), Ok(AppOnly)),
            (
                json!({"oid": "o", "sub": "s", "azp": app_id, "roles": ["R"]}),
                Ok(Delegated),
            ),
            (json!({"oid": "o", "sub": "o", "roles": ["R"]}), Ok(Delegated)),
            (json!({"sub": "o", "azp": app_id}), Ok(Delegated)),
            (json!({"roles": ["R"]}), Ok(Delegated)),
            (json!({}), Ok(Delegated)),
            (json!({"scp": "x", "nonce": "n"}), Ok(Delegated)),
            (
                json!({"scp": "x", "idtyp": "app"}),
                Err(InvalidToken::AppTokenWithScopes),
            ),
            (
                json!({"roles": ["R"], "nonce": "n"}),
                Err(InvalidToken::IdToken { marker: "nonce" }),
            ),
            (
                json!({"at_hash": "h", "oid": "o", "sub": "o", "azp": app_id}),
                Err(InvalidToken::IdToken { marker: "at_hash" }),
            ),
            (
                json!({"c_hash": "h", "idtyp": "app"}),
                Err(InvalidToken::IdToken { marker: "c_hash" }),
            ),
            (
                json!({"idtyp": "device"}),
                Err(InvalidToken::MalformedClaim {
                    claim: "idtyp",
                    problem: "must be `app` or `user`",
                }),
            ),
            (
                json!({"roles": "R"}),
                Err(InvalidToken::MalformedClaim {
                    claim: "roles",
                    problem: "must be an array of strings",
                }),
            ),
            (
                json!({"roles": ["R", 1]}),
                Err(InvalidToken::MalformedClaim {
                    claim: "roles",
                    problem: "must be an array of strings",
                }),
            ),
        ];
        for (claims, expected) in rows {
            let got = CallerClaims::parse(&map(claims.clone())).map(|c| c.kind);
            assert_eq!(got, expected, "{claims}");
        }
    }
}
