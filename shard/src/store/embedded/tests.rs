#![allow(clippy::unwrap_used)]

use super::file::STATE_FILE;
use super::EmbeddedStore;
use crate::store::{conformance, Store, StoreError};
use keyfed_shared::ids::{DomainId, ProjectId, RoleId, UserId};
use keyfed_shared::model::{Assignment, Domain, Project, Role, Target, User};
use keyfed_shared::revocation::{RevocationEvent, RevocationSubject};
use serde_json::json;

fn domain() -> Domain {
    Domain {
        id: DomainId::generate(),
        name: format!("d-{}", DomainId::generate()),
        description: String::new(),
        enabled: true,
    }
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    conformance::run_all(&store).await;
    // And again on the same, now well-populated, store.
    conformance::run_all(&store).await;
}

#[tokio::test]
async fn outbox_entries_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let written = {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        conformance::write_pending(&store).await
    };
    let reopened = EmbeddedStore::open(dir.path()).unwrap();
    conformance::still_pending(&reopened, &written).await;
}

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("store");
    let d = domain();
    // Extra attributes named like real fields must not clash on reload.
    let extra = json!({"name": "shadow", "enabled": "no", "email": "a@example.org"});
    let project = Project {
        id: ProjectId::generate(),
        name: "p".into(),
        domain_id: d.id.clone(),
        description: "d".into(),
        enabled: true,
        tags: vec!["t".into()],
        extra: extra.as_object().cloned().unwrap(),
    };
    let user = User {
        id: UserId::generate(),
        name: "u".into(),
        domain_id: d.id.clone(),
        enabled: true,
        default_project_id: Some(project.id.clone()),
        extra: extra.as_object().cloned().unwrap(),
    };
    let role = Role {
        id: RoleId::generate(),
        name: "member".into(),
        domain_id: None,
        description: None,
    };
    let grant = Assignment {
        user_id: user.id.clone(),
        target: Target::Project(project.id.clone()),
        role_id: role.id.clone(),
    };
    let event = RevocationEvent {
        subject: RevocationSubject::UserOnProject(user.id.clone(), project.id.clone()),
        issued_before: 1,
        expires_at: i64::MAX,
    };
    {
        let store = EmbeddedStore::open(&path).unwrap();
        store.create_domain(&d).await.unwrap();
        store.create_project(&project).await.unwrap();
        store.create_user(&user, Some("hash")).await.unwrap();
        store.create_role(&role).await.unwrap();
        assert!(store.grant(&grant).await.unwrap());
        store.add_revocation(&event).await.unwrap();
    }
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.get_domain(&d.id).await.unwrap(), Some(d));
    assert_eq!(store.get_project(&project.id).await.unwrap(), Some(project));
    assert_eq!(store.get_user(&user.id).await.unwrap(), Some(user.clone()));
    assert_eq!(
        store.password_hash(&user.id).await.unwrap().as_deref(),
        Some("hash")
    );
    assert_eq!(store.get_role(&role.id).await.unwrap(), Some(role));
    let grants = store.list_assignments(&Default::default()).await.unwrap();
    assert_eq!(grants, vec![grant]);
    assert_eq!(store.list_revocations(0).await.unwrap(), vec![event]);
}

#[tokio::test]
async fn a_failed_save_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let kept = domain();
    store.create_domain(&kept).await.unwrap();

    // A directory where the temporary file goes makes every save fail.
    let blocker = dir.path().join("state.json.tmp");
    std::fs::create_dir(&blocker).unwrap();
    let lost = domain();
    let err = store.create_domain(&lost).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert_eq!(
        store.get_domain(&lost.id).await.unwrap(),
        None,
        "not in memory"
    );
    assert!(
        !store.delete_domain(&DomainId::generate()).await.unwrap(),
        "no-op writes don't save"
    );

    std::fs::remove_dir(&blocker).unwrap();
    store.create_domain(&lost).await.unwrap();
    let reopened = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(reopened.list_domains().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_corrupt_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
    let err = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.create_domain(&domain()).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(store.list_domains().await.unwrap().len(), 32);
    let reopened = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(reopened.list_domains().await.unwrap().len(), 32);
}
