//! The Keystone token body (`{"token": {...}}`) rendered from verified
//! claims and a global-data snapshot. Shards and gateways both answer token
//! validation with it, so it lives here: one rendering, byte-identical
//! responses whichever process validates.

use super::{Claims, Scope};
use crate::global::GlobalData;
use crate::ids::{AuditId, DomainId, ProjectId, RoleId, UserId};
use crate::time::keystone_timestamp;
use serde::Serialize;
use serde_json::Value;

#[derive(Serialize)]
struct Body<'a> {
    token: TokenOut<'a>,
}

#[derive(Serialize)]
struct NameRef<'a, I: Serialize> {
    id: &'a I,
    name: &'a str,
}

#[derive(Serialize)]
struct UserOut<'a> {
    id: &'a UserId,
    name: &'a str,
    domain: NameRef<'a, DomainId>,
    password_expires_at: Option<()>,
}

#[derive(Serialize)]
struct ProjectOut<'a> {
    id: &'a ProjectId,
    name: &'a str,
    domain: NameRef<'a, DomainId>,
}

#[derive(Serialize)]
struct SystemOut {
    all: bool,
}

#[derive(Serialize)]
struct TokenOut<'a> {
    methods: &'a [String],
    user: UserOut<'a>,
    audit_ids: &'a [AuditId],
    expires_at: String,
    issued_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<ProjectOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_domain: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<NameRef<'a, DomainId>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<SystemOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<NameRef<'a, RoleId>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog: Option<&'a Value>,
}

fn domain_ref<'a>(global: &'a GlobalData, id: &'a DomainId) -> NameRef<'a, DomainId> {
    NameRef {
        id,
        name: global.domain_name(id),
    }
}

/// Renders the body with borrowed data only: no JSON tree is built, the
/// catalog is serialized in place from the snapshot.
fn render<'a>(
    claims: &'a Claims,
    global: &'a GlobalData,
    roles: &'a [RoleId],
    with_catalog: bool,
) -> Body<'a> {
    let mut token = TokenOut {
        methods: &claims.methods,
        user: UserOut {
            id: &claims.user_id,
            name: &claims.user_name,
            domain: domain_ref(global, &claims.user_domain_id),
            password_expires_at: None,
        },
        audit_ids: &claims.audit_ids,
        expires_at: keystone_timestamp(claims.expires_at),
        issued_at: keystone_timestamp(claims.issued_at),
        project: None,
        is_domain: None,
        domain: None,
        system: None,
        roles: None,
        catalog: None,
    };
    match &claims.scope {
        Scope::Unscoped => {}
        Scope::Project {
            id,
            name,
            domain_id,
        } => {
            token.project = Some(ProjectOut {
                id,
                name,
                domain: domain_ref(global, domain_id),
            });
            token.is_domain = Some(false);
        }
        Scope::Domain { id } => token.domain = Some(domain_ref(global, id)),
        Scope::System => token.system = Some(SystemOut { all: true }),
    }
    if claims.scope != Scope::Unscoped {
        token.roles = Some(
            roles
                .iter()
                .filter_map(|id| global.roles.get(id))
                .map(|r| NameRef {
                    id: &r.id,
                    name: &r.name,
                })
                .collect(),
        );
        if with_catalog {
            token.catalog = Some(global.catalog.as_ref());
        }
    }
    Body { token }
}

/// The `{"token": {...}}` body Keystone returns for `claims`, serialized.
/// Names of the user's and scope's domains and of roles (implied roles
/// included) come from `global`; the catalog is included for scoped tokens
/// when `with_catalog` (Keystone's `nocatalog` query parameter unset).
pub fn keystone_body_bytes(claims: &Claims, global: &GlobalData, with_catalog: bool) -> Vec<u8> {
    let roles = global.token_roles(&claims.roles);
    serde_json::to_vec(&render(claims, global, &roles, with_catalog)).unwrap_or_default()
}

/// [`keystone_body_bytes`] as a JSON value.
pub fn keystone_body(claims: &Claims, global: &GlobalData, with_catalog: bool) -> Value {
    let roles = global.token_roles(&claims.roles);
    serde_json::to_value(render(claims, global, &roles, with_catalog)).unwrap_or(Value::Null)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ids::{AuditId, DomainId, EndpointId, ProjectId, RoleId, ServiceId, UserId};
    use crate::model::{Domain, Endpoint, ImpliedRole, Interface, Role, Service};
    use serde_json::json;

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

    pub(crate) fn claims(scope: Scope) -> Claims {
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
            shard_set: vec![],
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

    #[test]
    fn bytes_and_value_agree() {
        for scope in [
            Scope::Unscoped,
            Scope::System,
            Scope::Domain {
                id: DomainId::new("default"),
            },
            Scope::Project {
                id: ProjectId::new("p1"),
                name: "demo".into(),
                domain_id: DomainId::new("default"),
            },
        ] {
            let c = claims(scope);
            for with_catalog in [true, false] {
                let bytes = keystone_body_bytes(&c, &global(), with_catalog);
                let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                assert_eq!(parsed, keystone_body(&c, &global(), with_catalog));
            }
        }
    }
}
