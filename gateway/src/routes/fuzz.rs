//! Fuzz tests of request classification: whatever the method and path,
//! `classify` answers (no panic); a path with a dot segment or a hidden
//! separator is no route, so it never reaches a shard; and a path the
//! gateway forwards keeps its segments when the upstream URL is built.
#![allow(clippy::unwrap_used)]

use super::{classify, is_token_validation, percent_decode, Route};
use axum::http::Method;
use keyfed_shared::fuzzing::{config, hostile_string};
use proptest::prelude::*;

const SEGMENTS: &[&str] = &[
    "v3",
    "auth",
    "tokens",
    "projects",
    "users",
    "roles",
    "domains",
    "system",
    "regions",
    "role_assignments",
    "OS-TRUST",
    "catalog",
    "p1",
    "u1",
    "a.b",
    "",
    ".",
    "..",
    "%2e",
    "%2E%2e",
    ".%2e",
    "%2e.",
    "%2f",
    "%2F",
    "%5c",
    "\\",
    "a%2fb",
    "%",
    "%zz",
    "%FF",
    "metrics",
    "internal",
];

fn method() -> BoxedStrategy<Method> {
    prop_oneof![
        prop::sample::select(
            &[
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ][..]
        ),
        "[A-Z]{1,8}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
    .boxed()
}

fn path() -> BoxedStrategy<String> {
    let segment = prop_oneof![
        6 => prop::sample::select(SEGMENTS).prop_map(str::to_owned),
        1 => hostile_string(SEGMENTS),
    ];
    (
        prop::sample::select(&["/v3/", "/v3", "/", "", "/v2.0/", "//v3/"][..]),
        prop::collection::vec(segment, 0..9),
        prop::sample::select(&["", "/", "//"][..]),
    )
        .prop_map(|(prefix, segments, suffix)| {
            // A request's path, as `Uri::path` gives it: no query or fragment.
            format!("{prefix}{}{suffix}", segments.join("/"))
                .replace('?', "%3F")
                .replace('#', "%23")
        })
        .boxed()
}

/// Whether a URL parser could read `rest` as another path.
fn ambiguous(rest: &str) -> bool {
    rest.split('/').any(|seg| {
        let decoded = percent_decode(seg);
        decoded == b"." || decoded == b".." || decoded.iter().any(|b| matches!(b, b'/' | b'\\'))
    })
}

fn forwarded(route: &Route) -> bool {
    !matches!(
        route,
        Route::NotFound | Route::MethodNotAllowed | Route::ValidateToken
    )
}

#[test]
fn fuzz_gateway_paths_classify_without_dot_segments_upstream() {
    proptest!(config(4096), |(method in method(), path in path())| {
        let (route, label) = classify(&method, &path);
        prop_assert!(!label.is_empty());
        prop_assert_eq!(
            is_token_validation(&method, &path),
            route == Route::ValidateToken,
            "{} {}", method, path
        );
        if let Some(rest) = path.strip_prefix("/v3/") {
            if ambiguous(rest) {
                prop_assert_eq!(&route, &Route::NotFound, "{} {}", method, path);
            }
        }
        if forwarded(&route) {
            prop_assert!(path.starts_with("/v3/"));
            // Built as the proxy builds it: the path as classified, or no
            // request at all.
            if let Some(url) = crate::proxy::upstream_url("http://shard:5000/base", &path) {
                prop_assert_eq!(url.path(), format!("/base{path}"));
            }
        }
    });
}
