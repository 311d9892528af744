//! The event: one decision about one observation, as stored and shown.
//! It holds names, never payloads.

use serde::{Deserialize, Serialize};

use crate::catalog::Service;
use crate::policy::{Action, Decision};
use crate::sensor::{Detail, Micros, Observation};

/// Who owned the socket, when the live agent could tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    pub pid: Option<u32>,
    pub program: Option<String>,
    pub program_path: Option<String>,
    pub uid: Option<u32>,
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// A UUIDv7: unique across agents and sortable by time, so a collector
    /// can de-duplicate retried uploads.
    pub id: String,
    pub ts: Micros,
    pub source: String,
    pub name: String,
    pub service_id: String,
    pub service_name: String,
    pub category: String,
    pub vendor: String,
    pub action: Action,
    pub rule_id: String,
    pub policy_version: String,
    pub protocol: String,
    pub src: String,
    pub dst: String,
    /// Encrypted Client Hello offered: `name` is the outer, public name.
    pub ech: bool,
    #[serde(flatten)]
    pub attribution: Attribution,
}

impl Event {
    pub fn new(
        observation: &Observation,
        service: &Service,
        decision: &Decision,
        policy_version: &str,
        attribution: Attribution,
    ) -> Self {
        let ech = matches!(
            observation.detail,
            Detail::ClientHello { ech: true } | Detail::QuicInitial { ech: true, .. }
        );
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            ts: observation.ts,
            source: observation.source.as_str().to_owned(),
            name: observation.name.clone(),
            service_id: service.id.clone(),
            service_name: service.name.clone(),
            category: service.category.as_str().to_owned(),
            vendor: service.vendor.clone(),
            action: decision.action,
            rule_id: decision.rule_id.to_string(),
            policy_version: policy_version.to_owned(),
            protocol: observation.flow.protocol.as_str().to_owned(),
            src: observation.flow.src.to_string(),
            dst: observation.flow.dst.to_string(),
            ech,
            attribution,
        }
    }
}
