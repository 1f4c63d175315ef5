//! The server's own credential for the on-behalf-of grant: how it proves to Entra that it is the
//! app registration named by `AZURE_CLIENT_ID`.
//!
//! Four kinds, with the names Azure's identity libraries use, from best to last resort:
//!
//! | Kind | Settings | Client authentication sent to Entra |
//! |---|---|---|
//! | managed identity | `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` (App Service, Container Apps), else IMDS; `AZURE_MANAGED_IDENTITY_CLIENT_ID` for a user-assigned identity | the identity's token for `api://AzureADTokenExchange` as `client_assertion` |
//! | workload identity | `AZURE_FEDERATED_TOKEN_FILE` | the file's token (re-read every time: it rotates) as `client_assertion` |
//! | certificate | `AZURE_CLIENT_CERTIFICATE_PATH` (PEM: private key and certificate) | a JWT signed RS256, header `x5t#S256` (and `x5t`), claims `aud` = token endpoint, `iss` = `sub` = client id, `jti`, `nbf`, `exp` |
//! | secret | `AZURE_CLIENT_SECRET` | `client_secret` |
//!
//! Sources: Microsoft identity platform, "certificate credentials" (assertion format) and
//! "workload identity federation"; Azure App Service, "managed identities: REST endpoint
//! reference" (`X-IDENTITY-HEADER`, `api-version=2019-08-01`); Azure IMDS (`Metadata: true`,
//! `api-version=2018-02-01`).
//!
//! Managed and workload identity are written here rather than taken from the `azure_identity`
//! crate: its IMDS endpoint is a constant (`169.254.169.254`) and it reads the process
//! environment itself, so neither path can be pointed at a loopback fake in tests nor fed from
//! our validated settings; and its workload credential exchanges the federated token for an
//! access token, while the on-behalf-of grant needs the federated token itself.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use thiserror::Error;
use tokio::time::Instant;
use url::Url;

use super::http::{read_limited, token_lifetime};

/// `client_assertion_type` of every assertion (RFC 7523 §2.2).
pub(crate) const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The audience a managed identity's token must have to serve as a federated credential.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The Azure Instance Metadata Service token endpoint, used when no `IDENTITY_ENDPOINT` is set.
pub const IMDS_TOKEN_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// A certificate assertion is valid this long (Entra accepts up to 10 minutes' skew).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// A managed-identity token is renewed this long before it expires.
const MI_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// How the server proves its own identity when it exchanges a caller's token. See the module
/// docs for the kinds. `Debug` never prints a secret.
#[derive(Clone)]
pub struct ClientCredential {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Secret(Arc<str>),
    Certificate(Arc<Certificate>),
    WorkloadIdentity(PathBuf),
    ManagedIdentity(Arc<ManagedIdentity>),
}

struct Certificate {
    key: EncodingKey,
    x5t: String,
    x5t_s256: String,
}

/// Where a managed identity gets its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManagedIdentityEndpoint {
    /// App Service and Container Apps: `IDENTITY_ENDPOINT`, authenticated with `IDENTITY_HEADER`
    /// (sent as `X-IDENTITY-HEADER`).
    AppService {
        /// `IDENTITY_ENDPOINT`.
        endpoint: Url,
        /// `IDENTITY_HEADER`.
        header: String,
    },
    /// Virtual machines, scale sets and AKS nodes: the Instance Metadata Service
    /// ([`IMDS_TOKEN_ENDPOINT`], header `Metadata: true`).
    Imds {
        /// The token endpoint; [`IMDS_TOKEN_ENDPOINT`] outside tests.
        endpoint: Url,
    },
}

struct ManagedIdentity {
    endpoint: ManagedIdentityEndpoint,
    client_id: Option<String>,
    cached: tokio::sync::Mutex<Option<(Arc<str>, Instant)>>,
}

/// A credential setting that cannot work, found at start-up. The text names the setting.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CredentialConfigError {
    /// `AZURE_CLIENT_SECRET` is blank.
    #[error("AZURE_CLIENT_SECRET is empty; set the secret's value (not its id), or use a certificate or a managed identity instead")]
    EmptySecret,
    /// A credential file cannot be read.
    #[error("{setting} names {path}, which cannot be read: {cause}")]
    Unreadable {
        /// The setting.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// Why (printed here once, so not a `source`).
        cause: std::io::Error,
    },
    /// The certificate file lacks a part or holds something else.
    #[error("AZURE_CLIENT_CERTIFICATE_PATH {path}: {problem}")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: &'static str,
    },
    /// The federated token file is empty.
    #[error("AZURE_FEDERATED_TOKEN_FILE {0} is empty; it should hold the service account token the platform projects there")]
    EmptyFederatedToken(PathBuf),
    /// `IDENTITY_HEADER` is empty while `IDENTITY_ENDPOINT` is set.
    #[error("IDENTITY_ENDPOINT is set but IDENTITY_HEADER is empty; both come from the platform (App Service, Container Apps)")]
    MissingIdentityHeader,
    /// A managed-identity endpoint that is not a local `http(s)` URL.
    #[error("{setting} must be an http:// or https:// URL, got {got:?}")]
    BadEndpoint {
        /// The setting.
        setting: &'static str,
        /// What it was.
        got: String,
    },
    /// `AZURE_MANAGED_IDENTITY_CLIENT_ID` is not a GUID.
    #[error(
        "AZURE_MANAGED_IDENTITY_CLIENT_ID must be the user-assigned identity's client id (a GUID), got {0:?}"
    )]
    ManagedIdentityClientId(String),
}

