//! The directory's NATS permissions against a real nats-server enforcing
//! them: each role can do what it needs and nothing it must not. A write
//! the server refuses never lands (the client's call fails within its
//! timeout); the admin's view of the bucket shows what did land.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use keyfed_directory::nats::access::{authorization_conf, Identity, Role};
use keyfed_directory::testing::NatsServer;
use keyfed_directory::{Bucket, Directory, NatsConfig, NatsDirectory};

const NS: &str = "perm";

fn seed_file(dir: &Path, name: &str, seed: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("{name}.nk"));
    std::fs::write(&path, seed).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

struct Fixture {
    server: NatsServer,
    seeds: std::collections::HashMap<&'static str, std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut identities = Vec::new();
        let mut seeds = std::collections::HashMap::new();
        for (name, role, id) in [
            ("admin", Role::Admin, "ops"),
            ("issuer", Role::Issuer, "shard-0"),
            ("shard", Role::Shard, "shard-1"),
            ("gateway", Role::Gateway, "gw-1"),
        ] {
            let (identity, seed) = Identity::generate(role, id).unwrap();
            identities.push(identity);
            seeds.insert(name, seed_file(dir.path(), name, &seed));
        }
        let server =
            NatsServer::start_with_authorization(authorization_conf(NS, &identities)).unwrap();
        Fixture {
            server,
            seeds,
            _dir: dir,
        }
    }

    fn config(&self, who: Option<&str>) -> NatsConfig {
        NatsConfig {
            namespace: NS.to_owned(),
            timeout_ms: 700,
            nkey_seed_file: who.map(|w| self.seeds[w].clone()),
            ..NatsConfig::new(self.server.url())
        }
    }

    async fn as_(&self, who: &str) -> NatsDirectory {
        NatsDirectory::connect(&self.config(Some(who)))
            .await
            .unwrap()
    }
}

/// Writes `key` = `value` in `bucket` as `dir`; whether it landed.
async fn put(dir: &NatsDirectory, bucket: Bucket, key: &str) -> bool {
    dir.kv(bucket)
        .put(key, Bytes::from_static(b"\"x\""))
        .await
        .is_ok()
}

#[tokio::test]
async fn each_role_writes_only_what_it_owns() {
    let f = Fixture::start();
    let admin = f.as_("admin").await;
    let issuer = f.as_("issuer").await;
    let shard = f.as_("shard").await;
    let gateway = f.as_("gateway").await;

    // Shards create the buckets and stream on first use.
    for b in Bucket::ALL {
        assert!(shard.kv(b).snapshot("").await.is_ok(), "{b}");
    }
    shard
        .publish_revocation(Bytes::from_static(b"{}"))
        .await
        .unwrap();

    // A shard: its own record, global data, pins, names, memberships,
    // admin tokens and the join lease; not another member's record, a
    // status attestation, a join token or a renewal nonce.
    for (bucket, key, allowed) in [
        (Bucket::Members, "shard-1", true),
        (Bucket::Members, "shard-2", false),
        (Bucket::Members, "status/shard-1", false),
        (Bucket::Global, "implied/member/admin", true),
        (Bucket::Pins, "project/p1", true),
        (Bucket::Names, "project/default/p1", true),
        (Bucket::Memberships, "u1", true),
        (Bucket::Credentials, "admin/0123456789abcdef", true),
        (Bucket::Credentials, "lease/join", true),
        (Bucket::Credentials, "join/0123456789abcdef", false),
        (Bucket::Credentials, "renew/00ff", false),
    ] {
        assert_eq!(
            put(&shard, bucket, key).await,
            allowed,
            "shard: {bucket} {key}"
        );
    }
    // An issuer: every member record, attestations and credentials too.
    for (bucket, key) in [
        (Bucket::Members, "shard-2"),
        (Bucket::Members, "status/shard-1"),
        (Bucket::Credentials, "join/0123456789abcdef"),
        (Bucket::Credentials, "renew/00ff"),
    ] {
        assert!(put(&issuer, bucket, key).await, "issuer: {bucket} {key}");
    }
    // A gateway writes nothing; it reads all but credentials.
    for (bucket, key, allowed) in [
        (Bucket::Names, "user/default/alice", false),
        (Bucket::Global, "implied/member/admin", false),
        (Bucket::Members, "gw-1", false),
        (Bucket::Pins, "project/p1", false),
        (Bucket::Memberships, "u1", false),
    ] {
        assert_eq!(
            put(&gateway, bucket, key).await,
            allowed,
            "gateway: {bucket} {key}"
        );
    }
    assert!(gateway
        .publish_revocation(Bytes::from_static(b"{}"))
        .await
        .is_err());
    assert!(gateway
        .kv(Bucket::Credentials)
        .get("join/0123456789abcdef")
        .await
        .is_err());
    assert!(gateway
        .kv(Bucket::Members)
        .get("shard-1")
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        gateway
            .kv(Bucket::Global)
            .snapshot("")
            .await
            .unwrap()
            .entries
            .len(),
        1
    );
    let mut watch = gateway.kv(Bucket::Names).watch_from(0).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap();
    assert!(first.is_some());
    let mut events = gateway.revocations_from(0).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .is_some());

    // What was refused never landed.
    let members = admin.kv(Bucket::Members).snapshot("").await.unwrap();
    let keys: Vec<&str> = members.entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["shard-1", "shard-2", "status/shard-1"]);
    assert_eq!(
        admin
            .kv(Bucket::Pins)
            .snapshot("")
            .await
            .unwrap()
            .entries
            .len(),
        1
    );
}

#[tokio::test]
async fn nobody_but_the_admin_deletes_or_purges_streams() {
    let f = Fixture::start();
    let shard = f.as_("shard").await;
    assert!(put(&shard, Bucket::Global, "role/r1").await);
    for who in ["shard", "issuer", "gateway"] {
        let client = async_nats::ConnectOptions::new()
            .nkey(std::fs::read_to_string(&f.seeds[who]).unwrap())
            .connect(f.server.url())
            .await
            .unwrap();
        let mut js = async_nats::jetstream::new(client);
        js.set_timeout(Duration::from_millis(700));
        let stream = format!("KV_{NS}_global");
        assert!(
            js.delete_stream(&stream).await.is_err(),
            "{who} deleted a stream"
        );
        if let Ok(s) = js.get_stream(&stream).await {
            assert!(s.purge().await.is_err(), "{who} purged a stream");
            assert!(
                s.delete_message(1).await.is_err(),
                "{who} deleted a message"
            );
        }
    }
    let admin = f.as_("admin").await;
    assert!(admin
        .kv(Bucket::Global)
        .get("role/r1")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_client_without_credentials_gets_nothing() {
    let f = Fixture::start();
    let anonymous = NatsDirectory::connect(&f.config(None)).await.unwrap();
    assert!(anonymous.kv(Bucket::Global).snapshot("").await.is_err());
    assert!(!anonymous.is_connected());
}
