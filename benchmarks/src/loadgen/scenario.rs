//! Set-up: turns a scenario into a [`Plan`], a fixed list of ready-made
//! requests, so the timed phase only sends them and checks the status.

use super::config::{LoadConfig, Scenario};
use super::error::LoadgenError;
use super::keystone::{
    header_value, password_body, rescope_body, AuthScope, Endpoint, Keystone, AUTH_TOKEN,
    SUBJECT_TOKEN,
};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// One request of the timed phase, ready to send.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// HTTP method.
    pub method: Method,
    /// Full URL.
    pub url: Url,
    /// Headers (token headers, content type).
    pub headers: HeaderMap,
    /// JSON body, if any.
    pub body: Option<Vec<u8>>,
    /// The status Keystone documents for success; anything else is counted
    /// as an unexpected status.
    pub expected: StatusCode,
}

/// The requests a scenario repeats. Worker `w` sends them round-robin
/// starting at index `w`, so workers spread over them.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The scenario this plan runs.
    pub scenario: Scenario,
    /// The base URL it targets.
    pub endpoint: Endpoint,
    /// At least one request.
    pub requests: Vec<RequestTemplate>,
}

/// The name of the `n`-th project of the `project-get` scenario.
pub fn project_name(n: usize) -> String {
    format!("loadgen-{n}")
}

/// Runs the scenario's set-up against the endpoint: issues an admin
/// project-scoped token (checking the credentials), then whatever the
/// scenario needs (an unscoped token, projects), and builds the plan.
pub async fn prepare(config: &LoadConfig) -> Result<Plan, LoadgenError> {
    config.validate()?;
    let endpoint = Endpoint::parse(&config.url)?;
    let keystone = Keystone::new(endpoint.clone(), config.request_timeout)?;
    let credentials = &config.credentials;
    let admin = keystone
        .issue(
            "issuing a project-scoped token with the password method",
            &password_body(credentials, AuthScope::Project),
        )
        .await?;
    let tokens_url = endpoint.v3("auth/tokens")?;
    let requests = match config.scenario {
        Scenario::Validate => {
            let step = "validate";
            let mut headers = HeaderMap::new();
            let token = header_value(step, &admin.id)?;
            headers.insert(AUTH_TOKEN, token.clone());
            headers.insert(SUBJECT_TOKEN, token);
            vec![template(
                Method::GET,
                tokens_url,
                headers,
                None,
                StatusCode::OK,
            )]
        }
        Scenario::Healthz => vec![template(
            Method::GET,
            endpoint.root("healthz")?,
            HeaderMap::new(),
            None,
            StatusCode::OK,
        )],
        Scenario::PasswordLogin => {
            let body = password_body(credentials, AuthScope::Project);
            vec![json_post(tokens_url, &body)?]
        }
        Scenario::Rescope => {
            let unscoped = keystone
                .issue(
                    "issuing an unscoped token with the password method",
                    &password_body(credentials, AuthScope::Unscoped),
                )
                .await?;
            vec![json_post(
                tokens_url,
                &rescope_body(credentials, &unscoped.id),
            )?]
        }
        Scenario::ProjectGet => {
            let domain_id = admin
                .project_domain_id()
                .ok_or_else(|| LoadgenError::BadResponse {
                    step: "issuing a project-scoped token".to_owned(),
                    reason: "the token body names no project domain id".to_owned(),
                })?;
            let mut requests = Vec::with_capacity(config.projects);
            for n in 0..config.projects {
                let name = project_name(n);
                let id = match keystone.find_project(&admin.id, &name, domain_id).await? {
                    Some(id) => id,
                    None => keystone.create_project(&admin.id, &name, domain_id).await?,
                };
                let url = endpoint.v3(&format!("projects/{id}"))?;
                requests.push(template(
                    Method::GET,
                    url,
                    auth(&admin.id)?,
                    None,
                    StatusCode::OK,
                ));
            }
            requests
        }
        Scenario::ProjectList => {
            vec![template(
                Method::GET,
                endpoint.v3("projects")?,
                auth(&admin.id)?,
                None,
                StatusCode::OK,
            )]
        }
    };
    Ok(Plan {
        scenario: config.scenario,
        endpoint,
        requests,
    })
}

fn template(
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    expected: StatusCode,
) -> RequestTemplate {
    RequestTemplate {
        method,
        url,
        headers,
        body,
        expected,
    }
}

fn auth(token: &str) -> Result<HeaderMap, LoadgenError> {
    let mut headers = HeaderMap::new();
    headers.insert(AUTH_TOKEN, header_value("building request headers", token)?);
    Ok(headers)
}

/// A `POST /v3/auth/tokens` expecting 201.
fn json_post(url: Url, body: &Value) -> Result<RequestTemplate, LoadgenError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| LoadgenError::Config(format!("encoding a request body: {e}")))?;
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(template(
        Method::POST,
        url,
        headers,
        Some(bytes),
        StatusCode::CREATED,
    ))
}
