//! Parsing `POST /v3/auth/tokens` bodies into a typed request. Every way a
//! body can be wrong maps to a 400 (or 401 for an unsupported method, as
//! Keystone answers) with a message naming the offending field.

use crate::error::{ApiError, ErrorKind};
use crate::ids::{DomainId, ProjectId, UserId, MAX_ID_LEN};
use serde_json::{Map, Value};
use std::fmt;

/// Longest name or password accepted (Keystone: 255 for names; passwords are
/// capped to bound hashing cost).
pub const MAX_NAME_LEN: usize = 255;
/// Longest password accepted.
pub const MAX_PASSWORD_LEN: usize = 4096;

/// A secret string that never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself, for hashing or verification only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A parsed authentication request.
#[derive(Debug, PartialEq)]
pub struct AuthRequest {
    pub identity: Identity,
    pub scope: ScopeRequest,
}

/// How the caller proves who they are.
#[derive(Debug, PartialEq)]
pub enum Identity {
    /// The `password` method.
    Password { user: UserRef, password: Secret },
    /// The `token` method (rescoping an existing token).
    Token { id: Secret },
}

/// A user named by id, or by name within a domain.
#[derive(Clone, Debug, PartialEq)]
pub enum UserRef {
    Id(UserId),
    Name { name: String, domain: DomainRef },
}

/// A domain named by id or name.
#[derive(Clone, Debug, PartialEq)]
pub enum DomainRef {
    Id(DomainId),
    Name(String),
}

/// A project named by id, or by name within a domain.
#[derive(Clone, Debug, PartialEq)]
pub enum ProjectRef {
    Id(ProjectId),
    Name { name: String, domain: DomainRef },
}

/// The requested scope.
#[derive(Clone, Debug, PartialEq)]
pub enum ScopeRequest {
    Unscoped,
    Project(ProjectRef),
    Domain(DomainRef),
    System,
}

fn bad(field: &str, what: &str) -> ApiError {
    ApiError::validation(format!("Invalid input for field '{field}': {what}."))
}

fn object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, ApiError> {
    v.as_object()
        .ok_or_else(|| bad(field, "expected an object"))
}

fn string<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &str,
    max: usize,
) -> Result<Option<&'a str>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(bad(field, "must not be empty")),
        Some(Value::String(s)) if s.len() > max => Err(bad(field, "too long")),
        Some(Value::String(s)) if s.contains('\0') => Err(bad(field, "must not contain NUL")),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(field, "expected a string")),
    }
}

fn domain_ref(v: &Value, field: &str) -> Result<DomainRef, ApiError> {
    let obj = object(v, field)?;
    if let Some(id) = string(obj, "id", &format!("{field}/id"), MAX_ID_LEN)? {
        return Ok(DomainRef::Id(DomainId::new(id)));
    }
    match string(obj, "name", &format!("{field}/name"), MAX_NAME_LEN)? {
        Some(name) => Ok(DomainRef::Name(name.to_owned())),
        None => Err(bad(field, "expected 'id' or 'name'")),
    }
}

fn named<T>(
    v: &Value,
    field: &str,
    by_id: impl FnOnce(&str) -> T,
    by_name: impl FnOnce(String, DomainRef) -> T,
) -> Result<T, ApiError> {
    let obj = object(v, field)?;
    if let Some(id) = string(obj, "id", &format!("{field}/id"), MAX_ID_LEN)? {
        return Ok(by_id(id));
    }
    let Some(name) = string(obj, "name", &format!("{field}/name"), MAX_NAME_LEN)? else {
        return Err(bad(field, "expected 'id' or 'name'"));
    };
    let domain = obj
        .get("domain")
        .ok_or_else(|| bad(field, "a name must come with a 'domain'"))?;
    Ok(by_name(
        name.to_owned(),
        domain_ref(domain, &format!("{field}/domain"))?,
    ))
}

