//! Fan-out listings: the same request to every serving member at once, each
//! bounded by the upstream timeout, merged into one Keystone collection:
//! deduplicated (by `id`; users preferring their home shard's record; role
//! assignments by user, scope and role), sorted by id, with `links.self`
//! pointing at the gateway. One member failing fails the whole listing
//! (503); a client error (401, 403, ...) from a member is returned as is,
//! except a 404 for a user's projects from a shard other than the user's
//! home (it holds no copy of the user, hence none of their projects).
//!
//! A user's project listings (`/v3/auth/projects`,
//! `/v3/users/{id}/projects`) ask only the shards holding the user's
//! assignments, and role assignments of a project or a user only the shards
//! that can hold them ([`memberships`](crate::memberships)).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::future::join_all;
use keyfed_shared::ids::{ShardId, UserId};
use serde_json::{json, Value};

use crate::error::{GatewayError, Result};
use crate::memberships;
use crate::request::Incoming;
use crate::routes::Listing;
use crate::state::Gateway;

/// Answers a fan-out listing.
pub async fn list(state: &Gateway, req: &Incoming, listing: Listing) -> Result<Response> {
    let members = match listing {
        Listing::AuthProjects | Listing::UserProjects | Listing::RoleAssignments => {
            memberships::shards_for(state, req, listing).await
        }
        _ => state.serving_members(),
    };
    if members.is_empty() {
        return Err(GatewayError::NoMember);
    }
    let home = match listing {
        Listing::UserProjects => {
            memberships::user_in_path(req).and_then(|u| state.view.home_of_user(&u))
        }
        _ => None,
    };
    let out = req.forward();
    let answers = join_all(members.iter().map(|m| state.call(m, &out))).await;
    let mut lists = Vec::with_capacity(answers.len());
    for (shard, answer) in members.into_iter().zip(answers) {
        let answer = answer?;
        if answer.status == StatusCode::NOT_FOUND && home.as_ref().is_some_and(|h| *h != shard) {
            lists.push((shard, Vec::new()));
            continue;
        }
        if answer.status != StatusCode::OK {
            if answer.status.is_client_error() {
                return Ok(answer.into_response());
            }
            return Err(GatewayError::Upstream {
                shard,
                reason: format!("listing answered {}", answer.status),
            });
        }
        let items = answer
            .json()
            .and_then(|mut v| v.get_mut(listing.key()).map(Value::take))
            .and_then(|v| match v {
                Value::Array(items) => Some(items),
                _ => None,
            })
            .ok_or_else(|| GatewayError::Upstream {
                shard: shard.clone(),
                reason: format!("listing without a `{}` array", listing.key()),
            })?;
        lists.push((shard, items));
    }
    let merged = merge(state, listing, lists);
    Ok(Json(json!({
        listing.key(): merged,
        "links": {
            "self": format!("{}{}", state.public_url, req.path_and_query()),
            "previous": null,
            "next": null,
        },
    }))
    .into_response())
}

/// The dedupe key of an item.
fn key_of(listing: Listing, item: &Value) -> String {
    match listing {
        Listing::RoleAssignments => {
            json!([item["user"], item["group"], item["scope"], item["role"]]).to_string()
        }
        _ => item["id"].as_str().unwrap_or_default().to_owned(),
    }
}

/// Merges the members' lists; see the module doc. A user is listed from
/// its home shard only: the copies other shards hold for role grants are
/// stubs, and outlive the user when its home deletes it.
fn merge(state: &Gateway, listing: Listing, lists: Vec<(ShardId, Vec<Value>)>) -> Vec<Value> {
    let mut merged: BTreeMap<String, Value> = BTreeMap::new();
    for (shard, items) in lists {
        for item in items {
            if listing == Listing::Users {
                let home = item["id"]
                    .as_str()
                    .and_then(|id| state.view.home_of_user(&UserId::new(id)));
                if home.is_some_and(|home| home != shard) {
                    continue;
                }
            }
            merged.entry(key_of(listing, &item)).or_insert(item);
        }
    }
    let mut items: Vec<Value> = merged.into_values().collect();
    if listing == Listing::RoleAssignments {
        return items;
    }
    items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    items
}
