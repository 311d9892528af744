//! One pipeline for live capture and capture files: frames → sensor →
//! catalog → policy → decided observations.

use std::sync::Arc;

use crate::catalog::{Catalog, Service};
use crate::policy::{Decision, Policy, Subject};
use crate::sensor::frame::LinkType;
use crate::sensor::{Micros, Observation, Sensor, SensorStats};

/// An observation with the service it belongs to and the policy's decision;
/// names outside the catalog carry neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided<'c> {
    pub observation: Observation,
    pub verdict: Option<(&'c Service, Decision)>,
}

#[derive(Debug)]
pub struct Pipeline {
    sensor: Sensor,
    catalog: Arc<Catalog>,
    policy: Arc<Policy>,
}

impl Pipeline {
    pub fn new(sensor: Sensor, catalog: Arc<Catalog>, policy: Arc<Policy>) -> Self {
        Self { sensor, catalog, policy }
    }

    /// Swaps the catalog and policy in force (after a successful reload),
    /// keeping the flows the sensor is following.
    pub fn set_rules(&mut self, catalog: Arc<Catalog>, policy: Arc<Policy>) {
        self.catalog = catalog;
        self.policy = policy;
    }

    pub fn stats(&self) -> &SensorStats {
        self.sensor.stats()
    }

    /// Feeds one frame. `subject` says who sent it when the caller knows
    /// (live capture with attribution); a replay passes the default.
    pub fn process(
        &mut self,
        ts: Micros,
        link: LinkType,
        frame: &[u8],
        subject: &Subject<'_>,
        out: &mut impl FnMut(Decided<'_>),
    ) {
        let catalog = &self.catalog;
        let policy = &self.policy;
        self.sensor.process(ts, link, frame, &mut |observation| {
            let verdict = catalog.lookup(&observation.name).map(|service| {
                let decision = policy.decide(service, subject);
                (service, decision)
            });
            out(Decided { observation, verdict });
        });
    }
}
