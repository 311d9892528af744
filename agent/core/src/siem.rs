//! What the security team's tools receive: one event as a SIEM row, and its
//! Elastic Common Schema (ECS) and OCSF documents. The collector's exports
//! and a workstation without a collector (`[export]` in `agent.toml`)
//! write the same documents. The mapping of every field is in
//! `agent/FLEET.md`.

use uuid::Uuid;

use crate::event::Event;

/// The OCSF version the `ocsf-json` format follows.
pub const OCSF_VERSION: &str = "1.8.0";

/// The ECS version the `ecs` documents follow (checked against its field
/// definitions by `tests/siem/validate_ecs.sh`).
pub const ECS_VERSION: &str = "9.4.0";

/// Pseudonyms for user names, keyed per destination: stable for one key,
/// unlinkable across keys.
#[derive(Clone)]
pub struct Pseudonyms(Vec<u8>);

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonyms(..)")
    }
}

impl Pseudonyms {
    pub fn new(key: Vec<u8>) -> Self {
        Self(key)
    }

    pub fn of(&self, name: &str) -> String {
        use hmac::Mac as _;
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0) else {
            return "p-unknown".to_owned();
        };
        mac.update(name.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("p-{hex}")
    }

    /// The row as this destination may see it.
    pub fn apply(&self, mut row: Row) -> Row {
        if let Some(user) = row.username.take() {
            if let Some(path) = row.program_path.as_mut() {
                let home = format!("/home/{user}/");
                if let Some(rest) = path.strip_prefix(&home) {
                    *path = format!("/home/{}/{rest}", self.of(&user));
                }
            }
            row.username = Some(self.of(&user));
        }
        row.uid = None;
        row
    }
}

/// One event as exported, with its workstation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    pub agent_id: Uuid,
    pub event_id: Uuid,
    pub hostname: String,
    pub ts_micros: i64,
    pub source: String,
    pub name: String,
    pub service_id: String,
    pub service_name: String,
    pub category: String,
    pub vendor: String,
    pub action: String,
    pub rule_id: String,
    pub policy_version: String,
    pub pid: Option<i64>,
    pub program: Option<String>,
    pub program_path: Option<String>,
    pub uid: Option<i64>,
    pub username: Option<String>,
    pub repeats: i32,
    /// The event's protocol; for the inventory, the kind of software.
    pub protocol: String,
    /// The event's destination; for the inventory, the software's version;
    /// for a recertification decision, the right it is about.
    pub dst: String,
    /// The event's source address; for a recertification decision, who
    /// took it (a member of the security team: not pseudonymised).
    pub src: String,
}

impl Row {
    /// `event` as exported from the workstation `agent_id` named `hostname`.
    pub fn from_event(event: &Event, agent_id: Uuid, hostname: &str) -> Row {
        let a = &event.attribution;
        Row {
            agent_id,
            event_id: Uuid::parse_str(&event.id).unwrap_or_default(),
            hostname: hostname.to_owned(),
            ts_micros: event.ts,
            source: event.source.clone(),
            name: event.name.clone(),
            service_id: event.service_id.clone(),
            service_name: event.service_name.clone(),
            category: event.category.clone(),
            vendor: event.vendor.clone(),
            action: event.action.as_str().to_owned(),
            rule_id: event.rule_id.clone(),
            policy_version: event.policy_version.clone(),
            pid: a.pid.map(i64::from),
            program: a.program.clone(),
            program_path: a.program_path.clone(),
            uid: a.uid.map(i64::from),
            username: a.user.clone(),
            repeats: i32::try_from(event.repeats).unwrap_or(i32::MAX),
            protocol: event.protocol.clone(),
            dst: event.dst.clone(),
            src: event.src.clone(),
        }
    }
}

/// The JSON document a line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LineFormat {
    Ecs,
    Ocsf,
}

/// `row` as one line of JSON (no newline inside: JSON escapes them).
pub fn line(row: &Row, format: LineFormat) -> String {
    match format {
        LineFormat::Ecs => ecs(row),
        LineFormat::Ocsf => ocsf(row),
    }
    .to_string()
}

/// RFC 3339 with microseconds, UTC, from microseconds since the epoch.
pub fn timestamp(micros: i64) -> String {
    crate::timefmt::rfc3339_micros(micros)
}

