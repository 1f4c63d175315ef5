//! Settings of the Entra verifier, validated before anything is fetched.

use std::time::Duration;

use url::Url;

use super::error::EntraConfigError;
use super::tenant::TenantPolicy;
use crate::app_id_uri::ApplicationIdUri;
use crate::guid::is_guid;
use crate::net::is_secure_transport;

/// How the [`EntraVerifier`](super::EntraVerifier) validates tokens.
///
/// Field names follow the environment variables the server reads (`AZURE_CLIENT_ID`, …), which
/// are those of the Python example and of azure-identity.
#[derive(Debug, Clone)]
pub struct EntraConfig {
    /// `AZURE_CLIENT_ID`: the app registration's Application (client) ID. Accepted as audience.
    pub client_id: String,
    /// `AZURE_TENANT_ID`: a tenant GUID or domain (single tenant), or `organizations`, `common`,
    /// `consumers`.
    pub tenant: String,
    /// `AZURE_IDENTIFIER_URI` (its first entry): the Application ID URI scopes are advertised
    /// under. Also accepted as audience. Defaults to `api://<client-id>`. May be an `https://`
    /// URL on a verified domain of the tenant, such as the MCP endpoint itself — Microsoft's
    /// advice, so that the RFC 8707 `resource` clients send and the scopes name one app
    /// registration (otherwise Entra answers AADSTS9010010 or AADSTS500011).
    pub identifier_uri: ApplicationIdUri,
    /// `AZURE_IDENTIFIER_URI` (later entries): more Application ID URIs of the same app
    /// registration, accepted as audience too (an app may list several). Empty by default.
    pub additional_identifier_uris: Vec<ApplicationIdUri>,
    /// `AZURE_AUTHORITY_HOST`: where Entra lives. Defaults to `https://login.microsoftonline.com`;
    /// sovereign clouds and tests change it. Plain `http://` is accepted only for loopback hosts.
    pub authority_host: Url,
    /// `AZURE_ALLOWED_TENANTS`: for multi-tenant policies, the only tenant ids that may call.
    /// Empty: any tenant (a start-up warning says so).
    pub allowed_tenants: Vec<String>,
    /// `AZURE_ACCEPT_V1_TOKENS`: accept Entra v1.0 tokens (issuer `https://sts.windows.net/…`).
    /// Defaults to `false`: set `requestedAccessTokenVersion` to 2 instead.
    pub accept_v1_tokens: bool,
    /// `AZURE_APP_SPECIFIC_SIGNING_KEYS`: the app registration signs its tokens with keys of its
    /// own (a claims-mapping policy), published at the metadata and JWKS URLs with
    /// `?appid=<client id>` (Microsoft identity platform, "Validate tokens: app-specific signing
    /// keys"). Defaults to `false`.
    pub app_specific_signing_keys: bool,
    /// `AZURE_B2C_POLICY`: an Azure AD B2C user flow or custom policy (`B2C_1_signupsignin`). Its
    /// metadata is per policy (`<host>/<tenant>/<policy>/v2.0/.well-known/openid-configuration`),
    /// its tokens carry `ver` 1.0 and may lack `tid` (the issuer's tenant is used). `None`:
    /// Microsoft Entra ID (workforce or External ID).
    pub b2c_policy: Option<String>,
    /// Clock leeway for `exp` and `nbf`. Defaults to 60 s.
    pub leeway: Duration,
    /// How often signing keys are refreshed on schedule. Defaults to 6 h.
    pub key_refresh_interval: Duration,
    /// Minimum time between two on-demand refreshes caused by an unknown `kid`. Defaults to 30 s.
    pub key_min_refresh_interval: Duration,
    /// Timeout of each request to Entra. Defaults to 10 s.
    pub http_timeout: Duration,
    /// Tokens longer than this are refused before any parsing. Defaults to 16 KiB.
    pub max_token_bytes: usize,
    /// `AZURE_TOKEN_CACHE_ENTRIES`: how many verified tokens to remember (by SHA-256 digest, until
    /// their expiry) so repeat requests skip the signature check. 0 disables. Defaults to 10,000.
    pub token_cache_entries: usize,
    /// `AZURE_TOKEN_CACHE_BYTES`: the most memory the verified-token cache may hold, estimated
    /// from each entry's claims (large tokens make large entries). 0 disables. Defaults to
    /// 32 MiB.
    pub token_cache_bytes: usize,
}

/// The default Entra authority host (public cloud).
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

