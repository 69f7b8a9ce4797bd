//! Persistence for a shard. [`Store`] is the one interface the API layer
//! uses; [`postgres::PgStore`] is the production implementation and
//! [`embedded::EmbeddedStore`] the durable on-disk one behind `keyfed dev`.
//! Both pass the same [`conformance`] suite.
//!
//! Every method is one transaction: a write that also revokes tokens (a
//! password change, disabling or deleting a user or project) stores its
//! revocation event atomically with the change. Every write that changes a
//! user's role assignments (a grant, a revocation, and the deletes that
//! cascade to assignments) also records the user in the **membership
//! outbox** in the same transaction; the federation's relay reads the
//! outbox ([`Store::outbox_pending`]) to keep the directory's membership
//! index in step, and removes what it delivered ([`Store::outbox_remove`]).

pub mod conformance;
pub mod embedded;
pub mod postgres;

use async_trait::async_trait;
use keyfed_shared::ids::{DomainId, EndpointId, ProjectId, RegionId, RoleId, ServiceId, UserId};
use keyfed_shared::model::{
    Assignment, AssignmentFilter, Domain, Endpoint, ImpliedRole, ListFilter, Project, Region, Role,
    Service, User,
};
use keyfed_shared::revocation::RevocationEvent;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (duplicate id or name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The operation refers to an entity that does not exist (e.g. a project
    /// in an unknown domain, an endpoint of an unknown service).
    #[error("missing reference: {0}")]
    MissingReference(String),
    /// The entity is still referenced and cannot be deleted.
    #[error("still referenced: {0}")]
    InUse(String),
    /// The backend failed (connection lost, I/O error, ...).
    #[error("storage backend: {0}")]
    Backend(String),
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// A pending entry of the membership outbox: the user's role assignments on
/// this shard changed since the membership index was last told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The user whose assignments changed.
    pub user_id: UserId,
    /// Bumped by every change for the user. [`Store::outbox_remove`] removes
    /// the entry only at this version, so a change made while the relay was
    /// delivering the entry stays pending.
    pub version: u64,
    /// Whether the user holds any assignment on this shard, read in the same
    /// snapshot as `version`.
    pub holds_assignments: bool,
}

/// Everything the shard persists. Getters return `Ok(None)`, and updates and
/// deletes `Ok(false)`, when the entity does not exist.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- domains
    async fn create_domain(&self, domain: &Domain) -> StoreResult<()>;
    async fn get_domain(&self, id: &DomainId) -> StoreResult<Option<Domain>>;
    async fn list_domains(&self) -> StoreResult<Vec<Domain>>;
    async fn update_domain(&self, domain: &Domain) -> StoreResult<bool>;
    /// Deletes a domain with its projects, users and their assignments.
    async fn delete_domain(&self, id: &DomainId) -> StoreResult<bool>;

    // --- projects
    async fn create_project(&self, project: &Project) -> StoreResult<()>;
    async fn get_project(&self, id: &ProjectId) -> StoreResult<Option<Project>>;
    async fn find_project(&self, domain: &DomainId, name: &str) -> StoreResult<Option<Project>>;
    async fn list_projects(&self, filter: &ListFilter) -> StoreResult<Vec<Project>>;
    /// Updates a project; `revoke` is stored in the same transaction.
    async fn update_project(
        &self,
        project: &Project,
        revoke: Option<&RevocationEvent>,
    ) -> StoreResult<bool>;
    /// Deletes a project and its assignments, storing `revoke` with it.
    async fn delete_project(&self, id: &ProjectId, revoke: &RevocationEvent) -> StoreResult<bool>;

    // --- users
    /// Creates a user with an optional password hash (PHC string).
    async fn create_user(&self, user: &User, password_hash: Option<&str>) -> StoreResult<()>;
    async fn get_user(&self, id: &UserId) -> StoreResult<Option<User>>;
    async fn find_user(&self, domain: &DomainId, name: &str) -> StoreResult<Option<User>>;
    async fn list_users(&self, filter: &ListFilter) -> StoreResult<Vec<User>>;
    /// The user's stored password hash, if the user exists and has one.
    async fn password_hash(&self, id: &UserId) -> StoreResult<Option<String>>;
    /// Updates a user and, when `password_hash` is set, its password; stores
    /// `revoke` in the same transaction.
    async fn update_user(
        &self,
        user: &User,
        password_hash: Option<&str>,
        revoke: Option<&RevocationEvent>,
    ) -> StoreResult<bool>;
    /// Replaces the password hash and stores `revoke` in the same transaction.
    async fn set_password(
        &self,
        id: &UserId,
        password_hash: &str,
        revoke: &RevocationEvent,
    ) -> StoreResult<bool>;
    /// Deletes a user and their assignments, storing `revoke` with it.
    async fn delete_user(&self, id: &UserId, revoke: &RevocationEvent) -> StoreResult<bool>;

    // --- roles
    async fn create_role(&self, role: &Role) -> StoreResult<()>;
    async fn get_role(&self, id: &RoleId) -> StoreResult<Option<Role>>;
    async fn list_roles(&self) -> StoreResult<Vec<Role>>;
    async fn update_role(&self, role: &Role) -> StoreResult<bool>;
    /// Deletes a role, its implications and its assignments.
    async fn delete_role(&self, id: &RoleId) -> StoreResult<bool>;
    /// Records an implication; `Ok(false)` if it already existed.
    async fn add_implied_role(&self, rule: &ImpliedRole) -> StoreResult<bool>;
    async fn remove_implied_role(&self, rule: &ImpliedRole) -> StoreResult<bool>;
    async fn list_implied_roles(&self) -> StoreResult<Vec<ImpliedRole>>;

    // --- role assignments
    /// Grants a role; `Ok(false)` if the assignment already existed.
    async fn grant(&self, assignment: &Assignment) -> StoreResult<bool>;
    /// Revokes a role grant, storing `revoke` with it.
    async fn revoke_grant(
        &self,
        assignment: &Assignment,
        revoke: &RevocationEvent,
    ) -> StoreResult<bool>;
    async fn list_assignments(&self, filter: &AssignmentFilter) -> StoreResult<Vec<Assignment>>;

    // --- catalog
    async fn create_region(&self, region: &Region) -> StoreResult<()>;
    async fn list_regions(&self) -> StoreResult<Vec<Region>>;
    async fn update_region(&self, region: &Region) -> StoreResult<bool>;
    /// Deletes a region; `InUse` while endpoints or child regions refer to it.
    async fn delete_region(&self, id: &RegionId) -> StoreResult<bool>;
    async fn create_service(&self, service: &Service) -> StoreResult<()>;
    async fn list_services(&self) -> StoreResult<Vec<Service>>;
    async fn update_service(&self, service: &Service) -> StoreResult<bool>;
    /// Deletes a service and its endpoints.
    async fn delete_service(&self, id: &ServiceId) -> StoreResult<bool>;
    async fn create_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()>;
    async fn list_endpoints(&self) -> StoreResult<Vec<Endpoint>>;
    async fn update_endpoint(&self, endpoint: &Endpoint) -> StoreResult<bool>;
    async fn delete_endpoint(&self, id: &EndpointId) -> StoreResult<bool>;

    // --- revocations
    async fn add_revocation(&self, event: &RevocationEvent) -> StoreResult<()>;
    /// Events whose `expires_at` (unix seconds) is after `now_secs`.
    async fn list_revocations(&self, now_secs: i64) -> StoreResult<Vec<RevocationEvent>>;
    /// Deletes events that expired at or before `now_secs`; returns how many.
    async fn prune_revocations(&self, now_secs: i64) -> StoreResult<u64>;

    // --- membership outbox
    /// Up to `limit` pending outbox entries, lowest version first.
    async fn outbox_pending(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>>;
    /// Removes each of `done` that is still at its version; returns how many
    /// were removed.
    async fn outbox_remove(&self, done: &[OutboxEntry]) -> StoreResult<u64>;
    /// Queues every user holding an assignment here, and each of `others`
    /// (users the index says are here but may no longer be), so the relay
    /// re-derives their index entries: the membership index rebuilt from
    /// this shard. Returns how many users were queued.
    async fn outbox_requeue(&self, others: &[UserId]) -> StoreResult<u64>;
}
