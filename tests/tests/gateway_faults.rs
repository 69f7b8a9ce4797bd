//! A shard stopped behind the gateway: requests for its tenants get a
//! Keystone 503 quickly; everything else keeps working.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use keyfed_shared::ids::ProjectId;
use keyfed_tests::gateway::{TestFederation, UPSTREAM_TIMEOUT};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_shard_costs_only_its_tenants() {
    let mut f = TestFederation::start(3).await.unwrap();
    let admin = f.admin_token(0).await.unwrap();
    // One project on shard-1 (to stop), one elsewhere.
    let (mut doomed, mut alive) = (None, None);
    for i in 0..40 {
        let (status, body) = f
            .call(
                0,
                Method::POST,
                "/v3/projects",
                &admin,
                Some(&json!({"project": {"name": format!("p{i}")}})),
            )
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
        let id = body["project"]["id"].as_str().unwrap().to_owned();
        match f
            .view
            .owner_of_project(&ProjectId::new(&id))
            .unwrap()
            .as_str()
        {
            "shard-1" => doomed = doomed.or(Some(id)),
            "shard-2" => alive = alive.or(Some(id)),
            _ => {}
        }
        if doomed.is_some() && alive.is_some() {
            break;
        }
    }
    let (doomed, alive) = (doomed.unwrap(), alive.unwrap());
    drop(f.shards[1].take());

    let start = Instant::now();
    let (status, body) = f
        .call(
            0,
            Method::GET,
            &format!("/v3/projects/{doomed}"),
            &admin,
            None,
        )
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], 503);
    assert!(
        !body.to_string().contains("shard-1"),
        "no internals: {body}"
    );
    assert!(took < UPSTREAM_TIMEOUT + Duration::from_secs(1), "{took:?}");
    println!("503 for the stopped shard's tenant after {took:?}");

    let (status, body) = f
        .call(
            0,
            Method::GET,
            &format!("/v3/projects/{alive}"),
            &admin,
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    // Validation needs no shard.
    let r = f
        .http
        .get(format!("{}/v3/auth/tokens", f.gateway(0)))
        .header("x-auth-token", &admin)
        .header("x-subject-token", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A fan-out touching the stopped shard fails as a whole, Keystone-shaped.
    let (status, body) = f
        .call(0, Method::GET, "/v3/projects", &admin, None)
        .await
        .unwrap();
    assert_eq!(status, 503, "{body}");
    let upstream_errors = f.gateways[0]
        .metric_sum("keyfed_gateway_upstream_errors_total")
        .await
        .unwrap();
    assert!(upstream_errors >= 1.0);
}
