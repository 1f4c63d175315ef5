//! The issuer question, in one room: may a token with this `iss` and `tid` be accepted by this
//! server's tenant policy, and may a given key sign for it?
//!
//! Entra's issuers: v2.0 `https://login.microsoftonline.com/<tid>/v2.0` (the metadata's `issuer`;
//! a `{tenantid}` template for `organizations` and `common`), v1.0 `https://sts.windows.net/<tid>/`
//! ([access token claims](https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference),
//! [multi-tenant issuer validation](https://learn.microsoft.com/entra/identity-platform/howto-convert-app-to-be-multi-tenant#update-your-code-to-handle-multiple-issuer-values)).

use url::Url;

use super::config::EntraConfig;
use super::tenant::TenantPolicy;
use crate::guid::is_guid;
use crate::InvalidToken;

/// What a token says about who issued it.
pub(super) struct TokenIssuer<'a> {
    /// `iss`.
    pub(super) iss: &'a str,
    /// `tid`, in lower case (for the tenant rules).
    pub(super) tid: &'a str,
    /// `tid` as the token spells it (it must be the issuer's tenant segment, letter for letter).
    pub(super) tid_as_written: &'a str,
    /// Azure AD B2C: the policy that issued the token (`tfp`, else `acr`).
    pub(super) b2c_policy: Option<&'a str>,
}

/// Whether `token`'s issuer is one this server accepts: v1 issuers only with
/// `AZURE_ACCEPT_V1_TOKENS`; for a single tenant (and `consumers`) exactly the metadata's
/// issuer (or its v1 form); for `organizations` and `common` the template with the token's own
/// `tid`, which must be a GUID; then the tenant rules ([`TenantPolicy::check_tenant`]); and the
/// issuer's tenant segment must be `tid` as written (Entra writes both in lower case).
pub(super) fn check(
    policy: &TenantPolicy,
    config: &EntraConfig,
    metadata_issuer: &str,
    token: &TokenIssuer<'_>,
) -> Result<(), InvalidToken> {
    let (iss, tid) = (token.iss, token.tid);
    let v1 = is_v1_issuer(iss);
    if v1 && !config.accept_v1_tokens {
        return Err(InvalidToken::V1Token { issuer: iss.into() });
    }
    let own_tenant = match policy {
        TenantPolicy::Single | TenantPolicy::Consumers => None,
        TenantPolicy::Organizations | TenantPolicy::Common => {
            if !is_guid(tid) {
                return Err(InvalidToken::TenantNotGuid(tid.into()));
            }
            Some(tid)
        }
    };
    let expected = expected_issuer(metadata_issuer, own_tenant, v1, &config.authority_host);
    if iss != expected {
        return Err(InvalidToken::WrongIssuer {
            found: iss.into(),
            expected,
        });
    }
    policy.check_tenant(tid, &config.allowed_tenants)?;
    let issuer_tid = match config.b2c_policy {
        Some(_) => b2c_issuer_tenant(iss),
        None => issuer_tenant(iss),
    };
    if issuer_tid != Some(token.tid_as_written) {
        return Err(InvalidToken::TenantMismatch {
            tid: token.tid_as_written.into(),
            issuer: iss.into(),
        });
    }
    if let Some(expected) = &config.b2c_policy {
        match token.b2c_policy {
            Some(found) if found.eq_ignore_ascii_case(expected) => {}
            found => {
                return Err(InvalidToken::WrongB2cPolicy {
                    found: found.unwrap_or("none").into(),
                    expected: expected.clone(),
                })
            }
        }
    }
    Ok(())
}

/// The tenant of an Azure AD B2C issuer: its first path segment that is a GUID, in both forms
/// B2C writes (`https://<tenant>.b2clogin.com/<tenant id>/v2.0/` and
/// `https://<tenant>.b2clogin.com/tfp/<tenant id>/<policy>/v2.0/`).
pub(super) fn b2c_issuer_tenant(iss: &str) -> Option<&str> {
    let rest = iss
        .strip_prefix("https://")
        .or_else(|| iss.strip_prefix("http://"))?;
    rest.split('/').skip(1).find(|segment| is_guid(segment))
}

