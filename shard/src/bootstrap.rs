//! The equivalent of `keystone-manage bootstrap`: the default domain, the
//! admin, member and reader roles (admin ⇒ member ⇒ reader), the admin
//! project and user, the admin's project and system roles, a region, and the
//! identity service with its three endpoints. Idempotent: running it again
//! changes nothing, except that a changed admin password or endpoint URL is
//! updated.

use crate::config::BootstrapConfig;
use crate::error::Result;
use crate::state::Shard;
use keyfed_shared::auth::Secret;
use keyfed_shared::ids::{DomainId, EndpointId, ProjectId, RegionId, RoleId, ServiceId, UserId};
use keyfed_shared::model::{
    Assignment, Domain, Endpoint, ImpliedRole, Interface, Project, Region, Role, Service, Target,
    User, DEFAULT_DOMAIN_ID,
};
use keyfed_shared::revocation::RevocationSubject;
use serde_json::{json, Map};

/// What bootstrap left in place.
#[derive(Debug)]
pub struct Bootstrapped {
    pub admin_user_id: UserId,
    pub admin_project_id: ProjectId,
}

async fn ensure_role(shard: &Shard, name: &str) -> Result<RoleId> {
    if let Some(role) = shard
        .store
        .list_roles()
        .await?
        .into_iter()
        .find(|r| r.name == name && r.domain_id.is_none())
    {
        return Ok(role.id);
    }
    let role = Role {
        id: RoleId::generate(),
        name: name.to_owned(),
        domain_id: None,
        description: None,
    };
    shard.store.create_role(&role).await?;
    Ok(role.id)
}

/// Runs the bootstrap against the shard's store, then reloads global data.
pub async fn run(shard: &Shard, config: &BootstrapConfig) -> Result<Bootstrapped> {
    let store = &shard.store;
    let domain_id = DomainId::new(DEFAULT_DOMAIN_ID);
    if store.get_domain(&domain_id).await?.is_none() {
        store
            .create_domain(&Domain {
                id: domain_id.clone(),
                name: "Default".into(),
                description: "The default domain".into(),
                enabled: true,
            })
            .await?;
    }
    let admin = ensure_role(shard, "admin").await?;
    let member = ensure_role(shard, "member").await?;
    let reader = ensure_role(shard, "reader").await?;
    for (prior, implied) in [(&admin, &member), (&member, &reader)] {
        store
            .add_implied_role(&ImpliedRole {
                prior: prior.clone(),
                implied: implied.clone(),
            })
            .await?;
    }

    let project = match store.find_project(&domain_id, &config.project_name).await? {
        Some(p) => p,
        None => {
            let p = Project {
                id: ProjectId::generate(),
                name: config.project_name.clone(),
                domain_id: domain_id.clone(),
                description: "Bootstrap project for initializing the cloud.".into(),
                enabled: true,
                tags: vec![],
                extra: Map::new(),
            };
            store.create_project(&p).await?;
            p
        }
    };

    let password = Secret::new(
        config
            .password()
            .map_err(|e| crate::error::Error::Internal(e.to_string()))?,
    );
    let user = match store.find_user(&domain_id, &config.admin_username).await? {
        Some(u) => {
            let stored = store.password_hash(&u.id).await?;
            if !shard.hasher.verify(&password, stored.as_deref()).await? {
                let hash = shard.hasher.hash(&password).await?;
                let event = shard.revocation_event(RevocationSubject::User(u.id.clone()));
                store.set_password(&u.id, &hash, &event).await?;
                shard.apply_revocation(event);
                tracing::info!(user = %u.id, "bootstrap updated the admin password");
            }
            u
        }
        None => {
            let u = User {
                id: UserId::generate(),
                name: config.admin_username.clone(),
                domain_id: domain_id.clone(),
                enabled: true,
                default_project_id: None,
                extra: Map::new(),
            };
            let hash = shard.hasher.hash(&password).await?;
            store.create_user(&u, Some(&hash)).await?;
            u
        }
    };
    for target in [Target::Project(project.id.clone()), Target::System] {
        store
            .grant(&Assignment {
                user_id: user.id.clone(),
                target,
                role_id: admin.clone(),
            })
            .await?;
    }

    let region_id = RegionId::new(config.region_id.as_str());
    if !store
        .list_regions()
        .await?
        .iter()
        .any(|r| r.id == region_id)
    {
        store
            .create_region(&Region {
                id: region_id.clone(),
                description: String::new(),
                parent_region_id: None,
            })
            .await?;
    }
    let service = match store
        .list_services()
        .await?
        .into_iter()
        .find(|s| s.service_type == "identity")
    {
        Some(s) => s,
        None => {
            let mut extra = Map::new();
            extra.insert("name".into(), json!("keystone"));
            let s = Service {
                id: ServiceId::generate(),
                service_type: "identity".into(),
                enabled: true,
                extra,
            };
            store.create_service(&s).await?;
            s
        }
    };
    let base = format!("{}/v3/", shard.public_url);
    let urls = [
        (Interface::Public, config.public_url.clone()),
        (Interface::Internal, config.internal_url.clone()),
        (Interface::Admin, config.admin_url.clone()),
    ];
    let endpoints = store.list_endpoints().await?;
    for (interface, url) in urls {
        let url = url.unwrap_or_else(|| base.clone());
        let existing = endpoints.iter().find(|e| {
            e.service_id == service.id
                && e.interface == interface
                && e.region_id.as_ref() == Some(&region_id)
        });
        match existing {
            Some(e) if e.url == url => {}
            Some(e) => {
                store
                    .update_endpoint(&Endpoint { url, ..e.clone() })
                    .await?;
            }
            None => {
                store
                    .create_endpoint(&Endpoint {
                        id: EndpointId::generate(),
                        interface,
                        region_id: Some(region_id.clone()),
                        service_id: service.id.clone(),
                        url,
                        enabled: true,
                    })
                    .await?;
            }
        }
    }
    shard.reload_global().await?;
    tracing::info!(user = %user.id, project = %project.id, "bootstrap complete");
    Ok(Bootstrapped {
        admin_user_id: user.id,
        admin_project_id: project.id,
    })
}
