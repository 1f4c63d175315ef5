//! A local Entra issuer for trying the REAL Entra verifier without an Azure tenant.
//!
//! `serve` publishes, on 127.0.0.1, what Entra publishes for a tenant: the OpenID Connect discovery
//! document (`/<tenant>/v2.0/.well-known/openid-configuration`) and the signing keys (JWKS). It
//! prints the environment lines that point `mcp-server-entra` at it. `mint` prints an access token
//! signed with the same key, with the claims you choose, shaped as an Entra v2.0 access token
//! (`ver`, `iss`, `aud`, `tid`, `oid`, `sub`, `azp`, `scp` or `roles`, `idtyp` for app-only tokens).
//!
//! ```text
//! cargo run --example local_entra -- serve                 # terminal 1; prints AZURE_* lines
//! cargo run --example local_entra -- mint --scp "access_as_user" --expires-in 3600
//! cargo run --example local_entra -- mint --app --roles Dice.Roll
//! ```
//!
//! The RSA key is generated on first use and kept in `target/local-entra/key.pem` (with the issuer's
//! address in `target/local-entra/issuer.json`), so `mint` signs with the key `serve` publishes.
//! It is a throw-away local key: never trust it anywhere else. The server binary itself never
//! mints tokens; this example is the only place that does.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// The tenant `serve` stands for unless `--tenant` says otherwise (a made-up GUID).
const LOCAL_TENANT: &str = "00000000-0000-4000-8000-00000000e1d0";
/// The app registration's Application (client) ID the tokens are for (a made-up GUID).
const LOCAL_CLIENT_ID: &str = "00000000-0000-4000-8000-0000000c11e7";
/// The Azure CLI's well-known client id: the `azp` of a delegated token, as with `az account get-access-token`.
const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
/// Entra's tenant of personal Microsoft accounts (the issuer of `consumers`).
const CONSUMER_TENANT_ID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

#[derive(Parser)]
#[command(
    about = "A local Entra issuer: serve OIDC discovery + JWKS on 127.0.0.1, mint signed access tokens"
)]
struct Cli {
    /// Where the key and the issuer's address are kept.
    #[arg(long, global = true, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/local-entra"))]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve discovery and JWKS on 127.0.0.1 until interrupted; print the AZURE_* lines for the server.
    Serve {
        /// TCP port (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The server's AZURE_TENANT_ID: a GUID, or organizations / common / consumers for multi-tenant.
        #[arg(long, default_value = LOCAL_TENANT)]
        tenant: String,
        /// The server's AZURE_CLIENT_ID (the audience of minted tokens).
        #[arg(long, default_value = LOCAL_CLIENT_ID)]
        client_id: String,
    },
    /// Print an RS256 access token signed with the served key.
    Mint(MintChoice),
}

/// What `serve` leaves for `mint`.
#[derive(Serialize, Deserialize)]
struct IssuerFile {
    authority_host: String,
    tenant: String,
    client_id: String,
}

#[derive(Debug, thiserror::Error)]
enum LocalEntraError {
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("{0}: not a key this example wrote; delete it to get a new one")]
    BadKey(PathBuf),
    #[error("could not generate an RSA key")]
    KeyGeneration,
    #[error("{0} is missing or unreadable: run `cargo run --example local_entra -- serve` first")]
    NotServed(PathBuf),
    #[error("could not sign the token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// The local signing key: its encoding key, its JWK and its `kid`.
