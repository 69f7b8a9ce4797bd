//! The default policy, persona by persona: system, domain (`d2`) and
//! project (`p2` in `d2`) admins, managers, members and readers, a service
//! and a user with no role, against targets in their domain and in another
//! (`default`).

use super::*;
use crate::ids::{DomainId, ProjectId, UserId};
use crate::token::Scope;

const ME: &str = "me";

fn d(id: &str) -> DomainId {
    DomainId::new(id)
}

fn system() -> Scope {
    Scope::System
}

fn domain2() -> Scope {
    Scope::Domain { id: d("d2") }
}

fn project2() -> Scope {
    Scope::Project {
        id: ProjectId::new("p2"),
        name: "p2".into(),
        domain_id: d("d2"),
    }
}

/// The roles a persona holds: `admin` implies the rest, as bootstrapped.
fn persona(role: &str) -> Roles {
    let names: &[&str] = match role {
        "admin" => &["admin", "manager", "member", "reader"],
        "manager" => &["manager", "member", "reader"],
        "member" => &["member", "reader"],
        "reader" => &["reader"],
        "service" => &["service"],
        _ => &[],
    };
    Roles::from_names(names.iter().copied())
}

fn may(scope: &Scope, role: &str, op: Operation, target: &Target) -> bool {
    let me = UserId::new(ME);
    let creds = Credentials {
        user_id: &me,
        scope,
        roles: persona(role),
    };
    authorize(&creds, op, target)
}

fn user_in(domain: &str) -> Target {
    Target::user(UserId::new("u"), d(domain))
}

fn project_in(domain: &str) -> Target {
    Target::project(ProjectId::new(format!("p-{domain}")), d(domain))
}

fn grant_on_project(domain: &str, role: &str) -> Target {
    Target::project(ProjectId::new("p"), d(domain))
        .with_user(UserId::new("u"), d(domain))
        .with_role(role, None)
}

#[test]
fn system_only_operations_refuse_domain_scoped_admins_and_accept_system_and_project_admins() {
    let system_only = [
        (Operation::CreateDomain, Target::none()),
        (Operation::UpdateDomain, Target::domain(d("default"))),
        (Operation::CreateService, Target::none()),
        (Operation::CreateEndpoint, Target::none()),
        (Operation::CreateRegion, Target::none()),
        (Operation::CreateRole, Target::role("r", None)),
        (Operation::CreateImpliedRole, Target::none()),
        (
            Operation::CreateSystemGrant,
            Target::none().with_role("admin", None),
        ),
        (Operation::ListServices, Target::none()),
        (Operation::ListEndpoints, Target::none()),
        (Operation::ListImpliedRoles, Target::none()),
    ];
    for (op, target) in &system_only {
        assert!(
            !may(&domain2(), "admin", *op, target),
            "{op:?} domain admin"
        );
        assert!(may(&system(), "admin", *op, target), "{op:?} system admin");
        // Keystone's admin role is global: a project admin passes too.
        assert!(
            may(&project2(), "admin", *op, target),
            "{op:?} project admin"
        );
        assert!(
            !may(&project2(), "manager", *op, target),
            "{op:?} project manager"
        );
    }
}

#[test]
fn readers_read_the_catalog_only_on_the_system_scope() {
    for op in [Operation::ListServices, Operation::GetEndpoint] {
        assert!(may(&system(), "reader", op, &Target::none()));
        assert!(!may(&project2(), "reader", op, &Target::none()));
        assert!(!may(&domain2(), "reader", op, &Target::none()));
    }
    // Regions are readable by anyone with a token.
    assert!(may(&domain2(), "", Operation::ListRegions, &Target::none()));
    assert!(may(
        &Scope::Unscoped,
        "",
        Operation::GetRegion,
        &Target::none()
    ));
    assert!(!may(
        &system(),
        "reader",
        Operation::CreateRegion,
        &Target::none()
    ));
}

#[test]
fn domain_managers_manage_users_and_projects_of_their_domain_only() {
    for op in [
        Operation::CreateUser,
        Operation::UpdateUser,
        Operation::DeleteUser,
    ] {
        assert!(may(&domain2(), "manager", op, &user_in("d2")));
        assert!(!may(&domain2(), "manager", op, &user_in("default")));
        assert!(!may(&domain2(), "member", op, &user_in("d2")));
        assert!(!may(&project2(), "manager", op, &user_in("d2")));
        assert!(may(&domain2(), "admin", op, &user_in("default")));
    }
    for op in [
        Operation::CreateProject,
        Operation::UpdateProject,
        Operation::DeleteProject,
    ] {
        assert!(may(&domain2(), "manager", op, &project_in("d2")));
        assert!(!may(&domain2(), "manager", op, &project_in("default")));
        assert!(!may(&domain2(), "reader", op, &project_in("d2")));
    }
}

