//! Keystone's default policy (secure RBAC, scope enforcement on), as
//! `keystone/common/policies/*.py` defines it: per operation, the token
//! scopes it accepts (`scope_types`) and the check on the caller's roles
//! and scope against the target's attributes. Shards and gateways both
//! decide here, so they cannot disagree.
//!
//! Callers build [`Credentials`] from a validated token (roles are the
//! **global** roles the token's roles imply: a domain-specific role never
//! matches a rule by name), load the target entity, describe it as a
//! [`Target`] and ask [`authorize`]. The personas are the roles `admin`,
//! `manager`, `member` and `reader` (bootstrapped admin ⇒ manager ⇒ member
//! ⇒ reader) on the system, a domain or a project, plus `service`.
//!
//! As in Keystone, `admin` on any scope an operation accepts passes
//! `admin_required` (the admin role is global); the domain-confined
//! delegate is `manager`.

use crate::global::GlobalData;
use crate::ids::{DomainId, ProjectId, UserId};
use crate::token::{Claims, Scope};

/// The roles the default rules name, as held by the caller on its scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    pub admin: bool,
    pub manager: bool,
    pub member: bool,
    pub reader: bool,
    pub service: bool,
}

impl Roles {
    /// The roles among `names` (role names of global roles only).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut roles = Self::default();
        for name in names {
            match name {
                "admin" => roles.admin = true,
                "manager" => roles.manager = true,
                "member" => roles.member = true,
                "reader" => roles.reader = true,
                "service" => roles.service = true,
                _ => {}
            }
        }
        roles
    }
}

/// Who is calling: the token's user and scope, and its roles.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub user_id: &'a UserId,
    pub scope: &'a Scope,
    pub roles: Roles,
}

impl<'a> Credentials<'a> {
    /// The credentials of a validated token: its roles with their implied
    /// roles, global roles only (Keystone never puts a domain-specific role
    /// in a token, only the global roles it implies).
    pub fn from_claims(claims: &'a Claims, global: &GlobalData) -> Self {
        let roles = global.token_roles(&claims.roles);
        let names = roles
            .iter()
            .filter_map(|id| global.roles.get(id))
            .map(|r| r.name.as_str());
        Self {
            user_id: &claims.user_id,
            scope: &claims.scope,
            roles: Roles::from_names(names),
        }
    }

    /// The domain of a domain-scoped token (Keystone's `domain_id`
    /// credential): lists answered to it are filtered to this domain.
    pub fn domain_scope(&self) -> Option<&'a DomainId> {
        match self.scope {
            Scope::Domain { id } => Some(id),
            _ => None,
        }
    }

    fn project_scope(&self) -> Option<(&'a ProjectId, &'a DomainId)> {
        match self.scope {
            Scope::Project { id, domain_id, .. } => Some((id, domain_id)),
            _ => None,
        }
    }

    /// The scope type oslo.policy enforces: an unscoped token counts as
    /// project scope (it holds no role, so only ownership checks pass).
    fn scope_type(&self) -> ScopeType {
        match self.scope {
            Scope::System => ScopeType::System,
            Scope::Domain { .. } => ScopeType::Domain,
            Scope::Project { .. } | Scope::Unscoped => ScopeType::Project,
        }
    }

    fn in_domain(&self, domain: Option<&DomainId>) -> bool {
        domain.is_some() && self.domain_scope() == domain
    }

    fn system_reader(&self) -> bool {
        self.roles.reader && *self.scope == Scope::System
    }

    /// `rule:admin_required or (role:reader and system_scope:all)`.
    fn admin_or_system_reader(&self) -> bool {
        self.roles.admin || self.system_reader()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScopeType {
    System,
    Domain,
    Project,
}

/// The user a target names, with its domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub id: UserId,
    pub domain_id: DomainId,
}

/// The project a target names, with its domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRef {
    pub id: ProjectId,
    pub domain_id: DomainId,
}