struct LocalKey {
    encoding: EncodingKey,
    kid: String,
    jwk: Value,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            port,
            tenant,
            client_id,
        } => serve(&cli.dir, port, tenant, client_id).await,
        Command::Mint(choice) => mint(&cli.dir, &choice).map(|token| println!("{token}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("local_entra: {error}");
            ExitCode::FAILURE
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LocalEntraError + '_ {
    move |cause| LocalEntraError::Io {
        path: path.to_owned(),
        cause,
    }
}

/// Loads `dir/key.pem`, generating a 2048-bit RSA key (PKCS#8) there first if there is none.
fn load_or_create_key(dir: &Path) -> Result<LocalKey, LocalEntraError> {
    let path = dir.join("key.pem");
    if !path.exists() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| LocalEntraError::KeyGeneration)?;
        let der = pair.as_der().map_err(|_| LocalEntraError::KeyGeneration)?;
        let body = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .filter_map(|c| std::str::from_utf8(c).ok())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        // Write then rename, so a concurrent `mint` never reads half a key.
        let partial = dir.join(format!("key.pem.{}", std::process::id()));
        std::fs::write(&partial, pem).map_err(io(&partial))?;
        std::fs::rename(&partial, &path).map_err(io(&path))?;
    }
    let pem = std::fs::read(&path).map_err(io(&path))?;
    let encoding = EncodingKey::from_rsa_pem(&pem).map_err(|_| LocalEntraError::BadKey(path.clone()))?;
    let mut jwk = serde_json::to_value(
        jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::RS256)
            .map_err(|_| LocalEntraError::BadKey(path.clone()))?,
    )
    .map_err(|_| LocalEntraError::BadKey(path.clone()))?;
    // The kid follows the key, so a new key gets a new kid (the server refetches keys on an unknown kid).
    let modulus = jwk["n"].as_str().unwrap_or_default().to_owned();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, modulus.as_bytes());
    let kid = format!("local-{}", &URL_SAFE_NO_PAD.encode(digest.as_ref())[..16]);
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    Ok(LocalKey { encoding, kid, jwk })
}

/// The issuer Entra writes for an authority's tenant segment: the multi-tenant keywords become the
/// `{tenantid}` template (`consumers`: the personal-account tenant).
fn issuer_tenant(tenant: &str) -> &str {
    match tenant {
        "organizations" | "common" => "{tenantid}",
        "consumers" => CONSUMER_TENANT_ID,
        other => other,
    }
}

