//! What each console request does, and who may make it: [`authorize`]
//! applies the caller's scope (a pure function over the peer and the
//! request), [`handle`] answers. No socket here: the server in `mod.rs`
//! reads lines, parses them into [`Request`]s and writes the replies.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tracing::{info, warn};
use vigie_core::proto::{CatalogView, Hello, PolicyView, Request, MAX_LIMIT, PROTOCOL_VERSION};
use vigie_core::store::{Answer, EventFilter, Store, StoreError};

use crate::accounts::Accounts;
use crate::clipboard::{self, Reporter};
use crate::decider::Decider;
use crate::prompts::{Reply, Viewer};
use crate::resolver::ResolverStats;
use crate::rules::Rules;
use crate::verdict::VerdictStats;

/// Who is on the other end, from the kernel (SO_PEERCRED), never from what
/// the peer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub pid: Option<i32>,
    pub user: Option<String>,
    /// Root, or a member of the admin group.
    pub admin: bool,
}

impl Peer {
    /// The peer as the prompt queue sees it.
    pub fn viewer(&self) -> Viewer {
        Viewer::User { uid: self.uid, admin: self.admin }
    }
}

/// A refused or failed request: a code from agent/IPC.md and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    pub fn bad_request(e: impl std::fmt::Display) -> Self {
        Self { code: "bad-request", message: e.to_string() }
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        Self { code: "internal", message: e.to_string() }
    }

    fn forbidden() -> Self {
        Self { code: "forbidden", message: "this needs membership of the Vigie admin group".to_owned() }
    }
}

/// Read-only connections to the store, opened once and reused: a console
/// query never takes the writer's lock nor re-runs migrations.
#[derive(Debug)]
pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Store>>,
}

/// Idle reader connections kept at most.
const MAX_IDLE_READERS: usize = 4;

impl Readers {
    pub fn new(path: PathBuf) -> Self {
        Self { path, idle: Mutex::default() }
    }

    pub fn with<T>(&self, read: impl FnOnce(&Store) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let store = match idle {
            Some(store) => store,
            None => Store::open_reader(&self.path)?,
        };
        let result = read(&store);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE_READERS {
                idle.push(store);
            }
        }
        result
    }
}

/// What the console socket serves, shared with the rest of the agent.
#[derive(Debug)]
pub struct ConsoleState {
    pub rules: Arc<Rules>,
    pub decider: Arc<Decider>,
    pub readers: Readers,
    pub admin_group: String,
    pub resolver: Option<Arc<crate::resolver::Resolver>>,
    pub verdicts: Option<Arc<VerdictStats>>,
    pub interfaces: Mutex<Vec<String>>,
    pub reload_error: Mutex<Option<String>>,
    pub started: i64,
    /// Connections subscribed to prompts (the consoles, not `status`
    /// calls), per user: the tamper checks look for each session's console.
    consoles: Mutex<HashMap<u32, u64>>,
    /// What each user may take of the socket.
    pub budgets: super::Budgets,
    accounts: Mutex<(Instant, Arc<Accounts>)>,
    /// The fleet link, when the agent is enrolled.
    pub fleet: Arc<crate::fleet::FleetState>,
}

impl ConsoleState {
    /// A console of `uid` subscribed.
    pub fn console_joined(&self, uid: u32) {
        if let Ok(mut consoles) = self.consoles.lock() {
            *consoles.entry(uid).or_default() += 1;
        }
    }

    /// A console of `uid` went away.
    pub fn console_left(&self, uid: u32) {
        if let Ok(mut consoles) = self.consoles.lock() {
            if let Some(count) = consoles.get_mut(&uid) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    consoles.remove(&uid);
                }
            }
        }
    }

    /// The users with a console connected now.
    pub fn console_users(&self) -> std::collections::HashSet<u32> {
        self.consoles.lock().map(|c| c.keys().copied().collect()).unwrap_or_default()
    }

    pub fn new(rules: Arc<Rules>, decider: Arc<Decider>, readers: Readers, admin_group: String) -> Self {
        let started = decider.clock().wall_micros();
        Self {
            rules,
            decider,
            readers,
            admin_group,
            resolver: None,
            verdicts: None,
            interfaces: Mutex::default(),
            reload_error: Mutex::default(),
            started,
            consoles: Mutex::default(),
            budgets: super::Budgets::default(),
            accounts: Mutex::new((Instant::now(), Arc::new(Accounts::load()))),
            fleet: Arc::default(),
        }
    }

    /// Users and groups, re-read at most once a minute.
    pub fn accounts(&self) -> Arc<Accounts> {
        let Ok(mut cached) = self.accounts.lock() else { return Arc::new(Accounts::load()) };
        if cached.0.elapsed() > Duration::from_secs(60) {
            *cached = (Instant::now(), Arc::new(Accounts::load()));
        }
        Arc::clone(&cached.1)
    }

    #[cfg(test)]
    pub fn set_accounts(&self, accounts: Accounts) {
        if let Ok(mut cached) = self.accounts.lock() {
            *cached = (Instant::now(), Arc::new(accounts));
        }
    }

    /// The peer a connection's credentials make.
    pub fn peer(&self, uid: u32, pid: Option<i32>) -> Peer {
        let accounts = self.accounts();
        Peer {
            uid,
            pid,
            user: accounts.user_name(uid).map(str::to_owned),
            admin: uid == 0 || accounts.is_member(uid, &self.admin_group),
        }
    }
}

