//! [`Store`] for [`PgStore`]: each method forwards to its resource module.

use super::{assignments, catalog, domains, outbox, projects, revocations, roles, users, PgStore};
use crate::store::{OutboxEntry, Store, StoreResult};
use async_trait::async_trait;
use keyfed_shared::ids::{DomainId, EndpointId, ProjectId, RegionId, RoleId, ServiceId, UserId};
use keyfed_shared::model::{
    Assignment, AssignmentFilter, Domain, Endpoint, ImpliedRole, ListFilter, Project, Region, Role,
    Service, User,
};
use keyfed_shared::revocation::RevocationEvent;

#[async_trait]
impl Store for PgStore {
    async fn create_domain(&self, domain: &Domain) -> StoreResult<()> {
        domains::create(self, domain).await
    }
    async fn get_domain(&self, id: &DomainId) -> StoreResult<Option<Domain>> {
        domains::get(self, id).await
    }
    async fn list_domains(&self) -> StoreResult<Vec<Domain>> {
        domains::list(self).await
    }
    async fn update_domain(&self, domain: &Domain) -> StoreResult<bool> {
        domains::update(self, domain).await
    }
    async fn delete_domain(&self, id: &DomainId) -> StoreResult<bool> {
        domains::delete(self, id).await
    }

    async fn create_project(&self, project: &Project) -> StoreResult<()> {
        projects::create(self, project).await
    }
    async fn get_project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        projects::get(self, id).await
    }
    async fn find_project(&self, domain: &DomainId, name: &str) -> StoreResult<Option<Project>> {
        projects::find(self, domain, name).await
    }
    async fn list_projects(&self, filter: &ListFilter) -> StoreResult<Vec<Project>> {
        projects::list(self, filter).await
    }
    async fn update_project(
        &self,
        project: &Project,
        revoke: Option<&RevocationEvent>,
    ) -> StoreResult<bool> {
        projects::update(self, project, revoke).await
    }
    async fn delete_project(&self, id: &ProjectId, revoke: &RevocationEvent) -> StoreResult<bool> {
        projects::delete(self, id, revoke).await
    }

    async fn create_user(&self, user: &User, password_hash: Option<&str>) -> StoreResult<()> {
        users::create(self, user, password_hash).await
    }
    async fn get_user(&self, id: &UserId) -> StoreResult<Option<User>> {
        users::get(self, id).await
    }
    async fn find_user(&self, domain: &DomainId, name: &str) -> StoreResult<Option<User>> {
        users::find(self, domain, name).await
    }
    async fn list_users(&self, filter: &ListFilter) -> StoreResult<Vec<User>> {
        users::list(self, filter).await
    }
    async fn password_hash(&self, id: &UserId) -> StoreResult<Option<String>> {
        users::password_hash(self, id).await
    }
    async fn update_user(
        &self,
        user: &User,
        password_hash: Option<&str>,
        revoke: Option<&RevocationEvent>,
    ) -> StoreResult<bool> {
        users::update(self, user, password_hash, revoke).await
    }
    async fn set_password(
        &self,
        id: &UserId,
        password_hash: &str,
        revoke: &RevocationEvent,
    ) -> StoreResult<bool> {
        users::set_password(self, id, password_hash, revoke).await
    }
    async fn delete_user(&self, id: &UserId, revoke: &RevocationEvent) -> StoreResult<bool> {
        users::delete(self, id, revoke).await
    }

    async fn create_role(&self, role: &Role) -> StoreResult<()> {
        roles::create(self, role).await
    }
    async fn get_role(&self, id: &RoleId) -> StoreResult<Option<Role>> {
        roles::get(self, id).await
    }
    async fn list_roles(&self) -> StoreResult<Vec<Role>> {
        roles::list(self).await
    }
    async fn update_role(&self, role: &Role) -> StoreResult<bool> {
        roles::update(self, role).await
    }
    async fn delete_role(&self, id: &RoleId) -> StoreResult<bool> {
        roles::delete(self, id).await
    }
    async fn add_implied_role(&self, rule: &ImpliedRole) -> StoreResult<bool> {
        roles::add_implied(self, rule).await
    }
    async fn remove_implied_role(&self, rule: &ImpliedRole) -> StoreResult<bool> {
        roles::remove_implied(self, rule).await
    }
    async fn list_implied_roles(&self) -> StoreResult<Vec<ImpliedRole>> {
        roles::list_implied(self).await
    }

    async fn grant(&self, assignment: &Assignment) -> StoreResult<bool> {
        assignments::grant(self, assignment).await
    }
    async fn revoke_grant(
        &self,
        assignment: &Assignment,
        revoke: &RevocationEvent,
    ) -> StoreResult<bool> {
        assignments::revoke(self, assignment, revoke).await
    }
    async fn list_assignments(&self, filter: &AssignmentFilter) -> StoreResult<Vec<Assignment>> {
        assignments::list(self, filter).await
    }

    async fn create_region(&self, region: &Region) -> StoreResult<()> {
        catalog::create_region(self, region).await
    }
    async fn list_regions(&self) -> StoreResult<Vec<Region>> {
        catalog::list_regions(self).await
    }
    async fn update_region(&self, region: &Region) -> StoreResult<bool> {
        catalog::update_region(self, region).await
    }
    async fn delete_region(&self, id: &RegionId) -> StoreResult<bool> {
        catalog::delete_region(self, id).await
    }
    async fn create_service(&self, service: &Service) -> StoreResult<()> {
        catalog::create_service(self, service).await
    }
    async fn list_services(&self) -> StoreResult<Vec<Service>> {
        catalog::list_services(self).await
    }
    async fn update_service(&self, service: &Service) -> StoreResult<bool> {
        catalog::update_service(self, service).await
    }
    async fn delete_service(&self, id: &ServiceId) -> StoreResult<bool> {
        catalog::delete_service(self, id).await
    }
    async fn create_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        catalog::create_endpoint(self, endpoint).await
    }
    async fn list_endpoints(&self) -> StoreResult<Vec<Endpoint>> {
        catalog::list_endpoints(self).await
    }
    async fn update_endpoint(&self, endpoint: &Endpoint) -> StoreResult<bool> {
        catalog::update_endpoint(self, endpoint).await
    }
    async fn delete_endpoint(&self, id: &EndpointId) -> StoreResult<bool> {
        catalog::delete_endpoint(self, id).await
    }

    async fn add_revocation(&self, event: &RevocationEvent) -> StoreResult<()> {
        revocations::add(self, event).await
    }
    async fn list_revocations(&self, now_secs: i64) -> StoreResult<Vec<RevocationEvent>> {
        revocations::list(self, now_secs).await
    }
    async fn prune_revocations(&self, now_secs: i64) -> StoreResult<u64> {
        revocations::prune(self, now_secs).await
    }

    async fn outbox_pending(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>> {
        outbox::pending(self, limit).await
    }
    async fn outbox_remove(&self, done: &[OutboxEntry]) -> StoreResult<u64> {
        outbox::remove(self, done).await
    }
    async fn outbox_requeue(&self, others: &[UserId]) -> StoreResult<u64> {
        outbox::requeue(self, others).await
    }
}
