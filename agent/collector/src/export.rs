//! Exports to the SOC's tools: each destination reads the events in commit
//! order from its own durable cursor in PostgreSQL, sends them, and moves
//! the cursor only once they are written: at least once, resumable after a
//! restart, and slowed by a slow receiver (its TCP window) rather than
//! buffering.
//!
//! So far: RFC 5424 syslog over TCP (octet-counting framing, RFC 6587) or
//! over TLS (RFC 5425, the receiver's CA pinned), the message CEF, RFC 5424
//! structured data, ECS or OCSF JSON. Mapping of each field: `agent/FLEET.md`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use deadpool_postgres::Pool;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tracing::{info, warn};
use uuid::Uuid;

/// `[[export]]` in `collector.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Names the cursor: renaming a destination starts it from the beginning.
    pub name: String,
    /// `host:port` of the receiver (rsyslog's imtcp, syslog-ng's network()).
    pub address: String,
    #[serde(default)]
    pub format: Format,
    /// The IANA private enterprise number of the structured data's SD-ID
    /// (`vigie@<number>`); the default is RFC 5612's documentation number.
    #[serde(default = "default_enterprise_number")]
    pub enterprise_number: u32,
    /// Users named by a keyed pseudonym (HMAC-SHA-256 of the name with the
    /// key in this file), uids left out, and home folders in program paths
    /// renamed the same way. The same user gets the same pseudonym in this
    /// destination, and another one in a destination with another key.
    #[serde(default)]
    pub pseudonym_key: Option<std::path::PathBuf>,
    /// Syslog over TLS (RFC 5425): the CA that signed the receiver's
    /// certificate (PEM). Without it, plain TCP.
    #[serde(default)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// The name the receiver's certificate must carry (default: the host
    /// part of `address`).
    #[serde(default)]
    pub tls_server_name: Option<String>,
}

/// The connection to a receiver: TCP, or TLS over it.
enum Connection {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Connection {
    fn tcp(&self) -> &TcpStream {
        match self {
            Connection::Plain(stream) => stream,
            Connection::Tls(stream) => stream.get_ref().0,
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Connection::Plain(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await
            }
            Connection::Tls(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await
            }
        }
    }

    /// Whether the receiver's end is still open: no byte waiting means open
    /// (a TLS receiver may have sent session tickets: data, still open);
    /// the end of the stream or an error means gone. Peeked, not read, so
    /// TLS records are left for rustls.
    async fn is_open(&self) -> bool {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(1), self.tcp().peek(&mut byte)).await {
            Err(_) => true,
            Ok(Ok(n)) => n > 0,
            Ok(Err(_)) => false,
        }
    }
}

/// The TLS client of a destination: its CA alone is trusted.
fn tls_connector(ca: &std::path::Path) -> Result<tokio_rustls::TlsConnector> {
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(crate::pki::client_trusting(ca)?)))
}

async fn connect(config: &ExportConfig) -> Result<Connection> {
    let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&config.address))
        .await
        .context("connecting to the receiver: timed out")?
        .with_context(|| format!("connecting to {}", config.address))?;
    let Some(ca) = &config.tls_ca else {
        return Ok(Connection::Plain(tcp));
    };
    let host = config.tls_server_name.clone().unwrap_or_else(|| {
        config.address.rsplit_once(':').map_or(config.address.as_str(), |(h, _)| h).to_owned()
    });
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .with_context(|| format!("`{host}` is not a server name"))?;
    let tls = tokio::time::timeout(Duration::from_secs(10), tls_connector(ca)?.connect(name, tcp))
        .await
        .context("TLS handshake with the receiver: timed out")?
        .context("TLS handshake with the receiver")?;
    Ok(Connection::Tls(Box::new(tls)))
}

fn default_enterprise_number() -> u32 {
    32_473
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// ArcSight CEF as the syslog message (what Netskope and Defender ship).
    #[default]
    Cef,
    /// RFC 5424 structured data under `vigie@<enterprise number>`.
    Rfc5424,
    /// One Elastic Common Schema document (JSON) as the message.
    EcsJson,
    /// One OCSF 1.8.0 event (JSON) as the message: DNS Activity (4003),
    /// Network Activity (4001) with `tls.sni`, Data Security Finding (2006)
    /// for the clipboard, Detection Finding (2004) for tamper evidence,
    /// with the security-control profile.
    OcsfJson,
}

