//! `keyfed dev` as a newcomer runs it: the real binary, its printed
//! `export OS_...` lines, a login with them, and data surviving a restart.
#![allow(clippy::unwrap_used)]

use anyhow::Context;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Dev {
    child: Child,
    env: HashMap<String, String>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    keyfed_directory::testing::free_port().unwrap()
}

/// Starts `keyfed dev` and reads its `export` lines.
fn start_dev(bin: &Path, port: u16, data: &std::path::Path) -> anyhow::Result<Dev> {
    let mut child = Command::new(bin)
        .args(["dev", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("spawning keyfed dev")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut env = HashMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
            env.insert(k.to_owned(), v.to_owned());
        }
        if env.contains_key("OS_REGION_NAME") {
            break;
        }
    }
    anyhow::ensure!(
        env.contains_key("OS_PASSWORD"),
        "keyfed dev printed no credentials"
    );
    Ok(Dev { child, env })
}

async fn wait_healthy(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "keyfed dev did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn login(http: &reqwest::Client, env: &HashMap<String, String>) -> anyhow::Result<String> {
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": env["OS_USERNAME"], "domain": {"name": env["OS_USER_DOMAIN_NAME"]},
        "password": env["OS_PASSWORD"]}}},
        "scope": {"project": {"name": env["OS_PROJECT_NAME"], "domain": {"name": env["OS_PROJECT_DOMAIN_NAME"]}}}}});
    let r = http
        .post(format!("{}/auth/tokens", env["OS_AUTH_URL"]))
        .json(&body)
        .send()
        .await?;
    anyhow::ensure!(r.status().as_u16() == 201, "login failed: {}", r.status());
    Ok(r.headers()["x-subject-token"].to_str()?.to_owned())
}

/// The data directory is 0700, and so is every directory of the embedded
/// directory and stores in it, whose files (password hashes, join and
/// admin token records) are 0600.
#[cfg(unix)]
fn only_the_owner_reads(data: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data), 0o700, "{}", data.display());
    let mut stack: Vec<_> = ["directory", "shard-1", "admin-password"]
        .iter()
        .map(|name| data.join(name))
        .collect();
    let mut files = 0;
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            assert_eq!(mode(&path), 0o700, "{}", path.display());
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            files += 1;
        }
    }
    assert!(files > 3, "the stores and directory hold files");
    assert_eq!(mode(&data.join("shard-1/state.json")), 0o600);
}

#[tokio::test]
async fn dev_prints_working_credentials_and_keeps_data() {
    let bin = keyfed_tests::cluster::keyfed_binary().unwrap();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("keyfed-dev");
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    let dev = start_dev(&bin, port, &data).unwrap();
    assert_eq!(dev.env["OS_AUTH_URL"], format!("{base}/v3"));
    wait_healthy(&http, &base).await.unwrap();
    let token = login(&http, &dev.env).await.unwrap();
    // The catalog points at the address keyfed dev serves.
    let r: Value = http
        .get(format!("{base}/v3/auth/catalog"))
        .header("x-auth-token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["catalog"][0]["endpoints"][0]["url"],
        format!("{base}/v3/")
    );
    let r = http
        .post(format!("{base}/v3/projects"))
        .header("x-auth-token", &token)
        .json(&json!({"project": {"name": "survivor"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    #[cfg(unix)]
    only_the_owner_reads(&data);
    let first_env = dev.env.clone();
    drop(dev);

    // Restart on the same data: same credentials, the project is still there.
    let dev = start_dev(&bin, port, &data).unwrap();
    assert_eq!(dev.env["OS_PASSWORD"], first_env["OS_PASSWORD"]);
    wait_healthy(&http, &base).await.unwrap();
    let token = login(&http, &dev.env).await.unwrap();
    let r: Value = http
        .get(format!("{base}/v3/projects?name=survivor"))
        .header("x-auth-token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["projects"].as_array().unwrap().len(), 1, "{r}");
}
