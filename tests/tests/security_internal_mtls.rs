//! Internal routes are for members, not gateways (issue 8, part 3), on the
//! in-process mTLS federation of `keyfed_tests::tls`:
//!
//! - on a shard's mTLS listener, a caller presenting a gateway certificate
//!   — what every request a gateway forwards carries — is refused (403)
//!   on `/internal/v1/tenants` and `/internal/v1/join` even with valid
//!   admin and join tokens, and the join token stays unspent; a shard's
//!   certificate is served;
//! - the join listener still serves the join route to a caller without a
//!   certificate, and checks the join token before anything else: a bad
//!   token learns neither that a member of that name exists nor what is
//!   wrong with its CSR (401, not 409 or 400).
#![allow(clippy::unwrap_used)]

use keyfed_federation::lifecycle::credentials;
use keyfed_pki::join_token::Purpose;
use keyfed_pki::MemberKind;
use keyfed_tests::tls::{client, now, start, Pki};
use serde_json::{json, Value};

use keyfed_shared::federation::ADMIN_TOKEN_HEADER;

/// A join request for `shard_id` with a CSR that is not one.
fn join_body(shard_id: &str, token: &str) -> Value {
    json!({
        "shard_id": shard_id,
        "csr": "not a PEM",
        "advertise_url": "https://127.0.0.1:1",
        "weight": 1,
        "join_token": token,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_routes_refuse_gateway_certificates_and_joins_check_the_token_first(
) -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let federation_ca = Pki::new(root.path(), "federation-ca")?;
    let public_ca = Pki::new(root.path(), "public-ca")?;
    let fed = start(root.path(), &federation_ca, &public_ca).await?;
    let dir = fed.issuer.as_ref();
    let shard = &fed.shards[0];
    let admin_token = credentials::issue(dir, Purpose::Admin, now(), 600).await?;
    let join_token = credentials::issue(dir, Purpose::Join, now(), 600).await?;

    // A caller presenting a `kind` certificate: its answer to the tenants
    // listing, with a valid admin token.
    let tenants_as = |kind, id: &'static str| {
        let (ca, admin_token) = (&federation_ca, &admin_token);
        async move {
            let http = client(&ca.ca_file(), Some(&ca.member(kind, id)?))?;
            let r = http
                .get(format!("{shard}/internal/v1/tenants"))
                .header(ADMIN_TOKEN_HEADER, admin_token)
                .send()
                .await?;
            anyhow::Ok((http, r.status().as_u16(), r.json::<Value>().await?))
        }
    };
    let (as_gateway, status, body) = tenants_as(MemberKind::Gateway, "gw-2").await?;
    assert_eq!(status, 403, "tenants for a gateway");
    assert_eq!(body["error"]["code"], 403, "a Keystone error body: {body}");
    let join = as_gateway
        .post(format!("{shard}/internal/v1/join"))
        .json(&join_body("shard-7", &join_token))
        .send()
        .await?;
    assert_eq!(join.status().as_u16(), 403, "join for a gateway");
    credentials::check_join_token(dir, &join_token, now())
        .await
        .expect("the join token refused at the door is unspent");
    let (_, status, _) = tenants_as(MemberKind::Shard, "shard-9").await?;
    assert_eq!(status, 200, "tenants for a shard");

    // The join listener: no client certificate, the join route only, the
    // token first. shard-1 exists and the CSR is garbage: with a bad
    // token, neither is told.
    let anonymous = client(&federation_ca.ca_file(), None)?;
    let join_url = format!("{}/internal/v1/join", fed.join_url);
    for token in ["bogus", "kfj_0000.0000"] {
        let r = anonymous
            .post(&join_url)
            .json(&join_body("shard-1", token))
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), 401, "a bad token: {token}");
        let text = r.text().await?;
        assert!(!text.contains("exists") && !text.contains("PEM"), "{text}");
    }
    let no_token = anonymous.post(&join_url).body("not json").send().await?;
    assert_eq!(no_token.status().as_u16(), 401, "no token at all");
    // With the token, the request itself is judged.
    let taken = anonymous
        .post(&join_url)
        .json(&join_body("shard-1", &join_token))
        .send()
        .await?;
    assert_eq!(
        taken.status().as_u16(),
        409,
        "a valid token learns the id is taken"
    );
    let tenants = anonymous
        .get(format!("{}/internal/v1/tenants", fed.join_url))
        .send()
        .await?;
    assert_eq!(
        tenants.status().as_u16(),
        404,
        "the join listener's only route"
    );
    Ok(())
}
