//! Revocation events, kept in insertion order. Events are also written by
//! other resources' transactions through [`insert`].

use super::error::Op;
use super::{col, decode_all, execute, query, PgStore};
use crate::store::{StoreError, StoreResult};
use deadpool_postgres::GenericClient;
use keyfed_shared::ids::{AuditId, DomainId, ProjectId, UserId};
use keyfed_shared::revocation::{RevocationEvent, RevocationSubject};
use tokio_postgres::Row;

/// The subject columns of an event: `(kind, audit_id, user_id, project_id,
/// domain_id)`, with only the kind's columns set.
type SubjectColumns<'a> = (
    &'static str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

fn subject_columns(s: &RevocationSubject) -> SubjectColumns<'_> {
    match s {
        RevocationSubject::AuditId(a) => ("audit_id", Some(a.as_str()), None, None, None),
        RevocationSubject::User(u) => ("user", None, Some(u.as_str()), None, None),
        RevocationSubject::Project(p) => ("project", None, None, Some(p.as_str()), None),
        RevocationSubject::UserOnProject(u, p) => (
            "user_on_project",
            None,
            Some(u.as_str()),
            Some(p.as_str()),
            None,
        ),
        RevocationSubject::Domain(d) => ("domain", None, None, None, Some(d.as_str())),
    }
}

fn decode(row: &Row) -> StoreResult<RevocationEvent> {
    let kind: String = col(row, "kind")?;
    // A column the kind requires; the schema's check makes it present.
    let required = |name: &str| -> StoreResult<String> {
        col::<Option<String>>(row, name)?.ok_or_else(|| {
            StoreError::Backend(format!("revocation event of kind {kind} lacks {name}"))
        })
    };
    let subject = match kind.as_str() {
        "audit_id" => RevocationSubject::AuditId(AuditId::new(required("audit_id")?)),
        "user" => RevocationSubject::User(UserId::new(required("user_id")?)),
        "project" => RevocationSubject::Project(ProjectId::new(required("project_id")?)),
        "user_on_project" => RevocationSubject::UserOnProject(
            UserId::new(required("user_id")?),
            ProjectId::new(required("project_id")?),
        ),
        "domain" => RevocationSubject::Domain(DomainId::new(required("domain_id")?)),
        other => {
            return Err(StoreError::Backend(format!(
                "unknown revocation event kind {other:?}"
            )))
        }
    };
    Ok(RevocationEvent {
        subject,
        issued_before: col(row, "issued_before")?,
        expires_at: col(row, "expires_at")?,
    })
}

/// Stores one event on `c` (a pooled connection or an open transaction).
pub(super) async fn insert<C: GenericClient>(c: &C, e: &RevocationEvent) -> StoreResult<()> {
    let (kind, audit, user, project, domain) = subject_columns(&e.subject);
    execute(
        c,
        "INSERT INTO revocation_events \
         (kind, audit_id, user_id, project_id, domain_id, issued_before, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &kind,
            &audit,
            &user,
            &project,
            &domain,
            &e.issued_before,
            &e.expires_at,
        ],
        Op::Write,
    )
    .await?;
    Ok(())
}

pub(super) async fn add(db: &PgStore, e: &RevocationEvent) -> StoreResult<()> {
    let c = db.client().await?;
    insert(&c, e).await
}

pub(super) async fn list(db: &PgStore, now_secs: i64) -> StoreResult<Vec<RevocationEvent>> {
    let c = db.client().await?;
    let rows = query(
        &c,
        "SELECT kind, audit_id, user_id, project_id, domain_id, issued_before, expires_at \
         FROM revocation_events \
         WHERE expires_at > $1 ORDER BY seq",
        &[&now_secs],
    )
    .await?;
    decode_all(&rows, decode)
}

pub(super) async fn prune(db: &PgStore, now_secs: i64) -> StoreResult<u64> {
    let c = db.client().await?;
    execute(
        &c,
        "DELETE FROM revocation_events WHERE expires_at <= $1",
        &[&now_secs],
        Op::Delete,
    )
    .await
}
