//! The embedded store's whole state, and the row types it is made of.
//!
//! Rows mirror the PostgreSQL tables wherever the API model's serde form
//! would not do: `extra` attributes are kept apart from named fields (a
//! flattened `extra` could collide with them on reload), and enums are
//! stored in the same encoding as the database columns. Domains, roles and
//! regions are plain structs and are stored in their model form. Maps and sets are ordered by
//! their keys' bytes, which is the order PostgreSQL's `COLLATE "C"` columns
//! list them in.

use keyfed_shared::ids::{
    AuditId, DomainId, EndpointId, ProjectId, RegionId, RoleId, ServiceId, UserId,
};
use keyfed_shared::model::{
    Assignment, Domain, Endpoint, Extra, ImpliedRole, Interface, Project, Region, Role, Service,
    Target, User,
};
use keyfed_shared::revocation::{RevocationEvent, RevocationSubject};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Everything the store holds. Cloned for every write (see the module docs
/// of `embedded`); fields default to empty so that a snapshot written before
/// a table existed still loads.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct State {
    pub domains: BTreeMap<DomainId, Domain>,
    pub projects: BTreeMap<ProjectId, ProjectRow>,
    pub users: BTreeMap<UserId, UserRow>,
    pub roles: BTreeMap<RoleId, Role>,
    pub implied_roles: BTreeSet<ImpliedRow>,
    pub assignments: BTreeSet<AssignmentRow>,
    pub regions: BTreeMap<RegionId, Region>,
    pub services: BTreeMap<ServiceId, ServiceRow>,
    pub endpoints: BTreeMap<EndpointId, EndpointRow>,
    /// In insertion order.
    pub revocations: Vec<RevocationRow>,
    /// The membership outbox: users whose assignments changed, with the
    /// version of their latest change (see `outbox`).
    pub membership_outbox: BTreeMap<UserId, u64>,
    /// The last outbox version handed out.
    pub outbox_version: u64,
}

/// A project, with `extra` kept apart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct ProjectRow {
    pub id: ProjectId,
    pub domain_id: DomainId,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub tags: Vec<String>,
    pub extra: Extra,
}

impl From<&Project> for ProjectRow {
    fn from(p: &Project) -> Self {
        ProjectRow {
            id: p.id.clone(),
            domain_id: p.domain_id.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            enabled: p.enabled,
            tags: p.tags.clone(),
            extra: p.extra.clone(),
        }
    }
}

impl From<&ProjectRow> for Project {
    fn from(r: &ProjectRow) -> Self {
        Project {
            id: r.id.clone(),
            name: r.name.clone(),
            domain_id: r.domain_id.clone(),
            description: r.description.clone(),
            enabled: r.enabled,
            tags: r.tags.clone(),
            extra: r.extra.clone(),
        }
    }
}

/// A user with their password hash, `extra` kept apart.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct UserRow {
    pub id: UserId,
    pub domain_id: DomainId,
    pub name: String,
    pub enabled: bool,
    pub default_project_id: Option<ProjectId>,
    pub password_hash: Option<String>,
    pub extra: Extra,
}

/// Redacts the password hash.
impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("domain_id", &self.domain_id)
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("default_project_id", &self.default_project_id)
            .field("has_password", &self.password_hash.is_some())
            .field("extra", &self.extra)
            .finish()
    }
}

impl UserRow {
    /// A row for `u`, with `password_hash`.
    pub fn new(u: &User, password_hash: Option<String>) -> Self {
        UserRow {
            id: u.id.clone(),
            domain_id: u.domain_id.clone(),
            name: u.name.clone(),
            enabled: u.enabled,
            default_project_id: u.default_project_id.clone(),
            password_hash,
            extra: u.extra.clone(),
        }
    }
}

impl From<&UserRow> for User {
    fn from(r: &UserRow) -> Self {
        User {
            id: r.id.clone(),
            name: r.name.clone(),
            domain_id: r.domain_id.clone(),
            enabled: r.enabled,
            default_project_id: r.default_project_id.clone(),
            extra: r.extra.clone(),
        }
    }
}

/// A catalog service, `extra` kept apart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct ServiceRow {
    pub id: ServiceId,
    #[serde(rename = "type")]
    pub service_type: String,
    pub enabled: bool,
    pub extra: Extra,
}

impl From<&Service> for ServiceRow {
    fn from(s: &Service) -> Self {
        ServiceRow {
            id: s.id.clone(),
            service_type: s.service_type.clone(),
            enabled: s.enabled,
            extra: s.extra.clone(),
        }
    }
}

impl From<&ServiceRow> for Service {
    fn from(r: &ServiceRow) -> Self {
        Service {
            id: r.id.clone(),
            service_type: r.service_type.clone(),
            enabled: r.enabled,
            extra: r.extra.clone(),
        }
    }
}

/// A catalog endpoint, the interface stored by its wire name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct EndpointRow {
    pub id: EndpointId,
    pub interface: String,
    pub region_id: Option<RegionId>,
    pub service_id: ServiceId,
    pub url: String,
    pub enabled: bool,
}

