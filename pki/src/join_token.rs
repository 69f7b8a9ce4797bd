//! Short-lived secrets that prove the bearer was authorized by someone with
//! write access to the directory: join tokens (single-use, for a new shard
//! to get its certificate) and admin call tokens (for the administration
//! CLI's calls to members).
//!
//! A token reads `<id>.<secret>`: `id` is 16 hex digits naming the record,
//! `secret` 256 random bits, base64url. Only a record is stored — the
//! SHA-256 of the secret, the purpose and the expiry — so a reader of the
//! directory learns nothing usable. Verification compares digests in
//! constant time; single use is enforced by the store (delete with
//! compare-and-swap), not here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// A shard joining the federation (single use).
    Join,
    /// Administration calls to members (until it expires).
    Admin,
}

impl Purpose {
    /// The directory key prefix of records of this purpose.
    pub fn prefix(self) -> &'static str {
        match self {
            Purpose::Join => "join/",
            Purpose::Admin => "admin/",
        }
    }
}

/// The stored form of a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// What the token is for.
    pub purpose: Purpose,
    /// SHA-256 of the secret, base64url.
    pub secret_sha256: String,
    /// Unix seconds after which the token is refused.
    pub expires_at: i64,
}

/// Why a presented token is refused. Callers answer every kind the same
/// way to the client, so the kind is for logs only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("malformed token")]
    Malformed,
    #[error("token expired")]
    Expired,
    #[error("token not valid for this purpose")]
    WrongPurpose,
    #[error("secret does not match")]
    Mismatch,
}

/// A token as presented: its record id and secret.
pub struct Presented {
    id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Creates a token for `purpose` valid from `now` for `ttl_secs`: the
/// string to hand to its bearer, its record id, and the record to store
/// under `purpose.prefix() + id`.
pub fn create(purpose: Purpose, now: i64, ttl_secs: i64) -> (String, String, TokenRecord) {
    let id_bytes: [u8; 8] = rand::random();
    let id: String = id_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let secret: [u8; 32] = rand::random();
    let record = TokenRecord {
        purpose,
        secret_sha256: B64.encode(sha256(&secret)),
        expires_at: now.saturating_add(ttl_secs),
    };
    (format!("{id}.{}", B64.encode(secret)), id, record)
}

impl Presented {
    /// Splits a presented token; checks only its shape.
    pub fn parse(token: &str) -> Result<Self, TokenRejection> {
        let (id, secret) = token.split_once('.').ok_or(TokenRejection::Malformed)?;
        let id_ok = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
        if !id_ok {
            return Err(TokenRejection::Malformed);
        }
        let secret = B64.decode(secret).map_err(|_| TokenRejection::Malformed)?;
        if secret.len() != 32 {
            return Err(TokenRejection::Malformed);
        }
        Ok(Self {
            id: id.to_ascii_lowercase(),
            secret,
        })
    }

    /// The record id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The directory key of its record for `purpose`.
    pub fn key(&self, purpose: Purpose) -> String {
        format!("{}{}", purpose.prefix(), self.id)
    }

    /// Checks the secret against `record` for `purpose` at `now`.
    pub fn verify(
        &self,
        record: &TokenRecord,
        purpose: Purpose,
        now: i64,
    ) -> Result<(), TokenRejection> {
        let stored = B64
            .decode(&record.secret_sha256)
            .map_err(|_| TokenRejection::Malformed)?;
        let matches: bool = sha256(&self.secret).as_slice().ct_eq(&stored).into();
        if !matches {
            return Err(TokenRejection::Mismatch);
        }
        if record.purpose != purpose {
            return Err(TokenRejection::WrongPurpose);
        }
        if now >= record.expires_at {
            return Err(TokenRejection::Expired);
        }
        Ok(())
    }
}

/// Parses a TTL such as `90s`, `10m`, `2h`, `1d` or a bare number of
/// seconds.
pub fn parse_ttl(text: &str) -> Option<i64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = digits.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(scale).filter(|s| *s > 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_token_verifies_until_it_expires() {
        let (token, id, record) = create(Purpose::Join, 1000, 600);
        let presented = Presented::parse(&token).unwrap();
        assert_eq!(presented.id(), id);
        assert_eq!(presented.key(Purpose::Join), format!("join/{id}"));
        presented.verify(&record, Purpose::Join, 1000).unwrap();
        presented.verify(&record, Purpose::Join, 1599).unwrap();
        assert_eq!(
            presented.verify(&record, Purpose::Join, 1600),
            Err(TokenRejection::Expired)
        );
        assert_eq!(
            presented.verify(&record, Purpose::Admin, 1000),
            Err(TokenRejection::WrongPurpose)
        );
    }

    #[test]
    fn the_record_holds_no_secret() {
        let (token, _, record) = create(Purpose::Join, 0, 60);
        let secret = token.split_once('.').unwrap().1;
        let json = serde_json::to_string(&record).unwrap();
        assert!(!json.contains(secret));
        let back: TokenRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn wrong_and_malformed_tokens_are_refused() {
        let (token, id, record) = create(Purpose::Join, 0, 60);
        let (other, _, _) = create(Purpose::Join, 0, 60);
        let forged = format!("{id}.{}", other.split_once('.').unwrap().1);
        assert_eq!(
            Presented::parse(&forged)
                .unwrap()
                .verify(&record, Purpose::Join, 1)
                .unwrap_err(),
            TokenRejection::Mismatch
        );
        for bad in [
            "",
            "nodot",
            "xyz.abc",
            &format!("{id}.short"),
            &format!("{id}x.{}", token.split_once('.').unwrap().1),
            &format!("{id}.{}=", token.split_once('.').unwrap().1),
        ] {
            assert!(Presented::parse(bad).is_err(), "{bad:?}");
        }
        assert_ne!(token, other, "tokens are random");
    }

    #[test]
    fn ttls_parse() {
        assert_eq!(parse_ttl("10m"), Some(600));
        assert_eq!(parse_ttl("90"), Some(90));
        assert_eq!(parse_ttl("2h"), Some(7200));
        assert_eq!(parse_ttl("1d"), Some(86_400));
        assert_eq!(parse_ttl("0s"), None);
        assert_eq!(parse_ttl("5y"), None);
        assert_eq!(parse_ttl("m"), None);
    }
}