/// The issuer a token must carry: the metadata's (`tenant` `None`) or its template filled with
/// `tenant`; in the v1 form (`https://sts.<cloud>/<tenant>/`) when `v1`.
fn expected_issuer(metadata_issuer: &str, tenant: Option<&str>, v1: bool, authority_host: &Url) -> String {
    match (v1, tenant) {
        (false, None) => metadata_issuer.to_owned(),
        (false, Some(tenant)) => metadata_issuer.replace("{tenantid}", tenant),
        (true, tenant) => {
            let tenant = tenant
                .or_else(|| issuer_tenant(metadata_issuer))
                .unwrap_or_default();
            format!("https://{}/{tenant}/", v1_sts_host(authority_host))
        }
    }
}

/// Whether a key whose JWK `issuer` is `template` may verify a token with this `iss` and `tid`:
/// the template, `{tenantid}` replaced by `tid`, equals `iss`. A v1 token is admitted by a key
/// of the same tenant's v2 issuer, since Entra signs both versions with the keys of one JWKS. A
/// key without `issuer` admits every issuer ([`check`] holds `iss` to the metadata).
pub(super) fn key_signs_for(template: Option<&str>, iss: &str, tid: &str) -> bool {
    let Some(template) = template else {
        return true;
    };
    let key_issuer = template.replace("{tenantid}", tid);
    if key_issuer == iss {
        return true;
    }
    is_v1_issuer(iss)
        && match (issuer_tenant(iss), issuer_tenant(&key_issuer)) {
            (Some(token_tenant), Some(key_tenant)) => {
                key_issuer.ends_with("/v2.0") && token_tenant.eq_ignore_ascii_case(key_tenant)
            }
            _ => false,
        }
}

/// The tenant segment of an Entra issuer: `https://<host>/<tenant>/…` → `<tenant>`.
pub(super) fn issuer_tenant(iss: &str) -> Option<&str> {
    let rest = iss
        .strip_prefix("https://")
        .or_else(|| iss.strip_prefix("http://"))?;
    let tenant = rest.split('/').nth(1)?;
    (!tenant.is_empty()).then_some(tenant)
}

/// `ver` must agree with the issuer's form: a v1 issuer (`https://sts.…/<tid>/`) issues `1.0`
/// tokens, every other (v2) issuer `2.0` ([Entra access token claims]).
///
/// [Entra access token claims]: https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference
pub(super) fn check_version(iss: &str, ver: &str) -> Result<(), InvalidToken> {
    let expected = if is_v1_issuer(iss) { "1.0" } else { "2.0" };
    if ver == expected {
        Ok(())
    } else {
        Err(InvalidToken::VersionMismatch {
            ver: ver.into(),
            issuer: iss.into(),
            expected,
        })
    }
}

fn is_v1_issuer(iss: &str) -> bool {
    iss.starts_with("https://sts.")
}

