//! Settings of the HTTP transport.

use std::time::Duration;

use thiserror::Error;
use url::Url;

/// The MCP endpoint's path, below `PUBLIC_URL`.
pub const MCP_PATH: &str = "/mcp";
/// The RFC 9728 §3.1 well-known path suffix, inserted between the host and the resource's path.
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";
/// The RFC 9728 metadata path of the MCP endpoint when `PUBLIC_URL` has no path.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";

/// The names a client on this machine may reach the server by: allowed as `Host` by default,
/// and described in the metadata when `PUBLIC_URL` is not set.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// How the HTTP transport behaves. Build with [`HttpConfig::new`], then adjust fields.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `PUBLIC_URL`: where clients reach this server (scheme, host, port, and the path a gateway
    /// serves it under, if any: `https://api.contoso.com/entra`). Used for the advertised
    /// resource and metadata URLs, and for the default allowed Host and Origin.
    pub public_url: Url,
    /// `PUBLIC_URL` was not given: `public_url` is only a default. A request that reached the
    /// server as `localhost`, `127.0.0.1` or `[::1]` is then answered with URLs of the host it
    /// used (RFC 9728 §3.3: the `resource` is the URL the client derived the metadata URL from),
    /// so a strict client that connected to `127.0.0.1` is not sent to `localhost`. Defaults to
    /// `false`.
    pub public_url_is_default: bool,
    /// `resource_name` in the metadata document.
    pub resource_name: String,
    /// `authorization_servers` in the metadata document (e.g. `<authority>/<tenant>/v2.0`).
    pub authorization_servers: Vec<String>,
    /// Full scope URIs (`api://…/access_as_user`): advertised, and named in 401/403 challenges.
    pub scopes: Vec<String>,
    /// The Application ID URI scopes live under (`AZURE_IDENTIFIER_URI`). An app-only caller
    /// refused for a missing app role is pointed at its
    /// [`default_scope`](verifiers::ApplicationIdUri::default_scope) (`<uri>/.default`), the
    /// only scope the client-credentials flow can request. `None`: such challenges name
    /// `scopes` instead.
    pub identifier_uri: Option<verifiers::ApplicationIdUri>,
    /// `Host` values accepted on `/mcp` (`host` matches any port, `host:port` only that port).
    pub allowed_hosts: Vec<String>,
    /// `Origin` values accepted when a request carries one (`scheme://host[:port]`, `:*` for any
    /// port). Requests without `Origin` (non-browser clients) are not affected.
    pub allowed_origins: Vec<String>,
    /// Largest request body accepted; larger gets `413`. Defaults to 1 MiB.
    pub max_body_bytes: usize,
    /// Serve pre-2026-07-28 clients with sessions (`Mcp-Session-Id`). Turn off to run stateless
    /// replicas behind a load balancer without sticky sessions. Defaults to `true`.
    pub legacy_sessions: bool,
    /// A legacy session with no request in flight and no stream open is closed this long after
    /// the last one ended. Defaults to 5 minutes.
    pub session_idle_timeout: Duration,
    /// How long, and in how many bytes, the events of legacy sessions' streams are kept so a
    /// client can resume with `Last-Event-ID`. Defaults to 5 minutes and 16 MiB.
    pub sse_retention: crate::http::EventRetention,
    /// Most open legacy sessions at once; past it, new sessions get `503`. Defaults to 10,000.
    pub max_sessions: usize,
    /// Most legacy sessions one principal (`tid`, `oid`) may hold. At the limit, a new session
    /// closes the principal's least recently used session that has no request in flight; if
    /// every one is busy, the new session gets `503`. Defaults to 100.
    pub max_sessions_per_principal: usize,
    /// Most requests (event streams included) one principal may have in flight at once; past
    /// it, `429` with `Retry-After`. Defaults to 200.
    pub max_streams_per_principal: usize,
    /// Prefix of every session id issued (e.g. `r1-`), for load balancers that route sessions
    /// to replicas by id. Empty: none.
    pub session_id_prefix: String,
    /// In stateless mode, answer simple requests with `application/json` instead of SSE.
    /// Defaults to `true`.
    pub json_response: bool,
    /// How long shutdown waits for in-flight requests. Defaults to 10 s.
    pub shutdown_timeout: Duration,
    /// A connection that has not sent complete request headers within this time is closed
    /// (slow-loris protection). Defaults to 10 s.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/1.1 keep-alive and
    /// HTTP/2 alike; a long tool call or an open event stream is in flight). Defaults to 60 s.
    pub connection_idle_timeout: Duration,
    /// A request body that has not arrived in full this long after its headers fails the
    /// request. Defaults to 30 s.
    pub request_body_timeout: Duration,
    /// Serve HTTP/2 (prior knowledge, `h2c`) beside HTTP/1.1. `false`: HTTP/1.1 only. Defaults
    /// to `true`.
    pub http2: bool,
    /// HTTP/2 keep-alive `PING` interval; a peer that does not answer within the header timeout
    /// is closed. `None`: no pings. Defaults to 30 s.
    pub http2_keepalive_interval: Option<Duration>,
    /// Most concurrent connections; past it, new connections wait in the listen backlog.
    /// Defaults to 10,000.
    pub max_connections: usize,
    /// Requests one client address (an IPv6 /64) may send, checked before any token work;
    /// past it, `429` with `Retry-After`. `/health` and `/ready` are exempt. `None`: no limit.
    /// Defaults to 1000/s, so that many users behind one proxy or NAT are not held back.
    pub rate_limit_per_address: Option<crate::http::Rate>,
    /// Requests one principal (`tid`, `oid`) may send, checked after verification; past it,
    /// `429` with `Retry-After`. `None`: no limit. Defaults to 100/s.
    pub rate_limit_per_principal: Option<crate::http::Rate>,
    /// Most keys (addresses, principals) each rate limiter tracks; past it, new keys share one
    /// bucket until idle keys are forgotten. Defaults to 100,000.
    pub rate_limit_max_tracked: usize,
    /// Proxies whose forwarded-for header names the client address (for the per-address limit
    /// and the audit trail). Defaults to none: the TCP peer is the client.
    pub trusted_proxies: crate::http::TrustedProxies,
}

