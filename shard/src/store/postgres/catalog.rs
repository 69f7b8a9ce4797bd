//! The service catalog: regions, services and endpoints. A region referenced
//! by an endpoint or a child region cannot be deleted (`InUse`); deleting a
//! service deletes its endpoints.

use super::error::Op;
use super::{col, decode_all, execute, query, PgStore};
use crate::store::{StoreError, StoreResult};
use keyfed_shared::ids::{EndpointId, RegionId, ServiceId};
use keyfed_shared::model::{Endpoint, Extra, Interface, Region, Service};
use tokio_postgres::types::Json;
use tokio_postgres::Row;

fn decode_region(row: &Row) -> StoreResult<Region> {
    Ok(Region {
        id: RegionId::new(col::<String>(row, "id")?),
        description: col(row, "description")?,
        parent_region_id: col::<Option<String>>(row, "parent_region_id")?.map(RegionId::new),
    })
}

fn decode_service(row: &Row) -> StoreResult<Service> {
    let Json(extra) = col::<Json<Extra>>(row, "extra")?;
    Ok(Service {
        id: ServiceId::new(col::<String>(row, "id")?),
        service_type: col(row, "type")?,
        enabled: col(row, "enabled")?,
        extra,
    })
}

fn decode_endpoint(row: &Row) -> StoreResult<Endpoint> {
    let interface: String = col(row, "interface")?;
    Ok(Endpoint {
        id: EndpointId::new(col::<String>(row, "id")?),
        interface: Interface::parse(&interface).ok_or_else(|| {
            StoreError::Backend(format!("unknown endpoint interface {interface:?}"))
        })?,
        region_id: col::<Option<String>>(row, "region_id")?.map(RegionId::new),
        service_id: ServiceId::new(col::<String>(row, "service_id")?),
        url: col(row, "url")?,
        enabled: col(row, "enabled")?,
    })
}

// --- regions

pub(super) async fn create_region(db: &PgStore, r: &Region) -> StoreResult<()> {
    let c = db.client().await?;
    execute(
        &c,
        "INSERT INTO regions (id, description, parent_region_id) VALUES ($1, $2, $3)",
        &[
            &r.id.as_str(),
            &r.description,
            &r.parent_region_id.as_ref().map(RegionId::as_str),
        ],
        Op::Write,
    )
    .await?;
    Ok(())
}

pub(super) async fn list_regions(db: &PgStore) -> StoreResult<Vec<Region>> {
    let c = db.client().await?;
    let rows = query(
        &c,
        "SELECT id, description, parent_region_id FROM regions ORDER BY id",
        &[],
    )
    .await?;
    decode_all(&rows, decode_region)
}

pub(super) async fn update_region(db: &PgStore, r: &Region) -> StoreResult<bool> {
    let c = db.client().await?;
    let n = execute(
        &c,
        "UPDATE regions SET description = $2, parent_region_id = $3 WHERE id = $1",
        &[
            &r.id.as_str(),
            &r.description,
            &r.parent_region_id.as_ref().map(RegionId::as_str),
        ],
        Op::Write,
    )
    .await?;
    Ok(n > 0)
}

pub(super) async fn delete_region(db: &PgStore, id: &RegionId) -> StoreResult<bool> {
    let c = db.client().await?;
    let n = execute(
        &c,
        "DELETE FROM regions WHERE id = $1",
        &[&id.as_str()],
        Op::Delete,
    )
    .await?;
    Ok(n > 0)
}

// --- services

pub(super) async fn create_service(db: &PgStore, s: &Service) -> StoreResult<()> {
    let c = db.client().await?;
    execute(
        &c,
        "INSERT INTO services (id, type, enabled, extra) VALUES ($1, $2, $3, $4)",
        &[&s.id.as_str(), &s.service_type, &s.enabled, &Json(&s.extra)],
        Op::Write,
    )
    .await?;
    Ok(())
}

pub(super) async fn list_services(db: &PgStore) -> StoreResult<Vec<Service>> {
    let c = db.client().await?;
    let rows = query(
        &c,
        "SELECT id, type, enabled, extra FROM services ORDER BY id",
        &[],
    )
    .await?;
    decode_all(&rows, decode_service)
}

pub(super) async fn update_service(db: &PgStore, s: &Service) -> StoreResult<bool> {
    let c = db.client().await?;
    let n = execute(
        &c,
        "UPDATE services SET type = $2, enabled = $3, extra = $4 WHERE id = $1",
        &[&s.id.as_str(), &s.service_type, &s.enabled, &Json(&s.extra)],
        Op::Write,
    )
    .await?;
    Ok(n > 0)
}

pub(super) async fn delete_service(db: &PgStore, id: &ServiceId) -> StoreResult<bool> {
    let c = db.client().await?;
    let n = execute(
        &c,
        "DELETE FROM services WHERE id = $1",
        &[&id.as_str()],
        Op::Delete,
    )
    .await?;
    Ok(n > 0)
}

// --- endpoints

pub(super) async fn create_endpoint(db: &PgStore, e: &Endpoint) -> StoreResult<()> {
    let c = db.client().await?;
    execute(
        &c,
        "INSERT INTO endpoints (id, interface, region_id, service_id, url, enabled) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &e.id.as_str(),
            &e.interface.as_str(),
            &e.region_id.as_ref().map(RegionId::as_str),
            &e.service_id.as_str(),
            &e.url,
            &e.enabled,
        ],
        Op::Write,
    )
    .await?;
    Ok(())
}

pub(super) async fn list_endpoints(db: &PgStore) -> StoreResult<Vec<Endpoint>> {
    let c = db.client().await?;
    let rows = query(
        &c,
        "SELECT id, interface, region_id, service_id, url, enabled FROM endpoints ORDER BY id",
        &[],
    )
    .await?;
    decode_all(&rows, decode_endpoint)
}

pub(super) async fn update_endpoint(db: &PgStore, e: &Endpoint) -> StoreResult<bool> {
    let c = db.client().await?;
    let n = execute(
        &c,
        "UPDATE endpoints SET interface = $2, region_id = $3, service_id = $4, url = $5, \
         enabled = $6 WHERE id = $1",
        &[
            &e.id.as_str(),
            &e.interface.as_str(),
            &e.region_id.as_ref().map(RegionId::as_str),
            &e.service_id.as_str(),
            &e.url,
            &e.enabled,
        ],
        Op::Write,
    )
    .await?;
    Ok(n > 0)
}

pub(super) async fn delete_endpoint(db: &PgStore, id: &EndpointId) -> StoreResult<bool> {
    let c = db.client().await?;
    let n = execute(
        &c,
        "DELETE FROM endpoints WHERE id = $1",
        &[&id.as_str()],
        Op::Delete,
    )
    .await?;
    Ok(n > 0)
}
