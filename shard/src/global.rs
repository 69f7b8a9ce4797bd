//! Loading the global-data snapshot ([`GlobalData`]) from the shard's store.

use crate::store::{Store, StoreResult};
pub use keyfed_shared::global::GlobalData;

/// Loads a snapshot of global data from the store.
pub async fn load(store: &dyn Store) -> StoreResult<GlobalData> {
    let domains = store.list_domains().await?;
    let roles = store.list_roles().await?;
    let rules = store.list_implied_roles().await?;
    let regions = store.list_regions().await?;
    let services = store.list_services().await?;
    let endpoints = store.list_endpoints().await?;
    Ok(GlobalData::new(
        domains, roles, rules, regions, services, endpoints,
    ))
}
