//! The service catalog: `/v3/regions`, `/v3/services`, `/v3/endpoints`.
//! Reads come from the in-memory snapshot; writes go to the store and then
//! reload it, so the next token carries the new catalog.

use super::body::Path;
use super::body::{check_id, extras, opt_bool, opt_str, query_flag, section, JsonBody, QueryMap};
use super::{collection, entity, to_json, with_links};
use crate::error::Result;
use crate::policy::Caller;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use keyfed_shared::error::ApiError;
use keyfed_shared::federation::GlobalEntity;
use keyfed_shared::ids::{EndpointId, RegionId, ServiceId, MAX_ID_LEN};
use keyfed_shared::model::{Endpoint, Interface, Region, Service};
use keyfed_shared::policy::{Operation, Target};
use serde_json::{Map, Value};

const MAX_URL_LEN: usize = 2048;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/regions", get(list_regions).post(create_region))
        .route(
            "/v3/regions/{id}",
            get(show_region).patch(update_region).delete(delete_region),
        )
        .route("/v3/services", get(list_services).post(create_service))
        .route(
            "/v3/services/{id}",
            get(show_service)
                .patch(update_service)
                .delete(delete_service),
        )
        .route("/v3/endpoints", get(list_endpoints).post(create_endpoint))
        .route(
            "/v3/endpoints/{id}",
            get(show_endpoint)
                .patch(update_endpoint)
                .delete(delete_endpoint),
        )
}

// ---- regions

fn region_json(state: &AppState, r: &Region) -> Value {
    with_links(to_json(r), state, &format!("regions/{}", r.id))
}

fn find_region(state: &AppState, id: &str) -> Result<Region> {
    state
        .global()
        .regions
        .iter()
        .find(|r| r.id.as_str() == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("region", id).into())
}

async fn list_regions(
    State(state): State<AppState>,
    caller: Caller,
    QueryMap(q): QueryMap,
) -> Result<Response> {
    caller.authorize(Operation::ListRegions, &Target::none())?;
    let items = state
        .global()
        .regions
        .iter()
        .filter(|r| {
            q.get("parent_region_id")
                .is_none_or(|p| r.parent_region_id.as_ref().is_some_and(|x| x.as_str() == p))
        })
        .map(|r| region_json(&state, r))
        .collect();
    Ok(collection(&state, "regions", "regions", items))
}

fn parent_region(obj: &Map<String, Value>) -> Result<Option<RegionId>, ApiError> {
    Ok(opt_str(obj, "parent_region_id", MAX_ID_LEN)?.map(RegionId::new))
}

/// Rejects a parent chain that leads back to the region itself.
fn check_no_cycle(state: &AppState, region: &Region) -> Result<(), ApiError> {
    let global = state.global();
    let mut next = region.parent_region_id.clone();
    let mut steps = 0;
    while let Some(parent) = next {
        if parent == region.id || steps > global.regions.len() {
            return Err(ApiError::validation("A region cannot be its own ancestor."));
        }
        steps += 1;
        next = global
            .regions
            .iter()
            .find(|r| r.id == parent)
            .and_then(|r| r.parent_region_id.clone());
    }
    Ok(())
}

async fn create_region(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.authorize(Operation::CreateRegion, &Target::none())?;
    let obj = section(&body, "region")?;
    let region = Region {
        id: opt_str(obj, "id", MAX_ID_LEN)?.map_or_else(RegionId::generate, RegionId::new),
        description: opt_str(obj, "description", 65_535)?.unwrap_or_default(),
        parent_region_id: parent_region(obj)?,
    };
    check_no_cycle(&state, &region)?;
    state
        .create_global(GlobalEntity::Region(region.clone()))
        .await?;
    Ok(entity(
        StatusCode::CREATED,
        "region",
        region_json(&state, &region),
    ))
}

async fn show_region(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    caller.authorize(Operation::GetRegion, &Target::none())?;
    let region = find_region(&state, &id)?;
    Ok(entity(
        StatusCode::OK,
        "region",
        region_json(&state, &region),
    ))
}

