//! Newtyped identifiers. Keystone ids are opaque strings (usually 32 hex
//! characters, `default` for the default domain); each kind gets its own type
//! so a user id can never be passed where a project id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest id accepted from a client (Keystone's columns are 64 characters).
pub const MAX_ID_LEN: usize = 64;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an existing id.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }
            /// A fresh random id in Keystone's format (32 lowercase hex characters).
            pub fn generate() -> Self {
                Self(uuid::Uuid::new_v4().simple().to_string())
            }
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// Consumes the id, returning its string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A domain's id (`default` for the bootstrap domain).
    DomainId
);
id_type!(
    /// A project's (tenant's) id.
    ProjectId
);
id_type!(
    /// A user's id.
    UserId
);
id_type!(
    /// A role's id.
    RoleId
);
id_type!(
    /// A region's id (user-chosen, e.g. `RegionOne`).
    RegionId
);
id_type!(
    /// A catalog service's id.
    ServiceId
);
id_type!(
    /// A catalog endpoint's id.
    EndpointId
);
id_type!(
    /// A shard (federation member) id; it names the signer of a token.
    ShardId
);

/// A token's audit id: 16 random bytes, URL-safe base64 without padding (22
/// characters), as Keystone makes them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuditId(String);

impl AuditId {
    /// A fresh random audit id.
    pub fn generate() -> Self {
        use base64::Engine;
        let bytes: [u8; 16] = rand::random();
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }
    /// Wraps an existing audit id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
    /// The audit id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AuditId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_keystone_shaped() {
        let id = ProjectId::generate();
        assert_eq!(id.as_str().len(), 32);
        assert!(id.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, ProjectId::generate());
        assert_eq!(AuditId::generate().as_str().len(), 22);
    }
}
