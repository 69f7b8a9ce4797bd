//! The equivalent of `keystone-manage bootstrap`: the default domain, the
//! admin, manager, member, reader and service roles (admin ⇒ manager ⇒
//! member ⇒ reader; the pre-`manager` admin ⇒ member rule is removed), the admin
//! project and user, the admin's project and system roles, a region, and the
//! identity service with its three endpoints. Idempotent: running it again
//! changes nothing, except that a changed admin password (and, on a
//! standalone shard, a changed endpoint URL) is updated.
//!
//! On a federated shard the global part goes to the directory, where the
//! first member to bootstrap wins: role names are reserved in the names
//! index and the catalog entries have fixed ids, so concurrent bootstraps
//! converge on one set. The admin user and project are created by the first
//! member only, reserved in the names index and pinned to that member.

use crate::config::BootstrapConfig;
use crate::error::{Error, Result};
use crate::state::Shard;
use bytes::Bytes;
use keyfed_directory::{Bucket, DirectoryError};
use keyfed_shared::auth::Secret;
use keyfed_shared::federation::{name_key, pin_key, GlobalEntity};
use keyfed_shared::ids::{DomainId, EndpointId, ProjectId, RegionId, RoleId, ServiceId, UserId};
use keyfed_shared::model::{
    Assignment, Domain, Endpoint, ImpliedRole, Interface, Project, Region, Role, Service, Target,
    User, DEFAULT_DOMAIN_ID,
};
use keyfed_shared::revocation::RevocationSubject;
use serde_json::{json, Map};
use std::time::{Duration, Instant};

/// The roles bootstrap creates, as `keystone-manage bootstrap` does.
const ROLES: [&str; 5] = ["admin", "manager", "member", "reader", "service"];

/// For the ids of [`ROLES`]: the admin role, the implications admin ⇒
/// manager ⇒ member ⇒ reader, and the admin ⇒ member rule of deployments
/// bootstrapped before `manager` existed, to remove.
fn role_chain(ids: Vec<RoleId>) -> Result<(RoleId, [ImpliedRole; 3], ImpliedRole)> {
    let [admin, manager, member, reader, _service] =
        <[RoleId; 5]>::try_from(ids).map_err(|_| Error::Internal("bootstrap roles".into()))?;
    let rule = |prior: &RoleId, implied: &RoleId| ImpliedRole {
        prior: prior.clone(),
        implied: implied.clone(),
    };
    let chain = [
        rule(&admin, &manager),
        rule(&manager, &member),
        rule(&member, &reader),
    ];
    let stale = rule(&admin, &member);
    Ok((admin, chain, stale))
}

/// What bootstrap left in place.
#[derive(Debug)]
pub struct Bootstrapped {
    /// The admin user, when this shard holds it.
    pub admin_user_id: Option<UserId>,
    /// The admin project, when this shard holds it.
    pub admin_project_id: Option<ProjectId>,
}

fn default_domain() -> Domain {
    Domain {
        id: DomainId::new(DEFAULT_DOMAIN_ID),
        name: "Default".into(),
        description: "The default domain".into(),
        enabled: true,
    }
}

fn identity_service(id: ServiceId) -> Service {
    let mut extra = Map::new();
    extra.insert("name".into(), json!("keystone"));
    Service {
        id,
        service_type: "identity".into(),
        enabled: true,
        extra,
    }
}

fn endpoint_urls(shard: &Shard, config: &BootstrapConfig) -> [(Interface, String); 3] {
    let base = format!("{}/v3/", shard.public_url);
    let pick = |u: &Option<String>| u.clone().unwrap_or_else(|| base.clone());
    [
        (Interface::Public, pick(&config.public_url)),
        (Interface::Internal, pick(&config.internal_url)),
        (Interface::Admin, pick(&config.admin_url)),
    ]
}

/// Runs the bootstrap, then reloads global data.
pub async fn run(shard: &Shard, config: &BootstrapConfig) -> Result<Bootstrapped> {
    let admin = match &shard.federation {
        None => global_standalone(shard, config).await?,
        Some(_) => global_federated(shard, config).await?,
    };
    let result = admin_user_and_project(shard, config, &admin).await?;
    shard.reload_global().await?;
    tracing::info!(user = ?result.admin_user_id, project = ?result.admin_project_id, "bootstrap complete");
    Ok(result)
}

async fn ensure_role(shard: &Shard, name: &str) -> Result<RoleId> {
    let existing = shard.store.list_roles().await?;
    if let Some(role) = existing
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

/// Global data straight into the store; returns the admin role.
async fn global_standalone(shard: &Shard, config: &BootstrapConfig) -> Result<RoleId> {
    let store = &shard.store;
    let domain = default_domain();
    if store.get_domain(&domain.id).await?.is_none() {
        store.create_domain(&domain).await?;
    }
    let mut ids = Vec::with_capacity(ROLES.len());
    for name in ROLES {
        ids.push(ensure_role(shard, name).await?);
    }
    let (admin, chain, stale) = role_chain(ids)?;
    for rule in &chain {
        store.add_implied_role(rule).await?;
    }
    store.remove_implied_role(&stale).await?;
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
            let s = identity_service(ServiceId::generate());
            store.create_service(&s).await?;
            s
        }
    };
    let endpoints = store.list_endpoints().await?;
    for (interface, url) in endpoint_urls(shard, config) {
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
    Ok(admin)
}

/// Creates a global entity unless it exists (any member may have made it).
async fn create_if_absent(shard: &Shard, entity: GlobalEntity) -> Result<()> {
    match shard.create_global_now(entity).await {
        Ok(()) => Ok(()),
        Err(e) if e.to_api().kind == keyfed_shared::error::ErrorKind::Conflict => Ok(()),
        Err(e) => Err(e),
    }
}

