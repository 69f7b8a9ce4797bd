//! The catalog (regions in use, services owning endpoints) and revocation
//! events (every subject kind, expiry filtering, pruning).

use super::{assert_err, assert_sorted, extra, now_secs};
use crate::store::Store;
use keyfed_shared::ids::{AuditId, DomainId, EndpointId, ProjectId, RegionId, ServiceId, UserId};
use keyfed_shared::model::{Endpoint, Interface, Region, Service};
use keyfed_shared::revocation::{RevocationEvent, RevocationSubject};

pub(super) async fn run(s: &dyn Store) {
    regions(s).await;
    regions_in_use(s).await;
    services_and_endpoints(s).await;
    endpoint_references(s).await;
    revocations(s).await;
}

fn region(parent: Option<&RegionId>) -> Region {
    Region {
        id: RegionId::new(format!("Region-{}", RegionId::generate())),
        description: "conformance".into(),
        parent_region_id: parent.cloned(),
    }
}

fn service() -> Service {
    Service {
        id: ServiceId::generate(),
        service_type: "identity".into(),
        enabled: true,
        extra: extra(),
    }
}

fn endpoint(service: &ServiceId, region: Option<&RegionId>) -> Endpoint {
    Endpoint {
        id: EndpointId::generate(),
        interface: Interface::Public,
        region_id: region.cloned(),
        service_id: service.clone(),
        url: "https://keystone.example.org/v3".into(),
        enabled: true,
    }
}

async fn regions(s: &dyn Store) {
    let parent = region(None);
    s.create_region(&parent).await.expect("create region");
    let mut child = region(Some(&parent.id));
    s.create_region(&child).await.expect("create child region");
    let all = s.list_regions().await.unwrap();
    assert!(all.contains(&parent) && all.contains(&child));
    assert_sorted(&all, |r| r.id.clone(), "list_regions");
    assert_err!(
        s.create_region(&parent).await,
        Conflict,
        "duplicate region id"
    );

    child.description = "changed".into();
    child.parent_region_id = None;
    assert!(s.update_region(&child).await.unwrap());
    assert!(s.list_regions().await.unwrap().contains(&child));

    let orphan = region(Some(&RegionId::generate()));
    assert_err!(
        s.create_region(&orphan).await,
        MissingReference,
        "unknown parent"
    );
    assert!(!s.list_regions().await.unwrap().contains(&orphan));
    child.parent_region_id = Some(RegionId::generate());
    assert_err!(
        s.update_region(&child).await,
        MissingReference,
        "move under unknown parent"
    );

    assert!(s.delete_region(&child.id).await.unwrap());
    assert!(s.delete_region(&parent.id).await.unwrap());
    assert!(!s.delete_region(&parent.id).await.unwrap(), "second delete");
    assert!(
        !s.update_region(&parent).await.unwrap(),
        "update of a missing region"
    );
}

async fn regions_in_use(s: &dyn Store) {
    let parent = region(None);
    s.create_region(&parent).await.expect("create region");
    let child = region(Some(&parent.id));
    s.create_region(&child).await.expect("create child region");
    assert_err!(
        s.delete_region(&parent.id).await,
        InUse,
        "region with a child"
    );

    let svc = service();
    s.create_service(&svc).await.expect("create service");
    let ep = endpoint(&svc.id, Some(&child.id));
    s.create_endpoint(&ep).await.expect("create endpoint");
    assert_err!(
        s.delete_region(&child.id).await,
        InUse,
        "region with an endpoint"
    );
    assert!(
        s.list_regions().await.unwrap().contains(&child),
        "still there"
    );

    assert!(s.delete_endpoint(&ep.id).await.unwrap());
    assert!(s.delete_region(&child.id).await.unwrap());
    assert!(s.delete_region(&parent.id).await.unwrap());
    assert!(s.delete_service(&svc.id).await.unwrap());
}

async fn services_and_endpoints(s: &dyn Store) {
    let mut svc = service();
    s.create_service(&svc).await.expect("create service");
    let services = s.list_services().await.unwrap();
    assert!(services.contains(&svc));
    assert_sorted(&services, |x| x.id.clone(), "list_services");
    assert_err!(
        s.create_service(&svc).await,
        Conflict,
        "duplicate service id"
    );
    svc.service_type = "compute".into();
    svc.enabled = false;
    svc.extra.clear();
    assert!(s.update_service(&svc).await.unwrap());
    assert!(s.list_services().await.unwrap().contains(&svc));

    let r = region(None);
    s.create_region(&r).await.expect("create region");
    let mut ep = endpoint(&svc.id, Some(&r.id));
    s.create_endpoint(&ep).await.expect("create endpoint");
    let keep = endpoint(&svc.id, None);
    s.create_endpoint(&keep)
        .await
        .expect("create endpoint without region");
    let endpoints = s.list_endpoints().await.unwrap();
    assert!(endpoints.contains(&ep) && endpoints.contains(&keep));
    assert_sorted(&endpoints, |x| x.id.clone(), "list_endpoints");
    assert_err!(
        s.create_endpoint(&ep).await,
        Conflict,
        "duplicate endpoint id"
    );

    ep.interface = Interface::Admin;
    ep.url = "http://10.0.0.1:5000/v3".into();
    ep.region_id = None;
    ep.enabled = false;
    assert!(s.update_endpoint(&ep).await.unwrap());
    assert!(s.list_endpoints().await.unwrap().contains(&ep));
    assert!(s.delete_endpoint(&ep.id).await.unwrap());
    assert!(!s.delete_endpoint(&ep.id).await.unwrap(), "second delete");
    assert!(
        !s.update_endpoint(&ep).await.unwrap(),
        "update of a missing endpoint"
    );

    // Deleting the service takes its endpoints along.
    assert!(s.delete_service(&svc.id).await.unwrap());
    assert!(!s.list_endpoints().await.unwrap().contains(&keep));
    assert!(!s.list_services().await.unwrap().contains(&svc));
    assert!(!s.delete_service(&svc.id).await.unwrap(), "second delete");
    assert!(
        !s.update_service(&svc).await.unwrap(),
        "update of a missing service"
    );
    assert!(s.delete_region(&r.id).await.unwrap(), "region free again");
}