fn v1_sts_host(authority: &url::Url) -> &'static str {
    match authority.host_str() {
        Some(host) if host.ends_with(".cn") => "sts.chinacloudapi.cn",
        _ => "sts.windows.net",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entra::tenant::CONSUMER_TENANT_ID;

    const TEMPLATE: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
    const T1: &str = "aaaaaaaa-0000-0000-0000-000000000001";
    const T2: &str = "aaaaaaaa-0000-0000-0000-000000000002";

    fn iss(tid: &str) -> String {
        TEMPLATE.replace("{tenantid}", tid)
    }

    /// [`check`] of a token whose `tid` is written in lower case, v1 tokens refused.
    fn check_v2(
        policy: &TenantPolicy,
        metadata_issuer: &str,
        iss: &str,
        tid: &str,
        allowed: &[String],
    ) -> Result<(), InvalidToken> {
        let mut config = EntraConfig::new("11111111-2222-3333-4444-555555555555", "organizations");
        config.allowed_tenants = allowed.to_vec();
        let token = TokenIssuer {
            iss,
            tid,
            tid_as_written: tid,
            b2c_policy: None,
        };
        check(policy, &config, metadata_issuer, &token)
    }

    #[test]
    fn single_tenant_requires_exact_issuer() {
        let single = TenantPolicy::Single;
        assert_eq!(check_v2(&single, &iss(T1), &iss(T1), T1, &[]), Ok(()));
        assert!(matches!(
            check_v2(&single, &iss(T1), &iss(T2), T2, &[]),
            Err(InvalidToken::WrongIssuer { .. })
        ));
        let trailing = format!("{}/", iss(T1));
        assert!(matches!(
            check_v2(&single, &iss(T1), &trailing, T1, &[]),
            Err(InvalidToken::WrongIssuer { .. })
        ));
    }

    #[test]
    fn multi_tenant_substitutes_the_tokens_own_tid() {
        let orgs = TenantPolicy::Organizations;
        assert_eq!(check_v2(&orgs, TEMPLATE, &iss(T1), T1, &[]), Ok(()));
        assert_eq!(check_v2(&orgs, TEMPLATE, &iss(T2), T2, &[]), Ok(()));
        // Another tenant's issuer with this tid: refused.
        assert!(matches!(
            check_v2(&orgs, TEMPLATE, &iss(T2), T1, &[]),
            Err(InvalidToken::WrongIssuer { .. })
        ));
    }

    #[test]
    fn multi_tenant_requires_guid_tid() {
        let orgs = TenantPolicy::Common;
        let err = check_v2(&orgs, TEMPLATE, &iss("evil"), "evil", &[]).unwrap_err();
        assert_eq!(err, InvalidToken::TenantNotGuid("evil".into()));
    }

    #[test]
    fn organizations_refuses_personal_accounts_common_accepts_them() {
        let consumer = iss(CONSUMER_TENANT_ID);
        assert!(matches!(
            check_v2(
                &TenantPolicy::Organizations,
                TEMPLATE,
                &consumer,
                CONSUMER_TENANT_ID,
                &[]
            ),
            Err(InvalidToken::TenantNotAllowed { .. })
        ));
        assert_eq!(
            check_v2(
                &TenantPolicy::Common,
                TEMPLATE,
                &consumer,
                CONSUMER_TENANT_ID,
                &[]
            ),
            Ok(())
        );
    }

    #[test]
    fn consumers_accepts_only_personal_accounts() {
        let consumer = iss(CONSUMER_TENANT_ID);
        assert_eq!(
            check_v2(
                &TenantPolicy::Consumers,
                &consumer,
                &consumer,
                CONSUMER_TENANT_ID,
                &[]
            ),
            Ok(())
        );
        assert!(TenantPolicy::Consumers.check_tenant(T1, &[]).is_err());
    }

    #[test]
    fn allow_list_restricts_multi_tenant_callers() {
        let allowed = vec![T1.to_owned()];
        assert_eq!(
            check_v2(&TenantPolicy::Organizations, TEMPLATE, &iss(T1), T1, &allowed),
            Ok(())
        );
        assert!(matches!(
            check_v2(&TenantPolicy::Organizations, TEMPLATE, &iss(T2), T2, &allowed),
            Err(InvalidToken::TenantNotAllowed { .. })
        ));
    }

    #[test]
    fn issuer_tenant_is_the_first_path_segment() {
        assert_eq!(
            issuer_tenant("https://login.microsoftonline.com/t1/v2.0"),
            Some("t1")
        );
        assert_eq!(issuer_tenant("https://sts.windows.net/t1/"), Some("t1"));
        assert_eq!(issuer_tenant("http://127.0.0.1:5/t1/v2.0"), Some("t1"));
        assert_eq!(issuer_tenant("https://host"), None);
        assert_eq!(issuer_tenant("https://host//v2.0"), None);
        assert_eq!(issuer_tenant("urn:x"), None);
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
                prop_assert!(check_v2(&orgs, TEMPLATE, &iss(&tid), &tid, &[]).is_ok());
                prop_assert!(check_v2(&orgs, TEMPLATE, &iss(&other), &tid, &[]).is_err());
                let suffixed = format!("{}x", iss(&tid));
                prop_assert!(check_v2(&orgs, TEMPLATE, &suffixed, &tid, &[]).is_err());
            }

            #[test]
            fn multi_tenant_refuses_any_non_guid_tid(tid in "\\PC{0,40}") {
                prop_assume!(!crate::guid::is_guid(&tid));
                let result = check_v2(&TenantPolicy::Common, TEMPLATE, &iss(&tid), &tid, &[]);
                prop_assert_eq!(result, Err(InvalidToken::TenantNotGuid(tid.as_str().into())));
            }

            #[test]
            fn allow_list_admits_exactly_its_members(tid in guid(), allowed in proptest::collection::vec(guid(), 1..4)) {
                prop_assume!(tid != CONSUMER_TENANT_ID);
                let ok = check_v2(&TenantPolicy::Organizations, TEMPLATE, &iss(&tid), &tid, &allowed).is_ok();
                prop_assert_eq!(ok, allowed.contains(&tid));
            }

            #[test]
            fn single_tenant_accepts_only_the_exact_metadata_issuer(iss_text in "\\PC{0,80}") {
                let expected = iss(T1);
                let ok = check_v2(&TenantPolicy::Single, &expected, &iss_text, T1, &[]).is_ok();
                prop_assert_eq!(ok, iss_text == expected);
            }
        }
    }
}
