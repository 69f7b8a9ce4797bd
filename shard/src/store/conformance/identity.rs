//! Domains, projects and users: CRUD, unique names, references, list
//! filters, and revocation events written with the change or not at all.

use super::{
    assert_err, assert_sorted, domain, marker, name, new_domain, new_project, new_user, project,
    stored, user,
};
use crate::store::Store;
use keyfed_shared::ids::{DomainId, ProjectId, UserId};
use keyfed_shared::model::{ListFilter, Project};

pub(super) async fn run(s: &dyn Store) {
    domain_crud(s).await;
    domain_names_are_unique(s).await;
    project_crud(s).await;
    project_rules(s).await;
    project_list_filters(s).await;
    user_crud(s).await;
    user_passwords(s).await;
    user_rules(s).await;
    user_list_filters(s).await;
}

async fn domain_crud(s: &dyn Store) {
    let mut d = domain();
    s.create_domain(&d).await.expect("create domain");
    assert_eq!(s.get_domain(&d.id).await.unwrap(), Some(d.clone()));
    let all = s.list_domains().await.unwrap();
    assert!(all.contains(&d), "list_domains includes the new domain");
    assert_sorted(&all, |x| x.id.clone(), "list_domains");

    d.name = name("renamed");
    d.description = "changed".into();
    d.enabled = false;
    assert!(s.update_domain(&d).await.unwrap());
    assert_eq!(s.get_domain(&d.id).await.unwrap(), Some(d.clone()));

    assert!(s.delete_domain(&d.id).await.unwrap());
    assert_eq!(s.get_domain(&d.id).await.unwrap(), None);
    assert!(!s.delete_domain(&d.id).await.unwrap(), "second delete");
    assert!(
        !s.update_domain(&d).await.unwrap(),
        "update of a missing domain"
    );
    assert!(!s.list_domains().await.unwrap().contains(&d));
}

async fn domain_names_are_unique(s: &dyn Store) {
    let a = new_domain(s).await;
    let b = new_domain(s).await;
    let mut same_id = domain();
    same_id.id = a.id.clone();
    assert_err!(
        s.create_domain(&same_id).await,
        Conflict,
        "duplicate domain id"
    );
    let mut same_name = domain();
    same_name.name = a.name.clone();
    assert_err!(
        s.create_domain(&same_name).await,
        Conflict,
        "duplicate domain name"
    );
    assert_eq!(s.get_domain(&same_name.id).await.unwrap(), None);

    let mut renamed = b.clone();
    renamed.name = a.name.clone();
    assert_err!(
        s.update_domain(&renamed).await,
        Conflict,
        "rename onto a taken name"
    );
    assert_eq!(
        s.get_domain(&b.id).await.unwrap(),
        Some(b.clone()),
        "b unchanged"
    );
    // Keeping one's own name is no conflict.
    assert!(s.update_domain(&b).await.unwrap());
}

async fn project_crud(s: &dyn Store) {
    let d = new_domain(s).await;
    let mut p = project(&d.id);
    p.tags = vec!["blue".into(), "green".into()];
    s.create_project(&p).await.expect("create project");
    assert_eq!(s.get_project(&p.id).await.unwrap(), Some(p.clone()));
    assert_eq!(
        s.find_project(&d.id, &p.name).await.unwrap(),
        Some(p.clone())
    );
    assert_eq!(s.find_project(&d.id, "no-such-name").await.unwrap(), None);
    let other = new_domain(s).await;
    assert_eq!(s.find_project(&other.id, &p.name).await.unwrap(), None);
    assert_eq!(s.get_project(&ProjectId::generate()).await.unwrap(), None);

    p.name = name("renamed");
    p.description = "changed".into();
    p.enabled = false;
    p.tags = vec![];
    p.extra.insert("added".into(), serde_json::json!(true));
    let disable = marker();
    assert!(s.update_project(&p, Some(&disable)).await.unwrap());
    assert_eq!(s.get_project(&p.id).await.unwrap(), Some(p.clone()));
    assert!(stored(s, &disable).await, "update_project stores its event");
    assert!(
        s.update_project(&p, None).await.unwrap(),
        "update without event"
    );

    let delete = marker();
    assert!(s.delete_project(&p.id, &delete).await.unwrap());
    assert!(stored(s, &delete).await, "delete_project stores its event");
    assert_eq!(s.get_project(&p.id).await.unwrap(), None);

    let not_stored = marker();
    assert!(!s.delete_project(&p.id, &not_stored).await.unwrap());
    assert!(!s.update_project(&p, Some(&not_stored)).await.unwrap());
    assert!(
        !stored(s, &not_stored).await,
        "no event for a missing project"
    );
}

