//! This shard's record in the members bucket, always written by
//! compare-and-swap so that a status set by someone else (an issuer
//! admitting it as `joining`, an operator retiring it) is never lost.
//!
//! At start the shard writes its URL, weight, key and certificates. A new
//! record is `active` (a founding member); an existing one keeps its
//! status — a member admitted through the join flow stays `joining` until
//! [`crate::federation::activation`] turns it `active`.

use bytes::Bytes;
use keyfed_directory::{DirectoryError, Kv};
use keyfed_shared::federation::{Member, MemberStatus};

fn encode(member: &Member) -> Result<Bytes, DirectoryError> {
    serde_json::to_vec(member)
        .map(Bytes::from)
        .map_err(|e| DirectoryError::Invalid(format!("encoding member record: {e}")))
}

fn decode(value: &[u8]) -> Result<Member, DirectoryError> {
    serde_json::from_slice(value)
        .map_err(|e| DirectoryError::Invalid(format!("decoding member record: {e}")))
}

/// Writes `mine` (its status ignored when a record exists); returns the
/// status recorded.
pub async fn register(kv: &dyn Kv, mine: &Member) -> Result<MemberStatus, DirectoryError> {
    let id = mine.id.as_str();
    loop {
        match kv.get(id).await? {
            None => match kv.create(id, encode(mine)?).await {
                Ok(_) => return Ok(mine.status),
                Err(DirectoryError::AlreadyExists) => continue,
                Err(e) => return Err(e),
            },
            Some(entry) => {
                let existing = decode(&entry.value)?;
                let record = Member {
                    status: existing.status,
                    trusted_until: existing.trusted_until,
                    ..mine.clone()
                };
                match kv.update(id, encode(&record)?, entry.revision).await {
                    Ok(_) => return Ok(record.status),
                    Err(DirectoryError::WrongRevision) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// Why a status change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No member has that id.
    #[error("no member {0}")]
    Unknown(String),
    /// The member is not in a state the change applies to.
    #[error("member {id} is {status:?}")]
    State { id: String, status: MemberStatus },
    /// The directory failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// Sets member `id`'s status to `to` (and `trusted_until`) if it is one of
/// `from`, by compare-and-swap; returns the record written.
pub async fn set_status(
    kv: &dyn Kv,
    id: &str,
    from: &[MemberStatus],
    to: MemberStatus,
    trusted_until: Option<i64>,
) -> Result<Member, StatusError> {
    loop {
        let entry = kv
            .get(id)
            .await?
            .ok_or_else(|| StatusError::Unknown(id.to_owned()))?;
        let mut member = decode(&entry.value)?;
        if !from.contains(&member.status) {
            return Err(StatusError::State {
                id: id.to_owned(),
                status: member.status,
            });
        }
        member.status = to;
        member.trusted_until = trusted_until;
        match kv.update(id, encode(&member)?, entry.revision).await {
            Ok(_) => return Ok(member),
            Err(DirectoryError::WrongRevision) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use keyfed_directory::{Bucket, Directory, EmbeddedConfig, EmbeddedDirectory};
    use keyfed_shared::ids::ShardId;

    fn member(status: MemberStatus, url: &str) -> Member {
        Member {
            id: ShardId::new("s1"),
            url: url.into(),
            weight: 1,
            status,
            kid: "s1.1".into(),
            public_key: String::new(),
            certificates: vec![],
            trusted_until: None,
        }
    }

    async fn stored(kv: &dyn Kv) -> Member {
        decode(&kv.get("s1").await.unwrap().unwrap().value).unwrap()
    }

    #[tokio::test]
    async fn registration_keeps_a_status_set_by_others_and_changes_are_guarded() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = EmbeddedDirectory::open(&EmbeddedConfig::new(tmp.path())).unwrap();
        let kv = dir.kv(Bucket::Members);
        // A new record takes the registering shard's status.
        let first = register(kv.as_ref(), &member(MemberStatus::Active, "http://a")).await;
        assert_eq!(first.unwrap(), MemberStatus::Active);
        // Admitted as joining by an issuer: a restart keeps joining, with
        // the new URL.
        set_status(
            kv.as_ref(),
            "s1",
            &[MemberStatus::Active],
            MemberStatus::Joining,
            None,
        )
        .await
        .unwrap();
        let again = register(kv.as_ref(), &member(MemberStatus::Active, "http://b")).await;
        assert_eq!(again.unwrap(), MemberStatus::Joining);
        let record = stored(kv.as_ref()).await;
        assert_eq!(
            (record.status, record.url.as_str()),
            (MemberStatus::Joining, "http://b")
        );
        // A change from the wrong state is refused; a retirement sets
        // trusted_until, kept across a re-registration.
        let wrong = set_status(
            kv.as_ref(),
            "s1",
            &[MemberStatus::Active],
            MemberStatus::Retired,
            None,
        )
        .await;
        assert!(matches!(wrong, Err(StatusError::State { .. })), "{wrong:?}");
        let retired = set_status(
            kv.as_ref(),
            "s1",
            &[MemberStatus::Joining],
            MemberStatus::Retired,
            Some(42),
        )
        .await
        .unwrap();
        assert_eq!(retired.trusted_until, Some(42));
        register(kv.as_ref(), &member(MemberStatus::Active, "http://c"))
            .await
            .unwrap();
        let record = stored(kv.as_ref()).await;
        assert_eq!(
            (record.status, record.trusted_until),
            (MemberStatus::Retired, Some(42))
        );
        let unknown = set_status(
            kv.as_ref(),
            "nobody",
            &[MemberStatus::Active],
            MemberStatus::Retired,
            None,
        )
        .await;
        assert!(
            matches!(unknown, Err(StatusError::Unknown(_))),
            "{unknown:?}"
        );
    }
}
