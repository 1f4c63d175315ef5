//! Every setting the server reads: one table, so the docs, `.env.example` and the code agree.

/// One setting: its environment name (also its key in the TOML file, lower-cased), its default,
/// and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Environment variable name, e.g. `AZURE_CLIENT_ID`.
    pub name: &'static str,
    /// Default value as written in `.env.example` (empty: no default).
    pub default: &'static str,
    /// One line of documentation.
    pub help: &'static str,
}

macro_rules! settings {
    ($($name:literal = $default:literal : $help:literal;)*) => {
        /// All settings, in documentation order.
        pub const SETTINGS: &[Setting] = &[$(Setting { name: $name, default: $default, help: $help }),*];
    };
}

settings! {
    "AZURE_CLIENT_ID" = "": "App registration's Application (client) ID (a GUID). Required unless --dev.";
    "AZURE_TENANT_ID" = "": "Directory (tenant) ID or domain; or organizations, common, consumers for multi-tenant. Required unless --dev.";
    "AZURE_REQUIRED_SCOPES" = "access_as_user": "Comma-separated scopes a user's token must carry (short names, as under Expose an API).";
    "AZURE_IDENTIFIER_URI" = "": "Comma-separated Application ID URIs, all accepted as audience; scopes are advertised under the first. Best: <PUBLIC_URL>/mcp. Default: api://<client-id>.";
    "AZURE_AUTHORITY_HOST" = "https://login.microsoftonline.com": "Entra authority host (sovereign clouds: https://login.microsoftonline.us, https://login.partner.microsoftonline.cn).";
    "AZURE_ALLOWED_TENANTS" = "": "Comma-separated tenant GUIDs allowed to call a multi-tenant (organizations/common) server. Empty: any tenant.";
    "AZURE_REQUIRED_APP_ROLES" = "": "Comma-separated app roles an app-only (client-credentials) token must carry. Empty: app-only tokens are refused.";
    "AZURE_REQUIRED_GROUPS" = "": "Comma-separated group object ids; a user must be in one of them to call any tool (the token's groups claim, or Microsoft Graph on overage). Empty: no such floor. App-only callers are not group-checked.";
    "AZURE_ACCEPT_V1_TOKENS" = "false": "Accept Entra v1.0 tokens (issuer https://sts.windows.net/...). Prefer requestedAccessTokenVersion 2.";
    "AZURE_APP_SPECIFIC_SIGNING_KEYS" = "false": "true when the app registration signs its tokens with app-specific keys (a claims-mapping policy): metadata and keys are read with ?appid=<client id>.";
    "AZURE_B2C_POLICY" = "": "Azure AD B2C only: the user flow or custom policy (B2C_1_signupsignin) whose metadata and keys verify tokens; AZURE_AUTHORITY_HOST is then https://<tenant>.b2clogin.com. No on-behalf-of.";
    "AZURE_CLOCK_LEEWAY_SECS" = "60": "Clock skew tolerated on exp and nbf, in seconds.";
    "AZURE_KEY_REFRESH_SECS" = "21600": "How often Entra's signing keys are refreshed, in seconds.";
    "AZURE_KEY_MIN_REFRESH_SECS" = "30": "Minimum seconds between two refreshes caused by a token with an unknown key id.";
    "AZURE_TOKEN_CACHE_ENTRIES" = "10000": "Verified tokens remembered (by SHA-256 digest, until they expire) so repeat calls skip the signature check. 0 disables.";
    "AZURE_TOKEN_CACHE_BYTES" = "33554432": "Most memory the verified-token cache may hold (bytes, estimated from each token's claims), so large tokens cannot grow it. 0 disables.";
    "PUBLIC_URL" = "": "Where clients reach this server, with the gateway's path if any (https://api.contoso.com/entra); the endpoint is <PUBLIC_URL>/mcp. Default: http://localhost:<PORT>.";
    "HOST" = "127.0.0.1": "Address to listen on. Use 0.0.0.0 in a container.";
    "PORT" = "8000": "TCP port to listen on.";
    "ALLOWED_HOSTS" = "": "Comma-separated Host header values accepted on /mcp. Default: the PUBLIC_URL host and localhost.";
    "ALLOWED_ORIGINS" = "": "Comma-separated browser origins accepted on /mcp (http://localhost:* for any port). Default: the PUBLIC_URL origin and localhost.";
    "MAX_BODY_BYTES" = "1048576": "Largest request body accepted; larger gets 413.";
    "LEGACY_SESSIONS" = "true": "Serve pre-2026-07-28 clients with sessions. false: stateless for every version (replicas without sticky sessions).";
    "SESSION_IDLE_TIMEOUT_SECS" = "300": "A legacy session with no request in flight and no stream open is closed this many seconds after the last one ended; then its id gets 404.";
    "SSE_RETENTION_SECS" = "300": "How long the events of legacy sessions' streams are kept, so a client that lost its connection resumes with Last-Event-ID and gets what it missed (the answer included).";
    "SSE_RETENTION_BYTES" = "16777216": "Most bytes of stream events kept for resumption, over all sessions; the oldest go first.";
    "MAX_SESSIONS" = "10000": "Most legacy sessions open at once; past it, new sessions get 503.";
    "MAX_SESSIONS_PER_PRINCIPAL" = "100": "Most legacy sessions one caller (tid, oid) may hold; at the limit a new session closes that caller's least recently used idle session (503 if none is idle).";
    "MAX_STREAMS_PER_PRINCIPAL" = "200": "Most requests and event streams one caller (tid, oid) may have open at once; past it, 429 with Retry-After.";
    "RATE_LIMIT_PER_ADDRESS" = "1000/s": "Requests one client address (IPv6: its /64) may send, checked before any token work: N/s, N/min, N/h, or off. Past it, 429 with Retry-After; /health and /ready are exempt.";
    "RATE_LIMIT_PER_PRINCIPAL" = "100/s": "Requests one caller (tid, oid) may send: N/s, N/min, N/h, or off. Past it, 429 with Retry-After. A tool's own limit: rate_limit in [tools.<name>].";
    "RATE_LIMIT_MAX_TRACKED" = "100000": "Most addresses or callers each rate limit tracks; past it, new ones share one allowance until idle ones are forgotten.";
    "TRUSTED_PROXIES" = "": "Comma-separated addresses or CIDR blocks (10.0.0.0/8) of proxies whose forwarded-for header names the client, for the per-address limit and the audit trail. Empty: the TCP peer is the client.";
    "TRUSTED_PROXIES_HEADER" = "x-forwarded-for": "The header TRUSTED_PROXIES write the client address into: x-forwarded-for or forwarded (RFC 7239).";
    "SESSION_ID_PREFIX" = "": "Prefix of every session id this replica issues (e.g. its pod name), so a load balancer can route sessions by id.";
    "MAX_CONNECTIONS" = "10000": "Most TCP connections served at once; more wait in the listen backlog.";
    "HEADER_READ_TIMEOUT_SECS" = "10": "A connection that has not sent its request headers within this time is closed (slow clients).";
    "CONNECTION_IDLE_TIMEOUT_SECS" = "60": "A connection with no request in flight for this long is closed (HTTP/1.1 keep-alive, HTTP/2 without streams). A running call or an open event stream is not idle.";
    "REQUEST_BODY_TIMEOUT_SECS" = "30": "A request body not received in full this long after its headers fails the request (slow or stalled uploads).";
    "HTTP2" = "true": "Serve HTTP/2 (h2c, prior knowledge) beside HTTP/1.1. false: HTTP/1.1 only.";
    "HTTP2_KEEPALIVE_SECS" = "30": "HTTP/2 keep-alive PING interval; a peer that does not answer within HEADER_READ_TIMEOUT_SECS is disconnected. 0: no pings.";
    "SHUTDOWN_TIMEOUT_SECS" = "10": "On SIGTERM/SIGINT, how long in-flight requests may take to finish.";
    "METRICS_ADDR" = "": "Serve Prometheus metrics at http://<addr>/metrics on this separate address (e.g. 0.0.0.0:9464). Empty: off.";
    "LOG_FORMAT" = "human": "Log format on stderr: human or json. The level comes from RUST_LOG (default info).";
    "TRACES_INCLUDE_USER_NAMES" = "false": "Traces (exported when OTEL_EXPORTER_OTLP_ENDPOINT is set; docs/operations.md#traces): also name the caller by name and preferred_username. Default: by Entra ids (tid, oid, azp) only.";
    "MCP_DEV_TOKEN" = "": "With --dev: the bearer token of the local dev identity. Default: a random token printed at start-up.";
    "MCP_DEV_SCOPES" = "": "With --dev: the dev identity's scopes (short names, comma-separated). Default: AZURE_REQUIRED_SCOPES.";
    "MCP_DEV_ROLES" = "": "With --dev: the dev identity's app roles (comma-separated). Default: none.";
    "MCP_ACCESS_TOKEN" = "": "stdio: the caller's Entra access token.";
    "MCP_ACCESS_TOKEN_FILE" = "": "stdio: a file holding the token, re-read when it changes.";
    "MCP_ACCESS_TOKEN_COMMAND" = "": "stdio: a command printing a fresh token (run without a shell), re-run before the token expires.";
    "MCP_ACCESS_TOKEN_COMMAND_TIMEOUT_SECS" = "30": "stdio: how long the token command may run.";
    "AZURE_CLIENT_SECRET" = "": "Downstream calls (my_profile): the server's client secret. Last resort; prefer a managed identity, workload identity or certificate.";
    "AZURE_CLIENT_CERTIFICATE_PATH" = "": "Downstream calls: a PEM file with the server's RSA private key and the certificate uploaded to the app registration.";
    "AZURE_FEDERATED_TOKEN_FILE" = "": "Downstream calls: workload identity federation; the token file the platform (AKS) projects, re-read as it rotates.";
    "DOWNSTREAM_MANAGED_IDENTITY" = "false": "Downstream calls: true to prove the server's identity with its managed identity (federated credential on the app registration).";
    "AZURE_MANAGED_IDENTITY_CLIENT_ID" = "": "Downstream calls: client id of a user-assigned managed identity. Empty: the system-assigned identity.";
    "IDENTITY_ENDPOINT" = "": "Managed identity endpoint, set by App Service and Container Apps (with IDENTITY_HEADER). Unset: IMDS.";
    "IDENTITY_HEADER" = "": "Managed identity secret header, set by App Service and Container Apps.";
    "AZURE_POD_IDENTITY_AUTHORITY_HOST" = "": "Managed identity: another IMDS host (http://host:port) instead of http://169.254.169.254.";
    "DOWNSTREAM_SCOPES" = "https://graph.microsoft.com/User.Read": "Comma-separated scopes (full URIs) of the token the server gets on the caller's behalf.";
    "GRAPH_BASE_URL" = "https://graph.microsoft.com": "Microsoft Graph base URL used by my_profile (sovereign clouds: https://graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn).";
    "GROUPS_GRAPH_AUTH" = "app": "Group overage (more groups than fit in a token): how Microsoft Graph's checkMemberGroups is asked: app (the server's credential; application permissions GroupMember.Read.All and User.Read.All) or on_behalf_of (the caller's token exchanged; delegated User.Read).";
    "GROUPS_CACHE_SECS" = "300": "How long Microsoft Graph's answers about a user's groups are reused, in seconds. 0: ask on every call.";
    "REDIS_URL" = "": "State shared by replicas (Redis): redis://, rediss:// (TLS, as managed Redis requires) or redis+unix:// URL, with a password or ACL user in it. Holds legacy sessions (with their owners) and the downstream-token cache. Empty: each replica keeps its own.";
    "REDIS_TIMEOUT_MS" = "250": "The longest one Redis operation (connecting included) may take before the replica goes on without it, in milliseconds.";
    "REDIS_KEY_PREFIX" = "mcp-server-entra": "Put in front of every Redis key (letters, digits, . _ -), so several deployments can share one Redis without sharing sessions or tokens.";
    "DOWNSTREAM_CACHE_KEYS" = "": "With REDIS_URL and a server credential: comma-separated AES-256 keys (32 random bytes, base64: openssl rand -base64 32) that encrypt the downstream tokens in Redis. The first encrypts, all decrypt: put a new key first to rotate.";
}

/// The setting named `name`, if there is one.
pub fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}