/// `value` without its null members: absent is how both schemas say
/// "not known" (a flow no process was found for, a user not resolved).
fn without_nulls(mut value: serde_json::Value) -> serde_json::Value {
    if let Some(map) = value.as_object_mut() {
        map.retain(|_, v| !v.is_null());
        for v in map.values_mut() {
            *v = without_nulls(std::mem::take(v));
        }
    }
    value
}

/// Adds a member to a JSON object.
fn set(object: &mut serde_json::Value, key: &str, value: serde_json::Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
}

fn allowed(action: &str) -> bool {
    !matches!(action, "block" | "remove" | "refuse")
}

/// The security team's decision on an employee's exception request, made on
/// the collector: `name` and `service_id` the service asked for, `dst` the
/// request's handle, `src` who decided, `action` grant or refuse, the
/// user the employee (or their pseudonym), the rule `exception:<action>`.
fn is_exception_decision(row: &Row) -> bool {
    is_review(row) && row.rule_id.starts_with("exception:")
}

/// A decision of the security team's review of the rights AI software
/// holds (R35), made on the collector: `name` is the software's
/// identifier, `protocol` its kind, `dst` the right, `src` who decided,
/// `action` keep or remove, the rule `recertification:<action>`.
fn is_review(row: &Row) -> bool {
    row.source == "review"
}

/// Tamper evidence and the collector's alerts: findings, not flows.
fn is_finding(row: &Row) -> bool {
    matches!(row.category.as_str(), "tamper" | "alert")
}

/// The software inventory's rows: `name` is the software's identifier,
/// `protocol` its kind, `dst` its version, the rule `inventory:<change>`.
fn is_inventory(row: &Row) -> bool {
    row.source == crate::event::INVENTORY
}

/// ECS's `event.type` for an inventory change (category `package`).
fn package_event_type(row: &Row) -> &'static str {
    match row.rule_id.strip_prefix("inventory:").unwrap_or("") {
        "installed" => "installation",
        "removed" => "deletion",
        "started" => "start",
        "updated" | "rights-changed" => "change",
        _ => "info",
    }
}

/// Rows whose name is a host name (the others carry detector counts or a
/// check's subject).
fn names_a_host(row: &Row) -> bool {
    is_lookup(row) || matches!(row.source.as_str(), "tls" | "quic" | "http")
}

/// A name lookup: seen on the wire (`dns`) or asked of the agent's own
/// resolver (`resolver`, the enforcement path).
fn is_lookup(row: &Row) -> bool {
    matches!(row.source.as_str(), "dns" | "resolver")
}

/// `doc`'s event as a change of `category` (an ECS category) rather than a
/// flow: the software inventory's and the security team's decisions.
fn not_a_flow(doc: &mut serde_json::Value, row: &Row, category: &str, kind: &str) {
    set(
        doc,
        "event",
        serde_json::json!({
            "kind": "event",
            "category": [category],
            "type": [kind],
            "action": row.action,
            "outcome": "success",
            "id": row.event_id.to_string(),
        }),
    );
    if let Some(object) = doc.as_object_mut() {
        object.remove("network");
    }
}

