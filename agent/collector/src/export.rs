//! Exports to the SOC's tools: each destination reads the events in commit
//! order from its own durable cursor in PostgreSQL, sends them, and moves
//! the cursor only once they are written: at least once, resumable after a
//! restart, and slowed by a slow receiver (its TCP window) rather than
//! buffering.
//!
//! Transports: RFC 5424 syslog over TCP (octet-counting framing, RFC 6587)
//! or over TLS (RFC 5425, the receiver's CA pinned), the message CEF, RFC
//! 5424 structured data, ECS or OCSF JSON; or HTTPS POSTs of ECS or OCSF
//! documents, in the shape of Elasticsearch's bulk API or as JSON lines.
//! Mapping of each field: `agent/FLEET.md`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use deadpool_postgres::Pool;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tracing::{info, warn};
use uuid::Uuid;
use vigie_core::siem::{ecs, ocsf, timestamp, Pseudonyms, Row};

/// `[[export]]` in `collector.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Names the cursor: renaming a destination starts it from the beginning.
    pub name: String,
    /// Syslog: `host:port` of the receiver (rsyslog's imtcp, syslog-ng's
    /// network()). Exactly one of `address` and `url`.
    #[serde(default)]
    pub address: Option<String>,
    /// HTTPS: where batches are POSTed, e.g. Elasticsearch's
    /// `https://es.example.org:9200/logs-vigie-default/_bulk`.
    #[serde(default)]
    pub url: Option<String>,
    /// The body of an HTTPS POST: `bulk` (default) or `ndjson`.
    #[serde(default)]
    pub http_body: HttpBody,
    /// A file holding the value of the POST's `Authorization` header
    /// (`ApiKey …`, `Basic …`), read when the export starts.
    #[serde(default)]
    pub authorization_file: Option<std::path::PathBuf>,
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

/// How an HTTPS destination's body is shaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpBody {
    /// Elasticsearch's (and OpenSearch's) bulk API: a `create` action with
    /// the event id as `_id` before each document, so that a batch sent
    /// twice stores each event once (the second `create` is a 409).
    #[default]
    Bulk,
    /// One document a line (Vector's and Fluent Bit's `http` inputs,
    /// Logstash's `json_lines`).
    Ndjson,
}

impl ExportConfig {
    /// What is wrong with the destination, if anything.
    pub fn check(&self) -> Result<()> {
        let name = &self.name;
        match (&self.address, &self.url) {
            (Some(address), None) if !address.is_empty() => Ok(()),
            (None, Some(url)) => {
                crate::pki::check_post_url(url, self.tls_ca.as_deref())
                    .with_context(|| format!("[[export]] `{name}` (its CA is tls_ca)"))?;
                if !matches!(self.format, Format::EcsJson | Format::OcsfJson) {
                    anyhow::bail!("[[export]] `{name}`: over HTTPS the format is ecs-json or ocsf-json");
                }
                Ok(())
            }
            _ => anyhow::bail!(
                "[[export]] `{name}` needs either an address (syslog, host:port) or a url (HTTPS), not both"
            ),
        }
    }

    fn target(&self) -> &str {
        self.url.as_deref().or(self.address.as_deref()).unwrap_or_default()
    }
}

/// An HTTPS destination's client, its CA alone trusted.
struct HttpSink {
    client: reqwest::Client,
    url: String,
    authorization: Option<String>,
    body: HttpBody,
}

/// The most of a receiver's answer read (a bulk response lists every item).
const ANSWER_LIMIT: usize = 8 << 20;

impl HttpSink {
    fn new(config: &ExportConfig) -> Result<Option<Self>> {
        let Some(url) = &config.url else { return Ok(None) };
        let client = crate::pki::post_client(url, config.tls_ca.as_deref(), WRITE_TIMEOUT)?;
        let authorization = match &config.authorization_file {
            Some(path) => Some(
                std::fs::read_to_string(path).with_context(|| path.display().to_string())?.trim().to_owned(),
            ),
            None => None,
        };
        Ok(Some(Self { client, url: url.clone(), authorization, body: config.http_body }))
    }