impl EntraConfig {
    /// A configuration with every default, for `client_id` in `tenant`.
    pub fn new(client_id: impl Into<String>, tenant: impl Into<String>) -> Self {
        let client_id = client_id.into();
        EntraConfig {
            identifier_uri: ApplicationIdUri::for_client_id(&client_id),
            additional_identifier_uris: Vec::new(),
            client_id,
            tenant: tenant.into(),
            #[allow(clippy::expect_used)] // a constant that parses
            authority_host: Url::parse(DEFAULT_AUTHORITY_HOST).expect("constant URL"),
            allowed_tenants: Vec::new(),
            accept_v1_tokens: false,
            app_specific_signing_keys: false,
            b2c_policy: None,
            leeway: Duration::from_secs(60),
            key_refresh_interval: Duration::from_secs(6 * 3600),
            key_min_refresh_interval: Duration::from_secs(30),
            http_timeout: Duration::from_secs(10),
            max_token_bytes: 16 * 1024,
            token_cache_entries: 10_000,
            token_cache_bytes: 32 * 1024 * 1024,
        }
    }

    /// Checks every setting, returning the tenant policy they describe.
    pub fn validate(&self) -> Result<TenantPolicy, EntraConfigError> {
        if !is_guid(&self.client_id) {
            return Err(EntraConfigError::ClientIdNotGuid(self.client_id.clone()));
        }
        let policy = TenantPolicy::parse(&self.tenant)?;
        if let Some(bad) = self.allowed_tenants.iter().find(|t| !is_guid(t)) {
            return Err(EntraConfigError::AllowedTenantNotGuid(bad.clone()));
        }
        if !self.allowed_tenants.is_empty() && !policy.is_multi_tenant() {
            return Err(EntraConfigError::AllowListNeedsMultiTenant);
        }
        if !is_secure_transport(&self.authority_host) {
            return Err(EntraConfigError::InsecureAuthority(
                self.authority_host.to_string(),
            ));
        }
        if self.key_min_refresh_interval.is_zero() || self.key_refresh_interval.is_zero() {
            return Err(EntraConfigError::ZeroInterval);
        }
        if let Some(b2c) = &self.b2c_policy {
            let name_ok = !b2c.is_empty()
                && b2c
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
            if !name_ok {
                return Err(EntraConfigError::BadB2cPolicy(b2c.clone()));
            }
            if policy.is_multi_tenant() {
                return Err(EntraConfigError::B2cMultiTenant);
            }
        }
        Ok(policy)
    }

    /// The same settings with every GUID in lower case: `client_id`, a GUID `tenant` and the
    /// `allowed_tenants` (an `api://<GUID>` identifier URI is lower-cased when parsed). GUIDs compare
    /// case-insensitively (RFC 4122 §3) and Entra writes them in lower case in tokens (`aud`,
    /// `tid`, `iss`), so an `AZURE_CLIENT_ID` pasted in upper case must still match.
    pub(crate) fn normalized(mut self) -> Self {
        let lower_guid = |s: &mut String| {
            if is_guid(s) {
                s.make_ascii_lowercase();
            }
        };
        lower_guid(&mut self.client_id);
        lower_guid(&mut self.tenant);
        self.allowed_tenants.iter_mut().for_each(lower_guid);
        self
    }

    /// Every Application ID URI accepted as audience: [`identifier_uri`](Self::identifier_uri)
    /// first, then the additional ones.
    pub fn identifier_uris(&self) -> impl Iterator<Item = &ApplicationIdUri> {
        std::iter::once(&self.identifier_uri).chain(&self.additional_identifier_uris)
    }

    /// `true` when `aud` names this app: its client id (case-insensitively, RFC 4122 §3), or one
    /// of its identifier URIs, a
    /// trailing slash on either side ignored (Entra writes the URI as it was requested, and
    /// `https://api.contoso.com/mcp/` is the same registration as `https://api.contoso.com/mcp`).
    pub fn is_audience(&self, aud: &str) -> bool {
        aud.eq_ignore_ascii_case(&self.client_id) || self.identifier_uris().any(|uri| uri.matches(aud))
    }

    /// The authority URL tokens come from: `<authority host>/<tenant>/v2.0`, or for Azure AD B2C
    /// `<authority host>/<tenant>/<policy>/v2.0`.
    pub fn authority(&self) -> String {
        let host = self.authority_host.as_str().trim_end_matches('/');
        match &self.b2c_policy {
            None => format!("{host}/{}/v2.0", self.tenant),
            Some(policy) => format!("{host}/{}/{policy}/v2.0", self.tenant),
        }
    }

