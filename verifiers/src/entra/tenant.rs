//! Which issuers and tenants are accepted: single-tenant, `organizations`, `common`, `consumers`.

use super::error::EntraConfigError;
use crate::guid::is_guid;
use crate::InvalidToken;

/// The tenant id of personal Microsoft accounts (MSA).
pub const CONSUMER_TENANT_ID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// How the token's issuer and tenant are checked, chosen by `AZURE_TENANT_ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantPolicy {
    /// One tenant (GUID or domain): `iss` must equal the issuer in that tenant's metadata.
    Single,
    /// Any work or school tenant: `iss` must be the issuer template with the token's own `tid`,
    /// a GUID, and not the personal-account tenant.
    Organizations,
    /// Work, school and personal accounts: as `Organizations`, personal accounts included.
    Common,
    /// Personal Microsoft accounts only.
    Consumers,
}

impl TenantPolicy {
    pub(crate) fn parse(tenant: &str) -> Result<Self, EntraConfigError> {
        let lower = tenant.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "organizations" => TenantPolicy::Organizations,
            "common" => TenantPolicy::Common,
            "consumers" => TenantPolicy::Consumers,
            _ if is_guid(tenant) || is_domain(tenant) => TenantPolicy::Single,
            _ => return Err(EntraConfigError::BadTenant(tenant.to_owned())),
        })
    }

    /// `true` for `organizations` and `common`.
    pub fn is_multi_tenant(&self) -> bool {
        matches!(self, TenantPolicy::Organizations | TenantPolicy::Common)
    }

    /// Checks `iss` and `tid` of a v2 token against `metadata_issuer` (which for multi-tenant
    /// authorities is a template containing `{tenantid}`) and the allow-list.
    pub(crate) fn check_v2(
        &self,
        metadata_issuer: &str,
        iss: &str,
        tid: &str,
        allowed: &[String],
    ) -> Result<(), InvalidToken> {
        let expected = match self {
            TenantPolicy::Single | TenantPolicy::Consumers => metadata_issuer.to_owned(),
            TenantPolicy::Organizations | TenantPolicy::Common => {
                if !is_guid(tid) {
                    return Err(InvalidToken::TenantNotGuid(tid.into()));
                }
                metadata_issuer.replace("{tenantid}", tid)
            }
        };
        if iss != expected {
            return Err(InvalidToken::WrongIssuer {
                found: iss.into(),
                expected,
            });
        }
        self.check_tenant(tid, allowed)
    }

    /// The tenant rules that do not depend on the issuer format (shared with v1 tokens).
    pub(crate) fn check_tenant(&self, tid: &str, allowed: &[String]) -> Result<(), InvalidToken> {
        let consumer = tid.eq_ignore_ascii_case(CONSUMER_TENANT_ID);
        let refuse = |hint| {
            Err(InvalidToken::TenantNotAllowed {
                tid: tid.into(),
                hint,
            })
        };
        match self {
            TenantPolicy::Organizations if consumer => {
                refuse(" (personal Microsoft accounts are not accepted by an `organizations` server)")
            }
            TenantPolicy::Consumers if !consumer => {
                refuse(" (a `consumers` server accepts only personal Microsoft accounts)")
            }
            TenantPolicy::Organizations | TenantPolicy::Common
                if !allowed.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(tid)) =>
            {
                refuse(" (not in AZURE_ALLOWED_TENANTS)")
            }
            _ => Ok(()),
        }
    }
}