async fn project_rules(s: &dyn Store) {
    let d = new_domain(s).await;
    let a = new_project(s, &d.id).await;
    let b = new_project(s, &d.id).await;

    let mut same_id = project(&d.id);
    same_id.id = a.id.clone();
    assert_err!(
        s.create_project(&same_id).await,
        Conflict,
        "duplicate project id"
    );
    let mut same_name = project(&d.id);
    same_name.name = a.name.clone();
    assert_err!(
        s.create_project(&same_name).await,
        Conflict,
        "duplicate name in domain"
    );

    // The same name in another domain is fine.
    let other = new_domain(s).await;
    let mut elsewhere = project(&other.id);
    elsewhere.name = a.name.clone();
    s.create_project(&elsewhere)
        .await
        .expect("same name, other domain");

    let mut renamed = b.clone();
    renamed.name = a.name.clone();
    let event = marker();
    assert_err!(
        s.update_project(&renamed, Some(&event)).await,
        Conflict,
        "rename onto a taken name"
    );
    assert!(!stored(s, &event).await, "a failed update stores no event");
    assert_eq!(s.get_project(&b.id).await.unwrap(), Some(b.clone()));

    let orphan = project(&DomainId::generate());
    assert_err!(
        s.create_project(&orphan).await,
        MissingReference,
        "unknown domain"
    );
    assert_eq!(s.get_project(&orphan.id).await.unwrap(), None);
    let mut moved = b.clone();
    moved.domain_id = DomainId::generate();
    assert_err!(
        s.update_project(&moved, None).await,
        MissingReference,
        "move to unknown domain"
    );
}

