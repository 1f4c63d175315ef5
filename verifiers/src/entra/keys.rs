//! The tenant's issuer and signing keys: fetched via OIDC discovery, cached, refreshed.
//!
//! Reads never wait: a request takes the current [`Snapshot`] (an `Arc` behind a short read
//! lock). Refreshes are serialized by one async mutex, so however many requests ask for a key we
//! do not have, one fetch is in flight; and on-demand refreshes are rate-limited, so a flood of
//! made-up `kid`s costs at most one fetch per interval. A failed refresh keeps the keys we had.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;
use tokio::time::Instant;

use crate::net::{is_secure_transport, read_limited, ReadError};
use crate::telemetry;

/// Smallest RSA modulus we accept (bits).
const MIN_RSA_BITS: usize = 2048;
/// Largest response we read from Entra (metadata and JWKS are a few KiB).
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// What the verifier knows about the tenant at one moment.
#[derive(Default)]
pub(crate) struct Snapshot {
    /// The `issuer` of the OpenID metadata (a `{tenantid}` template for multi-tenant authorities).
    pub(crate) issuer: Option<String>,
    /// Keys by `kid`. Entra never reuses a `kid`, but if a JWKS does, every key under it is kept
    /// and each is tried (only those whose `issuer` admits the token): refusing the whole `kid`
    /// would let one odd entry lock out every caller, and trying each grants nothing a single
    /// key would not.
    pub(crate) keys: HashMap<String, Vec<SigningKey>>,
    /// Increases with every successful refresh: what was verified under an older key set is not
    /// reused (see `cache.rs`).
    pub(crate) generation: u64,
}

/// One RSA public key of the JWKS and the issuer it signs for.
pub(crate) struct SigningKey {
    pub(crate) key: DecodingKey,
    /// The JWK's `issuer` (Entra tags the keys of multi-tenant JWKS so; `{tenantid}` stands for
    /// the token's `tid`). `None`: the key signs for the tenant's metadata issuer (today's rule).
    pub(crate) issuer: Option<String>,
}

impl SigningKey {
    /// Whether this key may verify a token whose `iss` is `iss` and `tid` is `tid`: its
    /// `issuer`, `{tenantid}` replaced by `tid`, equals `iss`. A v1 token (`https://sts.…/<tid>/`)
    /// is admitted by a key of the same tenant's v2 issuer, since Entra signs both versions with
    /// the keys of one JWKS. A key without `issuer` admits every issuer (the issuer policy
    /// checks `iss` against the metadata).
    pub(crate) fn signs_for(&self, iss: &str, tid: &str) -> bool {
        super::issuer::key_signs_for(self.issuer.as_deref(), iss, tid)
    }
}

/// Why a refresh failed. Logged, never sent to callers.
#[derive(Debug, Error)]
pub(crate) enum FetchError {
    #[error("request to {url} failed")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} sent a document over {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge { url: String },
    #[error("{url} did not send the expected JSON")]
    Json {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{url} is not an https:// URL (plain http:// only on loopback); refusing to fetch it")]
    Insecure { url: String },
    #[error(
        "the JWKS at {url} holds no usable RSA signing key (RS256, at least {MIN_RSA_BITS} bits, with a kid)"
    )]
    NoUsableKeys { url: String },
}

#[derive(Deserialize)]
struct OpenIdMetadata {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Value>,
}

struct RefreshState {
    last_attempt: Option<Instant>,
}

pub(crate) struct KeyStore {
    http: reqwest::Client,
    metadata_url: String,
    min_interval: Duration,
    /// Fixed keys (see `EntraVerifier::offline`): never fetch.
    offline: bool,
    current: RwLock<Arc<Snapshot>>,
    refresh: tokio::sync::Mutex<RefreshState>,
}