/// The Elastic Common Schema document of `row`.
pub fn ecs(row: &Row) -> serde_json::Value {
    use serde_json::json;
    let kind = if is_finding(row) { "alert" } else { "event" };
    let mut doc = json!({
        "@timestamp": timestamp(row.ts_micros),
        "ecs": { "version": ECS_VERSION },
        "event": {
            "kind": kind,
            "category": [if kind == "alert" { "intrusion_detection" } else { "network" }],
            "type": [match (kind, allowed(&row.action)) {
                ("alert", _) => "info",
                (_, true) => "allowed",
                (_, false) => "denied",
            }],
            "action": row.action,
            "outcome": if allowed(&row.action) { "success" } else { "failure" },
            "id": row.event_id.to_string(),
        },
        "host": { "name": row.hostname, "id": row.agent_id.to_string() },
        "network": { "protocol": row.source, "application": row.service_id },
        // ECS 9.4's name for the GenAI product's vendor.
        "gen_ai": { "system": row.vendor },
        "rule": { "id": row.rule_id, "ruleset": "vigie", "version": row.policy_version },
        "labels": { "vigie_category": row.category, "vigie_service": row.service_name, "vigie_repeats": row.repeats },
        "observer": { "vendor": "Vigie", "product": "Vigie", "version": env!("CARGO_PKG_VERSION") },
    });
    if is_inventory(row) {
        // A change in the software on the workstation, not a flow.
        not_a_flow(&mut doc, row, "package", package_event_type(row));
        let version = (!row.dst.is_empty()).then_some(row.dst.as_str());
        set(&mut doc, "package", json!({ "name": row.name, "version": version, "type": row.protocol }));
    } else if is_exception_decision(row) {
        // A change of what one user is allowed.
        not_a_flow(&mut doc, row, "iam", "change");
        if let Some(labels) = doc.get_mut("labels") {
            set(labels, "vigie_request", json!(row.dst));
            set(labels, "vigie_decided_by", json!(row.src));
        }
    } else if is_review(row) {
        // A change of what the organisation allows, about one installed
        // piece of software.
        not_a_flow(&mut doc, row, "configuration", "change");
        set(&mut doc, "package", json!({ "name": row.name, "type": row.protocol }));
        if let Some(labels) = doc.get_mut("labels") {
            set(labels, "vigie_right", json!(row.dst));
            set(labels, "vigie_decided_by", json!(row.src));
        }
    } else if names_a_host(row) {
        set(&mut doc, "destination", json!({ "domain": row.name }));
    } else if let Some(labels) = doc.get_mut("labels") {
        // Detector counts (`nir:1 email:2`) or the check's subject.
        set(labels, "vigie_subject", json!(row.name));
    }
    if is_lookup(row) {
        set(&mut doc, "dns", json!({ "question": { "name": row.name } }));
        if let Some(network) = doc.get_mut("network") {
            set(network, "protocol", json!("dns"));
        }
    }
    if matches!(row.source.as_str(), "tls" | "quic") {
        set(&mut doc, "tls", json!({ "client": { "server_name": row.name } }));
    }
    if row.username.is_some() || row.uid.is_some() {
        set(&mut doc, "user", json!({ "name": row.username, "id": row.uid.map(|u| u.to_string()) }));
    }
    if row.pid.is_some() || row.program.is_some() {
        set(
            &mut doc,
            "process",
            json!({ "pid": row.pid, "name": row.program, "executable": row.program_path }),
        );
    }
    without_nulls(doc)
}

