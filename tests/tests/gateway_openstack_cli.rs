//! The real `openstack` CLI against the gateway in front of three federated
//! shards. The identity endpoint in the catalog is pointed at the gateway
//! first (as an operator registers it), so every CLI call after discovery
//! goes through the gateway too.
//!
//! Needs `KEYFED_PYVENV`, `KEYFED_TEST_PG` and a nats-server: run through
//! `scripts/test`.

use anyhow::Context;
use keyfed_tests::gateway::TestFederation;
use keyfed_tests::python::OpenStack;
use reqwest::Method;
use serde_json::{json, Value};

fn env(url: &str, user: &str, password: &str, project: &str) -> Vec<(String, String)> {
    [
        ("OS_AUTH_URL", format!("{url}/v3")),
        ("OS_USERNAME", user.to_owned()),
        ("OS_PASSWORD", password.to_owned()),
        ("OS_PROJECT_NAME", project.to_owned()),
        ("OS_USER_DOMAIN_NAME", "Default".to_owned()),
        ("OS_PROJECT_DOMAIN_NAME", "Default".to_owned()),
        ("OS_IDENTITY_API_VERSION", "3".to_owned()),
        ("OS_INTERFACE", "public".to_owned()),
        ("OS_REGION_NAME", "RegionOne".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r["Name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_through_the_gateway() -> anyhow::Result<()> {
    let f = TestFederation::start(3).await?;
    let admin = f.admin_token(0).await?;
    let gateway = f.gateway(0).to_owned();

    // Register the gateway as the identity endpoint.
    let (status, endpoints) = f
        .call(0, Method::GET, "/v3/endpoints", &admin, None)
        .await?;
    anyhow::ensure!(status == 200, "{endpoints}");
    for e in endpoints["endpoints"].as_array().context("endpoints")? {
        let id = e["id"].as_str().context("endpoint id")?;
        let (status, body) = f
            .call(
                0,
                Method::PATCH,
                &format!("/v3/endpoints/{id}"),
                &admin,
                Some(&json!({"endpoint": {"url": format!("{gateway}/v3")}})),
            )
            .await?;
        anyhow::ensure!(status == 200, "{body}");
    }

    let os = OpenStack::new(env(&gateway, "admin", &f.admin_password, "admin"))?;
    let token = os.json(&["token", "issue"]).await?;
    assert!(
        token["id"].as_str().is_some_and(|t| !t.is_empty()),
        "{token}"
    );

    let catalog = os.json(&["catalog", "list"]).await?;
    assert!(catalog.to_string().contains(&gateway), "{catalog}");

    let mut ids = Vec::new();
    for name in ["web", "db", "batch"] {
        let p = os
            .json(&["project", "create", "--domain", "default", name])
            .await?;
        ids.push(p["id"].as_str().context("project id")?.to_owned());
    }
    let listed = names(&os.json(&["project", "list"]).await?);
    for name in ["admin", "web", "db", "batch"] {
        assert!(listed.iter().any(|n| n == name), "{name} in {listed:?}");
    }
    let shown = os.json(&["project", "show", "db"]).await?;
    assert_eq!(shown["id"].as_str(), Some(ids[1].as_str()), "{shown}");

    os.run(&[
        "user",
        "create",
        "--domain",
        "default",
        "--password",
        "bob-secret",
        "bob",
    ])
    .await?;
    let users = names(&os.json(&["user", "list"]).await?);
    assert!(users.iter().any(|n| n == "bob"), "{users:?}");
    for project in ["web", "db", "batch"] {
        os.run(&[
            "role",
            "add",
            "--project",
            project,
            "--user",
            "bob",
            "member",
        ])
        .await?;
    }
    for project in ["web", "db", "batch"] {
        let bob = OpenStack::new(env(&gateway, "bob", "bob-secret", project))?;
        let t = bob.json(&["token", "issue"]).await?;
        assert_eq!(
            t["project_id"].as_str(),
            Some(
                ids[["web", "db", "batch"]
                    .iter()
                    .position(|p| *p == project)
                    .unwrap_or(0)]
                .as_str()
            ),
            "{t}"
        );
    }

    os.run(&["project", "delete", "batch"]).await?;
    let listed = names(&os.json(&["project", "list"]).await?);
    assert!(!listed.iter().any(|n| n == "batch"), "{listed:?}");
    Ok(())
}
