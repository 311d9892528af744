//! The event: one decision about one observation, as stored and shown.
//! It holds names, never payloads.

use serde::{Deserialize, Serialize};

use crate::catalog::Service;
use crate::policy::{Action, Decision};
use crate::sensor::{Detail, Micros, Observation};

/// Who owned the socket, when the live agent could tell.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    pub pid: Option<u32>,
    pub program: Option<String>,
    pub program_path: Option<String>,
    pub uid: Option<u32>,
    pub user: Option<String>,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
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
    /// How many identical decisions this event stands for (see [`coalesce`]).
    #[serde(default = "one")]
    pub repeats: u32,
    /// Clipboard events: a keyed hash of the content, to count the same
    /// content again within a console session; never the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub content_hash: Option<String>,
}

/// The service id, category and rule prefix of an unreadable handshake's event.
pub const UNREADABLE_HANDSHAKE: &str = "unreadable-handshake";

/// The source, service id, category and rule prefix of tamper evidence:
/// the agent stopped, its files, rules or DNS changed (`vigie_daemon::tamper`).
pub const TAMPER: &str = "tamper";

/// The source of the software inventory's events (`vigie_daemon::inventory`).
pub const INVENTORY: &str = "inventory";

fn one() -> u32 {
    1
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
            repeats: 1,
            content_hash: None,
        }
    }

    /// A handshake the packet verdicts could not read (see
    /// [`crate::policy::UnreadableHandshake`]). No name was read, so the
    /// event names the destination address, and its rule says why.
    #[cfg(feature = "sensor")]
    pub fn unreadable_handshake(
        ts: Micros,
        flow: &crate::sensor::Flow,
        source: crate::sensor::Source,
        why: crate::sensor::gate::Unreadable,
        action: Action,
        policy_version: &str,
        attribution: Attribution,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            ts,
            source: source.as_str().to_owned(),
            name: flow.dst.ip().to_string(),
            service_id: UNREADABLE_HANDSHAKE.to_owned(),
            service_name: String::new(),
            category: UNREADABLE_HANDSHAKE.to_owned(),
            vendor: String::new(),
            action,
            rule_id: format!("{UNREADABLE_HANDSHAKE}:{}", why.as_str()),
            policy_version: policy_version.to_owned(),
            protocol: flow.protocol.as_str().to_owned(),
            src: flow.src.to_string(),
            dst: flow.dst.to_string(),
            ech: false,
            attribution,
            repeats: 1,
            content_hash: None,
        }
    }

    /// Tamper evidence: `check` (e.g. `firewall-rules-removed`) about
    /// `subject` (a file, an interface, a session). Recorded, not decided:
    /// its action is `monitor`.
    pub fn tamper(
        ts: Micros,
        check: &str,
        subject: &str,
        policy_version: &str,
        attribution: Attribution,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            ts,
            source: "agent".to_owned(),
            name: subject.to_owned(),
            service_id: TAMPER.to_owned(),
            service_name: String::new(),
            category: TAMPER.to_owned(),
            vendor: String::new(),
            action: Action::Monitor,
            rule_id: format!("{TAMPER}:{check}"),
            policy_version: policy_version.to_owned(),
            protocol: String::new(),
            src: String::new(),
            dst: String::new(),
            ech: false,
            attribution,
            repeats: 1,
            content_hash: None,
        }
    }

    /// A change in the AI software found on the workstation. `name` is the
    /// software's identifier, `protocol` its kind, `src` where it lives
    /// (browser, editor, agent), `dst` its version, and the rule
    /// `inventory:<change>` (`installed`, `removed`, `updated`,
    /// `rights-changed`, `started`). Without a catalogued service, the
    /// service name is the software's own and the category `local-runtime`
    /// or `uncatalogued`.
    pub fn inventory(
        ts: Micros,
        change: &crate::inventory::Change,
        service: Option<&Service>,
        action: Action,
        policy_version: &str,
        attribution: Attribution,
    ) -> Self {
        let item = &change.item;
        let category = match service {
            _ if item.local => "local-runtime",
            Some(service) => service.category.as_str(),
            None => "uncatalogued",
        };
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            ts,
            source: INVENTORY.to_owned(),
            name: item.key.clone(),
            service_id: service.map(|s| s.id.clone()).unwrap_or_default(),
            service_name: service.map_or_else(|| item.name.clone(), |s| s.name.clone()),
            category: category.to_owned(),
            vendor: service.map(|s| s.vendor.clone()).unwrap_or_default(),
            action,
            rule_id: format!("{INVENTORY}:{}", change.kind.as_str()),
            policy_version: policy_version.to_owned(),
            protocol: item.kind.as_str().to_owned(),
            src: item.host.clone(),
            dst: item.version.clone().unwrap_or_default(),
            ech: false,
            attribution,
            repeats: 1,
            content_hash: None,
        }
    }

    /// Whether `other` records the same decision, for the same program and
    /// user, about the same name (flows and times aside).
    fn same_decision(&self, other: &Event) -> bool {
        self.source == other.source
            && self.name == other.name
            && self.service_id == other.service_id
            && self.action == other.action
            && self.rule_id == other.rule_id
            && self.policy_version == other.policy_version
            && self.protocol == other.protocol
            && self.ech == other.ech
            && self.attribution.uid == other.attribution.uid
            && self.attribution.pid == other.attribution.pid
            && self.attribution.program_path == other.attribution.program_path
            && self.content_hash == other.content_hash
    }
}

