//! Which shards a listing of a user's projects asks: the shards that hold
//! the user's role assignments, not every shard.
//!
//! `GET /v3/auth/projects` is about the caller's own user, and
//! `GET /v3/users/{id}/projects` about the user in the path. Their shards
//! are the user's membership index entry (written by each shard's outbox
//! relay), unioned with the shard set (`ss`) of the caller's token when the
//! token is the user's own, and the user's home shard, which answers for an
//! unknown user. If the directory cannot be read, the token's set stands in
//! for the entry; with neither, or when the user cannot be told (no valid
//! token), every serving shard is asked, as before the index existed. The
//! shards answer as they always did, so the merged answer is unchanged:
//! shards outside the set hold none of the user's projects.

use std::collections::BTreeSet;

use keyfed_directory::Bucket;
use keyfed_shared::federation::membership;
use keyfed_shared::ids::{ProjectId, ShardId, UserId};

use crate::request::Incoming;
use crate::routes::Listing;
use crate::state::Gateway;

/// The user a `/v3/users/{id}/projects` request names.
pub fn user_in_path(req: &Incoming) -> Option<UserId> {
    let path_and_query = req.path_and_query();
    let path = path_and_query.split('?').next()?;
    let id = path
        .strip_prefix("/v3/users/")?
        .trim_end_matches('/')
        .strip_suffix("/projects")?;
    (!id.is_empty() && !id.contains('/')).then(|| UserId::new(id))
}

/// The shards to ask for `listing`: for a user's project listings, the
/// shards holding the user's assignments; for role assignments, see
/// [`assignment_shards`]; every serving member otherwise.
pub async fn shards_for(state: &Gateway, req: &Incoming, listing: Listing) -> Vec<ShardId> {
    let claims = req
        .auth_token()
        .and_then(|t| state.validator.validate(t, false).ok());
    let user = match listing {
        Listing::AuthProjects => claims.as_ref().map(|c| c.user_id.clone()),
        Listing::UserProjects => user_in_path(req),
        Listing::RoleAssignments => return assignment_shards(state, req, claims).await,
        _ => None,
    };
    match user {
        Some(user) => user_shards(state, &user, claims).await,
        None => state.serving_members(),
    }
}

/// The shards that can hold the answer to `GET /v3/role_assignments`: a
/// project's assignments live with the project (`scope.project.id`: its
/// owner alone); a user's with the shards of its membership index entry
/// and its home, which holds its domain and system grants (`user.id`).
/// Anything else — a domain or the system for every user — asks every
/// serving member. So one dead or hung shard fails only the queries it
/// could answer.
async fn assignment_shards(
    state: &Gateway,
    req: &Incoming,
    claims: Option<std::sync::Arc<keyfed_shared::token::Claims>>,
) -> Vec<ShardId> {
    let path_and_query = req.path_and_query();
    let query = path_and_query.split_once('?').map_or("", |(_, q)| q);
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let serving = state.serving_members();
    if let Some(project) = param("scope.project.id") {
        if let Some(owner) = state.view.owner_of_project(&ProjectId::new(project)) {
            if serving.contains(&owner) {
                return vec![owner];
            }
        }
        return serving;
    }
    match param("user.id") {
        Some(user) => user_shards(state, &UserId::new(user), claims).await,
        None => serving,
    }
}

/// The serving shards holding `user`'s assignments (see the module doc).
async fn user_shards(
    state: &Gateway,
    user: &UserId,
    claims: Option<std::sync::Arc<keyfed_shared::token::Claims>>,
) -> Vec<ShardId> {
    let serving = state.serving_members();
    let from_token: Option<BTreeSet<ShardId>> = claims
        .filter(|c| c.user_id == *user && !c.shard_set.is_empty())
        .map(|c| c.shard_set.iter().cloned().collect());
    let index = state.directory.kv(Bucket::Memberships);
    let mut shards = match index.get(&membership::key(user)).await {
        Ok(entry) => {
            let mut shards = entry
                .and_then(|e| membership::decode(&e.value).ok())
                .unwrap_or_default();
            shards.extend(from_token.into_iter().flatten());
            shards
        }
        Err(e) => match from_token {
            Some(shards) => {
                tracing::debug!(error = %e, "membership index unavailable; using the token's shard set");
                shards
            }
            None => {
                tracing::warn!(error = %e, "membership index unavailable; asking every shard");
                return serving;
            }
        },
    };
    shards.extend(state.view.home_of_user(user));
    let chosen: Vec<ShardId> = serving
        .iter()
        .filter(|s| shards.contains(*s))
        .cloned()
        .collect();
    if chosen.is_empty() {
        serving
    } else {
        chosen
    }
}