async fn serve(dir: &Path, port: u16, tenant: String, client_id: String) -> Result<(), LocalEntraError> {
    let key = load_or_create_key(dir)?;
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(io(Path::new("127.0.0.1")))?;
    let addr = listener.local_addr().map_err(io(Path::new("127.0.0.1")))?;
    let base = format!("http://{addr}");
    let file = IssuerFile {
        authority_host: base.clone(),
        tenant: tenant.clone(),
        client_id: client_id.clone(),
    };
    let issuer_path = dir.join("issuer.json");
    let text = serde_json::to_string_pretty(&file).unwrap_or_default();
    std::fs::write(&issuer_path, text).map_err(io(&issuer_path))?;

    // Entra tags the keys of its JWKS with the issuer they sign for; so does this one.
    let mut jwk = key.jwk.clone();
    jwk["issuer"] = json!(format!("{base}/{{tenantid}}/v2.0"));
    let jwks = Arc::new(json!({ "keys": [jwk] }).to_string());

    println!("AZURE_AUTHORITY_HOST={base}");
    println!("AZURE_TENANT_ID={tenant}");
    println!("AZURE_CLIENT_ID={client_id}");
    eprintln!(
        "local_entra: serving OpenID discovery at {base}/{tenant}/v2.0/.well-known/openid-configuration \
         and keys at {base}/common/discovery/v2.0/keys (key id {}); Ctrl-C stops",
        key.kid
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (jwks, base) = (jwks.clone(), base.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| answer(jwks.clone(), base.clone(), req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn answer(
    jwks: Arc<String>,
    base: String,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    let (status, body) = if let Some(tenant) = path
        .strip_suffix("/v2.0/.well-known/openid-configuration")
        .map(|p| p.trim_start_matches('/'))
    {
        let doc = json!({
            "issuer": format!("{base}/{}/v2.0", issuer_tenant(tenant)),
            "jwks_uri": format!("{base}/common/discovery/v2.0/keys"),
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        (200, doc.to_string())
    } else if path == "/common/discovery/v2.0/keys" {
        (200, jwks.as_str().to_owned())
    } else {
        (404, json!({"error": "not_found"}).to_string())
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::NOT_FOUND);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The claims `mint` was asked for.
#[derive(clap::Args)]
struct MintChoice {
    /// Delegated scopes, space-separated (`scp`), as under Expose an API. Ignored with --app.
    #[arg(long, default_value = "access_as_user")]
    scp: String,
    /// App roles, space-separated (`roles`).
    #[arg(long, default_value = "")]
    roles: String,
    /// The caller's tenant (`tid`; also names the issuer). Default: the served tenant, or a
    /// made-up GUID when it is organizations/common.
    #[arg(long)]
    tid: Option<String>,
    /// Seconds until `exp`; negative for an already-expired token (beyond the server's
    /// 60 s leeway, e.g. -120).
    #[arg(long, default_value_t = 3600, allow_negative_numbers = true)]
    expires_in: i64,
    /// The audience (`aud`). Default: the served client id.
    #[arg(long)]
    aud: Option<String>,
    /// An app-only (client-credentials) token: `idtyp` app, `roles`, no `scp`, `oid` = `sub`.
    #[arg(long)]
    app: bool,
    /// The caller's object id (`oid`).
    #[arg(long, default_value = "00000000-0000-4000-8000-0000000a11ce")]
    oid: String,
    /// The caller's display name (`name`; delegated tokens only).
    #[arg(long, default_value = "Local User")]
    name: String,
    /// The caller's sign-in name (`preferred_username`; delegated tokens only).
    #[arg(long, default_value = "user@local.test")]
    preferred_username: String,
    /// The client application that asked for the token (`azp`). Default: the Azure CLI
    /// (delegated), a made-up daemon id (app-only).
    #[arg(long)]
    azp: Option<String>,
}

fn mint(dir: &Path, choice: &MintChoice) -> Result<String, LocalEntraError> {
    let issuer_path = dir.join("issuer.json");
    let file: IssuerFile = std::fs::read(&issuer_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| LocalEntraError::NotServed(issuer_path.clone()))?;
    let key = load_or_create_key(dir)?;
    let tid = match (&choice.tid, issuer_tenant(&file.tenant)) {
        (Some(tid), _) => tid.clone(),
        (None, "{tenantid}") => LOCAL_TENANT.to_owned(),
        (None, tenant) => tenant.to_owned(),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let exp = now + choice.expires_in;
    let iat = now.min(exp - 1);
    let mut claims = json!({
        "aud": choice.aud.clone().unwrap_or(file.client_id.clone()),
        "iss": format!("{}/{tid}/v2.0", file.authority_host),
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "tid": tid,
        "oid": choice.oid,
        "ver": "2.0",
    });
    let roles: Vec<&str> = choice.roles.split_whitespace().collect();
    if !roles.is_empty() {
        claims["roles"] = json!(roles);
    }
    if choice.app {
        claims["idtyp"] = json!("app");
        claims["sub"] = json!(choice.oid);
        claims["azp"] = json!(choice
            .azp
            .clone()
            .unwrap_or_else(|| "00000000-0000-4000-8000-0000000da3e0".to_owned()));
        claims["azpacr"] = json!("1");
    } else {
        claims["scp"] = json!(choice.scp.split_whitespace().collect::<Vec<_>>().join(" "));
        claims["sub"] = json!(format!("local-sub-{}", choice.oid));
        claims["name"] = json!(choice.name);
        claims["preferred_username"] = json!(choice.preferred_username);
        claims["azp"] = json!(choice
            .azp
            .clone()
            .unwrap_or_else(|| AZURE_CLI_CLIENT_ID.to_owned()));
        claims["azpacr"] = json!("0");
    }
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": key.kid});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key.encoding, Algorithm::RS256)
        .map_err(LocalEntraError::Sign)?;
    Ok(format!("{input}.{signature}"))
}
