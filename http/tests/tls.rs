//! The TLS transports on real sockets: a public TLS listener, and an mTLS
//! listener that serves only clients certified by the federation CA.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use keyfed_http::tls::{self, MtlsFiles, TlsFiles, Transport};
use keyfed_pki::{FederationCa, MemberKind};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A CA in `dir/<name>` and member certificates issued by it.
struct Pki {
    ca: FederationCa,
    dir: std::path::PathBuf,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Self {
        let dir = dir.join(name);
        let ca = FederationCa::init(&dir, name, now(), 86_400).unwrap();
        Self { ca, dir }
    }

    fn member(&self, kind: MemberKind, id: &str) -> MtlsFiles {
        let hosts = vec!["127.0.0.1".to_owned()];
        let paths = self
            .ca
            .issue_tls(kind, id, &hosts, now(), 3600)
            .unwrap()
            .write(&self.dir, id)
            .unwrap();
        MtlsFiles {
            ca: keyfed_pki::ca::ca_paths(&self.dir).0,
            cert: paths.cert,
            key: paths.key,
        }
    }
}

async fn start(transport: Transport) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/hello", get(|| async { "hello" }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(keyfed_http::serve_with(
        app,
        listener,
        transport,
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
        64 * 1024,
    ));
    (url, stop)
}

fn trusting(ca: &Path) -> reqwest::ClientBuilder {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(5))
}

fn member_client(files: &MtlsFiles) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls::client_config(files).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test]
async fn public_tls_serves_clients_that_trust_the_issuer() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "public-ca");
    let server = pki.member(MemberKind::Shard, "web");
    let config = tls::server_config(&TlsFiles {
        cert: server.cert.clone(),
        key: server.key.clone(),
    })
    .unwrap();
    let (url, _stop) = start(Transport::tls(config)).await;

    let client = trusting(&server.ca).build().unwrap();
    let body = client.get(format!("{url}/hello")).send().await.unwrap();
    assert_eq!(body.text().await.unwrap(), "hello");

    // A client that does not trust the issuer refuses the server.
    let other = Pki::new(tmp.path(), "other-ca");
    let stranger = trusting(&keyfed_pki::ca::ca_paths(&other.dir).0)
        .build()
        .unwrap();
    assert!(stranger.get(format!("{url}/hello")).send().await.is_err());
    // Plain HTTP to a TLS listener gets no answer.
    let plain = url.replace("https://", "http://");
    let r = reqwest::get(format!("{plain}/hello")).await;
    assert!(r.is_err() || !r.unwrap().status().is_success());
}

#[tokio::test]
async fn mtls_serves_only_clients_certified_by_the_federation_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "federation-ca");
    let shard = pki.member(MemberKind::Shard, "shard-1");
    let gateway = pki.member(MemberKind::Gateway, "gw-1");
    let (url, _stop) = start(Transport::tls(tls::mtls_server_config(&shard).unwrap())).await;

    // A member presenting its CA-issued certificate is served.
    let r = member_client(&gateway)
        .get(format!("{url}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "hello");

    // No client certificate: refused, although it trusts the server.
    let anonymous = trusting(&shard.ca).build().unwrap();
    let e = anonymous.get(format!("{url}/hello")).send().await;
    assert!(e.is_err(), "{e:?}");

    // A certificate from another CA (that also trusts our CA): refused.
    let other = Pki::new(tmp.path(), "rogue-ca");
    let mut rogue = other.member(MemberKind::Gateway, "gw-rogue");
    rogue.ca = shard.ca.clone();
    let e = member_client(&rogue)
        .get(format!("{url}/hello"))
        .send()
        .await;
    assert!(e.is_err(), "{e:?}");

    // And a member refuses a server the federation CA did not certify.
    let (rogue_url, _stop2) = start(Transport::tls(
        tls::mtls_server_config(&other.member(MemberKind::Shard, "shard-x")).unwrap(),
    ))
    .await;
    assert!(member_client(&gateway)
        .get(format!("{rogue_url}/hello"))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn member_clients_accept_only_the_server_their_check_names() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "federation-ca");
    let shard = pki.member(MemberKind::Shard, "shard-1");
    let gateway = pki.member(MemberKind::Gateway, "gw-1");
    let (url, _stop) = start(Transport::tls(tls::mtls_server_config(&shard).unwrap())).await;
    let calling = |check: tls::PeerCheck| {
        reqwest::Client::builder()
            .use_preconfigured_tls(tls::member_client_config(&gateway, check).unwrap())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let names_shard_1 = {
        let seen = seen.clone();
        std::sync::Arc::new(move |der: &[u8], host: &str| {
            seen.lock().unwrap().push(host.to_owned());
            keyfed_pki::tls::peer_member(der) == Some((MemberKind::Shard, "shard-1".to_owned()))
        })
    };
    let r = calling(names_shard_1)
        .get(format!("{url}/hello"))
        .send()
        .await;
    assert_eq!(r.unwrap().text().await.unwrap(), "hello");
    assert_eq!(
        *seen.lock().unwrap(),
        ["127.0.0.1"],
        "the check sees the host called"
    );
    let e = calling(std::sync::Arc::new(|_: &[u8], _: &str| false))
        .get(format!("{url}/hello"))
        .send()
        .await;
    assert!(e.is_err(), "a server the check refuses: {e:?}");

    // A gateway's certificate cannot serve: no client accepts it.
    let (gw_url, _stop2) = start(Transport::tls(tls::mtls_server_config(&gateway).unwrap())).await;
    let e = calling(std::sync::Arc::new(|_: &[u8], _: &str| true))
        .get(format!("{gw_url}/hello"))
        .send()
        .await;
    assert!(e.is_err(), "a gateway certificate served: {e:?}");
    assert!(member_client(&shard)
        .get(format!("{gw_url}/hello"))
        .send()
        .await
        .is_err());
}

#[test]
fn bad_files_are_named_in_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.pem");
    let e = tls::server_config(&TlsFiles {
        cert: missing.clone(),
        key: missing.clone(),
    })
    .unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");
    let empty = tmp.path().join("empty.pem");
    std::fs::write(&empty, "not pem").unwrap();
    let e = tls::load_certs(&empty).unwrap_err();
    assert!(e.to_string().contains("no certificate"), "{e}");
    let e = tls::load_key(&empty).unwrap_err();
    assert!(e.to_string().contains("empty.pem"), "{e}");
}