/// The server's credential failed while serving a request. Logged, and summed up for the caller
/// as a server-side problem; no secret is ever part of it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The federated token file could not be read (it rotates; a read can race a rename).
    #[error("cannot read the federated token file {path}: {cause}")]
    FederatedTokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The federated token file is empty.
    #[error("the federated token file {0} is empty")]
    EmptyFederatedToken(PathBuf),
    /// The managed-identity endpoint could not be reached (or timed out).
    #[error("the managed-identity endpoint did not answer{}", if source.is_timeout() { " in time" } else { "" })]
    ManagedIdentityUnreachable {
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The managed-identity endpoint refused (for example: no identity assigned to this resource,
    /// or `AZURE_MANAGED_IDENTITY_CLIENT_ID` names an identity not assigned to it).
    #[error("the managed-identity endpoint answered HTTP {status}{}; check that the identity is assigned to this resource", error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    ManagedIdentityStatus {
        /// The HTTP status.
        status: u16,
        /// Its `error` code, when it sent one.
        error: Option<String>,
    },
    /// The managed-identity endpoint's answer held no usable token.
    #[error("the managed-identity endpoint sent no usable token")]
    ManagedIdentityResponse,
    /// The certificate assertion could not be signed.
    #[error("cannot sign the certificate assertion")]
    Signing(#[source] jsonwebtoken::errors::Error),
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Secret(_) => f.write_str("ClientCredential::Secret(<redacted>)"),
            Kind::Certificate(c) => write!(f, "ClientCredential::Certificate(x5t#S256={})", c.x5t_s256),
            Kind::WorkloadIdentity(path) => {
                write!(f, "ClientCredential::WorkloadIdentity({})", path.display())
            }
            Kind::ManagedIdentity(mi) => write!(
                f,
                "ClientCredential::ManagedIdentity({:?}, client_id={:?})",
                match &mi.endpoint {
                    ManagedIdentityEndpoint::AppService { endpoint, .. } => endpoint.as_str(),
                    ManagedIdentityEndpoint::Imds { endpoint } => endpoint.as_str(),
                },
                mi.client_id
            ),
        }
    }
}

impl ClientCredential {
    /// A client secret (`AZURE_CLIENT_SECRET`): the last resort, since a secret can leak and
    /// expires; prefer the other kinds.
    pub fn secret(secret: impl Into<String>) -> Result<Self, CredentialConfigError> {
        let secret = secret.into();
        if secret.trim().is_empty() {
            return Err(CredentialConfigError::EmptySecret);
        }
        Ok(ClientCredential {
            kind: Kind::Secret(Arc::from(secret)),
        })
    }

