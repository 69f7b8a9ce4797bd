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
use keyfed_shared::ids::{ShardId, UserId};

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

/// The shards to ask for `listing` (a per-user project listing); every
/// serving member for any other listing.
pub async fn shards_for(state: &Gateway, req: &Incoming, listing: Listing) -> Vec<ShardId> {
    let serving = state.serving_members();
    let claims = req
        .auth_token()
        .and_then(|t| state.validator.validate(t, false).ok());
    let user = match listing {
        Listing::AuthProjects => claims.as_ref().map(|c| c.user_id.clone()),
        Listing::UserProjects => user_in_path(req),
        _ => None,
    };
    let Some(user) = user else {
        return serving;
    };
    let from_token: Option<BTreeSet<ShardId>> = claims
        .filter(|c| c.user_id == user && !c.shard_set.is_empty())
        .map(|c| c.shard_set.iter().cloned().collect());
    let index = state.directory.kv(Bucket::Memberships);
    let mut shards = match index.get(&membership::key(&user)).await {
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
    shards.extend(state.view.home_of_user(&user));
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
