//! The real `openstack` CLI suite (`keyfed_tests::cli_suite`) against a
//! standalone shard: each test starts its own shard on a fresh database.
//! The same suite runs against the gateway in front of three shard
//! processes in `gateway_openstack_cli.rs`.
//!
//! Needs `KEYFED_PYVENV` and `KEYFED_TEST_PG`: run through `scripts/test`.

use keyfed_tests::cli_suite;
use keyfed_tests::shard::TestShard;

#[tokio::test]
async fn token_issue_and_project_lifecycle() -> anyhow::Result<()> {
    let shard = TestShard::start().await?;
    cli_suite::token_issue_and_project_lifecycle(shard.keystone()).await
}

#[tokio::test]
async fn user_lifecycle_and_password_changes() -> anyhow::Result<()> {
    let shard = TestShard::start().await?;
    cli_suite::user_lifecycle_and_password_changes(shard.keystone()).await
}

#[tokio::test]
async fn role_assignments_scope_tokens() -> anyhow::Result<()> {
    let shard = TestShard::start().await?;
    cli_suite::role_assignments_scope_tokens(shard.keystone()).await
}

#[tokio::test]
async fn regions_services_endpoints_and_catalog() -> anyhow::Result<()> {
    let shard = TestShard::start().await?;
    cli_suite::regions_services_endpoints_and_catalog(shard.keystone()).await
}

#[tokio::test]
async fn revoked_token_no_longer_validates() -> anyhow::Result<()> {
    let shard = TestShard::start().await?;
    cli_suite::revoked_token_no_longer_validates(shard.keystone()).await
}
