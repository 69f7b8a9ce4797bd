//! This shard's record in the members bucket, always written by
//! compare-and-swap so that a status set by someone else (an issuer
//! admitting it as `joining`, an operator retiring it) is never lost.
//!
//! At start the shard writes its URL, weight, key and certificates. A new
//! record is `active` (a founding member); an existing one keeps its
//! status — a member admitted through the join flow stays `joining` until
//! [`crate::federation::activation`] turns it `active`.
//!
//! Key rotation ([`crate::federation::rotation`]) adds the new key's
//! certificate and makes it the record's `kid`; the certificates it
//! replaces stay, each with `retire_at` (its last token's expiry), and
//! every write of the record drops the entries past their `retire_at`.

use bytes::Bytes;
use keyfed_directory::{DirectoryError, Kv};
use keyfed_shared::federation::{
    status_key, Attestations, Member, MemberCert, MemberStatus, StatusAttestation, STATUS_PREFIX,
};
use keyfed_shared::ids::ShardId;
use keyfed_shared::time::now_micros;

fn encode(member: &Member) -> Result<Bytes, DirectoryError> {
    serde_json::to_vec(member)
        .map(Bytes::from)
        .map_err(|e| DirectoryError::Invalid(format!("encoding member record: {e}")))
}

fn decode(value: &[u8]) -> Result<Member, DirectoryError> {
    serde_json::from_slice(value)
        .map_err(|e| DirectoryError::Invalid(format!("decoding member record: {e}")))
}

/// `current` followed by the entries of `previous` for other kids still
/// within their retention at `now`; an entry without `retire_at` gets
/// `now + keep`.
fn merged(current: &[MemberCert], previous: &[MemberCert], now: i64, keep: i64) -> Vec<MemberCert> {
    let mut all = current.to_vec();
    for old in previous {
        if current.iter().any(|c| c.kid == old.kid) {
            continue;
        }
        let retire_at = old.retire_at.unwrap_or(now.saturating_add(keep));
        if retire_at > now {
            all.push(MemberCert {
                retire_at: Some(retire_at),
                ..old.clone()
            });
        }
    }
    all
}

