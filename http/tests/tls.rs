//! The TLS transports on real sockets: a public TLS listener, and an mTLS
//! listener that serves only clients certified by the federation CA; and
//! certificates and CAs reloaded from their files ([`tls::TlsReloader`]).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use keyfed_http::tls::{self, CheckReport, MtlsFiles, TlsFiles, TlsReloader, Transport};
use keyfed_http::PeerCertificate;
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

    /// Issues `id` a new certificate and key and writes them over `files`
    /// (the certificate first, as a renewal script might).
    fn renew(&self, kind: MemberKind, id: &str, files: &MtlsFiles) {
        let hosts = vec!["127.0.0.1".to_owned()];
        let issued = self.ca.issue_tls(kind, id, &hosts, now(), 3600).unwrap();
        std::fs::write(&files.cert, issued.cert_pem).unwrap();
        std::fs::write(&files.key, issued.key_pem).unwrap();
    }
}

/// The leaf certificate (DER) of a PEM file.
fn leaf(path: &Path) -> Vec<u8> {
    tls::load_certs(path).unwrap()[0].as_ref().to_vec()
}

async fn start(transport: Transport) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/peer",
            get(|peer: Option<Extension<PeerCertificate>>| async move {
                peer.map(|Extension(c)| c.0.to_vec()).unwrap_or_default()
            }),
        );
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

/// A client trusting `ca` whose responses carry the server's certificate.
fn seeing(ca: &Path) -> reqwest::Client {
    trusting(ca).tls_info(true).build().unwrap()
}

/// The leaf certificate `client` was served by at `url`.
async fn served_by(client: &reqwest::Client, url: &str) -> Vec<u8> {
    let r = client.get(format!("{url}/hello")).send().await.unwrap();
    let info = r.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    info.peer_certificate().unwrap().to_vec()
}

const RELOADED: CheckReport = CheckReport {
    reloaded: 1,
    failed: 0,
};
const FAILED: CheckReport = CheckReport {
    reloaded: 0,
    failed: 1,
};

#[tokio::test]
async fn a_renewed_certificate_serves_new_handshakes_and_open_connections_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "public-ca");
    let files = pki.member(MemberKind::Shard, "web");
    let reloader = TlsReloader::new();
    let config = reloader
        .server_config("server.tls", &files.identity())
        .unwrap();
    let (url, _stop) = start(Transport::tls(config)).await;
    let first = leaf(&files.cert);
    let open = seeing(&files.ca);
    assert_eq!(served_by(&open, &url).await, first);
    assert_eq!(reloader.check_now(), CheckReport::default(), "unchanged");

    pki.renew(MemberKind::Shard, "web", &files);
    assert_eq!(reloader.check_now(), RELOADED);
    let second = leaf(&files.cert);
    assert_ne!(first, second);
    assert_eq!(served_by(&seeing(&files.ca), &url).await, second);
    // The connection opened before goes on, on the session it negotiated.
    assert_eq!(served_by(&open, &url).await, first);

    // Garbage in the key file: the renewed certificate stays in service.
    std::fs::write(&files.key, "-----BEGIN PRIVATE KEY-----\nnot a key\n").unwrap();
    assert_eq!(reloader.check_now(), FAILED);
    assert_eq!(reloader.check_now(), CheckReport::default(), "counted once");
    assert_eq!(served_by(&seeing(&files.ca), &url).await, second);

    // A key that does not match the certificate: refused as well.
    let hosts = ["127.0.0.1".to_owned()];
    let stranger = pki
        .ca
        .issue_tls(MemberKind::Shard, "web", &hosts, now(), 60);
    std::fs::write(&files.key, stranger.unwrap().key_pem).unwrap();
    assert_eq!(reloader.check_now(), FAILED);
    std::fs::write(&files.cert, "not pem").unwrap();
    assert_eq!(reloader.check_now(), FAILED);
    assert_eq!(served_by(&seeing(&files.ca), &url).await, second);

    // Both files renewed again: served.
    pki.renew(MemberKind::Shard, "web", &files);
    assert_eq!(reloader.check_now(), RELOADED);
    assert_eq!(served_by(&seeing(&files.ca), &url).await, leaf(&files.cert));
    assert_eq!(served_by(&open, &url).await, first);

    let mut registry = prometheus_client::registry::Registry::default();
    reloader.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("tls_reloads_total{files=\"server.tls\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("tls_reload_failures_total{files=\"server.tls\"} 3"),
        "{text}"
    );
}

#[tokio::test]
async fn mtls_client_identities_and_the_trusted_ca_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "federation-ca");
    let shard = pki.member(MemberKind::Shard, "shard-1");
    let gateway = pki.member(MemberKind::Gateway, "gw-1");
    let server = TlsReloader::new();
    let config = server.mtls_server_config("internal_tls", &shard).unwrap();
    let (url, _stop) = start(Transport::tls(config)).await;

    // The gateway's client: one config, resumption off so that every
    // connection of `fresh` makes a full handshake.
    let client = TlsReloader::new();
    let mut config = client
        .member_client_config("internal_tls", &gateway, std::sync::Arc::new(|_, _| true))
        .unwrap();
    config.resumption = rustls::client::Resumption::disabled();
    let build = |pool: usize| {
        reqwest::Client::builder()
            .use_preconfigured_tls(config.clone())
            .pool_max_idle_per_host(pool)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let (open, fresh) = (build(8), build(0));
    let peer = |c: reqwest::Client| {
        let url = url.clone();
        async move {
            let r = c.get(format!("{url}/peer")).send().await.unwrap();
            r.bytes().await.unwrap().to_vec()
        }
    };
    let first = leaf(&gateway.cert);
    assert_eq!(peer(open.clone()).await, first);
    pki.renew(MemberKind::Gateway, "gw-1", &gateway);
    assert_eq!(client.check_now(), RELOADED);
    assert_eq!(peer(fresh.clone()).await, leaf(&gateway.cert));
    assert_eq!(peer(open.clone()).await, first, "the open connection stays");

    // The server's CA file replaced by another CA: its members are served,
    // the old CA's are not.
    let other = Pki::new(tmp.path(), "federation-ca-2");
    let mut newcomer = other.member(MemberKind::Gateway, "gw-2");
    let old_ca = tmp.path().join("old-ca.pem");
    std::fs::copy(&shard.ca, &old_ca).unwrap();
    newcomer.ca = old_ca;
    assert!(member_client(&newcomer)
        .get(format!("{url}/hello"))
        .send()
        .await
        .is_err());
    std::fs::copy(&other.member(MemberKind::Shard, "x").ca, &shard.ca).unwrap();
    assert_eq!(server.check_now(), RELOADED);
    let r = member_client(&newcomer)
        .get(format!("{url}/hello"))
        .send()
        .await;
    assert_eq!(r.unwrap().text().await.unwrap(), "hello");
    assert!(fresh.get(format!("{url}/hello")).send().await.is_err());

    // An unusable CA file keeps the CA in service.
    std::fs::write(&shard.ca, "garbage").unwrap();
    assert_eq!(server.check_now(), FAILED);
    let r = member_client(&newcomer)
        .get(format!("{url}/hello"))
        .send()
        .await;
    assert_eq!(r.unwrap().text().await.unwrap(), "hello");
}
