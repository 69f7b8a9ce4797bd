//! Compact JWS with Ed25519.

use super::{Claims, TokenError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Longest token accepted; anything longer is rejected unparsed.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Longest `kid` accepted.
const MAX_KID_LEN: usize = 128;

#[derive(Serialize, Deserialize)]
struct Header<'a> {
    alg: &'a str,
    kid: &'a str,
}

/// Signs tokens with one key. Cheap to clone behind an `Arc`.
pub struct Signer {
    kid: String,
    header_b64: String,
    key: SigningKey,
}

impl Signer {
    /// A signer that names itself `kid` in every token header.
    pub fn new(kid: impl Into<String>, key: SigningKey) -> Self {
        let kid = kid.into();
        let header = serde_json::to_vec(&Header {
            alg: "EdDSA",
            kid: &kid,
        })
        .unwrap_or_default();
        Self {
            header_b64: B64.encode(header),
            kid,
            key,
        }
    }

    /// The key id written into token headers.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, for validators.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Encodes and signs the claims.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let payload = serde_json::to_vec(claims).map_err(|_| TokenError::Encode)?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&self.header_b64);
        token.push('.');
        B64.encode_string(payload, &mut token);
        let signature = self.key.sign(token.as_bytes());
        token.push('.');
        B64.encode_string(signature.to_bytes(), &mut token);
        Ok(token)
    }
}

/// A structurally valid token whose signature is not yet checked.
#[derive(Debug)]
pub struct Unverified<'a> {
    kid: String,
    signing_input: &'a str,
    payload_b64: &'a str,
    signature: Signature,
}

/// Structural checks only: size, three base64url parts, an EdDSA header with
/// a `kid`, a 64-byte signature. No key look-up, no crypto.
pub fn parse(token: &str) -> Result<Unverified<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three parts"));
    };
    let header_bytes = B64
        .decode(header_b64)
        .map_err(|_| TokenError::Malformed("header encoding"))?;
    let header: Header<'_> =
        serde_json::from_slice(&header_bytes).map_err(|_| TokenError::Malformed("header"))?;
    if header.alg != "EdDSA" {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    if header.kid.is_empty() || header.kid.len() > MAX_KID_LEN {
        return Err(TokenError::Malformed("kid"));
    }
    let sig_bytes: [u8; 64] = B64
        .decode(sig_b64)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(TokenError::Malformed("signature encoding"))?;
    let kid = header.kid.to_owned();
    Ok(Unverified {
        kid,
        signing_input: &token[..header_b64.len() + 1 + payload_b64.len()],
        payload_b64,
        signature: Signature::from_bytes(&sig_bytes),
    })
}

impl Unverified<'_> {
    /// The signer's key id from the header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The `exp` claim (unix microseconds) read **without** verifying the
    /// signature: only good for rejecting a token early (before a key
    /// look-up), never for trusting it. Fails as [`TokenError::Malformed`]
    /// when the payload is not base64url JSON with an integer `exp`.
    pub fn unverified_expiry(&self) -> Result<i64, TokenError> {
        #[derive(Deserialize)]
        struct Expiry {
            exp: i64,
        }
        let payload = B64
            .decode(self.payload_b64)
            .map_err(|_| TokenError::Malformed("payload encoding"))?;
        serde_json::from_slice::<Expiry>(&payload)
            .map(|e| e.exp)
            .map_err(|_| TokenError::Malformed("claims"))
    }

    /// Verifies the signature with `key` and decodes the claims.
    pub fn verify(self, key: &VerifyingKey) -> Result<Claims, TokenError> {
        key.verify_strict(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = B64
            .decode(self.payload_b64)
            .map_err(|_| TokenError::Malformed("payload encoding"))?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed("claims"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ids::{AuditId, DomainId, ProjectId, RoleId, UserId};
    use crate::token::Scope;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn claims() -> Claims {
        Claims {
            user_id: UserId::generate(),
            user_name: "alice".into(),
            user_domain_id: DomainId::new("default"),
            methods: vec!["password".into()],
            issued_at: 1_700_000_000_000_000,
            expires_at: 1_700_003_600_000_000,
            audit_ids: vec![AuditId::generate()],
            scope: Scope::Project {
                id: ProjectId::generate(),
                name: "demo".into(),
                domain_id: DomainId::new("default"),
            },
            roles: vec![RoleId::generate(), RoleId::generate(), RoleId::generate()],
            shard_set: vec![],
        }
    }

    #[test]
    fn round_trip_and_size() {
        let signer = Signer::new("shard-1.1", key(1));
        let c = claims();
        let token = signer.sign(&c).unwrap();
        assert!(token.len() <= 600, "token is {} bytes", token.len());
        let parsed = parse(&token).unwrap();
        assert_eq!(parsed.kid(), "shard-1.1");
        assert_eq!(parsed.verify(&signer.verifying_key()).unwrap(), c);
    }

    #[test]
    fn wrong_key_and_tampering_fail() {
        let signer = Signer::new("s.1", key(1));
        let token = signer.sign(&claims()).unwrap();
        let other = key(2).verifying_key();
        assert_eq!(
            parse(&token).unwrap().verify(&other).unwrap_err(),
            TokenError::BadSignature
        );
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = B64.encode(br#"{"sub":"admin"}"#);
        parts[1] = &forged;
        let forged = parts.join(".");
        assert_eq!(
            parse(&forged)
                .unwrap()
                .verify(&signer.verifying_key())
                .unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn rejects_other_algorithms_and_garbage() {
        let none = format!(
            "{}.{}.",
            B64.encode(br#"{"alg":"none","kid":"x"}"#),
            B64.encode(b"{}")
        );
        assert_eq!(parse(&none).unwrap_err(), TokenError::UnsupportedAlgorithm);
        for bad in ["", "a", "a.b", "a.b.c.d", "....", &"x".repeat(5000)] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn expiry_is_readable_before_verification() {
        let signer = Signer::new("s.1", key(1));
        let c = claims();
        let token = signer.sign(&c).unwrap();
        assert_eq!(parse(&token).unwrap().unverified_expiry(), Ok(c.expires_at));
        let junk = format!(
            "{}.{}.{}",
            B64.encode(br#"{"alg":"EdDSA","kid":"s.1"}"#),
            B64.encode(br#"{"exp":"soon"}"#),
            B64.encode([0u8; 64])
        );
        assert!(matches!(
            parse(&junk).unwrap().unverified_expiry(),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn expiry() {
        let c = claims();
        assert!(c.check_time(c.expires_at - 1).is_ok());
        assert_eq!(c.check_time(c.expires_at), Err(TokenError::Expired));
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC{0,600}") {
            let _ = parse(&s).map(|u| u.verify(&key(1).verifying_key()));
        }

        #[test]
        fn parser_never_panics_on_dotted_base64(
            a in "[A-Za-z0-9_-]{0,120}", b in "[A-Za-z0-9_-]{0,200}", c in "[A-Za-z0-9_-]{0,100}"
        ) {
            let _ = parse(&format!("{a}.{b}.{c}")).map(|u| u.verify(&key(1).verifying_key()));
        }

        #[test]
        fn any_bit_flip_is_rejected(pos in 0usize..400, bit in 0u8..8) {
            let signer = Signer::new("s.1", key(3));
            let token = signer.sign(&claims()).unwrap();
            let mut bytes = token.into_bytes();
            let pos = pos % bytes.len();
            bytes[pos] ^= 1 << bit;
            if let Ok(s) = String::from_utf8(bytes) {
                let r = parse(&s).and_then(|u| u.verify(&signer.verifying_key()));
                prop_assert!(r.is_err());
            }
        }
    }
}