impl HttpConfig {
    /// A configuration with every default for a server reachable at `public_url`.
    pub fn new(public_url: Url) -> Self {
        HttpConfig {
            allowed_hosts: default_allowed_hosts(&public_url),
            allowed_origins: default_allowed_origins(&public_url),
            public_url,
            public_url_is_default: false,
            resource_name: "mcp-server-entra".to_owned(),
            authorization_servers: Vec::new(),
            scopes: Vec::new(),
            identifier_uri: None,
            max_body_bytes: 1024 * 1024,
            legacy_sessions: true,
            session_idle_timeout: Duration::from_secs(300),
            sse_retention: crate::http::EventRetention {
                time: Duration::from_secs(300),
                bytes: 16 * 1024 * 1024,
            },
            max_sessions: 10_000,
            max_sessions_per_principal: 100,
            max_streams_per_principal: 200,
            session_id_prefix: String::new(),
            json_response: true,
            shutdown_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            connection_idle_timeout: Duration::from_secs(60),
            request_body_timeout: Duration::from_secs(30),
            http2: true,
            http2_keepalive_interval: Some(Duration::from_secs(30)),
            rate_limit_per_address: crate::http::Rate::new(1000, Duration::from_secs(1)),
            rate_limit_per_principal: crate::http::Rate::new(100, Duration::from_secs(1)),
            rate_limit_max_tracked: 100_000,
            trusted_proxies: crate::http::TrustedProxies::default(),
        }
    }

