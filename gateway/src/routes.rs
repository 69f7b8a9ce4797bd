//! Routing: which concern answers a request, from its method and path
//! alone. The decision is pure (tested below); handlers then consult the
//! federation view to pick the shard.

use axum::http::Method;
use keyfed_shared::ids::{ProjectId, UserId};

/// What an entity path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A project (owned by one shard).
    Project,
    /// A user (homed on one shard).
    User,
}

impl Kind {
    /// The JSON member of its bodies (`project`, `user`).
    pub fn member(self) -> &'static str {
        match self {
            Kind::Project => "project",
            Kind::User => "user",
        }
    }
}

/// A listing answered by asking every member and merging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    /// `GET /v3/projects`.
    Projects,
    /// `GET /v3/users`.
    Users,
    /// `GET /v3/role_assignments`.
    RoleAssignments,
    /// `GET /v3/auth/projects`.
    AuthProjects,
    /// `GET /v3/users/{id}/projects`.
    UserProjects,
}

impl Listing {
    /// The collection's member in the body.
    pub fn key(self) -> &'static str {
        match self {
            Listing::Projects | Listing::AuthProjects | Listing::UserProjects => "projects",
            Listing::Users => "users",
            Listing::RoleAssignments => "role_assignments",
        }
    }
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET`/`HEAD /v3/auth/tokens`: validated by the gateway.
    ValidateToken,
    /// `POST /v3/auth/tokens`.
    IssueToken,
    /// `DELETE /v3/auth/tokens`: to the subject token's signer.
    RevokeToken,
    /// Fan-out listing.
    List(Listing),
    /// `POST /v3/projects` or `/v3/users`: placed by the gateway.
    Create(Kind),
    /// `DELETE /v3/{projects,users}/{id}`: forwarded, then the name released.
    Delete(Kind, String),
    /// `PATCH /v3/{projects,users}/{id}`: a rename reserves the new name.
    Update(Kind, String),
    /// Anything else under a project: to its owner.
    Project(ProjectId),
    /// Anything else under a user, and domain/system role assignments of a
    /// user: to the user's home.
    User(UserId),
    /// Global data and APIs every member answers: any active member.
    Any,
    /// No such Keystone route.
    NotFound,
    /// A Keystone route, but not with this method.
    MethodNotAllowed,
}

/// Prefixes (first segment after `/v3`) every member answers: global data,
/// and Keystone APIs the shards do not implement (they answer 501).
const ANY_MEMBER: &[&str] = &[
    "domains",
    "roles",
    "role_inferences",
    "regions",
    "services",
    "endpoints",
    "system",
    "groups",
    "credentials",
    "policies",
    "limits",
    "registered_limits",
    "OS-TRUST",
    "OS-OAUTH1",
    "OS-OAUTH2",
    "OS-FEDERATION",
    "OS-EP-FILTER",
    "OS-INHERIT",
    "OS-REVOKE",
    "OS-SIMPLE-CERT",
];

/// The `/v3/auth/…` APIs (besides tokens and projects) every member
/// answers; any other `/v3/auth/…` path is not a Keystone route.
const AUTH_ANY_MEMBER: &[&str] = &["tokens", "catalog", "domains", "system", "OS-FEDERATION"];

/// Whether a path (after `/v3/`) is one the gateway may forward as it is:
/// no segment is a dot segment (`.`, `..`, raw or percent-encoded in any
/// case, e.g. `%2e%2E`, `.%2e`) and none hides a separator (`%2f`, `%5c`,
/// a raw `\`). A URL library collapses dot segments (and treats `\` as
/// `/` in http URLs) when it parses the upstream URL, so such a path could
/// reach a shard as another route than the one classified — its
/// `/metrics`, or its internal routes. Refused before any upstream call.
pub fn is_normalised(rest: &str) -> bool {
    rest.split('/').all(|seg| {
        let decoded = percent_decode(seg);
        decoded != b"." && decoded != b".." && !decoded.iter().any(|b| matches!(b, b'/' | b'\\'))
    })
}

/// `seg` with `%XX` escapes decoded (a malformed escape stays as it is).
fn percent_decode(seg: &str) -> Vec<u8> {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Most path segments after `/v3/` that classification looks at: every
/// pattern below has at most five fixed segments, and the longer ones end
/// in `..`, so a longer path classifies the same when cut to six.
const MAX_SEGMENTS: usize = 6;

/// Classifies a request; also returns the metrics label (the route
/// template, never an id).
pub fn classify(method: &Method, path: &str) -> (Route, &'static str) {
    let Some(rest) = path.strip_prefix("/v3/") else {
        return (Route::NotFound, "unmatched");
    };
    if !is_normalised(rest) {
        return (Route::NotFound, "unmatched");
    }
    let mut segs = [""; MAX_SEGMENTS];
    let mut n = 0;
    for seg in rest.trim_end_matches('/').split('/').take(MAX_SEGMENTS) {
        segs[n] = seg;
        n += 1;
    }
    let m = method.clone();
    match &segs[..n] {
        ["auth", "tokens"] => match m {
            Method::GET | Method::HEAD => (Route::ValidateToken, "/v3/auth/tokens"),
            Method::POST => (Route::IssueToken, "/v3/auth/tokens"),
            Method::DELETE => (Route::RevokeToken, "/v3/auth/tokens"),
            _ => (Route::MethodNotAllowed, "/v3/auth/tokens"),
        },
        ["auth", "projects"] if m == Method::GET => {
            (Route::List(Listing::AuthProjects), "/v3/auth/projects")
        }
        ["auth", sub, ..] if AUTH_ANY_MEMBER.contains(sub) => (Route::Any, "/v3/auth/*"),
        ["projects"] => match m {
            Method::GET | Method::HEAD => (Route::List(Listing::Projects), "/v3/projects"),
            Method::POST => (Route::Create(Kind::Project), "/v3/projects"),
            _ => (Route::MethodNotAllowed, "/v3/projects"),
        },
        ["users"] => match m {
            Method::GET | Method::HEAD => (Route::List(Listing::Users), "/v3/users"),
            Method::POST => (Route::Create(Kind::User), "/v3/users"),
            _ => (Route::MethodNotAllowed, "/v3/users"),
        },
        ["role_assignments"] => (
            Route::List(Listing::RoleAssignments),
            "/v3/role_assignments",
        ),
        ["projects", id] if !id.is_empty() => match m {
            Method::DELETE => (
                Route::Delete(Kind::Project, (*id).to_owned()),
                "/v3/projects/{id}",
            ),
            Method::PATCH => (
                Route::Update(Kind::Project, (*id).to_owned()),
                "/v3/projects/{id}",
            ),
            _ => (Route::Project(ProjectId::new(*id)), "/v3/projects/{id}"),
        },
        ["projects", id, ..] if !id.is_empty() => {
            (Route::Project(ProjectId::new(*id)), "/v3/projects/{id}/*")
        }
        ["users", id] if !id.is_empty() => match m {
            Method::DELETE => (
                Route::Delete(Kind::User, (*id).to_owned()),
                "/v3/users/{id}",
            ),
            Method::PATCH => (
                Route::Update(Kind::User, (*id).to_owned()),
                "/v3/users/{id}",
            ),
            _ => (Route::User(UserId::new(*id)), "/v3/users/{id}"),
        },
        ["users", id, "projects"] if !id.is_empty() && m == Method::GET => (
            Route::List(Listing::UserProjects),
            "/v3/users/{id}/projects",
        ),
        ["users", id, ..] if !id.is_empty() => (Route::User(UserId::new(*id)), "/v3/users/{id}/*"),
        ["domains", _, "users", user, "roles", ..] if !user.is_empty() => (
            Route::User(UserId::new(*user)),
            "/v3/domains/{id}/users/{id}/roles",
        ),
        ["system", "users", user, "roles", ..] if !user.is_empty() => (
            Route::User(UserId::new(*user)),
            "/v3/system/users/{id}/roles",
        ),
        [first, ..] if ANY_MEMBER.contains(first) => (Route::Any, global_label(first)),
        _ => (Route::NotFound, "unmatched"),
    }
}

/// Whether `classify` would say [`Route::ValidateToken`], without building
/// the route (the edge asks before dispatch).
pub fn is_token_validation(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && path
            .strip_prefix("/v3/auth/tokens")
            .is_some_and(|rest| rest.trim_end_matches('/').is_empty())
}

/// A static label per global prefix.
fn global_label(first: &str) -> &'static str {
    match first {
        "domains" => "/v3/domains*",
        "roles" => "/v3/roles*",
        "role_inferences" => "/v3/role_inferences",
        "regions" => "/v3/regions*",
        "services" => "/v3/services*",
        "endpoints" => "/v3/endpoints*",
        "system" => "/v3/system*",
        _ => "/v3/unsupported*",
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: Method, path: &str) -> Route {
        classify(&method, path).0
    }

    #[test]
    fn token_validation_is_recognised_as_classify_does() {
        let paths = [
            "/v3/auth/tokens",
            "/v3/auth/tokens/",
            "/v3/auth/tokens//",
            "/v3/auth/tokensx",
            "/v3/auth/tokens/x",
            "/v3/auth",
            "/v2/auth/tokens",
        ];
        for method in [Method::GET, Method::HEAD, Method::POST, Method::DELETE] {
            for path in paths {
                assert_eq!(
                    is_token_validation(&method, path),
                    route(method.clone(), path) == Route::ValidateToken,
                    "{method} {path}"
                );
            }
        }
    }

    #[test]
    fn dot_segments_and_hidden_separators_are_no_route() {
        for path in [
            "/v3/auth/../../metrics",
            "/v3/auth/../../readyz",
            "/v3/domains/../../internal/v1/tenants",
            "/v3/auth/%2e%2e/%2E%2e/internal/v1/join",
            "/v3/auth/.%2e/.%2E/metrics",
            "/v3/auth/%2e./x",
            "/v3/projects/./p1",
            "/v3/projects/%2E",
            "/v3/projects/p1%2f..%2f..%2fmetrics",
            "/v3/projects/p1%2F..",
            "/v3/users/u1%5c..%5cx",
            "/v3/users/u1\\..\\x",
            "/v3/regions/..",
        ] {
            for method in [Method::GET, Method::POST, Method::DELETE, Method::PATCH] {
                assert_eq!(
                    route(method.clone(), path),
                    Route::NotFound,
                    "{method} {path}"
                );
            }
        }
        assert_eq!(
            route(Method::GET, "/v3/projects/a.b..c%2e"),
            Route::Project(ProjectId::new("a.b..c%2e")),
            "dots inside a segment are not dot segments"
        );
    }

    #[test]
    fn only_keystone_auth_routes_are_forwarded() {
        let expected = [
            ("/v3/auth/catalog", Route::Any),
            ("/v3/auth/domains", Route::Any),
            ("/v3/auth/system", Route::Any),
            ("/v3/auth/metrics", Route::NotFound),
            ("/v3/auth/internal", Route::NotFound),
            ("/v3/auth", Route::NotFound),
        ];
        for (path, want) in expected {
            assert_eq!(route(Method::GET, path), want, "{path}");
        }
    }

    #[test]
    fn routes_by_path() {
        assert_eq!(route(Method::GET, "/v3/auth/tokens"), Route::ValidateToken);
        assert_eq!(route(Method::HEAD, "/v3/auth/tokens"), Route::ValidateToken);
        assert_eq!(route(Method::POST, "/v3/auth/tokens"), Route::IssueToken);
        assert_eq!(route(Method::DELETE, "/v3/auth/tokens"), Route::RevokeToken);
        assert_eq!(
            route(Method::GET, "/v3/projects"),
            Route::List(Listing::Projects)
        );
        assert_eq!(route(Method::POST, "/v3/users"), Route::Create(Kind::User));
        assert_eq!(
            route(Method::GET, "/v3/users/u1/projects"),
            Route::List(Listing::UserProjects)
        );
        assert_eq!(
            route(Method::PUT, "/v3/projects/p1/users/u1/roles/r1"),
            Route::Project(ProjectId::new("p1"))
        );
        assert_eq!(
            route(Method::DELETE, "/v3/projects/p1"),
            Route::Delete(Kind::Project, "p1".into())
        );
        assert_eq!(
            route(Method::POST, "/v3/users/u1/password"),
            Route::User(UserId::new("u1"))
        );
        assert_eq!(
            route(Method::PUT, "/v3/domains/d/users/u9/roles/r"),
            Route::User(UserId::new("u9"))
        );
        assert_eq!(
            route(Method::GET, "/v3/system/users/u9/roles"),
            Route::User(UserId::new("u9"))
        );
        assert_eq!(route(Method::GET, "/v3/domains"), Route::Any);
        assert_eq!(route(Method::GET, "/v3/role_inferences"), Route::Any);
        assert_eq!(route(Method::GET, "/v3/groups"), Route::Any);
        assert_eq!(route(Method::GET, "/v3/auth/catalog"), Route::Any);
        assert_eq!(route(Method::GET, "/v3/nonsense"), Route::NotFound);
        assert_eq!(
            route(Method::GET, "/v3/projects/p1/users/u1/roles/r1/x/y/z"),
            Route::Project(ProjectId::new("p1"))
        );
        assert_eq!(
            route(Method::GET, "/v3/auth/tokens/a/b/c/d/e/f"),
            Route::Any,
            "a long path under /v3/auth is not token validation"
        );
        assert_eq!(route(Method::GET, "/v2.0/tenants"), Route::NotFound);
        assert_eq!(
            route(Method::PUT, "/v3/auth/tokens"),
            Route::MethodNotAllowed
        );
    }
}
