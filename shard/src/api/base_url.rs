//! The public base URL of a request, for the links a shard renders
//! (`links.self`, collection links, the catalog and assignment links):
//! behind a gateway the federation's public endpoint, not the shard's own
//! address. A gateway names its public URL in `X-Forwarded-Proto`,
//! `X-Forwarded-Host` and `X-Forwarded-Prefix` (from its configuration,
//! never from the client's `Host`), as a proxy tells Keystone through
//! oslo's `HTTPProxyToWSGI`; a federated shard's edge middleware reads them
//! ([`of_request`]) and runs the handler with the result in a task-local
//! ([`scope`]), which [`base`] reads where links are built — so no handler
//! takes it as a parameter. Headers that are not a plain scheme, host and
//! path are ignored (the shard's own public URL is used).

use std::future::Future;
use std::sync::Arc;

use axum::http::HeaderMap;

use crate::state::Shard;

tokio::task_local! {
    static BASE_URL: Arc<str>;
}

/// The base URL the `X-Forwarded-*` headers name, if they are well formed.
pub fn of_request(headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let proto = header("x-forwarded-proto")?;
    let host = header("x-forwarded-host")?;
    let prefix = header("x-forwarded-prefix").unwrap_or("");
    let host_ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
    let prefix_ok = prefix.len() <= 255
        && (prefix.is_empty() || prefix.starts_with('/'))
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
        && !prefix.split('/').any(|seg| seg == "." || seg == "..");
    let proto_ok = proto == "http" || proto == "https";
    (proto_ok && host_ok && prefix_ok)
        .then(|| format!("{proto}://{host}{}", prefix.trim_end_matches('/')))
}

/// Runs `f` with `base` (when given) as the base URL of its links.
pub async fn scope<F: Future>(base: Option<String>, f: F) -> F::Output {
    match base {
        Some(base) => BASE_URL.scope(Arc::from(base), f).await,
        None => f.await,
    }
}

/// The base URL of the request being handled: the one its gateway named,
/// else the shard's own public URL (no trailing slash).
pub fn base(state: &Shard) -> Arc<str> {
    BASE_URL
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::from(state.public_url.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                *k,
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
        }
        h
    }

    #[test]
    fn a_gateways_headers_name_the_base_url() {
        let h = headers(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "id.example.org:5000"),
            ("x-forwarded-prefix", "/identity/"),
        ]);
        assert_eq!(
            of_request(&h).as_deref(),
            Some("https://id.example.org:5000/identity")
        );
        let h = headers(&[
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "[::1]:80"),
        ]);
        assert_eq!(of_request(&h).as_deref(), Some("http://[::1]:80"));
    }

    #[test]
    fn anything_else_is_ignored() {
        for bad in [
            headers(&[("x-forwarded-host", "gw")]),
            headers(&[("x-forwarded-proto", "ftp"), ("x-forwarded-host", "gw")]),
            headers(&[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "gw/evil"),
            ]),
            headers(&[("x-forwarded-proto", "https"), ("x-forwarded-host", "a b")]),
            headers(&[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "gw"),
                ("x-forwarded-prefix", "/../x"),
            ]),
            headers(&[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "gw"),
                ("x-forwarded-prefix", "x\"><"),
            ]),
        ] {
            assert_eq!(of_request(&bad), None, "{bad:?}");
        }
    }
}