/// The OCSF version the `ocsf-json` format follows.
pub const OCSF_VERSION: &str = "1.8.0";

/// A destination's pseudonyms.
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
}

/// Syslog severity: a block is a warning, a prompt a notice, the rest info.
fn severity(action: &str) -> (u8, u8) {
    match action {
        "alert" => (1, 9),
        "block" => (4, 7),
        "coach" | "warn" => (5, 5),
        _ => (6, 3),
    }
}

/// What kind of message (RFC 5424 MSGID).
fn message_id(row: &Row) -> &'static str {
    match row.category.as_str() {
        "tamper" => "tamper",
        "alert" => "alert",
        _ if row.source == "clipboard" => "clipboard",
        _ => "decision",
    }
}

/// RFC 5424 HOSTNAME: printable US-ASCII without spaces, 255 at most; `-` if none.
fn header_token(text: &str, max: usize) -> String {
    let token: String = text.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if token.is_empty() {
        "-".to_owned()
    } else {
        token
    }
}

/// RFC 3339 with microseconds, UTC, from microseconds since the epoch.
fn timestamp(micros: i64) -> String {
    vigie_core::timefmt::rfc3339_micros(micros)
}

/// CEF header field: `\` and `|` escaped, one line.
fn cef_header(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// CEF extension value: `\` and `=` escaped, line ends written as `\n`/`\r`.
fn cef_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// RFC 5424 PARAM-VALUE: `"`, `\` and `]` escaped (§6.3.3).
fn sd_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The fields every format carries, named once: (CEF key, SD name, value).
fn fields(row: &Row) -> Vec<(&'static str, &'static str, String)> {
    let mut fields = vec![
        ("rt", "ts", (row.ts_micros / 1_000).to_string()),
        ("dvchost", "host", row.hostname.clone()),
        ("deviceExternalId", "agent", row.agent_id.to_string()),
        ("externalId", "event", row.event_id.to_string()),
        ("dhost", "domain", row.name.clone()),
        ("destinationServiceName", "svcName", row.service_name.clone()),
        ("cs5", "svc", row.service_id.clone()),
        ("cat", "cat", row.category.clone()),
        ("app", "proto", row.source.clone()),
        ("act", "action", row.action.clone()),
        ("cs1", "rule", row.rule_id.clone()),
        ("cs2", "policy", row.policy_version.clone()),
        ("cnt", "count", row.repeats.to_string()),
    ];
    if let Some(user) = &row.username {
        fields.push(("suser", "user", user.clone()));
    }
    if let Some(uid) = row.uid {
        fields.push(("suid", "uid", uid.to_string()));
    }
    if let Some(program) = &row.program {
        fields.push(("sproc", "exe", program.clone()));
    }
    if let Some(pid) = row.pid {
        fields.push(("spid", "pid", pid.to_string()));
    }
    if let Some(path) = &row.program_path {
        fields.push(("cs3", "exePath", path.clone()));
    }
    fields
}

/// The syslog message of `row`, without framing.
pub fn message(row: &Row, format: Format, enterprise_number: u32) -> String {
    let (syslog_severity, cef_severity) = severity(&row.action);
    // Facility 13, "log audit".
    let pri = 13 * 8 + u32::from(syslog_severity);
    let mut out = format!(
        "<{pri}>1 {} {} vigie - {} ",
        timestamp(row.ts_micros),
        header_token(&row.hostname, 255),
        message_id(row)
    );
    match format {
        Format::Cef => {
            let _ = write!(
                out,
                "- CEF:0|Vigie|Vigie|{}|{}|{}|{cef_severity}|",
                cef_header(env!("CARGO_PKG_VERSION")),
                cef_header(&row.rule_id),
                cef_header(&format!("{} {} {}", row.action, row.service_name, row.name)),
            );
            let labels = "cs1Label=rule cs2Label=policyVersion cs3Label=programPath cs5Label=serviceId";
            let mut extension = vec![labels.to_owned()];
            for (key, _, value) in fields(row) {
                extension.push(format!("{key}={}", cef_value(&value)));
            }
            out.push_str(&extension.join(" "));
        }
        Format::Rfc5424 => {
            let _ = write!(out, "[vigie@{enterprise_number}");
            for (_, name, value) in fields(row) {
                let _ = write!(out, " {name}=\"{}\"", sd_value(&value));
            }
            let _ = write!(out, "] {} {} {}", row.action, row.service_id, row.name);
        }
        Format::EcsJson => {
            let _ = write!(out, "- {}", ecs(row));
        }
        Format::OcsfJson => {
            let _ = write!(out, "- {}", ocsf(row));
        }
    }
    out
}

/// Adds a member to a JSON object.
fn set(object: &mut serde_json::Value, key: &str, value: serde_json::Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
}

fn allowed(action: &str) -> bool {
    !matches!(action, "block")
}

/// The Elastic Common Schema document of `row`.
pub fn ecs(row: &Row) -> serde_json::Value {
    use serde_json::json;
    let kind = if row.category == "tamper" { "alert" } else { "event" };
    let mut doc = json!({
        "@timestamp": timestamp(row.ts_micros),
        "event": {
            "kind": kind,
            "category": ["network"],
            "type": [if allowed(&row.action) { "allowed" } else { "denied" }],
            "action": row.action,
            "outcome": if allowed(&row.action) { "success" } else { "failure" },
            "id": row.event_id.to_string(),
        },
        "host": { "name": row.hostname, "id": row.agent_id.to_string() },
        "network": { "protocol": row.source, "application": row.service_id },
        "destination": { "domain": row.name },
        "gen_ai": { "provider": { "name": row.vendor } },
        "rule": { "id": row.rule_id, "ruleset": "vigie", "version": row.policy_version },
        "labels": { "vigie_category": row.category, "vigie_service": row.service_name, "vigie_repeats": row.repeats },
        "observer": { "vendor": "Vigie", "product": "Vigie", "version": env!("CARGO_PKG_VERSION") },
    });
    if row.source == "dns" {
        set(&mut doc, "dns", json!({ "question": { "name": row.name } }));
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
    doc
}

/// The OCSF event of `row` (see [`Format::OcsfJson`]).
pub fn ocsf(row: &Row) -> serde_json::Value {
    use serde_json::json;
    let denied = !allowed(&row.action);
    let (class_uid, activity_id): (u32, u32) = match (row.category.as_str(), row.source.as_str()) {
        ("tamper" | "alert", _) => (2004, 1),
        (_, "clipboard") => (2006, 1),
        (_, "dns") => (4003, 1),
        // Network Activity: Refuse when denied, else Open.
        _ => (4001, if denied { 5 } else { 1 }),
    };
    let disposition_id = match row.action.as_str() {
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
            "profiles": ["security_control"],
        },
        "device": { "hostname": row.hostname, "uid": row.agent_id.to_string() },
        "app_name": row.service_name,
        "action_id": if denied { 2 } else { 1 },
        "disposition_id": disposition_id,
        "disposition": row.action,
        "is_alert": row.action != "allow" && row.action != "monitor",
        "policy": { "uid": row.rule_id, "name": row.rule_id, "version": row.policy_version },
        "count": row.repeats,
        "unmapped": { "vigie_category": row.category, "vigie_service_id": row.service_id },
    });
    let mut actor = json!({});
    if row.username.is_some() || row.uid.is_some() {
        set(&mut actor, "user", json!({ "name": row.username, "uid": row.uid.map(|u| u.to_string()) }));
    }
    if row.pid.is_some() || row.program.is_some() {
        let process = json!({ "pid": row.pid, "name": row.program, "file": { "path": row.program_path } });
        set(&mut actor, "process", process);
    }
    set(&mut event, "actor", actor);
    match class_uid {
        4003 => set(&mut event, "query", json!({ "hostname": row.name })),
        4001 => {
            set(&mut event, "tls", json!({ "sni": row.name }));
            set(&mut event, "dst_endpoint", json!({ "hostname": row.name }));
            set(&mut event, "app_protocol_name", json!(row.source));
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
    event
}

/// Octet-counting framing (RFC 6587 §3.4.1): `LEN SP MSG`.
pub fn frame(message: &str) -> String {
    format!("{} {message}", message.len())
}

/// Where a destination's cursor stands.
#[derive(Debug, Clone, Default)]
struct Cursor {
    tx: i64,
    agent_id: Uuid,
    event_id: Uuid,
}

async fn load_cursor(pool: &Pool, destination: &str) -> Result<Cursor> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO export_cursors (destination) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&destination],
        )
        .await?;
    let row = client
        .query_one(
            "SELECT tx::text::bigint, agent_id, event_id FROM export_cursors WHERE destination = $1",
            &[&destination],
        )
        .await?;
    Ok(Cursor { tx: row.get(0), agent_id: row.get(1), event_id: row.get(2) })
}

