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
