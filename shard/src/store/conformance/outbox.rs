//! The membership outbox: every change to a user's assignments records the
//! user, in the change's own transaction (cascades included); entries are
//! read lowest version first with whether the user still holds an
//! assignment; removal takes only the version that was read. Durability
//! across reopening is checked by [`write_pending`] and [`still_pending`],
//! which the backends' tests call around closing and reopening a store.

use super::{marker, new_domain, new_project, new_role, new_user};
use crate::store::{OutboxEntry, Store};
use keyfed_shared::ids::{RoleId, UserId};
use keyfed_shared::model::{Assignment, Target};

pub(super) async fn run(s: &dyn Store) {
    grant_and_revoke_record_entries(s).await;
    removal_takes_only_the_version_read(s).await;
    cascades_record_every_user(s).await;
    pending_is_ordered_and_limited(s).await;
    requeue_covers_holders_and_the_named(s).await;
}

/// Every pending entry (the suite may run on a store that has some).
async fn all_pending(s: &dyn Store) -> Vec<OutboxEntry> {
    s.outbox_pending(usize::MAX).await.expect("outbox_pending")
}

/// The pending entry of `user`, if any.
async fn entry_of(s: &dyn Store, user: &UserId) -> Option<OutboxEntry> {
    all_pending(s)
        .await
        .into_iter()
        .find(|e| e.user_id == *user)
}

fn on_project(user: &UserId, project: &keyfed_shared::ids::ProjectId, role: &RoleId) -> Assignment {
    Assignment {
        user_id: user.clone(),
        target: Target::Project(project.clone()),
        role_id: role.clone(),
    }
}

async fn grant_and_revoke_record_entries(s: &dyn Store) {
    let d = new_domain(s).await;
    let p = new_project(s, &d.id).await;
    let u = new_user(s, &d.id).await;
    let r = new_role(s, None).await;
    assert_eq!(entry_of(s, &u.id).await, None, "a new user has no entry");

    let a = on_project(&u.id, &p.id, &r.id);
    assert!(s.grant(&a).await.unwrap());
    let granted = entry_of(s, &u.id).await.expect("a grant records an entry");
    assert!(granted.holds_assignments, "{granted:?}");

    assert!(!s.grant(&a).await.unwrap(), "repeated grant");
    assert_eq!(
        entry_of(s, &u.id).await,
        Some(granted.clone()),
        "a grant that changes nothing records nothing"
    );

    assert!(s.revoke_grant(&a, &marker()).await.unwrap());
    let revoked = entry_of(s, &u.id).await.expect("a revocation records");
    assert!(revoked.version > granted.version, "{revoked:?}");
    assert!(!revoked.holds_assignments, "{revoked:?}");

    // Domain and system assignments are assignments too.
    let on_domain = Assignment {
        user_id: u.id.clone(),
        target: Target::Domain(d.id.clone()),
        role_id: r.id.clone(),
    };
    assert!(s.grant(&on_domain).await.unwrap());
    let e = entry_of(s, &u.id).await.unwrap();
    assert!(e.holds_assignments && e.version > revoked.version, "{e:?}");
    assert_eq!(s.outbox_remove(&[e]).await.unwrap(), 1);
    assert_eq!(entry_of(s, &u.id).await, None, "removed");
}

async fn removal_takes_only_the_version_read(s: &dyn Store) {
    let d = new_domain(s).await;
    let p = new_project(s, &d.id).await;
    let u = new_user(s, &d.id).await;
    let (r1, r2) = (new_role(s, None).await, new_role(s, None).await);
    assert!(s.grant(&on_project(&u.id, &p.id, &r1.id)).await.unwrap());
    let read = entry_of(s, &u.id).await.unwrap();
    // A change lands after the relay read the entry...
    assert!(s.grant(&on_project(&u.id, &p.id, &r2.id)).await.unwrap());
    // ...so removing what was read must keep the entry.
    assert_eq!(
        s.outbox_remove(std::slice::from_ref(&read)).await.unwrap(),
        0
    );
    let newer = entry_of(s, &u.id).await.expect("kept");
    assert!(newer.version > read.version);
    assert_eq!(
        s.outbox_remove(std::slice::from_ref(&newer)).await.unwrap(),
        1
    );
    assert_eq!(entry_of(s, &u.id).await, None);
    assert_eq!(s.outbox_remove(&[newer]).await.unwrap(), 0, "twice");
    assert_eq!(s.outbox_remove(&[]).await.unwrap(), 0, "nothing");
}

/// Clears the entries of `users`.
async fn clear(s: &dyn Store, users: &[&UserId]) {
    let mine: Vec<OutboxEntry> = all_pending(s)
        .await
        .into_iter()
        .filter(|e| users.contains(&&e.user_id))
        .collect();
    s.outbox_remove(&mine).await.unwrap();
}

/// Asserts that each of `users` has an entry, holding assignments or not.
async fn assert_recorded(s: &dyn Store, users: &[(&UserId, bool)], what: &str) {
    for (user, holds) in users {
        let e = entry_of(s, user)
            .await
            .unwrap_or_else(|| panic!("{what}: no entry for {user}"));
        assert_eq!(e.holds_assignments, *holds, "{what}: {e:?}");
    }
}

