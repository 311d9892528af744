//! A workstation's own SIEM lines (`[export]` in `agent.toml`): without a
//! collector, or beside one, the agent writes each event as one ECS or OCSF
//! JSON document (the collector's mapping, `vigie_core::siem`) to a file
//! and/or to the journal, for a shipper already in place (journald
//! forwarding, rsyslog's imjournal or imfile, Vector, Fluent Bit).
//!
//! Each destination reads the store after its own cursor and moves it only
//! once the lines are written (`fdatasync` for the file, accepted by the
//! journal's socket): a full disk or a stopped journald loses nothing, a
//! crash between the write and the cursor writes a line twice (at least
//! once). A file is opened again for every batch, so that logrotate's
//! rename-and-create works, and a line cut short by a failed write is ended
//! before the next one.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use tracing::{info, warn};
use uuid::Uuid;
use vigie_core::siem::{self, LineFormat, Pseudonyms, Row};
use vigie_core::store::Store;

use crate::platform::portable::{with_mode, JournalSender, HAS_JOURNAL};
use crate::worker::Worker;

/// Events read and written at a time.
const BATCH: u32 = 500;
/// How often the store is looked at when there is nothing to write.
const IDLE: Duration = Duration::from_secs(1);
/// The longest wait before trying a failing destination again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often a thread that ended is started again.
const RESTART_EVERY: Duration = Duration::from_secs(5);
/// journald's native protocol socket (systemd.journal-fields(7)).
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// The journal's `SYSLOG_IDENTIFIER` of the lines, so that a shipper can
/// take them alone (`journalctl -t vigie-events`).
pub const JOURNAL_IDENTIFIER: &str = "vigie-events";
/// Derives this workstation's id from `/etc/machine-id` without exposing
/// it, as `sd_id128_get_machine_app_specific()` does.
const APP_ID: [u8; 16] = *b"vigie-agent-siem";

/// `[export]` in `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// `ecs` or `ocsf`.
    pub format: LineFormat,
    /// Append one document per line to this file (created 0640).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Send each document to the journal as `MESSAGE`, with `VIGIE_*` fields.
    #[serde(default)]
    pub journald: bool,
    /// Replace user names (and their home folder in program paths) with
    /// keyed pseudonyms; the key stays in the agent's state folder.
    #[serde(default)]
    pub pseudonymise: bool,
}

impl ExportConfig {
    /// What is wrong with the section, if anything.
    pub fn check(&self) -> Result<()> {
        if self.file.is_none() && !self.journald {
            bail!("[export] writes nowhere: set `file`, `journald = true`, or both");
        }
        if self.journald && !HAS_JOURNAL {
            bail!("[export] journald: the systemd journal exists on Linux only; set `file` instead");
        }
        if let Some(file) = &self.file {
            if !file.is_absolute() {
                bail!("[export] file must be an absolute path, not {}", file.display());
            }
        }
        Ok(())
    }
}

/// Where the lines go.
trait Destination: Send {
    /// The cursor's name in the store.
    fn name(&self) -> &'static str;
    fn write(&mut self, lines: &[String], rows: &[Row]) -> Result<()>;
}

struct FileDestination {
    path: PathBuf,
}

impl Destination for FileDestination {
    fn name(&self) -> &'static str {
        "file"
    }

    fn write(&mut self, lines: &[String], _rows: &[Row]) -> Result<()> {
        let path = &self.path;
        let mut file = with_mode(std::fs::OpenOptions::new().create(true).append(true).read(true), 0o640)
            .open(path)
            .with_context(|| path.display().to_string())?;
        let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 1);
        // A write cut short last time left a partial line: end it, so that
        // a shipper reads that one as broken and the next ones whole.
        let len = file.metadata().with_context(|| path.display().to_string())?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            // Appends go to the end whatever the position: reading moves it only.
            file.seek(SeekFrom::Start(len - 1))
                .and_then(|_| file.read_exact(&mut last))
                .with_context(|| path.display().to_string())?;
            if last[0] != b'\n' {
                text.push('\n');
            }
        }
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        file.write_all(text.as_bytes()).with_context(|| path.display().to_string())?;
        file.sync_data().with_context(|| path.display().to_string())?;
        Ok(())
    }
}

struct JournalDestination {
    socket: PathBuf,
    format: LineFormat,
    sender: JournalSender,
}

impl Destination for JournalDestination {
    fn name(&self) -> &'static str {
        "journald"
    }

    fn write(&mut self, lines: &[String], rows: &[Row]) -> Result<()> {
        for (line, row) in lines.iter().zip(rows) {
            let entry = journal_entry(line, row, self.format);
            self.sender.send_to(&entry, &self.socket).with_context(|| self.socket.display().to_string())?;
        }
        Ok(())
    }
}

