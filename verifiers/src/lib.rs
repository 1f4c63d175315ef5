//! Bearer-token verification for `mcp-server-entra`.
//!
//! This crate decides *who is calling* and *whether they may*. It knows nothing of MCP or of HTTP
//! servers: a transport hands it the bearer token it received, and gets back either a verified
//! [`Identity`] or an [`AuthError`] that says precisely what is wrong and which HTTP status fits.
//!
//! Two verifiers implement the one [`TokenVerifier`] contract:
//!
//! - [`EntraVerifier`] validates Microsoft Entra ID access tokens: signature against the tenant's
//!   published keys, issuer (single- and multi-tenant policies), audience, lifetime, and the
//!   required scopes or app roles.
//! - [`OnBehalfOf`] exchanges a verified caller's [`AccessToken`] for a token to a downstream
//!   API (Entra's on-behalf-of grant), authenticating the server with a [`ClientCredential`].
//! - [`StaticVerifier`] maps fixed tokens to fixed identities, for tests and the local dev mode.
//!   It applies the same [`AccessPolicy`], so tests exercise the same authorization code paths.
//!
//! # Example
//!
//! ```
//! use verifiers::{AccessPolicy, AuthError, Identity, StaticVerifier, TokenVerifier};
//!
//! # tokio_test_block(async {
//! let policy = AccessPolicy::scopes(["access_as_user"]);
//! let ada = Identity::builder("ada-oid", "tenant-1")
//!     .name("Ada Lovelace")
//!     .scopes(["access_as_user"])
//!     .build();
//! let verifier = StaticVerifier::new(policy).with_token("secret-dev-token", ada);
//!
//! let who = verifier.verify("secret-dev-token").await?;
//! assert_eq!(who.display_name(), "Ada Lovelace");
//!
//! let denied = verifier.verify("someone-else").await.unwrap_err();
//! assert!(matches!(denied, AuthError::InvalidToken(_)));
//! # Ok::<(), AuthError>(())
//! # });
//! # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod access_token;
mod app_id_uri;
mod auth_context;
mod downstream;
mod entra;
mod error;
mod groups;
mod guid;
mod identity;
mod net;
mod policy;
mod static_verifier;
pub mod telemetry;
mod verifier;

pub use access_token::AccessToken;
pub use app_id_uri::{ApplicationIdUri, EmptyApplicationIdUri};
pub use auth_context::{check_auth_context, claims_request, is_auth_context_id, CLAIMS_CHALLENGE_CAPABILITY};
pub use downstream::{
    CacheKeyError, ClientCredential, CredentialConfigError, CredentialError, DownstreamConfig,
    DownstreamConfigError, DownstreamError, ManagedIdentityEndpoint, OnBehalfOf, SharedCache,
    SharedStoreError, SharedTokenStore, TokenCacheKeys, DEFAULT_DOWNSTREAM_SCOPE, IMDS_TOKEN_ENDPOINT,
    JWT_BEARER_GRANT, TOKEN_EXCHANGE_AUDIENCE,
};
pub use entra::{
    EntraConfig, EntraConfigError, EntraVerifier, TenantPolicy, CONSUMER_TENANT_ID, DEFAULT_AUTHORITY_HOST,
};
pub use error::{
    AuthError, CallerText, Forbidden, InvalidToken, MalformedCredentials, ScopeProblem, Unavailable,
};
pub use groups::{
    token_groups, GraphAuth, GraphGroups, GroupMembership, TokenGroups, CHECK_MEMBER_GROUPS_MAX_IDS,
    GROUP_CHECK_DEADLINE, MAX_GROUP_CACHE_TTL,
};
pub use guid::is_guid;
pub use identity::{Identity, IdentityBuilder};
pub use net::{is_loopback_host, is_secure_transport};
pub use policy::{AccessPolicy, Grants, ImplicationError, Implications, Requirement};
pub use static_verifier::StaticVerifier;
pub use verifier::{Readiness, TokenVerifier};
