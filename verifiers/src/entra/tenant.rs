//! Which tenants are accepted: single-tenant, `organizations`, `common`, `consumers` (the issuer
//! rules built on them are in `issuer.rs`).

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

    const T1: &str = "aaaaaaaa-0000-0000-0000-000000000001";

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
}