/// The role a grant or role call names: its name, and its domain when it is
/// domain-specific.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRef {
    pub name: String,
    pub domain_id: Option<DomainId>,
}

/// What an operation acts on: Keystone's policy target, with the
/// attributes the default rules read. Unknown parts stay `None` and match
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// A domain (`target.domain.id`), or the domain a list is confined to
    /// (`target.domain_id`).
    pub domain_id: Option<DomainId>,
    pub project: Option<ProjectRef>,
    pub user: Option<UserRef>,
    pub role: Option<RoleRef>,
    /// The user of a token being validated, checked or revoked.
    pub token_user: Option<UserId>,
}

impl Target {
    /// No target (creating global data, listing the catalog, ...).
    pub fn none() -> Self {
        Self::default()
    }

    /// A domain.
    pub fn domain(id: DomainId) -> Self {
        Self {
            domain_id: Some(id),
            ..Self::default()
        }
    }

    /// A project.
    pub fn project(id: ProjectId, domain_id: DomainId) -> Self {
        Self {
            project: Some(ProjectRef { id, domain_id }),
            ..Self::default()
        }
    }

    /// A user.
    pub fn user(id: UserId, domain_id: DomainId) -> Self {
        Self {
            user: Some(UserRef { id, domain_id }),
            ..Self::default()
        }
    }

    /// A role.
    pub fn role(name: impl Into<String>, domain_id: Option<DomainId>) -> Self {
        Self {
            role: Some(RoleRef {
                name: name.into(),
                domain_id,
            }),
            ..Self::default()
        }
    }

    /// A token of `user`.
    pub fn token(user: UserId) -> Self {
        Self {
            token_user: Some(user),
            ..Self::default()
        }
    }

    /// A list: confined to the caller's domain when its token is
    /// domain-scoped (Keystone then filters the answer to that domain),
    /// else to the `domain_id` filter of the request, if any.
    pub fn list(caller: &Credentials<'_>, filter: Option<DomainId>) -> Self {
        Self {
            domain_id: caller.domain_scope().cloned().or(filter),
            ..Self::default()
        }
    }

    /// Adds the user of a grant or of a per-user list.
    pub fn with_user(mut self, id: UserId, domain_id: DomainId) -> Self {
        self.user = Some(UserRef { id, domain_id });
        self
    }

    /// Adds the role of a grant.
    pub fn with_role(mut self, name: impl Into<String>, domain_id: Option<DomainId>) -> Self {
        self.role = Some(RoleRef {
            name: name.into(),
            domain_id,
        });
        self
    }
}

/// The operations the shard's API serves, named after Keystone's policy
/// rules (`identity:<rule>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    GetDomain,
    ListDomains,
    CreateDomain,
    UpdateDomain,
    DeleteDomain,
    GetProject,
    ListProjects,
    /// `GET /v3/users/{user}/projects`.
    ListUserProjects,
    CreateProject,
    UpdateProject,
    DeleteProject,
    GetUser,
    ListUsers,
    CreateUser,
    UpdateUser,
    DeleteUser,
    /// Get, update and delete of a global role; of a domain-specific role
    /// (`target.role.domain_id` set) they follow the `*_domain_role` rules.
    GetRole,
    ListRoles,
    /// `GET /v3/roles?domain_id=...`.
    ListDomainRoles,
    CreateRole,
    UpdateRole,
    DeleteRole,
    GetImpliedRole,
    ListImpliedRoles,
    CreateImpliedRole,
    DeleteImpliedRole,
    ListRoleInferenceRules,
    /// Grants on projects and domains.
    CheckGrant,
    ListGrants,
    CreateGrant,
    RevokeGrant,
    /// Grants on the system.
    CheckSystemGrant,
    ListSystemGrants,
    CreateSystemGrant,
    RevokeSystemGrant,
    ListRoleAssignments,
    GetRegion,
    ListRegions,
    CreateRegion,
    UpdateRegion,
    DeleteRegion,
    GetService,
    ListServices,
    CreateService,
    UpdateService,
    DeleteService,
    GetEndpoint,
    ListEndpoints,
    CreateEndpoint,
    UpdateEndpoint,
    DeleteEndpoint,
    /// `HEAD /v3/auth/tokens`.
    CheckToken,
    /// `GET /v3/auth/tokens`.
    ValidateToken,
    /// `DELETE /v3/auth/tokens`.
    RevokeToken,
}

