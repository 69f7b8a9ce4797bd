//! Roles, role implications and assignments: CRUD, unique names per scope,
//! references, filters, idempotent grants, and every delete cascade.

use super::{
    assert_err, assert_sorted, marker, name, new_domain, new_project, new_role, new_user, role,
    stored,
};
use crate::store::Store;
use keyfed_shared::ids::{DomainId, ProjectId, RoleId, UserId};
use keyfed_shared::model::{Assignment, AssignmentFilter, ImpliedRole, Target};

pub(super) async fn run(s: &dyn Store) {
    role_crud(s).await;
    role_names_are_unique_per_scope(s).await;
    implied_roles(s).await;
    grants(s).await;
    grant_references(s).await;
    assignment_filters(s).await;
    cascades(s).await;
}

/// The list order of assignments: user, target kind and id, role.
fn order_key(a: &Assignment) -> (UserId, &'static str, String, RoleId) {
    let (kind, id) = match &a.target {
        Target::Project(p) => ("project", p.to_string()),
        Target::Domain(d) => ("domain", d.to_string()),
        Target::System => ("system", String::new()),
    };
    (a.user_id.clone(), kind, id, a.role_id.clone())
}

async fn role_crud(s: &dyn Store) {
    let d = new_domain(s).await;
    for scope in [None, Some(&d.id)] {
        let mut r = role(scope);
        s.create_role(&r).await.expect("create role");
        assert_eq!(s.get_role(&r.id).await.unwrap(), Some(r.clone()));
        let all = s.list_roles().await.unwrap();
        assert!(all.contains(&r));
        assert_sorted(&all, |x| x.id.clone(), "list_roles");

        r.name = name("renamed");
        r.description = None;
        assert!(s.update_role(&r).await.unwrap());
        assert_eq!(s.get_role(&r.id).await.unwrap(), Some(r.clone()));
        assert!(s.delete_role(&r.id).await.unwrap());
        assert_eq!(s.get_role(&r.id).await.unwrap(), None);
        assert!(!s.delete_role(&r.id).await.unwrap());
        assert!(!s.update_role(&r).await.unwrap());
    }
    assert_err!(
        s.create_role(&role(Some(&DomainId::generate()))).await,
        MissingReference,
        "role in an unknown domain"
    );
}

async fn role_names_are_unique_per_scope(s: &dyn Store) {
    let d = new_domain(s).await;
    let other = new_domain(s).await;
    let global = new_role(s, None).await;

    let mut same_id = role(None);
    same_id.id = global.id.clone();
    assert_err!(s.create_role(&same_id).await, Conflict, "duplicate role id");
    let mut twin = role(None);
    twin.name = global.name.clone();
    assert_err!(
        s.create_role(&twin).await,
        Conflict,
        "two global roles, one name"
    );

    // A domain role may share a global role's name, once per domain.
    let mut scoped = role(Some(&d.id));
    scoped.name = global.name.clone();
    s.create_role(&scoped)
        .await
        .expect("domain role named like a global one");
    let mut scoped_twin = role(Some(&d.id));
    scoped_twin.name = global.name.clone();
    assert_err!(
        s.create_role(&scoped_twin).await,
        Conflict,
        "two roles, one name, one domain"
    );
    scoped_twin.domain_id = Some(other.id.clone());
    s.create_role(&scoped_twin)
        .await
        .expect("same name in another domain");

    let mut renamed = new_role(s, None).await;
    renamed.name = global.name.clone();
    assert_err!(
        s.update_role(&renamed).await,
        Conflict,
        "rename onto a taken name"
    );
    let mut moved = scoped.clone();
    moved.domain_id = Some(other.id.clone());
    assert_err!(
        s.update_role(&moved).await,
        Conflict,
        "move next to a same-named role"
    );
    moved.domain_id = Some(DomainId::generate());
    assert_err!(
        s.update_role(&moved).await,
        MissingReference,
        "move to an unknown domain"
    );
    assert_eq!(s.get_role(&scoped.id).await.unwrap(), Some(scoped));
}

