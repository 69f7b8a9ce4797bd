//! Global data held in memory by every process: domains, roles and their
//! implications, and the catalog. Token validation reads names and the
//! catalog from here, so it needs no database. Holders rebuild a snapshot
//! when the data changes and swap it in atomically.

use crate::ids::{DomainId, RoleId};
use crate::model::{Domain, Endpoint, ImpliedRole, Region, Role, Service};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Roles no role may imply, as Keystone's `[assignment]
/// prohibited_implied_role` default: the API refuses such an implication
/// (403) and snapshots ignore one found in stored data, so no write that
/// bypassed the API can make a role grant `admin`.
pub const PROHIBITED_IMPLIED_ROLES: [&str; 1] = ["admin"];

/// Whether `role` may not be implied by another (see
/// [`PROHIBITED_IMPLIED_ROLES`]): a global role of such a name.
pub fn is_prohibited_implied(role: &Role) -> bool {
    role.domain_id.is_none() && PROHIBITED_IMPLIED_ROLES.contains(&role.name.as_str())
}

/// One consistent snapshot of global data.
#[derive(Debug, Default)]
pub struct GlobalData {
    pub domains: HashMap<DomainId, Domain>,
    pub roles: HashMap<RoleId, Role>,
    /// Direct implications: prior → implied.
    pub implied: HashMap<RoleId, Vec<RoleId>>,
    pub regions: Vec<Region>,
    pub services: Vec<Service>,
    pub endpoints: Vec<Endpoint>,
    /// The catalog as it appears in token bodies.
    pub catalog: Arc<Value>,
}

impl GlobalData {
    /// Builds a snapshot from the entities.
    pub fn new(
        domains: Vec<Domain>,
        roles: Vec<Role>,
        rules: Vec<ImpliedRole>,
        regions: Vec<Region>,
        services: Vec<Service>,
        endpoints: Vec<Endpoint>,
    ) -> Self {
        // One order wherever the snapshot was built (a directory snapshot,
        // a watch applied change by change, a store): by id, so every
        // member renders the same token body for the same token.
        let (mut services, mut endpoints) = (services, endpoints);
        services.sort_by(|a, b| a.id.cmp(&b.id));
        endpoints.sort_by(|a, b| a.id.cmp(&b.id));
        let roles: HashMap<RoleId, Role> = roles.into_iter().map(|r| (r.id.clone(), r)).collect();
        let mut implied: HashMap<RoleId, Vec<RoleId>> = HashMap::new();
        for r in rules {
            // Never written through the API; ignored wherever it came from.
            if roles.get(&r.implied).is_some_and(is_prohibited_implied) {
                continue;
            }
            implied.entry(r.prior).or_default().push(r.implied);
        }
        let catalog = Arc::new(build_catalog(&services, &endpoints));
        Self {
            domains: domains.into_iter().map(|d| (d.id.clone(), d)).collect(),
            roles,
            implied,
            regions,
            services,
            endpoints,
            catalog,
        }
    }

    /// A domain's name, or its id when unknown.
    pub fn domain_name<'a>(&'a self, id: &'a DomainId) -> &'a str {
        self.domains
            .get(id)
            .map_or(id.as_str(), |d| d.name.as_str())
    }

    /// Looks a domain up by name.
    pub fn domain_by_name(&self, name: &str) -> Option<&Domain> {
        self.domains.values().find(|d| d.name == name)
    }

    /// Looks a global role up by name.
    pub fn role_by_name(&self, name: &str) -> Option<&Role> {
        self.roles
            .values()
            .find(|r| r.name == name && r.domain_id.is_none())
    }

    /// The roles granted by holding `direct`, implied roles included, sorted.
    pub fn effective_roles<'a>(&self, direct: impl IntoIterator<Item = &'a RoleId>) -> Vec<RoleId> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<RoleId> = direct.into_iter().cloned().collect();
        while let Some(role) = stack.pop() {
            if self.roles.contains_key(&role) && seen.insert(role.clone()) {
                if let Some(next) = self.implied.get(&role) {
                    stack.extend(next.iter().cloned());
                }
            }
        }
        seen.into_iter().collect()
    }

    /// The roles a token carries for `direct` assignments: the effective
    /// roles, domain-specific ones left out (Keystone puts only the global
    /// roles a domain-specific role implies in tokens, and policy matches
    /// global roles only).
    pub fn token_roles<'a>(&self, direct: impl IntoIterator<Item = &'a RoleId>) -> Vec<RoleId> {
        let mut roles = self.effective_roles(direct);
        roles.retain(|id| self.roles.get(id).is_some_and(|r| r.domain_id.is_none()));
        roles
    }

    /// `[{"id", "name"}]` for role ids still known.
    pub fn role_refs(&self, ids: &[RoleId]) -> Vec<Value> {
        ids.iter()
            .filter_map(|id| self.roles.get(id))
            .map(|r| json!({"id": r.id, "name": r.name}))
            .collect()
    }
}

fn build_catalog(services: &[Service], endpoints: &[Endpoint]) -> Value {
    let entries: Vec<Value> = services
        .iter()
        .filter(|s| s.enabled)
        .map(|s| {
            let eps: Vec<Value> = endpoints
                .iter()
                .filter(|e| e.enabled && e.service_id == s.id)
                .map(|e| {
                    json!({
                        "id": e.id,
                        "interface": e.interface.as_str(),
                        "region": e.region_id,
                        "region_id": e.region_id,
                        "url": e.url,
                    })
                })
                .collect();
            json!({
                "endpoints": eps,
                "id": s.id,
                "type": s.service_type,
                "name": s.extra.get("name").cloned().unwrap_or(Value::String(String::new())),
            })
        })
        .collect();
    Value::Array(entries)
}
