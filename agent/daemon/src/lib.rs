//! Vigie's live agent as a library. Data flows one way:
//!
//! ```text
//! sources                      decider                     sinks
//! capture    (capture.rs)  ─┐
//! resolver   (resolver.rs) ─┼─► Decider::decide / report ─► EventSink (sink.rs) → SQLite
//! verdicts   (verdict.rs)  ─┤   (decider.rs)              └► Prompts (prompts.rs) → console socket
//! clipboard  (clipboard.rs)─┘
//! ```
//!
//! The operating system sits behind [`platform::Platform`]; the console
//! socket (`console/`) reads the store and the prompts and answers them.
//! [`start`] wires it all; [`Daemon::run`] serves until asked to stop.

pub mod accounts;
pub mod attribution;
pub mod capture;
pub mod clipboard;
pub mod config;
pub mod console;
pub mod decider;
pub mod fleet;
pub mod inventory;
pub mod local_export;
pub mod platform;
pub mod prompts;
pub mod resolver;
pub mod rules;
pub mod sink;
pub mod system_dns;
pub mod tamper;
pub mod verdict;
pub mod watchdog;
pub mod worker;

#[cfg(test)]
mod testing;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use watchdog::Heartbeat;

use anyhow::{Context, Result};
use tracing::{error, info, warn};
use vigie_core::policy::{ActivePolicy, Policy};
use vigie_core::store::{JournalEntry, Store};

pub use config::Config;
pub use platform::Platform;

use console::{ConsoleState, Readers};
use decider::{Decider, Mode};
use platform::{supervisor, Firewall};
use prompts::Prompts;
use rules::{RuleFiles, Rules};
use sink::{EventSink, Writer};
use verdict::{AddressBlocker, VerdictStats};

const STOPPED: &str = "stopped";

/// The running agent.
#[derive(Debug)]
pub struct Daemon {
    config: Config,
    stop: Arc<AtomicBool>,
    rules: Arc<Rules>,
    active: ActivePolicy,
    state: Arc<ConsoleState>,
    runtime: tokio::runtime::Runtime,
    captures: Captures,
    /// The verdict thread and its heartbeat, in enforce mode.
    verdicts: Option<(JoinHandle<()>, Arc<Heartbeat>)>,
    /// Set while the kernel queues packets for this agent.
    firewall: Option<InstalledRules>,
    /// Stops the verdict thread, once the rules are out.
    verdict_stop: Arc<AtomicBool>,
    writer: Writer,
    reloads: Receiver<()>,
    _watcher: notify::RecommendedWatcher,
    failure: Option<anyhow::Error>,
    /// Where the tamper checks look, and what they saw last.
    places: tamper::Places,
    integrity: tamper::Integrity,
    last_integrity: Option<std::time::Instant>,
    /// What was last written to `places.saved`.
    integrity_saved: Option<tamper::Saved>,
    fleet: fleet::Fleet,
    local_export: local_export::LocalExport,
    /// The software inventory.
    inventory: inventory::Inventory,
}

/// Starts the agent: store, rules, decider, console socket, and in
/// enforce mode the resolver and the packet verdicts; then one capture
/// thread per interface.
pub fn start(config: Config, platform: Platform) -> Result<Daemon> {
    start_with_stop(config, platform, Arc::new(AtomicBool::new(false)))
}

/// [`start`] with the stop flag the caller already set signals on, so that
/// a SIGTERM during the start (rules going in, sockets binding) stops the
/// agent cleanly as soon as it has started instead of killing it half-way.
pub fn start_with_stop(config: Config, platform: Platform, stop: Arc<AtomicBool>) -> Result<Daemon> {
    let (database, clock) = (config.database.clone(), Arc::clone(&platform.clock));
    let mut journaled = false;
    let started = start_journaled(config, platform, stop, &mut journaled);
    if let Err(error) = &started {
        // The start was journaled, and failed: said so, so that the next
        // attempt does not take this one for an agent killed while running.
        if journaled {
            record_failed_start(&database, error, clock.wall_micros());
        }
    }
    started
}