/// The OCSF event of `row` (see [`Format::OcsfJson`]).
pub fn ocsf(row: &Row) -> serde_json::Value {
    use serde_json::json;
    let denied = !allowed(&row.action);
    let (class_uid, activity_id): (u32, u32) = match (row.category.as_str(), row.source.as_str()) {
        _ if is_finding(row) => (2004, 1),
        // Software Inventory Info: Collect.
        _ if is_inventory(row) => (5020, 2),
        // User Access Management: Assign Privileges, or Other (refused).
        _ if is_exception_decision(row) => (3005, if row.action == "grant" { 1 } else { 99 }),
        // Software Inventory Info: Other (a decision about the software).
        _ if is_review(row) => (5020, 99),
        (_, "clipboard") => (2006, 1),
        _ if is_lookup(row) => (4003, 1),
        // Network Activity: Refuse when denied, else Open.
        _ => (4001, if denied { 5 } else { 1 }),
    };
    let disposition_id = match row.action.as_str() {
        // A right recertified, or to be taken away.
        "keep" => 8,
        "remove" => 99,
        // An exception request granted, or refused.
        "grant" => 1,
        "refuse" => 2,
        "block" => 2,
        "allow" => 1,
        "monitor" => 17,
        _ => 19,
    };
    let mut event = json!({
        "class_uid": class_uid,
        "category_uid": class_uid / 1000,
        "activity_id": activity_id,
        "type_uid": class_uid * 100 + activity_id,
        "severity_id": if denied { 3 } else { 1 },
        "time": row.ts_micros / 1_000,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": row.event_id.to_string(),
            "product": { "name": "Vigie", "vendor_name": "Vigie", "version": env!("CARGO_PKG_VERSION") },
            // `host` brings `actor` and `device` (who, on which workstation).
            "profiles": ["security_control", "host"],
        },
        // type_id 0: OCSF's "Unknown" (desktop or laptop is not known).
        "device": { "hostname": row.hostname, "uid": row.agent_id.to_string(), "type_id": 0 },
        "action_id": if denied { 2 } else { 1 },
        "disposition_id": disposition_id,
        "disposition": row.action,
        "is_alert": !matches!(row.action.as_str(), "allow" | "monitor" | "keep" | "remove" | "grant" | "refuse"),
        "policy": { "uid": row.rule_id, "name": row.rule_id, "version": row.policy_version },
        "count": row.repeats,
        "unmapped": { "vigie_category": row.category, "vigie_service_id": row.service_id },
    });
    let mut actor = json!({});
    if row.username.is_some() || row.uid.is_some() {
        let mut user = json!({});
        if let Some(name) = &row.username {
            set(&mut user, "name", json!(name));
        }
        if let Some(uid) = row.uid {
            set(&mut user, "uid", json!(uid.to_string()));
        }
        set(&mut actor, "user", user);
    }
    if row.pid.is_some() || row.program.is_some() {
        let mut process = json!({ "pid": row.pid, "name": row.program });
        if let Some(path) = &row.program_path {
            let name = path.rsplit('/').next().unwrap_or(path);
            // type_id 1: a regular file.
            set(&mut process, "file", json!({ "name": name, "path": path, "type_id": 1 }));
        }
        set(&mut actor, "process", process);
    }
    // An actor needs a user or a process: an unattributed flow has none.
    if actor.as_object().is_some_and(|a| !a.is_empty()) {
        set(&mut event, "actor", actor);
    }
    let workstation = json!({ "hostname": row.hostname });
    match class_uid {
        4003 => {
            set(&mut event, "query", json!({ "hostname": row.name }));
            set(&mut event, "src_endpoint", workstation);
            set(&mut event, "app_name", json!(row.service_name));
        }
        4001 => {
            // The event does not keep the TLS version; QUIC is TLS 1.3.
            let version = if row.source == "quic" { "1.3" } else { "unknown" };
            set(&mut event, "tls", json!({ "sni": row.name, "version": version }));
            set(&mut event, "dst_endpoint", json!({ "hostname": row.name }));
            set(&mut event, "src_endpoint", workstation);
            set(&mut event, "app_protocol_name", json!(row.source));
            set(&mut event, "app_name", json!(row.service_name));
        }
        3005 => {
            // The employee whose access was decided, the access (the
            // service), and the security team's member as the actor.
            let user = row.username.as_deref().unwrap_or("unknown");
            set(&mut event, "user", json!({ "name": user }));
            set(&mut event, "privileges", json!([format!("use:{}", row.service_id)]));
            set(&mut event, "actor", json!({ "user": { "name": row.src } }));
            set(&mut event, "activity_name", json!(row.rule_id));
            if let Some(unmapped) = event.get_mut("unmapped") {
                set(unmapped, "vigie_request", json!(row.dst));
            }
        }
        5020 => {
            // The package object needs a version: an unknown one says so (a
            // review row's `dst` is the right, not a version).
            let version = if row.dst.is_empty() || is_review(row) { "unknown" } else { row.dst.as_str() };
            set(&mut event, "package", json!({ "name": row.name, "version": version, "type": row.protocol }));
            set(&mut event, "activity_name", json!(row.rule_id));
            if is_review(row) {
                if let Some(unmapped) = event.get_mut("unmapped") {
                    set(unmapped, "vigie_right", json!(row.dst));
                    set(unmapped, "vigie_decided_by", json!(row.src));
                }
            }
        }
        2006 => {
            let title = format!("clipboard: {}", row.name);
            set(&mut event, "finding_info", json!({ "uid": row.event_id.to_string(), "title": title }));
            set(
                &mut event,
                "data_security",
                json!({
                    "detection_system_id": 1,
                    "data_lifecycle_state_id": 3,
                    "detection_pattern": row.name,
                }),
            );
        }
        _ => {
            set(&mut event, "finding_info", json!({ "uid": row.event_id.to_string(), "title": row.rule_id }));
        }
    }
    without_nulls(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        Row {
            hostname: "poste 42".into(),
            ts_micros: 1_764_000_000_123_456,
            source: "tls".into(),
            name: "chatgpt.com".into(),
            service_id: "chatgpt".into(),
            service_name: "Chat|GPT".into(),
            category: "chat".into(),
            action: "block".into(),
            rule_id: "r34-block".into(),
            policy_version: "2026.12".into(),
            program: Some("fire=fox".into()),
            program_path: Some("C:\\evil\nline".into()),
            username: Some("alice]\"".into()),
            repeats: 2,
            ..Row::default()
        }
    }

    #[test]
    fn inventory_rows_are_software_not_flows() {
        let mut r = row();
        (r.source, r.name, r.rule_id, r.protocol, r.dst, r.action) = (
            "inventory".into(),
            "saoudrizwan.claude-dev".into(),
            "inventory:installed".into(),
            "editor-extension".into(),
            "3.37.1".into(),
            "warn".into(),
        );
        let doc = ecs(&r);
        assert_eq!(doc["event"]["category"][0], "package");
        assert_eq!(doc["event"]["type"][0], "installation");
        assert_eq!(doc["package"]["name"], "saoudrizwan.claude-dev");
        assert_eq!(doc["package"]["version"], "3.37.1");
        assert!(doc.get("network").is_none() && doc.get("destination").is_none(), "{doc}");
        let event = ocsf(&r);
        assert_eq!((event["class_uid"].as_u64(), event["type_uid"].as_u64()), (Some(5020), Some(502_002)));
        assert_eq!(event["package"]["type"], "editor-extension");
        r.dst = String::new();
        r.rule_id = "inventory:removed".into();
        assert_eq!(ocsf(&r)["package"]["version"], "unknown");
        assert_eq!(ecs(&r)["event"]["type"][0], "deletion");
        assert!(ecs(&r)["package"].get("version").is_none());
    }

    #[test]
    fn ecs_and_ocsf_carry_the_fields_their_schemas_require() {
        let mut r = row();
        r.agent_id = Uuid::from_u128(7);
        let flow = ecs(&r);
        assert_eq!(flow["event"]["type"][0], "denied");
        assert_eq!(flow["tls"]["client"]["server_name"], "chatgpt.com");
        assert_eq!(flow["destination"]["domain"], "chatgpt.com");
        assert_eq!(flow["user"]["name"], "alice]\"");
        let network = ocsf(&r);
        assert_eq!(
            (network["class_uid"].as_u64(), network["type_uid"].as_u64()),
            (Some(4001), Some(400_105))
        );
        assert_eq!((network["action_id"].as_u64(), network["disposition_id"].as_u64()), (Some(2), Some(2)));
        assert_eq!(network["tls"]["sni"], "chatgpt.com");
        assert_eq!(network["metadata"]["version"], OCSF_VERSION);
        for required in
            ["activity_id", "category_uid", "class_uid", "type_uid", "severity_id", "time", "metadata"]
        {
            assert!(!network[required].is_null(), "{required}");
        }
        // The agent's own resolver answered: a lookup, not a handshake.
        r.source = "resolver".into();
        let lookup = (ocsf(&r), ecs(&r));
        assert_eq!(lookup.0["class_uid"].as_u64(), Some(4003));
        assert!(lookup.0.get("tls").is_none(), "{}", lookup.0);
        assert_eq!(
            (lookup.1["dns"]["question"]["name"].as_str(), lookup.1["network"]["protocol"].as_str()),
            (Some("chatgpt.com"), Some("dns"))
        );
        assert!(lookup.1.get("tls").is_none(), "{}", lookup.1);
        r.source = "dns".into();
        r.action = "monitor".into();
        let dns = ocsf(&r);
        assert_eq!((dns["class_uid"].as_u64(), dns["disposition_id"].as_u64()), (Some(4003), Some(17)));
        assert_eq!(dns["query"]["hostname"], "chatgpt.com");
        r.source = "clipboard".into();
        r.name = "iban:2,email:1".into();
        let finding = ocsf(&r);
        assert_eq!(finding["class_uid"].as_u64(), Some(2006));
        assert_eq!(finding["data_security"]["detection_pattern"], "iban:2,email:1");
        // In ECS the detector counts are not a destination.
        let copy = ecs(&r);
        assert!(copy.get("destination").is_none(), "{copy}");
        assert_eq!(copy["labels"]["vigie_subject"], "iban:2,email:1");
        r.category = "alert".into();
        assert_eq!(
            (ocsf(&r)["class_uid"].as_u64(), ecs(&r)["event"]["kind"].as_str()),
            (Some(2004), Some("alert"))
        );
        assert!(!finding["finding_info"]["uid"].is_null());
    }

    #[test]
    fn recertification_decisions_are_changes_about_software() {
        let mut r = row();
        (r.source, r.category, r.name, r.rule_id, r.protocol, r.dst, r.src, r.action) = (
            "review".into(),
            "review".into(),
            "saoudrizwan.claude-dev".into(),
            "recertification:remove".into(),
            "editor-extension".into(),
            "auto-approve".into(),
            "rssi".into(),
            "remove".into(),
        );
        let doc = ecs(&r);
        assert_eq!(
            (doc["event"]["category"][0].as_str(), doc["event"]["type"][0].as_str()),
            (Some("configuration"), Some("change"))
        );
        assert_eq!(
            (doc["labels"]["vigie_right"].as_str(), doc["labels"]["vigie_decided_by"].as_str()),
            (Some("auto-approve"), Some("rssi"))
        );
        assert_eq!(doc["package"]["name"], "saoudrizwan.claude-dev");
        let event = ocsf(&r);
        assert_eq!((event["class_uid"].as_u64(), event["activity_id"].as_u64()), (Some(5020), Some(99)));
        assert_eq!((event["action_id"].as_u64(), event["disposition_id"].as_u64()), (Some(2), Some(99)));
        assert_eq!(event["is_alert"], false);
        assert_eq!(event["unmapped"]["vigie_decided_by"], "rssi");
        r.action = "keep".into();
        assert_eq!((ocsf(&r)["action_id"].as_u64(), ocsf(&r)["disposition_id"].as_u64()), (Some(1), Some(8)));
        // Who decided is the security team's member, named in the clear.
        let hidden = Pseudonyms::new(b"0123456789abcdef".to_vec()).apply(r);
        assert_eq!(ecs(&hidden)["labels"]["vigie_decided_by"], "rssi");
    }

    #[test]
    fn exception_decisions_are_access_changes_of_the_employee_by_the_security_team() {
        let mut r = row();
        (r.source, r.category, r.name, r.service_id, r.rule_id, r.protocol, r.dst, r.src, r.action) = (
            "review".into(),
            "review".into(),
            "chatgpt".into(),
            "chatgpt".into(),
            "exception:refuse".into(),
            "exception-request".into(),
            "3f2a9c0d41b7e685".into(),
            "rssi".into(),
            "refuse".into(),
        );
        r.username = Some("alice".into());
        let doc = ecs(&r);
        assert_eq!(doc["event"]["category"][0], "iam");
        assert_eq!(
            (doc["labels"]["vigie_request"].as_str(), doc["labels"]["vigie_decided_by"].as_str()),
            (Some("3f2a9c0d41b7e685"), Some("rssi"))
        );
        assert!(doc.get("package").is_none() && doc.get("destination").is_none(), "{doc}");
        let event = ocsf(&r);
        assert_eq!((event["class_uid"].as_u64(), event["activity_id"].as_u64()), (Some(3005), Some(99)));
        assert_eq!(
            (event["user"]["name"].as_str(), event["actor"]["user"]["name"].as_str()),
            (Some("alice"), Some("rssi"))
        );
        assert_eq!(event["privileges"][0], "use:chatgpt");
        assert_eq!((event["action_id"].as_u64(), event["disposition_id"].as_u64()), (Some(2), Some(2)));
        r.action = "grant".into();
        r.rule_id = "exception:grant".into();
        let granted = ocsf(&r);
        assert_eq!((granted["activity_id"].as_u64(), granted["disposition_id"].as_u64()), (Some(1), Some(1)));
        assert_eq!(granted["is_alert"], false);
    }

    #[test]
    fn pseudonyms_are_stable_per_key_and_hide_home_folders() {
        let a = Pseudonyms::new(b"0123456789abcdef".to_vec());
        let b = Pseudonyms::new(b"fedcba9876543210".to_vec());
        assert_eq!(a.of("alice"), a.of("alice"));
        assert_ne!(a.of("alice"), b.of("alice"));
        assert_ne!(a.of("alice"), a.of("bob"));
        let mut r = row();
        r.username = Some("alice".into());
        r.uid = Some(1000);
        r.program_path = Some("/home/alice/.local/bin/tool".into());
        let seen = a.apply(r);
        let pseudonym = a.of("alice");
        assert_eq!(seen.username.as_deref(), Some(pseudonym.as_str()));
        assert_eq!(seen.uid, None);
        assert_eq!(seen.program_path, Some(format!("/home/{pseudonym}/.local/bin/tool")));
        let text = ocsf(&seen).to_string() + &ecs(&seen).to_string();
        assert!(!text.contains("alice") && !text.contains("1000"), "{text}");
    }
}