fn password_identity(v: &Value) -> Result<Identity, ApiError> {
    let field = "identity/password";
    let obj = object(v, field)?;
    let user_v = obj
        .get("user")
        .ok_or_else(|| bad(field, "'user' is required"))?;
    let user = named(
        user_v,
        "identity/password/user",
        |id| UserRef::Id(UserId::new(id)),
        |name, domain| UserRef::Name { name, domain },
    )?;
    let user_obj = object(user_v, "identity/password/user")?;
    let password = match user_obj.get("password") {
        Some(Value::String(p)) if p.len() <= MAX_PASSWORD_LEN => Secret::new(p.clone()),
        Some(Value::String(_)) => return Err(bad("identity/password/user/password", "too long")),
        Some(_) => return Err(bad("identity/password/user/password", "expected a string")),
        None => {
            return Err(bad(
                "identity/password/user/password",
                "'password' is required",
            ))
        }
    };
    Ok(Identity::Password { user, password })
}

fn token_identity(v: &Value) -> Result<Identity, ApiError> {
    let obj = object(v, "identity/token")?;
    match string(
        obj,
        "id",
        "identity/token/id",
        crate::token::MAX_TOKEN_LEN * 2,
    )? {
        Some(id) => Ok(Identity::Token {
            id: Secret::new(id),
        }),
        None => Err(bad("identity/token", "'id' is required")),
    }
}

fn scope(v: Option<&Value>) -> Result<ScopeRequest, ApiError> {
    let v = match v {
        None | Some(Value::Null) => return Ok(ScopeRequest::Unscoped),
        Some(Value::String(s)) if s == "unscoped" => return Ok(ScopeRequest::Unscoped),
        Some(v) => v,
    };
    let obj = object(v, "scope")?;
    let mut kinds = obj.keys().filter(|k| !k.starts_with("OS-"));
    let (Some(kind), None) = (kinds.next(), kinds.next()) else {
        return Err(bad(
            "scope",
            "specify exactly one of project, domain, system",
        ));
    };
    let value = &obj[kind.as_str()];
    match kind.as_str() {
        "project" => Ok(ScopeRequest::Project(named(
            value,
            "scope/project",
            |id| ProjectRef::Id(ProjectId::new(id)),
            |name, domain| ProjectRef::Name { name, domain },
        )?)),
        "domain" => Ok(ScopeRequest::Domain(domain_ref(value, "scope/domain")?)),
        "system" => match object(value, "scope/system")?.get("all") {
            Some(Value::Bool(true)) => Ok(ScopeRequest::System),
            _ => Err(bad("scope/system", "expected {\"all\": true}")),
        },
        other => Err(bad("scope", &format!("unknown scope '{other}'"))),
    }
}