impl KeyStore {
    pub(crate) fn new(http: reqwest::Client, metadata_url: String, min_interval: Duration) -> Self {
        KeyStore {
            http,
            metadata_url,
            min_interval,
            offline: false,
            current: RwLock::new(Arc::new(Snapshot::default())),
            refresh: tokio::sync::Mutex::new(RefreshState { last_attempt: None }),
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        // A poisoned lock only means a writer panicked mid-assignment of an Arc, which cannot
        // leave it torn: keep serving.
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        match self.current.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    /// A store that holds `issuer` and the keys of `jwks` and never fetches anything.
    pub(crate) fn fixed(http: reqwest::Client, issuer: String, jwks: &[Value]) -> Self {
        let mut store = KeyStore::new(http, String::new(), Duration::MAX);
        store.offline = true;
        store.store(Snapshot {
            issuer: Some(issuer),
            keys: usable_keys(jwks),
            generation: 1,
        });
        store
    }

    /// Refreshes now, whatever the rate limit says (scheduled refreshes, start-up).
    pub(crate) async fn refresh(&self) -> Result<(), FetchError> {
        if self.offline {
            return Ok(());
        }
        let mut state = self.refresh.lock().await;
        state.last_attempt = Some(Instant::now());
        let result = self.fetch_and_store().await;
        count_refresh("scheduled", result.is_ok());
        result
    }

    /// Called when a token names a key we do not have (or we have none): refreshes unless another
    /// caller just did, then returns whatever we now know.
    pub(crate) async fn refresh_on_demand(&self, kid: Option<&str>) -> Arc<Snapshot> {
        if self.offline {
            return self.snapshot();
        }
        let mut state = self.refresh.lock().await;
        // Someone else may have fetched while we waited for the lock.
        let current = self.snapshot();
        let satisfied = match kid {
            Some(kid) => current.keys.contains_key(kid),
            None => current.issuer.is_some() && !current.keys.is_empty(),
        };
        let too_soon = state
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.min_interval);
        if satisfied || too_soon {
            return current;
        }
        state.last_attempt = Some(Instant::now());
        let result = self.fetch_and_store().await;
        count_refresh("on_demand", result.is_ok());
        match result {
            Ok(()) => tracing::info!(
                kid = kid.map(crate::CallerText::new).map(tracing::field::display),
                "signing keys refreshed on demand"
            ),
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "on-demand signing-key refresh failed; keeping the keys we have")
            }
        }
        self.snapshot()
    }

    async fn fetch_and_store(&self) -> Result<(), FetchError> {
        let mut metadata: OpenIdMetadata = self.get_json(&self.metadata_url).await?;
        // App-specific keys live at the JWKS URL with the same `?appid=`: Entra's metadata
        // names it so; one that does not is completed rather than trusted to be complete.
        if let Some(appid) = app_id_query(&self.metadata_url) {
            if !metadata.jwks_uri.contains("appid=") {
                let separator = if metadata.jwks_uri.contains('?') { '&' } else { '?' };
                metadata.jwks_uri = format!("{}{separator}{appid}", metadata.jwks_uri);
            }
        }
        let jwks: Jwks = self.get_json(&metadata.jwks_uri).await?;
        let keys = usable_keys(&jwks.keys);
        if keys.is_empty() {
            return Err(FetchError::NoUsableKeys {
                url: metadata.jwks_uri,
            });
        }
        tracing::debug!(count = keys.len(), issuer = %metadata.issuer, "loaded signing keys");
        let generation = self.snapshot().generation + 1;
        self.store(Snapshot {
            issuer: Some(metadata.issuer),
            keys,
            generation,
        });
        Ok(())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, FetchError> {
        let http_err = |source| FetchError::Http {
            url: url.to_owned(),
            source,
        };
        // The metadata URL is built from the checked authority; `jwks_uri` comes from the
        // metadata document, so every fetch is checked, not just the first.
        if !url::Url::parse(url).is_ok_and(|u| is_secure_transport(&u)) {
            return Err(FetchError::Insecure {
                url: crate::CallerText::new(url).to_string(),
            });
        }
        let response = telemetry::send(self.http.get(url), "GET", url, false)
            .await
            .map_err(http_err)?;
        if !response.status().is_success() {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: response.status().as_u16(),
            });
        }
        let body = read_limited(response, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|error| match error {
                ReadError::Http(source) => http_err(source),
                ReadError::TooLarge(_) => FetchError::TooLarge { url: url.to_owned() },
            })?;
        serde_json::from_slice(&body).map_err(|source| FetchError::Json {
            url: url.to_owned(),
            source,
        })
    }
}

