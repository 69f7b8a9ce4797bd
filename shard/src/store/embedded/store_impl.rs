//! [`Store`] for [`EmbeddedStore`]: reads work on a snapshot of the state;
//! writes hand owned copies of their arguments to [`EmbeddedStore::write`].

use super::EmbeddedStore;
use crate::store::{OutboxEntry, Store, StoreError, StoreResult};
use async_trait::async_trait;
use keyfed_shared::ids::{DomainId, EndpointId, ProjectId, RegionId, RoleId, ServiceId, UserId};
use keyfed_shared::model::{
    Assignment, AssignmentFilter, Domain, Endpoint, ImpliedRole, ListFilter, Project, Region, Role,
    Service, User,
};
use keyfed_shared::revocation::RevocationEvent;

/// A stored row that no longer decodes (the file was edited by hand).
fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt {what} in the store file"))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn create_domain(&self, domain: &Domain) -> StoreResult<()> {
        let d = domain.clone();
        self.write(move |s| s.create_domain(&d)).await
    }
    async fn get_domain(&self, id: &DomainId) -> StoreResult<Option<Domain>> {
        Ok(self.read().domains.get(id).cloned())
    }
    async fn list_domains(&self) -> StoreResult<Vec<Domain>> {
        Ok(self.read().domains.values().cloned().collect())
    }
    async fn update_domain(&self, domain: &Domain) -> StoreResult<bool> {
        let d = domain.clone();
        self.write(move |s| s.update_domain(&d)).await
    }
    async fn delete_domain(&self, id: &DomainId) -> StoreResult<bool> {
        let id = id.clone();
        self.write(move |s| s.delete_domain(&id)).await
    }

    async fn create_project(&self, project: &Project) -> StoreResult<()> {
        let p = project.clone();
        self.write(move |s| s.create_project(&p)).await
    }
    async fn get_project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        Ok(self.read().projects.get(id).map(Project::from))
    }
    async fn find_project(&self, domain: &DomainId, name: &str) -> StoreResult<Option<Project>> {
        let state = self.read();
        let found = state
            .projects
            .values()
            .find(|p| p.domain_id == *domain && p.name == name);
        Ok(found.map(Project::from))
    }
    async fn list_projects(&self, filter: &ListFilter) -> StoreResult<Vec<Project>> {
        let state = self.read();
        let rows = state.projects.values();
        Ok(rows
            .filter(|p| filter.matches(&p.name, &p.domain_id, p.enabled))
            .map(Project::from)
            .collect())
    }
    async fn update_project(
        &self,
        project: &Project,
        revoke: Option<&RevocationEvent>,
    ) -> StoreResult<bool> {
        let (p, r) = (project.clone(), revoke.cloned());
        self.write(move |s| s.update_project(&p, r.as_ref())).await
    }
    async fn delete_project(&self, id: &ProjectId, revoke: &RevocationEvent) -> StoreResult<bool> {
        let (id, r) = (id.clone(), revoke.clone());
        self.write(move |s| s.delete_project(&id, &r)).await
    }

    async fn create_user(&self, user: &User, password_hash: Option<&str>) -> StoreResult<()> {
        let (u, h) = (user.clone(), password_hash.map(str::to_owned));
        self.write(move |s| s.create_user(&u, h.as_deref())).await
    }
    async fn get_user(&self, id: &UserId) -> StoreResult<Option<User>> {
        Ok(self.read().users.get(id).map(User::from))
    }
    async fn find_user(&self, domain: &DomainId, name: &str) -> StoreResult<Option<User>> {
        let state = self.read();
        let found = state
            .users
            .values()
            .find(|u| u.domain_id == *domain && u.name == name);
        Ok(found.map(User::from))
    }
    async fn list_users(&self, filter: &ListFilter) -> StoreResult<Vec<User>> {
        let state = self.read();
        let rows = state.users.values();
        Ok(rows
            .filter(|u| filter.matches(&u.name, &u.domain_id, u.enabled))
            .map(User::from)
            .collect())
    }
    async fn password_hash(&self, id: &UserId) -> StoreResult<Option<String>> {
        Ok(self
            .read()
            .users
            .get(id)
            .and_then(|u| u.password_hash.clone()))
    }
    async fn update_user(
        &self,
        user: &User,
        password_hash: Option<&str>,
        revoke: Option<&RevocationEvent>,
    ) -> StoreResult<bool> {
        let (u, h, r) = (
            user.clone(),
            password_hash.map(str::to_owned),
            revoke.cloned(),
        );
        self.write(move |s| s.update_user(&u, h.as_deref(), r.as_ref()))
            .await
    }
    async fn set_password(
        &self,
        id: &UserId,
        password_hash: &str,
        revoke: &RevocationEvent,
    ) -> StoreResult<bool> {
        let (id, h, r) = (id.clone(), password_hash.to_owned(), revoke.clone());
        self.write(move |s| s.set_password(&id, &h, &r)).await
    }
    async fn delete_user(&self, id: &UserId, revoke: &RevocationEvent) -> StoreResult<bool> {
        let (id, r) = (id.clone(), revoke.clone());
        self.write(move |s| s.delete_user(&id, &r)).await
    }

    async fn create_role(&self, role: &Role) -> StoreResult<()> {
        let r = role.clone();
        self.write(move |s| s.create_role(&r)).await
    }
    async fn get_role(&self, id: &RoleId) -> StoreResult<Option<Role>> {
        Ok(self.read().roles.get(id).cloned())
    }
    async fn list_roles(&self) -> StoreResult<Vec<Role>> {
        Ok(self.read().roles.values().cloned().collect())
    }
    async fn update_role(&self, role: &Role) -> StoreResult<bool> {
        let r = role.clone();
        self.write(move |s| s.update_role(&r)).await
    }
    async fn delete_role(&self, id: &RoleId) -> StoreResult<bool> {
        let id = id.clone();
        self.write(move |s| s.delete_role(&id)).await
    }
    async fn add_implied_role(&self, rule: &ImpliedRole) -> StoreResult<bool> {
        let r = rule.clone();
        self.write(move |s| s.add_implied_role(&r)).await
    }
    async fn remove_implied_role(&self, rule: &ImpliedRole) -> StoreResult<bool> {
        let r = rule.clone();
        self.write(move |s| s.remove_implied_role(&r)).await
    }
    async fn list_implied_roles(&self) -> StoreResult<Vec<ImpliedRole>> {
        Ok(self
            .read()
            .implied_roles
            .iter()
            .map(ImpliedRole::from)
            .collect())
    }

    async fn grant(&self, assignment: &Assignment) -> StoreResult<bool> {
        let a = assignment.clone();
        self.write(move |s| s.grant(&a)).await
    }
    async fn revoke_grant(
        &self,
        assignment: &Assignment,
        revoke: &RevocationEvent,
    ) -> StoreResult<bool> {
        let (a, r) = (assignment.clone(), revoke.clone());
        self.write(move |s| s.revoke_grant(&a, &r)).await
    }
    async fn list_assignments(&self, filter: &AssignmentFilter) -> StoreResult<Vec<Assignment>> {
        let state = self.read();
        let mut out = Vec::new();
        for row in &state.assignments {
            let a = row.to_model().ok_or_else(|| corrupt("role assignment"))?;
            if filter.matches(&a) {
                out.push(a);
            }
        }
        Ok(out)
    }

    async fn create_region(&self, region: &Region) -> StoreResult<()> {
        let r = region.clone();
        self.write(move |s| s.create_region(&r)).await
    }
    async fn list_regions(&self) -> StoreResult<Vec<Region>> {
        Ok(self.read().regions.values().cloned().collect())
    }
    async fn update_region(&self, region: &Region) -> StoreResult<bool> {
        let r = region.clone();
        self.write(move |s| s.update_region(&r)).await
    }
    async fn delete_region(&self, id: &RegionId) -> StoreResult<bool> {
        let id = id.clone();
        self.write(move |s| s.delete_region(&id)).await
    }
    async fn create_service(&self, service: &Service) -> StoreResult<()> {
        let sv = service.clone();
        self.write(move |s| s.create_service(&sv)).await
    }
    async fn list_services(&self) -> StoreResult<Vec<Service>> {
        Ok(self.read().services.values().map(Service::from).collect())
    }
    async fn update_service(&self, service: &Service) -> StoreResult<bool> {
        let sv = service.clone();
        self.write(move |s| s.update_service(&sv)).await
    }
    async fn delete_service(&self, id: &ServiceId) -> StoreResult<bool> {
        let id = id.clone();
        self.write(move |s| s.delete_service(&id)).await
    }
    async fn create_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        let e = endpoint.clone();
        self.write(move |s| s.create_endpoint(&e)).await
    }
    async fn list_endpoints(&self) -> StoreResult<Vec<Endpoint>> {
        let state = self.read();
        let rows = state.endpoints.values();
        rows.map(|e| e.to_model().ok_or_else(|| corrupt("endpoint")))
            .collect()
    }
    async fn update_endpoint(&self, endpoint: &Endpoint) -> StoreResult<bool> {
        let e = endpoint.clone();
        self.write(move |s| s.update_endpoint(&e)).await
    }
    async fn delete_endpoint(&self, id: &EndpointId) -> StoreResult<bool> {
        let id = id.clone();
        self.write(move |s| s.delete_endpoint(&id)).await
    }

    async fn add_revocation(&self, event: &RevocationEvent) -> StoreResult<()> {
        let e = event.clone();
        self.write(move |s| s.add_revocation(&e)).await
    }
    async fn list_revocations(&self, now_secs: i64) -> StoreResult<Vec<RevocationEvent>> {
        let state = self.read();
        let live = state.revocations.iter().filter(|e| e.expires_at > now_secs);
        live.map(|e| e.to_model().ok_or_else(|| corrupt("revocation event")))
            .collect()
    }
    async fn prune_revocations(&self, now_secs: i64) -> StoreResult<u64> {
        self.write(move |s| s.prune_revocations(now_secs)).await
    }

    async fn outbox_pending(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>> {
        Ok(self.read().outbox_pending(limit))
    }
    async fn outbox_remove(&self, done: &[OutboxEntry]) -> StoreResult<u64> {
        let done = done.to_vec();
        self.write(move |s| s.outbox_remove(&done)).await
    }
    async fn outbox_requeue(&self, others: &[UserId]) -> StoreResult<u64> {
        let others = others.to_vec();
        self.write(move |s| s.outbox_requeue(&others)).await
    }
}