async fn implied_roles(s: &dyn Store) {
    let prior = new_role(s, None).await;
    let implied = new_role(s, None).await;
    let rule = ImpliedRole {
        prior: prior.id.clone(),
        implied: implied.id.clone(),
    };
    assert!(s.add_implied_role(&rule).await.unwrap());
    assert!(!s.add_implied_role(&rule).await.unwrap(), "second add");
    let all = s.list_implied_roles().await.unwrap();
    assert!(all.contains(&rule));
    assert_sorted(
        &all,
        |r| (r.prior.clone(), r.implied.clone()),
        "list_implied_roles",
    );

    let unknown = RoleId::generate();
    let bad_prior = ImpliedRole {
        prior: unknown.clone(),
        implied: implied.id.clone(),
    };
    assert_err!(
        s.add_implied_role(&bad_prior).await,
        MissingReference,
        "unknown prior"
    );
    let bad_implied = ImpliedRole {
        prior: prior.id.clone(),
        implied: unknown,
    };
    assert_err!(
        s.add_implied_role(&bad_implied).await,
        MissingReference,
        "unknown implied"
    );

    assert!(s.remove_implied_role(&rule).await.unwrap());
    assert!(
        !s.remove_implied_role(&rule).await.unwrap(),
        "second remove"
    );
    assert!(!s.list_implied_roles().await.unwrap().contains(&rule));

    // Deleting either role removes the implication.
    for delete_prior in [true, false] {
        let a = new_role(s, None).await;
        let b = new_role(s, None).await;
        let rule = ImpliedRole {
            prior: a.id.clone(),
            implied: b.id.clone(),
        };
        assert!(s.add_implied_role(&rule).await.unwrap());
        let gone = if delete_prior { &a.id } else { &b.id };
        assert!(s.delete_role(gone).await.unwrap());
        assert!(!s.list_implied_roles().await.unwrap().contains(&rule));
    }
}

async fn grants(s: &dyn Store) {
    let d = new_domain(s).await;
    let p = new_project(s, &d.id).await;
    let u = new_user(s, &d.id).await;
    let r = new_role(s, None).await;
    let targets = [
        Target::Project(p.id.clone()),
        Target::Domain(d.id.clone()),
        Target::System,
    ];
    let mut granted = Vec::new();
    for target in targets {
        let a = Assignment {
            user_id: u.id.clone(),
            target,
            role_id: r.id.clone(),
        };
        assert!(s.grant(&a).await.unwrap(), "first grant");
        assert!(!s.grant(&a).await.unwrap(), "second grant is a no-op");
        granted.push(a);
    }
    let by_user = AssignmentFilter {
        user_id: Some(u.id.clone()),
        ..Default::default()
    };
    let mut expected = granted.clone();
    expected.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    assert_eq!(
        s.list_assignments(&by_user).await.unwrap(),
        expected,
        "in list order"
    );

    let revoke = marker();
    assert!(s.revoke_grant(&granted[0], &revoke).await.unwrap());
    assert!(stored(s, &revoke).await, "revoke_grant stores its event");
    let not_stored = marker();
    assert!(
        !s.revoke_grant(&granted[0], &not_stored).await.unwrap(),
        "second revoke"
    );
    assert!(
        !stored(s, &not_stored).await,
        "no event for a missing grant"
    );
    let left = s.list_assignments(&by_user).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&granted[0]));
}

async fn grant_references(s: &dyn Store) {
    let d = new_domain(s).await;
    let p = new_project(s, &d.id).await;
    let u = new_user(s, &d.id).await;
    let r = new_role(s, None).await;
    let valid = Assignment {
        user_id: u.id.clone(),
        target: Target::Project(p.id.clone()),
        role_id: r.id.clone(),
    };
    let cases = [
        (
            "unknown user",
            Assignment {
                user_id: UserId::generate(),
                ..valid.clone()
            },
        ),
        (
            "unknown role",
            Assignment {
                role_id: RoleId::generate(),
                ..valid.clone()
            },
        ),
        (
            "unknown project",
            Assignment {
                target: Target::Project(ProjectId::generate()),
                ..valid.clone()
            },
        ),
        (
            "unknown domain",
            Assignment {
                target: Target::Domain(DomainId::generate()),
                ..valid.clone()
            },
        ),
    ];
    for (what, a) in cases {
        assert_err!(s.grant(&a).await, MissingReference, what);
    }
    let by_user = AssignmentFilter {
        user_id: Some(u.id.clone()),
        ..Default::default()
    };
    assert!(s.list_assignments(&by_user).await.unwrap().is_empty());
}

