//! The Keystone token body (`{"token": {...}}`) rendered from verified
//! claims and a global-data snapshot. Shards and gateways both answer token
//! validation with it, so it lives here: one rendering, byte-identical
//! responses whichever process validates.

use super::{Claims, Scope};
use crate::global::GlobalData;
use crate::time::keystone_timestamp;
use serde_json::{json, Value};

/// The `{"token": {...}}` body Keystone returns for `claims`. Names of the
/// user's and scope's domains and of roles (implied roles included) come
/// from `global`; the catalog is included for scoped tokens when
/// `with_catalog` (Keystone's `nocatalog` query parameter unset).
pub fn keystone_body(claims: &Claims, global: &GlobalData, with_catalog: bool) -> Value {
    let mut token = json!({
        "methods": claims.methods,
        "user": {
            "id": claims.user_id,
            "name": claims.user_name,
            "domain": {
                "id": claims.user_domain_id,
                "name": global.domain_name(&claims.user_domain_id),
            },
            "password_expires_at": null,
        },
        "audit_ids": claims.audit_ids,
        "expires_at": keystone_timestamp(claims.expires_at),
        "issued_at": keystone_timestamp(claims.issued_at),
    });
    if let Some(obj) = token.as_object_mut() {
        match &claims.scope {
            Scope::Unscoped => {}
            Scope::Project {
                id,
                name,
                domain_id,
            } => {
                obj.insert(
                    "project".into(),
                    json!({"id": id, "name": name, "domain": {
                        "id": domain_id, "name": global.domain_name(domain_id)}}),
                );
                obj.insert("is_domain".into(), Value::Bool(false));
            }
            Scope::Domain { id } => {
                obj.insert(
                    "domain".into(),
                    json!({"id": id, "name": global.domain_name(id)}),
                );
            }
            Scope::System => {
                obj.insert("system".into(), json!({"all": true}));
            }
        }
        if claims.scope != Scope::Unscoped {
            let roles = global.effective_roles(&claims.roles);
            obj.insert("roles".into(), Value::Array(global.role_refs(&roles)));
            if with_catalog {
                obj.insert("catalog".into(), global.catalog.as_ref().clone());
            }
        }
    }
    json!({ "token": token })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AuditId, DomainId, EndpointId, ProjectId, RoleId, ServiceId, UserId};
    use crate::model::{Domain, Endpoint, ImpliedRole, Interface, Role, Service};

    fn global() -> GlobalData {
        let role = |id: &str, name: &str| Role {
            id: RoleId::new(id),
            name: name.into(),
            domain_id: None,
            description: None,
        };
        GlobalData::new(
            vec![Domain {
                id: DomainId::new("default"),
                name: "Default".into(),
                description: String::new(),
                enabled: true,
            }],
            vec![role("r-admin", "admin"), role("r-member", "member")],
            vec![ImpliedRole {
                prior: RoleId::new("r-admin"),
                implied: RoleId::new("r-member"),
            }],
            vec![],
            vec![Service {
                id: ServiceId::new("svc"),
                service_type: "identity".into(),
                enabled: true,
                extra: Default::default(),
            }],
            vec![Endpoint {
                id: EndpointId::new("ep"),
                interface: Interface::Public,
                region_id: None,
                service_id: ServiceId::new("svc"),
                url: "http://keystone/v3".into(),
                enabled: true,
            }],
        )
    }

    fn claims(scope: Scope) -> Claims {
        Claims {
            user_id: UserId::new("u1"),
            user_name: "alice".into(),
            user_domain_id: DomainId::new("default"),
            methods: vec!["password".into()],
            issued_at: 1_700_000_000_000_000,
            expires_at: 1_700_003_600_000_000,
            audit_ids: vec![AuditId::new("audit")],
            scope,
            roles: vec![RoleId::new("r-admin"), RoleId::new("r-gone")],
        }
    }

    #[test]
    fn project_scoped_body() {
        let scope = Scope::Project {
            id: ProjectId::new("p1"),
            name: "demo".into(),
            domain_id: DomainId::new("default"),
        };
        let body = keystone_body(&claims(scope), &global(), true);
        let expected = json!({"token": {
            "methods": ["password"],
            "user": {
                "id": "u1",
                "name": "alice",
                "domain": {"id": "default", "name": "Default"},
                "password_expires_at": null,
            },
            "audit_ids": ["audit"],
            "expires_at": "2023-11-14T23:13:20.000000Z",
            "issued_at": "2023-11-14T22:13:20.000000Z",
            "project": {"id": "p1", "name": "demo", "domain": {"id": "default", "name": "Default"}},
            "is_domain": false,
            "roles": [{"id": "r-admin", "name": "admin"}, {"id": "r-member", "name": "member"}],
            "catalog": [{
                "endpoints": [{
                    "id": "ep", "interface": "public", "region": null,
                    "region_id": null, "url": "http://keystone/v3",
                }],
                "id": "svc", "type": "identity", "name": "",
            }],
        }});
        assert_eq!(body, expected);
        let without = keystone_body(
            &claims(Scope::Project {
                id: ProjectId::new("p1"),
                name: "demo".into(),
                domain_id: DomainId::new("default"),
            }),
            &global(),
            false,
        );
        assert!(without["token"].get("catalog").is_none());
    }

    #[test]
    fn other_scopes() {
        let g = global();
        let unscoped = keystone_body(&claims(Scope::Unscoped), &g, true);
        assert!(unscoped["token"].get("roles").is_none());
        assert!(unscoped["token"].get("catalog").is_none());
        let domain = keystone_body(
            &claims(Scope::Domain {
                id: DomainId::new("default"),
            }),
            &g,
            false,
        );
        assert_eq!(
            domain["token"]["domain"],
            json!({"id": "default", "name": "Default"})
        );
        let system = keystone_body(&claims(Scope::System), &g, false);
        assert_eq!(system["token"]["system"], json!({"all": true}));
        assert_eq!(system["token"]["roles"].as_array().map(Vec::len), Some(2));
    }
}