/// `entra_jwks_refreshes_total{trigger, outcome}`: every attempt to fetch the metadata and keys.
fn count_refresh(trigger: &'static str, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!("entra_jwks_refreshes_total", "trigger" => trigger, "outcome" => outcome).increment(1);
}

/// The RSA signing keys of a JWKS that we are willing to verify with; the rest are skipped.
///
/// A modulus with leading zero bytes is accepted (RFC 7518 §6.3.1.1 asks producers to omit
/// them, not consumers to refuse them): they are stripped before the key is built. A key with
/// a non-string `issuer` is skipped (it cannot be bound to an issuer).
fn usable_keys(keys: &[Value]) -> HashMap<String, Vec<SigningKey>> {
    let mut usable: HashMap<String, Vec<SigningKey>> = HashMap::new();
    for key in keys {
        let field = |name: &str| key.get(name).and_then(Value::as_str);
        let (Some("RSA"), Some(kid), Some(n), Some(e)) = (field("kty"), field("kid"), field("n"), field("e"))
        else {
            continue;
        };
        if field("use").is_some_and(|u| u != "sig") || field("alg").is_some_and(|a| a != "RS256") {
            continue;
        }
        let issuer = match key.get("issuer") {
            None => None,
            Some(Value::String(issuer)) => Some(issuer.clone()),
            Some(_) => {
                tracing::warn!(kid, "skipping a JWKS key whose issuer is not a string");
                continue;
            }
        };
        let (Ok(modulus), Ok(exponent)) = (URL_SAFE_NO_PAD.decode(n), URL_SAFE_NO_PAD.decode(e)) else {
            tracing::debug!(kid, "skipping a JWKS key whose n or e is not base64url");
            continue;
        };
        let leading = modulus.iter().take_while(|b| **b == 0).count();
        let modulus = &modulus[leading..];
        if modulus_bits(modulus) < MIN_RSA_BITS {
            tracing::warn!(
                kid,
                bits = modulus_bits(modulus),
                "skipping a JWKS key under 2048 bits"
            );
            continue;
        }
        let entry = usable.entry(kid.to_owned()).or_default();
        if !entry.is_empty() {
            tracing::warn!(
                kid,
                "the JWKS holds more than one key with this kid; each is tried"
            );
        }
        entry.push(SigningKey {
            key: DecodingKey::from_rsa_raw_components(modulus, &exponent),
            issuer,
        });
    }
    usable
}

fn modulus_bits(modulus: &[u8]) -> usize {
    let leading = modulus.iter().take_while(|b| **b == 0).count();
    match modulus.get(leading) {
        None => 0,
        Some(first) => (modulus.len() - leading) * 8 - first.leading_zeros() as usize,
    }
}

