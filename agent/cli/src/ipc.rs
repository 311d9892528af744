//! The console socket (protocol in agent/IPC.md): JSON lines over a Unix
//! socket, each peer identified by SO_PEERCRED. A user sees and answers
//! only their own prompts and events; root and members of the admin group
//! may read everything. Nothing here can change the policy.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, info, warn};
use vigie_core::proto::{
    AnswerParams, CatalogView, ClipboardReport, EventQuery, Hello, PolicyView, Prompt, Push, MAX_LIMIT,
    PROTOCOL_VERSION,
};
use vigie_core::store::{Answer, EventFilter, Store, StoreError};

use crate::accounts::Accounts;
use crate::attribution::OwnerLookup;
use crate::clipboard::{self, Reporter};
use crate::prompts::{Prompts, Reply};
use crate::resolver::Resolver;
use crate::run::{now_micros, Record, Rules};
use crate::verdict::VerdictStats;

pub(crate) const DEFAULT_SOCKET: &str = "/run/vigie/agent.sock";
/// A request line longer than this closes the connection.
const MAX_LINE: usize = 64 * 1024;
const MAX_CONNECTIONS: usize = 64;
/// Connections one user may hold, so that no user can lock the others
/// (administrators included) out of the socket. Root is not limited.
const MAX_CONNECTIONS_PER_USER: usize = 8;

/// What the socket serves, shared with the rest of the agent.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) rules: Arc<Rules>,
    pub(crate) prompts: Arc<Prompts>,
    pub(crate) resolver: Option<Arc<Resolver>>,
    pub(crate) owners: Arc<dyn OwnerLookup>,
    pub(crate) records: SyncSender<Record>,
    pub(crate) dropped: Arc<AtomicU64>,
    pub(crate) stored: Arc<AtomicU64>,
    pub(crate) database: PathBuf,
    pub(crate) admin_group: String,
    pub(crate) enforce: bool,
    pub(crate) verdicts: Option<Arc<VerdictStats>>,
    pub(crate) interfaces: Mutex<Vec<String>>,
    pub(crate) reload_error: Mutex<Option<String>>,
    pub(crate) started: i64,
    pub(crate) consoles: AtomicU64,
    accounts: Mutex<(Instant, Arc<Accounts>)>,
    connections_per_user: Mutex<std::collections::HashMap<u32, usize>>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        rules: Arc<Rules>,
        prompts: Arc<Prompts>,
        resolver: Option<Arc<Resolver>>,
        owners: Arc<dyn OwnerLookup>,
        records: SyncSender<Record>,
        dropped: Arc<AtomicU64>,
        stored: Arc<AtomicU64>,
        database: PathBuf,
        admin_group: String,
        enforce: bool,
        verdicts: Option<Arc<VerdictStats>>,
    ) -> Self {
        Self {
            rules,
            prompts,
            resolver,
            owners,
            records,
            dropped,
            stored,
            database,
            admin_group,
            enforce,
            verdicts,
            interfaces: Mutex::default(),
            reload_error: Mutex::default(),
            started: now_micros(),
            consoles: AtomicU64::new(0),
            accounts: Mutex::new((Instant::now(), Arc::new(Accounts::load()))),
            connections_per_user: Mutex::default(),
        }
    }

    /// Users and groups, re-read at most once a minute.
    pub(crate) fn accounts(&self) -> Arc<Accounts> {
        let Ok(mut cached) = self.accounts.lock() else { return Arc::new(Accounts::load()) };
        if cached.0.elapsed() > Duration::from_secs(60) {
            *cached = (Instant::now(), Arc::new(Accounts::load()));
        }
        Arc::clone(&cached.1)
    }
}

/// Binds the socket (replacing a stale one), open to every local user:
/// what each may do is decided per request from its credentials.
pub(crate) fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale {}", path.display())),
    }
    let listener = UnixListener::bind(path).with_context(|| format!("console socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("console socket {}", path.display()))?;
    Ok(listener)
}

pub(crate) async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!(error = %e, "console socket accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            warn!("too many console connections, refusing one");
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection(stream, &shared).await {
                debug!(error = %e, "console connection ended");
            }
        });
    }
}

