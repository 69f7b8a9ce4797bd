//! The real `openstack` CLI suite (`keyfed_tests::cli_suite`, the one that
//! also runs against a standalone shard in `openstack_cli.rs`) against a
//! gateway process in front of three shard processes. The catalog's
//! identity endpoint is the gateway (as an operator registers it), so every
//! CLI call after discovery goes through the gateway too. Each test starts
//! its own federation: the suite uses fixed names.
//!
//! Needs `KEYFED_PYVENV`, `KEYFED_TEST_PG`, a nats-server and the `keyfed`
//! binary: run through `scripts/test`.
#![allow(clippy::unwrap_used)]

use keyfed_tests::cli_suite;
use keyfed_tests::cluster::Cluster;

async fn federation() -> Cluster {
    Cluster::builder()
        .shards(3)
        .gateways(1)
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_issue_and_project_lifecycle() {
    let f = federation().await;
    cli_suite::token_issue_and_project_lifecycle(&f.keystone(0).unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_lifecycle_and_password_changes() {
    let f = federation().await;
    cli_suite::user_lifecycle_and_password_changes(&f.keystone(0).unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_assignments_scope_tokens() {
    let f = federation().await;
    cli_suite::role_assignments_scope_tokens(&f.keystone(0).unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_services_endpoints_and_catalog() {
    let f = federation().await;
    cli_suite::regions_services_endpoints_and_catalog(&f.keystone(0).unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_no_longer_validates() {
    let f = federation().await;
    cli_suite::revoked_token_no_longer_validates(&f.keystone(0).unwrap())
        .await
        .unwrap();
}
