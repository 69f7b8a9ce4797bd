//! Who may do what on NATS: the least-privilege permissions of each kind of
//! process, as a nats-server `authorization` block (nkey users), generated
//! by `keyfed nats creds`. Signatures on directory entries
//! (`keyfed-federation`'s `seal`) decide what readers accept; these
//! permissions decide who may write at all, and keep readers from deleting
//! or purging anything.
//!
//! | role | publishes (writes) | reads |
//! |---|---|---|
//! | gateway | nothing | members, pins, names, memberships, global, revocations |
//! | shard `<id>` | its own member record; pins, names, memberships, global; revocation events; `admin/…` tokens and the join lease in credentials; creates the namespace's buckets and stream | everything |
//! | issuer `<id>` | a shard's, plus every member record and status attestation, and the whole credentials bucket | everything |
//! | admin | everything in the namespace (operators' tools) | everything |
//!
//! Nobody but the admin may update, purge or delete a stream or a message
//! through the JetStream API. Every role reads through JetStream's API:
//! stream info, direct gets, and the ephemeral ordered consumers of watches,
//! delivered to its own inbox.

use std::fmt::Write as _;

use crate::directory::Bucket;

/// The kind of process an identity is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A gateway: reads only.
    Gateway,
    /// A shard that is no issuer.
    Shard,
    /// A shard holding the CA key.
    Issuer,
    /// Operators' tools: everything in the namespace.
    Admin,
}

impl Role {
    /// The role's name in file names and in the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Shard => "shard",
            Role::Issuer => "issuer",
            Role::Admin => "admin",
        }
    }

    /// The role named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [Role::Gateway, Role::Shard, Role::Issuer, Role::Admin]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// One NATS user: a process's role, its id (a shard id for shards and
/// issuers), and the public nkey it authenticates with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub role: Role,
    pub id: String,
    pub public_key: String,
}

impl Identity {
    /// A new identity with a fresh nkey; returns it and its seed (the
    /// secret, `SU…`, for the process's `nkey_seed_file`).
    pub fn generate(role: Role, id: &str) -> Result<(Self, String), String> {
        let pair = nkeys::KeyPair::new_user();
        let seed = pair.seed().map_err(|e| e.to_string())?;
        Ok((
            Self {
                role,
                id: id.to_owned(),
                public_key: pair.public_key(),
            },
            seed,
        ))
    }

    /// The identity of an existing seed.
    pub fn from_seed(role: Role, id: &str, seed: &str) -> Result<Self, String> {
        let pair = nkeys::KeyPair::from_seed(seed.trim()).map_err(|e| e.to_string())?;
        Ok(Self {
            role,
            id: id.to_owned(),
            public_key: pair.public_key(),
        })
    }
}

/// Subjects an identity may publish to and subscribe to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

/// The buckets a gateway reads (never the credentials).
const GATEWAY_READS: [Bucket; 5] = [
    Bucket::Members,
    Bucket::Pins,
    Bucket::Names,
    Bucket::Memberships,
    Bucket::Global,
];

fn bucket(namespace: &str, b: Bucket) -> String {
    format!("{namespace}_{}", b.name())
}

/// The JetStream API calls that read stream `stream`.
fn read_stream(stream: &str, out: &mut Vec<String>) {
    for api in [
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.STREAM.MSG.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}.>"),
        format!("$JS.API.CONSUMER.CREATE.{stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
        format!("$JS.API.CONSUMER.INFO.{stream}.*"),
        format!("$JS.API.CONSUMER.DELETE.{stream}.*"),
        format!("$JS.FC.{stream}.>"),
        format!("$JS.ACK.{stream}.>"),
    ] {
        out.push(api);
    }
}