/// [`start_with_stop`]; `journaled` is set once the start is in the journal.
/// The steps, in order: the tamper baseline, the rules, the store (the
/// start journaled), the decider, enforcement (resolver, packet verdicts),
/// the console socket, the captures, then the periodic workers.
fn start_journaled(
    config: Config,
    platform: Platform,
    stop: Arc<AtomicBool>,
    journaled: &mut bool,
) -> Result<Daemon> {
    let baseline = TamperBaseline::take(&config, &platform);
    let fleet_state = Arc::new(fleet::FleetState::default());
    fleet_state.set_health("ok");
    let loaded = LoadedRules::load(&config)?;
    fleet_state.set_bundle_version(loaded.bundle_version);
    let LoadedRules { active, rules, refused_bundle, .. } = loaded;

    let (sink, writer, start_count) = open_store(&config, &platform, &active, journaled)?;
    let (reloads, watcher) = watch_rules(&config)?;
    let prompts = Arc::new(Prompts::new(Arc::clone(&platform.clock), start_count));
    let decider = Arc::new(Decider::new(
        config.mode(),
        prompts,
        sink,
        Arc::clone(&platform.owners),
        Arc::clone(&platform.clock),
    ));
    if let Some((bundle, reason)) = refused_bundle {
        let finding = tamper::Finding::policy_refused(
            &bundle,
            format!("the fleet policy bundle on disk was refused at start, the bundled baseline applies: {reason}"),
        );
        decider.report_tamper(&active.current().version, &finding);
    }
    // The resolver and the console socket are network services: tokio.
    // Capture and verdicts stay on plain threads, each blocked on its socket.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vigie-io")
        .enable_all()
        .build()
        .context("starting the I/O runtime")?;

    let mut state = ConsoleState::new(
        Arc::clone(&rules),
        Arc::clone(&decider),
        Readers::new(config.database.clone()),
        config.admin_group.clone(),
    );
    state.fleet = Arc::clone(&fleet_state);
    let enforcement = Enforcement::start(&config, &platform, &active, &runtime, &stop, &mut state)?;
    let state = Arc::new(state);
    let listener = {
        let _guard = runtime.enter();
        console::bind(&config.socket)?
    };
    runtime.spawn(console::serve(listener, Arc::clone(&state)));
    info!(socket = %config.socket.display(), "console socket ready");

    let (captures, failure) = Captures::start(&config, &platform, &state, &enforcement, &stop);
    if failure.is_none() {
        let what = match config.mode() {
            Mode::Enforce => "enforcing: the local resolver and the packet verdicts apply the policy",
            Mode::Monitor => "monitor mode: nothing on this machine is changed",
        };
        info!(database = %config.database.display(), "{what}");
    }

    let live = fleet::Live {
        rules: Arc::clone(&state.rules),
        decider: Arc::clone(&state.decider),
        resolver: state.resolver.clone(),
        verdicts: state.verdicts.clone(),
    };
    let fleet =
        fleet::Fleet::new(config.state_dir(), config.fleet.uploader(), &config.database, fleet_state, live);
    let local_export =
        local_export::LocalExport::new(config.export.clone(), &config.database, config.state_dir());
    let inventory = inventory::Inventory::new(
        config.inventory.clone(),
        &config.database,
        Arc::clone(&rules),
        Arc::clone(&decider),
    );
    let Enforcement { firewall, verdicts, verdict_stop, .. } = enforcement;
    Ok(Daemon {
        fleet,
        local_export,
        inventory,
        places: baseline.places,
        integrity: baseline.integrity,
        last_integrity: None,
        integrity_saved: baseline.saved,
        config,
        stop,
        rules,
        active,
        state,
        runtime,
        captures,
        verdicts,
        firewall,
        verdict_stop,
        writer,
        reloads,
        _watcher: watcher,
        failure,
    })
}

/// What the tamper checks compare the machine with, taken from the files
/// as they are loaded: an edit right after the start is a change, not the
/// baseline.
struct TamperBaseline {
    places: tamper::Places,
    integrity: tamper::Integrity,
    saved: Option<tamper::Saved>,
}

