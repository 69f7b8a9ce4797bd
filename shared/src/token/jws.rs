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

/// Longest encoded header accepted: 192 bytes decoded, room for the
/// longest `kid` (parsing decodes the header on the stack).
const MAX_HEADER_B64_LEN: usize = 256;

/// A `kid`, held inline so that parsing allocates nothing.
#[derive(Clone, Copy)]
struct Kid {
    bytes: [u8; MAX_KID_LEN],
    len: usize,
}

impl Kid {
    fn new(kid: &str) -> Self {
        let mut bytes = [0u8; MAX_KID_LEN];
        bytes[..kid.len()].copy_from_slice(kid.as_bytes());
        Self {
            bytes,
            len: kid.len(),
        }
    }

    fn as_str(&self) -> &str {
        // Copied whole from a `&str`, so always UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Debug for Kid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

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
    kid: Kid,
    signing_input: &'a str,
    payload_b64: &'a str,
    signature: Signature,
}

/// Structural checks only: size, three base64url parts, an EdDSA header with
/// a `kid`, a 64-byte signature. No key look-up, no crypto, no allocation.
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
    if header_b64.len() > MAX_HEADER_B64_LEN {
        return Err(TokenError::Malformed("header encoding"));
    }
    let mut header_bytes = [0u8; MAX_HEADER_B64_LEN / 4 * 3];
    let header_len = B64
        .decode_slice(header_b64, &mut header_bytes)
        .map_err(|_| TokenError::Malformed("header encoding"))?;
    let header: Header<'_> = serde_json::from_slice(&header_bytes[..header_len])
        .map_err(|_| TokenError::Malformed("header"))?;
    if header.alg != "EdDSA" {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    if header.kid.is_empty() || header.kid.len() > MAX_KID_LEN {
        return Err(TokenError::Malformed("kid"));
    }
    let mut sig_bytes = [0u8; 64];
    match B64.decode_slice(sig_b64, &mut sig_bytes) {
        Ok(64) => {}
        _ => return Err(TokenError::Malformed("signature encoding")),
    }
    Ok(Unverified {
        kid: Kid::new(header.kid),
        signing_input: &token[..header_b64.len() + 1 + payload_b64.len()],
        payload_b64,
        signature: Signature::from_bytes(&sig_bytes),
    })
}

impl Unverified<'_> {
    /// The signer's key id from the header.
    pub fn kid(&self) -> &str {
        self.kid.as_str()
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
        let signer = Signer::new("s.1", key(1));
        let token = signer.sign(&claims()).unwrap();
        let (rest, sig) = token.rsplit_once('.').unwrap();
        for bad_sig in [&sig[..sig.len() - 2], &format!("{sig}AA"), ""] {
            let bad = format!("{rest}.{bad_sig}");
            assert_eq!(
                parse(&bad).unwrap_err(),
                TokenError::Malformed("signature encoding")
            );
        }
        let long_kid = Signer::new("k".repeat(MAX_KID_LEN), key(1));
        let token = long_kid.sign(&claims()).unwrap();
        assert_eq!(parse(&token).unwrap().kid(), "k".repeat(MAX_KID_LEN));
        let too_long = Signer::new("k".repeat(MAX_KID_LEN + 1), key(1));
        assert!(parse(&too_long.sign(&claims()).unwrap()).is_err());
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
        assert!(c.check_time(c.expires_at - 1, 0, 0).is_ok());
        assert_eq!(c.check_time(c.expires_at, 0, 0), Err(TokenError::Expired));
        assert!(
            c.check_time(c.expires_at + 9, 10, 0).is_ok(),
            "within grace"
        );
        assert_eq!(
            c.check_time(c.expires_at + 10, 10, 0),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_token_issued_beyond_the_clock_skew_is_refused() {
        let c = claims();
        let skew = 60_000_000;
        assert!(c.check_time(c.issued_at, 0, skew).is_ok());
        assert!(
            c.check_time(c.issued_at - skew, 0, skew).is_ok(),
            "issued exactly the skew ahead"
        );
        assert_eq!(
            c.check_time(c.issued_at - skew - 1, 0, skew),
            Err(TokenError::IssuedInFuture)
        );
        assert_eq!(
            c.check_time(c.issued_at - skew - 1, 3_600_000_000, skew),
            Err(TokenError::IssuedInFuture),
            "allow_expired's grace does not move the skew"
        );
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