/// Who is on the other end, from the kernel (SO_PEERCRED), never from what
/// the peer says.
#[derive(Debug, Clone)]
struct Peer {
    uid: u32,
    pid: Option<i32>,
    user: Option<String>,
    admin: bool,
}

async fn connection(stream: UnixStream, shared: &Shared) -> Result<()> {
    let cred = stream.peer_cred().context("peer credentials")?;
    let accounts = shared.accounts();
    let uid = cred.uid();
    let peer = Peer {
        uid,
        pid: cred.pid(),
        user: accounts.user_name(uid).map(str::to_owned),
        admin: uid == 0 || accounts.is_member(uid, &shared.admin_group),
    };
    debug!(uid, pid = ?peer.pid, admin = peer.admin, "console connected");
    let admitted = shared.connections_per_user.lock().is_ok_and(|mut per_user| {
        let held = per_user.entry(uid).or_insert(0);
        let admitted = uid == 0 || *held < MAX_CONNECTIONS_PER_USER;
        if admitted {
            *held += 1;
        }
        admitted
    });
    if !admitted {
        let (_, mut writer) = stream.into_split();
        let mut line = error_line(None, "too-many-connections", "this user holds too many connections");
        line.push('\n');
        let _ = writer.write_all(line.as_bytes()).await;
        return Ok(());
    }
    let result = serve_connection(stream, shared, &peer).await;
    if let Ok(mut per_user) = shared.connections_per_user.lock() {
        if let Some(held) = per_user.get_mut(&uid) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                per_user.remove(&uid);
            }
        }
    }
    result
}