fn is_domain(s: &str) -> bool {
    s.contains('.')
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
    const T1: &str = "aaaaaaaa-0000-0000-0000-000000000001";
    const T2: &str = "aaaaaaaa-0000-0000-0000-000000000002";

    fn iss(tid: &str) -> String {
        TEMPLATE.replace("{tenantid}", tid)
    }

    #[test]
    fn parses_keywords_guids_and_domains() {
        assert_eq!(
            TenantPolicy::parse("organizations").ok(),
            Some(TenantPolicy::Organizations)
        );
        assert_eq!(TenantPolicy::parse("Common").ok(), Some(TenantPolicy::Common));
        assert_eq!(
            TenantPolicy::parse("consumers").ok(),
            Some(TenantPolicy::Consumers)
        );
        assert_eq!(TenantPolicy::parse(T1).ok(), Some(TenantPolicy::Single));
        assert_eq!(
            TenantPolicy::parse("contoso.onmicrosoft.com").ok(),
            Some(TenantPolicy::Single)
        );
        for bad in ["", "contoso", "a/b.com", "x..y", "-a.com"] {
            assert!(TenantPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn single_tenant_requires_exact_issuer() {
        let single = TenantPolicy::Single;
        assert_eq!(single.check_v2(&iss(T1), &iss(T1), T1, &[]), Ok(()));
        assert!(matches!(
            single.check_v2(&iss(T1), &iss(T2), T2, &[]),
            Err(InvalidToken::WrongIssuer { .. })
        ));
        let trailing = format!("{}/", iss(T1));
        assert!(matches!(
            single.check_v2(&iss(T1), &trailing, T1, &[]),
            Err(InvalidToken::WrongIssuer { .. })
        ));
    }

    #[test]
    fn multi_tenant_substitutes_the_tokens_own_tid() {
        let orgs = TenantPolicy::Organizations;
        assert_eq!(orgs.check_v2(TEMPLATE, &iss(T1), T1, &[]), Ok(()));
        assert_eq!(orgs.check_v2(TEMPLATE, &iss(T2), T2, &[]), Ok(()));
        // Another tenant's issuer with this tid: refused.
        assert!(matches!(
            orgs.check_v2(TEMPLATE, &iss(T2), T1, &[]),
            Err(InvalidToken::WrongIssuer { .. })
        ));
    }

    #[test]
    fn multi_tenant_requires_guid_tid() {
        let orgs = TenantPolicy::Common;
        let err = orgs.check_v2(TEMPLATE, &iss("evil"), "evil", &[]).unwrap_err();
        assert_eq!(err, InvalidToken::TenantNotGuid("evil".into()));
    }

    #[test]
    fn organizations_refuses_personal_accounts_common_accepts_them() {
        let consumer = iss(CONSUMER_TENANT_ID);
        assert!(matches!(
            TenantPolicy::Organizations.check_v2(TEMPLATE, &consumer, CONSUMER_TENANT_ID, &[]),
            Err(InvalidToken::TenantNotAllowed { .. })
        ));
        assert_eq!(
            TenantPolicy::Common.check_v2(TEMPLATE, &consumer, CONSUMER_TENANT_ID, &[]),
            Ok(())
        );
    }

    #[test]
    fn consumers_accepts_only_personal_accounts() {
        let consumer = iss(CONSUMER_TENANT_ID);
        assert_eq!(
            TenantPolicy::Consumers.check_v2(&consumer, &consumer, CONSUMER_TENANT_ID, &[]),
            Ok(())
        );
        assert!(TenantPolicy::Consumers.check_tenant(T1, &[]).is_err());
    }

    #[test]
    fn allow_list_restricts_multi_tenant_callers() {
        let allowed = vec![T1.to_owned()];
        assert_eq!(
            TenantPolicy::Organizations.check_v2(TEMPLATE, &iss(T1), T1, &allowed),
            Ok(())
        );
        assert!(matches!(
            TenantPolicy::Organizations.check_v2(TEMPLATE, &iss(T2), T2, &allowed),
            Err(InvalidToken::TenantNotAllowed { .. })
        ));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn guid() -> impl Strategy<Value = String> {
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        }

        proptest! {
            #[test]
            fn multi_tenant_accepts_exactly_the_tokens_own_issuer(tid in guid(), other in guid()) {
                prop_assume!(tid != other && tid != CONSUMER_TENANT_ID && other != CONSUMER_TENANT_ID);
                let orgs = TenantPolicy::Organizations;
                prop_assert!(orgs.check_v2(TEMPLATE, &iss(&tid), &tid, &[]).is_ok());
                prop_assert!(orgs.check_v2(TEMPLATE, &iss(&other), &tid, &[]).is_err());
                let suffixed = format!("{}x", iss(&tid));
                prop_assert!(orgs.check_v2(TEMPLATE, &suffixed, &tid, &[]).is_err());
            }

            #[test]
            fn multi_tenant_refuses_any_non_guid_tid(tid in "\\PC{0,40}") {
                prop_assume!(!crate::guid::is_guid(&tid));
                let result = TenantPolicy::Common.check_v2(TEMPLATE, &iss(&tid), &tid, &[]);
                prop_assert_eq!(result, Err(InvalidToken::TenantNotGuid(tid.as_str().into())));
            }

            #[test]
            fn allow_list_admits_exactly_its_members(tid in guid(), allowed in proptest::collection::vec(guid(), 1..4)) {
                prop_assume!(tid != CONSUMER_TENANT_ID);
                let ok = TenantPolicy::Organizations.check_v2(TEMPLATE, &iss(&tid), &tid, &allowed).is_ok();
                prop_assert_eq!(ok, allowed.contains(&tid));
            }

            #[test]
            fn single_tenant_accepts_only_the_exact_metadata_issuer(iss_text in "\\PC{0,80}") {
                let expected = iss(T1);
                let ok = TenantPolicy::Single.check_v2(&expected, &iss_text, T1, &[]).is_ok();
                prop_assert_eq!(ok, iss_text == expected);
            }
        }
    }
}
