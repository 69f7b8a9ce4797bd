//! Keystone's version discovery documents, served by shards and gateways
//! alike: `GET /` (300, the versions list) and `GET /v3`.

use serde_json::{json, Value};

/// The v3 version description, linking to `public_url`.
pub fn v3_description(public_url: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{public_url}/v3/")}],
        "media-types": [{"base": "application/json",
            "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

/// The body of `GET /`.
pub fn versions(public_url: &str) -> Value {
    json!({"versions": {"values": [v3_description(public_url)]}})
}

/// The body of `GET /v3`.
pub fn version(public_url: &str) -> Value {
    json!({ "version": v3_description(public_url) })
}