async fn serve_connection(stream: UnixStream, shared: &Shared, peer: &Peer) -> Result<()> {
    let peer = peer.clone();
    shared.consoles.fetch_add(1, Ordering::Relaxed);
    let (reader, mut writer) = stream.into_split();
    let (out, mut outgoing) = mpsc::channel::<String>(256);
    let write = tokio::spawn(async move {
        while let Some(mut line) = outgoing.recv().await {
            line.push('\n');
            if writer.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    let mut subscription: Option<tokio::task::JoinHandle<()>> = None;
    let result = loop {
        line.clear();
        // Read at most one byte past the limit, so a huge line cannot fill memory.
        let read = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line).await;
        match read {
            Ok(0) => break Ok(()),
            Ok(_) if line.len() > MAX_LINE => {
                let _ = out.send(error_line(None, "bad-request", "request line too long")).await;
                break Ok(());
            }
            Ok(_) => {}
            Err(e) => break Err(e.into()),
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Envelope>(&text) {
            Ok(envelope) => {
                if envelope.method == "subscribe" && subscription.is_none() {
                    subscription =
                        Some(tokio::spawn(push_prompts(shared.prompts.subscribe(), peer.uid, out.clone())));
                }
                let id = envelope.id;
                match handle(shared, &peer, envelope).await {
                    Ok(result) => json!({ "id": id, "result": result }).to_string(),
                    Err(Failure(code, message)) => error_line(id, code, &message),
                }
            }
            Err(e) => error_line(None, "bad-request", &format!("not a request: {e}")),
        };
        if out.send(reply).await.is_err() {
            break Ok(());
        }
    };
    if let Some(task) = subscription {
        task.abort();
    }
    drop(out);
    let _ = write.await;
    shared.consoles.fetch_sub(1, Ordering::Relaxed);
    result
}

async fn push_prompts(
    mut updates: tokio::sync::broadcast::Receiver<Prompt>,
    uid: u32,
    out: mpsc::Sender<String>,
) {
    loop {
        match updates.recv().await {
            Ok(prompt) if prompt.uid.is_none() || prompt.uid == Some(uid) => {
                if out.send(json!(Push::Prompt { prompt: Box::new(prompt) }).to_string()).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            // A slow console missed some: it can list the open prompts again.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                let _ = out.send(json!(Push::Lagged { missed }).to_string()).await;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn error_line(id: Option<u64>, code: &str, message: &str) -> String {
    json!({ "id": id, "error": { "code": code, "message": message } }).to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    id: Option<u64>,
    method: String,
    #[serde(default)]
    params: Value,
}

struct Failure(&'static str, String);

fn bad_request(e: impl std::fmt::Display) -> Failure {
    Failure("bad-request", e.to_string())
}

fn params<T: for<'de> Deserialize<'de> + Default>(value: Value) -> Result<T, Failure> {
    if value.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(value).map_err(|e| bad_request(format!("params: {e}")))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<u32>,
    before: Option<i64>,
    /// Administrators only: one user's events.
    uid: Option<u32>,
}

fn forbidden() -> Failure {
    Failure("forbidden", "this needs membership of the Vigie admin group".to_owned())
}

async fn handle(shared: &Shared, peer: &Peer, envelope: Envelope) -> Result<Value, Failure> {
    let internal = |e: &dyn std::fmt::Display| Failure("internal", e.to_string());
    match envelope.method.as_str() {
        "hello" => Ok(json!(Hello {
            protocol: PROTOCOL_VERSION,
            agent: env!("CARGO_PKG_VERSION").to_owned(),
            uid: peer.uid,
            user: peer.user.clone(),
            admin: peer.admin,
        })),
        "status" => Ok(status(shared)),
        "subscribe" => Ok(json!({ "subscribed": true })),
        "prompts" => Ok(json!(shared.prompts.open_for(Some(peer.uid)))),
        "answer" => {
            let p: AnswerParams = params(envelope.params)?;
            let reply = match (&p.justification, &p.exception) {
                (Some(text), None) => Reply::Justify(text),
                (None, Some(text)) => Reply::RequestException(text),
                (None, None) => Reply::Acknowledge,
                (Some(_), Some(_)) => {
                    return Err(bad_request("give a justification or an exception, not both"))
                }
            };
            let now = now_micros();
            let answered =
                shared.prompts.answer(Some(peer.uid), p.prompt, reply, now).map_err(bad_request)?;
            info!(
                uid = peer.uid,
                service = %answered.prompt.service_id,
                answer = answered.kind.as_str(),
                "prompt answered"
            );
            let record = Record::Answer(Answer {
                ts: now,
                uid: Some(peer.uid),
                user: peer.user.clone(),
                service_id: answered.prompt.service_id.clone(),
                action: answered.prompt.action,
                event_id: answered.prompt.event_id.clone(),
                kind: answered.kind.as_str().to_owned(),
                text: answered.text.clone(),
                bypass_until: answered.bypass_until,
            });
            if shared.records.try_send(record).is_err() {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Ok(json!(answered))
        }
        "events" | "answers" | "aggregates" | "journal" => {
            let method = envelope.method.clone();
            let p: ListParams = params(envelope.params)?;
            let admin_only = matches!(method.as_str(), "aggregates" | "journal");
            if (admin_only || p.uid.is_some_and(|uid| uid != peer.uid)) && !peer.admin {
                return Err(forbidden());
            }
            let uid = if peer.admin { p.uid } else { Some(peer.uid) };
            let limit = p.limit.unwrap_or(100).min(MAX_LIMIT);
            let database = shared.database.clone();
            let before = p.before;
            tokio::task::spawn_blocking(move || -> Result<Value, String> {
                let store = Store::open(&database).map_err(|e| e.to_string())?;
                let value = match method.as_str() {
                    "events" => {
                        json!(store.events(&EventFilter { uid, before, limit }).map_err(|e| e.to_string())?)
                    }
                    "answers" => json!(store.answers(uid, limit).map_err(|e| e.to_string())?),
                    "aggregates" => json!(store.counts_by_service().map_err(|e| e.to_string())?),
                    _ => json!(store.journal(limit).map_err(|e| e.to_string())?),
                };
                Ok(value)
            })
            .await
            .map_err(|e| internal(&e))?
            .map_err(|e| internal(&e))
        }
        "search" | "stats" | "facets" => {
            let method = envelope.method.clone();
            let mut query: EventQuery = params(envelope.params)?;
            // A user reads their own events only; the charts and the lists
            // of every user's values are the security team's.
            if method != "search" && !peer.admin {
                return Err(forbidden());
            }
            if !peer.admin {
                if query.uid.is_some_and(|uid| uid != peer.uid) {
                    return Err(forbidden());
                }
                query.uid = Some(peer.uid);
            }
            let database = shared.database.clone();
            tokio::task::spawn_blocking(move || -> Result<Value, Failure> {
                let store = Store::open(&database).map_err(|e| internal(&e))?;
                let value = match method.as_str() {
                    "search" => store.search(&query).map(|page| json!(page)),
                    "stats" => store.stats(&query).map(|stats| json!(stats)),
                    _ => store.facets().map(|facets| json!(facets)),
                };
                value.map_err(|e| match e {
                    StoreError::Query(e) => bad_request(e),
                    e => internal(&e),
                })
            })
            .await
            .map_err(|e| internal(&e))?
        }
        "clipboard" => {
            let report: ClipboardReport = params(envelope.params)?;
            let reporter = Reporter { uid: peer.uid, user: peer.user.as_deref() };
            // Reads the store (recent flows): keep it off the other tasks' way.
            let outcome = tokio::task::block_in_place(|| clipboard::report(shared, reporter, &report));
            match outcome {
                Ok(outcome) => Ok(json!(outcome)),
                Err(e) if e.is_bad_request() => Err(bad_request(e)),
                Err(e) => Err(internal(&e)),
            }
        }
        "policy" => {
            let current = shared.rules.current.read().map_err(|_| internal(&"rules lock poisoned"))?;
            let reload_error = shared.reload_error.lock().ok().and_then(|e| e.clone());
            Ok(json!(PolicyView { policy: (*current.1).clone(), reload_error }))
        }
        "catalog" => {
            let current = shared.rules.current.read().map_err(|_| internal(&"rules lock poisoned"))?;
            Ok(json!(CatalogView {
                version: current.0.version.clone(),
                services: current.0.services().to_vec()
            }))
        }
        other => Err(Failure("unknown-method", format!("unknown method `{other}`"))),
    }
}

/// Count, median, 99th percentile and maximum of attribution times (µs).
fn percentiles(mut micros: Vec<u32>) -> Value {
    micros.sort_unstable();
    let at = |q: f64| {
        let index = ((micros.len() as f64 - 1.0) * q).round() as usize;
        micros.get(index).copied()
    };
    json!({ "count": micros.len(), "p50_us": at(0.5), "p99_us": at(0.99), "max_us": micros.last() })
}

fn status(shared: &Shared) -> Value {
    let (policy_name, policy_version) =
        shared.rules.current.read().map(|c| (c.1.name.clone(), c.1.version.clone())).unwrap_or_default();
    json!({
        "agent": env!("CARGO_PKG_VERSION"),
        "protocol": PROTOCOL_VERSION,
        "pid": std::process::id(),
        "started": shared.started,
        "mode": if shared.enforce { "enforce" } else { "monitor" },
        "policy": { "name": policy_name, "version": policy_version },
        "reload_error": shared.reload_error.lock().ok().and_then(|e| e.clone()),
        "capture": { "interfaces": shared.interfaces.lock().map(|i| i.clone()).unwrap_or_default() },
        "resolver": shared.resolver.as_ref().map(|r| json!(r.stats)),
        "verdicts": shared.verdicts.as_ref().map(|v| json!(v)),
        "events": {
            "stored": shared.stored.load(Ordering::Relaxed),
            "dropped": shared.dropped.load(Ordering::Relaxed),
        },
        "attribution": percentiles(shared.owners.timings()),
        "consoles": shared.consoles.load(Ordering::Relaxed),
        "open_prompts": shared.prompts.open_for(None).len(),
    })
}