    /// A certificate from a PEM file holding the RSA private key (PKCS#8 `PRIVATE KEY` or
    /// PKCS#1 `RSA PRIVATE KEY`) and the certificate uploaded to the app registration
    /// (`AZURE_CLIENT_CERTIFICATE_PATH`). Read once, at start-up.
    pub fn certificate_file(path: impl AsRef<Path>) -> Result<Self, CredentialConfigError> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|cause| CredentialConfigError::Unreadable {
            setting: "AZURE_CLIENT_CERTIFICATE_PATH",
            path: path.to_owned(),
            cause,
        })?;
        let bad = |problem| CredentialConfigError::BadCertificate {
            path: path.to_owned(),
            problem,
        };
        let blocks = pem::parse_many(&pem)
            .ok()
            .filter(|blocks| !blocks.is_empty())
            .ok_or_else(|| bad("not a PEM file"))?;
        let key = blocks
            .iter()
            .find(|b| b.tag() == "PRIVATE KEY" || b.tag() == "RSA PRIVATE KEY")
            .ok_or_else(|| {
                if blocks.iter().any(|b| b.tag() == "ENCRYPTED PRIVATE KEY") {
                    bad("the private key is encrypted; store it unencrypted (protect the file instead)")
                } else {
                    bad("no PRIVATE KEY block; the file must hold the private key and the certificate")
                }
            })?;
        let cert = blocks.iter().find(|b| b.tag() == "CERTIFICATE").ok_or_else(|| {
            bad("no CERTIFICATE block; append the certificate uploaded to the app registration")
        })?;
        let key = EncodingKey::from_rsa_pem(pem::encode(key).as_bytes())
            .map_err(|_| bad("the private key is not an RSA key (Entra certificate credentials are RSA)"))?;
        let der = cert.contents();
        let x5t_s256 = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, der));
        let x5t = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der));
        Ok(ClientCredential {
            kind: Kind::Certificate(Arc::new(Certificate { key, x5t, x5t_s256 })),
        })
    }

    /// Workload identity federation (`AZURE_FEDERATED_TOKEN_FILE`): the platform (AKS, GitHub,
    /// …) writes a token that the app registration's federated credential trusts. The file is
    /// checked now and re-read at every exchange, since the platform rotates it.
    pub fn workload_identity(token_file: impl Into<PathBuf>) -> Result<Self, CredentialConfigError> {
        let path = token_file.into();
        let text = std::fs::read_to_string(&path).map_err(|cause| CredentialConfigError::Unreadable {
            setting: "AZURE_FEDERATED_TOKEN_FILE",
            path: path.clone(),
            cause,
        })?;
        if text.trim().is_empty() {
            return Err(CredentialConfigError::EmptyFederatedToken(path));
        }
        Ok(ClientCredential {
            kind: Kind::WorkloadIdentity(path),
        })
    }

    /// A managed identity, system-assigned (`client_id` `None`) or user-assigned
    /// (`AZURE_MANAGED_IDENTITY_CLIENT_ID`). Its token for [`TOKEN_EXCHANGE_AUDIENCE`] is the
    /// assertion; the app registration needs a federated credential trusting that identity.
    pub fn managed_identity(
        endpoint: ManagedIdentityEndpoint,
        client_id: Option<String>,
    ) -> Result<Self, CredentialConfigError> {
        if let ManagedIdentityEndpoint::AppService { header, .. } = &endpoint {
            if header.trim().is_empty() {
                return Err(CredentialConfigError::MissingIdentityHeader);
            }
        }
        if let Some(id) = &client_id {
            if !crate::guid::is_guid(id) {
                return Err(CredentialConfigError::ManagedIdentityClientId(id.clone()));
            }
        }
        Ok(ClientCredential {
            kind: Kind::ManagedIdentity(Arc::new(ManagedIdentity {
                endpoint,
                client_id,
                cached: tokio::sync::Mutex::new(None),
            })),
        })
    }

    /// The kind, for logs: `managed identity`, `workload identity`, `certificate`, `secret`.
    pub fn kind(&self) -> &'static str {
        match &self.kind {
            Kind::Secret(_) => "secret",
            Kind::Certificate(_) => "certificate",
            Kind::WorkloadIdentity(_) => "workload identity",
            Kind::ManagedIdentity(_) => "managed identity",
        }
    }

    /// The form fields that authenticate the server at `token_endpoint` as `client_id`.
    pub(crate) async fn client_auth(
        &self,
        http: &reqwest::Client,
        token_endpoint: &str,
        client_id: &str,
    ) -> Result<Vec<(&'static str, String)>, CredentialError> {
        let assertion = match &self.kind {
            Kind::Secret(secret) => return Ok(vec![("client_secret", secret.to_string())]),
            Kind::Certificate(cert) => cert.assertion(token_endpoint, client_id)?,
            Kind::WorkloadIdentity(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|cause| {
                    CredentialError::FederatedTokenFile {
                        path: path.clone(),
                        cause,
                    }
                })?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(CredentialError::EmptyFederatedToken(path.clone()));
                }
                token.to_owned()
            }
            Kind::ManagedIdentity(mi) => mi.token(http).await?.to_string(),
        };
        Ok(vec![
            ("client_assertion_type", JWT_BEARER_ASSERTION.to_owned()),
            ("client_assertion", assertion),
        ])
    }
}

impl Certificate {
    fn assertion(&self, token_endpoint: &str, client_id: &str) -> Result<String, CredentialError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut jti = [0u8; 16];
        // A failing system RNG leaves zeros; Entra would then refuse a replayed jti, visibly.
        let _ = aws_lc_rs::rand::fill(&mut jti);
        let mut header = Header::new(Algorithm::RS256);
        header.x5t = Some(self.x5t.clone());
        header.x5t_s256 = Some(self.x5t_s256.clone());
        let claims = serde_json::json!({
            "aud": token_endpoint,
            "iss": client_id,
            "sub": client_id,
            "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
        });
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(CredentialError::Signing)
    }
}

