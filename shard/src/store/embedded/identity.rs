//! Writes to domains, projects, users, roles and assignments, enforcing the
//! same rules, in the same order, as the PostgreSQL schema: uniqueness first
//! (`Conflict`), then references (`MissingReference`); cascades on delete.
//! Each function works on a private copy of the state (see `embedded`), so
//! returning an error part-way leaves nothing behind. Every change to
//! assignments records the users it touched in the membership outbox
//! (`outbox`), in the same state change.

use super::state::{AssignmentRow, ImpliedRow, ProjectRow, RevocationRow, State, UserRow};
use super::Outcome;
use crate::store::{StoreError, StoreResult};
use keyfed_shared::ids::{DomainId, ProjectId, RoleId, UserId};
use keyfed_shared::model::{Assignment, Domain, ImpliedRole, Project, Role, User};
use keyfed_shared::revocation::RevocationEvent;
use std::collections::BTreeSet;

fn conflict(what: &str) -> StoreError {
    StoreError::Conflict(what.to_owned())
}

fn missing(what: &str) -> StoreError {
    StoreError::MissingReference(what.to_owned())
}

impl State {
    fn require_domain(&self, id: &DomainId) -> StoreResult<()> {
        if self.domains.contains_key(id) {
            Ok(())
        } else {
            Err(missing("domain not found"))
        }
    }

    fn record(&mut self, revoke: Option<&RevocationEvent>) {
        if let Some(event) = revoke {
            self.revocations.push(RevocationRow::from(event));
        }
    }

    // --- domains

    pub fn create_domain(&mut self, d: &Domain) -> StoreResult<Outcome<()>> {
        if self.domains.contains_key(&d.id) {
            return Err(conflict("a domain with this id already exists"));
        }
        if self.domains.values().any(|o| o.name == d.name) {
            return Err(conflict("a domain with this name already exists"));
        }
        self.domains.insert(d.id.clone(), d.clone());
        Ok(Outcome::changed(()))
    }

    pub fn update_domain(&mut self, d: &Domain) -> StoreResult<Outcome<bool>> {
        if !self.domains.contains_key(&d.id) {
            return Ok(Outcome::unchanged(false));
        }
        if self
            .domains
            .values()
            .any(|o| o.id != d.id && o.name == d.name)
        {
            return Err(conflict("a domain with this name already exists"));
        }
        self.domains.insert(d.id.clone(), d.clone());
        Ok(Outcome::changed(true))
    }

    /// Deletes a domain with its projects, users and roles, and everything
    /// that cascades from those.
    pub fn delete_domain(&mut self, id: &DomainId) -> StoreResult<Outcome<bool>> {
        if self.domains.remove(id).is_none() {
            return Ok(Outcome::unchanged(false));
        }
        let projects: BTreeSet<ProjectId> = self
            .projects
            .values()
            .filter(|p| p.domain_id == *id)
            .map(|p| p.id.clone())
            .collect();
        let users: BTreeSet<UserId> = self
            .users
            .values()
            .filter(|u| u.domain_id == *id)
            .map(|u| u.id.clone())
            .collect();
        let roles: BTreeSet<RoleId> = self
            .roles
            .values()
            .filter(|r| r.domain_id.as_ref() == Some(id))
            .map(|r| r.id.clone())
            .collect();
        self.projects.retain(|k, _| !projects.contains(k));
        self.users.retain(|k, _| !users.contains(k));
        self.roles.retain(|k, _| !roles.contains(k));
        self.implied_roles
            .retain(|r| !roles.contains(&r.prior) && !roles.contains(&r.implied));
        self.drop_assignments(|a| {
            users.contains(&a.user_id)
                || roles.contains(&a.role_id)
                || a.domain() == Some(id.as_str())
                || a.project()
                    .is_some_and(|p| projects.contains(&ProjectId::new(p)))
        });
        Ok(Outcome::changed(true))
    }

    // --- projects

    fn project_rules(&self, p: &Project) -> StoreResult<()> {
        if self
            .projects
            .values()
            .any(|o| o.id != p.id && o.domain_id == p.domain_id && o.name == p.name)
        {
            return Err(conflict(
                "a project with this name already exists in the domain",
            ));
        }
        self.require_domain(&p.domain_id)
    }

    pub fn create_project(&mut self, p: &Project) -> StoreResult<Outcome<()>> {
        if self.projects.contains_key(&p.id) {
            return Err(conflict("a project with this id already exists"));
        }
        self.project_rules(p)?;
        self.projects.insert(p.id.clone(), ProjectRow::from(p));
        Ok(Outcome::changed(()))
    }

    pub fn update_project(
        &mut self,
        p: &Project,
        revoke: Option<&RevocationEvent>,
    ) -> StoreResult<Outcome<bool>> {
        if !self.projects.contains_key(&p.id) {
            return Ok(Outcome::unchanged(false));
        }
        self.project_rules(p)?;
        self.projects.insert(p.id.clone(), ProjectRow::from(p));
        self.record(revoke);
        Ok(Outcome::changed(true))
    }

    pub fn delete_project(
        &mut self,
        id: &ProjectId,
        revoke: &RevocationEvent,
    ) -> StoreResult<Outcome<bool>> {
        if self.projects.remove(id).is_none() {
            return Ok(Outcome::unchanged(false));
        }
        self.drop_assignments(|a| a.project() == Some(id.as_str()));
        self.record(Some(revoke));
        Ok(Outcome::changed(true))
    }

    // --- users

    fn user_rules(&self, u: &User) -> StoreResult<()> {
        if self
            .users
            .values()
            .any(|o| o.id != u.id && o.domain_id == u.domain_id && o.name == u.name)
        {
            return Err(conflict(
                "a user with this name already exists in the domain",
            ));
        }
        self.require_domain(&u.domain_id)
    }