async fn assignment_filters(s: &dyn Store) {
    let d = new_domain(s).await;
    let p = new_project(s, &d.id).await;
    let (u1, u2) = (new_user(s, &d.id).await, new_user(s, &d.id).await);
    let (r1, r2) = (new_role(s, None).await, new_role(s, Some(&d.id)).await);
    let grant = |u: &UserId, t: Target, r: &RoleId| Assignment {
        user_id: u.clone(),
        target: t,
        role_id: r.clone(),
    };
    let all = [
        grant(&u1.id, Target::Project(p.id.clone()), &r1.id),
        grant(&u1.id, Target::Project(p.id.clone()), &r2.id),
        grant(&u2.id, Target::Project(p.id.clone()), &r1.id),
        grant(&u2.id, Target::Domain(d.id.clone()), &r2.id),
        grant(&u1.id, Target::System, &r1.id),
    ];
    for a in &all {
        assert!(s.grant(a).await.unwrap());
    }
    let check = |f: AssignmentFilter, what: &'static str| {
        let mut expected: Vec<Assignment> = all.iter().filter(|a| f.matches(a)).cloned().collect();
        expected.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
        async move {
            let got = s.list_assignments(&f).await.expect("list assignments");
            assert_eq!(got, expected, "{what}");
        }
    };
    let on_project = Some(Target::Project(p.id.clone()));
    check(
        AssignmentFilter {
            target: on_project.clone(),
            ..Default::default()
        },
        "by project",
    )
    .await;
    check(
        AssignmentFilter {
            target: on_project.clone(),
            role_id: Some(r1.id.clone()),
            ..Default::default()
        },
        "by project and role",
    )
    .await;
    check(
        AssignmentFilter {
            user_id: Some(u2.id.clone()),
            target: Some(Target::Domain(d.id.clone())),
            role_id: Some(r2.id.clone()),
        },
        "by all three",
    )
    .await;
    check(
        AssignmentFilter {
            role_id: Some(r2.id.clone()),
            ..Default::default()
        },
        "by role",
    )
    .await;
    let system = AssignmentFilter {
        user_id: Some(u1.id.clone()),
        target: Some(Target::System),
        ..Default::default()
    };
    check(system, "system scope").await;
    let everything = s
        .list_assignments(&AssignmentFilter::default())
        .await
        .unwrap();
    assert_sorted(&everything, order_key, "list_assignments");
    assert!(all.iter().all(|a| everything.contains(a)));
}

async fn cascades(s: &dyn Store) {
    let d = new_domain(s).await;
    let other = new_domain(s).await;
    let p = new_project(s, &d.id).await;
    let u = new_user(s, &d.id).await;
    let outsider = new_user(s, &other.id).await;
    let global = new_role(s, None).await;
    let local = new_role(s, Some(&d.id)).await;
    let rule = ImpliedRole {
        prior: global.id.clone(),
        implied: local.id.clone(),
    };
    assert!(s.add_implied_role(&rule).await.unwrap());
    let on = |u: &UserId, t: Target, r: &RoleId| Assignment {
        user_id: u.clone(),
        target: t,
        role_id: r.clone(),
    };
    let outsider_on_domain = on(&outsider.id, Target::Domain(d.id.clone()), &global.id);
    let outsider_local = on(&outsider.id, Target::System, &local.id);
    let outsider_on_project = on(&outsider.id, Target::Project(p.id.clone()), &global.id);
    let outsider_kept = on(&outsider.id, Target::Domain(other.id.clone()), &global.id);
    let user_system = on(&u.id, Target::System, &global.id);
    for a in [
        &outsider_on_domain,
        &outsider_local,
        &outsider_on_project,
        &outsider_kept,
        &user_system,
    ] {
        assert!(s.grant(a).await.unwrap());
    }

    assert!(s.delete_domain(&d.id).await.unwrap());
    assert_eq!(
        s.get_project(&p.id).await.unwrap(),
        None,
        "project went with its domain"
    );
    assert_eq!(
        s.get_user(&u.id).await.unwrap(),
        None,
        "user went with its domain"
    );
    assert_eq!(
        s.get_role(&local.id).await.unwrap(),
        None,
        "domain role went too"
    );
    assert_eq!(s.get_role(&global.id).await.unwrap(), Some(global.clone()));
    assert!(!s.list_implied_roles().await.unwrap().contains(&rule));
    let everything = s
        .list_assignments(&AssignmentFilter::default())
        .await
        .unwrap();
    for gone in [
        &outsider_on_domain,
        &outsider_local,
        &outsider_on_project,
        &user_system,
    ] {
        assert!(!everything.contains(gone), "{gone:?} survived its domain");
    }
    assert!(everything.contains(&outsider_kept), "unrelated grant kept");

    // User, project and role deletes take their assignments along.
    let d = new_domain(s).await;
    let p = new_project(s, &d.id).await;
    let u = new_user(s, &d.id).await;
    let r = new_role(s, None).await;
    let by_user = on(&u.id, Target::Domain(d.id.clone()), &r.id);
    let by_project = on(&outsider.id, Target::Project(p.id.clone()), &r.id);
    let by_role = on(&outsider.id, Target::System, &r.id);
    for a in [&by_user, &by_project, &by_role] {
        assert!(s.grant(a).await.unwrap());
    }
    assert!(s.delete_user(&u.id, &marker()).await.unwrap());
    assert!(s.delete_project(&p.id, &marker()).await.unwrap());
    let left = s
        .list_assignments(&AssignmentFilter::default())
        .await
        .unwrap();
    assert!(!left.contains(&by_user) && !left.contains(&by_project));
    assert!(left.contains(&by_role));
    assert!(s.delete_role(&r.id).await.unwrap());
    assert!(!s
        .list_assignments(&AssignmentFilter::default())
        .await
        .unwrap()
        .contains(&by_role));
}