/// The id of the global role `name`, creating it when no member has.
async fn federated_role(shard: &Shard, name: &str) -> Result<RoleId> {
    let names = shard
        .federation
        .as_ref()
        .ok_or_else(|| Error::Internal("not federated".into()))?
        .directory
        .kv(Bucket::Names);
    for _ in 0..3 {
        let found = names.get(&name_key::role(name)).await?;
        if let Some(entry) = found {
            return Ok(RoleId::new(
                String::from_utf8_lossy(&entry.value).into_owned(),
            ));
        }
        let role = Role {
            id: RoleId::generate(),
            name: name.to_owned(),
            domain_id: None,
            description: None,
        };
        create_if_absent(shard, GlobalEntity::Role(role)).await?;
    }
    Err(Error::Internal(format!(
        "cannot settle the id of role {name}"
    )))
}

/// A fixed id for a bootstrap catalog entry, so every member names it alike.
fn fixed_id(what: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("keyfed-bootstrap/{what}").as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Global data into the directory; returns the admin role.
async fn global_federated(shard: &Shard, config: &BootstrapConfig) -> Result<RoleId> {
    create_if_absent(shard, GlobalEntity::Domain(default_domain())).await?;
    let mut ids = Vec::with_capacity(ROLES.len());
    for name in ROLES {
        ids.push(federated_role(shard, name).await?);
    }
    let (admin, chain, stale) = role_chain(ids)?;
    for rule in chain {
        create_if_absent(shard, GlobalEntity::Implied(rule)).await?;
    }
    shard.delete_global(GlobalEntity::Implied(stale)).await?;
    let region_id = RegionId::new(config.region_id.as_str());
    create_if_absent(
        shard,
        GlobalEntity::Region(Region {
            id: region_id.clone(),
            description: String::new(),
            parent_region_id: None,
        }),
    )
    .await?;
    let service = identity_service(ServiceId::new(fixed_id("identity-service")));
    create_if_absent(shard, GlobalEntity::Service(service.clone())).await?;
    let explicit = [&config.public_url, &config.internal_url, &config.admin_url];
    for ((interface, url), explicit) in endpoint_urls(shard, config).into_iter().zip(explicit) {
        let endpoint = Endpoint {
            id: EndpointId::new(fixed_id(&format!(
                "identity-endpoint/{}",
                interface.as_str()
            ))),
            interface,
            region_id: Some(region_id.clone()),
            service_id: service.id.clone(),
            url,
            enabled: true,
        };
        // A URL set in the config is authoritative (e.g. the gateway's
        // address); a default one only fills an empty catalog.
        let entity = GlobalEntity::Endpoint(endpoint);
        if explicit.is_some() && shard.update_global_now(entity.clone()).await? {
            continue;
        }
        create_if_absent(shard, entity).await?;
    }
    // Entries made by another member reach this store through the mirror.
    let deadline = Instant::now() + Duration::from_secs(10);
    while shard
        .store
        .get_domain(&DomainId::new(DEFAULT_DOMAIN_ID))
        .await?
        .is_none()
        || shard.store.get_role(&admin).await?.is_none()
    {
        if Instant::now() > deadline {
            return Err(Error::Internal(
                "global data did not reach the local store in time".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(admin)
}

/// Reserves `key` in the names index for `id`; `Ok(false)` when another
/// entity holds it.
async fn reserve(shard: &Shard, key: &str, id: &str) -> Result<bool> {
    let Some(f) = &shard.federation else {
        return Ok(true);
    };
    let names = f.directory.kv(Bucket::Names);
    match names.create(key, Bytes::from(id.to_owned())).await {
        Ok(_) => Ok(true),
        Err(DirectoryError::AlreadyExists) => {
            let held = names.get(key).await?;
            Ok(held.is_some_and(|e| e.value.as_ref() == id.as_bytes()))
        }
        Err(e) => Err(Error::Directory(e)),
    }
}

async fn pin(shard: &Shard, key: String) -> Result<()> {
    if let Some(f) = &shard.federation {
        f.directory
            .kv(Bucket::Pins)
            .put(&key, Bytes::from(shard.config.shard.id.clone()))
            .await?;
    }
    Ok(())
}

async fn admin_user_and_project(
    shard: &Shard,
    config: &BootstrapConfig,
    admin: &RoleId,
) -> Result<Bootstrapped> {
    let store = &shard.store;
    let domain_id = DomainId::new(DEFAULT_DOMAIN_ID);
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
            if !reserve(
                shard,
                &name_key::project(&domain_id, &p.name),
                p.id.as_str(),
            )
            .await?
            {
                tracing::info!("another member holds the admin project; not creating it here");
                return Ok(Bootstrapped {
                    admin_user_id: None,
                    admin_project_id: None,
                });
            }
            store.create_project(&p).await?;
            pin(shard, pin_key::project(&p.id)).await?;
            p
        }
    };

    let password = Secret::new(
        config
            .password()
            .map_err(|e| Error::Internal(e.to_string()))?,
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
            if !reserve(shard, &name_key::user(&domain_id, &u.name), u.id.as_str()).await? {
                tracing::info!("another member holds the admin user; not creating it here");
                return Ok(Bootstrapped {
                    admin_user_id: None,
                    admin_project_id: Some(project.id),
                });
            }
            let hash = shard.hasher.hash(&password).await?;
            store.create_user(&u, Some(&hash)).await?;
            pin(shard, pin_key::user(&u.id)).await?;
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
    Ok(Bootstrapped {
        admin_user_id: Some(user.id),
        admin_project_id: Some(project.id),
    })
}