    /// The same configuration described by the loopback hosts a client may use instead of the
    /// default `PUBLIC_URL`'s, at `port`: `(host:port, config)` for `localhost`, `127.0.0.1` and
    /// `[::1]`. Empty unless [`public_url_is_default`](Self::public_url_is_default).
    pub fn loopback_variants(&self, port: u16) -> Vec<(String, HttpConfig)> {
        if !self.public_url_is_default {
            return Vec::new();
        }
        LOOPBACK_HOSTS
            .into_iter()
            .filter_map(|host| {
                let authority = format!("{host}:{port}");
                let mut variant = self.clone();
                variant.public_url = Url::parse(&format!("http://{authority}{}", self.path_prefix())).ok()?;
                Some((authority, variant))
            })
            .collect()
    }

    /// The `PUBLIC_URL` without a trailing slash: `https://api.contoso.com/entra`.
    pub fn base(&self) -> &str {
        self.public_url.as_str().trim_end_matches('/')
    }

    /// The path `PUBLIC_URL` puts the server under, without a trailing slash: `""` or `/entra`.
    pub fn path_prefix(&self) -> &str {
        self.public_url.path().trim_end_matches('/')
    }

    /// The advertised resource: `<PUBLIC_URL>/mcp`.
    pub fn resource(&self) -> String {
        format!("{}{MCP_PATH}", self.base())
    }

    /// Where the resource's metadata is: the well-known suffix inserted between the host and
    /// the resource's path (RFC 9728 §3.1), e.g.
    /// `https://api.contoso.com/.well-known/oauth-protected-resource/entra/mcp`.
    pub fn metadata_url(&self) -> String {
        format!(
            "{}{}",
            self.public_url.origin().ascii_serialization(),
            self.metadata_path()
        )
    }

    /// The path part of [`metadata_url`](Self::metadata_url).
    pub fn metadata_path(&self) -> String {
        format!("{WELL_KNOWN_PATH}{}{MCP_PATH}", self.path_prefix())
    }

    /// Every metadata path this server answers, with the `resource` its document names. Each
    /// `resource` is the URL the path is derived from (RFC 9728 §3.3):
    ///
    /// | path | `resource` |
    /// |---|---|
    /// | `/.well-known/oauth-protected-resource<prefix>/mcp` | `<PUBLIC_URL>/mcp` (the MCP endpoint) |
    /// | `/.well-known/oauth-protected-resource<prefix>` (with a prefix) | `<PUBLIC_URL>` |
    /// | `/.well-known/oauth-protected-resource` | `<PUBLIC_URL>` |
    ///
    /// The root document names `<PUBLIC_URL>`, not the bare origin, even under a path: the
    /// origin belongs to the gateway and the other services behind it, and this server must not
    /// claim it. `<PUBLIC_URL>` is a path-prefix of the MCP URL, so clients that check the
    /// document's `resource` against the URL they were given (the MCP SDKs do) accept it.
    pub fn metadata_documents(&self) -> Vec<(String, String)> {
        let prefix = self.path_prefix();
        let mut documents = vec![(self.metadata_path(), self.resource())];
        if !prefix.is_empty() {
            documents.push((format!("{WELL_KNOWN_PATH}{prefix}"), self.base().to_owned()));
        }
        documents.push((WELL_KNOWN_PATH.to_owned(), self.base().to_owned()));
        documents
    }