const ALL: &[ScopeType] = &[ScopeType::System, ScopeType::Domain, ScopeType::Project];
const NOT_DOMAIN: &[ScopeType] = &[ScopeType::System, ScopeType::Project];

/// The roles a domain manager may grant and read
/// (`rule:domain_managed_target_role`): nothing above `manager`.
fn domain_managed_role(target: &Target) -> bool {
    target
        .role
        .as_ref()
        .is_some_and(|r| matches!(r.name.as_str(), "manager" | "member" | "reader"))
}

/// `domain_id:%(target.user.domain_id)s and (domain_id:%(target.project.
/// domain_id)s or domain_id:%(target.domain.id)s)`: the grant's user and
/// its project or domain are all in the caller's domain.
fn grant_in_domain(c: &Credentials<'_>, t: &Target) -> bool {
    c.in_domain(t.user.as_ref().map(|u| &u.domain_id))
        && (c.in_domain(t.project.as_ref().map(|p| &p.domain_id))
            || c.in_domain(t.domain_id.as_ref()))
}

/// `domain_id:%(target.role.domain_id)s or None:%(target.role.domain_id)s`.
fn role_usable_in_domain(c: &Credentials<'_>, t: &Target) -> bool {
    t.role
        .as_ref()
        .is_some_and(|r| r.domain_id.is_none() || c.in_domain(r.domain_id.as_ref()))
}

fn is_owner(c: &Credentials<'_>, user: Option<&UserId>) -> bool {
    user == Some(c.user_id)
}

/// Whether `caller` may validate (`GET`, `head` false) or check (`HEAD`)
/// a token of `subject`: Keystone's `identity:validate_token` and
/// `identity:check_token`, one rule for shards and gateways. A token
/// validating itself — what services and clients do on every request —
/// passes at once: both rules accept the token's own user on every scope,
/// whatever its roles, so they need not be worked out.
pub fn may_check_token(caller: &Claims, subject: &Claims, head: bool, global: &GlobalData) -> bool {
    if caller.user_id == subject.user_id {
        return true;
    }
    let op = if head {
        Operation::CheckToken
    } else {
        Operation::ValidateToken
    };
    authorize(
        &Credentials::from_claims(caller, global),
        op,
        &Target::token(subject.user_id.clone()),
    )
}

