//! Requests through the cluster's gateways.

use super::Cluster;
use crate::through::Gateways;

impl Gateways for Cluster {
    fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn gateway_url(&self, g: usize) -> &str {
        self.gateway(g)
    }

    fn admin_password(&self) -> &str {
        &self.admin_password
    }
}