#[derive(Deserialize)]
struct MiToken {
    access_token: String,
    /// Seconds since the epoch, as a string (App Service, IMDS) or a number.
    #[serde(default)]
    expires_on: Option<serde_json::Value>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct MiError {
    #[serde(default)]
    error: Option<String>,
}

impl ManagedIdentity {
    async fn token(&self, http: &reqwest::Client) -> Result<Arc<str>, CredentialError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, valid_until)) = cached.as_ref() {
            if Instant::now() < *valid_until {
                return Ok(token.clone());
            }
        }
        let (mut url, header) = match &self.endpoint {
            ManagedIdentityEndpoint::AppService { endpoint, header } => {
                let mut url = endpoint.clone();
                url.query_pairs_mut().append_pair("api-version", "2019-08-01");
                (url, ("X-IDENTITY-HEADER", header.as_str()))
            }
            ManagedIdentityEndpoint::Imds { endpoint } => {
                let mut url = endpoint.clone();
                url.query_pairs_mut().append_pair("api-version", "2018-02-01");
                (url, ("Metadata", "true"))
            }
        };
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("resource", TOKEN_EXCHANGE_AUDIENCE);
            if let Some(id) = &self.client_id {
                pairs.append_pair("client_id", id);
            }
        }
        let request = http.get(url).header(header.0, header.1);
        let response = request
            .send()
            .await
            .map_err(|source| CredentialError::ManagedIdentityUnreachable { source })?;
        let status = response.status();
        let body = read_limited(response)
            .await
            .map_err(|source| CredentialError::ManagedIdentityUnreachable { source })?;
        if !status.is_success() {
            let error = serde_json::from_slice::<MiError>(&body)
                .ok()
                .and_then(|e| e.error)
                .map(|e| e.chars().filter(|c| c.is_ascii_graphic()).take(64).collect());
            return Err(CredentialError::ManagedIdentityStatus {
                status: status.as_u16(),
                error,
            });
        }
        let parsed: MiToken =
            serde_json::from_slice(&body).map_err(|_| CredentialError::ManagedIdentityResponse)?;
        if parsed.access_token.trim().is_empty() {
            return Err(CredentialError::ManagedIdentityResponse);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let lifetime = token_lifetime(parsed.expires_on.as_ref(), parsed.expires_in.as_ref(), now);
        let token: Arc<str> = Arc::from(parsed.access_token);
        let keep = lifetime.saturating_sub(MI_REFRESH_MARGIN);
        *cached = Some((token.clone(), Instant::now() + keep));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_secret() {
        let secret = ClientCredential::secret("s3cr3t-value").unwrap();
        assert!(!format!("{secret:?}").contains("s3cr3t"));
        assert!(matches!(
            ClientCredential::secret("  "),
            Err(CredentialConfigError::EmptySecret)
        ));
    }

    #[test]
    fn bad_credential_settings_name_the_setting() {
        let dir = std::env::temp_dir().join(format!("mcp-entra-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let key_only = dir.join("key-only.pem");
        std::fs::write(&key_only, include_str!("../../../tests/fixtures/key1.pem")).unwrap();
        let missing = dir.join("missing");
        let cases: Vec<(Result<ClientCredential, CredentialConfigError>, &str)> = vec![
            (
                ClientCredential::certificate_file(&missing),
                "AZURE_CLIENT_CERTIFICATE_PATH names",
            ),
            (ClientCredential::certificate_file(&empty), "not a PEM file"),
            (
                ClientCredential::certificate_file(&key_only),
                "no CERTIFICATE block",
            ),
            (
                ClientCredential::workload_identity(&missing),
                "AZURE_FEDERATED_TOKEN_FILE names",
            ),
            (ClientCredential::workload_identity(&empty), "is empty"),
            (
                ClientCredential::managed_identity(
                    ManagedIdentityEndpoint::AppService {
                        endpoint: Url::parse("http://127.0.0.1:1/msi").unwrap(),
                        header: String::new(),
                    },
                    None,
                ),
                "IDENTITY_HEADER is empty",
            ),
            (
                ClientCredential::managed_identity(
                    ManagedIdentityEndpoint::Imds {
                        endpoint: Url::parse(IMDS_TOKEN_ENDPOINT).unwrap(),
                    },
                    Some("not-a-guid".into()),
                ),
                "AZURE_MANAGED_IDENTITY_CLIENT_ID must be",
            ),
        ];
        for (i, (result, expected)) in cases.into_iter().enumerate() {
            let err = result
                .err()
                .unwrap_or_else(|| panic!("row {i} was accepted"))
                .to_string();
            assert!(err.contains(expected), "row {i}: {err}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