    /// The tenant's OpenID configuration document URL, with `?appid=<client id>` when the app
    /// signs with app-specific keys.
    pub(crate) fn metadata_url(&self) -> String {
        let url = format!("{}/.well-known/openid-configuration", self.authority());
        match self.app_specific_signing_keys {
            true => format!("{url}?appid={}", self.client_id),
            false => url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "11111111-2222-3333-4444-555555555555";

    #[test]
    fn guid_shape_is_checked() {
        assert!(is_guid(CLIENT));
        assert!(is_guid("ABCDEF00-2222-3333-4444-555555555555"));
        assert!(!is_guid("abc"));
        assert!(!is_guid("11111111-2222-3333-4444-55555555555g"));
        assert!(!is_guid("111111112222-3333-4444-5555555555555"));
    }

    #[test]
    fn client_id_must_be_a_guid() {
        let err = EntraConfig::new("abc", "organizations").validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "AZURE_CLIENT_ID must be a GUID (the app registration's Application (client) ID), got \"abc\""
        );
    }

    #[test]
    fn plain_http_authority_only_on_loopback() {
        let mut cfg = EntraConfig::new(CLIENT, "organizations");
        cfg.authority_host = Url::parse("http://127.0.0.1:9999").unwrap();
        assert!(cfg.validate().is_ok());
        cfg.authority_host = Url::parse("http://localhost:9999").unwrap();
        assert!(cfg.validate().is_ok());
        cfg.authority_host = Url::parse("http://login.example.com").unwrap();
        assert!(matches!(
            cfg.validate(),
            Err(EntraConfigError::InsecureAuthority(_))
        ));
    }

    #[test]
    fn allow_list_needs_guid_entries_and_a_multi_tenant_policy() {
        let mut cfg = EntraConfig::new(CLIENT, "organizations");
        cfg.allowed_tenants = vec!["contoso.com".into()];
        assert!(matches!(
            cfg.validate(),
            Err(EntraConfigError::AllowedTenantNotGuid(_))
        ));
        let mut cfg = EntraConfig::new(CLIENT, CLIENT);
        cfg.allowed_tenants = vec![CLIENT.into()];
        assert!(matches!(
            cfg.validate(),
            Err(EntraConfigError::AllowListNeedsMultiTenant)
        ));
    }

    #[test]
    fn guids_are_normalised_to_lower_case_and_the_rest_kept() {
        let upper = "ABCDEF00-2222-3333-4444-55555555AAAA";
        let lower = "abcdef00-2222-3333-4444-55555555aaaa";
        let mut cfg = EntraConfig::new(upper, upper);
        cfg.allowed_tenants = vec![upper.into()];
        let cfg = cfg.normalized();
        assert_eq!(cfg.client_id, lower);
        assert_eq!(cfg.tenant, lower);
        assert_eq!(cfg.allowed_tenants, [lower]);
        assert_eq!(cfg.identifier_uri.as_str(), format!("api://{lower}"));
        let cfg = EntraConfig::new(CLIENT, "Contoso.onmicrosoft.com").normalized();
        assert_eq!(cfg.tenant, "Contoso.onmicrosoft.com");
    }

    #[test]
    fn audience_is_the_client_id_or_any_identifier_uri_whatever_the_trailing_slash() {
        let mut cfg = EntraConfig::new(CLIENT, "organizations");
        cfg.identifier_uri = ApplicationIdUri::parse("https://api.contoso.com/entra/mcp").unwrap();
        cfg.additional_identifier_uris = vec![ApplicationIdUri::parse(&format!("api://{CLIENT}/")).unwrap()];
        for (aud, ok) in [
            (CLIENT, true),
            ("https://api.contoso.com/entra/mcp", true),
            ("https://api.contoso.com/entra/mcp/", true),
            (&*format!("api://{CLIENT}"), true),
            (&*format!("api://{CLIENT}/"), true),
            ("https://api.contoso.com/entra", false),
            ("https://api.contoso.com/entra/mcp/x", false),
            ("HTTPS://API.CONTOSO.COM/entra/mcp", false),
            ("/", false),
            ("", false),
        ] {
            assert_eq!(cfg.is_audience(aud), ok, "{aud}");
        }
    }

    #[test]
    fn authority_and_metadata_urls() {
        let cfg = EntraConfig::new(CLIENT, "contoso.onmicrosoft.com");
        assert_eq!(
            cfg.authority(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
        );
        assert_eq!(
            cfg.metadata_url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"
        );
    }
}
