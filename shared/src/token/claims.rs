//! The claim set. Keys are short because every byte is carried on every
//! request; a typical token stays well under 600 bytes.

use super::TokenError;
use crate::ids::{AuditId, DomainId, ProjectId, RoleId, ShardId, UserId};
use crate::revocation::TokenFacts;
use serde::{Deserialize, Serialize};

/// What a token grants and to whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    #[serde(rename = "sub")]
    pub user_id: UserId,
    /// The user's name at issue time.
    #[serde(rename = "un")]
    pub user_name: String,
    /// The user's domain.
    #[serde(rename = "ud")]
    pub user_domain_id: DomainId,
    /// Authentication methods used (`password`, `token`).
    #[serde(rename = "m")]
    pub methods: Vec<String>,
    /// Issue time, unix microseconds.
    #[serde(rename = "iat")]
    pub issued_at: i64,
    /// Expiry, unix microseconds.
    #[serde(rename = "exp")]
    pub expires_at: i64,
    /// This token's audit id, then its parent's for a rescoped token.
    #[serde(rename = "a")]
    pub audit_ids: Vec<AuditId>,
    /// What the token is scoped to.
    #[serde(rename = "s")]
    pub scope: Scope,
    /// Role ids assigned on the scope; validators add the implied roles
    /// from global data, so the token stays small.
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleId>,
    /// On an unscoped token from a federated shard: the shards holding the
    /// user's role assignments, and the user's home — a reference to the
    /// memberships, never their list, so the token stays small however many
    /// projects the user has. Empty and omitted otherwise, and when the set
    /// is over [`MAX_SHARD_SET_BYTES`] (readers then ask the directory).
    /// Tokens without it still parse.
    #[serde(rename = "ss", default, skip_serializing_if = "Vec::is_empty")]
    pub shard_set: Vec<ShardId>,
}

/// The most bytes of shard ids a token's `ss` claim carries: with the JSON
/// and base64 overhead, about 280 bytes, which keeps a token under 1 KiB.
pub const MAX_SHARD_SET_BYTES: usize = 192;

/// The `ss` claim for `shards`: sorted and deduplicated, or empty when the
/// ids together exceed [`MAX_SHARD_SET_BYTES`].
pub fn shard_set_claim(shards: impl IntoIterator<Item = ShardId>) -> Vec<ShardId> {
    let mut set: Vec<ShardId> = shards.into_iter().collect();
    set.sort();
    set.dedup();
    let bytes: usize = set.iter().map(|s| s.as_str().len()).sum();
    if bytes > MAX_SHARD_SET_BYTES {
        Vec::new()
    } else {
        set
    }
}

/// A token's scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// No scope: only good for listing one's projects and rescoping.
    #[serde(rename = "u")]
    Unscoped,
    /// A project, with what the response shows of it.
    #[serde(rename = "p")]
    Project {
        #[serde(rename = "i")]
        id: ProjectId,
        #[serde(rename = "n")]
        name: String,
        #[serde(rename = "d")]
        domain_id: DomainId,
    },
    /// A domain.
    #[serde(rename = "d")]
    Domain {
        #[serde(rename = "i")]
        id: DomainId,
    },
    /// The whole deployment (`{"system": {"all": true}}`).
    #[serde(rename = "y")]
    System,
}

impl Claims {
    /// Rejects a token expired more than `grace` ago, or issued more than
    /// `max_skew` after `now` (a token from the future: refused, since no
    /// revocation event by time could ever match it, and a clock that far
    /// ahead is a fault). All in unix microseconds.
    pub fn check_time(&self, now: i64, grace: i64, max_skew: i64) -> Result<(), TokenError> {
        if now.saturating_sub(grace) >= self.expires_at {
            Err(TokenError::Expired)
        } else if self.issued_at > now.saturating_add(max_skew) {
            Err(TokenError::IssuedInFuture)
        } else {
            Ok(())
        }
    }

    /// The project this token is scoped to, if any.
    pub fn project_id(&self) -> Option<&ProjectId> {
        match &self.scope {
            Scope::Project { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The domain of the scope: the project's domain, or the scoped domain.
    pub fn scope_domain_id(&self) -> Option<&DomainId> {
        match &self.scope {
            Scope::Project { domain_id, .. } => Some(domain_id),
            Scope::Domain { id } => Some(id),
            _ => None,
        }
    }

    /// What the revocation check needs.
    pub fn facts(&self) -> TokenFacts<'_> {
        TokenFacts {
            audit_ids: &self.audit_ids,
            user_id: &self.user_id,
            project_id: self.project_id(),
            domain_ids: [Some(&self.user_domain_id), self.scope_domain_id()],
            issued_at: self.issued_at,
        }
    }
}