/// Rows of every kind the exports carry (DNS, TLS, QUIC, clipboard, tamper
/// evidence, a collector alert), both pseudonymised and not. With
/// `VIGIE_SIEM_SAMPLES=<dir>`, their ECS and OCSF lines are written to
/// `<dir>/ecs.jsonl` and `<dir>/ocsf.jsonl`, which `tests/siem/validate.sh`
/// checks against ECS's field definitions and OCSF's published schema.
#[cfg(test)]
mod samples {
    use super::*;

    fn kinds() -> Vec<Row> {
        let base = Row {
            agent_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            event_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002),
            hostname: "poste-42".into(),
            ts_micros: 1_764_000_000_123_456,
            service_id: "chatgpt".into(),
            service_name: "ChatGPT".into(),
            category: "chatbot".into(),
            vendor: "OpenAI".into(),
            rule_id: "block-chatbots".into(),
            policy_version: "2026.12".into(),
            pid: Some(4242),
            program: Some("firefox-esr".into()),
            program_path: Some("/usr/lib/firefox-esr/firefox-esr".into()),
            uid: Some(1000),
            username: Some("alice".into()),
            repeats: 1,
            ..Row::default()
        };
        let with = |source: &str, name: &str, action: &str, category: &str| Row {
            source: source.into(),
            name: name.into(),
            action: action.into(),
            category: if category.is_empty() { base.category.clone() } else { category.into() },
            ..base.clone()
        };
        let mut rows = vec![
            with("dns", "chatgpt.com", "block", ""),
            with("dns", "chat.openai.com", "monitor", ""),
            with("resolver", "chatgpt.com", "block", ""),
            with("tls", "chatgpt.com", "allow", ""),
            with("quic", "chatgpt.com", "warn", ""),
            with("tls", "chatgpt.com", "coach", ""),
            with("clipboard", "nir:1 email:2", "block", ""),
            with("tamper", "dns-moved-away", "alert", "tamper"),
            with("collector", "20 blocked or unreadable handshakes in 5 minutes", "alert", "alert"),
        ];
        for (change, kind, version) in [
            ("installed", "browser-extension", "4.10.0"),
            ("rights-changed", "mcp-server", ""),
            ("started", "program", ""),
        ] {
            let mut software = with("inventory", "difoiogjjojoaoomphldepapgpbgkhkb", "warn", "chat");
            (software.rule_id, software.protocol, software.dst) =
                (format!("inventory:{change}"), kind.into(), version.into());
            rows.push(software);
        }
        for decision in ["keep", "remove"] {
            let mut review = with("review", "difoiogjjojoaoomphldepapgpbgkhkb", decision, "review");
            (review.rule_id, review.protocol, review.dst, review.src, review.policy_version) = (
                format!("recertification:{decision}"),
                "browser-extension".into(),
                "<all_urls>".into(),
                "rssi@example.org".into(),
                String::new(),
            );
            (review.pid, review.program, review.program_path) = (None, None, None);
            rows.push(review);
        }
        for decision in ["grant", "refuse"] {
            let mut exception = with("review", "chatgpt", decision, "review");
            (exception.rule_id, exception.protocol, exception.dst, exception.src, exception.policy_version) = (
                format!("exception:{decision}"),
                "exception-request".into(),
                "3f2a9c0d41b7e685".into(),
                "rssi@example.org".into(),
                String::new(),
            );
            (exception.pid, exception.program, exception.program_path) = (None, None, None);
            rows.push(exception);
        }
        let mut unattributed = with("tls", "claude.ai", "block", "");
        (unattributed.pid, unattributed.program, unattributed.program_path) = (None, None, None);
        (unattributed.uid, unattributed.username) = (None, None);
        rows.push(unattributed);
        let pseudonyms = Pseudonyms::new(b"0123456789abcdef".to_vec());
        let hidden: Vec<Row> = rows.iter().cloned().map(|r| pseudonyms.apply(r)).collect();
        rows.extend(hidden);
        rows
    }

    #[test]
    fn documents_of_every_kind() {
        let rows = kinds();
        for format in [LineFormat::Ecs, LineFormat::Ocsf] {
            let lines: Vec<String> = rows.iter().map(|r| line(r, format)).collect();
            for l in &lines {
                assert!(!l.contains('\n'), "{l}");
                let back: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                assert!(back.is_object(), "{l}");
            }
            if let Some(dir) = std::env::var_os("VIGIE_SIEM_SAMPLES") {
                let name = if format == LineFormat::Ecs { "ecs.jsonl" } else { "ocsf.jsonl" };
                let path = std::path::Path::new(&dir).join(name);
                std::fs::write(&path, lines.join("\n") + "\n")
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
    }
}