/// Parses a `POST /v3/auth/tokens` body.
pub fn parse_auth_request(body: &Value) -> Result<AuthRequest, ApiError> {
    let auth = body
        .get("auth")
        .ok_or_else(|| ApiError::validation("Expecting to find auth in request body."))?;
    let auth = object(auth, "auth")?;
    let identity = object(
        auth.get("identity")
            .ok_or_else(|| bad("auth", "'identity' is required"))?,
        "identity",
    )?;
    let methods = identity
        .get("methods")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("identity/methods", "expected a list of methods"))?;
    let method = match methods.as_slice() {
        [Value::String(m)] => m.as_str(),
        [] => return Err(bad("identity/methods", "at least one method is required")),
        [_] => return Err(bad("identity/methods", "expected strings")),
        _ => {
            return Err(ApiError::new(
                ErrorKind::Unauthorized,
                "Multi-factor authentication is not supported.",
            ))
        }
    };
    let section = identity.get(method);
    let identity = match (method, section) {
        ("password", Some(v)) => password_identity(v)?,
        ("token", Some(v)) => token_identity(v)?,
        ("password" | "token", None) => {
            return Err(bad("identity", &format!("'{method}' section is required")))
        }
        _ => {
            return Err(ApiError::new(
                ErrorKind::Unauthorized,
                "Attempted to authenticate with an unsupported method.",
            ))
        }
    };
    Ok(AuthRequest {
        identity,
        scope: scope(auth.get("scope"))?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn password_by_name_scoped_to_project_by_name() {
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": "s3cret"}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}});
        let req = parse_auth_request(&body).unwrap();
        assert_eq!(
            req.identity,
            Identity::Password {
                user: UserRef::Name {
                    name: "admin".into(),
                    domain: DomainRef::Name("Default".into())
                },
                password: Secret::new("s3cret"),
            }
        );
        assert_eq!(
            req.scope,
            ScopeRequest::Project(ProjectRef::Name {
                name: "admin".into(),
                domain: DomainRef::Id(DomainId::new("default"))
            })
        );
        assert!(!format!("{req:?}").contains("s3cret"));
    }

    #[test]
    fn token_method_system_and_unscoped() {
        let body = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "abc"}},
            "scope": {"system": {"all": true}}}});
        let req = parse_auth_request(&body).unwrap();
        assert_eq!(req.scope, ScopeRequest::System);
        let body = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "abc"}},
            "scope": "unscoped"}});
        assert_eq!(
            parse_auth_request(&body).unwrap().scope,
            ScopeRequest::Unscoped
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({}), ErrorKind::Validation),
            (json!({"auth": 1}), ErrorKind::Validation),
            (
                json!({"auth": {"identity": {"methods": ["password"]}}}),
                ErrorKind::Validation,
            ),
            (
                json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": "u", "password": 5}}}}}),
                ErrorKind::Validation,
            ),
            (
                json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "u", "password": "p"}}}}}),
                ErrorKind::Validation,
            ),
            (
                json!({"auth": {"identity": {"methods": ["totp"], "totp": {}}}}),
                ErrorKind::Unauthorized,
            ),
            (
                json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "t"}}, "scope": {"galaxy": {}}}}),
                ErrorKind::Validation,
            ),
            (
                json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "t"}}, "scope": {"project": {"id": "p"}, "domain": {"id": "d"}}}}),
                ErrorKind::Validation,
            ),
        ];
        for (body, kind) in cases {
            assert_eq!(parse_auth_request(&body).unwrap_err().kind, kind, "{body}");
        }
    }

    /// Checks what a parsed request promises its users.
    fn well_formed(req: &AuthRequest) -> bool {
        let name_ok = |n: &str| !n.is_empty() && n.len() <= MAX_NAME_LEN && !n.contains('\0');
        let domain_ok = |d: &DomainRef| match d {
            DomainRef::Id(id) => !id.as_str().is_empty() && id.as_str().len() <= MAX_ID_LEN,
            DomainRef::Name(n) => name_ok(n),
        };
        let identity_ok = match &req.identity {
            Identity::Password { user, password } => {
                password.expose().len() <= MAX_PASSWORD_LEN
                    && match user {
                        UserRef::Id(id) => id.as_str().len() <= MAX_ID_LEN,
                        UserRef::Name { name, domain } => name_ok(name) && domain_ok(domain),
                    }
            }
            Identity::Token { id } => !id.expose().is_empty(),
        };
        let scope_ok = match &req.scope {
            ScopeRequest::Project(ProjectRef::Name { name, domain }) => {
                name_ok(name) && domain_ok(domain)
            }
            ScopeRequest::Project(ProjectRef::Id(id)) => id.as_str().len() <= MAX_ID_LEN,
            ScopeRequest::Domain(d) => domain_ok(d),
            ScopeRequest::Unscoped | ScopeRequest::System => true,
        };
        identity_ok && scope_ok
    }

    #[test]
    fn fuzz_auth_request_parses_or_is_a_client_error() {
        let bodies = crate::fuzzing::auth_request();
        proptest!(crate::fuzzing::config(2048), |(v in bodies)| {
            match parse_auth_request(&v) {
                Ok(req) => prop_assert!(well_formed(&req), "{req:?} from {v}"),
                Err(e) => prop_assert!(
                    matches!(e.kind, ErrorKind::Validation | ErrorKind::Unauthorized),
                    "{e:?}"
                ),
            }
        });
    }
}
