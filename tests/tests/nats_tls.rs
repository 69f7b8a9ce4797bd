//! The directory over TLS to NATS: a nats-server serving a certificate
//! from the federation CA, a client trusting that CA (`tls_ca`) and
//! refusing plain connections (`require_tls`); a client trusting another
//! CA gets nothing.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use keyfed_directory::testing::NatsServer;
use keyfed_directory::{Bucket, Directory, NatsConfig, NatsDirectory};
use keyfed_pki::{FederationCa, MemberKind};

fn now() -> i64 {
    keyfed_shared::time::now_micros() / 1_000_000
}

/// A CA in `dir` and its PEM file.
fn ca(dir: &std::path::Path, name: &str) -> (FederationCa, std::path::PathBuf) {
    let ca = FederationCa::generate(name, now(), 86_400).unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, ca.cert().pem()).unwrap();
    (ca, path)
}

fn config(server: &NatsServer, tls_ca: &std::path::Path) -> NatsConfig {
    NatsConfig {
        namespace: "tls".into(),
        timeout_ms: 1_000,
        tls_ca: Some(tls_ca.to_path_buf()),
        require_tls: true,
        ..NatsConfig::new(format!("tls://127.0.0.1:{}", server.port()))
    }
}

#[tokio::test]
async fn the_directory_talks_to_nats_over_tls_only_to_the_trusted_server() {
    let dir = tempfile::tempdir().unwrap();
    let (federation, federation_pem) = ca(dir.path(), "federation");
    let (_, other_pem) = ca(dir.path(), "other");
    let identity = federation
        .issue_tls(
            MemberKind::Shard,
            "nats-1",
            &["127.0.0.1".to_owned()],
            now(),
            86_400,
        )
        .unwrap();
    let (cert, key) = (dir.path().join("nats.pem"), dir.path().join("nats-key.pem"));
    std::fs::write(&cert, &identity.cert_pem).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&key, &identity.key_pem).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let server = NatsServer::start_with_config(format!(
        "tls {{ cert_file: {:?}, key_file: {:?} }}\n",
        cert.display().to_string(),
        key.display().to_string()
    ))
    .unwrap();

    let trusted = NatsDirectory::connect(&config(&server, &federation_pem))
        .await
        .unwrap();
    trusted
        .kv(Bucket::Global)
        .put("role/r1", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert!(trusted.is_connected());

    // Trusting another CA: the handshake fails, nothing is read.
    let wrong = NatsDirectory::connect(&config(&server, &other_pem))
        .await
        .unwrap();
    assert!(wrong.kv(Bucket::Global).get("role/r1").await.is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!wrong.is_connected());
}