async fn endpoint_references(s: &dyn Store) {
    let svc = service();
    s.create_service(&svc).await.expect("create service");
    let r = region(None);
    s.create_region(&r).await.expect("create region");
    let orphan = endpoint(&ServiceId::generate(), None);
    assert_err!(
        s.create_endpoint(&orphan).await,
        MissingReference,
        "unknown service"
    );
    let lost = endpoint(&svc.id, Some(&RegionId::generate()));
    assert_err!(
        s.create_endpoint(&lost).await,
        MissingReference,
        "unknown region"
    );

    let mut ep = endpoint(&svc.id, Some(&r.id));
    s.create_endpoint(&ep).await.expect("create endpoint");
    let before = ep.clone();
    ep.service_id = ServiceId::generate();
    assert_err!(
        s.update_endpoint(&ep).await,
        MissingReference,
        "move to unknown service"
    );
    ep.service_id = svc.id.clone();
    ep.region_id = Some(RegionId::generate());
    assert_err!(
        s.update_endpoint(&ep).await,
        MissingReference,
        "move to unknown region"
    );
    assert!(
        s.list_endpoints().await.unwrap().contains(&before),
        "unchanged"
    );
    assert!(s.delete_service(&svc.id).await.unwrap());
    assert!(s.delete_region(&r.id).await.unwrap());
}

async fn revocations(s: &dyn Store) {
    let now = now_secs();
    let event = |subject, expires_at| RevocationEvent {
        subject,
        issued_before: now * 1_000_000,
        expires_at,
    };
    // Every subject kind survives a round trip.
    let kinds = [
        RevocationSubject::AuditId(AuditId::generate()),
        RevocationSubject::User(UserId::generate()),
        RevocationSubject::Project(ProjectId::generate()),
        RevocationSubject::UserOnProject(UserId::generate(), ProjectId::generate()),
        RevocationSubject::Domain(DomainId::generate()),
    ];
    let live: Vec<RevocationEvent> = kinds.into_iter().map(|k| event(k, now + 3600)).collect();
    for e in &live {
        s.add_revocation(e).await.expect("add revocation");
    }
    let listed = s.list_revocations(now).await.unwrap();
    let positions: Vec<usize> = live
        .iter()
        .map(|e| listed.iter().position(|l| l == e).expect("event listed"))
        .collect();
    assert_sorted(&positions, |p| *p, "events in insertion order");

    // Expiry: an event is listed while `expires_at` is after `now_secs`, and
    // pruned once it is at or before. Far-future instants keep this run's
    // cut-off clear of events other checks stored.
    let base = now + 100 * 365 * 24 * 3600;
    let old = event(RevocationSubject::AuditId(AuditId::generate()), base - 10);
    let edge = event(RevocationSubject::AuditId(AuditId::generate()), base);
    let young = event(RevocationSubject::AuditId(AuditId::generate()), base + 10);
    for e in [&old, &edge, &young] {
        s.add_revocation(e).await.expect("add revocation");
    }
    let at_base = s.list_revocations(base).await.unwrap();
    assert!(at_base.contains(&young), "live event listed");
    assert!(
        !at_base.contains(&old) && !at_base.contains(&edge),
        "expired events hidden"
    );
    assert!(s.list_revocations(base - 11).await.unwrap().contains(&old));

    let pruned = s.prune_revocations(base).await.unwrap();
    assert!(
        pruned >= 2,
        "pruned {pruned}, expected at least this run's two"
    );
    let remaining = s.list_revocations(i64::MIN).await.unwrap();
    assert!(
        !remaining.contains(&old) && !remaining.contains(&edge),
        "pruned"
    );
    assert!(remaining.contains(&young), "a live event survives pruning");
    assert_eq!(
        s.prune_revocations(base).await.unwrap(),
        0,
        "nothing left to prune"
    );
    assert!(s.prune_revocations(base + 10).await.unwrap() >= 1);
    assert!(!s.list_revocations(i64::MIN).await.unwrap().contains(&young));
}