    /// POSTs the documents; `Ok` with the documents the receiver refused
    /// one by one (and why), `Err` when the batch must be sent again.
    async fn send(&self, documents: &[(Uuid, String)]) -> Result<(usize, Option<String>)> {
        let mut body = String::with_capacity(documents.iter().map(|(_, d)| d.len() + 64).sum());
        for (id, document) in documents {
            if self.body == HttpBody::Bulk {
                let _ = writeln!(body, "{{\"create\":{{\"_id\":\"{id}\"}}}}");
            }
            body.push_str(document);
            body.push('\n');
        }
        let mut request =
            self.client.post(&self.url).header("content-type", "application/x-ndjson").body(body);
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        let mut response = request.send().await.context("reaching the receiver")?;
        let status = response.status();
        let mut answer = Vec::new();
        let mut cut = false;
        while let Some(chunk) = response.chunk().await.context("reading the receiver's answer")? {
            if answer.len() + chunk.len() > ANSWER_LIMIT {
                cut = true;
                break;
            }
            answer.extend_from_slice(&chunk);
        }
        // A bulk answer read in part could hide a 429: the batch goes again
        // (each `create` stored already answers 409 then).
        if cut && status.is_success() && self.body == HttpBody::Bulk {
            anyhow::bail!("the receiver's answer is over {ANSWER_LIMIT} bytes: the batch goes again");
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(answer.get(..200).unwrap_or(&answer)).into_owned();
            anyhow::bail!("the receiver answered {status}: {text}");
        }
        match self.body {
            HttpBody::Bulk => bulk_outcome(&answer),
            HttpBody::Ndjson => Ok((0, None)),
        }
    }
}

/// What a bulk answer says: the documents refused for good (a mapping
/// error) with the first reason, or `Err` when some could not be stored now
/// (429, 5xx) and the batch goes again. A 409 is a document stored by an
/// earlier try. An answer that is not a bulk answer (a collector's 204) is
/// a success.
fn bulk_outcome(answer: &[u8]) -> Result<(usize, Option<String>)> {
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(answer) else { return Ok((0, None)) };
    if answer.get("errors").and_then(serde_json::Value::as_bool) != Some(true) {
        return Ok((0, None));
    }
    let mut refused = 0;
    let mut reason = None;
    for item in answer.get("items").and_then(serde_json::Value::as_array).into_iter().flatten() {
        let Some(result) = item.as_object().and_then(|o| o.values().next()) else { continue };
        let status = result.get("status").and_then(serde_json::Value::as_u64).unwrap_or(0);
        match status {
            200..=299 | 409 => {}
            429 | 500..=599 => anyhow::bail!("the receiver could not store every document now ({status})"),
            _ => {
                refused += 1;
                let error = result.get("error");
                let why = error
                    .and_then(|e| e.get("reason").or_else(|| e.get("type")))
                    .and_then(serde_json::Value::as_str)
                    .map_or_else(|| format!("status {status}"), str::to_owned);
                reason.get_or_insert(why);
            }
        }
    }
    Ok((refused, reason))
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
    let address = config.address.as_deref().unwrap_or_default();
    let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(address))
        .await
        .context("connecting to the receiver: timed out")?
        .with_context(|| format!("connecting to {address}"))?;
    let Some(ca) = &config.tls_ca else {
        return Ok(Connection::Plain(tcp));
    };
    let host = config
        .tls_server_name
        .clone()
        .unwrap_or_else(|| address.rsplit_once(':').map_or(address, |(h, _)| h).to_owned());
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
        "review" => "review",
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