/// Writes `mine` (its status ignored when a record exists) at `now`,
/// keeping the recorded certificates of earlier keys for their retention
/// (`keep` seconds for one not yet given a `retire_at`); returns the
/// status recorded.
pub async fn register(
    kv: &dyn Kv,
    mine: &Member,
    now: i64,
    keep: i64,
) -> Result<MemberStatus, DirectoryError> {
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
                    certificates: merged(&mine.certificates, &existing.certificates, now, keep),
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

/// Makes `current` (kid `current.kid`, key `public_key`) member `id`'s
/// signing certificate at `now`, keeping the others for their retention
/// (`keep` seconds from now when not yet set); returns the record written.
pub async fn rotate(
    kv: &dyn Kv,
    id: &str,
    current: MemberCert,
    public_key: String,
    now: i64,
    keep: i64,
) -> Result<Member, DirectoryError> {
    loop {
        let entry = kv
            .get(id)
            .await?
            .ok_or_else(|| DirectoryError::Invalid(format!("no member record for {id}")))?;
        let mut member = decode(&entry.value)?;
        member.certificates = merged(
            std::slice::from_ref(&current),
            &member.certificates,
            now,
            keep,
        );
        member.kid = current.kid.clone();
        member.public_key = public_key.clone();
        match kv.update(id, encode(&member)?, entry.revision).await {
            Ok(_) => return Ok(member),
            Err(DirectoryError::WrongRevision) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Drops member `id`'s certificate entries past their `retire_at` at
/// `now`; returns whether any was dropped.
pub async fn prune(kv: &dyn Kv, id: &str, now: i64) -> Result<bool, DirectoryError> {
    loop {
        let Some(entry) = kv.get(id).await? else {
            return Ok(false);
        };
        let mut member = decode(&entry.value)?;
        let before = member.certificates.len();
        member
            .certificates
            .retain(|c| c.retire_at.is_none_or(|t| t > now));
        if member.certificates.len() == before {
            return Ok(false);
        }
        match kv.update(id, encode(&member)?, entry.revision).await {
            Ok(_) => return Ok(true),
            Err(DirectoryError::WrongRevision) => continue,
            Err(e) => return Err(e),
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

/// Sets member `id`'s status to `to` (and `trusted_until`; `revoked` for
/// a revocation, see [`StatusAttestation::revoked`]) if it is one of
/// `from`: a status attestation (`status/<id>`), signed with the
/// federation CA key by the sealed directory — so only an issuer can
/// retire or revoke, and the member, which writes only its own record,
/// cannot undo it. Written by compare-and-swap; returns the member as it
/// now stands.
pub async fn set_status(
    kv: &dyn Kv,
    id: &str,
    from: &[MemberStatus],
    to: MemberStatus,
    trusted_until: Option<i64>,
    revoked: bool,
) -> Result<Member, StatusError> {
    let key = status_key(&ShardId::new(id));
    loop {
        let (mut member, _) = existing(kv, id).await?;
        let current = kv.get(&key).await?;
        let attested = match &current {
            Some(e) => Some(decode_attestation(&e.value)?),
            None => None,
        };
        if let Some(a) = &attested {
            a.apply(&mut member);
        }
        let attestation = StatusAttestation {
            member: member.id.clone(),
            status: to,
            trusted_until,
            at: now_micros().max(attested.as_ref().map_or(0, |a| a.at + 1)),
            revoked,
        };
        let forward = attested.as_ref().is_none_or(|a| attestation.supersedes(a));
        if !from.contains(&member.status) || !forward {
            return Err(StatusError::State {
                id: id.to_owned(),
                status: member.status,
            });
        }
        let value = serde_json::to_vec(&attestation)
            .map(Bytes::from)
            .map_err(|e| DirectoryError::Invalid(format!("encoding a status attestation: {e}")))?;
        let written = match &current {
            None => kv.create(&key, value).await,
            Some(e) => kv.update(&key, value, e.revision).await,
        };
        match written {
            Ok(_) => {
                attestation.apply(&mut member);
                return Ok(member);
            }
            Err(DirectoryError::WrongRevision) | Err(DirectoryError::AlreadyExists) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A joiner turning itself `active`: its own record's status, from
/// `joining`, by compare-and-swap (a member writes only its own record;
/// retirement and revocation are attestations, see [`set_status`]).
pub async fn activate(kv: &dyn Kv, id: &str) -> Result<Member, StatusError> {
    loop {
        let (mut member, revision) = existing(kv, id).await?;
        if member.status != MemberStatus::Joining {
            return Err(StatusError::State {
                id: id.to_owned(),
                status: member.status,
            });
        }
        member.status = MemberStatus::Active;
        match kv.update(id, encode(&member)?, revision).await {
            Ok(_) => return Ok(member),
            Err(DirectoryError::WrongRevision) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Member `id`'s record and its revision.
async fn existing(kv: &dyn Kv, id: &str) -> Result<(Member, u64), StatusError> {
    let entry = kv
        .get(id)
        .await?
        .ok_or_else(|| StatusError::Unknown(id.to_owned()))?;
    Ok((decode(&entry.value)?, entry.revision))
}

fn decode_attestation(value: &[u8]) -> Result<StatusAttestation, DirectoryError> {
    serde_json::from_slice(value)
        .map_err(|e| DirectoryError::Invalid(format!("decoding a status attestation: {e}")))
}

/// Every member as it stands: its record with its status attestation
/// applied, in id order (what `keyfed status` shows).
pub async fn effective_all(kv: &dyn Kv) -> Result<Vec<Member>, DirectoryError> {
    let snapshot = kv.snapshot("").await?;
    let mut attestations = Attestations::default();
    let mut records = Vec::new();
    for (key, entry) in &snapshot.entries {
        if key.starts_with(STATUS_PREFIX) {
            match decode_attestation(&entry.value) {
                Ok(a) => {
                    attestations.offer(a);
                }
                Err(e) => tracing::warn!(%key, error = %e, "skipping a malformed attestation"),
            }
        } else {
            match decode(&entry.value) {
                Ok(m) => records.push(m),
                Err(e) => tracing::warn!(%key, error = %e, "skipping a malformed member record"),
            }
        }
    }
    let mut all: Vec<Member> = records
        .into_iter()
        .map(|m| attestations.effective(m))
        .collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(all)
}

/// Member `id` as it stands (see [`effective_all`]).
pub async fn effective(kv: &dyn Kv, id: &str) -> Result<Option<Member>, DirectoryError> {
    let Some(entry) = kv.get(id).await? else {
        return Ok(None);
    };
    let mut member = decode(&entry.value)?;
    if let Some(a) = kv.get(&status_key(&member.id)).await? {
        decode_attestation(&a.value)?.apply(&mut member);
    }
    Ok(Some(member))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use keyfed_directory::{Bucket, Directory, EmbeddedConfig, EmbeddedDirectory};

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
        let first = register(
            kv.as_ref(),
            &member(MemberStatus::Active, "http://a"),
            0,
            10,
        )
        .await;
        assert_eq!(first.unwrap(), MemberStatus::Active);
        // Admitted as joining by an issuer: a restart keeps joining, with
        // the new URL.
        kv.put(
            "s1",
            encode(&member(MemberStatus::Joining, "http://a")).unwrap(),
        )
        .await
        .unwrap();
        let again = register(
            kv.as_ref(),
            &member(MemberStatus::Active, "http://b"),
            0,
            10,
        )
        .await;
        assert_eq!(again.unwrap(), MemberStatus::Joining);
        let record = stored(kv.as_ref()).await;
        assert_eq!(
            (record.status, record.url.as_str()),
            (MemberStatus::Joining, "http://b")
        );
        // A change from the wrong state is refused; a retirement is an
        // attestation beside the record, which the member's own writes
        // cannot undo.
        let wrong = set_status(
            kv.as_ref(),
            "s1",
            &[MemberStatus::Active],
            MemberStatus::Retired,
            None,
            false,
        )
        .await;
        assert!(matches!(wrong, Err(StatusError::State { .. })), "{wrong:?}");
        let retired = set_status(
            kv.as_ref(),
            "s1",
            &[MemberStatus::Joining],
            MemberStatus::Retired,
            Some(42),
            false,
        )
        .await
        .unwrap();
        assert_eq!(retired.trusted_until, Some(42));
        kv.put(
            "s1",
            encode(&member(MemberStatus::Active, "http://c")).unwrap(),
        )
        .await
        .unwrap();
        let now = effective(kv.as_ref(), "s1").await.unwrap().unwrap();
        assert_eq!(
            (now.status, now.trusted_until, now.url.as_str()),
            (MemberStatus::Retired, Some(42), "http://c")
        );
        let back = set_status(
            kv.as_ref(),
            "s1",
            &[MemberStatus::Retired],
            MemberStatus::Active,
            None,
            false,
        )
        .await;
        assert!(matches!(back, Err(StatusError::State { .. })), "{back:?}");
        // A revocation may still shorten a retirement.
        let revoked = set_status(
            kv.as_ref(),
            "s1",
            &[MemberStatus::Retired],
            MemberStatus::Retired,
            Some(7),
            false,
        )
        .await
        .unwrap();
        assert_eq!(revoked.trusted_until, Some(7));
        let all = effective_all(kv.as_ref()).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].trusted_until, Some(7));
        let unknown = set_status(
            kv.as_ref(),
            "nobody",
            &[MemberStatus::Active],
            MemberStatus::Retired,
            None,
            false,
        )
        .await;
        assert!(
            matches!(unknown, Err(StatusError::Unknown(_))),
            "{unknown:?}"
        );
    }

    fn cert(kid: &str) -> MemberCert {
        MemberCert::new(kid, kid.as_bytes())
    }

    #[tokio::test]
    async fn a_rotation_keeps_the_old_certificate_until_its_retire_at() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = EmbeddedDirectory::open(&EmbeddedConfig::new(tmp.path())).unwrap();
        let kv = dir.kv(Bucket::Members);
        let mut first = member(MemberStatus::Active, "http://a");
        first.certificates = vec![cert("s1.1")];
        register(kv.as_ref(), &first, 100, 50).await.unwrap();
        let rotated = rotate(kv.as_ref(), "s1", cert("s1.2"), "k2".into(), 100, 50)
            .await
            .unwrap();
        assert_eq!(
            (rotated.kid.as_str(), rotated.public_key.as_str()),
            ("s1.2", "k2")
        );
        let kids: Vec<_> = rotated
            .certificates
            .iter()
            .map(|c| (c.kid.as_str(), c.retire_at))
            .collect();
        assert_eq!(kids, [("s1.2", None), ("s1.1", Some(150))]);
        // A restart with the new key keeps the old entry and its retire_at.
        let mut second = member(MemberStatus::Active, "http://a");
        second.kid = "s1.2".into();
        second.certificates = vec![cert("s1.2")];
        register(kv.as_ref(), &second, 120, 50).await.unwrap();
        assert_eq!(stored(kv.as_ref()).await.certificates, rotated.certificates);
        // Nothing to prune before retire_at; the old entry goes at it.
        assert!(!prune(kv.as_ref(), "s1", 149).await.unwrap());
        assert!(prune(kv.as_ref(), "s1", 150).await.unwrap());
        assert_eq!(stored(kv.as_ref()).await.certificates, [cert("s1.2")]);
        // A re-registration past retire_at drops it too.
        rotate(kv.as_ref(), "s1", cert("s1.3"), "k3".into(), 200, 50)
            .await
            .unwrap();
        let mut third = second.clone();
        third.certificates = vec![cert("s1.3")];
        register(kv.as_ref(), &third, 251, 50).await.unwrap();
        assert_eq!(stored(kv.as_ref()).await.certificates, [cert("s1.3")]);
    }
}