/// One entry of journald's native protocol: `KEY=value` lines, or, for a
/// value that holds a newline, `KEY`, its length (64-bit little endian),
/// the bytes and a newline. Written by hand: the protocol is these few
/// lines, and tracing-journald sends only tracing's own events.
fn journal_entry(line: &str, row: &Row, format: LineFormat) -> Vec<u8> {
    let priority = match row.action.as_str() {
        "block" | "alert" => "4",
        "warn" | "coach" => "5",
        _ => "6",
    };
    let format = match format {
        LineFormat::Ecs => "ecs",
        LineFormat::Ocsf => "ocsf",
    };
    let mut out = Vec::with_capacity(line.len() + 256);
    let event_id = row.event_id.to_string();
    let fields = [
        ("MESSAGE", line),
        ("SYSLOG_IDENTIFIER", JOURNAL_IDENTIFIER),
        ("PRIORITY", priority),
        ("VIGIE_FORMAT", format),
        ("VIGIE_EVENT_ID", event_id.as_str()),
        ("VIGIE_SOURCE", row.source.as_str()),
        ("VIGIE_SERVICE", row.service_id.as_str()),
        ("VIGIE_ACTION", row.action.as_str()),
        ("VIGIE_RULE", row.rule_id.as_str()),
    ];
    for (key, value) in fields {
        out.extend_from_slice(key.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value.as_bytes());
        } else {
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
        }
        out.push(b'\n');
    }
    out
}

/// Which workstation the lines come from.
#[derive(Debug, Clone)]
struct Workstation {
    agent_id: Uuid,
    hostname: String,
}

impl Workstation {
    /// The fleet's agent id once enrolled, else one derived from
    /// `/etc/machine-id` (stable, and not the machine id itself).
    fn here(state_dir: &Path) -> Workstation {
        let enrolled = vigie_fleet::client::FleetDir::new(state_dir).enrolment().ok().flatten();
        let agent_id = enrolled
            .and_then(|e| Uuid::parse_str(&e.agent_id).ok())
            .or_else(|| {
                std::fs::read_to_string("/etc/machine-id").ok().and_then(|id| app_specific(id.trim()))
            })
            .unwrap_or_default();
        Workstation { agent_id, hostname: crate::fleet::hostname() }
    }
}

