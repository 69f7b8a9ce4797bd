//! The join flow as an operator runs it, with real processes (the
//! `Cluster` harness: two `keyfed shard` and two `keyfed gateway`
//! processes, CA trust, NATS, PostgreSQL):
//!
//! `keyfed join-token create` → `keyfed shard --config F --join URL
//! --join-token T` (a new process that enrols and turns active) → `keyfed
//! status` shows it with its tenant counts → new projects through both
//! gateways land on it while earlier ones keep working → `keyfed shard
//! retire` refuses it once it owns tenants → the spent token enrols
//! nobody else.
#![allow(clippy::unwrap_used)]

use keyfed_tests::Gateways;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use keyfed_shared::federation::MemberStatus;
use keyfed_shared::ids::{ProjectId, ShardId};
use keyfed_tests::cluster::{keyfed_binary, Cluster};
use reqwest::Method;
use serde_json::json;

/// Kills the child on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn keyfed(args: &[&str]) -> Output {
    Command::new(keyfed_binary().unwrap())
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A config for a new, non-issuer shard `id` of `f`, in `dir`.
async fn joiner_config(f: &Cluster, id: &str, dir: &Path) -> std::path::PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let ca = f.shards[0].config.parent().unwrap().join("ca/ca.pem");
    let database = keyfed_tests::pg::fresh_database().await.unwrap();
    let d = &f.directory;
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = {url_q}\nshutdown_grace_secs = 1\n\
         insecure_plain_http = true\n\n\
         [shard]\nid = {id_q}\n\n\
         [storage]\nkind = \"postgres\"\nurl = {db}\npool_size = 4\n\n\
         [tokens]\nsigning_key_file = {key}\n\n\
         [password]\nmemory_kib = 64\niterations = 1\nparallelism = 1\nmax_concurrent = 4\n\n\
         [trust]\nca_cert = {ca}\n\n\
         [federation]\nadvertise_url = {url_q}\nweight = 1\n\n\
         [federation.nats]\nurl = {nats}\nnamespace = {ns}\ntimeout_ms = {timeout}\n",
        url_q = quoted(&url),
        id_q = quoted(id),
        db = quoted(&database),
        key = quoted(&dir.join(format!("{id}-key.pem")).to_string_lossy()),
        ca = quoted(&ca.to_string_lossy()),
        nats = quoted(&d.url),
        ns = quoted(&d.namespace),
        timeout = d.timeout_ms,
    );
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_joins_a_shard_with_the_cli() {
    let f = Cluster::builder()
        .shards(2)
        .gateways(2)
        .start()
        .await
        .unwrap();
    let admin = f.admin_token(0).await.unwrap();
    let shard0 = f.shards[0].config.to_string_lossy().into_owned();
    let mut before = Vec::new();
    for i in 0..16 {
        let body = json!({"project": {"name": format!("before-{i}"), "domain_id": "default"}});
        let (status, body) = f
            .call(i % 2, Method::POST, "/v3/projects", &admin, Some(&body))
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
        before.push(body["project"]["id"].as_str().unwrap().to_owned());
    }

    let out = keyfed(&["join-token", "create", "--ttl", "10m", "--config", &shard0]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();

    let dir = tempfile::tempdir().unwrap();
    let config = joiner_config(&f, "shard-2", dir.path()).await;
    let log = std::fs::File::create(dir.path().join("shard-2.log")).unwrap();
    let child = Command::new(keyfed_binary().unwrap())
        .args(["shard", "--config", &config.to_string_lossy()])
        .args(["--join", &f.shards[0].url, "--join-token", &token])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _joined = Running(child);
    let s2 = ShardId::new("shard-2");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f
        .view
        .member(&s2)
        .is_some_and(|m| m.status == MemberStatus::Active)
    {
        let log = std::fs::read_to_string(dir.path().join("shard-2.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "shard-2 never active:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(dir.path().join("shard-2-key.pem")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }
    assert!(dir.path().join("shard-2-key.crt").exists());

    // Earlier projects keep working; new ones land on shard-2.
    for p in &before {
        for g in 0..2 {
            let (status, body) = f
                .call(g, Method::GET, &format!("/v3/projects/{p}"), &admin, None)
                .await
                .unwrap();
            assert_eq!(status, 200, "gateway {g}, {p}: {body}");
        }
    }
    let mut on_new = 0;
    for i in 0..30 {
        let body = json!({"project": {"name": format!("after-{i}"), "domain_id": "default"}});
        let (status, body) = f
            .call(i % 2, Method::POST, "/v3/projects", &admin, Some(&body))
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
        let id = ProjectId::new(body["project"]["id"].as_str().unwrap());
        if f.view.owner_of_project(&id).as_ref() == Some(&s2) {
            on_new += 1;
        }
    }
    assert!(on_new > 0, "no new project landed on shard-2");

    // keyfed status: members, state and tenant counts.
    let out = keyfed(&["status", "--config", &shard0]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = text(&out.stdout);
    let line = status
        .lines()
        .find(|l| l.starts_with("shard-2"))
        .unwrap_or_else(|| panic!("{status}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[1], "active", "{status}");
    assert_eq!(cols[3], on_new.to_string(), "{status}");

    // A member owning tenants cannot retire.
    let out = keyfed(&["shard", "retire", "shard-2", "--config", &shard0]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("still owns"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(f.view.member(&s2).unwrap().status, MemberStatus::Active);

    // The token is spent: nobody else joins with it.
    let other = joiner_config(&f, "shard-3", dir.path()).await;
    let out = keyfed(&[
        "shard",
        "--config",
        &other.to_string_lossy(),
        "--join",
        &f.shards[0].url,
        "--join-token",
        &token,
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
    assert!(f.view.member(&ShardId::new("shard-3")).is_none());
}