impl From<&Endpoint> for EndpointRow {
    fn from(e: &Endpoint) -> Self {
        EndpointRow {
            id: e.id.clone(),
            interface: e.interface.as_str().to_owned(),
            region_id: e.region_id.clone(),
            service_id: e.service_id.clone(),
            url: e.url.clone(),
            enabled: e.enabled,
        }
    }
}

impl EndpointRow {
    /// The model endpoint; `None` if the stored interface is unknown.
    pub fn to_model(&self) -> Option<Endpoint> {
        Some(Endpoint {
            id: self.id.clone(),
            interface: Interface::parse(&self.interface)?,
            region_id: self.region_id.clone(),
            service_id: self.service_id.clone(),
            url: self.url.clone(),
            enabled: self.enabled,
        })
    }
}

/// A role implication, ordered by `(prior, implied)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) struct ImpliedRow {
    pub prior: RoleId,
    pub implied: RoleId,
}

impl From<&ImpliedRole> for ImpliedRow {
    fn from(r: &ImpliedRole) -> Self {
        ImpliedRow {
            prior: r.prior.clone(),
            implied: r.implied.clone(),
        }
    }
}

impl From<&ImpliedRow> for ImpliedRole {
    fn from(r: &ImpliedRow) -> Self {
        ImpliedRole {
            prior: r.prior.clone(),
            implied: r.implied.clone(),
        }
    }
}

/// A role assignment encoded as in PostgreSQL: `target_type` is `project`,
/// `domain` or `system` (with `target_id` empty). Field order is the list
/// order: user, target type, target id, role.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) struct AssignmentRow {
    pub user_id: UserId,
    pub target_type: String,
    pub target_id: String,
    pub role_id: RoleId,
}

impl From<&Assignment> for AssignmentRow {
    fn from(a: &Assignment) -> Self {
        let (target_type, target_id) = match &a.target {
            Target::Project(p) => ("project", p.as_str()),
            Target::Domain(d) => ("domain", d.as_str()),
            Target::System => ("system", ""),
        };
        AssignmentRow {
            user_id: a.user_id.clone(),
            target_type: target_type.to_owned(),
            target_id: target_id.to_owned(),
            role_id: a.role_id.clone(),
        }
    }
}

impl AssignmentRow {
    /// The model assignment; `None` if the stored target type is unknown.
    pub fn to_model(&self) -> Option<Assignment> {
        let target = match self.target_type.as_str() {
            "project" => Target::Project(ProjectId::new(self.target_id.clone())),
            "domain" => Target::Domain(DomainId::new(self.target_id.clone())),
            "system" => Target::System,
            _ => return None,
        };
        Some(Assignment {
            user_id: self.user_id.clone(),
            target,
            role_id: self.role_id.clone(),
        })
    }

    /// The project this assignment is on, if any.
    pub fn project(&self) -> Option<&str> {
        (self.target_type == "project").then_some(self.target_id.as_str())
    }

    /// The domain this assignment is on, if any.
    pub fn domain(&self) -> Option<&str> {
        (self.target_type == "domain").then_some(self.target_id.as_str())
    }
}

/// A revocation event, encoded as in PostgreSQL: `kind` says which subject
/// fields are set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct RevocationRow {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_id: Option<String>,
    pub issued_before: i64,
    pub expires_at: i64,
}

impl From<&RevocationEvent> for RevocationRow {
    fn from(e: &RevocationEvent) -> Self {
        let s = |v: &str| Some(v.to_owned());
        let (kind, audit_id, user_id, project_id, domain_id) = match &e.subject {
            RevocationSubject::AuditId(a) => ("audit_id", s(a.as_str()), None, None, None),
            RevocationSubject::User(u) => ("user", None, s(u.as_str()), None, None),
            RevocationSubject::Project(p) => ("project", None, None, s(p.as_str()), None),
            RevocationSubject::UserOnProject(u, p) => {
                ("user_on_project", None, s(u.as_str()), s(p.as_str()), None)
            }
            RevocationSubject::Domain(d) => ("domain", None, None, None, s(d.as_str())),
        };
        RevocationRow {
            kind: kind.to_owned(),
            audit_id,
            user_id,
            project_id,
            domain_id,
            issued_before: e.issued_before,
            expires_at: e.expires_at,
        }
    }
}

impl RevocationRow {
    /// The model event; `None` if the kind is unknown or lacks a field.
    pub fn to_model(&self) -> Option<RevocationEvent> {
        let subject = match self.kind.as_str() {
            "audit_id" => RevocationSubject::AuditId(AuditId::new(self.audit_id.clone()?)),
            "user" => RevocationSubject::User(UserId::new(self.user_id.clone()?)),
            "project" => RevocationSubject::Project(ProjectId::new(self.project_id.clone()?)),
            "user_on_project" => RevocationSubject::UserOnProject(
                UserId::new(self.user_id.clone()?),
                ProjectId::new(self.project_id.clone()?),
            ),
            "domain" => RevocationSubject::Domain(DomainId::new(self.domain_id.clone()?)),
            _ => return None,
        };
        Some(RevocationEvent {
            subject,
            issued_before: self.issued_before,
            expires_at: self.expires_at,
        })
    }
}
