//! The local dev identity (`--dev`): a static verifier with one user, so the server runs without
//! an Azure tenant.

use rand::Rng as _;
use verifiers::{AccessPolicy, Identity, StaticVerifier};

/// Object id of the dev user.
pub const DEV_OBJECT_ID: &str = "00000000-0000-0000-0000-00000000de01";
/// Tenant id of the dev user.
pub const DEV_TENANT_ID: &str = "00000000-0000-0000-0000-00000000de00";

/// The dev user, a delegated caller with `scopes` (short names) and app `roles`
/// (`MCP_DEV_SCOPES`, `MCP_DEV_ROLES`).
pub fn dev_identity(scopes: &[String], roles: &[String]) -> Identity {
    Identity::builder(DEV_OBJECT_ID, DEV_TENANT_ID)
        .name("Dev User")
        .username("dev@localhost")
        .scopes(scopes.to_vec())
        .roles(roles.to_vec())
        .client_app("mcp-server-entra-dev")
        .build()
}

/// A random 256-bit token, hex-encoded.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The static verifier of dev mode: `token` is the dev user, checked against `policy` like any
/// caller (so a dev identity without a required scope is refused, as Entra's would be).
pub fn dev_verifier(
    token: &str,
    policy: AccessPolicy,
    scopes: &[String],
    roles: &[String],
) -> StaticVerifier {
    StaticVerifier::new(policy).with_token(token, dev_identity(scopes, roles))
}