async fn cascades_record_every_user(s: &dyn Store) {
    // Deleting a project records each of its members; one keeps a role
    // elsewhere.
    let d = new_domain(s).await;
    let (p, other) = (new_project(s, &d.id).await, new_project(s, &d.id).await);
    let (u1, u2) = (new_user(s, &d.id).await, new_user(s, &d.id).await);
    let r = new_role(s, None).await;
    for a in [
        on_project(&u1.id, &p.id, &r.id),
        on_project(&u2.id, &p.id, &r.id),
        on_project(&u2.id, &other.id, &r.id),
    ] {
        assert!(s.grant(&a).await.unwrap());
    }
    clear(s, &[&u1.id, &u2.id]).await;
    assert!(s.delete_project(&p.id, &marker()).await.unwrap());
    assert_recorded(s, &[(&u1.id, false), (&u2.id, true)], "delete project").await;

    // Deleting a user.
    clear(s, &[&u1.id, &u2.id]).await;
    assert!(s.delete_user(&u2.id, &marker()).await.unwrap());
    assert_recorded(s, &[(&u2.id, false)], "delete user").await;
    assert_eq!(entry_of(s, &u1.id).await, None, "u1 held nothing there");

    // Deleting a role.
    let u3 = new_user(s, &d.id).await;
    let r3 = new_role(s, None).await;
    assert!(s
        .grant(&on_project(&u3.id, &other.id, &r3.id))
        .await
        .unwrap());
    clear(s, &[&u3.id]).await;
    assert!(s.delete_role(&r3.id).await.unwrap());
    assert_recorded(s, &[(&u3.id, false)], "delete role").await;

    // Deleting a domain records users of other domains holding roles on it
    // or its projects, and its own users.
    let home = new_domain(s).await;
    let outsider = new_user(s, &home.id).await;
    let insider = new_user(s, &d.id).await;
    assert!(s
        .grant(&on_project(&outsider.id, &other.id, &r.id))
        .await
        .unwrap());
    assert!(s
        .grant(&on_project(&insider.id, &other.id, &r.id))
        .await
        .unwrap());
    clear(s, &[&outsider.id, &insider.id, &u3.id]).await;
    assert!(s.delete_domain(&d.id).await.unwrap());
    assert_recorded(
        s,
        &[(&outsider.id, false), (&insider.id, false)],
        "delete domain",
    )
    .await;
    assert_eq!(entry_of(s, &u3.id).await, None, "u3 held nothing");
    clear(s, &[&outsider.id, &insider.id, &u1.id, &u2.id]).await;
}

async fn pending_is_ordered_and_limited(s: &dyn Store) {
    let d = new_domain(s).await;
    let p = new_project(s, &d.id).await;
    let r = new_role(s, None).await;
    let mut users = Vec::new();
    for _ in 0..3 {
        let u = new_user(s, &d.id).await;
        assert!(s.grant(&on_project(&u.id, &p.id, &r.id)).await.unwrap());
        users.push(u.id);
    }
    let all = all_pending(s).await;
    for pair in all.windows(2) {
        assert!(pair[0].version < pair[1].version, "{all:?}");
    }
    let mine: Vec<&UserId> = all
        .iter()
        .map(|e| &e.user_id)
        .filter(|u| users.contains(u))
        .collect();
    assert_eq!(mine, users.iter().collect::<Vec<_>>(), "in change order");
    let first = s.outbox_pending(2).await.unwrap();
    assert_eq!(first, all[..2.min(all.len())].to_vec());
    let refs: Vec<&UserId> = users.iter().collect();
    clear(s, &refs).await;
}

/// Grants a fresh user a role; returns the outbox entry it recorded. Close
/// the store, reopen it, and pass the entry to [`still_pending`].
pub async fn write_pending(s: &dyn Store) -> OutboxEntry {
    let d = new_domain(s).await;
    let p = new_project(s, &d.id).await;
    let u = new_user(s, &d.id).await;
    let r = new_role(s, None).await;
    assert!(s.grant(&on_project(&u.id, &p.id, &r.id)).await.unwrap());
    entry_of(s, &u.id)
        .await
        .expect("the grant recorded an entry")
}

/// Checks, on a reopened store, that `written` is still pending, then
/// removes it.
pub async fn still_pending(s: &dyn Store, written: &OutboxEntry) {
    assert_eq!(
        entry_of(s, &written.user_id).await.as_ref(),
        Some(written),
        "the entry survives reopening"
    );
    assert_eq!(
        s.outbox_remove(std::slice::from_ref(written))
            .await
            .unwrap(),
        1
    );
    assert_eq!(entry_of(s, &written.user_id).await, None);
}

/// Rebuilding the index: every holder is queued (with `holds`), and so is
/// each named user, holder or not; a later removal of the old entry's
/// version leaves the requeued one.
async fn requeue_covers_holders_and_the_named(s: &dyn Store) {
    let d = new_domain(s).await;
    let p = new_project(s, &d.id).await;
    let holder = new_user(s, &d.id).await;
    let gone = UserId::generate();
    let r = new_role(s, None).await;
    assert!(s
        .grant(&on_project(&holder.id, &p.id, &r.id))
        .await
        .unwrap());
    let before = entry_of(s, &holder.id).await.expect("the grant's entry");
    // Delivered: nothing pending for either.
    assert_eq!(
        s.outbox_remove(std::slice::from_ref(&before))
            .await
            .unwrap(),
        1
    );
    assert_eq!(entry_of(s, &holder.id).await, None);

    let queued = s.outbox_requeue(std::slice::from_ref(&gone)).await.unwrap();
    assert!(queued >= 2, "holder and named user queued, got {queued}");
    let h = entry_of(s, &holder.id).await.expect("the holder is queued");
    assert!(h.holds_assignments && h.version > before.version, "{h:?}");
    let g = entry_of(s, &gone).await.expect("the named user is queued");
    assert!(!g.holds_assignments, "{g:?}");
    assert_eq!(
        s.outbox_remove(&[before]).await.unwrap(),
        0,
        "stale version"
    );
    assert_eq!(s.outbox_remove(&[h, g]).await.unwrap(), 2);
}