/// HMAC-SHA-256 keyed by the machine id over [`APP_ID`], as a version 4
/// UUID: what `sd_id128_get_machine_app_specific()` computes.
fn app_specific(machine_id: &str) -> Option<Uuid> {
    use hmac::Mac as _;
    let key = hex::decode(machine_id).ok().filter(|k| k.len() == 16)?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(&APP_ID);
    let digest = mac.finalize().into_bytes();
    let bytes: [u8; 16] = digest.get(..16)?.try_into().ok()?;
    Some(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// The destination key of the pseudonyms, made once (0600).
fn pseudonym_key(state_dir: &Path) -> Result<Vec<u8>> {
    let path = state_dir.join("export-pseudonyms.key");
    match std::fs::read(&path) {
        Ok(key) if key.len() == 32 => return Ok(key),
        Ok(_) => bail!("{}: not a 32-byte key; remove it to make a new one", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| path.display().to_string()),
    }
    let key: [u8; 32] = rand::random();
    let mut file = with_mode(std::fs::OpenOptions::new().create_new(true).write(true), 0o600)
        .open(&path)
        .with_context(|| path.display().to_string())?;
    file.write_all(&key).and_then(|()| file.sync_all()).with_context(|| path.display().to_string())?;
    Ok(key.to_vec())
}

/// One destination and when it may be tried again.
struct Slot {
    destination: Box<dyn Destination>,
    retry_at: Option<Instant>,
    backoff: Duration,
    last_error: Option<String>,
}

/// Writes until `stop`: what the export thread runs.
fn run(
    config: &ExportConfig,
    database: &Path,
    state_dir: &Path,
    journal_socket: &Path,
    stop: &AtomicBool,
) -> Result<()> {
    let mut store = Store::open(database).with_context(|| database.display().to_string())?;
    let pseudonyms =
        if config.pseudonymise { Some(Pseudonyms::new(pseudonym_key(state_dir)?)) } else { None };
    let workstation = Workstation::here(state_dir);
    let mut destinations: Vec<Box<dyn Destination>> = Vec::new();
    if let Some(path) = &config.file {
        destinations.push(Box::new(FileDestination { path: path.clone() }));
    }
    if config.journald {
        // A journald that stops reading must not hold this thread (and the
        // agent's stop, which waits for it) for ever: the batch goes again.
        let sender = JournalSender::new(Duration::from_secs(5))?;
        destinations.push(Box::new(JournalDestination {
            socket: journal_socket.to_owned(),
            format: config.format,
            sender,
        }));
    }
    // Each destination's row, made once; the loop only reads it.
    for destination in &destinations {
        store.local_export_open(destination.name())?;
    }
    let mut slots: Vec<Slot> = destinations
        .into_iter()
        .map(|destination| Slot {
            destination,
            retry_at: None,
            backoff: Duration::from_secs(1),
            last_error: None,
        })
        .collect();
    info!(
        format = ?config.format,
        file = ?config.file,
        journald = config.journald,
        pseudonymise = config.pseudonymise,
        agent = %workstation.agent_id,
        "writing events as SIEM lines"
    );
    while !stop.load(Ordering::Relaxed) {
        let mut busy = false;
        for slot in &mut slots {
            if slot.retry_at.is_some_and(|at| Instant::now() < at) {
                continue;
            }
            let name = slot.destination.name();
            let cursor = store.local_export_cursor(name)?;
            let batch = store.events_after(cursor, BATCH)?;
            let Some(last_seq) = batch.last().map(|(seq, _)| *seq) else { continue };
            let rows: Vec<Row> = batch
                .iter()
                .map(|(_, event)| {
                    let row = Row::from_event(event, workstation.agent_id, &workstation.hostname);
                    match &pseudonyms {
                        Some(p) => p.apply(row),
                        None => row,
                    }
                })
                .collect();
            let lines: Vec<String> = rows.iter().map(|row| siem::line(row, config.format)).collect();
            let now = crate::platform::now_micros();
            match slot.destination.write(&lines, &rows) {
                Ok(()) => {
                    store.local_export_acked(name, last_seq, lines.len() as u64, now)?;
                    if slot.last_error.take().is_some() {
                        info!(destination = name, "SIEM lines written again");
                    }
                    slot.retry_at = None;
                    slot.backoff = Duration::from_secs(1);
                    busy |= batch.len() == BATCH as usize;
                }
                Err(e) => {
                    let why = format!("{e:#}");
                    store.local_export_failed(name, &why, now)?;
                    if slot.last_error.as_deref() != Some(&why) {
                        warn!(destination = name, error = %why, "cannot write SIEM lines; kept, tried again");
                    }
                    slot.last_error = Some(why);
                    slot.retry_at = Some(Instant::now() + slot.backoff);
                    slot.backoff = (slot.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        if !busy {
            sleep_unless_stopped(IDLE, stop);
        }
    }
    Ok(())
}

fn sleep_unless_stopped(wait: Duration, stop: &AtomicBool) {
    let until = Instant::now() + wait;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// The export thread: started when `[export]` is set, started again after
/// it ended on an error.
pub struct LocalExport {
    config: Option<ExportConfig>,
    database: PathBuf,
    state_dir: PathBuf,
    journal_socket: PathBuf,
    writing: Worker,
}

impl std::fmt::Debug for LocalExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalExport").field("config", &self.config).field("writing", &self.writing).finish()
    }
}

impl LocalExport {
    /// The export `config` asks for, of the events in `database`, with its
    /// position kept in `state_dir`.
    pub fn new(config: Option<ExportConfig>, database: &Path, state_dir: &Path) -> Self {
        Self::with_journal(config, database, state_dir, Path::new(JOURNAL_SOCKET))
    }

    /// With another journal socket (tests).
    pub fn with_journal(
        config: Option<ExportConfig>,
        database: &Path,
        state_dir: &Path,
        journal_socket: &Path,
    ) -> Self {
        Self {
            config,
            database: database.to_owned(),
            state_dir: state_dir.to_owned(),
            journal_socket: journal_socket.to_owned(),
            writing: Worker::new("SIEM export", RESTART_EVERY),
        }
    }

    pub fn poll(&mut self) {
        let Some(config) = &self.config else { return };
        if self.writing.is_running() || !self.writing.due() {
            return;
        }
        let (config, database, state_dir, socket) =
            (config.clone(), self.database.clone(), self.state_dir.clone(), self.journal_socket.clone());
        self.writing.start("siem-export", move |stop| run(&config, &database, &state_dir, &socket, stop));
    }

    /// Stops the thread and waits for it: it is never inside a long call
    /// (the journal's socket times out).
    pub fn stop(&mut self) {
        self.writing.stop(true);
    }
}

#[cfg(test)]
mod tests;