impl TamperBaseline {
    fn take(config: &Config, platform: &Platform) -> Self {
        let places = tamper::Places::of(
            config.state_dir(),
            &[&config.source, &config.policy, &config.catalog],
            &config.resolver.listen,
        );
        let live = tamper::Live {
            rules_intact: None,
            interfaces: platform.capture.interfaces(&[]).ok().map(|names| names.into_iter().collect()),
            configured_interfaces: config.interfaces.clone(),
            consoles: Default::default(),
            now: platform.clock.now(),
            wall_micros: platform.clock.wall_micros(),
            since_boot_micros: platform.clock.since_boot_micros(),
        };
        let first = tamper::gather(&places, live);
        let saved = tamper::load_saved(&places.saved);
        let integrity = tamper::Integrity::new(config.tamper.clone(), &first, saved.as_ref());
        Self { places, integrity, saved }
    }
}

/// The catalog and policy in force at the start.
struct LoadedRules {
    active: ActivePolicy,
    rules: Arc<Rules>,
    bundle_version: Option<u64>,
    /// The fleet bundle refused, and why: evidence to report.
    refused_bundle: Option<(PathBuf, String)>,
}

impl LoadedRules {
    fn load(config: &Config) -> Result<Self> {
        let files = config.rule_files();
        let mut refused_bundle = None;
        let (catalog, policy, bundle_version) = match files.load_versioned() {
            Ok(loaded) => loaded,
            // The fleet's bundle on disk does not verify or load (edited by
            // hand, or damaged): the bundled baseline applies, not the local
            // files the bundle overrides, and the refusal is evidence.
            Err(e) if files.fleet.as_ref().is_some_and(|f| f.bundle.exists()) => {
                error!(error = %e, "the fleet policy bundle on disk is refused: the bundled baseline applies");
                refused_bundle = files.fleet.as_ref().map(|f| (f.bundle.clone(), e.to_string()));
                let (catalog, policy) = RuleFiles::default().load().context("bundled rules")?;
                (catalog, policy, None)
            }
            Err(e) => return Err(e).context("rules rejected"),
        };
        info!(
            policy = %policy.name,
            version = %policy.version,
            bundle = ?bundle_version,
            services = catalog.services().len(),
            "rules loaded"
        );
        let active = ActivePolicy::new(policy);
        let rules = Arc::new(Rules::new(Arc::new(catalog), Arc::clone(active.current())));
        Ok(Self { active, rules, bundle_version, refused_bundle })
    }
}

/// Opens the store, applies retention, counts and journals the start
/// (committed before anything else: a kill -9 a moment after the start is
/// still found by the next one); then the sink's writer thread takes the
/// store. Also returns the start count, which prompt ids are made from.
fn open_store(
    config: &Config,
    platform: &Platform,
    active: &ActivePolicy,
    journaled: &mut bool,
) -> Result<(EventSink, Writer, u64)> {
    let state_dir = config.state_dir();
    std::fs::create_dir_all(state_dir).with_context(|| state_dir.display().to_string())?;
    let mut store = Store::open(&config.database).with_context(|| config.database.display().to_string())?;
    store.apply_retention(platform.clock.wall_micros(), config.retention_days)?;
    let start_count = store.count_start()?;
    record_start(&mut store, config, active.current(), platform.clock.wall_micros())?;
    *journaled = true;
    let (sink, writer) = EventSink::start(store, config.retention_days, Arc::clone(&platform.clock))?;
    Ok((sink, writer, start_count))
}

/// In enforce mode: the local resolver and the packet verdicts (the kernel
/// rules and the thread that judges what they queue).
struct Enforcement {
    stats: Arc<VerdictStats>,
    /// Set while the kernel queues packets for this agent.
    firewall: Option<InstalledRules>,
    /// The verdict thread and its heartbeat.
    verdicts: Option<(JoinHandle<()>, Arc<Heartbeat>)>,
    /// Stops the verdict thread, once the rules are out.
    verdict_stop: Arc<AtomicBool>,
}

