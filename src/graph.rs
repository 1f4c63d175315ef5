//! Microsoft Graph as the caller (docs/ARCHITECTURE.md#calling-apis-on-behalf-of-the-caller): what the `my_profile` tool
//! needs. (`verifiers::downstream` is the token exchange itself; this module is the API called.)
//!
//! The token exchange itself is Entra's business and lives in the verifiers crate
//! ([`OnBehalfOf`]); this module knows which API to call and what to keep from the answer.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;
use verifiers::{AccessToken, DownstreamError, Identity, OnBehalfOf};

/// The default Microsoft Graph base URL (public cloud).
pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.microsoft.com";

/// On-behalf-of calls the tools may make: the token provider and where Microsoft Graph lives.
#[derive(Debug, Clone)]
pub struct Graph {
    provider: OnBehalfOf,
    graph_base_url: Url,
}

/// The caller's Microsoft Graph profile (`GET /v1.0/me`), as `my_profile` returns it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct GraphProfile {
    /// `displayName`.
    pub display_name: Option<String>,
    /// `mail`: the primary SMTP address, when the user has a mailbox.
    pub mail: Option<String>,
    /// `jobTitle`.
    pub job_title: Option<String>,
}

impl Graph {
    /// Calls made with `provider`; Graph at `graph_base_url` (`GRAPH_BASE_URL`).
    pub fn new(provider: OnBehalfOf, graph_base_url: Url) -> Self {
        Graph {
            provider,
            graph_base_url,
        }
    }

    /// The caller's Graph profile, fetched as the caller.
    pub async fn graph_me(
        &self,
        caller: &Identity,
        token: &AccessToken,
    ) -> Result<GraphProfile, DownstreamError> {
        let mut url = self.graph_base_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["v1.0", "me"]);
        }
        url.query_pairs_mut()
            .append_pair("$select", "displayName,mail,jobTitle");
        let me = self.provider.get_json(caller, token, url).await?;
        let text = |name: &str| me.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        Ok(GraphProfile {
            display_name: text("displayName"),
            mail: text("mail"),
            job_title: text("jobTitle"),
        })
    }
}