/// The next events after `cursor`, of finished transactions only (older
/// than every transaction still running: none can commit behind us).
async fn next_rows(pool: &Pool, cursor: &Cursor, limit: i64) -> Result<Vec<(Cursor, Row)>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT e.tx::text::bigint, e.agent_id, e.event_id, coalesce(a.hostname, ''),
                (extract(epoch from e.ts) * 1000000)::bigint, e.source, e.name, e.service_id, e.service_name,
                e.category, e.vendor, e.action, e.rule_id, e.policy_version, e.pid, e.program, e.program_path,
                e.uid, e.username, e.repeats
             FROM events e LEFT JOIN agents a ON a.id = e.agent_id
             WHERE (e.tx, e.agent_id, e.event_id) > ($1::text::xid8, $2, $3)
               AND e.tx < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY e.tx, e.agent_id, e.event_id
             LIMIT $4",
            &[&cursor.tx.to_string(), &cursor.agent_id, &cursor.event_id, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let position = Cursor { tx: r.get(0), agent_id: r.get(1), event_id: r.get(2) };
            let row = Row {
                agent_id: r.get(1),
                event_id: r.get(2),
                hostname: r.get(3),
                ts_micros: r.get(4),
                source: r.get(5),
                name: r.get(6),
                service_id: r.get(7),
                service_name: r.get(8),
                category: r.get(9),
                vendor: r.get(10),
                action: r.get(11),
                rule_id: r.get(12),
                policy_version: r.get(13),
                pid: r.get(14),
                program: r.get(15),
                program_path: r.get(16),
                uid: r.get(17),
                username: r.get(18),
                repeats: r.get(19),
            };
            (position, row)
        })
        .collect())
}