async fn project_list_filters(s: &dyn Store) {
    let d = new_domain(s).await;
    let other = new_domain(s).await;
    let shared_name = name("shared");
    let mut on = project(&d.id);
    on.name = shared_name.clone();
    let mut off = project(&d.id);
    off.enabled = false;
    let mut elsewhere = project(&other.id);
    elsewhere.name = shared_name.clone();
    for p in [&on, &off, &elsewhere] {
        s.create_project(p).await.expect("create project");
    }
    let list = |f: ListFilter| async move { s.list_projects(&f).await.expect("list projects") };
    let ids = |ps: Vec<Project>| ps.into_iter().map(|p| p.id).collect::<Vec<_>>();
    let sorted = |mut v: Vec<ProjectId>| {
        v.sort();
        v
    };

    let in_d = list(ListFilter {
        domain_id: Some(d.id.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        in_d,
        sorted_projects(vec![on.clone(), off.clone()]),
        "by domain, in id order"
    );
    let disabled = list(ListFilter {
        domain_id: Some(d.id.clone()),
        enabled: Some(false),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(disabled), vec![off.id.clone()], "by domain and enabled");
    let named = list(ListFilter {
        name: Some(shared_name.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        ids(named),
        sorted(vec![on.id.clone(), elsewhere.id.clone()]),
        "by name"
    );
    let exact = list(ListFilter {
        name: Some(shared_name),
        domain_id: Some(other.id.clone()),
        enabled: Some(true),
    })
    .await;
    assert_eq!(ids(exact), vec![elsewhere.id.clone()], "by all three");
    let all = list(ListFilter::default()).await;
    assert_sorted(&all, |p| p.id.clone(), "list_projects");
    assert!(all.contains(&on) && all.contains(&off) && all.contains(&elsewhere));
}

fn sorted_projects(mut v: Vec<Project>) -> Vec<Project> {
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

async fn user_crud(s: &dyn Store) {
    let d = new_domain(s).await;
    let p = new_project(s, &d.id).await;
    let mut u = user(&d.id);
    u.default_project_id = Some(p.id.clone());
    s.create_user(&u, Some("$argon2id$v=19$first"))
        .await
        .expect("create user");
    assert_eq!(s.get_user(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(s.find_user(&d.id, &u.name).await.unwrap(), Some(u.clone()));
    assert_eq!(s.find_user(&d.id, "no-such-name").await.unwrap(), None);
    assert_eq!(s.get_user(&UserId::generate()).await.unwrap(), None);

    u.name = name("renamed");
    u.enabled = false;
    u.default_project_id = None;
    u.extra.remove("email");
    let disable = marker();
    assert!(s.update_user(&u, None, Some(&disable)).await.unwrap());
    assert_eq!(s.get_user(&u.id).await.unwrap(), Some(u.clone()));
    assert!(stored(s, &disable).await, "update_user stores its event");

    let delete = marker();
    assert!(s.delete_user(&u.id, &delete).await.unwrap());
    assert!(stored(s, &delete).await, "delete_user stores its event");
    assert_eq!(s.get_user(&u.id).await.unwrap(), None);
    assert_eq!(s.password_hash(&u.id).await.unwrap(), None);

    let not_stored = marker();
    assert!(!s.delete_user(&u.id, &not_stored).await.unwrap());
    assert!(!s.update_user(&u, None, Some(&not_stored)).await.unwrap());
    assert!(!s.set_password(&u.id, "x", &not_stored).await.unwrap());
    assert!(!stored(s, &not_stored).await, "no event for a missing user");

    // A default project is not a reference: deleting it leaves the user be.
    let mut keeps = user(&d.id);
    keeps.default_project_id = Some(p.id.clone());
    s.create_user(&keeps, None).await.expect("create user");
    assert!(s.delete_project(&p.id, &marker()).await.unwrap());
    assert_eq!(s.get_user(&keeps.id).await.unwrap(), Some(keeps));
}

async fn user_passwords(s: &dyn Store) {
    let d = new_domain(s).await;
    let u = new_user(s, &d.id).await;
    assert_eq!(
        s.password_hash(&u.id).await.unwrap(),
        None,
        "created without"
    );

    let change = marker();
    assert!(s.set_password(&u.id, "hash-1", &change).await.unwrap());
    assert_eq!(
        s.password_hash(&u.id).await.unwrap().as_deref(),
        Some("hash-1")
    );
    assert!(stored(s, &change).await, "set_password stores its event");

    // update_user keeps the hash unless given one.
    assert!(s.update_user(&u, None, None).await.unwrap());
    assert_eq!(
        s.password_hash(&u.id).await.unwrap().as_deref(),
        Some("hash-1")
    );
    assert!(s.update_user(&u, Some("hash-2"), None).await.unwrap());
    assert_eq!(
        s.password_hash(&u.id).await.unwrap().as_deref(),
        Some("hash-2")
    );
    assert_eq!(s.get_user(&u.id).await.unwrap(), Some(u.clone()));

    // A failed update changes neither the attributes nor the hash.
    let taken = new_user(s, &d.id).await;
    let mut clash = u.clone();
    clash.name = taken.name.clone();
    let event = marker();
    assert_err!(
        s.update_user(&clash, Some("hash-3"), Some(&event)).await,
        Conflict,
        "rename onto a taken user name"
    );
    assert_eq!(
        s.password_hash(&u.id).await.unwrap().as_deref(),
        Some("hash-2")
    );
    assert!(!stored(s, &event).await, "a failed update stores no event");
}

async fn user_rules(s: &dyn Store) {
    let d = new_domain(s).await;
    let a = new_user(s, &d.id).await;
    let mut same_id = user(&d.id);
    same_id.id = a.id.clone();
    assert_err!(
        s.create_user(&same_id, None).await,
        Conflict,
        "duplicate user id"
    );
    let mut same_name = user(&d.id);
    same_name.name = a.name.clone();
    assert_err!(
        s.create_user(&same_name, Some("h")).await,
        Conflict,
        "duplicate name"
    );
    assert_eq!(s.get_user(&same_name.id).await.unwrap(), None);

    let other = new_domain(s).await;
    let mut elsewhere = user(&other.id);
    elsewhere.name = a.name.clone();
    s.create_user(&elsewhere, None)
        .await
        .expect("same name, other domain");

    let orphan = user(&DomainId::generate());
    assert_err!(
        s.create_user(&orphan, None).await,
        MissingReference,
        "unknown domain"
    );
    let mut moved = a.clone();
    moved.domain_id = DomainId::generate();
    assert_err!(
        s.update_user(&moved, None, None).await,
        MissingReference,
        "move to unknown domain"
    );
}

async fn user_list_filters(s: &dyn Store) {
    let d = new_domain(s).await;
    let other = new_domain(s).await;
    let a = new_user(s, &d.id).await;
    let mut off = user(&d.id);
    off.enabled = false;
    s.create_user(&off, None).await.expect("create user");
    let mut elsewhere = user(&other.id);
    elsewhere.name = a.name.clone();
    s.create_user(&elsewhere, None).await.expect("create user");
    let ids = |f: ListFilter| async move {
        let users = s.list_users(&f).await.expect("list users");
        assert_sorted(&users, |u| u.id.clone(), "list_users");
        users.into_iter().map(|u| u.id).collect::<Vec<_>>()
    };
    let mut both = vec![a.id.clone(), off.id.clone()];
    both.sort();
    let by_domain = ListFilter {
        domain_id: Some(d.id.clone()),
        ..Default::default()
    };
    assert_eq!(ids(by_domain.clone()).await, both, "by domain");
    let enabled = ListFilter {
        enabled: Some(true),
        ..by_domain
    };
    assert_eq!(
        ids(enabled).await,
        vec![a.id.clone()],
        "by domain and enabled"
    );
    let mut named = vec![a.id.clone(), elsewhere.id.clone()];
    named.sort();
    let by_name = ListFilter {
        name: Some(a.name.clone()),
        ..Default::default()
    };
    assert_eq!(ids(by_name).await, named, "by name");
    assert!(ids(ListFilter::default()).await.contains(&off.id));
}
