//! What can be wrong with the Entra verifier's settings.

use thiserror::Error;

/// A setting of the Entra verifier that cannot work. The text names the setting.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EntraConfigError {
    /// `AZURE_CLIENT_ID` is not a GUID.
    #[error("AZURE_CLIENT_ID must be a GUID (the app registration's Application (client) ID), got {0:?}")]
    ClientIdNotGuid(String),
    /// `AZURE_TENANT_ID` is neither a GUID, a domain, nor a multi-tenant keyword.
    #[error("AZURE_TENANT_ID must be a tenant GUID, a domain such as contoso.onmicrosoft.com, or one of organizations, common, consumers; got {0:?}")]
    BadTenant(String),
    /// An `AZURE_ALLOWED_TENANTS` entry is not a GUID.
    #[error("AZURE_ALLOWED_TENANTS must list tenant GUIDs, got {0:?}")]
    AllowedTenantNotGuid(String),
    /// An allow-list with a single-tenant policy, which would be silently meaningless.
    #[error("AZURE_ALLOWED_TENANTS only applies when AZURE_TENANT_ID is organizations or common")]
    AllowListNeedsMultiTenant,
    /// `AZURE_AUTHORITY_HOST` is plain HTTP on a non-loopback host, or not HTTP at all.
    #[error(
        "AZURE_AUTHORITY_HOST must be an https:// URL (http:// only for loopback test servers), got {0:?}"
    )]
    InsecureAuthority(String),
    /// `AZURE_B2C_POLICY` is not a policy name.
    #[error(
        "AZURE_B2C_POLICY must be a user flow or custom policy name such as B2C_1_signupsignin, got {0:?}"
    )]
    BadB2cPolicy(String),
    /// `AZURE_B2C_POLICY` with `organizations`/`common`: a B2C tenant is one tenant.
    #[error("AZURE_B2C_POLICY needs AZURE_TENANT_ID to be the B2C tenant (contoso.onmicrosoft.com or its GUID), not organizations or common")]
    B2cMultiTenant,
    /// A refresh interval of zero.
    #[error("the signing-key refresh intervals must be greater than zero")]
    ZeroInterval,
    /// The HTTPS client for Entra could not be built (no TLS roots, …).
    #[error("could not build the HTTPS client used to reach Entra")]
    HttpClient(#[source] reqwest::Error),
}