/// What a review row's `dst` names: the right recertified, or the exception
/// request decided.
fn review_subject(row: &Row) -> &'static str {
    if row.rule_id.starts_with("exception:") {
        "request"
    } else {
        "right"
    }
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
    if row.category == "review" {
        // A recertification decision: the right; an exception request's:
        // the request. And who decided.
        fields.push(("cs4", review_subject(row), row.dst.clone()));
        fields.push(("cs6", "decidedBy", row.src.clone()));
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
            let mut labels =
                "cs1Label=rule cs2Label=policyVersion cs3Label=programPath cs5Label=serviceId".to_owned();
            if row.category == "review" {
                let _ = write!(labels, " cs4Label={} cs6Label=decidedBy", review_subject(row));
            }
            let mut extension = vec![labels];
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
                e.uid, e.username, e.repeats, e.protocol, e.dst, e.src
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
                protocol: r.get(20),
                dst: r.get(21),
                src: r.get(22),
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
    // Nothing goes out unpseudonymised, nor to an untrusted receiver: wait
    // for a usable key and client.
    let (pseudonyms, http) = loop {
        let pseudonyms = match &config.pseudonym_key {
            None => Ok(None),
            Some(path) => match std::fs::read(path) {
                Ok(key) if key.len() >= 16 => Ok(Some(Pseudonyms::new(key))),
                Ok(_) => Err("the pseudonym key is shorter than 16 bytes".to_owned()),
                Err(e) => Err(format!("{}: {e}", path.display())),
            },
        };
        match (pseudonyms, HttpSink::new(&config)) {
            (Ok(pseudonyms), Ok(http)) => break (pseudonyms, http),
            (Err(why), _) => record_error(&pool, &config.name, &why).await,
            (_, Err(e)) => record_error(&pool, &config.name, &format!("{e:#}")).await,
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    };
    let mut connection: Option<Connection> = None;
    let mut failures: u32 = 0;
    let mut lock: Option<deadpool_postgres::ClientWrapper> = None;
    let mut standing_by = false;
    loop {
        // One exporter per destination across collectors (see
        // `hold_destination`); a lost database connection loses the lock.
        if lock.as_ref().is_none_or(|held| held.is_closed()) {
            match hold_destination(&pool, &config.name).await {
                Ok(Some(held)) => {
                    info!(destination = %config.name, target = %config.target(), "export started");
                    (lock, standing_by) = (Some(held), false);
                }
                Ok(None) => {
                    if !standing_by {
                        info!(destination = %config.name, "another collector exports this destination; standing by");
                        standing_by = true;
                    }
                    lock = None;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
                Err(e) => {
                    lock = None;
                    record_error(&pool, &config.name, &format!("{e:#}")).await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            }
        }
        match step(&pool, &config, pseudonyms.as_ref(), http.as_ref(), &mut connection).await {
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

/// Only one collector exports a destination at a time: a session advisory
/// lock on its name, held on a connection taken out of the pool for as long
/// as this task exports. Collectors run side by side for availability then
/// send each event once, and one standing by takes over within seconds of
/// the holder stopping (its connection closes, the lock goes with it).
async fn hold_destination(pool: &Pool, name: &str) -> Result<Option<deadpool_postgres::ClientWrapper>> {
    let client = pool.get().await?;
    let held: bool = client
        .query_one("SELECT pg_try_advisory_lock(hashtextextended('vigie-export:' || $1, 0))", &[&name])
        .await?
        .get(0);
    // Out of the pool: the lock must stay on this one session.
    Ok(held.then(|| deadpool_postgres::Object::take(client)))
}

/// One batch; returns how many events went.
async fn step(
    pool: &Pool,
    config: &ExportConfig,
    pseudonyms: Option<&Pseudonyms>,
    http: Option<&HttpSink>,
    connection: &mut Option<Connection>,
) -> Result<usize> {
    let cursor = load_cursor(pool, &config.name).await?;
    let rows = next_rows(pool, &cursor, BATCH).await?;
    let Some((last, _)) = rows.last().cloned() else {
        return Ok(0);
    };
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|(_, row)| match pseudonyms {
            Some(pseudonyms) => pseudonyms.apply(row),
            None => row,
        })
        .collect();
    let sent = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    if let Some(http) = http {
        let documents: Vec<(Uuid, String)> = rows
            .iter()
            .map(|row| {
                let document = if config.format == Format::OcsfJson { ocsf(row) } else { ecs(row) };
                (row.event_id, document.to_string())
            })
            .collect();
        let (refused, why) = http.send(&documents).await?;
        save_cursor(pool, &config.name, &last, sent).await?;
        // Refused for good (a mapping conflict): kept here, not sent again,
        // and said, so that one bad document does not stop the flow.
        if refused > 0 {
            let why = format!("{refused} documents refused by the receiver: {}", why.unwrap_or_default());
            warn!(destination = %config.name, error = %why, "documents refused");
            record_error(pool, &config.name, &why).await;
        }
        return Ok(rows.len());
    }
    let mut frames = String::new();
    for row in &rows {
        frames.push_str(&frame(&message(row, config.format, config.enterprise_number)));
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
    save_cursor(pool, &config.name, &last, sent).await?;
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
    fn bulk_answers_are_read_item_by_item() {
        assert_eq!(bulk_outcome(b"").unwrap(), (0, None), "a collector's empty 204");
        assert_eq!(bulk_outcome(br#"{"took":3,"errors":false,"items":[]}"#).unwrap(), (0, None));
        let stored_before = br#"{"errors":true,"items":[{"create":{"_id":"a","status":201}},{"create":{"_id":"b","status":409,"error":{"type":"version_conflict_engine_exception"}}}]}"#;
        assert_eq!(bulk_outcome(stored_before).unwrap(), (0, None), "409: stored by an earlier try");
        let mapping = br#"{"errors":true,"items":[{"create":{"status":400,"error":{"type":"document_parsing_exception","reason":"failed to parse field [host.id]"}}},{"create":{"status":201}}]}"#;
        assert_eq!(bulk_outcome(mapping).unwrap(), (1, Some("failed to parse field [host.id]".to_owned())));
        let busy = br#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":429,"error":{"type":"es_rejected_execution_exception"}}}]}"#;
        assert!(bulk_outcome(busy).is_err(), "429: the batch goes again");
    }

    #[test]
    fn destinations_are_syslog_or_https_not_both() {
        let parse = |text: &str| -> Result<ExportConfig> {
            let config: ExportConfig = toml::from_str(text)?;
            config.check().map(|()| config)
        };
        assert!(parse("name = \"a\"\naddress = \"127.0.0.1:514\"").is_ok());
        assert!(parse("name = \"a\"\nurl = \"http://127.0.0.1:8686/\"\nformat = \"ocsf-json\"").is_ok());
        assert!(parse("name = \"a\"\nurl = \"http://[::1]:8686/\"\nformat = \"ocsf-json\"").is_ok());
        assert!(parse(
            "name = \"a\"\nurl = \"https://es:9200/_bulk\"\nformat = \"ecs-json\"\ntls_ca = \"/ca.pem\""
        )
        .is_ok());
        for (text, why) in [
            ("name = \"a\"", "either an address"),
            ("name = \"a\"\naddress = \"h:1\"\nurl = \"https://h/\"", "not both"),
            (
                "name = \"a\"\nurl = \"http://es.example.org/_bulk\"\nformat = \"ecs-json\"",
                "only to this machine",
            ),
            (
                "name = \"a\"\nurl = \"http://127.evil.example/_bulk\"\nformat = \"ecs-json\"",
                "only to this machine",
            ),
            (
                "name = \"a\"\nurl = \"http://localhost.evil.example/\"\nformat = \"ecs-json\"",
                "only to this machine",
            ),
            ("name = \"a\"\nurl = \"ftp://es/_bulk\"\nformat = \"ecs-json\"", "neither"),
            ("name = \"a\"\nurl = \"https://es/_bulk\"\nformat = \"ecs-json\"", "needs the receiver's CA"),
            ("name = \"a\"\nurl = \"https://es/_bulk\"\ntls_ca = \"/ca.pem\"", "ecs-json or ocsf-json"),
        ] {
            let err = parse(text).map(|_| ()).unwrap_err();
            assert!(format!("{err:#}").contains(why), "{text}: {err:#}");
        }
    }

    #[test]
    fn framing_counts_octets_not_characters() {
        assert_eq!(frame("é"), "2 é");
    }
}
