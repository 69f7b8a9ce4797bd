//! The `openstack` CLI suite (python-openstackclient, pinned in
//! tests/python/requirements.txt): each function drives one area of the
//! Identity API through the real CLI against a [`Keystone`] endpoint — a
//! standalone shard (`tests/tests/openstack_cli.rs`) or the gateway in front
//! of three shard processes (`tests/tests/gateway_openstack_cli.rs`) — and
//! checks the values the CLI prints, not just its exit status. Each expects
//! a fresh federation or shard (it creates fixed names such as `demo`).
//!
//! `regions_services_endpoints_and_catalog` expects the catalog's identity
//! endpoint to be the endpoint under test.

use crate::keystone::Keystone;
use crate::python::OpenStack;
use anyhow::Context;
use serde_json::Value;

/// `value[key]` as a string, or a message naming what was missing.
fn text(value: &Value, key: &str) -> anyhow::Result<String> {
    value[key]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no string `{key}` in {value}"))
}

/// The rows of a `-f json` listing.
fn rows(list: &Value) -> &[Value] {
    list.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The values of one column of a `-f json` listing.
fn column(list: &Value, key: &str) -> Vec<String> {
    rows(list)
        .iter()
        .filter_map(|row| row[key].as_str().map(str::to_owned))
        .collect()
}

/// The id of a resource the CLI can show (`openstack KIND show NAME`).
async fn id_of(os: &OpenStack, kind: &str, name: &str) -> anyhow::Result<String> {
    text(&os.json(&[kind, "show", name]).await?, "id")
}

/// `openstack token issue` must be refused by the server with a 401.
async fn token_refused(os: &OpenStack) -> anyhow::Result<()> {
    let stderr = os.fails(&["token", "issue"]).await?;
    assert!(
        stderr.contains("HTTP 401"),
        "expected a 401, got:\n{stderr}"
    );
    Ok(())
}

/// `openstack KIND show ID` must report that nothing has that id.
async fn not_found(os: &OpenStack, kind: &str, id: &str) -> anyhow::Result<()> {
    let stderr = os.fails(&[kind, "show", id]).await?;
    // "No Project found for ID" (OSC 10) or "No project with a name or ID
    // of 'ID' exists." (older releases).
    assert!(
        stderr.to_lowercase().contains(&format!("no {kind} ")) && stderr.contains(id),
        "expected {kind} {id} to be gone, got:\n{stderr}"
    );
    Ok(())
}

pub async fn token_issue_and_project_lifecycle(ks: &Keystone) -> anyhow::Result<()> {
    let os = ks.openstack()?;

    let admin_project = id_of(&os, "project", "admin").await?;
    let admin_user = id_of(&os, "user", "admin").await?;
    let token = os.json(&["token", "issue"]).await?;
    assert!(!text(&token, "id")?.is_empty(), "{token}");
    assert_eq!(text(&token, "project_id")?, admin_project, "{token}");
    assert_eq!(text(&token, "user_id")?, admin_user, "{token}");
    assert!(!text(&token, "expires")?.is_empty(), "{token}");

    // create
    let web = os
        .json(&[
            "project",
            "create",
            "--domain",
            "default",
            "--description",
            "Web tier",
            "web",
        ])
        .await?;
    let web_id = text(&web, "id")?;
    assert_eq!(text(&web, "name")?, "web", "{web}");
    assert_eq!(text(&web, "description")?, "Web tier", "{web}");
    assert_eq!(text(&web, "domain_id")?, "default", "{web}");
    assert_eq!(web["enabled"], true, "{web}");

    // list
    let list = os.json(&["project", "list"]).await?;
    let ids = column(&list, "ID");
    assert!(ids.contains(&web_id), "{list}");
    assert!(ids.contains(&admin_project), "{list}");
    assert!(column(&list, "Name").contains(&"web".to_owned()), "{list}");

    // show, by name and by id
    let by_name = os.json(&["project", "show", "web"]).await?;
    assert_eq!(text(&by_name, "id")?, web_id, "{by_name}");
    let by_id = os.json(&["project", "show", &web_id]).await?;
    assert_eq!(text(&by_id, "name")?, "web", "{by_id}");

    // set
    os.run(&["project", "set", "--description", "Web tier, v2", "web"])
        .await?;
    let shown = os.json(&["project", "show", &web_id]).await?;
    assert_eq!(text(&shown, "description")?, "Web tier, v2", "{shown}");
    os.run(&["project", "set", "--disable", "web"]).await?;
    let shown = os.json(&["project", "show", &web_id]).await?;
    assert_eq!(shown["enabled"], false, "{shown}");
    os.run(&["project", "set", "--enable", "web"]).await?;
    let shown = os.json(&["project", "show", &web_id]).await?;
    assert_eq!(shown["enabled"], true, "{shown}");

    // delete
    os.run(&["project", "delete", "web"]).await?;
    let list = os.json(&["project", "list"]).await?;
    assert!(!column(&list, "ID").contains(&web_id), "{list}");
    assert!(column(&list, "ID").contains(&admin_project), "{list}");
    not_found(&os, "project", &web_id).await?;
    Ok(())
}

pub async fn user_lifecycle_and_password_changes(ks: &Keystone) -> anyhow::Result<()> {
    let os = ks.openstack()?;
    let demo = text(
        &os.json(&["project", "create", "--domain", "default", "demo"])
            .await?,
        "id",
    )?;

    // create
    let alice = os
        .json(&[
            "user",
            "create",
            "--domain",
            "default",
            "--project",
            "demo",
            "--password",
            "first-secret",
            "--email",
            "alice@example.org",
            "alice",
        ])
        .await?;
    let alice_id = text(&alice, "id")?;
    assert_eq!(text(&alice, "name")?, "alice", "{alice}");
    assert_eq!(text(&alice, "domain_id")?, "default", "{alice}");
    assert_eq!(text(&alice, "default_project_id")?, demo, "{alice}");
    assert_eq!(text(&alice, "email")?, "alice@example.org", "{alice}");
    assert_eq!(alice["enabled"], true, "{alice}");
    assert!(alice.get("password").is_none(), "password echoed: {alice}");

    // list and show
    let list = os.json(&["user", "list"]).await?;
    assert!(column(&list, "ID").contains(&alice_id), "{list}");
    assert!(
        column(&list, "Name").contains(&"admin".to_owned()),
        "{list}"
    );
    let by_name = os.json(&["user", "show", "alice"]).await?;
    assert_eq!(text(&by_name, "id")?, alice_id, "{by_name}");
    let by_id = os.json(&["user", "show", &alice_id]).await?;
    assert_eq!(text(&by_id, "name")?, "alice", "{by_id}");

    // set --email
    os.run(&["user", "set", "--email", "alice@example.com", "alice"])
        .await?;
    let shown = os.json(&["user", "show", &alice_id]).await?;
    assert_eq!(text(&shown, "email")?, "alice@example.com", "{shown}");

    // a role so that alice can get a token scoped to demo
    os.run(&[
        "role",
        "add",
        "--user",
        "alice",
        "--project",
        "demo",
        "member",
    ])
    .await?;
    let token = ks
        .openstack_as("alice", "first-secret", "demo")?
        .json(&["token", "issue"])
        .await?;
    assert_eq!(text(&token, "user_id")?, alice_id, "{token}");
    assert_eq!(text(&token, "project_id")?, demo, "{token}");

    // the admin resets alice's password
    os.run(&["user", "set", "--password", "second-secret", "alice"])
        .await?;
    token_refused(&ks.openstack_as("alice", "first-secret", "demo")?).await?;
    let as_alice = ks.openstack_as("alice", "second-secret", "demo")?;
    let token = as_alice.json(&["token", "issue"]).await?;
    assert_eq!(text(&token, "user_id")?, alice_id, "{token}");

    // alice changes her own password
    as_alice
        .run(&[
            "user",
            "password",
            "set",
            "--password",
            "third-secret",
            "--original-password",
            "second-secret",
        ])
        .await?;
    token_refused(&as_alice).await?;
    let token = ks
        .openstack_as("alice", "third-secret", "demo")?
        .json(&["token", "issue"])
        .await?;
    assert_eq!(text(&token, "user_id")?, alice_id, "{token}");

    // delete
    os.run(&["user", "delete", "alice"]).await?;
    let list = os.json(&["user", "list"]).await?;
    assert!(!column(&list, "ID").contains(&alice_id), "{list}");
    not_found(&os, "user", &alice_id).await?;
    token_refused(&ks.openstack_as("alice", "third-secret", "demo")?).await?;
    Ok(())
}

pub async fn role_assignments_scope_tokens(ks: &Keystone) -> anyhow::Result<()> {
    let os = ks.openstack()?;
    let demo = text(
        &os.json(&["project", "create", "--domain", "default", "demo"])
            .await?,
        "id",
    )?;
    let bob = text(
        &os.json(&[
            "user",
            "create",
            "--domain",
            "default",
            "--password",
            "bob-secret",
            "bob",
        ])
        .await?,
        "id",
    )?;
    let roles = os.json(&["role", "list"]).await?;
    for role in ["admin", "member", "reader"] {
        assert!(column(&roles, "Name").contains(&role.to_owned()), "{roles}");
    }
    let member = id_of(&os, "role", "member").await?;

    // without a role bob cannot scope to demo
    let as_bob = ks.openstack_as("bob", "bob-secret", "demo")?;
    token_refused(&as_bob).await?;

    os.run(&[
        "role",
        "add",
        "--user",
        "bob",
        "--project",
        "demo",
        "member",
    ])
    .await?;
    let named = os
        .json(&["role", "assignment", "list", "--names", "--user", "bob"])
        .await?;
    assert_eq!(rows(&named).len(), 1, "{named}");
    assert_eq!(text(&named[0], "Role")?, "member", "{named}");
    assert_eq!(text(&named[0], "User")?, "bob@Default", "{named}");
    assert_eq!(text(&named[0], "Project")?, "demo@Default", "{named}");
    let by_id = os
        .json(&[
            "role",
            "assignment",
            "list",
            "--user",
            &bob,
            "--project",
            &demo,
        ])
        .await?;
    assert_eq!(rows(&by_id).len(), 1, "{by_id}");
    assert_eq!(text(&by_id[0], "Role")?, member, "{by_id}");
    assert_eq!(text(&by_id[0], "User")?, bob, "{by_id}");
    assert_eq!(text(&by_id[0], "Project")?, demo, "{by_id}");

    // a new user scoped to a new project
    let token = as_bob.json(&["token", "issue"]).await?;
    assert_eq!(text(&token, "user_id")?, bob, "{token}");
    assert_eq!(text(&token, "project_id")?, demo, "{token}");

    os.run(&[
        "role",
        "remove",
        "--user",
        "bob",
        "--project",
        "demo",
        "member",
    ])
    .await?;
    let named = os
        .json(&["role", "assignment", "list", "--names", "--user", "bob"])
        .await?;
    assert!(rows(&named).is_empty(), "{named}");
    token_refused(&as_bob).await?;
    Ok(())
}

pub async fn regions_services_endpoints_and_catalog(ks: &Keystone) -> anyhow::Result<()> {
    let os = ks.openstack()?;

    let region = os
        .json(&[
            "region",
            "create",
            "--description",
            "Second region",
            "RegionTwo",
        ])
        .await?;
    assert_eq!(text(&region, "region")?, "RegionTwo", "{region}");
    assert_eq!(text(&region, "description")?, "Second region", "{region}");
    let regions = os.json(&["region", "list"]).await?;
    let names = column(&regions, "Region");
    assert!(names.contains(&"RegionOne".to_owned()), "{regions}");
    assert!(names.contains(&"RegionTwo".to_owned()), "{regions}");

    let nova = os
        .json(&[
            "service",
            "create",
            "--name",
            "nova",
            "--description",
            "Compute service",
            "compute",
        ])
        .await?;
    let nova_id = text(&nova, "id")?;
    assert_eq!(text(&nova, "name")?, "nova", "{nova}");
    assert_eq!(text(&nova, "type")?, "compute", "{nova}");
    assert_eq!(text(&nova, "description")?, "Compute service", "{nova}");
    let services = os.json(&["service", "list"]).await?;
    assert!(column(&services, "ID").contains(&nova_id), "{services}");
    assert!(
        column(&services, "Type").contains(&"identity".to_owned()),
        "{services}"
    );

    let public_url = "http://compute.example:8774/v2.1";
    let internal_url = "http://compute.internal:8774/v2.1";
    let public = os
        .json(&[
            "endpoint",
            "create",
            "--region",
            "RegionOne",
            "compute",
            "public",
            public_url,
        ])
        .await?;
    let public_id = text(&public, "id")?;
    assert_eq!(text(&public, "service_id")?, nova_id, "{public}");
    assert_eq!(text(&public, "interface")?, "public", "{public}");
    assert_eq!(text(&public, "url")?, public_url, "{public}");
    assert_eq!(text(&public, "region")?, "RegionOne", "{public}");
    let internal = os
        .json(&[
            "endpoint",
            "create",
            "--region",
            "RegionTwo",
            "nova",
            "internal",
            internal_url,
        ])
        .await?;
    let internal_id = text(&internal, "id")?;

    let endpoints = os.json(&["endpoint", "list"]).await?;
    let ids = column(&endpoints, "ID");
    assert!(ids.contains(&public_id), "{endpoints}");
    assert!(ids.contains(&internal_id), "{endpoints}");
    let row = rows(&endpoints)
        .iter()
        .find(|row| row["ID"] == public_id.as_str())
        .context("public endpoint row")?;
    assert_eq!(text(row, "URL")?, public_url, "{row}");
    assert_eq!(text(row, "Service Type")?, "compute", "{row}");
    assert_eq!(text(row, "Service Name")?, "nova", "{row}");
    let filtered = os
        .json(&["endpoint", "list", "--interface", "internal"])
        .await?;
    let ids = column(&filtered, "ID");
    assert!(ids.contains(&internal_id), "{filtered}");
    assert!(!ids.contains(&public_id), "{filtered}");

    // The catalog of a new token carries both services.
    let catalog = os.json(&["catalog", "list"]).await?;
    let compute = rows(&catalog)
        .iter()
        .find(|entry| entry["Type"] == "compute")
        .with_context(|| format!("no compute entry in {catalog}"))?;
    assert_eq!(text(compute, "Name")?, "nova", "{compute}");
    let compute_endpoints = compute["Endpoints"].to_string();
    assert!(compute_endpoints.contains(public_url), "{compute}");
    assert!(compute_endpoints.contains(internal_url), "{compute}");
    let identity = rows(&catalog)
        .iter()
        .find(|entry| entry["Type"] == "identity")
        .with_context(|| format!("no identity entry in {catalog}"))?;
    assert!(
        identity["Endpoints"].to_string().contains(&ks.url),
        "{identity}"
    );
    Ok(())
}

pub async fn revoked_token_no_longer_validates(ks: &Keystone) -> anyhow::Result<()> {
    let os = ks.openstack()?;
    let admin = ks.admin_token().await?;

    let issued = os.json(&["token", "issue"]).await?;
    let token = text(&issued, "id")?;
    let (status, body) = ks.validate_token(&admin.id, &token).await?;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body)?;
    assert_eq!(
        body["token"]["user"]["id"],
        admin.user_id.as_str(),
        "{body}"
    );

    os.run(&["token", "revoke", &token]).await?;
    let (status, body) = ks.validate_token(&admin.id, &token).await?;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{body}");

    // The revoked token cannot authenticate a request either.
    let response = ks
        .http()
        .get(format!("{}/v3/projects", ks.url))
        .header("X-Auth-Token", &token)
        .send()
        .await?;
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
    // ... while the admin's other token still works.
    let (status, body) = ks.validate_token(&admin.id, &admin.id).await?;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    Ok(())
}
