//! Group membership for authorization: the token's `groups` claim, or Microsoft Graph when the
//! user is in more groups than fit in a token.
//!
//! Entra puts the object ids of a user's security groups in the access token's `groups` claim
//! when the app registration asks for group claims (Token configuration, Add groups claim). A
//! JWT holds at most 200 of them; past that ("overage") Entra leaves `groups` out and points at
//! Microsoft Graph instead with `_claim_names` / `_claim_sources` (or, in some tokens,
//! `hasgroups: true`). Microsoft identity platform, "Configure group claims for applications",
//! and "Access tokens: groups overage claim".
//!
//! On overage [`GroupMembership`] asks Microsoft Graph, `POST /v1.0/users/{oid}/checkMemberGroups`
//! with the ids the operation admits (at most 20 per call, so larger sets are split), which
//! answers the subset the user is a member of, transitively. The endpoint in `_claim_sources` is
//! never used: it may name the retired Azure AD Graph, and it comes from the token; the URL is
//! built from the configured Graph base URL. Graph is called with the server's own token
//! (client credentials; application permissions `GroupMember.Read.All` and `User.Read.All`) or,
//! when configured, on behalf of the caller (`POST /v1.0/me/checkMemberGroups`; delegated
//! `User.Read`).
//! Answers are cached per (tenant, user) for a bounded time; a Graph failure is never taken as
//! membership.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;
use url::Url;

use crate::{AccessToken, AuthError, DownstreamError, Forbidden, Identity, OnBehalfOf, Unavailable};

/// Most group ids Microsoft Graph's `checkMemberGroups` takes in one call.
pub const CHECK_MEMBER_GROUPS_MAX_IDS: usize = 20;

/// The longest one membership check may wait on Microsoft Graph, all its calls together (each
/// HTTP call is bounded by the verifier's client timeout too).
pub const GROUP_CHECK_DEADLINE: Duration = Duration::from_secs(15);

/// The longest `GROUPS_CACHE_SECS` may be: a user removed from a group keeps its access as long
/// as the cached answer lives.
pub const MAX_GROUP_CACHE_TTL: Duration = Duration::from_secs(3600);

/// What the token says about the user's groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenGroups<'a> {
    /// The `groups` claim: object ids (all of the user's groups, or those assigned to the app,
    /// as the app registration chose).
    Listed(Vec<&'a str>),
    /// Overage: too many groups to list; ask Microsoft Graph.
    Overage,
    /// Neither: the app registration emits no group claims.
    Absent,
}

/// Reads `groups`, `_claim_names.groups` and `hasgroups` from the token's claims.
pub fn token_groups(identity: &Identity) -> TokenGroups<'_> {
    let claims = &identity.claims;
    if let Some(Value::Array(groups)) = claims.get("groups") {
        return TokenGroups::Listed(groups.iter().filter_map(Value::as_str).collect());
    }
    let overage = claims
        .get("_claim_names")
        .and_then(|names| names.get("groups"))
        .is_some()
        || claims.get("hasgroups") == Some(&Value::Bool(true));
    if overage {
        TokenGroups::Overage
    } else {
        TokenGroups::Absent
    }
}

/// How the server authenticates to Microsoft Graph for `checkMemberGroups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphAuth {
    /// The server's own token (client credentials) in the caller's tenant: application
    /// permissions `GroupMember.Read.All` and `User.Read.All`, admin-consented in each tenant.
    /// The caller's token goes nowhere.
    App,
    /// The caller's token exchanged on-behalf-of for Graph's `User.Read` (delegated).
    OnBehalfOf,
}

/// Where and how to ask Microsoft Graph.
#[derive(Debug, Clone)]
pub struct GraphGroups {
    provider: OnBehalfOf,
    graph_base_url: Url,
    auth: GraphAuth,
}

impl GraphGroups {
    /// Asks Graph at `graph_base_url` (`GRAPH_BASE_URL`) with `provider`'s credential, as
    /// `auth` says. For [`GraphAuth::OnBehalfOf`] the provider must exchange for
    /// [`GraphGroups::delegated_scope`].
    pub fn new(provider: OnBehalfOf, graph_base_url: Url, auth: GraphAuth) -> Self {
        GraphGroups {
            provider,
            graph_base_url,
            auth,
        }
    }