impl Enforcement {
    /// Starts what the mode calls for, and puts the resolver and the
    /// verdicts' counters in the console's `state`.
    fn start(
        config: &Config,
        platform: &Platform,
        active: &ActivePolicy,
        runtime: &tokio::runtime::Runtime,
        stop: &Arc<AtomicBool>,
        state: &mut ConsoleState,
    ) -> Result<Self> {
        let enforcement = Self {
            stats: Arc::new(VerdictStats::default()),
            firewall: None,
            verdicts: None,
            verdict_stop: Arc::new(AtomicBool::new(false)),
        };
        if config.mode() != Mode::Enforce {
            return Ok(enforcement);
        }
        let (rules, decider) = (Arc::clone(&state.rules), Arc::clone(&state.decider));
        let resolver = runtime
            .block_on(resolver::Resolver::start(
                &config.resolver,
                Arc::clone(&rules),
                Arc::clone(&decider),
                Arc::clone(stop),
            ))
            .context("enforcement needs the local resolver")?;
        state.resolver = Some(resolver);
        if !config.verdicts.enabled {
            return Ok(enforcement);
        }
        // Read at start: a reload that changes it applies at the next start.
        let failure_mode = active.current().failure_mode;
        let queue = platform.firewall.install(&config.verdicts, failure_mode).context(
            "enforcement needs packet verdicts (set [verdicts] enabled = false for the resolver alone)",
        )?;
        let firewall = Some(InstalledRules(Arc::clone(&platform.firewall)));
        // The verdicts go on judging until the kernel rules are out.
        let (thread_stats, thread_stop) =
            (Arc::clone(&enforcement.stats), Arc::clone(&enforcement.verdict_stop));
        // Not joined at shutdown: it may be waiting in the kernel (up to a
        // second), and goes with the process; the rules go first, and with
        // queue bypass, traffic flows in between. Watched while running.
        let heartbeat = Arc::new(Heartbeat::default());
        let beat = Arc::clone(&heartbeat);
        let handle = std::thread::Builder::new()
            .name("verdicts".into())
            .spawn(move || verdict::run(queue, &decider, &rules, &thread_stats, &thread_stop, &beat))?;
        state.verdicts = Some(Arc::clone(&enforcement.stats));
        Ok(Self { firewall, verdicts: Some((handle, heartbeat)), ..enforcement })
    }

    /// Puts the addresses blocked names resolve to into the firewall, when
    /// the verdicts run: never the configured upstreams, nor those the
    /// resolver forwards to as it runs (read from resolv.conf or resolved's
    /// files, which change with the network).
    fn address_blocker(&self, config: &Config, state: &ConsoleState) -> Option<Arc<AddressBlocker>> {
        let firewall = self.firewall.as_ref()?;
        let spared: Vec<std::net::IpAddr> = config.resolver.upstreams.iter().map(|u| u.ip()).collect();
        let resolver = state.resolver.clone();
        let upstreams_now: verdict::UpstreamsNow = Box::new(move || {
            resolver
                .as_ref()
                .map(|r| r.upstream_addresses().iter().map(|u| u.ip()).collect())
                .unwrap_or_default()
        });
        Some(Arc::new(AddressBlocker::new(
            Arc::clone(&firewall.0),
            spared,
            upstreams_now,
            Arc::clone(&self.stats),
        )))
    }
}

/// The capture threads, one per interface, and what starts another when an
/// interface appears after the start (a VPN's tun, a USB tethering, a dock).
struct Captures {
    capture: Arc<dyn platform::Capture>,
    rules: Arc<Rules>,
    stop: Arc<AtomicBool>,
    decider: Arc<Decider>,
    blocker: Option<Arc<AddressBlocker>>,
    kernel_filter: bool,
    /// Each capture thread, and its heartbeat.
    running: Vec<(String, JoinHandle<Result<()>>, Arc<Heartbeat>)>,
    last_look: std::time::Instant,
}

/// How often the interfaces are listed again.
const INTERFACES_EVERY: Duration = Duration::from_secs(5);

impl std::fmt::Debug for Captures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.running.iter().map(|(name, ..)| name.as_str()).collect();
        f.debug_struct("Captures").field("running", &names).finish_non_exhaustive()
    }
}

