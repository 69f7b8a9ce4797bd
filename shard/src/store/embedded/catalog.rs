//! Writes to the catalog (regions, services, endpoints) and to revocation
//! events, enforcing the PostgreSQL schema's rules: a region referenced by a
//! child region or an endpoint is `InUse`; deleting a service deletes its
//! endpoints.

use super::state::{EndpointRow, RevocationRow, ServiceRow, State};
use super::Outcome;
use crate::store::{StoreError, StoreResult};
use keyfed_shared::ids::{EndpointId, RegionId, ServiceId};
use keyfed_shared::model::{Endpoint, Region, Service};
use keyfed_shared::revocation::RevocationEvent;

fn missing(what: &str) -> StoreError {
    StoreError::MissingReference(what.to_owned())
}

impl State {
    // --- regions

    pub fn create_region(&mut self, r: &Region) -> StoreResult<Outcome<()>> {
        if self.regions.contains_key(&r.id) {
            return Err(StoreError::Conflict(
                "a region with this id already exists".into(),
            ));
        }
        self.regions.insert(r.id.clone(), r.clone());
        // Checked after the insert, as the database's foreign key is: a region
        // may name itself as its parent.
        self.require_parent(r)?;
        Ok(Outcome::changed(()))
    }

    pub fn update_region(&mut self, r: &Region) -> StoreResult<Outcome<bool>> {
        if !self.regions.contains_key(&r.id) {
            return Ok(Outcome::unchanged(false));
        }
        self.require_parent(r)?;
        self.regions.insert(r.id.clone(), r.clone());
        Ok(Outcome::changed(true))
    }

    fn require_parent(&self, r: &Region) -> StoreResult<()> {
        match &r.parent_region_id {
            Some(parent) if !self.regions.contains_key(parent) => {
                Err(missing("parent region not found"))
            }
            _ => Ok(()),
        }
    }

    pub fn delete_region(&mut self, id: &RegionId) -> StoreResult<Outcome<bool>> {
        if !self.regions.contains_key(id) {
            return Ok(Outcome::unchanged(false));
        }
        if self
            .regions
            .values()
            .any(|r| r.id != *id && r.parent_region_id.as_ref() == Some(id))
        {
            return Err(StoreError::InUse("region has child regions".into()));
        }
        if self
            .endpoints
            .values()
            .any(|e| e.region_id.as_ref() == Some(id))
        {
            return Err(StoreError::InUse("region is used by endpoints".into()));
        }
        self.regions.remove(id);
        Ok(Outcome::changed(true))
    }

    // --- services

    pub fn create_service(&mut self, s: &Service) -> StoreResult<Outcome<()>> {
        if self.services.contains_key(&s.id) {
            return Err(StoreError::Conflict(
                "a service with this id already exists".into(),
            ));
        }
        self.services.insert(s.id.clone(), ServiceRow::from(s));
        Ok(Outcome::changed(()))
    }

    pub fn update_service(&mut self, s: &Service) -> StoreResult<Outcome<bool>> {
        let Some(row) = self.services.get_mut(&s.id) else {
            return Ok(Outcome::unchanged(false));
        };
        *row = ServiceRow::from(s);
        Ok(Outcome::changed(true))
    }

    pub fn delete_service(&mut self, id: &ServiceId) -> StoreResult<Outcome<bool>> {
        if self.services.remove(id).is_none() {
            return Ok(Outcome::unchanged(false));
        }
        self.endpoints.retain(|_, e| e.service_id != *id);
        Ok(Outcome::changed(true))
    }

    // --- endpoints

    fn endpoint_rules(&self, e: &Endpoint) -> StoreResult<()> {
        if !self.services.contains_key(&e.service_id) {
            return Err(missing("service not found"));
        }
        match &e.region_id {
            Some(r) if !self.regions.contains_key(r) => Err(missing("region not found")),
            _ => Ok(()),
        }
    }

    pub fn create_endpoint(&mut self, e: &Endpoint) -> StoreResult<Outcome<()>> {
        if self.endpoints.contains_key(&e.id) {
            return Err(StoreError::Conflict(
                "an endpoint with this id already exists".into(),
            ));
        }
        self.endpoint_rules(e)?;
        self.endpoints.insert(e.id.clone(), EndpointRow::from(e));
        Ok(Outcome::changed(()))
    }

    pub fn update_endpoint(&mut self, e: &Endpoint) -> StoreResult<Outcome<bool>> {
        if !self.endpoints.contains_key(&e.id) {
            return Ok(Outcome::unchanged(false));
        }
        self.endpoint_rules(e)?;
        self.endpoints.insert(e.id.clone(), EndpointRow::from(e));
        Ok(Outcome::changed(true))
    }

    pub fn delete_endpoint(&mut self, id: &EndpointId) -> StoreResult<Outcome<bool>> {
        let removed = self.endpoints.remove(id).is_some();
        Ok(Outcome::changed_if(removed))
    }

    // --- revocations

    pub fn add_revocation(&mut self, e: &RevocationEvent) -> StoreResult<Outcome<()>> {
        self.revocations.push(RevocationRow::from(e));
        Ok(Outcome::changed(()))
    }

    pub fn prune_revocations(&mut self, now_secs: i64) -> StoreResult<Outcome<u64>> {
        let before = self.revocations.len();
        self.revocations.retain(|e| e.expires_at > now_secs);
        let pruned = (before - self.revocations.len()) as u64;
        Ok(Outcome {
            value: pruned,
            changed: pruned > 0,
        })
    }
}