/// Who may call what. Everyone may greet, read the status, the policy and
/// the catalog, and see and answer their own prompts; a user reads only
/// their own events and answers (their uid is put in the request); the
/// charts, the lists of every user's values and the journal are the
/// security team's (root and the admin group).
pub fn authorize(peer: &Peer, request: Request) -> Result<Request, Failure> {
    let own = |uid: Option<u32>| -> Result<Option<u32>, Failure> {
        match uid {
            _ if peer.admin => Ok(uid),
            Some(other) if other != peer.uid => Err(Failure::forbidden()),
            _ => Ok(Some(peer.uid)),
        }
    };
    Ok(match request {
        Request::Events(mut p) => {
            p.uid = own(p.uid)?;
            Request::Events(p)
        }
        Request::Answers(mut p) => {
            p.uid = own(p.uid)?;
            Request::Answers(p)
        }
        Request::Search(mut q) => {
            q.uid = own(q.uid)?;
            Request::Search(q)
        }
        Request::Inventory(mut p) => {
            p.uid = own(p.uid)?;
            Request::Inventory(p)
        }
        Request::Aggregates | Request::Journal(_) | Request::Stats(_) | Request::Facets if !peer.admin => {
            return Err(Failure::forbidden())
        }
        other => other,
    })
}

fn stored<T: serde::Serialize>(result: Result<T, StoreError>) -> Result<Value, Failure> {
    match result {
        Ok(value) => Ok(json!(value)),
        Err(StoreError::Query(e)) => Err(Failure::bad_request(e)),
        Err(e) => Err(Failure::internal(e)),
    }
}