impl Captures {
    /// One capture thread per interface up now; the error of listing them.
    fn start(
        config: &Config,
        platform: &Platform,
        state: &ConsoleState,
        enforcement: &Enforcement,
        stop: &Arc<AtomicBool>,
    ) -> (Self, Option<anyhow::Error>) {
        let mut captures = Captures {
            capture: Arc::clone(&platform.capture),
            rules: Arc::clone(&state.rules),
            stop: Arc::clone(stop),
            decider: Arc::clone(&state.decider),
            blocker: enforcement.address_blocker(config, state),
            kernel_filter: config.kernel_filter,
            running: Vec::new(),
            last_look: std::time::Instant::now(),
        };
        let interfaces = platform.capture.interfaces(&config.interfaces);
        for name in interfaces.iter().flatten() {
            captures.spawn(name, state);
        }
        let failure = interfaces.err();
        if captures.running.is_empty() && failure.is_none() {
            warn!("no network interface is up yet: each one is captured as it comes up");
        }
        (captures, failure)
    }

    fn spawn(&mut self, name: &str, state: &ConsoleState) {
        let (rules, stop, decider, blocker) = (
            Arc::clone(&self.rules),
            Arc::clone(&self.stop),
            Arc::clone(&self.decider),
            self.blocker.clone(),
        );
        let capture = Arc::clone(&self.capture);
        let kernel_filter = self.kernel_filter;
        let interface = name.to_owned();
        let heartbeat = Arc::new(Heartbeat::default());
        let beat = Arc::clone(&heartbeat);
        let spawned = std::thread::Builder::new().name(format!("capture-{name}")).spawn(move || {
            let context =
                capture::CaptureContext { decider: &decider, blocker: blocker.as_deref(), heartbeat: &beat };
            capture::run_interface(&*capture, &interface, kernel_filter, &rules, &stop, context)
        });
        match spawned {
            Ok(handle) => {
                if let Ok(mut names) = state.interfaces.lock() {
                    if !names.iter().any(|n| n == name) {
                        names.push(name.to_owned());
                    }
                }
                self.running.push((name.to_owned(), handle, heartbeat));
            }
            Err(e) => error!(interface = %name, error = %e, "cannot start capture"),
        }
    }

    /// Starts a capture on each interface that appeared since the last
    /// look (at most every few seconds), when no list was configured.
    fn watch_new(&mut self, configured: &[String], state: &ConsoleState) {
        if !configured.is_empty() || self.last_look.elapsed() < INTERFACES_EVERY {
            return;
        }
        self.last_look = std::time::Instant::now();
        let Ok(names) = self.capture.interfaces(configured) else { return };
        for name in names {
            if !self.running.iter().any(|(running, ..)| *running == name) {
                info!(interface = %name, "new interface: capturing it too");
                self.spawn(&name, state);
            }
        }
    }
}

/// The kernel rules that queue packets for the agent, removed when this
/// goes: at shutdown, or when a later step of `start` fails.
#[derive(Debug)]
struct InstalledRules(Arc<dyn Firewall>);

impl Drop for InstalledRules {
    fn drop(&mut self) {
        self.0.uninstall();
    }
}

/// Rules reload when their files change. Editors replace files, so the
/// folders are watched and events filtered by file name.
fn watch_rules(config: &Config) -> Result<(Receiver<()>, notify::RecommendedWatcher)> {
    // The fleet's bundle and pinned key too: enrolment and a new bundle
    // take effect without a restart. The folder is made so it can be watched.
    let fleet = vigie_fleet::client::FleetDir::new(config.state_dir());
    std::fs::create_dir_all(&fleet.dir).with_context(|| fleet.dir.display().to_string())?;
    let mut watched: Vec<PathBuf> =
        [&config.policy, &config.catalog].into_iter().flatten().cloned().collect();
    watched.extend([fleet.bundle_path(), fleet.policy_key_path()]);
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
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        notify::Watcher::watch(&mut watcher, folder, notify::RecursiveMode::NonRecursive)
            .with_context(|| format!("watching {}", folder.display()))?;
    }
    Ok((reload_rx, watcher))
}