async fn save_cursor(pool: &Pool, destination: &str, cursor: &Cursor, sent: i64) -> Result<()> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE export_cursors SET tx = $2::text::xid8, agent_id = $3, event_id = $4, exported = exported + $5,
                last_success = now(), last_error = NULL, last_error_at = NULL
             WHERE destination = $1",
            &[&destination, &cursor.tx.to_string(), &cursor.agent_id, &cursor.event_id, &sent],
        )
        .await?;
    Ok(())
}

async fn record_error(pool: &Pool, destination: &str, error: &str) {
    if let Ok(client) = pool.get().await {
        let _ = client
            .execute(
                "UPDATE export_cursors SET last_error = $2, last_error_at = now() WHERE destination = $1",
                &[&destination, &error],
            )
            .await;
    }
}

/// How long a write may block on a slow receiver before the connection is
/// dropped and the batch sent again.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const BATCH: i64 = 500;

/// Runs one destination for ever: read, send, move the cursor.
pub async fn run(pool: Pool, config: ExportConfig) {
    let pseudonyms = loop {
        match &config.pseudonym_key {
            None => break None,
            Some(path) => match std::fs::read(path) {
                Ok(key) if key.len() >= 16 => break Some(Pseudonyms::new(key)),
                Ok(_) => {
                    record_error(&pool, &config.name, "the pseudonym key is shorter than 16 bytes").await;
                }
                Err(e) => record_error(&pool, &config.name, &format!("{}: {e}", path.display())).await,
            },
        }
        // Nothing goes out unpseudonymised: wait for a usable key.
        tokio::time::sleep(Duration::from_secs(60)).await;
    };
    let mut connection: Option<Connection> = None;
    let mut failures: u32 = 0;
    info!(destination = %config.name, address = %config.address, "export started");
    loop {
        match step(&pool, &config, pseudonyms.as_ref(), &mut connection).await {
            Ok(0) => {
                failures = 0;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(_) => failures = 0,
            Err(e) => {
                connection = None;
                let why = format!("{e:#}");
                warn!(destination = %config.name, error = %why, "export failed; retried");
                record_error(&pool, &config.name, &why).await;
                failures = failures.saturating_add(1);
                let ceiling = Duration::from_secs(1 << failures.min(6));
                tokio::time::sleep(ceiling.mul_f64(0.5 + rand::random::<f64>() * 0.5)).await;
            }
        }
    }
}

/// One batch; returns how many events went.
async fn step(
    pool: &Pool,
    config: &ExportConfig,
    pseudonyms: Option<&Pseudonyms>,
    connection: &mut Option<Connection>,
) -> Result<usize> {
    let cursor = load_cursor(pool, &config.name).await?;
    let rows = next_rows(pool, &cursor, BATCH).await?;
    let Some((last, _)) = rows.last().cloned() else {
        return Ok(0);
    };
    let mut frames = String::new();
    for (_, row) in &rows {
        let row = match pseudonyms {
            Some(pseudonyms) => pseudonyms.apply(row.clone()),
            None => row.clone(),
        };
        frames.push_str(&frame(&message(&row, config.format, config.enterprise_number)));
    }
    // A receiver that went away since the last batch: its end of the
    // connection reads as closed. Found before writing, not after the
    // kernel took the bytes (syslog over TCP has no acknowledgement).
    if let Some(open) = connection.as_ref() {
        if !open.is_open().await {
            *connection = None;
        }
    }
    if connection.is_none() {
        *connection = Some(connect(config).await?);
    }
    let Some(stream) = connection.as_mut() else {
        anyhow::bail!("no connection");
    };
    tokio::time::timeout(WRITE_TIMEOUT, stream.send(frames.as_bytes()))
        .await
        .context("the receiver did not take the batch in time")?
        .context("sending to the receiver")?;
    save_cursor(pool, &config.name, &last, i64::try_from(rows.len()).unwrap_or(i64::MAX)).await?;
    Ok(rows.len())
}

/// Each destination: events exported, those waiting, the age of the oldest
/// waiting, the last success and error.
pub async fn status(pool: &Pool) -> Result<Vec<serde_json::Value>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT json_build_object('destination', c.destination, 'exported', c.exported,
                'waiting', (SELECT count(*) FROM events e WHERE (e.tx, e.agent_id, e.event_id) > (c.tx, c.agent_id, c.event_id)),
                'oldest_waiting', (SELECT min(received_at) FROM events e WHERE (e.tx, e.agent_id, e.event_id) > (c.tx, c.agent_id, c.event_id)),
                'last_success', c.last_success, 'last_error', c.last_error, 'last_error_at', c.last_error_at)::text
             FROM export_cursors c ORDER BY c.destination",
            &[],
        )
        .await?;
    rows.iter().map(|r| serde_json::from_str(r.get::<_, &str>(0)).context("export row")).collect()
}