#[test]
fn domain_readers_read_their_domain_and_project_users_their_project() {
    assert!(may(
        &domain2(),
        "reader",
        Operation::GetUser,
        &user_in("d2")
    ));
    assert!(!may(
        &domain2(),
        "reader",
        Operation::GetUser,
        &user_in("default")
    ));
    assert!(may(
        &domain2(),
        "reader",
        Operation::GetProject,
        &project_in("d2")
    ));
    assert!(!may(
        &domain2(),
        "reader",
        Operation::GetProject,
        &project_in("default")
    ));
    let p2 = Target::project(ProjectId::new("p2"), d("d2"));
    assert!(may(&project2(), "", Operation::GetProject, &p2));
    assert!(!may(
        &project2(),
        "reader",
        Operation::GetProject,
        &project_in("d2")
    ));
    assert!(!may(
        &project2(),
        "reader",
        Operation::GetUser,
        &user_in("d2")
    ));
    // Anyone reads itself, even unscoped.
    let me = Target::user(UserId::new(ME), d("d2"));
    assert!(may(&Scope::Unscoped, "", Operation::GetUser, &me));
    assert!(may(&Scope::Unscoped, "", Operation::ListUserProjects, &me));
    // A domain reads itself for any token scoped to it or to its projects.
    assert!(may(
        &domain2(),
        "",
        Operation::GetDomain,
        &Target::domain(d("d2"))
    ));
    assert!(may(
        &project2(),
        "",
        Operation::GetDomain,
        &Target::domain(d("d2"))
    ));
    assert!(!may(
        &project2(),
        "reader",
        Operation::GetDomain,
        &Target::domain(d("default"))
    ));
}

#[test]
fn lists_of_a_domain_scoped_token_are_confined_to_its_domain() {
    let me = UserId::new(ME);
    let scope = domain2();
    let creds = Credentials {
        user_id: &me,
        scope: &scope,
        roles: persona("reader"),
    };
    let target = Target::list(&creds, Some(d("default")));
    assert_eq!(target.domain_id, Some(d("d2")));
    for op in [
        Operation::ListUsers,
        Operation::ListProjects,
        Operation::ListDomains,
        Operation::ListRoleAssignments,
    ] {
        assert!(authorize(&creds, op, &target), "{op:?}");
        assert!(
            !may(&project2(), "reader", op, &Target::domain(d("d2"))),
            "{op:?}"
        );
        assert!(may(&system(), "reader", op, &Target::none()), "{op:?}");
    }
}

#[test]
fn domain_managers_grant_at_most_manager_within_their_domain() {
    for op in [Operation::CreateGrant, Operation::RevokeGrant] {
        for role in ["manager", "member", "reader"] {
            assert!(may(
                &domain2(),
                "manager",
                op,
                &grant_on_project("d2", role)
            ));
        }
        assert!(!may(
            &domain2(),
            "manager",
            op,
            &grant_on_project("d2", "admin")
        ));
        assert!(!may(
            &domain2(),
            "manager",
            op,
            &grant_on_project("default", "member")
        ));
        let on_domain = Target::domain(d("d2"))
            .with_user(UserId::new("u"), d("d2"))
            .with_role("member", None);
        assert!(may(&domain2(), "manager", op, &on_domain));
        let foreign_user = Target::project(ProjectId::new("p"), d("d2"))
            .with_user(UserId::new("u"), d("default"))
            .with_role("member", None);
        assert!(!may(&domain2(), "manager", op, &foreign_user));
        assert!(!may(
            &domain2(),
            "member",
            op,
            &grant_on_project("d2", "reader")
        ));
        assert!(!may(
            &project2(),
            "manager",
            op,
            &grant_on_project("d2", "reader")
        ));
    }
}

#[test]
fn admin_is_global_on_the_scopes_an_operation_accepts_as_in_keystone() {
    // The reviewer's rows that Keystone also allows: a domain admin grants
    // on a project of another domain and lists its users.
    assert!(may(
        &domain2(),
        "admin",
        Operation::CreateGrant,
        &grant_on_project("default", "admin")
    ));
    assert!(may(
        &domain2(),
        "admin",
        Operation::ListUsers,
        &Target::domain(d("d2"))
    ));
    // System grants accept no domain-scoped token at all.
    let system_admin_grant = Target::none().with_role("admin", None);
    assert!(!may(
        &domain2(),
        "admin",
        Operation::CreateSystemGrant,
        &system_admin_grant
    ));
    assert!(!may(
        &domain2(),
        "admin",
        Operation::ListSystemGrants,
        &system_admin_grant
    ));
}

#[test]
fn domain_readers_check_grants_in_their_domain() {
    assert!(may(
        &domain2(),
        "reader",
        Operation::CheckGrant,
        &grant_on_project("d2", "admin")
    ));
    assert!(!may(
        &domain2(),
        "reader",
        Operation::CheckGrant,
        &grant_on_project("default", "admin")
    ));
    assert!(may(
        &domain2(),
        "reader",
        Operation::ListGrants,
        &grant_on_project("d2", "x")
    ));
    assert!(!may(
        &project2(),
        "reader",
        Operation::ListGrants,
        &grant_on_project("d2", "x")
    ));
    let foreign_role = grant_on_project("d2", "r").with_role("r", Some(d("d3")));
    assert!(!may(
        &domain2(),
        "reader",
        Operation::CheckGrant,
        &foreign_role
    ));
}