    /// The delegated scope an on-behalf-of lookup needs: `<graph>/User.Read`, the least
    /// privilege `POST /me/checkMemberGroups` accepts (Microsoft Graph v1.0,
    /// "directoryObject: checkMemberGroups", permissions).
    pub fn delegated_scope(graph_base_url: &Url) -> String {
        format!("{}/User.Read", graph_base_url.as_str().trim_end_matches('/'))
    }

    /// How Graph is asked.
    pub fn auth(&self) -> GraphAuth {
        self.auth
    }

    fn url(&self, path: &[&str]) -> Url {
        let mut url = self.graph_base_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("v1.0").extend(path);
        }
        url
    }

    /// Which of `ids` (at most [`CHECK_MEMBER_GROUPS_MAX_IDS`]) the user is a member of.
    async fn check(
        &self,
        caller: &Identity,
        token: Option<&AccessToken>,
        ids: &[&str],
    ) -> Result<Vec<String>, DownstreamError> {
        let body = json!({ "groupIds": ids });
        let answer = match (self.auth, token) {
            (GraphAuth::App, _) => {
                let url = self.url(&["users", &caller.object_id, "checkMemberGroups"]);
                let scope = format!("{}/.default", self.graph_base_url.as_str().trim_end_matches('/'));
                self.provider
                    .post_json_as_app(&caller.tenant_id, &scope, url, &body)
                    .await?
            }
            (GraphAuth::OnBehalfOf, Some(token)) => {
                let url = self.url(&["me", "checkMemberGroups"]);
                self.provider.post_json(caller, token, url, &body).await?
            }
            // Over stdio the token is in the environment; without one there is nothing to
            // exchange.
            (GraphAuth::OnBehalfOf, None) => return Err(DownstreamError::NoObjectId),
        };
        #[derive(Deserialize)]
        struct Answer {
            value: Vec<String>,
        }
        let answer: Answer =
            serde_json::from_value(answer).map_err(|_| DownstreamError::BadResponse("Microsoft Graph"))?;
        // Only ids that were asked about count: an answer cannot add a group.
        Ok(answer
            .value
            .into_iter()
            .filter_map(|id| ids.iter().find(|asked| asked.eq_ignore_ascii_case(&id)))
            .map(|asked| (*asked).to_owned())
            .collect())
    }
}

/// Cached answers for one user.
struct Entry {
    /// Group id → member or not.
    answers: HashMap<String, bool>,
    /// When the answers stop being used.
    until: Instant,
}

/// Group membership checks with a cache of Graph's answers.
pub struct GroupMembership {
    graph: Option<GraphGroups>,
    ttl: Duration,
    max_entries: usize,
    cache: Mutex<HashMap<(String, String), Entry>>,
}

impl std::fmt::Debug for GroupMembership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMembership")
            .field("graph", &self.graph.as_ref().map(|g| g.auth))
            .field("ttl", &self.ttl)
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

impl GroupMembership {
    /// Checks that read only the token, and refuse an overage token (no way to ask Graph).
    pub fn token_only() -> Self {
        GroupMembership::new(None, Duration::ZERO, 0)
    }