/// The time now, for messages that need one (tests).
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
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
    fn cef_escapes_by_the_book() {
        let text = message(&row(), Format::Cef, 32_473);
        assert!(
            text.starts_with(
                "<108>1 2025-11-24T16:00:00.123456Z poste42 vigie - decision - CEF:0|Vigie|Vigie|"
            ),
            "{text}"
        );
        assert!(text.contains("|r34-block|block Chat\\|GPT chatgpt.com|7|"), "{text}");
        assert!(text.contains("sproc=fire\\=fox"), "{text}");
        assert!(text.contains("cs3=C:\\\\evil\\nline"), "{text}");
        assert!(!text.contains('\n'), "one line");
        assert!(text.contains("rt=1764000000123 "), "{text}");
    }

    #[test]
    fn structured_data_escapes_by_the_rfc() {
        let text = message(&row(), Format::Rfc5424, 32_473);
        assert!(text.contains("[vigie@32473 ts=\"1764000000123\""), "{text}");
        assert!(text.contains("user=\"alice\\]\\\"\""), "{text}");
        assert!(text.contains("exePath=\"C:\\\\evil\nline\""), "{text}");
    }

    #[test]
    fn ecs_and_ocsf_carry_the_fields_their_schemas_require() {
        let mut r = row();
        r.agent_id = Uuid::from_u128(7);
        let ecs = ecs(&r);
        assert_eq!(ecs["event"]["type"][0], "denied");
        assert_eq!(ecs["tls"]["client"]["server_name"], "chatgpt.com");
        assert_eq!(ecs["user"]["name"], "alice]\"");
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
        assert!(!finding["finding_info"]["uid"].is_null());
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
        let text = message(&seen, Format::Cef, 1);
        assert!(!text.contains("alice") && !text.contains("1000"), "{text}");
    }

    #[test]
    fn framing_counts_octets_not_characters() {
        assert_eq!(frame("é"), "2 é");
    }
}
