//! What a run does: the scenario, who it authenticates as, and its bounds.

use std::fmt;
use std::time::Duration;

/// The request the timed phase repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// `GET /v3/auth/tokens` validating the caller's own project-scoped
    /// token (expects 200).
    Validate,
    /// `POST /v3/auth/tokens` with the password method, scoped to the
    /// project (expects 201). Dominated by the server's password hash.
    PasswordLogin,
    /// `POST /v3/auth/tokens` with the token method, turning one unscoped
    /// token into project-scoped ones (expects 201).
    Rescope,
    /// `GET /v3/projects/{id}` round-robin over the `loadgen-<n>` projects
    /// (expects 200).
    ProjectGet,
    /// `GET /v3/projects` (expects 200).
    ProjectList,
    /// `GET /healthz` (expects 200): the server's own floor, the reference
    /// validation throughput is compared with.
    Healthz,
}

impl Scenario {
    /// The scenario's name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Validate => "validate",
            Scenario::PasswordLogin => "password-login",
            Scenario::Rescope => "rescope",
            Scenario::ProjectGet => "project-get",
            Scenario::ProjectList => "project-list",
            Scenario::Healthz => "healthz",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The user the generator authenticates as, and the project it scopes to.
/// Users and domains are named, as in an `openrc` file.
#[derive(Clone)]
pub struct Credentials {
    /// User name (`OS_USERNAME`).
    pub username: String,
    /// Password (`OS_PASSWORD`).
    pub password: String,
    /// Project name to scope tokens to (`OS_PROJECT_NAME`).
    pub project: String,
    /// Name of the user's domain (`OS_USER_DOMAIN_NAME`).
    pub user_domain: String,
    /// Name of the project's domain (`OS_PROJECT_DOMAIN_NAME`).
    pub project_domain: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("project", &self.project)
            .field("user_domain", &self.user_domain)
            .field("project_domain", &self.project_domain)
            .finish()
    }
}

/// Everything a run needs. The run is bounded by `warmup + duration` (plus
/// at most one `request_timeout` for requests in flight at the end) and,
/// when set, by `max_requests`.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Base URL of the Keystone endpoint; `/v3/...` is appended.
    pub url: String,
    /// The request to repeat.
    pub scenario: Scenario,
    /// Who to authenticate as.
    pub credentials: Credentials,
    /// Number of workers, each with its own keep-alive connection and at most
    /// one request in flight.
    pub concurrency: usize,
    /// Length of the timed phase.
    pub duration: Duration,
    /// Length of the untimed warm-up before it (connections opened, caches
    /// and allocators warmed).
    pub warmup: Duration,
    /// At most this many requests are sent during the timed phase.
    pub max_requests: Option<u64>,
    /// A request that takes longer than this counts as a transport error.
    pub request_timeout: Duration,
    /// How many `loadgen-<n>` projects the `project-get` scenario cycles over.
    pub projects: usize,
}

impl LoadConfig {
    /// Checks the bounds, naming the offending option.
    pub fn validate(&self) -> Result<(), super::LoadgenError> {
        let bad = |m: &str| Err(super::LoadgenError::Config(m.to_owned()));
        if self.concurrency == 0 {
            return bad("concurrency must be at least 1");
        }
        if self.duration.is_zero() {
            return bad("duration must be at least 1 s");
        }
        if self.max_requests == Some(0) {
            return bad("max-requests must be at least 1 when given");
        }
        if self.request_timeout.is_zero() {
            return bad("timeout must be at least 1 s");
        }
        if self.scenario == Scenario::ProjectGet && self.projects == 0 {
            return bad("projects must be at least 1 for project-get");
        }
        Ok(())
    }
}