/// Answers an authorised request. Blocking (store reads): the server runs
/// it off the async threads.
pub fn handle(state: &ConsoleState, peer: &Peer, request: Request) -> Result<Value, Failure> {
    let readers = &state.readers;
    match authorize(peer, request)? {
        Request::Hello => Ok(json!(Hello {
            protocol: PROTOCOL_VERSION,
            agent: env!("CARGO_PKG_VERSION").to_owned(),
            uid: peer.uid,
            user: peer.user.clone(),
            admin: peer.admin,
        })),
        Request::Status => Ok(status(state)),
        Request::Subscribe => Ok(json!({ "subscribed": true })),
        Request::Prompts => Ok(json!(state.decider.prompts().open_for(peer.viewer()))),
        Request::Answer(p) => {
            let reply = match (&p.justification, &p.exception) {
                (Some(text), None) => Reply::Justify(text),
                (None, Some(text)) => Reply::RequestException(text),
                (None, None) => Reply::Acknowledge,
                (Some(_), Some(_)) => {
                    return Err(Failure::bad_request("give a justification or an exception, not both"))
                }
            };
            let now = state.decider.clock().wall_micros();
            let answered = state
                .decider
                .prompts()
                .answer(peer.viewer(), p.prompt, reply, now)
                .map_err(Failure::bad_request)?;
            info!(
                uid = peer.uid,
                service = %answered.prompt.service_id,
                answer = answered.kind.as_str(),
                "prompt answered"
            );
            state.decider.sink().answer(Answer {
                ts: now,
                uid: Some(peer.uid),
                user: peer.user.clone(),
                service_id: answered.prompt.service_id.clone(),
                action: answered.prompt.action,
                event_id: answered.prompt.event_id.clone(),
                kind: answered.kind,
                text: answered.text.clone(),
                bypass_until: answered.bypass_until,
            });
            Ok(json!(answered))
        }
        Request::Events(p) => {
            let filter =
                EventFilter { uid: p.uid, before: p.before, limit: p.limit.unwrap_or(100).min(MAX_LIMIT) };
            stored(readers.with(|store| store.events(&filter)))
        }
        Request::Answers(p) => {
            let limit = p.limit.unwrap_or(100).min(MAX_LIMIT);
            stored(readers.with(|store| store.answers(p.uid, limit)))
        }
        Request::Aggregates => stored(readers.with(Store::counts_by_service)),
        Request::Journal(p) => {
            let limit = p.limit.unwrap_or(100).min(MAX_LIMIT);
            stored(readers.with(|store| store.journal(limit)))
        }
        Request::Search(query) => stored(readers.with(|store| store.search(&query))),
        Request::Stats(query) => stored(readers.with(|store| store.stats(&query))),
        Request::Facets => stored(readers.with(Store::facets)),
        Request::Clipboard(_) if !state.budgets.clipboard_report(peer.uid, Instant::now()) => Err(Failure {
            code: "rate-limited",
            message: format!(
                "at most {} clipboard reports a minute per user",
                super::budget::CLIPBOARD_REPORTS_PER_MINUTE
            ),
        }),
        Request::Clipboard(report) => {
            let reporter = Reporter { uid: peer.uid, user: peer.user.as_deref() };
            let recent_flows = |uid, since| match readers.with(|store| store.recent_flows(uid, since)) {
                Ok(recent) => recent,
                Err(e) => {
                    // Titles still work without the store.
                    warn!(error = %e, "clipboard: recent flows unavailable");
                    Vec::new()
                }
            };
            match clipboard::report(&state.rules, &state.decider, recent_flows, reporter, &report) {
                Ok(outcome) => Ok(json!(outcome)),
                Err(e) => Err(Failure::bad_request(e)),
            }
        }
        Request::Policy => {
            let reload_error = state.reload_error.lock().ok().and_then(|e| e.clone());
            Ok(json!(PolicyView { policy: (*state.rules.policy()).clone(), reload_error }))
        }
        Request::Inventory(p) => stored(readers.with(|store| store.inventory(p.uid))),
        Request::Catalog => {
            let (catalog, _) = state.rules.current();
            Ok(json!(CatalogView { version: catalog.version.clone(), services: catalog.services().to_vec() }))
        }
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

fn status(state: &ConsoleState) -> Value {
    let policy = state.rules.policy();
    let decider = &state.decider;
    let resolver: Option<&ResolverStats> = state.resolver.as_deref().map(|r| &r.stats);
    json!({
        "agent": env!("CARGO_PKG_VERSION"),
        "protocol": PROTOCOL_VERSION,
        "pid": std::process::id(),
        "started": state.started,
        "mode": decider.mode().as_str(),
        "policy": { "name": policy.name, "version": policy.version },
        "reload_error": state.reload_error.lock().ok().and_then(|e| e.clone()),
        "capture": { "interfaces": state.interfaces.lock().map(|i| i.clone()).unwrap_or_default() },
        "resolver": resolver.map(|r| json!(r)),
        "verdicts": state.verdicts.as_ref().map(|v| json!(v)),
        "events": {
            "stored": decider.sink().stored(),
            "dropped": decider.sink().dropped(),
        },
        "attribution": percentiles(decider.owners().timings()),
        "consoles": state.consoles.lock().map_or(0, |c| c.values().sum::<u64>()),
        "console_refused": json!(state.budgets.refused),
        "open_prompts": decider.prompts().open_for(None).len(),
        "fleet": fleet_status(state),
        // `[export]`: each destination's cursor, count and last error.
        "exports": state.readers.with(|store| store.local_export_states()).unwrap_or_default(),
        "inventory": inventory_status(state, &policy),
    })
}

/// The software inventory: on or off, its finds per kind, its last change.
fn inventory_status(state: &ConsoleState, policy: &vigie_core::policy::Policy) -> Value {
    let summary = state.readers.with(|store| store.inventory_summary()).unwrap_or_default();
    let finds: i64 = summary.kinds.iter().map(|(_, n)| n).sum();
    json!({
        "enabled": policy.inventory.enabled,
        "finds": finds,
        "kinds": summary.kinds.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "last_change": summary.last_change,
    })
}

/// The fleet link: the collector, this agent's id, the bundle in force and
/// the outbox (backlog, last success, last error); null when not enrolled.
fn fleet_status(state: &ConsoleState) -> Value {
    let Some(enrolment) = state.fleet.enrolment.lock().ok().and_then(|e| e.clone()) else {
        return Value::Null;
    };
    let outbox = state.readers.with(|store| store.outbox_state()).ok().flatten();
    json!({
        "collector": enrolment.url,
        "agent_id": enrolment.agent_id,
        "group": enrolment.group,
        "certificate_expires": enrolment.not_after,
        "bundle_version": state.fleet.bundle_version.lock().ok().and_then(|v| *v),
        "outbox": outbox,
    })
}

#[cfg(test)]
mod tests;