/// Merges identical decisions of one batch (see [`Event::same_decision`])
/// into the first of them, which keeps its id, time and flow and counts the
/// others in `repeats`. Order is kept.
pub fn coalesce(events: Vec<Event>) -> Vec<Event> {
    let mut kept: Vec<Event> = Vec::with_capacity(events.len());
    // Candidates by name: the comparison runs only against events about the same name.
    let mut by_name: std::collections::HashMap<String, Vec<usize>> = std::collections::HashMap::new();
    for event in events {
        let candidates = by_name.entry(event.name.clone()).or_default();
        let same = candidates.iter().copied().find(|&i| kept.get(i).is_some_and(|k| k.same_decision(&event)));
        match same.and_then(|i| kept.get_mut(i)) {
            Some(first) => first.repeats = first.repeats.saturating_add(event.repeats),
            None => {
                candidates.push(kept.len());
                kept.push(event);
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, uid: Option<u32>, action: Action, ts: i64) -> Event {
        Event {
            id: format!("{name}-{ts}"),
            ts,
            source: "resolver".into(),
            name: name.into(),
            service_id: name.into(),
            service_name: name.into(),
            category: "chat".into(),
            vendor: "V".into(),
            action,
            rule_id: "r".into(),
            policy_version: "1".into(),
            protocol: "udp".into(),
            src: format!("127.0.0.1:{ts}"),
            dst: "127.0.0.153:53".into(),
            ech: false,
            attribution: Attribution { uid, ..Attribution::default() },
            repeats: 1,
            content_hash: None,
        }
    }

    #[test]
    fn identical_decisions_are_counted_once() {
        let batch = vec![
            event("chatgpt.com", Some(1000), Action::Block, 1),
            event("claude.ai", Some(1000), Action::Coach, 2),
            event("chatgpt.com", Some(1000), Action::Block, 3),
            event("chatgpt.com", Some(1001), Action::Block, 4),
            event("chatgpt.com", Some(1000), Action::Block, 5),
        ];
        let merged = coalesce(batch);
        let summary: Vec<(&str, Option<u32>, u32, i64)> =
            merged.iter().map(|e| (e.name.as_str(), e.attribution.uid, e.repeats, e.ts)).collect();
        assert_eq!(
            summary,
            vec![
                ("chatgpt.com", Some(1000), 3, 1),
                ("claude.ai", Some(1000), 1, 2),
                ("chatgpt.com", Some(1001), 1, 4)
            ]
        );
        assert_eq!(merged[0].src, "127.0.0.1:1", "the first flow is kept");
    }
}
