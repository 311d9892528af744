//! `vigie-agent run`: the live agent. Captures on the chosen interfaces,
//! runs each frame through the same pipeline as `scan`, logs every decision
//! about a GenAI service and stores it as an event. The policy and catalog
//! files are watched and reloaded; a bad edit keeps the rules in force.
//! Monitor mode (the default) changes nothing on the machine; enforcement
//! adds the local resolver, which answers denied names itself.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use tracing::{error, info, warn};
use vigie_core::catalog::Catalog;
use vigie_core::diag::{Diagnostic, Diagnostics, LoadError};
use vigie_core::event::{coalesce, Event};
use vigie_core::pipeline::Pipeline;
use vigie_core::policy::{ActivePolicy, FailureMode, Policy};
use vigie_core::sensor::Sensor;
use vigie_core::store::{Answer, JournalEntry, Store, StoreError};

use crate::attribution::{self, OwnerLookup};
use crate::ipc::{self, Shared};
use crate::prompts::Prompts;
use crate::resolver::{OwnTraffic, Resolver, ResolverConfig};
use crate::verdict::{self, VerdictConfig};

pub(crate) const DEFAULT_CONFIG: &str = "/etc/vigie/agent.toml";

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Agent configuration (default: /etc/vigie/agent.toml when it exists, else built-in defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Capture on this interface (repeatable); overrides the configuration.
    #[arg(long = "interface", short = 'i')]
    interfaces: Vec<String>,
    /// Store events in this database; overrides the configuration.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Enforce the policy (local resolver); overrides the configuration.
    #[arg(long)]
    enforce: bool,
    /// Serve the console on this socket; overrides the configuration.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Copy every frame to user space (benchmarks of the kernel filter).
    #[arg(long, hide = true)]
    no_kernel_filter: bool,
}

/// `/etc/vigie/agent.toml`. Every key is optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentConfig {
    /// Policy file (default: the bundled R34 baseline).
    policy: Option<PathBuf>,
    /// Catalog file (default: the bundled catalog).
    catalog: Option<PathBuf>,
    #[serde(default = "default_database")]
    database: PathBuf,
    /// Interfaces to capture on; empty: every interface that is up, but loopback.
    #[serde(default)]
    interfaces: Vec<String>,
    #[serde(default = "default_retention_days")]
    retention_days: u32,
    /// Enforce the policy: run the local resolver. Off: monitor mode.
    #[serde(default)]
    enforce: bool,
    #[serde(default)]
    resolver: ResolverConfig,
    #[serde(default)]
    verdicts: VerdictConfig,
    /// The console socket.
    #[serde(default = "default_socket")]
    socket: PathBuf,
    /// Members of this group (and root) may read every user's events.
    #[serde(default = "default_admin_group")]
    admin_group: String,
}

fn default_socket() -> PathBuf {
    PathBuf::from(crate::ipc::DEFAULT_SOCKET)
}

fn default_admin_group() -> String {
    "vigie-admin".to_owned()
}

fn default_database() -> PathBuf {
    PathBuf::from("/var/lib/vigie/events.db")
}

fn default_retention_days() -> u32 {
    90
}

fn load_config(path: Option<&Path>) -> Result<AgentConfig> {
    let path = match path {
        Some(path) => path.to_owned(),
        None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok(toml::from_str("")?),
    };
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let name = path.display().to_string();
    let config: AgentConfig =
        toml::from_str(&text).map_err(|e| Diagnostics(vec![Diagnostic::from_toml(&name, &text, &e)]))?;
    Ok(config)
}

/// The catalog and policy in force, shared with the capture threads, which
/// pick up a new generation between frames.
#[derive(Debug)]
pub(crate) struct Rules {
    pub(crate) current: RwLock<(Arc<Catalog>, Arc<Policy>)>,
    pub(crate) generation: AtomicU64,
}

fn load_rules(config: &AgentConfig) -> Result<(Catalog, Policy), LoadError> {
    let catalog = match &config.catalog {
        Some(path) => Catalog::load(path)?,
        None => Catalog::bundled()?,
    };
    let policy = match &config.policy {
        Some(path) => Policy::load(path, &catalog)?,
        None => Policy::bundled(&catalog)?,
    };
    Ok((catalog, policy))
}

pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub(crate) fn run(args: &RunArgs) -> Result<()> {
    let mut config = load_config(args.config.as_deref())?;
    if !args.interfaces.is_empty() {
        config.interfaces.clone_from(&args.interfaces);
    }
    if let Some(db) = &args.db {
        config.database.clone_from(db);
    }
    config.enforce |= args.enforce;
    if let Some(socket) = &args.socket {
        config.socket.clone_from(socket);
    }
    let (catalog, policy) = load_rules(&config).context("rules rejected")?;
    info!(policy = %policy.name, version = %policy.version, services = catalog.services().len(), "rules loaded");
    let mut active = ActivePolicy::new(policy);
    let rules = Arc::new(Rules {
        current: RwLock::new((Arc::new(catalog), Arc::clone(active.current()))),
        generation: AtomicU64::new(0),
    });

    if let Some(parent) = config.database.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
    }
    let mut store = Store::open(&config.database).with_context(|| config.database.display().to_string())?;
    store.apply_retention(now_micros(), config.retention_days)?;
    record_start(&mut store, &config, active.current())?;

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }

    // Rules reload when their files change. Editors replace files, so the
    // folders are watched and events filtered by file name.
    let watched: Vec<PathBuf> = [&config.policy, &config.catalog].into_iter().flatten().cloned().collect();
    let names: Vec<std::ffi::OsString> =
        watched.iter().filter_map(|p| p.file_name().map(Into::into)).collect();
    let (reload_tx, reload_rx) = sync_channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
        Ok(event) => {
            let ours =
                event.paths.iter().any(|p| p.file_name().is_some_and(|n| names.iter().any(|w| w == n)));
            if ours && !event.kind.is_access() {
                let _ = reload_tx.try_send(());
            }
        }
        // A lost event may have been a change: reload to be sure.
        Err(e) => {
            warn!(error = %e, "file watch error");
            let _ = reload_tx.try_send(());
        }
    })?;
    for path in &watched {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        notify::Watcher::watch(&mut watcher, folder, notify::RecursiveMode::NonRecursive)
            .with_context(|| format!("watching {}", folder.display()))?;
    }

    let (events_tx, events_rx) = sync_channel::<Record>(8192);
    let dropped = Arc::new(AtomicU64::new(0));
    let stored = Arc::new(AtomicU64::new(0));
    let retention_days = config.retention_days;
    let writer = {
        let stored = Arc::clone(&stored);
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || write_events(store, &events_rx, retention_days, &stored))?
    };

    // The resolver and the console socket are network services: tokio.
    // Capture stays on plain threads, each blocked on its socket.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vigie-io")
        .enable_all()
        .build()
        .context("starting the I/O runtime")?;
    let prompts = Arc::new(Prompts::default());
    let owners = attribution::for_this_platform();
    let mut own_traffic = Arc::new(OwnTraffic::default());
    let mut resolver = None;
    if config.enforce {
        let (started, own) = runtime
            .block_on(Resolver::start(
                &config.resolver,
                Arc::clone(&rules),
                Arc::clone(&prompts),
                Arc::clone(&owners),
                events_tx.clone(),
                Arc::clone(&dropped),
                Arc::clone(&stop),
            ))
            .context("enforcement needs the local resolver")?;
        own_traffic = own;
        resolver = Some(started);
    }
    let mut link = verdict::Link::default();
    link.blocker.spared = config.resolver.upstreams.iter().map(|u| u.ip()).collect();
    let link = Arc::new(link);
    let verdict_events = Arc::new(std::sync::Mutex::new(Some(events_tx.clone())));
    // Removed when the agent stops: the kernel rules go with it.
    let verdict_rules = if config.enforce && config.verdicts.enabled {
        let verdicts = verdict::Verdicts {
            rules: Arc::clone(&rules),
            prompts: Arc::clone(&prompts),
            owners: Arc::clone(&owners),
            events: Arc::clone(&verdict_events),
            dropped: Arc::clone(&dropped),
            stats: Arc::clone(&link.stats),
        };
        // Read at start: a reload that changes it applies at the next start.
        Some(start_verdicts(&config.verdicts, active.current().failure_mode, verdicts)?)
    } else {
        None
    };
    let shared = Arc::new(Shared::new(
        Arc::clone(&rules),
        Arc::clone(&prompts),
        resolver,
        Arc::clone(&owners),
        events_tx.clone(),
        Arc::clone(&dropped),
        Arc::clone(&stored),
        config.database.clone(),
        config.admin_group.clone(),
        config.enforce,
        verdict_rules.is_some().then(|| Arc::clone(&link.stats)),
    ));
    let listener = {
        let _guard = runtime.enter();
        ipc::bind(&config.socket)?
    };
    runtime.spawn(ipc::serve(listener, Arc::clone(&shared)));
    info!(socket = %config.socket.display(), "console socket ready");

    let mut captures = Vec::new();
    let interfaces = capture::interfaces(&config.interfaces);
    for interface in interfaces.iter().flatten().cloned() {
        let (rules, stop, events, dropped) =
            (Arc::clone(&rules), Arc::clone(&stop), events_tx.clone(), Arc::clone(&dropped));
        let own_traffic = Arc::clone(&own_traffic);
        let owners = Arc::clone(&owners);
        let kernel_filter = !args.no_kernel_filter;
        let link = verdict_rules.is_some().then(|| Arc::clone(&link));
        let name = interface.name.clone();
        let spawned = std::thread::Builder::new().name(format!("capture-{name}")).spawn(move || {
            let sinks = Sinks {
                events: &events,
                dropped: &dropped,
                own_traffic: &own_traffic,
                owners: &*owners,
                kernel_filter,
                verdicts: link.as_deref(),
            };
            capture::run(&interface, &rules, &stop, &sinks)
        });
        match spawned {
            Ok(handle) => {
                if let Ok(mut names) = shared.interfaces.lock() {
                    names.push(name.clone());
                }
                captures.push((name, handle));
            }
            Err(e) => error!(interface = %name, error = %e, "cannot start capture"),
        }
    }
    let mut failure = interfaces.err();
    if failure.is_none() {
        if config.enforce {
            info!(database = %config.database.display(), "enforcing: the local resolver answers per policy");
        } else {
            info!(database = %config.database.display(), "monitor mode: nothing on this machine is changed");
        }
    }

    let mut watching = true;
    while failure.is_none() && !stop.load(Ordering::Relaxed) {
        if watching {
            match reload_rx.recv_timeout(Duration::from_millis(200)) {
                Ok(()) => {
                    // Let an editor finish writing, for one second at most.
                    let deadline = std::time::Instant::now() + Duration::from_secs(1);
                    while std::time::Instant::now() < deadline
                        && !stop.load(Ordering::Relaxed)
                        && reload_rx.recv_timeout(Duration::from_millis(100)).is_ok()
                    {}
                    reload(&config, &mut active, &rules, &shared);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    warn!("file watching stopped: rules will not reload until restart");
                    watching = false;
                }
            }
        } else {
            std::thread::park_timeout(Duration::from_millis(200));
        }
        // A capture that ends is reported at once; with none left, the agent
        // fails so that its supervisor restarts it.
        let (finished, running): (Vec<_>, Vec<_>) = captures.into_iter().partition(|(_, h)| h.is_finished());
        captures = running;
        for (name, handle) in finished {
            report_capture_end(&name, handle.join());
        }
        // Threads also end when asked to stop: that is not a failure.
        let stopping = stop.load(Ordering::Relaxed);
        if captures.is_empty() && !stopping {
            failure = Some(anyhow::anyhow!("every capture stopped"));
        }
        if writer.is_finished() && !stopping {
            failure = Some(anyhow::anyhow!("the event store stopped"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for (name, handle) in captures {
        report_capture_end(&name, handle.join());
    }
    // Kernel rules first: from here, traffic no longer waits on this agent.
    drop(verdict_rules);
    // Consoles, the resolver and the verdicts go next, so that every sender
    // of records is gone and the writer drains what is queued, then ends.
    runtime.shutdown_timeout(Duration::from_secs(2));
    drop(shared);
    if let Ok(mut events) = verdict_events.lock() {
        events.take();
    }
    let how = match &failure {
        None => "clean stop".to_owned(),
        Some(e) => format!("stopped on failure: {e:#}"),
    };
    let _ = events_tx.send(journal(STOPPED, how));
    drop(events_tx);
    let _ = std::fs::remove_file(&config.socket);
    let stored = writer.join().map_err(|_| anyhow::anyhow!("store thread panicked"));
    info!(
        stored = stored.as_ref().ok().and_then(|s| s.as_ref().ok()),
        dropped = dropped.load(Ordering::Relaxed),
        "stopped"
    );
    if let Some(failure) = failure {
        return Err(failure);
    }
    stored?.map(|_| ())
}

fn report_capture_end(name: &str, outcome: std::thread::Result<Result<()>>) {
    match outcome {
        Ok(Ok(())) => info!(interface = %name, "capture stopped"),
        Ok(Err(e)) => error!(interface = %name, error = %format!("{e:#}"), "capture failed"),
        Err(_) => error!(interface = %name, "capture thread panicked"),
    }
}

#[cfg(target_os = "linux")]
fn start_verdicts(
    config: &VerdictConfig,
    failure: FailureMode,
    verdicts: verdict::Verdicts,
) -> Result<verdict::Installed> {
    verdict::start(config, failure, verdicts)
        .context("enforcement needs packet verdicts (set [verdicts] enabled = false for the resolver alone)")
}

#[cfg(not(target_os = "linux"))]
fn start_verdicts(_: &VerdictConfig, _: FailureMode, _: verdict::Verdicts) -> Result<verdict::Installed> {
    bail!("packet verdicts are implemented for Linux only; set [verdicts] enabled = false")
}

const STOPPED: &str = "stopped";

/// Journals this start, and first the unclean end of the previous run if
/// it left no `stopped` entry: while no agent ran, nothing was filtered.
fn record_start(store: &mut Store, config: &AgentConfig, policy: &Policy) -> Result<()> {
    let now = now_micros();
    let mut entries = Vec::new();
    if let Some(last) = store.journal(1)?.into_iter().next().filter(|e| e.kind != STOPPED) {
        warn!(since = last.ts, "the previous run did not stop cleanly");
        entries.push(JournalEntry {
            ts: now,
            kind: "unclean-stop".to_owned(),
            detail: format!(
                "the previous run (last entry `{}` at {}) ended without stopping cleanly; \
                 traffic was not filtered until this start (fail-open)",
                last.kind,
                vigie_core::timefmt::rfc3339_micros(last.ts)
            ),
        });
    }
    entries.push(JournalEntry {
        ts: now,
        kind: "started".to_owned(),
        detail: format!(
            "mode={} failure_mode={:?} policy={} version={} pid={}",
            if config.enforce { "enforce" } else { "monitor" },
            policy.failure_mode,
            policy.name,
            policy.version,
            std::process::id()
        ),
    });
    store.append_journal(&entries)?;
    Ok(())
}

fn reload(config: &AgentConfig, active: &mut ActivePolicy, rules: &Rules, shared: &Shared) {
    let (catalog, loaded) = match load_rules(config) {
        Ok((catalog, policy)) => (Some(Arc::new(catalog)), Ok(policy)),
        Err(e) => (None, Err(e)),
    };
    match (active.apply(loaded), catalog) {
        (Ok(policy), Some(catalog)) => match rules.current.write() {
            Ok(mut current) => {
                info!(policy = %policy.name, version = %policy.version, "rules reloaded");
                let detail = format!("policy={} version={}", policy.name, policy.version);
                *current = (catalog, Arc::clone(policy));
                rules.generation.fetch_add(1, Ordering::Release);
                if let Ok(mut error) = shared.reload_error.lock() {
                    *error = None;
                }
                let _ = shared.records.try_send(journal("reloaded", detail));
            }
            Err(_) => error!("rules lock poisoned: reload not applied"),
        },
        // The error names file, line and column; the rules in force stay.
        (Err(e), _) => {
            error!(error = %e, "reload rejected, keeping the rules in force");
            if let Ok(mut error) = shared.reload_error.lock() {
                *error = Some(e.to_string());
            }
            let _ = shared.records.try_send(journal("reload-rejected", e.to_string()));
        }
        (Ok(_), None) => {}
    }
}

/// What the store thread writes. Nearly every record is an event: boxing
/// it to shrink the rare others would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Record {
    Event(Event),
    Journal(JournalEntry),
    Answer(Answer),
}

pub(crate) fn journal(kind: &str, detail: impl Into<String>) -> Record {
    Record::Journal(JournalEntry { ts: now_micros(), kind: kind.to_owned(), detail: detail.into() })
}

/// Runs `write` up to four times with a growing pause; `Err` after the last.
fn with_retries(what: &str, mut write: impl FnMut() -> Result<(), StoreError>) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        match write() {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 3 => {
                warn!(error = %e, attempt, "storing {what} failed, retrying");
                std::thread::park_timeout(Duration::from_millis(100 << (2 * attempt)));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The single writer: batches what the agent decided, commits it (retrying
/// a failed commit), counts what is committed, and applies retention every
/// hour.
fn write_events(
    mut store: Store,
    records: &Receiver<Record>,
    retention_days: u32,
    stored: &AtomicU64,
) -> Result<u64> {
    const HOUR: Duration = Duration::from_secs(3600);
    // A batch gathers for this long, or this many records, before its one
    // commit; identical decisions in it are stored once, with a count.
    const GATHER: Duration = Duration::from_millis(250);
    const MAX_BATCH: usize = 4096;
    let mut batch = Vec::with_capacity(512);
    let mut others = Vec::new();
    let mut last_retention = std::time::Instant::now();
    let mut open = true;
    while open {
        match records.recv_timeout(Duration::from_secs(60)) {
            Ok(first) => others.push(first),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
        // Gather by draining in short naps rather than waiting on each
        // record: a flood of decisions then costs a few wakeups a second.
        let deadline = std::time::Instant::now() + GATHER;
        while open && !others.is_empty() {
            loop {
                match records.try_recv() {
                    Ok(record) => others.push(record),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
                if others.len() >= MAX_BATCH {
                    break;
                }
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if !open || others.len() >= MAX_BATCH || left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(25)));
        }
        let (mut journal, mut answers) = (Vec::new(), Vec::new());
        for record in others.drain(..) {
            match record {
                Record::Event(event) => batch.push(event),
                Record::Journal(entry) => journal.push(entry),
                Record::Answer(answer) => answers.push(answer),
            }
        }
        if !batch.is_empty() {
            batch = coalesce(std::mem::take(&mut batch));
            // Inserting is idempotent by event id: a retry cannot duplicate.
            match with_retries("events", || store.insert(&batch)) {
                Ok(()) => {
                    stored.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                Err(e) => error!(error = %e, lost = batch.len(), "storing events failed"),
            }
            batch.clear();
        }
        if !journal.is_empty() {
            if let Err(e) = with_retries("journal", || store.append_journal(&journal)) {
                error!(error = %e, lost = journal.len(), "storing the journal failed");
            }
        }
        if !answers.is_empty() {
            if let Err(e) = with_retries("answers", || store.insert_answers(&answers)) {
                error!(error = %e, lost = answers.len(), "storing prompt answers failed");
            }
        }
        if last_retention.elapsed() >= HOUR {
            last_retention = std::time::Instant::now();
            if let Err(e) = store.apply_retention(now_micros(), retention_days) {
                warn!(error = %e, "retention failed");
            }
        }
    }
    Ok(stored.load(Ordering::Relaxed))
}

/// Hands an event to the writer without ever blocking capture.
pub(crate) fn send(records: &SyncSender<Record>, dropped: &AtomicU64, event: Event) {
    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = records.try_send(Record::Event(event))
    {
        dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where a capture thread sends what it decided, and what it consults.
struct Sinks<'a> {
    events: &'a SyncSender<Record>,
    dropped: &'a AtomicU64,
    own_traffic: &'a OwnTraffic,
    owners: &'a dyn OwnerLookup,
    kernel_filter: bool,
    /// Set when packet verdicts run.
    verdicts: Option<&'a verdict::Link>,
}

/// A thread's pipeline on the rules in force, with the policy and its
/// version at hand (events carry it); a reload is picked up between frames.
pub(crate) struct LivePipeline {
    pub(crate) pipeline: Pipeline,
    pub(crate) policy: Arc<Policy>,
    pub(crate) version: String,
    generation: u64,
}

impl LivePipeline {
    pub(crate) fn new(rules: &Rules) -> Result<Self> {
        let generation = rules.generation.load(Ordering::Acquire);
        let (catalog, policy) =
            rules.current.read().map_err(|_| anyhow::anyhow!("rules lock poisoned"))?.clone();
        Ok(Self {
            pipeline: Pipeline::new(Sensor::default(), catalog, Arc::clone(&policy)),
            version: policy.version.clone(),
            policy,
            generation,
        })
    }

    /// Takes the latest rules if a reload happened since the last call.
    pub(crate) fn refresh(&mut self, rules: &Rules) {
        let latest = rules.generation.load(Ordering::Acquire);
        if latest == self.generation {
            return;
        }
        if let Ok(current) = rules.current.read() {
            self.pipeline.set_rules(Arc::clone(&current.0), Arc::clone(&current.1));
            self.version.clone_from(&current.1.version);
            self.policy = Arc::clone(&current.1);
            self.generation = latest;
        }
    }
}

#[cfg(target_os = "linux")]
mod capture {
    use super::*;
    use pnet_datalink::{Channel, NetworkInterface};
    use vigie_core::policy::Action;
    use vigie_core::policy::Subject;
    use vigie_core::sensor::frame::LinkType;
    use vigie_core::sensor::{kernel_filter, Detail, Source};

    /// Socket receive buffer: room for the traffic the filter keeps while
    /// the capture thread naps between batches. The kernel counts a kept GSO
    /// frame at its full size even when cut: 20 ms of a 10 Gbit/s upload is
    /// 25 MB. Memory only used while frames wait.
    const RECEIVE_BUFFER: usize = 32 << 20;
    /// How long the capture thread lets frames gather before reading them:
    /// one wakeup per batch instead of one per frame (on these machines a
    /// wakeup costs more than reading a frame). Detection waits that much
    /// longer, well within the prompt's budget.
    const BATCH_WINDOW: Duration = Duration::from_millis(20);

    /// An AF_PACKET socket for pnet to bind, with the kernel filter attached
    /// (unless benchmarking without it) so that bulk traffic is dropped
    /// before it is copied to us, and a second handle on it to read from.
    fn capture_socket(filter: bool) -> std::io::Result<(i32, socket2::Socket)> {
        use std::os::fd::IntoRawFd;
        const ETH_P_ALL: u16 = 0x0003;
        let protocol = socket2::Protocol::from(i32::from(ETH_P_ALL.to_be()));
        let socket = socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::RAW, Some(protocol))?;
        if filter {
            let program: Vec<socket2::SockFilter> = kernel_filter::capture_filter()
                .into_iter()
                .map(|(code, jt, jf, k)| socket2::SockFilter::new(code, jt, jf, k))
                .collect();
            socket.attach_filter(&program)?;
        }
        // Past the system limit needs CAP_NET_ADMIN; without it, the limit.
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, RECEIVE_BUFFER).is_err() {
            socket.set_recv_buffer_size(RECEIVE_BUFFER)?;
        }
        let reader = socket.try_clone()?;
        // pnet owns the descriptor from here and closes it with the channel.
        Ok((socket.into_raw_fd(), reader))
    }

    /// Frames read per system call.
    const BATCH_FRAMES: usize = 32;
    /// Room per frame: a GSO super-frame (up to 64 KiB) and its headers.
    const FRAME_ROOM: usize = 65_536 + 256;

    /// Reads frames straight from the capture socket that pnet opened and
    /// bound, up to 32 per `recvmmsg` (pnet's reader costs a `poll` and a
    /// `recvfrom` per frame); when none is waiting, a nap so that frames
    /// gather, then a bounded wait in the kernel.
    struct FrameReader {
        socket: socket2::Socket,
        buffers: Vec<Vec<u8>>,
        lengths: Vec<usize>,
        napped: bool,
    }

    impl FrameReader {
        fn new(socket: socket2::Socket) -> std::io::Result<Self> {
            socket.set_nonblocking(true)?;
            Ok(Self {
                socket,
                buffers: vec![vec![0; FRAME_ROOM]; BATCH_FRAMES],
                lengths: Vec::with_capacity(BATCH_FRAMES),
                napped: false,
            })
        }

        /// The frames waiting, at most a batch, without blocking.
        fn receive(&mut self) -> nix::Result<usize> {
            use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders};
            use std::os::fd::AsRawFd;
            let mut headers = MultiHeaders::<()>::preallocate(BATCH_FRAMES, None);
            let mut slices: Vec<[std::io::IoSliceMut<'_>; 1]> =
                self.buffers.iter_mut().map(|b| [std::io::IoSliceMut::new(b)]).collect();
            let received = recvmmsg(
                self.socket.as_raw_fd(),
                &mut headers,
                slices.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )?;
            self.lengths.clear();
            self.lengths.extend(received.map(|message| message.bytes));
            Ok(self.lengths.len())
        }

        /// The next batch of frames (see [`Self::frame`]); 0 when none came
        /// within 200 ms (time to look at the stop flag).
        fn next_batch(&mut self) -> std::io::Result<usize> {
            loop {
                match self.receive() {
                    Ok(0) | Err(nix::errno::Errno::EAGAIN) => {}
                    Ok(count) => {
                        self.napped = false;
                        return Ok(count);
                    }
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
                if !self.napped {
                    self.napped = true;
                    std::thread::sleep(BATCH_WINDOW);
                    continue;
                }
                self.napped = false;
                let mut fds = [rustix::event::PollFd::new(&self.socket, rustix::event::PollFlags::IN)];
                let wait = rustix::event::Timespec { tv_sec: 0, tv_nsec: 200_000_000 };
                match rustix::event::poll(&mut fds, Some(&wait)) {
                    Ok(0) | Err(rustix::io::Errno::INTR) => return Ok(0),
                    Ok(_) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }

        /// Frame `index` of the last batch.
        fn frame(&self, index: usize) -> Option<&[u8]> {
            let len = *self.lengths.get(index)?;
            self.buffers.get(index)?.get(..len)
        }
    }

    pub(super) fn interfaces(names: &[String]) -> Result<Vec<NetworkInterface>> {
        let all = pnet_datalink::interfaces();
        if names.is_empty() {
            let chosen: Vec<_> = all.into_iter().filter(|i| i.is_up() && !i.is_loopback()).collect();
            if chosen.is_empty() {
                bail!("no network interface is up");
            }
            return Ok(chosen);
        }
        names
            .iter()
            .map(|name| {
                all.iter()
                    .find(|i| &i.name == name)
                    .cloned()
                    .with_context(|| format!("no interface named {name}"))
            })
            .collect()
    }

    /// Captures until asked to stop. A capture that breaks (the link went
    /// down, the interface was removed and comes back) is opened again, with
    /// a growing pause; only a refusal (no CAP_NET_RAW) ends it for good.
    pub(super) fn run(
        interface: &NetworkInterface,
        rules: &Rules,
        stop: &AtomicBool,
        sinks: &Sinks<'_>,
    ) -> Result<()> {
        const FIRST_PAUSE: Duration = Duration::from_secs(1);
        let mut pause = FIRST_PAUSE;
        let mut current = interface.clone();
        loop {
            let started = std::time::Instant::now();
            let error = match capture_once(&current, rules, stop, sinks) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let refused = error.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
            });
            if refused {
                return Err(error);
            }
            // A capture that ran a while before breaking starts the pauses over.
            if started.elapsed() > Duration::from_secs(60) {
                pause = FIRST_PAUSE;
            }
            warn!(interface = %current.name, error = %format!("{error:#}"), retry_in = ?pause, "capture interrupted");
            let resume = std::time::Instant::now() + pause;
            while std::time::Instant::now() < resume {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            pause = (pause * 2).min(Duration::from_secs(30));
            // The interface may be back under another index.
            if let Some(again) = pnet_datalink::interfaces().into_iter().find(|i| i.name == current.name) {
                current = again;
            }
        }
    }

    fn capture_once(
        interface: &NetworkInterface,
        rules: &Rules,
        stop: &AtomicBool,
        sinks: &Sinks<'_>,
    ) -> Result<()> {
        let (socket_fd, reader) = capture_socket(sinks.kernel_filter)
            .with_context(|| format!("capture on {} (needs CAP_NET_RAW)", interface.name))?;
        let config = pnet_datalink::Config {
            // pnet only binds the socket: frames are read by FrameReader.
            promiscuous: false,
            socket_fd: Some(socket_fd),
            ..pnet_datalink::Config::default()
        };
        let channel = pnet_datalink::channel(interface, config)
            .with_context(|| format!("capture on {} (needs CAP_NET_RAW)", interface.name))?;
        // pnet bound the socket to the interface; frames are read through our own handle.
        let Channel::Ethernet(_tx, _rx) = channel else {
            bail!("{}: not an Ethernet-like interface", interface.name);
        };
        let mut reader = FrameReader::new(reader)?;
        // Said once the socket is open: from here on, nothing is missed.
        info!(interface = %interface.name, "capturing");
        let mut live = LivePipeline::new(rules)?;
        let subject = Subject::default();
        while !stop.load(Ordering::Relaxed) {
            live.refresh(rules);
            let LivePipeline { pipeline, policy, version, .. } = &mut live;
            let count = match reader.next_batch() {
                Ok(count) => count,
                Err(e) => return Err(e).with_context(|| format!("reading from {}", interface.name)),
            };
            for index in 0..count {
                let Some(frame) = reader.frame(index) else { continue };
                pipeline.process(now_micros(), LinkType::Ethernet, frame, &subject, &mut |decided| {
                    let o = &decided.observation;
                    let Some((service, default_decision)) = &decided.verdict else { return };
                    if let (Detail::DnsAnswer { addresses, .. }, Some(link)) = (&o.detail, sinks.verdicts) {
                        if policy.dns.block_resolved_addresses && default_decision.action == Action::Block {
                            for address in addresses {
                                link.blocker.block(*address, &link.stats);
                            }
                        }
                    }
                    // The resolver reports the queries it answers and forwards.
                    if o.is_answer() || (o.source == Source::Dns && sinks.own_traffic.contains(&o.flow)) {
                        return;
                    }
                    // Attributed only now: few flows reach a catalogued service.
                    let owner = sinks.owners.owner(o.flow.protocol, o.flow.src, o.flow.dst);
                    // A local program's handshake went through the verdicts, which reported it.
                    if sinks.verdicts.is_some() && o.source != Source::Dns && owner.attribution.uid.is_some()
                    {
                        return;
                    }
                    let decision = &policy.decide(service, &owner.subject());
                    info!(
                        source = o.source.as_str(),
                        name = %o.name,
                        service = %service.id,
                        action = decision.action.as_str(),
                        rule = %decision.rule_id,
                        flow = %o.flow,
                        uid = owner.attribution.uid,
                        program = owner.attribution.program.as_deref(),
                        "decision"
                    );
                    let event = Event::new(o, service, decision, version, owner.attribution);
                    send(sinks.events, sinks.dropped, event);
                });
            }
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod capture {
    use super::*;

    #[derive(Clone)]
    pub(super) struct Interface {
        pub(super) name: String,
    }

    pub(super) fn interfaces(_: &[String]) -> Result<Vec<Interface>> {
        bail!("live capture is implemented for Linux only so far")
    }

    pub(super) fn run(_: &Interface, _: &Rules, _: &AtomicBool, _: &Sinks<'_>) -> Result<()> {
        bail!("live capture is implemented for Linux only so far")
    }
}