/// `error: cause: cause` on one line, for logs.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The `appid=<client id>` query of a metadata URL that asks for app-specific keys.
fn app_id_query(metadata_url: &str) -> Option<&str> {
    let query = metadata_url.split_once('?')?.1;
    query.split('&').find(|pair| pair.starts_with("appid="))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n_of_bits(bits: usize) -> String {
        let mut bytes = vec![0xffu8; bits / 8];
        bytes[0] = 0x80;
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn key(issuer: Option<&str>) -> SigningKey {
        SigningKey {
            key: DecodingKey::from_rsa_raw_components(&[0x80; 256], &[1, 0, 1]),
            issuer: issuer.map(str::to_owned),
        }
    }

    #[test]
    fn a_key_signs_only_for_its_issuer() {
        const T1: &str = "aaaaaaaa-0000-0000-0000-000000000001";
        const T2: &str = "aaaaaaaa-0000-0000-0000-000000000002";
        let org = key(Some("https://login.microsoftonline.com/{tenantid}/v2.0"));
        let msa = key(Some(
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
        ));
        let untagged = key(None);
        let v2 = |t: &str| format!("https://login.microsoftonline.com/{t}/v2.0");
        let v1 = |t: &str| format!("https://sts.windows.net/{t}/");
        // (key, iss, tid, admitted)
        let rows: [(&SigningKey, String, &str, bool); 10] = [
            (&org, v2(T1), T1, true),
            (&org, v2(T2), T1, false),
            (&org, v1(T1), T1, true),
            (&org, v1(T2), T1, false),
            (&msa, v2(T1), T1, false),
            (&msa, v2(CONSUMER), CONSUMER, true),
            (&msa, v1(T1), T1, false),
            (&org, format!("{}/", v2(T1)), T1, false),
            (&untagged, v2(T2), T1, true),
            (&untagged, "anything".into(), "x", true),
        ];
        for (key, iss, tid, admitted) in rows {
            assert_eq!(key.signs_for(&iss, tid), admitted, "{:?} {iss} {tid}", key.issuer);
        }
    }

    const CONSUMER: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

    #[test]
    fn duplicate_kids_are_all_kept_and_leading_zero_moduli_accepted() {
        let mut padded = vec![0u8];
        padded.extend(URL_SAFE_NO_PAD.decode(n_of_bits(2048)).unwrap());
        let keys = vec![
            json!({"kty":"RSA","kid":"dup","n":n_of_bits(2048),"e":"AQAB","issuer":"a"}),
            json!({"kty":"RSA","kid":"dup","n":n_of_bits(2048),"e":"AQAB","issuer":"b"}),
            json!({"kty":"RSA","kid":"padded","n":URL_SAFE_NO_PAD.encode(padded),"e":"AQAB"}),
            json!({"kty":"RSA","kid":"bad-issuer","n":n_of_bits(2048),"e":"AQAB","issuer":7}),
        ];
        let usable = usable_keys(&keys);
        let issuers: Vec<_> = usable["dup"].iter().map(|k| k.issuer.clone()).collect();
        assert_eq!(issuers, [Some("a".to_owned()), Some("b".to_owned())]);
        assert_eq!(usable["padded"].len(), 1);
        assert!(!usable.contains_key("bad-issuer"));
    }

    #[test]
    fn modulus_bits_ignores_leading_zeros() {
        assert_eq!(modulus_bits(&[0, 0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0x01]), 1);
        assert_eq!(modulus_bits(&[]), 0);
    }

    #[test]
    fn only_rsa_signing_keys_of_2048_bits_with_kid_are_used() {
        let e = "AQAB";
        let keys = vec![
            json!({"kty":"RSA","kid":"good","n":n_of_bits(2048),"e":e,"use":"sig"}),
            json!({"kty":"RSA","kid":"no-use","n":n_of_bits(4096),"e":e}),
            json!({"kty":"RSA","kid":"small","n":n_of_bits(1024),"e":e}),
            json!({"kty":"RSA","kid":"enc","n":n_of_bits(2048),"e":e,"use":"enc"}),
            json!({"kty":"RSA","kid":"ps256","n":n_of_bits(2048),"e":e,"alg":"PS256"}),
            json!({"kty":"EC","kid":"ec","crv":"P-256","x":"AA","y":"AA"}),
            json!({"kty":"RSA","n":n_of_bits(2048),"e":e}),
            json!({"kty":"RSA","kid":"junk","n":"***","e":e}),
            json!("not even an object"),
        ];
        let mut usable: Vec<_> = usable_keys(&keys).into_keys().collect();
        usable.sort();
        assert_eq!(usable, ["good", "no-use"]);
    }
}