    pub fn create_user(&mut self, u: &User, hash: Option<&str>) -> StoreResult<Outcome<()>> {
        if self.users.contains_key(&u.id) {
            return Err(conflict("a user with this id already exists"));
        }
        self.user_rules(u)?;
        let row = UserRow::new(u, hash.map(str::to_owned));
        self.users.insert(u.id.clone(), row);
        Ok(Outcome::changed(()))
    }

    pub fn update_user(
        &mut self,
        u: &User,
        hash: Option<&str>,
        revoke: Option<&RevocationEvent>,
    ) -> StoreResult<Outcome<bool>> {
        let Some(old) = self.users.get(&u.id) else {
            return Ok(Outcome::unchanged(false));
        };
        let hash = hash
            .map(str::to_owned)
            .or_else(|| old.password_hash.clone());
        self.user_rules(u)?;
        self.users.insert(u.id.clone(), UserRow::new(u, hash));
        self.record(revoke);
        Ok(Outcome::changed(true))
    }

    pub fn set_password(
        &mut self,
        id: &UserId,
        hash: &str,
        revoke: &RevocationEvent,
    ) -> StoreResult<Outcome<bool>> {
        let Some(row) = self.users.get_mut(id) else {
            return Ok(Outcome::unchanged(false));
        };
        row.password_hash = Some(hash.to_owned());
        self.record(Some(revoke));
        Ok(Outcome::changed(true))
    }

    pub fn delete_user(
        &mut self,
        id: &UserId,
        revoke: &RevocationEvent,
    ) -> StoreResult<Outcome<bool>> {
        if self.users.remove(id).is_none() {
            return Ok(Outcome::unchanged(false));
        }
        self.drop_assignments(|a| a.user_id == *id);
        self.record(Some(revoke));
        Ok(Outcome::changed(true))
    }

    // --- roles

    fn role_rules(&self, r: &Role) -> StoreResult<()> {
        // As the database's unique index on (coalesce(domain_id, ''), name).
        fn scope(role: &Role) -> &str {
            role.domain_id.as_ref().map_or("", DomainId::as_str)
        }
        if self
            .roles
            .values()
            .any(|o| o.id != r.id && scope(o) == scope(r) && o.name == r.name)
        {
            return Err(conflict("a role with this name already exists"));
        }
        match &r.domain_id {
            Some(d) => self.require_domain(d),
            None => Ok(()),
        }
    }

    pub fn create_role(&mut self, r: &Role) -> StoreResult<Outcome<()>> {
        if self.roles.contains_key(&r.id) {
            return Err(conflict("a role with this id already exists"));
        }
        self.role_rules(r)?;
        self.roles.insert(r.id.clone(), r.clone());
        Ok(Outcome::changed(()))
    }

    pub fn update_role(&mut self, r: &Role) -> StoreResult<Outcome<bool>> {
        if !self.roles.contains_key(&r.id) {
            return Ok(Outcome::unchanged(false));
        }
        self.role_rules(r)?;
        self.roles.insert(r.id.clone(), r.clone());
        Ok(Outcome::changed(true))
    }

    pub fn delete_role(&mut self, id: &RoleId) -> StoreResult<Outcome<bool>> {
        if self.roles.remove(id).is_none() {
            return Ok(Outcome::unchanged(false));
        }
        self.implied_roles
            .retain(|r| r.prior != *id && r.implied != *id);
        self.drop_assignments(|a| a.role_id == *id);
        Ok(Outcome::changed(true))
    }

    pub fn add_implied_role(&mut self, rule: &ImpliedRole) -> StoreResult<Outcome<bool>> {
        let row = ImpliedRow::from(rule);
        if self.implied_roles.contains(&row) {
            return Ok(Outcome::unchanged(false));
        }
        if !self.roles.contains_key(&row.prior) {
            return Err(missing("prior role not found"));
        }
        if !self.roles.contains_key(&row.implied) {
            return Err(missing("implied role not found"));
        }
        self.implied_roles.insert(row);
        Ok(Outcome::changed(true))
    }

    pub fn remove_implied_role(&mut self, rule: &ImpliedRole) -> StoreResult<Outcome<bool>> {
        let removed = self.implied_roles.remove(&ImpliedRow::from(rule));
        Ok(Outcome::changed_if(removed))
    }

    // --- assignments

    pub fn grant(&mut self, a: &Assignment) -> StoreResult<Outcome<bool>> {
        let row = AssignmentRow::from(a);
        if self.assignments.contains(&row) {
            return Ok(Outcome::unchanged(false));
        }
        if !self.users.contains_key(&row.user_id) {
            return Err(missing("user not found"));
        }
        if !self.roles.contains_key(&row.role_id) {
            return Err(missing("role not found"));
        }
        if let Some(p) = row.project() {
            if !self.projects.contains_key(&ProjectId::new(p)) {
                return Err(missing("project not found"));
            }
        }
        if let Some(d) = row.domain() {
            if !self.domains.contains_key(&DomainId::new(d)) {
                return Err(missing("domain not found"));
            }
        }
        self.note_membership(&row.user_id);
        self.assignments.insert(row);
        Ok(Outcome::changed(true))
    }

    pub fn revoke_grant(
        &mut self,
        a: &Assignment,
        revoke: &RevocationEvent,
    ) -> StoreResult<Outcome<bool>> {
        if !self.assignments.remove(&AssignmentRow::from(a)) {
            return Ok(Outcome::unchanged(false));
        }
        self.note_membership(&a.user_id);
        self.record(Some(revoke));
        Ok(Outcome::changed(true))
    }
}