/// The permissions of `role` (id `id`) in `namespace`.
pub fn permissions(namespace: &str, role: Role, id: &str) -> Permissions {
    let subscribe = vec!["_INBOX.>".to_owned()];
    if role == Role::Admin {
        return Permissions {
            publish: vec![">".to_owned()],
            subscribe: vec![">".to_owned()],
        };
    }
    let kv = |b: Bucket, key: &str| format!("$KV.{}.{key}", bucket(namespace, b));
    let revocations = format!("{namespace}_revocations");
    let mut publish = vec!["$JS.API.INFO".to_owned()];
    let readable: Vec<Bucket> = match role {
        Role::Gateway => GATEWAY_READS.to_vec(),
        _ => Bucket::ALL.to_vec(),
    };
    for b in &readable {
        read_stream(&format!("KV_{}", bucket(namespace, *b)), &mut publish);
    }
    read_stream(&revocations, &mut publish);
    match role {
        Role::Gateway => {}
        Role::Shard | Role::Issuer => {
            for b in Bucket::ALL {
                publish.push(format!("$JS.API.STREAM.CREATE.KV_{}", bucket(namespace, b)));
            }
            publish.push(format!("$JS.API.STREAM.CREATE.{revocations}"));
            publish.push(format!("keyfed.{namespace}.revocations"));
            for b in [
                Bucket::Pins,
                Bucket::Names,
                Bucket::Memberships,
                Bucket::Global,
            ] {
                publish.push(kv(b, ">"));
            }
            if role == Role::Issuer {
                publish.push(kv(Bucket::Members, ">"));
                publish.push(kv(Bucket::Credentials, ">"));
            } else {
                publish.push(kv(Bucket::Members, id));
                publish.push(kv(Bucket::Credentials, "admin.>"));
                publish.push(kv(Bucket::Credentials, "lease.join"));
            }
        }
        Role::Admin => {}
    }
    Permissions { publish, subscribe }
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A nats-server `authorization` block for `identities` in `namespace`:
/// include it in the server's config and reload the server.
pub fn authorization_conf(namespace: &str, identities: &[Identity]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# keyfed directory users of namespace {namespace:?}, generated by `keyfed nats creds`.\n\
         # Include this file in nats-server.conf; after a change: nats-server --signal reload"
    );
    out.push_str("authorization {\n  users = [\n");
    for identity in identities {
        let p = permissions(namespace, identity.role, &identity.id);
        let _ = writeln!(
            out,
            "    # {} {}\n    {{\n      nkey: \"{}\"\n      permissions: {{\n        publish: {{ allow: [{}] }}\n        subscribe: {{ allow: [{}] }}\n        allow_responses: true\n      }}\n    }}",
            identity.role.name(),
            identity.id,
            identity.public_key,
            quoted(&p.publish),
            quoted(&p.subscribe),
        );
    }
    out.push_str("  ]\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways_write_nothing_and_never_touch_credentials() {
        let p = permissions("ns", Role::Gateway, "g1");
        let writes: Vec<&String> = p.publish.iter().filter(|s| s.starts_with("$KV.")).collect();
        assert!(writes.is_empty(), "{writes:?}");
        assert!(!p.publish.iter().any(|s| s.contains("credentials")));
        assert!(!p.publish.iter().any(|s| s.contains("STREAM.CREATE")));
    }

    #[test]
    fn a_shard_writes_its_own_record_and_admin_tokens_only() {
        let p = permissions("ns", Role::Shard, "shard-1");
        assert!(p.publish.contains(&"$KV.ns_members.shard-1".to_owned()));
        assert!(!p.publish.contains(&"$KV.ns_members.>".to_owned()));
        assert!(p.publish.contains(&"$KV.ns_credentials.admin.>".to_owned()));
        assert!(!p.publish.contains(&"$KV.ns_credentials.>".to_owned()));
        let issuer = permissions("ns", Role::Issuer, "shard-1");
        assert!(issuer.publish.contains(&"$KV.ns_credentials.>".to_owned()));
        assert!(issuer.publish.contains(&"$KV.ns_members.>".to_owned()));
        for p in [p, issuer] {
            assert!(!p.publish.iter().any(|s| s.contains("STREAM.DELETE")
                || s.contains("STREAM.PURGE")
                || s.contains("STREAM.UPDATE")
                || s.contains("STREAM.MSG.DELETE")));
        }
    }

    #[test]
    fn the_conf_names_every_identity() {
        let conf = authorization_conf(
            "ns",
            &[Identity {
                role: Role::Gateway,
                id: "g1".into(),
                public_key: "UABC".into(),
            }],
        );
        assert!(conf.contains("nkey: \"UABC\""));
        assert!(conf.contains("authorization {"));
    }
}
