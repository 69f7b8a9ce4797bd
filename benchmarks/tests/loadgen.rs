//! The load generator against a real shard: an in-process keyfed shard on
//! the embedded store (cheap password hashes), on a free loopback port. Each
//! scenario runs with a request budget so the test is short and its counts
//! are exact.

use keyfed_benchmarks::loadgen::{self, Credentials, LoadConfig, LoadgenError, Scenario};
use keyfed_shard::config::{BootstrapConfig, PasswordConfig, ShardConfig, StorageKind};
use std::time::Duration;

const PASSWORD: &str = "loadgen-test-password";

/// A running shard; dropping it stops the server.
struct Shard {
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start_shard() -> Shard {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let url = format!("http://{addr}");
    let mut config = ShardConfig::default();
    config.server.listen = addr;
    config.server.public_url = Some(url.clone());
    config.server.insecure_plain_http = true;
    config.storage.kind = StorageKind::Embedded;
    config.storage.path = dir.path().join("store");
    config.tokens.signing_key_file = dir.path().join("signing-key.pem");
    // Cheap hashes: this test checks the generator, not the hashing cost.
    config.password = PasswordConfig {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
        max_concurrent: 4,
    };
    config.bootstrap = Some(BootstrapConfig {
        admin_password: Some(PASSWORD.to_owned()),
        ..BootstrapConfig::default()
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = keyfed_shard::run(config, listener, shutdown).await {
            eprintln!("shard stopped: {e}");
        }
    });
    Shard {
        url,
        _stop: stop,
        _dir: dir,
    }
}

fn config(url: &str, scenario: Scenario, max_requests: u64) -> LoadConfig {
    LoadConfig {
        // As OS_AUTH_URL is usually written.
        url: format!("{url}/v3"),
        scenario,
        credentials: Credentials {
            username: "admin".into(),
            password: PASSWORD.into(),
            project: "admin".into(),
            user_domain: "Default".into(),
            project_domain: "Default".into(),
        },
        concurrency: 4,
        duration: Duration::from_secs(30),
        warmup: Duration::ZERO,
        max_requests: Some(max_requests),
        request_timeout: Duration::from_secs(10),
        projects: 3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_succeeds_within_its_budget() {
    let shard = start_shard().await;
    for scenario in [
        Scenario::Validate,
        Scenario::PasswordLogin,
        Scenario::Rescope,
        Scenario::ProjectGet,
        Scenario::ProjectList,
    ] {
        let report = loadgen::run(&config(&shard.url, scenario, 40))
            .await
            .unwrap_or_else(|e| panic!("{scenario}: {e:?}"));
        let s = &report.summary;
        assert_eq!(s.successes, 40, "{scenario}: {report}");
        assert_eq!(s.errors(), 0, "{scenario}: {report}");
        // The budget, not the 30 s duration, ended the run.
        assert!(s.elapsed_s < 20.0, "{scenario}: {report}");
        assert!(s.latency_ms.is_some());
        assert_eq!(report.scenario, scenario.as_str());
    }
    // project-get reuses the projects it created the first time.
    let again = loadgen::prepare(&config(&shard.url, Scenario::ProjectGet, 1))
        .await
        .expect("prepare again");
    let first = loadgen::prepare(&config(&shard.url, Scenario::ProjectGet, 1))
        .await
        .expect("prepare");
    let urls = |p: &loadgen::Plan| p.requests.iter().map(|r| r.url.clone()).collect::<Vec<_>>();
    assert_eq!(urls(&again), urls(&first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_the_set_up_with_the_status() {
    let shard = start_shard().await;
    let mut config = config(&shard.url, Scenario::Validate, 1);
    config.credentials.password = "wrong".into();
    match loadgen::run(&config).await {
        Err(LoadgenError::UnexpectedStatus {
            expected, status, ..
        }) => {
            assert_eq!((expected, status), (201, 401));
        }
        other => panic!("expected a 401 set-up error, got {other:?}"),
    }
}