async fn update_region(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.authorize(Operation::UpdateRegion, &Target::none())?;
    let obj = section(&body, "region")?;
    check_id(obj, &id)?;
    let mut region = find_region(&state, &id)?;
    if let Some(d) = opt_str(obj, "description", 65_535)? {
        region.description = d;
    }
    if obj.contains_key("parent_region_id") {
        region.parent_region_id = parent_region(obj)?;
    }
    check_no_cycle(&state, &region)?;
    if !state
        .update_global(GlobalEntity::Region(region.clone()))
        .await?
    {
        return Err(ApiError::not_found("region", &id).into());
    }
    Ok(entity(
        StatusCode::OK,
        "region",
        region_json(&state, &region),
    ))
}

async fn delete_region(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    caller.authorize(Operation::DeleteRegion, &Target::none())?;
    let entity = find_region(&state, &id)?;
    if !state.delete_global(GlobalEntity::Region(entity)).await? {
        return Err(ApiError::not_found("region", &id).into());
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---- services

const SERVICE_KNOWN: &[&str] = &["id", "type", "enabled"];

fn service_json(state: &AppState, s: &Service) -> Value {
    with_links(to_json(s), state, &format!("services/{}", s.id))
}

fn find_service(state: &AppState, id: &str) -> Result<Service> {
    state
        .global()
        .services
        .iter()
        .find(|s| s.id.as_str() == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("service", id).into())
}

async fn list_services(
    State(state): State<AppState>,
    caller: Caller,
    QueryMap(q): QueryMap,
) -> Result<Response> {
    caller.authorize(Operation::ListServices, &Target::none())?;
    let items = state
        .global()
        .services
        .iter()
        .filter(|s| q.get("type").is_none_or(|t| *t == s.service_type))
        .filter(|s| {
            q.get("name")
                .is_none_or(|n| s.extra.get("name").and_then(Value::as_str) == Some(n))
        })
        .map(|s| service_json(&state, s))
        .collect();
    Ok(collection(&state, "services", "services", items))
}

async fn create_service(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.authorize(Operation::CreateService, &Target::none())?;
    let obj = section(&body, "service")?;
    let Some(service_type) = opt_str(obj, "type", 255)? else {
        return Err(ApiError::validation(
            "Invalid input for field 'type': 'type' is a required property.",
        )
        .into());
    };
    opt_str(obj, "name", 255)?;
    let service = Service {
        id: ServiceId::generate(),
        service_type,
        enabled: opt_bool(obj, "enabled")?.unwrap_or(true),
        extra: extras(obj, SERVICE_KNOWN),
    };
    state
        .create_global(GlobalEntity::Service(service.clone()))
        .await?;
    Ok(entity(
        StatusCode::CREATED,
        "service",
        service_json(&state, &service),
    ))
}

async fn show_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    caller.authorize(Operation::GetService, &Target::none())?;
    let service = find_service(&state, &id)?;
    Ok(entity(
        StatusCode::OK,
        "service",
        service_json(&state, &service),
    ))
}

async fn update_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.authorize(Operation::UpdateService, &Target::none())?;
    let obj = section(&body, "service")?;
    check_id(obj, &id)?;
    let mut service = find_service(&state, &id)?;
    if let Some(t) = opt_str(obj, "type", 255)? {
        service.service_type = t;
    }
    if let Some(e) = opt_bool(obj, "enabled")? {
        service.enabled = e;
    }
    service.extra.extend(extras(obj, SERVICE_KNOWN));
    if !state
        .update_global(GlobalEntity::Service(service.clone()))
        .await?
    {
        return Err(ApiError::not_found("service", &id).into());
    }
    Ok(entity(
        StatusCode::OK,
        "service",
        service_json(&state, &service),
    ))
}

async fn delete_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    caller.authorize(Operation::DeleteService, &Target::none())?;
    let entity = find_service(&state, &id)?;
    if !state.delete_global(GlobalEntity::Service(entity)).await? {
        return Err(ApiError::not_found("service", &id).into());
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---- endpoints

fn endpoint_json(state: &AppState, e: &Endpoint) -> Value {
    let mut v = to_json(e);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("region".into(), to_json(&e.region_id));
    }
    with_links(v, state, &format!("endpoints/{}", e.id))
}

fn find_endpoint(state: &AppState, id: &str) -> Result<Endpoint> {
    state
        .global()
        .endpoints
        .iter()
        .find(|e| e.id.as_str() == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("endpoint", id).into())
}

