//! Issuing and validating this shard's tokens, and rendering the Keystone
//! token body. Validation is offline: signature, expiry and revocation are
//! checked in memory and names come from the global-data snapshot.

use crate::error::Result;
use crate::state::Shard;
use keyfed_shared::time::{keystone_timestamp, now_micros};
use keyfed_shared::token::{self, Claims, Scope, TokenError};
use serde_json::{json, Value};

impl Shard {
    /// Signs the claims.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        Ok(self.signer.sign(claims)?)
    }

    /// Validates a token: structure, signer, signature, expiry (extended by
    /// the configured window when `allow_expired`), revocation.
    pub fn validate(&self, token: &str, allow_expired: bool) -> Result<Claims, TokenError> {
        let unverified = token::parse(token)?;
        let key = self
            .keys
            .get(unverified.kid())
            .ok_or(TokenError::UnknownSigner)?;
        let claims = unverified.verify(key)?;
        let now = now_micros();
        let grace = if allow_expired {
            self.config.tokens.allow_expired_window_secs as i64 * 1_000_000
        } else {
            0
        };
        claims.check_time(now - grace)?;
        if self.is_revoked(&claims.facts()) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// The `{"token": {...}}` body Keystone returns for these claims.
    pub fn token_body(&self, claims: &Claims, with_catalog: bool) -> Value {
        let global = self.global();
        let mut token = json!({
            "methods": claims.methods,
            "user": {
                "id": claims.user_id,
                "name": claims.user_name,
                "domain": {
                    "id": claims.user_domain_id,
                    "name": global.domain_name(&claims.user_domain_id),
                },
                "password_expires_at": null,
            },
            "audit_ids": claims.audit_ids,
            "expires_at": keystone_timestamp(claims.expires_at),
            "issued_at": keystone_timestamp(claims.issued_at),
        });
        let obj = token.as_object_mut();
        if let Some(obj) = obj {
            match &claims.scope {
                Scope::Unscoped => {}
                Scope::Project {
                    id,
                    name,
                    domain_id,
                } => {
                    obj.insert(
                        "project".into(),
                        json!({"id": id, "name": name, "domain": {
                            "id": domain_id, "name": global.domain_name(domain_id)}}),
                    );
                    obj.insert("is_domain".into(), Value::Bool(false));
                }
                Scope::Domain { id } => {
                    obj.insert(
                        "domain".into(),
                        json!({"id": id, "name": global.domain_name(id)}),
                    );
                }
                Scope::System => {
                    obj.insert("system".into(), json!({"all": true}));
                }
            }
            if claims.scope != Scope::Unscoped {
                let roles = global.effective_roles(&claims.roles);
                obj.insert("roles".into(), Value::Array(global.role_refs(&roles)));
                if with_catalog {
                    obj.insert("catalog".into(), global.catalog.as_ref().clone());
                }
            }
        }
        json!({ "token": token })
    }
}