    /// Checks the settings that could make the server unreachable or unsafe.
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        if !matches!(self.public_url.scheme(), "http" | "https") || self.public_url.host_str().is_none() {
            return Err(HttpConfigError::PublicUrlNotHttp(self.public_url.to_string()));
        }
        if self.public_url.query().is_some()
            || self.public_url.fragment().is_some()
            || !self.public_url.username().is_empty()
            || self.public_url.password().is_some()
        {
            return Err(HttpConfigError::PublicUrlHasQuery(self.public_url.to_string()));
        }
        if self.path_prefix().ends_with(MCP_PATH) {
            return Err(HttpConfigError::PublicUrlIsEndpoint(self.public_url.to_string()));
        }
        if self.max_body_bytes == 0 {
            return Err(HttpConfigError::Zero("MAX_BODY_BYTES"));
        }
        if self.max_sessions == 0 {
            return Err(HttpConfigError::Zero("MAX_SESSIONS"));
        }
        if self.max_connections == 0 {
            return Err(HttpConfigError::Zero("MAX_CONNECTIONS"));
        }
        for (value, name) in [
            (self.connection_idle_timeout, "CONNECTION_IDLE_TIMEOUT_SECS"),
            (self.request_body_timeout, "REQUEST_BODY_TIMEOUT_SECS"),
            (self.header_read_timeout, "HEADER_READ_TIMEOUT_SECS"),
        ] {
            if value.is_zero() {
                return Err(HttpConfigError::Zero(name));
            }
        }
        if self.max_sessions_per_principal == 0 {
            return Err(HttpConfigError::Zero("MAX_SESSIONS_PER_PRINCIPAL"));
        }
        if self.max_streams_per_principal == 0 {
            return Err(HttpConfigError::Zero("MAX_STREAMS_PER_PRINCIPAL"));
        }
        if self.rate_limit_max_tracked == 0 {
            return Err(HttpConfigError::Zero("RATE_LIMIT_MAX_TRACKED"));
        }
        if !self
            .session_id_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(HttpConfigError::BadSessionPrefix(self.session_id_prefix.clone()));
        }
        if let Some(bad) = self
            .allowed_origins
            .iter()
            .find(|o| o.as_str() != "null" && super::origin::OriginPattern::parse(o).is_none())
        {
            return Err(HttpConfigError::BadOrigin(bad.clone()));
        }
        Ok(())
    }
}

/// The `PUBLIC_URL` host, plus the loopback names when it is local.
fn default_allowed_hosts(public_url: &Url) -> Vec<String> {
    let mut hosts = Vec::new();
    if let Some(host) = public_url.host_str() {
        hosts.push(match public_url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        });
    }
    for local in LOOPBACK_HOSTS {
        if !hosts.iter().any(|h| h == local) {
            hosts.push(local.to_owned());
        }
    }
    hosts
}

fn default_allowed_origins(public_url: &Url) -> Vec<String> {
    vec![
        public_url.origin().ascii_serialization(),
        "http://localhost:*".to_owned(),
        "http://127.0.0.1:*".to_owned(),
        "http://[::1]:*".to_owned(),
    ]
}

/// An HTTP setting that cannot work. The text names the setting.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpConfigError {
    /// `PUBLIC_URL` is not an http(s) URL with a host.
    #[error("PUBLIC_URL must be an http:// or https:// URL with a host, got {0:?}")]
    PublicUrlNotHttp(String),
    /// The listener's own address cannot be read (the socket is unusable).
    #[error("cannot read the listening socket's address: {0}")]
    LocalAddr(String),
    /// `PUBLIC_URL` has a query, a fragment or credentials.
    #[error("PUBLIC_URL must be a base URL without query, fragment or user name (https://api.contoso.com or https://api.contoso.com/entra), got {0:?}")]
    PublicUrlHasQuery(String),
    /// `PUBLIC_URL` ends in `/mcp`: the endpoint, not the base it is under.
    #[error("PUBLIC_URL is the base URL the MCP endpoint is under (the endpoint is <PUBLIC_URL>/mcp); drop the trailing /mcp, got {0:?}")]
    PublicUrlIsEndpoint(String),
    /// A limit of zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// A session-id prefix with characters a header or an nginx map would mangle.
    #[error("SESSION_ID_PREFIX may hold only letters, digits, '-' and '_', got {0:?}")]
    BadSessionPrefix(String),
    /// An allowed origin that is not `scheme://host[:port]`.
    #[error("ALLOWED_ORIGINS entries must look like https://app.example.com, http://localhost:* or null, got {0:?}")]
    BadOrigin(String),
}