    /// Checks that ask `graph` on overage, keeping answers `ttl` for at most `max_entries`
    /// users (0: no cache, every overage check asks Graph).
    pub fn new(graph: Option<GraphGroups>, ttl: Duration, max_entries: usize) -> Self {
        GroupMembership {
            graph,
            ttl,
            max_entries,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// `true` when overage tokens can be resolved.
    pub fn asks_graph(&self) -> bool {
        self.graph.is_some()
    }

    /// The subset of `candidates` (group object ids) that `caller` is a member of: from the
    /// token's `groups`, or on overage from the cache or Microsoft Graph (asked only about the
    /// candidates not cached). `token` is the caller's, needed only for an on-behalf-of lookup.
    ///
    /// # Errors
    /// [`Forbidden::NoGroupsClaim`] when the token says nothing about groups;
    /// [`Forbidden::GroupsNotResolvable`] on overage without a way to ask;
    /// [`Unavailable::GroupMembership`] when Graph fails (logged with the reason).
    pub async fn member_of(
        &self,
        caller: &Identity,
        token: Option<&AccessToken>,
        candidates: &BTreeSet<String>,
    ) -> Result<BTreeSet<String>, AuthError> {
        if candidates.is_empty() {
            return Ok(BTreeSet::new());
        }
        match token_groups(caller) {
            TokenGroups::Listed(groups) => Ok(candidates
                .iter()
                .filter(|c| groups.iter().any(|g| g.eq_ignore_ascii_case(c)))
                .cloned()
                .collect()),
            TokenGroups::Absent => Err(Forbidden::NoGroupsClaim.into()),
            TokenGroups::Overage => self.overage(caller, token, candidates).await,
        }
    }

    async fn overage(
        &self,
        caller: &Identity,
        token: Option<&AccessToken>,
        candidates: &BTreeSet<String>,
    ) -> Result<BTreeSet<String>, AuthError> {
        let Some(graph) = &self.graph else {
            return Err(Forbidden::GroupsNotResolvable(
                "no server credential is configured to ask Microsoft Graph",
            )
            .into());
        };
        let Some((tid, oid)) = caller.principal() else {
            return Err(Forbidden::GroupsNotResolvable("the token has no oid").into());
        };
        // The oid becomes a path segment of the Graph URL: only an object id may.
        if !crate::is_guid(oid) {
            return Err(Forbidden::GroupsNotResolvable("the token's oid is not an object id").into());
        }
        let key = (tid.to_owned(), oid.to_owned());
        let now = Instant::now();
        let mut member = BTreeSet::new();
        let mut unknown = Vec::new();
        {
            let cache = self.lock();
            let known = cache.get(&key).filter(|entry| entry.until > now);
            for candidate in candidates {
                match known.and_then(|entry| entry.answers.get(candidate)) {
                    Some(true) => {
                        member.insert(candidate.clone());
                    }
                    Some(false) => {}
                    None => unknown.push(candidate.as_str()),
                }
            }
        }
        if unknown.is_empty() {
            return Ok(member);
        }
        let asked = async {
            let mut answers = HashMap::new();
            for chunk in unknown.chunks(CHECK_MEMBER_GROUPS_MAX_IDS) {
                let found = graph.check(caller, token, chunk).await?;
                for id in chunk {
                    answers.insert((*id).to_owned(), found.iter().any(|f| f == id));
                }
            }
            Ok::<_, DownstreamError>(answers)
        };
        let answers = match tokio::time::timeout(GROUP_CHECK_DEADLINE, asked).await {
            Ok(Ok(answers)) => answers,
            Ok(Err(error)) => {
                tracing::warn!(
                    tenant = %tid,
                    object_id = %oid,
                    kind = error.kind(),
                    reason = %error,
                    "could not check group membership with Microsoft Graph; refused"
                );
                return Err(refusal(&error));
            }
            Err(_) => {
                tracing::warn!(
                    tenant = %tid,
                    object_id = %oid,
                    deadline_secs = GROUP_CHECK_DEADLINE.as_secs(),
                    "could not check group membership with Microsoft Graph in time; refused"
                );
                return Err(Unavailable::GroupMembership.into());
            }
        };
        member.extend(answers.iter().filter(|(_, m)| **m).map(|(id, _)| id.clone()));
        self.remember(key, answers, now);
        Ok(member)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Entry>> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `answers` to the user's entry (a fresh one, with a fresh lifetime, once the old one
    /// expired). A full cache drops expired entries first and otherwise keeps nothing new.
    fn remember(&self, key: (String, String), answers: HashMap<String, bool>, now: Instant) {
        if self.max_entries == 0 || self.ttl.is_zero() {
            return;
        }
        let mut cache = self.lock();
        if !cache.contains_key(&key) && cache.len() >= self.max_entries {
            // Full: the expired go, and if that is not enough the tenth expiring soonest, so the
            // next nine of ten newcomers find room without another pass.
            cache.retain(|_, entry| entry.until > now);
            if cache.len() >= self.max_entries {
                let mut until: Vec<Instant> = cache.values().map(|entry| entry.until).collect();
                let nth = (until.len() / 10).max(1) - 1;
                let (_, threshold, _) = until.select_nth_unstable(nth);
                let threshold = *threshold;
                cache.retain(|_, entry| entry.until > threshold);
            }
        }
        let entry = cache.entry(key).or_insert_with(|| Entry {
            answers: HashMap::new(),
            until: now + self.ttl,
        });
        if entry.until <= now {
            entry.answers.clear();
            entry.until = now + self.ttl;
        }
        entry.answers.extend(answers);
    }
}

/// What a failed Graph lookup means for the caller: a `403` when retrying cannot help (consent
/// or permissions missing, the user asked to sign in again), a `503` otherwise.
fn refusal(error: &DownstreamError) -> AuthError {
    match error {
        DownstreamError::ConsentRequired { .. } => Forbidden::GroupsNotResolvable(
            "Microsoft Graph permissions are not consented; the log says which",
        )
        .into(),
        DownstreamError::InteractionRequired { .. } => Forbidden::GroupsNotResolvable(
            "Entra asks you to sign in again before Microsoft Graph can be asked",
        )
        .into(),
        DownstreamError::DownstreamStatus { status: 401 | 403 } => Forbidden::GroupsNotResolvable(
            "Microsoft Graph refused the lookup; the server lacks a permission",
        )
        .into(),
        _ => Unavailable::GroupMembership.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_claims(claims: Value) -> Identity {
        let mut identity = Identity::builder("oid", "tid").scopes(["s"]).build();
        if let Value::Object(extra) = claims {
            identity.claims.extend(extra);
        }
        identity
    }

    /// One row per shape Entra uses to speak of groups.
    #[test]
    fn what_the_token_says_about_groups() {
        let rows = [
            (
                json!({"groups": ["g1", "g2"]}),
                TokenGroups::Listed(vec!["g1", "g2"]),
            ),
            (json!({"groups": []}), TokenGroups::Listed(vec![])),
            (
                json!({"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://graph.windows.net/t/users/o/getMemberObjects"}}}),
                TokenGroups::Overage,
            ),
            (json!({"hasgroups": true}), TokenGroups::Overage),
            (json!({"hasgroups": "true"}), TokenGroups::Absent),
            (json!({"_claim_names": {"roles": "src1"}}), TokenGroups::Absent),
            (json!({}), TokenGroups::Absent),
        ];
        for (claims, expected) in rows {
            let identity = with_claims(claims.clone());
            assert_eq!(token_groups(&identity), expected, "{claims}");
        }
    }

    fn graph_at_nowhere() -> GraphGroups {
        let provider = OnBehalfOf::new(
            "11111111-2222-3333-4444-555555555555",
            &Url::parse("http://127.0.0.1:9").unwrap(),
            None,
            reqwest::Client::new(),
            crate::DownstreamConfig::new(crate::ClientCredential::secret("s").unwrap()),
        )
        .unwrap();
        GraphGroups::new(
            provider,
            Url::parse("http://127.0.0.1:9").unwrap(),
            GraphAuth::App,
        )
    }

    #[tokio::test]
    async fn an_oid_that_is_not_an_object_id_never_reaches_a_graph_url() {
        let membership = GroupMembership::new(Some(graph_at_nowhere()), Duration::from_secs(60), 10);
        let wanted: BTreeSet<String> = ["g1".to_owned()].into();
        for oid in ["..", "a/b", "x?y", "00000000-0000-0000-0000-00000000000g"] {
            let mut caller = with_claims(json!({"hasgroups": true}));
            caller.object_id = oid.to_owned();
            assert_eq!(
                membership.member_of(&caller, None, &wanted).await,
                Err(Forbidden::GroupsNotResolvable("the token's oid is not an object id").into()),
                "{oid}"
            );
        }
    }

    #[test]
    fn a_full_cache_makes_room_for_newcomers() {
        let membership = GroupMembership::new(None, Duration::from_secs(60), 10);
        let now = Instant::now();
        for n in 0..25 {
            let answers = HashMap::from([("g".to_owned(), true)]);
            membership.remember(
                ("t".into(), format!("user-{n}")),
                answers,
                now + Duration::from_millis(n),
            );
            assert!(membership.lock().len() <= 10);
            assert!(
                membership
                    .lock()
                    .contains_key(&("t".to_owned(), format!("user-{n}"))),
                "{n}"
            );
        }
    }

    #[tokio::test]
    async fn listed_groups_answer_without_graph_and_absence_is_refused() {
        let membership = GroupMembership::token_only();
        let wanted: BTreeSet<String> = ["g2".to_owned(), "g3".to_owned()].into();
        let member = with_claims(json!({"groups": ["g1", "g2"]}));
        assert_eq!(
            membership.member_of(&member, None, &wanted).await,
            Ok(["g2".to_owned()].into())
        );
        let none = with_claims(json!({}));
        assert_eq!(
            membership.member_of(&none, None, &wanted).await,
            Err(Forbidden::NoGroupsClaim.into())
        );
        let overage = with_claims(json!({"hasgroups": true}));
        assert!(matches!(
            membership.member_of(&overage, None, &wanted).await,
            Err(AuthError::Forbidden(Forbidden::GroupsNotResolvable(_)))
        ));
    }
}