fn interface(obj: &Map<String, Value>) -> Result<Option<Interface>, ApiError> {
    match opt_str(obj, "interface", 16)? {
        None => Ok(None),
        Some(i) => Interface::parse(&i).map(Some).ok_or_else(|| {
            ApiError::validation(
                "Invalid input for field 'interface': expected public, internal or admin.",
            )
        }),
    }
}

fn url(obj: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match opt_str(obj, "url", MAX_URL_LEN)? {
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => Err(
            ApiError::validation("Invalid input for field 'url': expected an http(s) URL."),
        ),
        other => Ok(other),
    }
}

/// `region_id`, or the legacy `region` attribute.
fn region_ref(obj: &Map<String, Value>) -> Result<Option<RegionId>, ApiError> {
    Ok(opt_str(obj, "region_id", MAX_ID_LEN)?
        .or(opt_str(obj, "region", MAX_ID_LEN)?)
        .map(RegionId::new))
}

async fn list_endpoints(
    State(state): State<AppState>,
    caller: Caller,
    QueryMap(q): QueryMap,
) -> Result<Response> {
    caller.authorize(Operation::ListEndpoints, &Target::none())?;
    let enabled = query_flag(&q, "enabled");
    let items = state
        .global()
        .endpoints
        .iter()
        .filter(|e| q.get("interface").is_none_or(|i| i == e.interface.as_str()))
        .filter(|e| {
            q.get("service_id")
                .is_none_or(|s| s == e.service_id.as_str())
        })
        .filter(|e| {
            q.get("region_id")
                .is_none_or(|r| e.region_id.as_ref().is_some_and(|x| x.as_str() == r))
        })
        .filter(|e| enabled.is_none_or(|x| x == e.enabled))
        .map(|e| endpoint_json(&state, e))
        .collect();
    Ok(collection(&state, "endpoints", "endpoints", items))
}

async fn create_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.authorize(Operation::CreateEndpoint, &Target::none())?;
    let obj = section(&body, "endpoint")?;
    let (Some(interface), Some(url), Some(service_id)) = (
        interface(obj)?,
        url(obj)?,
        opt_str(obj, "service_id", MAX_ID_LEN)?,
    ) else {
        return Err(
            ApiError::validation("An endpoint needs 'interface', 'url' and 'service_id'.").into(),
        );
    };
    let endpoint = Endpoint {
        id: EndpointId::generate(),
        interface,
        region_id: region_ref(obj)?,
        service_id: ServiceId::new(service_id),
        url,
        enabled: opt_bool(obj, "enabled")?.unwrap_or(true),
    };
    state
        .create_global(GlobalEntity::Endpoint(endpoint.clone()))
        .await?;
    Ok(entity(
        StatusCode::CREATED,
        "endpoint",
        endpoint_json(&state, &endpoint),
    ))
}

async fn show_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    caller.authorize(Operation::GetEndpoint, &Target::none())?;
    let endpoint = find_endpoint(&state, &id)?;
    Ok(entity(
        StatusCode::OK,
        "endpoint",
        endpoint_json(&state, &endpoint),
    ))
}

async fn update_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.authorize(Operation::UpdateEndpoint, &Target::none())?;
    let obj = section(&body, "endpoint")?;
    check_id(obj, &id)?;
    let mut endpoint = find_endpoint(&state, &id)?;
    if let Some(i) = interface(obj)? {
        endpoint.interface = i;
    }
    if let Some(u) = url(obj)? {
        endpoint.url = u;
    }
    if let Some(s) = opt_str(obj, "service_id", MAX_ID_LEN)? {
        endpoint.service_id = ServiceId::new(s);
    }
    if obj.contains_key("region_id") || obj.contains_key("region") {
        endpoint.region_id = region_ref(obj)?;
    }
    if let Some(e) = opt_bool(obj, "enabled")? {
        endpoint.enabled = e;
    }
    if !state
        .update_global(GlobalEntity::Endpoint(endpoint.clone()))
        .await?
    {
        return Err(ApiError::not_found("endpoint", &id).into());
    }
    Ok(entity(
        StatusCode::OK,
        "endpoint",
        endpoint_json(&state, &endpoint),
    ))
}

async fn delete_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    caller.authorize(Operation::DeleteEndpoint, &Target::none())?;
    let entity = find_endpoint(&state, &id)?;
    if !state.delete_global(GlobalEntity::Endpoint(entity)).await? {
        return Err(ApiError::not_found("endpoint", &id).into());
    }
    Ok(StatusCode::NO_CONTENT)
}
