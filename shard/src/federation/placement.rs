//! Placement checks and user stubs on a federated shard.
//!
//! A shard creates a project or user only if the federation places it
//! there (pin, else the ring); otherwise it refuses with 409, and the
//! gateway — whose view may be stale — refreshes and retries, so a tenant
//! is never split. A role assignment on this shard for a user homed
//! elsewhere first copies the user from its home shard as a *stub* (no
//! password: logins go to the home shard).

use super::joining::{pin_if_a_joiner_would_take, PinError, Placement};
use crate::error::{Error, Result};
use crate::state::Shard;
use keyfed_directory::Bucket;
use keyfed_shared::error::ApiError;
use keyfed_shared::ids::{ProjectId, ShardId, UserId};
use keyfed_shared::model::User;
use std::time::Duration;

/// How long fetching a user from its home shard may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

fn not_owner(kind: &str, id: &str, owner: Option<ShardId>) -> Error {
    let owner = owner.map_or_else(|| "no member".to_owned(), |s| s.to_string());
    ApiError::not_owner(format!(
        "This member does not own {kind} {id} (the federation places it on {owner}); retry through the gateway."
    ))
    .into()
}

impl Shard {
    fn me(&self) -> ShardId {
        ShardId::new(self.config.shard.id.as_str())
    }

    /// Refuses a project this shard does not own.
    pub fn check_project_owner(&self, id: &ProjectId) -> Result<()> {
        let Some(f) = &self.federation else {
            return Ok(());
        };
        let owner = f.view.owner_of_project(id);
        if owner.as_ref() == Some(&self.me()) {
            Ok(())
        } else {
            Err(not_owner("project", id.as_str(), owner))
        }
    }

    /// Refuses a user this shard is not the home of.
    pub fn check_user_home(&self, id: &UserId) -> Result<()> {
        let Some(f) = &self.federation else {
            return Ok(());
        };
        let home = f.view.home_of_user(id);
        if home.as_ref() == Some(&self.me()) {
            Ok(())
        } else {
            Err(not_owner("user", id.as_str(), home))
        }
    }

    /// Admits the creation of project `id` here: refuses it unless this
    /// shard owns it, and pins it here when a joining member would take it
    /// (see [`super::joining`]). With `instead_of` (a gateway found the
    /// ring owner, that member, down) it takes the project: pins it here
    /// and creates it. Hold the result until the project is stored.
    pub async fn place_new_project(
        &self,
        id: &ProjectId,
        instead_of: Option<&str>,
    ) -> Result<Option<Placement>> {
        self.place_new(id.as_str(), "project", instead_of).await
    }

    /// [`Shard::place_new_project`] for a user.
    pub async fn place_new_user(
        &self,
        id: &UserId,
        instead_of: Option<&str>,
    ) -> Result<Option<Placement>> {
        self.place_new(id.as_str(), "user", instead_of).await
    }

    /// Takes a new entity whose ring owner `down` is down: only if `down`
    /// is its owner by this shard's view and not this shard, by pinning it
    /// here (create-if-absent; a pin elsewhere wins).
    async fn take_over(
        &self,
        f: &super::Federated,
        id: &str,
        kind: &str,
        down: &str,
    ) -> Result<()> {
        let owner = match kind {
            "project" => f.view.owner_of_project(&ProjectId::new(id)),
            _ => f.view.home_of_user(&UserId::new(id)),
        };
        if owner.as_ref().map(ShardId::as_str) != Some(down) || down == self.config.shard.id {
            return Err(not_owner(kind, id, owner));
        }
        let key = format!("{kind}/{id}");
        match super::joining::pin(f.directory.kv(Bucket::Pins).as_ref(), &key, &self.me()).await {
            Ok(()) => {
                tracing::warn!(entity = %key, owner = down, "owner down: new entity pinned here");
                Ok(())
            }
            Err(PinError::Elsewhere(owner)) => Err(not_owner(kind, id, Some(owner))),
            Err(PinError::Directory(e)) => {
                tracing::warn!(error = %e, entity = %key, "pinning a taken-over entity failed");
                Err(
                    ApiError::unavailable("The federation directory is unavailable; retry later.")
                        .into(),
                )
            }
        }
    }

    async fn place_new(
        &self,
        id: &str,
        kind: &str,
        instead_of: Option<&str>,
    ) -> Result<Option<Placement>> {
        let Some(f) = &self.federation else {
            return Ok(None);
        };
        let placement = f.gate.enter().await;
        if f.gate.is_closed(keyfed_shared::time::now_micros() / 1_000) {
            return Err(ApiError::unavailable(
                "This member is being retired and takes no new tenants; retry through the gateway.",
            )
            .into());
        }
        if let Some(down) = instead_of {
            self.take_over(f, id, kind, down).await?;
            return Ok(Some(placement));
        }
        match kind {
            "project" => self.check_project_owner(&ProjectId::new(id))?,
            _ => self.check_user_home(&UserId::new(id))?,
        }
        let key = format!("{kind}/{id}");
        match pin_if_a_joiner_would_take(f, &self.me(), &key, id).await {
            Ok(()) => Ok(Some(placement)),
            Err(PinError::Elsewhere(owner)) => Err(not_owner(kind, id, Some(owner))),
            Err(PinError::Directory(e)) => {
                tracing::warn!(error = %e, entity = %key, "pinning during a join failed");
                Err(
                    ApiError::unavailable("The federation directory is unavailable; retry later.")
                        .into(),
                )
            }
        }
    }

    /// The user, from this shard or — when federated and homed elsewhere —
    /// fetched from its home shard (acting with `token`) and stored here as
    /// a stub. `Ok(None)` when no member has it.
    pub async fn local_or_stub_user(&self, id: &UserId, token: &str) -> Result<Option<User>> {
        if let Some(u) = self.store.get_user(id).await? {
            return Ok(Some(u));
        }
        let Some(f) = &self.federation else {
            return Ok(None);
        };
        let Some(home) = f.view.home_of_user(id).filter(|h| *h != self.me()) else {
            return Ok(None);
        };
        let Some(member) = f.view.member(&home) else {
            return Ok(None);
        };
        let url = format!("{}/v3/users/{id}", member.url);
        let response = self
            .http
            .get(&url)
            .header("x-auth-token", token)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, home = %home, "fetching a user from its home shard failed");
                Error::Api(ApiError::unavailable("The user's home shard is unavailable; retry later."))
            })?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            401 | 403 => return Err(ApiError::forbidden().into()),
            status => {
                tracing::warn!(status, home = %home, "unexpected answer fetching a user");
                return Err(ApiError::unavailable(
                    "The user's home shard is unavailable; retry later.",
                )
                .into());
            }
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| Error::Internal(format!("user from {home}: {e}")))?;
        let mut user: User = serde_json::from_value(body["user"].clone())
            .map_err(|e| Error::Internal(format!("user from {home}: {e}")))?;
        for computed in ["links", "options", "password_expires_at"] {
            user.extra.remove(computed);
        }
        if user.id != *id {
            return Err(Error::Internal(format!("{home} answered for another user")));
        }
        match self.store.create_user(&user, None).await {
            Ok(()) | Err(crate::store::StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(user = %id, home = %home, "user stub created");
        Ok(self.store.get_user(id).await?)
    }
}