/// Whether `caller` may perform `op` on `target`.
pub fn authorize(caller: &Credentials<'_>, op: Operation, target: &Target) -> bool {
    use Operation::*;
    let c = caller;
    let t = target;
    let domain_role = t.role.as_ref().is_some_and(|r| r.domain_id.is_some());
    let user_domain = t.user.as_ref().map(|u| &u.domain_id);
    let project_domain = t.project.as_ref().map(|p| &p.domain_id);
    let (scopes, allowed): (&[ScopeType], bool) = match op {
        GetDomain => (
            ALL,
            c.admin_or_system_reader()
                || c.in_domain(t.domain_id.as_ref())
                || (t.domain_id.is_some()
                    && c.project_scope().map(|(_, d)| d) == t.domain_id.as_ref()),
        ),
        ListDomains => (
            ALL,
            c.admin_or_system_reader() || (c.roles.reader && c.in_domain(t.domain_id.as_ref())),
        ),
        CreateDomain | UpdateDomain | DeleteDomain => (NOT_DOMAIN, c.roles.admin),
        GetProject => (
            ALL,
            c.admin_or_system_reader()
                || (c.roles.reader && c.in_domain(project_domain))
                || (t.project.is_some()
                    && c.project_scope().map(|(p, _)| p) == t.project.as_ref().map(|p| &p.id)),
        ),
        ListProjects | ListUsers => (
            ALL,
            c.admin_or_system_reader() || (c.roles.reader && c.in_domain(t.domain_id.as_ref())),
        ),
        ListUserProjects | GetUser => (
            ALL,
            c.admin_or_system_reader()
                || (c.roles.reader && c.in_domain(user_domain))
                || is_owner(c, t.user.as_ref().map(|u| &u.id)),
        ),
        CreateProject | UpdateProject | DeleteProject => (
            ALL,
            c.roles.admin || (c.roles.manager && c.in_domain(project_domain)),
        ),
        CreateUser | UpdateUser | DeleteUser => (
            ALL,
            c.roles.admin || (c.roles.manager && c.in_domain(user_domain)),
        ),
        GetRole if domain_role => (NOT_DOMAIN, c.admin_or_system_reader()),
        UpdateRole | DeleteRole | CreateRole if domain_role => (NOT_DOMAIN, c.roles.admin),
        GetRole => (
            ALL,
            c.admin_or_system_reader() || (c.roles.manager && domain_managed_role(t)),
        ),
        ListRoles => (
            ALL,
            c.admin_or_system_reader() || (c.roles.manager && c.domain_scope().is_some()),
        ),
        ListDomainRoles => (NOT_DOMAIN, c.admin_or_system_reader()),
        CreateRole | UpdateRole | DeleteRole => (NOT_DOMAIN, c.roles.admin),
        GetImpliedRole | ListImpliedRoles | ListRoleInferenceRules => {
            (NOT_DOMAIN, c.admin_or_system_reader())
        }
        CreateImpliedRole | DeleteImpliedRole => (NOT_DOMAIN, c.roles.admin),
        CheckGrant => (
            ALL,
            c.admin_or_system_reader()
                || (c.roles.reader && grant_in_domain(c, t) && role_usable_in_domain(c, t)),
        ),
        ListGrants => (
            ALL,
            c.admin_or_system_reader() || (c.roles.reader && grant_in_domain(c, t)),
        ),
        CreateGrant | RevokeGrant => (
            ALL,
            c.roles.admin || (c.roles.manager && grant_in_domain(c, t) && domain_managed_role(t)),
        ),
        CheckSystemGrant | ListSystemGrants => (NOT_DOMAIN, c.admin_or_system_reader()),
        CreateSystemGrant | RevokeSystemGrant => (NOT_DOMAIN, c.roles.admin),
        ListRoleAssignments => (
            ALL,
            c.admin_or_system_reader() || (c.roles.reader && c.in_domain(t.domain_id.as_ref())),
        ),
        GetRegion | ListRegions => (ALL, true),
        CreateRegion | UpdateRegion | DeleteRegion => (NOT_DOMAIN, c.roles.admin),
        GetService | ListServices | GetEndpoint | ListEndpoints => {
            (NOT_DOMAIN, c.admin_or_system_reader())
        }
        CreateService | UpdateService | DeleteService | CreateEndpoint | UpdateEndpoint
        | DeleteEndpoint => (NOT_DOMAIN, c.roles.admin),
        CheckToken => (
            ALL,
            c.admin_or_system_reader() || is_owner(c, t.token_user.as_ref()),
        ),
        ValidateToken => (
            ALL,
            c.admin_or_system_reader() || c.roles.service || is_owner(c, t.token_user.as_ref()),
        ),
        RevokeToken => (ALL, c.roles.admin || is_owner(c, t.token_user.as_ref())),
    };
    scopes.contains(&c.scope_type()) && allowed
}

#[cfg(test)]
mod tests;
