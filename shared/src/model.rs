//! Keystone's entities as stored and served. Field names follow the Keystone
//! v3 JSON representation, so an entity serializes straight into a response
//! body (the API layer adds `links`).

use crate::ids::{DomainId, EndpointId, ProjectId, RegionId, RoleId, ServiceId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Extra attributes a client may attach to a user, project or service
/// (Keystone keeps unknown attributes, e.g. `email` on a user).
pub type Extra = Map<String, Value>;

/// The id of the domain that `keystone-manage bootstrap` creates.
pub const DEFAULT_DOMAIN_ID: &str = "default";

/// A domain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Domain {
    pub id: DomainId,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub enabled: bool,
}

/// A project (tenant). Projects are flat under their domain: `parent_id` is
/// the domain id, as Keystone reports for a top-level project.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub domain_id: DomainId,
    #[serde(default)]
    pub description: String,
    pub enabled: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// A user. The password hash is never part of this type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub domain_id: DomainId,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_project_id: Option<ProjectId>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// A role. Global roles have no domain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub id: RoleId,
    pub name: String,
    #[serde(default)]
    pub domain_id: Option<DomainId>,
    #[serde(default)]
    pub description: Option<String>,
}

/// One implication: holding `prior` also grants `implied`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImpliedRole {
    pub prior: RoleId,
    pub implied: RoleId,
}

/// A catalog region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Region {
    pub id: RegionId,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parent_region_id: Option<RegionId>,
}

/// A catalog service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: ServiceId,
    #[serde(rename = "type")]
    pub service_type: String,
    pub enabled: bool,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// Which interface an endpoint serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interface {
    Public,
    Internal,
    Admin,
}

impl Interface {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::Public => "public",
            Interface::Internal => "internal",
            Interface::Admin => "admin",
        }
    }
    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Interface::Public),
            "internal" => Some(Interface::Internal),
            "admin" => Some(Interface::Admin),
            _ => None,
        }
    }
}

/// A catalog endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: EndpointId,
    pub interface: Interface,
    #[serde(default)]
    pub region_id: Option<RegionId>,
    pub service_id: ServiceId,
    pub url: String,
    pub enabled: bool,
}

/// Where a role assignment applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Project(ProjectId),
    Domain(DomainId),
    System,
}

/// A user's role on a target.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Assignment {
    pub user_id: UserId,
    pub target: Target,
    pub role_id: RoleId,
}

/// Filters Keystone accepts on user and project lists.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListFilter {
    pub name: Option<String>,
    pub domain_id: Option<DomainId>,
    pub enabled: Option<bool>,
}

impl ListFilter {
    /// Whether an entity with these attributes passes the filter.
    pub fn matches(&self, name: &str, domain_id: &DomainId, enabled: bool) -> bool {
        self.name.as_deref().is_none_or(|n| n == name)
            && self.domain_id.as_ref().is_none_or(|d| d == domain_id)
            && self.enabled.is_none_or(|e| e == enabled)
    }
}

/// Filters on `GET /v3/role_assignments` (direct assignments; the API layer
/// expands `effective`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AssignmentFilter {
    pub user_id: Option<UserId>,
    pub target: Option<Target>,
    pub role_id: Option<RoleId>,
}

impl AssignmentFilter {
    /// Whether an assignment passes the filter.
    pub fn matches(&self, a: &Assignment) -> bool {
        self.user_id.as_ref().is_none_or(|u| *u == a.user_id)
            && self.target.as_ref().is_none_or(|t| *t == a.target)
            && self.role_id.as_ref().is_none_or(|r| *r == a.role_id)
    }
}