#[test]
fn roles_are_listed_by_domain_managers_and_domain_specific_roles_by_system_only() {
    assert!(may(
        &domain2(),
        "manager",
        Operation::ListRoles,
        &Target::none()
    ));
    assert!(!may(
        &project2(),
        "manager",
        Operation::ListRoles,
        &Target::none()
    ));
    assert!(!may(
        &domain2(),
        "reader",
        Operation::ListRoles,
        &Target::none()
    ));
    assert!(may(
        &domain2(),
        "manager",
        Operation::GetRole,
        &Target::role("member", None)
    ));
    assert!(!may(
        &domain2(),
        "manager",
        Operation::GetRole,
        &Target::role("admin", None)
    ));
    let d2_role = Target::role("admin", Some(d("d2")));
    assert!(!may(&domain2(), "admin", Operation::GetRole, &d2_role));
    assert!(!may(&domain2(), "admin", Operation::CreateRole, &d2_role));
    assert!(!may(
        &domain2(),
        "admin",
        Operation::ListDomainRoles,
        &Target::none()
    ));
    assert!(may(&system(), "reader", Operation::GetRole, &d2_role));
    assert!(!may(&system(), "reader", Operation::UpdateRole, &d2_role));
}

#[test]
fn tokens_are_validated_by_their_subject_readers_services_and_admins() {
    let other = Target::token(UserId::new("other"));
    let mine = Target::token(UserId::new(ME));
    assert!(may(&project2(), "", Operation::ValidateToken, &mine));
    assert!(may(&project2(), "", Operation::RevokeToken, &mine));
    assert!(!may(
        &project2(),
        "member",
        Operation::ValidateToken,
        &other
    ));
    assert!(may(
        &project2(),
        "service",
        Operation::ValidateToken,
        &other
    ));
    assert!(!may(&project2(), "service", Operation::CheckToken, &other));
    assert!(!may(&project2(), "service", Operation::RevokeToken, &other));
    assert!(may(&system(), "reader", Operation::ValidateToken, &other));
    assert!(!may(&system(), "reader", Operation::RevokeToken, &other));
    assert!(may(&domain2(), "admin", Operation::RevokeToken, &other));
    // A token's own user validates and checks it on every scope with no
    // role at all: the gateway's fast path for self-validation skips
    // working out the caller's roles on this ground.
    for scope in [system(), domain2(), project2(), Scope::Unscoped] {
        for op in [Operation::ValidateToken, Operation::CheckToken] {
            assert!(may(&scope, "", op, &mine), "{op:?} on {scope:?}");
        }
    }
}

#[test]
fn a_user_with_no_role_is_refused_everything_but_its_own_things_and_regions() {
    let ops = [
        (Operation::ListUsers, Target::domain(d("d2"))),
        (Operation::CreateProject, project_in("d2")),
        (Operation::ListRoles, Target::none()),
        (Operation::CreateGrant, grant_on_project("d2", "reader")),
        (Operation::ListRoleAssignments, Target::domain(d("d2"))),
        (Operation::ListServices, Target::none()),
    ];
    for scope in [system(), domain2(), project2(), Scope::Unscoped] {
        for (op, target) in &ops {
            assert!(!may(&scope, "", *op, target), "{op:?} on {scope:?}");
        }
    }
}

#[test]
fn credentials_hold_global_roles_only() {
    use crate::global::GlobalData;
    use crate::ids::RoleId;
    use crate::model::{ImpliedRole, Role};
    let role = |id: &str, name: &str, domain: Option<&str>| Role {
        id: RoleId::new(id),
        name: name.into(),
        domain_id: domain.map(d),
        description: None,
    };
    let global = GlobalData::new(
        vec![],
        vec![
            role("fake-admin", "admin", Some("d2")),
            role("m", "member", None),
            role("r", "reader", None),
        ],
        vec![
            ImpliedRole {
                prior: RoleId::new("fake-admin"),
                implied: RoleId::new("m"),
            },
            ImpliedRole {
                prior: RoleId::new("m"),
                implied: RoleId::new("r"),
            },
        ],
        vec![],
        vec![],
        vec![],
    );
    let claims = crate::token::Claims {
        user_id: UserId::new(ME),
        user_name: ME.into(),
        user_domain_id: d("d3"),
        methods: vec!["password".into()],
        issued_at: 0,
        expires_at: 1,
        audit_ids: vec![],
        scope: project2(),
        roles: vec![RoleId::new("fake-admin")],
        shard_set: vec![],
    };
    let creds = Credentials::from_claims(&claims, &global);
    assert_eq!(
        creds.roles,
        Roles {
            member: true,
            reader: true,
            ..Roles::default()
        }
    );
    assert_eq!(
        global.token_roles(&claims.roles),
        vec![RoleId::new("m"), RoleId::new("r")]
    );
}