impl Daemon {
    /// What the watchdog finds wrong with the threads that enforce and
    /// observe at `now`, if anything.
    fn watchdog(&self, now: std::time::Instant) -> Option<String> {
        if let Some((handle, heartbeat)) = &self.verdicts {
            if handle.is_finished() {
                return Some("the packet verdicts stopped".to_owned());
            }
            if heartbeat.stalled(now) {
                return Some(format!("the packet verdicts stalled for over {:?}", watchdog::STALL_AFTER));
            }
        }
        let stalled = self.captures.running.iter().find(|(_, _, heartbeat)| heartbeat.stalled(now));
        stalled
            .map(|(name, _, _)| format!("the capture on {name} stalled for over {:?}", watchdog::STALL_AFTER))
    }

    /// Setting it stops the agent (SIGINT and SIGTERM do).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Serves until the stop flag is set or every capture ended, then shuts
    /// down in order: captures, kernel rules, sockets, the store last.
    pub fn run(mut self) -> Result<()> {
        let mut watching = true;
        supervisor::ready(&format!("{} mode", self.config.mode().as_str()));
        let alive_every = supervisor::alive_every();
        let mut last_alive: Option<std::time::Instant> = None;
        while self.failure.is_none() && !self.stop.load(Ordering::Relaxed) {
            if watching {
                match self.reloads.recv_timeout(Duration::from_millis(200)) {
                    Ok(()) => {
                        // Let an editor finish writing, for one second at most.
                        let deadline = std::time::Instant::now() + Duration::from_secs(1);
                        while std::time::Instant::now() < deadline
                            && !self.stop.load(Ordering::Relaxed)
                            && self.reloads.recv_timeout(Duration::from_millis(100)).is_ok()
                        {
                        }
                        self.reload();
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
            let (finished, running): (Vec<_>, Vec<_>) =
                std::mem::take(&mut self.captures.running).into_iter().partition(|(_, h, _)| h.is_finished());
            self.captures.running = running;
            let some_ended = !finished.is_empty();
            for (name, handle, _) in finished {
                report_capture_end(&name, handle.join());
            }
            // Threads also end when asked to stop: that is not a failure.
            let stopping = self.stop.load(Ordering::Relaxed);
            if let Some(why) = self.watchdog(std::time::Instant::now()).filter(|_| !stopping) {
                error!("{why}: stopping for the supervisor to restart the agent");
                self.failure = Some(anyhow::anyhow!(why));
            }
            if !stopping {
                self.check_integrity();
                self.fleet.poll();
                self.local_export.poll();
                self.inventory.poll();
                let health =
                    match (&self.failure, self.state.reload_error.lock().ok().and_then(|e| e.clone())) {
                        (Some(failure), _) => format!("failing: {failure:#}"),
                        (None, Some(reload)) => format!("reload rejected: {reload}"),
                        (None, None) => "ok".to_owned(),
                    };
                self.state.fleet.set_health(&health);
            }
            // Pings only while healthy: a stalled thread, or this loop stuck
            // in a reload or the store, lets systemd's watchdog fire.
            let now = std::time::Instant::now();
            if let Some(every) = alive_every.filter(|_| self.failure.is_none() && !stopping) {
                if last_alive.is_none_or(|at| now.duration_since(at) >= every) {
                    supervisor::alive();
                    last_alive = Some(now);
                }
            }
            if !stopping {
                self.captures.watch_new(&self.config.interfaces, &self.state);
            }
            // None up yet is not a failure (watch_new starts them); the last
            // ones ending is.
            if some_ended && self.captures.running.is_empty() && !stopping {
                self.failure = Some(anyhow::anyhow!("every capture stopped"));
            }
            if self.writer.is_finished() && !stopping {
                self.failure = Some(anyhow::anyhow!("the event store stopped"));
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        self.fleet.stop();
        self.local_export.stop();
        self.inventory.stop();
        supervisor::stopping(match &self.failure {
            None => "stopping",
            Some(_) => "stopping on failure",
        });
        for (name, handle, heartbeat) in std::mem::take(&mut self.captures.running) {
            // A stalled capture would never be joined: it goes with the process.
            if !heartbeat.stalled(std::time::Instant::now()) {
                report_capture_end(&name, handle.join());
            }
        }
        // Kernel rules first: from here, traffic no longer waits on this
        // agent; then the verdicts let go of what they held.
        drop(self.firewall.take());
        self.verdict_stop.store(true, Ordering::Relaxed);
        // The consoles and the resolver go next; then the writer stores
        // what is queued, the last journal entry included, and ends.
        self.runtime.shutdown_timeout(Duration::from_secs(2));
        let how = match &self.failure {
            None => "clean stop".to_owned(),
            Some(e) => format!("stopped on failure: {e:#}"),
        };
        if self.failure.is_none() {
            let finding = tamper::Finding {
                check: tamper::Check::ServiceStopped,
                subject: "vigie-agent".to_owned(),
                detail:
                    "the agent was asked to stop (SIGTERM or SIGINT: `systemctl stop`, a package removal, \
                         a shutdown): nothing is filtered until it starts again"
                        .to_owned(),
                uid: None,
            };
            self.state.decider.report_tamper(&self.active.current().version, &finding);
        }
        let sink = self.state.decider.sink().clone();
        let _ = std::fs::remove_file(&self.config.socket);
        let last = JournalEntry {
            ts: self.state.decider.clock().wall_micros(),
            kind: STOPPED.to_owned(),
            detail: how,
        };
        let stored = self.writer.close(Some(last));
        info!(stored, dropped = sink.dropped(), "stopped");
        match self.failure {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// Runs the tamper checks when they are due, and reports what is new.
    /// Enforce mode's rules removed by hand make the agent restart, which
    /// puts them back.
    fn check_integrity(&mut self) {
        let now = std::time::Instant::now();
        if self.last_integrity.is_some_and(|at| now.duration_since(at) < self.integrity.every()) {
            return;
        }
        self.last_integrity = Some(now);
        let decider = &self.state.decider;
        let live = tamper::Live {
            rules_intact: self.firewall.as_ref().and_then(|rules| rules.0.intact()),
            interfaces: self.captures.capture.interfaces(&[]).ok().map(|names| names.into_iter().collect()),
            configured_interfaces: self.config.interfaces.clone(),
            consoles: self.state.console_users(),
            now: decider.clock().now(),
            wall_micros: decider.clock().wall_micros(),
            since_boot_micros: decider.clock().since_boot_micros(),
        };
        let facts = tamper::gather(&self.places, live);
        let version = self.active.current().version.clone();
        for finding in self.integrity.judge(&facts) {
            decider.report_tamper(&version, &finding);
            if finding.check == tamper::Check::FirewallRulesRemoved {
                self.failure = Some(anyhow::anyhow!("{}", finding.detail));
            }
        }
        let saved = self.integrity.saved();
        if self.integrity_saved.as_ref() != Some(&saved) {
            match tamper::store_saved(&self.places.saved, &saved) {
                Ok(()) => self.integrity_saved = Some(saved),
                Err(e) => {
                    warn!(error = %e, path = %self.places.saved.display(), "cannot keep the tamper checks' state");
                }
            }
        }
    }

    fn reload(&mut self) {
        let sink = self.state.decider.sink();
        let files = self.config.rule_files();
        let in_force = self.state.fleet.bundle_version.lock().ok().and_then(|v| *v);
        if let Some(fleet) = files.fleet.as_ref().filter(|f| in_force.is_some() && !f.bundle.exists()) {
            // The bundle in force was deleted: the local files must not
            // take over. The rules in force stay until the uploader fetches
            // the bundle again.
            let finding = tamper::Finding::policy_refused(
                &fleet.bundle,
                "the fleet policy bundle in force was deleted; the rules in force stay until it is fetched again"
                    .to_owned(),
            );
            self.state.decider.report_tamper(&self.active.current().version, &finding);
            return;
        }
        let (catalog, loaded) = match files.load_versioned() {
            Ok((catalog, policy, version)) => {
                self.state.fleet.set_bundle_version(version);
                (Some(Arc::new(catalog)), Ok(policy))
            }
            Err(e) => {
                if let Some(fleet) = files.fleet.as_ref().filter(|f| f.bundle.exists()) {
                    let finding = tamper::Finding::policy_refused(
                        &fleet.bundle,
                        format!("the fleet policy bundle on disk was refused, the rules in force stay: {e}"),
                    );
                    self.state.decider.report_tamper(&self.active.current().version, &finding);
                }
                (None, Err(e))
            }
        };
        match (self.active.apply(loaded), catalog) {
            (Ok(policy), Some(catalog)) => {
                info!(policy = %policy.name, version = %policy.version, "rules reloaded");
                let detail = format!("policy={} version={}", policy.name, policy.version);
                self.rules.replace(catalog, Arc::clone(policy));
                if let Ok(mut error) = self.state.reload_error.lock() {
                    *error = None;
                }
                sink.journal("reloaded", detail);
            }
            // The error names file, line and column; the rules in force stay.
            (Err(e), _) => {
                error!(error = %e, "reload rejected, keeping the rules in force");
                if let Ok(mut error) = self.state.reload_error.lock() {
                    *error = Some(e.to_string());
                }
                sink.journal("reload-rejected", e.to_string());
            }
            (Ok(_), None) => {}
        }
    }
}

fn report_capture_end(name: &str, outcome: std::thread::Result<Result<()>>) {
    match outcome {
        Ok(Ok(())) => info!(interface = %name, "capture stopped"),
        Ok(Err(e)) => error!(interface = %name, error = %format!("{e:#}"), "capture failed"),
        Err(_) => error!(interface = %name, "capture thread panicked"),
    }
}

/// Journals this start, and first the unclean end of the previous run if
/// it left neither a `stopped` nor a `start-failed` entry: while no agent
/// ran, nothing was filtered. That is also tamper evidence (an event).
fn record_start(store: &mut Store, config: &Config, policy: &Policy, now: i64) -> Result<()> {
    let mut entries = Vec::new();
    let mut events = Vec::new();
    let last = store.journal(1)?.into_iter().next();
    if let Some(last) = last.filter(|e| e.kind != STOPPED && e.kind != START_FAILED) {
        let at = vigie_core::timefmt::rfc3339_micros(last.ts);
        warn!(since = %at, "the previous run did not stop cleanly");
        entries.push(JournalEntry {
            ts: now,
            kind: "unclean-stop".to_owned(),
            detail: format!(
                "the previous run (last entry `{}` at {at}) ended without stopping cleanly; traffic was not \
                 filtered until this start (fail-open)",
                last.kind
            ),
        });
        let finding = tamper::Finding {
            check: tamper::Check::AgentKilled,
            subject: "vigie-agent".to_owned(),
            detail: format!(
                "the previous run ended without stopping (killed, crashed or power lost) after its last \
                 entry at {at}; nothing was filtered until this start"
            ),
            uid: None,
        };
        let (entry, event) = finding.evidence(now, &policy.version);
        entries.push(entry);
        events.push(event);
    }
    entries.push(JournalEntry {
        ts: now,
        kind: "started".to_owned(),
        detail: format!(
            "mode={} failure_mode={:?} policy={} version={} pid={}",
            config.mode().as_str(),
            policy.failure_mode,
            policy.name,
            policy.version,
            std::process::id()
        ),
    });
    store.insert(&events)?;
    store.append_journal(&entries)?;
    Ok(())
}

/// The journal kind of a start that failed after it was journaled.
const START_FAILED: &str = "start-failed";

fn record_failed_start(database: &std::path::Path, error: &anyhow::Error, now: i64) {
    let entry = JournalEntry { ts: now, kind: START_FAILED.to_owned(), detail: format!("{error:#}") };
    if let Err(e) = Store::open(database).and_then(|mut store| store.append_journal(&[entry])) {
        warn!(error = %e, "cannot journal the failed start");
    }
}
